// Polynomial evaluation hash over GF(2^64) (specs/qkd.md QKD-U*): the
// almost-XOR-universal family behind the Wegman-Carter tags of
// authenticator.h and the verification hash of postproc/privacy.h.
//
// Field: GF(2)[x] / (x^64 + x^4 + x^3 + x + 1). The message is cut into
// 64-bit little-endian words m_1 .. m_L (the last zero-padded), followed by a
// final word holding the message length in bytes; the hash is
//   H_k(m) = m_1 k^(L+1) + m_2 k^L + ... + m_L k^2 + len k   (Horner).
// Two different messages of at most L words collide for at most L + 1 keys,
// so for a uniform key the probability is at most (L + 1) / 2^64.
#ifndef QNET_APPS_QKD_AUTH_POLY_HASH_H_
#define QNET_APPS_QKD_AUTH_POLY_HASH_H_

#include <cstdint>
#include <string_view>

namespace qnet::qkd {

// Product in GF(2^64) with the modulus above.
uint64_t Gf64Multiply(uint64_t a, uint64_t b);

uint64_t PolyHash64(uint64_t key, std::string_view message);

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_AUTH_POLY_HASH_H_
