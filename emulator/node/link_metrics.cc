#include "emulator/node/link_metrics.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/time/time.h"
#include "stack/heralding_model.h"

namespace qnet::node {

double ReferenceAlpha(const LinkSpec& link) {
  if (link.scheme != HeraldingScheme::kSingleClick) return 0.0;
  if (link.alpha) return *link.alpha;
  if (std::optional<double> a = ChooseAlpha(link, kReferenceLinkFidelity)) return *a;
  // Cannot reach the reference fidelity: advertise the link's best one.
  double best_alpha = 0.5, best_f = -1;
  for (int i = 1; i <= 500; ++i) {
    const double a = 0.5 * i / 500.0;
    const double f = HeraldedFidelity(link, a);
    if (f > best_f) best_f = f, best_alpha = a;
  }
  return ChooseAlpha(link, best_f).value_or(best_alpha);
}

network::LocalLink LinkMetricsFor(const LinkSpec& link, const std::string& node) {
  network::LocalLink local;
  local.link = link.name;
  local.neighbour = link.a == node ? link.b : link.a;
  const double alpha = ReferenceAlpha(link);
  const double p = SuccessProbability(link, alpha);
  const double cycle_s = absl::ToDoubleSeconds(AttemptCycle(link));
  local.pair_time_s = p > 0 ? cycle_s / p : kInfiniteSeconds;
  local.fidelity = HeraldedFidelity(link, alpha);
  return local;
}

double MemoryTimeOf(const HardwareSpec& hardware) {
  const double t = std::min({hardware.t1_s, hardware.t2_s, hardware.depolar_s});
  return std::isfinite(t) ? t : 0.0;
}

network::RoutingMetric ToRoutingMetric(RoutingMetricSpec metric) {
  switch (metric) {
    case RoutingMetricSpec::kHops:
      return network::RoutingMetric::kHops;
    case RoutingMetricSpec::kPairTime:
      return network::RoutingMetric::kPairTime;
    case RoutingMetricSpec::kFidelity:
      return network::RoutingMetric::kFidelity;
  }
  return network::RoutingMetric::kPairTime;
}

network::RouterOptions RouterOptionsFor(const Topology& topology, const std::string& node) {
  network::RouterOptions options;
  options.metric = ToRoutingMetric(topology.routing_metric);
  if (const HardwareSpec* hw = topology.HardwareOf(node)) {
    options.memory_time_s = MemoryTimeOf(*hw);
    options.memories = hw->memories;
  }
  return options;
}

}  // namespace qnet::node
