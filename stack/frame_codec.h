// Length-prefixed framing shared by every stream in qnet (neighbour TCP
// connections, the qworld socket, the app API socket): each frame is a base-128
// varint byte count followed by that many bytes of one serialized protobuf
// message (specs/link.md LINK-W1, specs/physical.md PHYS-1).
#ifndef QNET_STACK_FRAME_CODEC_H_
#define QNET_STACK_FRAME_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace qnet {

inline constexpr size_t kDefaultMaxFrameBytes = 1 << 20;

// Appends the frame for `message` to `out`.
void AppendFrame(const google::protobuf::MessageLite& message, std::string* out);
std::string EncodeFrame(const google::protobuf::MessageLite& message);

// Splits a byte stream into frames. Feed bytes with Append(); take frames with
// Next() until it returns std::nullopt (need more bytes).
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  void Append(std::string_view bytes) { buffer_.append(bytes); }

  struct Frame {
    std::string payload;
    bool oversized = false;  // payload is empty; the frame's bytes were skipped
    uint64_t declared_size = 0;
  };

  // Returns the next frame, std::nullopt if incomplete, or an error if the
  // length prefix is not a valid varint (the stream cannot be resynchronised
  // and must be closed). An oversized frame is skipped without buffering it
  // and reported with `oversized` set, so the caller can count it and go on.
  absl::StatusOr<std::optional<Frame>> Next();

  size_t buffered_bytes() const { return buffer_.size(); }

 private:
  size_t max_frame_bytes_;
  std::string buffer_;
  uint64_t skip_remaining_ = 0;  // bytes of an oversized frame still to discard
};

}  // namespace qnet

#endif  // QNET_STACK_FRAME_CODEC_H_
