#include "apps/qkd/auth/poly_hash.h"

namespace qnet::qkd {
namespace {

// a * j for j = 0..15 as 67-bit polynomials (low 64 bits, high 3 bits), so a
// product by a takes 16 table look-ups: portable and constant time.
struct MultiplyTable {
  uint64_t lo[16], hi[16];
  explicit MultiplyTable(uint64_t a) {
    lo[0] = hi[0] = 0;
    lo[1] = a;
    hi[1] = 0;
    for (int j = 2; j < 16; j += 2) {
      lo[j] = lo[j / 2] << 1;
      hi[j] = (hi[j / 2] << 1) | (lo[j / 2] >> 63);
      lo[j + 1] = lo[j] ^ a;
      hi[j + 1] = hi[j];
    }
  }
  // a * b in GF(2^64).
  uint64_t Times(uint64_t b) const {
    uint64_t rhi = 0, rlo = 0;  // carry-less 128-bit product, 4 bits of b at a time
    for (int shift = 60; shift >= 0; shift -= 4) {
      rhi = (rhi << 4) | (rlo >> 60);
      rlo <<= 4;
      const unsigned nib = static_cast<unsigned>(b >> shift) & 0xF;
      rlo ^= lo[nib];
      rhi ^= hi[nib];
    }
    // Fold rhi x^64 = rhi (x^4 + x^3 + x + 1); the at most 4 bits that
    // overflow (rhi has degree <= 62) fold once more and fit.
    const uint64_t over = (rhi >> 60) ^ (rhi >> 61) ^ (rhi >> 63);
    rlo ^= rhi ^ (rhi << 1) ^ (rhi << 3) ^ (rhi << 4);
    return rlo ^ over ^ (over << 1) ^ (over << 3) ^ (over << 4);
  }
};

uint64_t LoadLe(std::string_view bytes, size_t at, size_t n) {
  uint64_t w = 0;
  for (size_t b = 0; b < n; ++b) {
    w |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[at + b])) << (8 * b);
  }
  return w;
}

}  // namespace

uint64_t Gf64Multiply(uint64_t a, uint64_t b) { return MultiplyTable(a).Times(b); }

uint64_t PolyHash64(uint64_t key, std::string_view message) {
  const MultiplyTable k(key);
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= message.size(); i += 8) acc = k.Times(acc ^ LoadLe(message, i, 8));
  if (i < message.size()) acc = k.Times(acc ^ LoadLe(message, i, message.size() - i));
  return k.Times(acc ^ static_cast<uint64_t>(message.size()));
}

}  // namespace qnet::qkd
