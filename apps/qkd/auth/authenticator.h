// Authenticator: Wegman-Carter authentication of every classical QKD message
// (specs/qkd.md QKD-U*), sans-I/O.
//
// Keys: a 64-bit hash key k (reused for the whole session) and two one-time-
// pad streams of 64-bit words, one per direction (a->b, b->a). All three come
// from the pre-shared secret (PSK): its first 8 bytes are k, the rest is split
// in two halves, the first half the a->b stream, the second the b->a stream.
// Message seq s of a direction (s = 1, 2, ...) is tagged with
//   tag = PolyHash64(k, direction byte ('a' or 'b') | seq (8 bytes LE) | message)
//         XOR word s of that direction's stream,
// so every tag consumes 64 fresh pad bits and the forgery probability of one
// message of L bits is at most (ceil(L/64) + 3) / 2^64.
//
// Replenishment: after a block's privacy amplification both ends Refill()
// each stream with the same words from the new key, in the same order
// (QKD-U*), before any of that key goes to the key store.
//
// Accounting: pad bits consumed per direction, refills, tags failed.
#ifndef QNET_APPS_QKD_AUTH_AUTHENTICATOR_H_
#define QNET_APPS_QKD_AUTH_AUTHENTICATOR_H_

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "apps/qkd/postproc/bits.h"
#include "qnet/qkd/v1/qkd.pb.h"

namespace qnet::qkd {

enum class Direction { kAliceToBob, kBobToAlice };

class Authenticator {
 public:
  // `psk`: the pre-shared secret, at least 8 + 2 * 8 bytes (INVALID_ARGUMENT
  // otherwise). `self_is_alice` selects which stream Seal() uses.
  static absl::StatusOr<Authenticator> Create(std::string_view psk, bool self_is_alice);

  // Wraps a serialized QkdMessage in the next frame of this end's direction.
  // RESOURCE_EXHAUSTED when this direction's pad is used up (the session
  // aborts: "authentication key exhausted").
  absl::StatusOr<v1::AuthenticatedFrame> Seal(std::string message);
  // The same for one fragment of a longer message (QKD-W4): sets the frame's
  // `more` and tags it with the upper-case direction byte ('A' / 'B'), so a
  // flipped `more` fails the tag. Seal(m) is Seal(m, false). Open() checks
  // either kind.
  absl::StatusOr<v1::AuthenticatedFrame> Seal(std::string message, bool more);
  // Checks a frame of the other direction: version 1, seq exactly the next
  // expected (replay and reordering refused), tag. PERMISSION_DENIED on a bad
  // tag, INVALID_ARGUMENT on a bad version or seq, RESOURCE_EXHAUSTED when
  // the pad is used up. A refused frame consumes nothing.
  absl::StatusOr<std::string> Open(const v1::AuthenticatedFrame& frame);

  // Appends `bits` (a multiple of 64 bits; the rest ignored) to a stream.
  void Refill(Direction direction, const BitVector& bits);

  // The refill rule of QKD-U10..U12 in one call: with ab = min(RoundUp64(
  // a_to_b_bits), floor(len/64)*64) and ba = min(RoundUp64(b_to_a_bits),
  // floor((len-ab)/64)*64), moves the first ab bits of `key` into the a->b
  // stream, the next ba into the b->a stream, and returns the rest of `key`.
  // Both ends must pass the same amounts (the session pins when;
  // bits_consumed_since_refill() is this end's count).
  absl::StatusOr<BitVector> RefillFromKey(const BitVector& key, uint64_t a_to_b_bits,
                                          uint64_t b_to_a_bits);
  // Pad bits a direction consumed since the last Refill of that direction.
  uint64_t bits_consumed_since_refill(Direction direction) const;

  // 64-bit words left in a stream.
  uint64_t words_left(Direction direction) const;
  uint64_t bits_consumed(Direction direction) const;
  uint64_t bits_refilled(Direction direction) const;
  uint64_t tags_failed() const { return tags_failed_; }
  // Frames Open() refused for any reason (version, seq, tag, exhausted pad).
  uint64_t frames_refused() const { return frames_refused_; }
  // The 64-bit hash key of the session (tests, verification of QKD-U3).
  uint64_t hash_key() const { return hash_key_; }

  // The bytes the tag hashes (QKD-U5): direction byte ('a' for a->b, 'b' for
  // b->a), seq as 8 bytes little-endian, then the message.
  static std::string TaggedBytes(Direction direction, uint64_t seq, std::string_view message);
  // With `more` (a fragment that is not the last, QKD-W4) the direction byte
  // is 'A' / 'B'; without, as above.
  static std::string TaggedBytes(Direction direction, uint64_t seq, std::string_view message,
                                 bool more);

 private:
  Authenticator() = default;
  struct Stream {
    std::deque<uint64_t> words;
    uint64_t next_seq = 1;
    uint64_t consumed_bits = 0, refilled_bits = 0;
    uint64_t consumed_at_refill = 0;  // consumed_bits at the last Refill
  };
  Stream& Of(Direction d) { return d == Direction::kAliceToBob ? a_to_b_ : b_to_a_; }
  const Stream& Of(Direction d) const { return d == Direction::kAliceToBob ? a_to_b_ : b_to_a_; }

  uint64_t hash_key_ = 0;
  bool self_is_alice_ = true;
  Stream a_to_b_, b_to_a_;
  uint64_t tags_failed_ = 0, frames_refused_ = 0;
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_AUTH_AUTHENTICATOR_H_
