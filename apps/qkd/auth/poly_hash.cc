#include "apps/qkd/auth/poly_hash.h"

namespace qnet::qkd {
namespace {

// Carry-less 64 x 64 -> 128 bit product (hi, lo), 4 bits of b at a time from
// a table of a * {0..15}: portable, constant time.
void ClMul(uint64_t a, uint64_t b, uint64_t* hi, uint64_t* lo) {
  // table[j] = a * j as a 67-bit polynomial: low 64 bits and the 3 high bits.
  uint64_t tlo[16], thi[16];
  tlo[0] = 0;
  thi[0] = 0;
  tlo[1] = a;
  thi[1] = 0;
  for (int j = 2; j < 16; j += 2) {
    tlo[j] = tlo[j / 2] << 1;
    thi[j] = (thi[j / 2] << 1) | (tlo[j / 2] >> 63);
    tlo[j + 1] = tlo[j] ^ a;
    thi[j + 1] = thi[j];
  }
  uint64_t rhi = 0, rlo = 0;
  for (int shift = 60; shift >= 0; shift -= 4) {
    // r <<= 4, then r ^= table[nibble].
    rhi = (rhi << 4) | (rlo >> 60);
    rlo <<= 4;
    const unsigned nib = static_cast<unsigned>(b >> shift) & 0xF;
    rlo ^= tlo[nib];
    rhi ^= thi[nib];
  }
  *hi = rhi;
  *lo = rlo;
}

}  // namespace

uint64_t Gf64Multiply(uint64_t a, uint64_t b) {
  uint64_t hi, lo;
  ClMul(a, b, &hi, &lo);
  // Fold hi * x^64 = hi * (x^4 + x^3 + x + 1): at most 4 bits overflow again.
  const uint64_t over = (hi >> 60) ^ (hi >> 61) ^ (hi >> 63);
  lo ^= hi ^ (hi << 1) ^ (hi << 3) ^ (hi << 4);
  // over * (x^4 + x^3 + x + 1) fits in 64 bits (over < 2^4).
  lo ^= over ^ (over << 1) ^ (over << 3) ^ (over << 4);
  return lo;
}

uint64_t PolyHash64(uint64_t key, std::string_view message) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= message.size(); i += 8) {
    uint64_t w = 0;
    for (int b = 0; b < 8; ++b) {
      w |= static_cast<uint64_t>(static_cast<uint8_t>(message[i + b])) << (8 * b);
    }
    acc = Gf64Multiply(acc ^ w, key);
  }
  if (i < message.size()) {
    uint64_t w = 0;
    for (size_t b = 0; i + b < message.size(); ++b) {
      w |= static_cast<uint64_t>(static_cast<uint8_t>(message[i + b])) << (8 * b);
    }
    acc = Gf64Multiply(acc ^ w, key);
  }
  acc = Gf64Multiply(acc ^ static_cast<uint64_t>(message.size()), key);
  return acc;
}

}  // namespace qnet::qkd
