// Tests of the Wegman-Carter authenticator (specs/qkd.md QKD-U*).
#include "apps/qkd/auth/authenticator.h"

#include <cstdint>
#include <random>
#include <string>

#include "apps/qkd/auth/poly_hash.h"
#include "gtest/gtest.h"

namespace qnet::qkd {
namespace {

// A PSK of 8 + 2 * 8 * words_per_direction bytes, deterministic.
std::string MakePsk(size_t words_per_direction, uint32_t seed = 7) {
  std::mt19937 gen(seed);
  std::string psk(8 + 16 * words_per_direction, '\0');
  for (char& c : psk) c = static_cast<char>(gen());
  return psk;
}

uint64_t Le64(const std::string& s, size_t at) {
  uint64_t w = 0;
  for (int b = 0; b < 8; ++b)
    w |= static_cast<uint64_t>(static_cast<uint8_t>(s[at + b])) << (8 * b);
  return w;
}

struct Pair {
  Authenticator alice, bob;
};

Pair MakePair(const std::string& psk) {
  auto a = Authenticator::Create(psk, true);
  auto b = Authenticator::Create(psk, false);
  EXPECT_TRUE(a.ok() && b.ok());
  return Pair{*std::move(a), *std::move(b)};
}

TEST(AuthenticatorTest, QkdU6ShortPskRefused) {
  EXPECT_EQ(Authenticator::Create(std::string(23, 'x'), true).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto ok = Authenticator::Create(std::string(24, 'x'), true);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->words_left(Direction::kAliceToBob), 1u);
  EXPECT_EQ(ok->words_left(Direction::kBobToAlice), 1u);
}

// QKD-U6: 8-byte hash key, then the a->b half, then the b->a half.
TEST(AuthenticatorTest, QkdU6PskLayoutAndU4U5TagFormula) {
  const std::string psk = MakePsk(4);
  Pair p = MakePair(psk);
  EXPECT_EQ(p.alice.hash_key(), Le64(psk, 0));
  EXPECT_EQ(p.alice.words_left(Direction::kAliceToBob), 4u);
  // Frame 1 a->b: tag = H_k('a' | 1 LE | m) ^ first a->b word (bytes 8..15).
  auto f1 = p.alice.Seal("hello");
  ASSERT_TRUE(f1.ok());
  EXPECT_EQ(f1->version(), 1u);
  EXPECT_EQ(f1->seq(), 1u);
  const std::string hashed = std::string("a\x01\0\0\0\0\0\0\0", 9) + "hello";
  EXPECT_EQ(Authenticator::TaggedBytes(Direction::kAliceToBob, 1, "hello"), hashed);
  EXPECT_EQ(f1->tag(), PolyHash64(Le64(psk, 0), hashed) ^ Le64(psk, 8));
  // Frame 2 a->b uses the second a->b word (bytes 16..23).
  auto f2 = p.alice.Seal("x");
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(f2->seq(), 2u);
  EXPECT_EQ(f2->tag(),
            PolyHash64(Le64(psk, 0), std::string("a\x02\0\0\0\0\0\0\0x", 10)) ^ Le64(psk, 16));
  // Frame 1 b->a: direction byte 'b', first b->a word (bytes 8 + 32 ..).
  auto g1 = p.bob.Seal("hello");
  ASSERT_TRUE(g1.ok());
  EXPECT_EQ(g1->tag(), PolyHash64(Le64(psk, 0), std::string("b\x01\0\0\0\0\0\0\0", 9) + "hello") ^
                           Le64(psk, 8 + 32));
}

TEST(AuthenticatorTest, QkdU4RoundTripBothDirections) {
  Pair p = MakePair(MakePsk(16));
  for (int i = 0; i < 5; ++i) {
    const std::string m = "alice says " + std::to_string(i);
    auto f = p.alice.Seal(m);
    ASSERT_TRUE(f.ok());
    auto got = p.bob.Open(*f);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, m);
    const std::string r = std::string("bob\0says", 8) + std::to_string(i);
    auto g = p.bob.Seal(r);
    ASSERT_TRUE(g.ok());
    auto back = p.alice.Open(*g);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, r);
  }
  // QKD-U13: 64 pad bits per frame, the same count at both ends.
  EXPECT_EQ(p.alice.bits_consumed(Direction::kAliceToBob), 5u * 64);
  EXPECT_EQ(p.bob.bits_consumed(Direction::kAliceToBob), 5u * 64);
  EXPECT_EQ(p.alice.bits_consumed(Direction::kBobToAlice), 5u * 64);
  EXPECT_EQ(p.bob.bits_consumed(Direction::kBobToAlice), 5u * 64);
  EXPECT_EQ(p.alice.words_left(Direction::kAliceToBob), 11u);
  EXPECT_EQ(p.bob.words_left(Direction::kAliceToBob), 11u);
  // An empty message authenticates too.
  auto e = p.alice.Seal("");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(p.bob.Open(*e).ok());
}

// QKD-U7, QKD-U8: any flipped bit in message, seq or tag is refused; the
// refusal consumes nothing and the genuine frame still opens.
TEST(AuthenticatorTest, QkdU7FlippedBitsRefusedNothingConsumed) {
  Pair p = MakePair(MakePsk(4));
  auto f = p.alice.Seal("a Sift message of some length........");
  ASSERT_TRUE(f.ok());
  uint64_t refused = 0;
  for (size_t bit = 0; bit < f->message().size() * 8; ++bit) {
    v1::AuthenticatedFrame t = *f;
    std::string m = t.message();
    m[bit / 8] = static_cast<char>(m[bit / 8] ^ (1 << (bit % 8)));
    t.set_message(m);
    EXPECT_EQ(p.bob.Open(t).status().code(), absl::StatusCode::kPermissionDenied) << bit;
    ++refused;
  }
  for (int bit = 0; bit < 64; ++bit) {
    v1::AuthenticatedFrame t = *f;
    t.set_tag(t.tag() ^ (uint64_t{1} << bit));
    EXPECT_EQ(p.bob.Open(t).status().code(), absl::StatusCode::kPermissionDenied) << bit;
    ++refused;
  }
  for (int bit = 0; bit < 64; ++bit) {
    v1::AuthenticatedFrame t = *f;
    t.set_seq(t.seq() ^ (uint64_t{1} << bit));
    EXPECT_EQ(p.bob.Open(t).status().code(), absl::StatusCode::kInvalidArgument) << bit;
    ++refused;
  }
  v1::AuthenticatedFrame v = *f;
  v.set_version(2);
  EXPECT_EQ(p.bob.Open(v).status().code(), absl::StatusCode::kInvalidArgument);
  ++refused;
  EXPECT_EQ(p.bob.frames_refused(), refused);
  EXPECT_EQ(p.bob.tags_failed(), f->message().size() * 8 + 64);
  EXPECT_EQ(p.bob.bits_consumed(Direction::kAliceToBob), 0u);
  EXPECT_EQ(p.bob.words_left(Direction::kAliceToBob), 4u);
  auto got = p.bob.Open(*f);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(p.bob.bits_consumed(Direction::kAliceToBob), 64u);
}

// QKD-U8: replay and reordering refused.
TEST(AuthenticatorTest, QkdU8ReplayAndReorderRefused) {
  Pair p = MakePair(MakePsk(8));
  auto f1 = p.alice.Seal("one");
  auto f2 = p.alice.Seal("two");
  ASSERT_TRUE(f1.ok() && f2.ok());
  EXPECT_EQ(p.bob.Open(*f2).status().code(), absl::StatusCode::kInvalidArgument);  // reordered
  ASSERT_TRUE(p.bob.Open(*f1).ok());
  EXPECT_EQ(p.bob.Open(*f1).status().code(), absl::StatusCode::kInvalidArgument);  // replayed
  ASSERT_TRUE(p.bob.Open(*f2).ok());
  EXPECT_EQ(p.bob.Open(*f2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.bob.frames_refused(), 3u);
  EXPECT_EQ(p.bob.tags_failed(), 0u);
  // A frame reflected back to its sender is refused (direction byte, pad).
  Pair q = MakePair(MakePsk(8));
  auto own = q.alice.Seal("reflect me");
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(q.alice.Open(*own).status().code(), absl::StatusCode::kPermissionDenied);
}

// QKD-U9: a PSK of N words per direction authenticates exactly N frames each
// way; then RESOURCE_EXHAUSTED at both ends; Refill lets the session go on.
TEST(AuthenticatorTest, QkdU9ExhaustionAfterExactlyNFramesThenRefill) {
  constexpr int kWords = 5;
  Pair p = MakePair(MakePsk(kWords));
  for (int i = 0; i < kWords; ++i) {
    auto f = p.alice.Seal("m");
    ASSERT_TRUE(f.ok()) << i;
    ASSERT_TRUE(p.bob.Open(*f).ok()) << i;
  }
  auto extra = p.alice.Seal("m");
  EXPECT_EQ(extra.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(extra.status().message(), "authentication key exhausted");
  // The other direction is independent.
  auto g = p.bob.Seal("r");
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(p.alice.Open(*g).ok());
  // Refill both ends with the same 2 words (and 10 stray bits, ignored).
  BitVector bits(2 * 64 + 10);
  for (size_t i = 0; i < bits.size(); i += 3) bits.Set(i, true);
  p.alice.Refill(Direction::kAliceToBob, bits);
  p.bob.Refill(Direction::kAliceToBob, bits);
  EXPECT_EQ(p.alice.words_left(Direction::kAliceToBob), 2u);
  EXPECT_EQ(p.alice.bits_refilled(Direction::kAliceToBob), 128u);
  for (int i = 0; i < 2; ++i) {
    auto f = p.alice.Seal("after refill");
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->seq(), static_cast<uint64_t>(kWords + 1 + i));
    ASSERT_TRUE(p.bob.Open(*f).ok());
  }
  EXPECT_EQ(p.alice.Seal("m").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(p.alice.bits_consumed(Direction::kAliceToBob), (kWords + 2) * 64u);
  EXPECT_EQ(p.bob.bits_consumed(Direction::kAliceToBob), (kWords + 2) * 64u);
}

TEST(AuthenticatorTest, QkdU9OpenOnExhaustedPadRefused) {
  Pair p = MakePair(MakePsk(1));
  auto f1 = p.alice.Seal("1");
  ASSERT_TRUE(p.bob.Open(*f1).ok());
  v1::AuthenticatedFrame f2;
  f2.set_version(1);
  f2.set_seq(2);
  f2.set_message("2");
  f2.set_tag(0);
  EXPECT_EQ(p.bob.Open(f2).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(p.bob.frames_refused(), 1u);
}

// QKD-U10..U12: refill amounts rounded up to 64, a->b first, the rest returned.
TEST(AuthenticatorTest, QkdU10RefillFromKey) {
  Pair p = MakePair(MakePsk(4));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.bob.Open(*p.alice.Seal("a")).ok());
  ASSERT_TRUE(p.alice.Open(*p.bob.Seal("b")).ok());
  EXPECT_EQ(p.alice.bits_consumed_since_refill(Direction::kAliceToBob), 192u);
  EXPECT_EQ(p.bob.bits_consumed_since_refill(Direction::kBobToAlice), 64u);
  BitVector key(1000);
  for (size_t i = 0; i < key.size(); i += 7) key.Set(i, true);
  // QKD-U12: a short key fills what it can, a->b first, whole words only.
  {
    Pair short_pair = MakePair(MakePsk(1));
    auto rest = short_pair.alice.RefillFromKey(key.Slice(0, 250), 192, 64);
    ASSERT_TRUE(rest.ok());
    EXPECT_EQ(short_pair.alice.bits_refilled(Direction::kAliceToBob), 192u);
    EXPECT_EQ(short_pair.alice.bits_refilled(Direction::kBobToAlice), 0u);
    EXPECT_EQ(*rest, key.Slice(192, 250));
    auto rest2 = short_pair.alice.RefillFromKey(key.Slice(0, 100), 128, 64);
    ASSERT_TRUE(rest2.ok());
    EXPECT_EQ(short_pair.alice.bits_refilled(Direction::kAliceToBob), 256u);
    EXPECT_EQ(short_pair.alice.bits_refilled(Direction::kBobToAlice), 0u);
    EXPECT_EQ(*rest2, key.Slice(64, 100));
  }
  // 190 -> 192 bits and 1 -> 64 bits.
  auto rest_a = p.alice.RefillFromKey(key, 190, 1);
  auto rest_b = p.bob.RefillFromKey(key, 190, 1);
  ASSERT_TRUE(rest_a.ok() && rest_b.ok());
  EXPECT_EQ(*rest_a, key.Slice(256, 1000));
  EXPECT_EQ(*rest_b, *rest_a);
  EXPECT_EQ(p.alice.bits_refilled(Direction::kAliceToBob), 192u);
  EXPECT_EQ(p.alice.bits_refilled(Direction::kBobToAlice), 64u);
  EXPECT_EQ(p.alice.bits_consumed_since_refill(Direction::kAliceToBob), 0u);
  EXPECT_EQ(p.alice.words_left(Direction::kAliceToBob), 1u + 3u);
  EXPECT_EQ(p.bob.words_left(Direction::kBobToAlice), 3u + 1u);
  // The refilled words authenticate: the whole pad is used up exactly.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.bob.Open(*p.alice.Seal("after")).ok()) << i;
  EXPECT_EQ(p.alice.Seal("m").status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace qnet::qkd
