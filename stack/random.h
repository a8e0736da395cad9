// The only source of randomness a layer may use: a seeded generator handed to it
// at composition time. The algorithm (std::mt19937_64, whose output the C++
// standard fixes) and the distributions below are written out so that a seed
// gives the same numbers with every standard library.
#ifndef QNET_STACK_RANDOM_H_
#define QNET_STACK_RANDOM_H_

#include <cstdint>
#include <random>
#include <string_view>

namespace qnet {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed), seed_(seed) {}

  uint64_t Next() { return engine_(); }
  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n > 0, without modulo bias (rejection sampling).
  uint64_t Below(uint64_t n);
  bool Bernoulli(double p) { return Uniform() < p; }
  // Number of Bernoulli(p) trials up to and including the first success (>= 1),
  // by inversion; p in (0, 1].
  uint64_t Geometric(double p);
  // An independent generator for a named sub-stream (e.g. one per node), so that
  // adding a consumer does not shift the numbers every other consumer sees.
  Rng Fork(std::string_view stream) const;

  uint64_t seed() const { return seed_; }

 private:
  std::mt19937_64 engine_;
  uint64_t seed_;
};

}  // namespace qnet

#endif  // QNET_STACK_RANDOM_H_
