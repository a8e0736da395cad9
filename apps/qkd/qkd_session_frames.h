// FrameChannel: the frame layer of a QKD session (specs/qkd.md QKD-W*),
// sans-I/O. One QkdMessage goes out as one AuthenticatedFrame, or, when its
// serialization is above kFragmentBytes, as consecutive frames of
// kFragmentBytes (the last shorter) with `more` set on all but the last;
// each frame is sealed on its own (one tag, 64 pad bits each). The receiver
// opens every frame, concatenates fragments in seq order and hands out the
// message bytes when a frame without `more` ends the chain.
#ifndef QNET_APPS_QKD_QKD_SESSION_FRAMES_H_
#define QNET_APPS_QKD_QKD_SESSION_FRAMES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "apps/qkd/auth/authenticator.h"

namespace qnet::qkd {

// Largest `message` bytes in one frame (QKD-W4): a frame stays far below the
// transport's 64 KiB per Send.
inline constexpr size_t kFragmentBytes = 48 * 1024;
// Largest message, sent or reassembled (QKD-W6).
inline constexpr size_t kMaxMessageBytes = size_t{64} << 20;

class FrameChannel {
 public:
  // `auth` outlives the channel. `max_message_bytes`: tests only.
  explicit FrameChannel(Authenticator* auth, size_t max_message_bytes = kMaxMessageBytes)
      : auth_(auth), max_message_bytes_(max_message_bytes) {}

  // The serialized frames carrying `message` (a serialized QkdMessage), in
  // send order. RESOURCE_EXHAUSTED when the pad runs out (frames sealed
  // before stay consumed), OUT_OF_RANGE above max_message_bytes (nothing
  // consumed).
  absl::StatusOr<std::vector<std::string>> Seal(const std::string& message);

  // One received Data payload. The message bytes when it completes one,
  // nullopt when it is a fragment with `more`. Errors (the session aborts):
  // DATA_LOSS not an AuthenticatedFrame; Authenticator::Open's errors
  // (INVALID_ARGUMENT version/seq, PERMISSION_DENIED tag, RESOURCE_EXHAUSTED
  // pad); OUT_OF_RANGE the message would pass max_message_bytes ("message
  // too large"); FAILED_PRECONDITION a broken chain (QKD-W7).
  absl::StatusOr<std::optional<std::string>> Receive(const std::string& data);

  // seq of the frame Receive last accepted (the last fragment of a message).
  uint64_t last_seq() const { return last_seq_; }
  // seq of the last frame Seal produced.
  uint64_t last_sent_seq() const { return last_sent_seq_; }
  uint64_t fragmented_sent() const { return fragmented_sent_; }
  uint64_t fragmented_received() const { return fragmented_received_; }
  // True while a fragmented message is being reassembled.
  bool in_chain() const { return expected_ > 0; }

 private:
  Authenticator* auth_;
  size_t max_message_bytes_;
  std::string reassembly_;
  size_t expected_ = 0;  // total bytes the chain's first fragment announces
  uint64_t last_seq_ = 0, last_sent_seq_ = 0;
  uint64_t fragmented_sent_ = 0, fragmented_received_ = 0;
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_QKD_SESSION_FRAMES_H_
