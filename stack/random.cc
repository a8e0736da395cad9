#include "stack/random.h"

#include <cmath>
#include <limits>

namespace qnet {

uint64_t Rng::Below(uint64_t n) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return x % n;
}

uint64_t Rng::Geometric(double p) {
  if (p >= 1.0) return 1;
  if (p <= 0.0) return std::numeric_limits<uint64_t>::max();
  // P(N > k) = (1-p)^k; N = 1 + floor(ln U / ln(1-p)) with U in (0, 1].
  const double u = 1.0 - Uniform();
  const double n = std::floor(std::log(u) / std::log1p(-p));
  if (n >= 9.0e18) return std::numeric_limits<uint64_t>::max();
  return 1 + static_cast<uint64_t>(n);
}

Rng Rng::Fork(std::string_view stream) const {
  // FNV-1a of the stream name, mixed with the parent seed by splitmix64.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : stream) {
    h ^= c;
    h *= 1099511628211ull;
  }
  uint64_t z = seed_ ^ h;
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return Rng(z);
}

}  // namespace qnet
