#include "emulator/scenarios/analytic.h"

#include <cmath>
#include <cstdint>

namespace qnet::scenarios {

double WernerParameter(double fidelity) { return (4 * fidelity - 1) / 3; }
double WernerFidelity(double w) { return (1 + 3 * w) / 4; }

double ChainWernerFidelity(const std::vector<double>& link_fidelities) {
  double w = 1;
  for (double f : link_fidelities) w *= WernerParameter(f);
  return WernerFidelity(w);
}

double ExpectedMaxAttempts(const std::vector<double>& p) {
  const int n = static_cast<int>(p.size());
  double sum = 0;
  for (uint64_t subset = 1; subset < (uint64_t{1} << n); ++subset) {
    double all_fail = 1;
    int size = 0;
    for (int i = 0; i < n; ++i) {
      if (subset & (uint64_t{1} << i)) {
        all_fail *= 1 - p[i];
        ++size;
      }
    }
    // E[min over S] = 1 / P(some link of S succeeds in an attempt).
    sum += (size % 2 == 1 ? 1.0 : -1.0) / (1 - all_fail);
  }
  return sum;
}

double ExpectedMaxAttemptsEqual(int n, double p) {
  double sum = 0;
  double binomial = 1;  // C(n, k)
  for (int k = 1; k <= n; ++k) {
    binomial = binomial * (n - k + 1) / k;
    sum += (k % 2 == 1 ? 1.0 : -1.0) * binomial / (1 - std::pow(1 - p, k));
  }
  return sum;
}

Moments MaxAttemptsMoments(const std::vector<double>& p) {
  double mean = 0, second = 0;
  for (uint64_t k = 1;; ++k) {
    double all_done = 1;  // P(every N_i <= k - 1)
    for (double pi : p) all_done *= 1 - std::pow(1 - pi, static_cast<double>(k - 1));
    const double tail = 1 - all_done;  // P(M >= k)
    mean += tail;
    second += (2.0 * static_cast<double>(k) - 1) * tail;
    if (k > 1 && tail * static_cast<double>(k) * static_cast<double>(k) < 1e-15) break;
  }
  return Moments{mean, second - mean * mean};
}

}  // namespace qnet::scenarios
