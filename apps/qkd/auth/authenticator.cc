#include "apps/qkd/auth/authenticator.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "apps/qkd/auth/poly_hash.h"

namespace qnet::qkd {
namespace {

uint64_t LoadLe64(std::string_view bytes) {
  uint64_t w = 0;
  for (size_t b = 0; b < 8; ++b) {
    w |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[b])) << (8 * b);
  }
  return w;
}

uint64_t RoundUp64(uint64_t bits) { return (bits + 63) / 64 * 64; }

}  // namespace

absl::StatusOr<Authenticator> Authenticator::Create(std::string_view psk, bool self_is_alice) {
  if (psk.size() < 8 + 2 * 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("pre-shared key of ", psk.size(), " bytes; at least 24 needed (QKD-U6)"));
  }
  Authenticator auth;
  auth.self_is_alice_ = self_is_alice;
  auth.hash_key_ = LoadLe64(psk.substr(0, 8));
  const std::string_view rest = psk.substr(8);
  const size_t half = rest.size() / 2;
  const size_t words = half / 8;
  for (size_t w = 0; w < words; ++w) {
    auth.a_to_b_.words.push_back(LoadLe64(rest.substr(8 * w, 8)));
    auth.b_to_a_.words.push_back(LoadLe64(rest.substr(half + 8 * w, 8)));
  }
  return auth;
}

std::string Authenticator::TaggedBytes(Direction direction, uint64_t seq,
                                       std::string_view message) {
  return TaggedBytes(direction, seq, message, /*more=*/false);
}

std::string Authenticator::TaggedBytes(Direction direction, uint64_t seq, std::string_view message,
                                       bool more) {
  std::string bytes;
  bytes.reserve(9 + message.size());
  const char d = direction == Direction::kAliceToBob ? 'a' : 'b';
  bytes.push_back(more ? static_cast<char>(d - 'a' + 'A') : d);
  for (int b = 0; b < 8; ++b) bytes.push_back(static_cast<char>((seq >> (8 * b)) & 0xFF));
  bytes.append(message);
  return bytes;
}

absl::StatusOr<v1::AuthenticatedFrame> Authenticator::Seal(std::string message) {
  return Seal(std::move(message), /*more=*/false);
}

absl::StatusOr<v1::AuthenticatedFrame> Authenticator::Seal(std::string message, bool more) {
  const Direction dir = self_is_alice_ ? Direction::kAliceToBob : Direction::kBobToAlice;
  Stream& s = Of(dir);
  if (s.words.empty()) {
    return absl::ResourceExhaustedError("authentication key exhausted");
  }
  v1::AuthenticatedFrame frame;
  frame.set_version(1);
  frame.set_seq(s.next_seq);
  frame.set_more(more);
  frame.set_tag(PolyHash64(hash_key_, TaggedBytes(dir, s.next_seq, message, more)) ^
                s.words.front());
  frame.set_message(std::move(message));
  s.words.pop_front();
  ++s.next_seq;
  s.consumed_bits += 64;
  return frame;
}

absl::StatusOr<std::string> Authenticator::Open(const v1::AuthenticatedFrame& frame) {
  const Direction dir = self_is_alice_ ? Direction::kBobToAlice : Direction::kAliceToBob;
  Stream& s = Of(dir);
  if (frame.version() != 1) {
    ++frames_refused_;
    return absl::InvalidArgumentError(
        absl::StrCat("authentication failed: frame version ", frame.version()));
  }
  if (frame.seq() != s.next_seq) {
    ++frames_refused_;
    return absl::InvalidArgumentError(
        absl::StrCat("authentication failed: frame seq ", frame.seq(), ", expected ", s.next_seq));
  }
  if (s.words.empty()) {
    ++frames_refused_;
    return absl::ResourceExhaustedError("authentication key exhausted");
  }
  const uint64_t expected =
      PolyHash64(hash_key_, TaggedBytes(dir, frame.seq(), frame.message(), frame.more())) ^
      s.words.front();
  if (expected != frame.tag()) {
    ++frames_refused_;
    ++tags_failed_;
    return absl::PermissionDeniedError(
        absl::StrCat("authentication failed: bad tag on frame seq ", frame.seq()));
  }
  s.words.pop_front();
  ++s.next_seq;
  s.consumed_bits += 64;
  return frame.message();
}

void Authenticator::Refill(Direction direction, const BitVector& bits) {
  Stream& s = Of(direction);
  const size_t words = bits.size() / 64;
  for (size_t w = 0; w < words; ++w) s.words.push_back(bits.words()[w]);
  s.refilled_bits += 64 * words;
  s.consumed_at_refill = s.consumed_bits;
}

absl::StatusOr<BitVector> Authenticator::RefillFromKey(const BitVector& key, uint64_t a_to_b_bits,
                                                       uint64_t b_to_a_bits) {
  const uint64_t len = key.size();
  const uint64_t ab = std::min<uint64_t>(RoundUp64(a_to_b_bits), len / 64 * 64);
  const uint64_t ba = std::min<uint64_t>(RoundUp64(b_to_a_bits), (len - ab) / 64 * 64);
  Refill(Direction::kAliceToBob, key.Slice(0, ab));
  Refill(Direction::kBobToAlice, key.Slice(ab, ab + ba));
  return key.Slice(ab + ba, key.size());
}

uint64_t Authenticator::words_left(Direction direction) const { return Of(direction).words.size(); }
uint64_t Authenticator::bits_consumed(Direction direction) const {
  return Of(direction).consumed_bits;
}
uint64_t Authenticator::bits_refilled(Direction direction) const {
  return Of(direction).refilled_bits;
}
uint64_t Authenticator::bits_consumed_since_refill(Direction direction) const {
  const Stream& s = Of(direction);
  return s.consumed_bits - s.consumed_at_refill;
}

}  // namespace qnet::qkd
