// What a node's network layer advertises about its links and memories,
// derived from the topology's calibration (stack/heralding_model), as real
// hardware would from its calibration data (specs/network.md, "Routing").
//
//  - Pair time of a link: AttemptCycle / SuccessProbability at the link's
//    reference alpha (REFERENCE.md "Waiting times": geometric attempts).
//  - Fidelity of a link: HeraldedFidelity at the same alpha.
//  - Reference alpha: the link's fixed alpha if it has one; otherwise the alpha
//    the link layer would choose for a CREATE asking kReferenceLinkFidelity
//    (ChooseAlpha), or, when the link cannot reach that, the alpha of its best
//    fidelity. Schemes without alpha (double-click, werner) use 0: werner
//    advertises cycle / p_success and its fidelity F.
//  - Memory time of a node: the shortest of t1, t2 and the depolarising time;
//    0 (infinite) when all are infinite.
#ifndef QNET_EMULATOR_NODE_LINK_METRICS_H_
#define QNET_EMULATOR_NODE_LINK_METRICS_H_

#include <string>

#include "network/router.h"
#include "stack/topology.h"

namespace qnet::node {

inline constexpr double kReferenceLinkFidelity = 0.9;

// The alpha the link's advertised figures are computed at (see above).
double ReferenceAlpha(const LinkSpec& link);

// The LocalLink `node` advertises for `link` (one of its links).
network::LocalLink LinkMetricsFor(const LinkSpec& link, const std::string& node);

// Shortest memory time of the hardware in seconds; 0 when infinite.
double MemoryTimeOf(const HardwareSpec& hardware);

network::RoutingMetric ToRoutingMetric(RoutingMetricSpec metric);

// The router options of `node` in `topology`: metric, memory time, memories.
network::RouterOptions RouterOptionsFor(const Topology& topology, const std::string& node);

}  // namespace qnet::node

#endif  // QNET_EMULATOR_NODE_LINK_METRICS_H_
