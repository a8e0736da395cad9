#include "stack/frame_codec.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qnet {

void AppendFrame(const google::protobuf::MessageLite& message, std::string* out) {
  uint64_t size = message.ByteSizeLong();
  while (size >= 0x80) {
    out->push_back(static_cast<char>((size & 0x7f) | 0x80));
    size >>= 7;
  }
  out->push_back(static_cast<char>(size));
  message.AppendToString(out);
}

std::string EncodeFrame(const google::protobuf::MessageLite& message) {
  std::string out;
  AppendFrame(message, &out);
  return out;
}

absl::StatusOr<std::optional<FrameDecoder::Frame>> FrameDecoder::Next() {
  if (skip_remaining_ > 0) {
    const uint64_t n = std::min<uint64_t>(skip_remaining_, buffer_.size());
    buffer_.erase(0, n);
    skip_remaining_ -= n;
    if (skip_remaining_ > 0) return std::nullopt;
  }
  uint64_t size = 0;
  size_t i = 0;
  for (;; ++i) {
    if (i >= buffer_.size()) return std::nullopt;
    if (i >= 10) return absl::DataLossError("frame length prefix is not a valid varint");
    const uint8_t byte = static_cast<uint8_t>(buffer_[i]);
    size |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) break;
  }
  const size_t header = i + 1;
  if (size > max_frame_bytes_) {
    buffer_.erase(0, header);
    const uint64_t n = std::min<uint64_t>(size, buffer_.size());
    buffer_.erase(0, n);
    skip_remaining_ = size - n;
    Frame f;
    f.oversized = true;
    f.declared_size = size;
    return f;
  }
  if (buffer_.size() - header < size) return std::nullopt;
  Frame f;
  f.payload = buffer_.substr(header, size);
  f.declared_size = size;
  buffer_.erase(0, header + size);
  return f;
}

}  // namespace qnet
