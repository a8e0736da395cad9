#include "emulator/scenarios/chain_monte_carlo.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace qnet::scenarios {
namespace {

// Trials up to and including the first success, by inversion.
uint64_t Geometric(std::mt19937_64& engine, double p) {
  if (p >= 1) return 1;
  double u = static_cast<double>(engine() >> 11) * 0x1.0p-53;  // [0, 1)
  u = 1 - u;                                                   // (0, 1]
  return 1 + static_cast<uint64_t>(std::floor(std::log(u) / std::log1p(-p)));
}

}  // namespace

ChainMonteCarloResult RunChainMonteCarlo(const ChainModel& model, uint64_t pairs, uint64_t seed) {
  std::mt19937_64 engine(seed);
  const size_t n = model.p.size();
  const ChainTiming& t = model.timing;
  const double d = t.hop_delay_s;
  auto decay = [&](double dt) {
    return std::isinf(model.depolar_s) ? 1.0 : std::exp(-dt / model.depolar_s);
  };
  double w_links = 1;
  for (double f : model.fidelity) w_links *= (4 * f - 1) / 3;

  ChainMonteCarloResult r;
  std::vector<double> created(n), herald(n);
  double now = 0, sum_f = 0, sum_f2 = 0, last_delivery = 0, sum_gap = 0, sum_gap2 = 0;
  while (r.delivered < pairs) {
    for (size_t i = 0; i < n; ++i) {
      const double start = now + static_cast<double>(i) * d + t.link_setup_s;
      created[i] = start + static_cast<double>(Geometric(engine, model.p[i]) - 1) * t.cycle_s;
      herald[i] = created[i] + t.herald_delay_s;
    }
    double complete = herald[0];
    double w = w_links;
    for (size_t j = 1; j < n; ++j) {  // intermediate node j joins links j-1 and j
      const double swap = std::max(herald[j - 1], herald[j]);
      complete = std::max(complete, swap + static_cast<double>(j) * d);
      w *= decay(swap - created[j - 1]) * decay(swap - created[j]);
    }
    const double oldest = *std::min_element(herald.begin(), herald.end());
    if (complete - oldest > model.cutoff_s) {
      ++r.discarded;
    } else {
      w *= decay(complete - created[0]) * decay(complete - created[n - 1]);
      const double f = (1 + 3 * w) / 4;
      sum_f += f;
      sum_f2 += f * f;
      const double gap = complete - last_delivery;
      sum_gap += gap;
      sum_gap2 += gap * gap;
      last_delivery = complete;
      ++r.delivered;
    }
    now = complete + t.round_gap_s;
  }
  const double k = static_cast<double>(r.delivered);
  r.fidelity_mean = sum_f / k;
  r.fidelity_se = std::sqrt(std::max(0.0, sum_f2 / k - r.fidelity_mean * r.fidelity_mean) / k);
  r.time_between_deliveries_s = sum_gap / k;
  r.time_between_deliveries_se =
      std::sqrt(std::max(0.0, sum_gap2 / k - (sum_gap / k) * (sum_gap / k)) / k);
  return r;
}

}  // namespace qnet::scenarios
