// Running mean and sample standard deviation for the results module.
#ifndef QNET_EMULATOR_RESULTS_STATS_H_
#define QNET_EMULATOR_RESULTS_STATS_H_

#include <cmath>
#include <cstdint>

namespace qnet::results {

// Welford's running mean and variance, in insertion order (deterministic).
class Stats {
 public:
  void Add(double x) {
    ++n_;
    const double d = x - mean_;
    mean_ += d / static_cast<double>(n_);
    m2_ += d * (x - mean_);
  }
  uint64_t n() const { return n_; }
  double mean() const { return n_ > 0 ? mean_ : 0.0; }
  double sd() const { return n_ > 1 ? std::sqrt(m2_ / static_cast<double>(n_ - 1)) : 0.0; }
  // Standard error of the mean; 0 with fewer than two samples.
  double stderr_mean() const { return n_ > 1 ? sd() / std::sqrt(static_cast<double>(n_)) : 0.0; }

 private:
  uint64_t n_ = 0;
  double mean_ = 0;
  double m2_ = 0;
};

}  // namespace qnet::results

#endif  // QNET_EMULATOR_RESULTS_STATS_H_
