// FrameChannel (specs/qkd.md QKD-W4..W8).
#include "apps/qkd/qkd_session_frames.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qnet::qkd {
namespace {

// Reads a base-128 varint at `*pos`; false if `bytes` ends first or it has
// more than 10 bytes.
bool ReadVarint(const std::string& bytes, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 70 && *pos < bytes.size(); shift += 7) {
    const auto b = static_cast<uint8_t>(bytes[(*pos)++]);
    *value |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> FrameChannel::Seal(const std::string& message) {
  if (message.size() > max_message_bytes_) {
    return absl::OutOfRangeError(absl::StrCat("message too large: ", message.size(), " bytes"));
  }
  std::vector<std::string> frames;
  size_t offset = 0;
  do {
    const size_t n = std::min(kFragmentBytes, message.size() - offset);
    const bool more = offset + n < message.size();
    auto frame = auth_->Seal(message.substr(offset, n), more);
    if (!frame.ok()) return frame.status();
    last_sent_seq_ = frame->seq();
    frames.push_back(frame->SerializeAsString());
    offset += n;
  } while (offset < message.size());
  if (frames.size() > 1) ++fragmented_sent_;
  return frames;
}

absl::StatusOr<std::optional<std::string>> FrameChannel::Receive(const std::string& data) {
  v1::AuthenticatedFrame frame;
  if (!frame.ParseFromString(data)) {
    return absl::DataLossError("malformed frame: not an AuthenticatedFrame");
  }
  auto bytes = auth_->Open(frame);
  if (!bytes.ok()) return bytes.status();
  last_seq_ = frame.seq();
  if (!frame.more() && expected_ == 0) return std::optional<std::string>(*std::move(bytes));
  if (expected_ == 0) {
    // QKD-W7: the first fragment starts with the message's one field: its
    // key and length give the message's total size.
    size_t pos = 0;
    uint64_t key = 0, length = 0;
    if (!ReadVarint(*bytes, &pos, &key) || (key & 7) != 2 || !ReadVarint(*bytes, &pos, &length)) {
      return absl::FailedPreconditionError(
          "fragmented message does not start with a length-delimited field");
    }
    if (length > max_message_bytes_ || pos + length > max_message_bytes_) {  // QKD-W6
      return absl::OutOfRangeError(absl::StrCat("message too large: a fragmented message of ",
                                                pos + length, " bytes (limit ", max_message_bytes_,
                                                ")"));
    }
    expected_ = pos + static_cast<size_t>(length);
    reassembly_.clear();
  }
  reassembly_ += *bytes;
  const bool ends = !frame.more();
  if (reassembly_.size() > expected_ || (!ends && reassembly_.size() == expected_) ||
      (ends && reassembly_.size() != expected_)) {
    const std::string what =
        absl::StrCat("fragment chain broken: ", reassembly_.size(), " bytes received with more ",
                     frame.more() ? "true" : "false", " for a message of ", expected_, " bytes");
    expected_ = 0;
    reassembly_.clear();
    return absl::FailedPreconditionError(what);
  }
  if (!ends) return std::optional<std::string>();
  expected_ = 0;
  ++fragmented_received_;
  return std::optional<std::string>(std::exchange(reassembly_, std::string()));
}

}  // namespace qnet::qkd
