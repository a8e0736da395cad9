// Secure length, Toeplitz privacy amplification and the verification hash
// (specs/qkd.md sections 5 and 6). See privacy.h for the contract.
#include "apps/qkd/postproc/privacy.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "apps/qkd/auth/poly_hash.h"

namespace qnet::qkd {
namespace {

// FFTW's planner is not thread-safe (fftw_execute is).
std::mutex& PlannerMutex() {
  static std::mutex m;
  return m;
}

struct FftwFree {
  void operator()(void* p) const { fftw_free(p); }
};
template <typename T>
using FftwBuffer = std::unique_ptr<T[], FftwFree>;

template <typename T>
FftwBuffer<T> Allocate(size_t count) {
  return FftwBuffer<T>(static_cast<T*>(fftw_malloc(sizeof(T) * count)));
}

// The smallest 2^a 3^b 5^c 7^d >= n (QKD-A5: FFTW is fast on such sizes).
size_t SmoothSize(size_t n) {
  size_t best = 1;
  while (best < n) best *= 2;
  for (size_t p7 = 1; p7 < 2 * n; p7 *= 7) {
    for (size_t p5 = p7; p5 < 2 * n; p5 *= 5) {
      for (size_t p3 = p5; p3 < 2 * n; p3 *= 3) {
        size_t v = p3;
        while (v < n) v *= 2;
        best = std::min(best, v);
      }
    }
  }
  return best;
}

// 64 bits of `v` starting at bit `pos` (bits past the end read as 0).
uint64_t Window(const BitVector& v, size_t pos) {
  const auto& w = v.words();
  const size_t word = pos >> 6;
  const unsigned shift = pos & 63;
  if (word >= w.size()) return 0;
  uint64_t out = w[word] >> shift;
  if (shift != 0 && word + 1 < w.size()) out |= w[word + 1] << (64 - shift);
  return out;
}

absl::Status CheckToeplitz(const BitVector& key, const BitVector& seed, size_t m) {
  if (m > key.size() || seed.size() + 1 != key.size() + m) {
    return absl::InvalidArgumentError(absl::StrCat("toeplitz: ", key.size(), "-bit key, ",
                                                   seed.size(), "-bit seed and ", m,
                                                   " output bits (need seed = key + m - 1, "
                                                   "m <= key)"));
  }
  return absl::OkStatus();
}

}  // namespace

double BinaryEntropy(double p) {
  if (!(p > 0.0) || p >= 1.0) return 0.0;
  return -p * std::log2(p) - (1.0 - p) * std::log2(1.0 - p);
}

absl::StatusOr<BitVector> ToeplitzHashDense(const BitVector& key, const BitVector& seed, size_t m) {
  if (auto st = CheckToeplitz(key, seed, m); !st.ok()) return st;
  BitVector out(m);
  if (m == 0) return out;
  // Row i of T read along j is s[i + n - 1 - j]: with r = reverse(s) it is
  // r[m - 1 - i + j], a contiguous window of r aligned with the key's bits.
  const size_t len = seed.size();
  BitVector r(len);
  for (size_t t = 0; t < len; ++t) r.Set(t, seed.Get(len - 1 - t));
  const auto& x = key.words();
  for (size_t i = 0; i < m; ++i) {
    const size_t start = m - 1 - i;
    uint64_t acc = 0;
    for (size_t w = 0; w < x.size(); ++w) acc ^= Window(r, start + 64 * w) & x[w];
    out.Set(i, std::popcount(acc) & 1);
  }
  return out;
}

absl::StatusOr<BitVector> ToeplitzHash(const BitVector& key, const BitVector& seed, size_t m) {
  if (auto st = CheckToeplitz(key, seed, m); !st.ok()) return st;
  const size_t n = key.size();
  if (m == 0) return BitVector(0);
  if (n + m - 1 > kToeplitzMaxSeedBits) {
    return absl::InvalidArgumentError(absl::StrCat("toeplitz: ", n + m - 1, "-bit seed above the ",
                                                   kToeplitzMaxSeedBits,
                                                   "-bit bound of exact FFT hashing (QKD-A6)"));
  }
  // y[i] = (s * x)[i + n - 1] mod 2 (linear convolution). A cyclic
  // convolution of size N >= n + m - 1 gives these indices without aliasing:
  // the linear result spans [0, 2n + m - 3] and t + N > 2n + m - 3 for every
  // t >= n - 1.
  const size_t big = SmoothSize(n + m - 1);
  const size_t half = big / 2 + 1;
  auto xs = Allocate<double>(big);
  auto ss = Allocate<double>(big);
  auto xf = Allocate<fftw_complex>(half);
  auto sf = Allocate<fftw_complex>(half);
  if (!xs || !ss || !xf || !sf) return absl::ResourceExhaustedError("toeplitz: out of memory");
  fftw_plan fx, fs, back;
  {
    std::lock_guard<std::mutex> lock(PlannerMutex());
    const int size = static_cast<int>(big);
    fx = fftw_plan_dft_r2c_1d(size, xs.get(), xf.get(), FFTW_ESTIMATE);
    fs = fftw_plan_dft_r2c_1d(size, ss.get(), sf.get(), FFTW_ESTIMATE);
    back = fftw_plan_dft_c2r_1d(size, xf.get(), xs.get(), FFTW_ESTIMATE);
  }
  std::memset(xs.get(), 0, sizeof(double) * big);
  std::memset(ss.get(), 0, sizeof(double) * big);
  for (size_t j = 0; j < n; ++j) xs[j] = key.Get(j) ? 1.0 : 0.0;
  for (size_t t = 0; t < seed.size(); ++t) ss[t] = seed.Get(t) ? 1.0 : 0.0;
  fftw_execute(fx);
  fftw_execute(fs);
  for (size_t f = 0; f < half; ++f) {
    const double re = xf[f][0] * sf[f][0] - xf[f][1] * sf[f][1];
    const double im = xf[f][0] * sf[f][1] + xf[f][1] * sf[f][0];
    xf[f][0] = re;
    xf[f][1] = im;
  }
  fftw_execute(back);
  {
    std::lock_guard<std::mutex> lock(PlannerMutex());
    fftw_destroy_plan(fx);
    fftw_destroy_plan(fs);
    fftw_destroy_plan(back);
  }
  BitVector out(m);
  const double scale = 1.0 / static_cast<double>(big);
  double worst = 0.0;
  for (size_t i = 0; i < m; ++i) {
    const double c = xs[i + n - 1] * scale;
    const double rounded = std::nearbyint(c);
    worst = std::max(worst, std::fabs(c - rounded));
    out.Set(i, (static_cast<int64_t>(rounded) & 1) != 0);
  }
  // A rounding error this large would mean a wrong bit could have been taken.
  if (worst > 0.25) {
    return absl::InternalError(absl::StrCat("toeplitz: FFT rounding error ", worst));
  }
  return out;
}

SecureLength ComputeSecureLength(const SecureLengthInput& in) {
  SecureLength out;
  if (in.n == 0 || in.k == 0 || !(in.eps_sec > 0) || !(in.eps_cor > 0)) return out;
  const double n = static_cast<double>(in.n);
  const double k = static_cast<double>(in.k);
  out.mu = std::sqrt((n + k) / (n * k) * (k + 1) / k * std::log(2.0 / in.eps_sec));
  out.phase_error = std::min(0.5, std::max(0.0, in.qber_x) + out.mu);
  out.l = n * (1.0 - BinaryEntropy(out.phase_error)) - static_cast<double>(in.leak_ec) -
          static_cast<double>(in.leak_verify) -
          std::log2(2.0 / (in.eps_sec * in.eps_sec * in.eps_cor));
  out.bits = out.l > 0 ? static_cast<uint64_t>(std::floor(out.l)) : 0;
  return out;
}

uint64_t VerificationHash(const BitVector& key, uint64_t hash_key) {
  std::string message(8, '\0');
  const uint64_t bits = key.size();
  for (int b = 0; b < 8; ++b) message[b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  message += key.ToBytes();
  return PolyHash64(hash_key, message);
}

}  // namespace qnet::qkd
