#include "emulator/scenarios/chain_monte_carlo.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <queue>
#include <random>
#include <utility>

namespace qnet::scenarios {
namespace {

// Trials up to and including the first success, by inversion.
uint64_t Geometric(std::mt19937_64& engine, double p) {
  if (p >= 1) return 1;
  double u = static_cast<double>(engine() >> 11) * 0x1.0p-53;  // [0, 1)
  u = 1 - u;                                                   // (0, 1]
  return 1 + static_cast<uint64_t>(std::floor(std::log(u) / std::log1p(-p)));
}

// A pair spanning nodes left .. right: its Werner parameter so far (links and
// measured qubits), the creation times of its two end qubits and the earliest
// herald of its link pairs.
struct Span {
  size_t left = 0, right = 0;
  double w = 1;
  double left_created = 0, right_created = 0;
  double oldest_herald = 0;
};

class Chain {
 public:
  Chain(const ChainModel& m, uint64_t seed)
      : m_(m), n_(m.p.size()), engine_(seed), down_(n_ + 1), up_(n_ + 1), busy_(n_, false) {}

  ChainMonteCarloResult Run(uint64_t pairs) {
    for (size_t i = 0; i < n_; ++i) TryStart(i, 0);
    double last = 0, sum_f = 0, sum_f2 = 0, sum_gap = 0, sum_gap2 = 0;
    while (r_.delivered < pairs && !heralds_.empty()) {
      const auto [t, link] = heralds_.top();
      heralds_.pop();
      busy_[link] = false;
      Span s;
      s.left = link;
      s.right = link + 1;
      s.w = (4 * m_.fidelity[link] - 1) / 3;
      s.left_created = s.right_created = t - m_.cycle_s;
      s.oldest_herald = t;
      down_[link] = up_[link + 1] = s;
      Swaps(t);
      // A complete end-to-end pair frees the ends' memories.
      if (down_[0] && down_[0]->right == n_) {
        const Span e = *down_[0];
        down_[0].reset();
        up_[n_].reset();
        if (t - e.oldest_herald > m_.cutoff_s) {
          ++r_.discarded;
        } else {
          const double w = e.w * Decay(t - e.left_created) * Decay(t - e.right_created);
          const double f = (1 + 3 * w) / 4;
          sum_f += f;
          sum_f2 += f * f;
          if (r_.delivered > 0) {
            sum_gap += t - last;
            sum_gap2 += (t - last) * (t - last);
          }
          last = t;
          ++r_.delivered;
        }
        TryStart(0, t);
        TryStart(n_ - 1, t);
      }
      TryStart(link, t);
    }
    const double k = static_cast<double>(std::max<uint64_t>(r_.delivered, 1));
    r_.fidelity_mean = sum_f / k;
    r_.fidelity_se = std::sqrt(std::max(0.0, sum_f2 / k - r_.fidelity_mean * r_.fidelity_mean) / k);
    const double g = static_cast<double>(std::max<uint64_t>(r_.delivered, 2) - 1);
    r_.time_between_deliveries_s = sum_gap / g;
    r_.time_between_deliveries_se =
        std::sqrt(std::max(0.0, sum_gap2 / g - (sum_gap / g) * (sum_gap / g)) / g);
    r_.elapsed_s = last;
    return r_;
  }

 private:
  double Decay(double dt) const {
    return std::isinf(m_.depolar_s) ? 1.0 : std::exp(-dt / m_.depolar_s);
  }

  // Link i generates when node i's downstream and node i + 1's upstream
  // memories are free.
  void TryStart(size_t i, double now) {
    if (i >= n_ || busy_[i] || down_[i] || up_[i + 1]) return;
    busy_[i] = true;
    const double herald =
        now + static_cast<double>(Geometric(engine_, m_.p[i])) * m_.cycle_s;
    heralds_.push({herald, i});
  }

  // Every intermediate holding a pair on each side swaps at once.
  void Swaps(double t) {
    for (bool again = true; again;) {
      again = false;
      for (size_t j = 1; j < n_; ++j) {
        if (!up_[j] || !down_[j]) continue;
        const Span a = *up_[j], b = *down_[j];
        Span s;
        s.left = a.left;
        s.right = b.right;
        s.w = a.w * b.w * Decay(t - a.right_created) * Decay(t - b.left_created);
        s.left_created = a.left_created;
        s.right_created = b.right_created;
        s.oldest_herald = std::min(a.oldest_herald, b.oldest_herald);
        up_[j].reset();
        down_[j].reset();
        down_[s.left] = up_[s.right] = s;
        TryStart(j - 1, t);
        TryStart(j, t);
        again = true;
      }
    }
  }

  const ChainModel& m_;
  const size_t n_;
  std::mt19937_64 engine_;
  std::vector<std::optional<Span>> down_, up_;  // per node: its memory on each side
  std::vector<bool> busy_;                      // per link: generating
  using Herald = std::pair<double, size_t>;     // (time, link)
  std::priority_queue<Herald, std::vector<Herald>, std::greater<Herald>> heralds_;
  ChainMonteCarloResult r_;
};

}  // namespace

ChainMonteCarloResult RunChainMonteCarlo(const ChainModel& model, uint64_t pairs, uint64_t seed) {
  return Chain(model, seed).Run(pairs);
}

}  // namespace qnet::scenarios
