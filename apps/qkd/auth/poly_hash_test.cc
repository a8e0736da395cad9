// Tests of GF(2^64) arithmetic and PolyHash64 (specs/qkd.md QKD-U2, QKD-U3).
#include "apps/qkd/auth/poly_hash.h"

#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace qnet::qkd {
namespace {

// Bit-by-bit reference: shift-and-add with reduction by x^64 + x^4 + x^3 + x + 1.
uint64_t ReferenceMultiply(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  for (int i = 0; i < 64; ++i) {
    if ((b >> i) & 1) r ^= a;
    const bool carry = a >> 63;
    a <<= 1;
    if (carry) a ^= 0x1B;
  }
  return r;
}

uint64_t Power(uint64_t a, uint64_t e) {
  uint64_t r = 1;
  while (e) {
    if (e & 1) r = Gf64Multiply(r, a);
    a = Gf64Multiply(a, a);
    e >>= 1;
  }
  return r;
}

// QKD-U2: golden products derived by hand.
TEST(Gf64Test, QkdU2GoldenProducts) {
  EXPECT_EQ(Gf64Multiply(uint64_t{1} << 63, 2), 0x1Bu);  // x^63 * x = x^4+x^3+x+1
  EXPECT_EQ(Gf64Multiply(uint64_t{1} << 63, 4), 0x36u);  // x^63 * x^2 = x^5+x^4+x^2+x
  // x^126 = x^62 (x^4+x^3+x+1) = x^63+x^62+x^6+x^4+x^3+x
  EXPECT_EQ(Gf64Multiply(uint64_t{1} << 63, uint64_t{1} << 63), 0xC00000000000005Aull);
  EXPECT_EQ(Gf64Multiply(3, 3), 5u);              // (x+1)^2 = x^2+1
  EXPECT_EQ(Gf64Multiply(0x87, 1), 0x87u);        // a * 1 = a
  EXPECT_EQ(Gf64Multiply(0x87, 0), 0u);           // a * 0 = 0
  EXPECT_EQ(Gf64Multiply(0xFF, 0x100), 0xFF00u);  // no reduction below degree 64
}

TEST(Gf64Test, QkdU2MatchesBitwiseReference) {
  std::mt19937_64 gen(1);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t a = gen(), b = gen();
    ASSERT_EQ(Gf64Multiply(a, b), ReferenceMultiply(a, b)) << a << " " << b;
  }
}

TEST(Gf64Test, QkdU2FieldAxioms) {
  std::mt19937_64 gen(2);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t a = gen(), b = gen(), c = gen();
    EXPECT_EQ(Gf64Multiply(a, b), Gf64Multiply(b, a));
    EXPECT_EQ(Gf64Multiply(Gf64Multiply(a, b), c), Gf64Multiply(a, Gf64Multiply(b, c)));
    EXPECT_EQ(Gf64Multiply(a, b ^ c), Gf64Multiply(a, b) ^ Gf64Multiply(a, c));
    EXPECT_EQ(Gf64Multiply(a, 1), a);
  }
}

// The modulus is irreducible: every non-zero a satisfies a^(2^64 - 1) = 1
// and has an inverse a^(2^64 - 2); no zero divisors.
TEST(Gf64Test, QkdU2MultiplicativeGroup) {
  std::mt19937_64 gen(3);
  for (int i = 0; i < 200; ++i) {
    uint64_t a = gen();
    if (a == 0) a = 1;
    EXPECT_EQ(Power(a, ~uint64_t{0}), 1u);
    EXPECT_EQ(Gf64Multiply(a, Power(a, ~uint64_t{0} - 1)), 1u);
  }
  EXPECT_EQ(Power(2, ~uint64_t{0}), 1u);
}

// QKD-U3: golden hashes derived by hand from the Horner form.
TEST(PolyHash64Test, QkdU3GoldenValues) {
  EXPECT_EQ(PolyHash64(0x123456789ull, ""), 0u);  // len 0 -> 0 * k
  // m1 = 1, len = 1, k = x: 1 x^2 + 1 x = 6.
  EXPECT_EQ(PolyHash64(2, std::string("\x01", 1)), 6u);
  // k = 1: the XOR of all words and the length.
  EXPECT_EQ(PolyHash64(1, "abcdefgh"), 0x6867666564636261ull ^ 8);
  // k = x, 9 bytes 0x01: m1 = 0x0101..01 x^3 + 0x01 x^2 + 9 x.
  EXPECT_EQ(PolyHash64(2, std::string(9, '\x01')), 0x080808080808081Eull);
  // Last word zero-padded, little-endian: "ab" = 0x6261.
  const uint64_t k = 0xDEADBEEFCAFEF00Dull;
  EXPECT_EQ(PolyHash64(k, "ab"), Gf64Multiply(Gf64Multiply(0x6261, k) ^ 2, k));
}

TEST(PolyHash64Test, QkdU3LengthIsHashed) {
  const uint64_t k = 0x0123456789ABCDEFull;
  // Zero padding alone would make these equal; the length word separates them.
  EXPECT_NE(PolyHash64(k, std::string("a", 1)), PolyHash64(k, std::string("a\0", 2)));
  EXPECT_NE(PolyHash64(k, std::string(8, '\0')), PolyHash64(k, std::string(16, '\0')));
  EXPECT_NE(PolyHash64(k, ""), PolyHash64(k, std::string(1, '\0')));
}

TEST(PolyHash64Test, QkdU3SingleBitChangesHash) {
  std::mt19937_64 gen(4);
  std::string m(100, '\0');
  for (char& c : m) c = static_cast<char>(gen());
  const uint64_t k = gen();
  const uint64_t h = PolyHash64(k, m);
  for (size_t bit = 0; bit < m.size() * 8; ++bit) {
    std::string t = m;
    t[bit / 8] = static_cast<char>(t[bit / 8] ^ (1 << (bit % 8)));
    ASSERT_NE(PolyHash64(k, t), h) << bit;
  }
}

}  // namespace
}  // namespace qnet::qkd
