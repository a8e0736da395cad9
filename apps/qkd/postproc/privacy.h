// Privacy amplification and the secure key length (specs/qkd.md sections
// "Privacy amplification" QKD-A* and "Secure length" QKD-L*), and the
// verification hash (QKD-V*).
//
// Toeplitz hashing: the m x n Toeplitz matrix T over GF(2) defined by an
// (n + m - 1)-bit seed s, T[i][j] = s[i - j + n - 1], maps the n-bit key x
// to y[i] = XOR_j T[i][j] x[j]. ToeplitzHash computes it as one convolution
// (FFTW, double precision; exact because every coefficient is an integer
// below 2^53 and is rounded, QKD-A*), O((n + m) log(n + m)).
// ToeplitzHashDense is the O(n m) definition, for tests.
#ifndef QNET_APPS_QKD_POSTPROC_PRIVACY_H_
#define QNET_APPS_QKD_POSTPROC_PRIVACY_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "apps/qkd/postproc/bits.h"

namespace qnet::qkd {

// h(p) = -p log2 p - (1-p) log2 (1-p); h(0) = h(1) = 0; p clamped to [0, 1].
double BinaryEntropy(double p);

// INVALID_ARGUMENT unless seed.size() == key.size() + m - 1 and m <= key.size()
// (m = 0 gives an empty result), or when key.size() + m - 1 exceeds
// kToeplitzMaxSeedBits (ToeplitzHash only: the bound under which the double
// precision convolution is exact, QKD-A6). INTERNAL if a convolution value
// ever lies more than 0.25 from an integer (never seen within the bound).
inline constexpr size_t kToeplitzMaxSeedBits = size_t{1} << 24;
absl::StatusOr<BitVector> ToeplitzHash(const BitVector& key, const BitVector& seed, size_t m);
absl::StatusOr<BitVector> ToeplitzHashDense(const BitVector& key, const BitVector& seed, size_t m);

// The inputs of the finite-size secure length (Tomamichel, Lim, Gisin,
// Renner 2012; specs/qkd.md QKD-L*).
struct SecureLengthInput {
  uint64_t n = 0;            // key bits entering privacy amplification
  uint64_t k = 0;            // X test bits the phase error was estimated on
  double qber_x = 0.0;       // measured on the k test bits
  uint64_t leak_ec = 0;      // bits disclosed by error correction (Cascade parities)
  uint64_t leak_verify = 0;  // bits disclosed by verification (the hash length)
  double eps_sec = 1e-10;
  double eps_cor = 1e-15;
};
struct SecureLength {
  uint64_t bits = 0;         // max(0, floor(l)) (0 when k == 0)
  double mu = 0.0;           // statistical correction added to qber_x
  double phase_error = 0.0;  // qber_x + mu (capped at 0.5)
  double l = 0.0;            // the formula's value before flooring
};
SecureLength ComputeSecureLength(const SecureLengthInput& in);

// Verification hash (QKD-V*): the polynomial hash of apps/qkd/auth (GF(2^64),
// key `hash_key`) over the key's ToBytes() with its bit length; collision
// probability for two different n-bit keys at most ceil((n + 64) / 64) / 2^64.
uint64_t VerificationHash(const BitVector& key, uint64_t hash_key);

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_POSTPROC_PRIVACY_H_
