// The topology model: what a topology file describes (specs/topology.md). The
// XML loader (topology_loader.h) fills it; qworld, qnode, the simulator and the
// launcher all read the same model.
#ifndef QNET_STACK_TOPOLOGY_H_
#define QNET_STACK_TOPOLOGY_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace qnet {

inline constexpr double kInfiniteSeconds = std::numeric_limits<double>::infinity();
// Light in fibre, c / 1.45 (REFERENCE.md, "Fibre and timing").
inline constexpr double kFibreKmPerSecond = 206753.0;

struct HardwareSpec {
  std::string name;
  uint32_t memories = 4;
  double t1_s = kInfiniteSeconds;       // amplitude damping
  double t2_s = kInfiniteSeconds;       // total dephasing time, <= 2 t1
  double depolar_s = kInfiniteSeconds;  // depolarising time constant
  double readout_error = 0.0;           // probability a measurement result is flipped
  int line = 0;
};

enum class HeraldingScheme { kSingleClick, kDoubleClick, kWerner };

struct LinkSpec {
  std::string name;
  std::string a, b;
  double length_km = 0.0;
  double loss_db_km = 0.2;
  HeraldingScheme scheme = HeraldingScheme::kSingleClick;
  double attempt_s = 10e-6;       // reset plus emission time of one attempt
  double efficiency = 1.0;        // per-side detection probability before fibre loss
  double dark_count_prob = 0.0;   // per detector per detection window
  double visibility = 1.0;
  std::optional<double> alpha;    // fixed bright-state population; absent: chosen per request
  double p_success = 0.0;         // werner
  double fidelity = 1.0;          // werner
  double midpoint_fraction = 0.5; // position of the heralding station from a (0..1)
  std::optional<double> classical_delay_s;  // one-way; absent: length / fibre speed
  double memory_poll_s = 1e-3;    // how long a link waits before retrying when a memory is full
  // An attacker on the link (specs/physical.md PHYS-E*, TOPO-37): measures
  // the b-side qubit of a fraction of the link's pairs in a random Z or X
  // basis and re-prepares the outcome's eigenstate.
  enum class Eavesdropper { kNone, kInterceptResend };
  Eavesdropper eavesdropper = Eavesdropper::kNone;
  double intercept_fraction = 1.0;
  int line = 0;

  double arm_km(bool side_a) const {
    return length_km * (side_a ? midpoint_fraction : 1.0 - midpoint_fraction);
  }
  // One-way classical delay between the two nodes.
  double delay_s() const {
    return classical_delay_s ? *classical_delay_s : length_km / kFibreKmPerSecond;
  }
};

struct NodeSpec {
  std::string name;
  std::string hardware;
  int line = 0;
};

enum class RequestKind { kKeep, kMeasure };
enum class BasisSet { kZ, kX, kY, kXZ, kXYZ };

// A link-layer workload item: node `from` issues a CREATE towards `to`.
struct RequestSpec {
  std::string from, to;
  uint32_t pairs = 1;
  RequestKind kind = RequestKind::kKeep;
  double min_fidelity = 0.0;
  BasisSet basis = BasisSet::kXZ;
  double max_time_s = 0.0;   // 0: no limit
  uint32_t priority = 0;
  uint32_t purpose_id = 0;
  double start_s = 0.0;      // emulated time at which the CREATE is issued
  double hold_s = 0.0;       // keep: how long the consumer holds each pair before freeing it
  int line = 0;
};

// An end-to-end workload item (issue 3): node `from` opens a transport
// connection to `to` and consumes its pairs (keep: holds each for hold-s then
// releases it; measure: the transport measures in `basis`).
struct ConnectionSpec {
  std::string name;            // "from-to#k" unless given
  std::string from, to;
  uint32_t port = 0;           // 0: assigned (first free from 1000 at `to`)
  uint32_t pairs = 0;          // 0: until the run ends
  RequestKind kind = RequestKind::kKeep;
  double min_fidelity = 0.0;
  BasisSet basis = BasisSet::kXZ;
  double min_rate_hz = 0.0;
  double cutoff_s = 0.0;       // 0: the network layer's default
  uint32_t window = 1;
  double start_s = 0.0;
  double hold_s = 0.0;
  int line = 0;
};

// An application pair (issue 3): `kind` runs at `node` (the initiator) and its
// counterpart at `peer`; other attributes are passed to both as flags.
struct AppSpec {
  std::string name;            // "<kind>-<node>-<peer>" unless given
  std::string kind;            // teleport | chsh | ...
  std::string node, peer;
  uint32_t port = 0;           // 0: assigned
  uint32_t pairs = 100;
  double min_fidelity = 0.0;
  double start_s = 0.0;
  std::vector<std::pair<std::string, std::string>> params;  // any other attributes
  int line = 0;
};

// A secure application entity (ETSI GS QKD 014) at a node: it fetches keys
// from that node's KME, authenticated by a client certificate whose CN is
// `name` (TOPO-38, specs/qkd.md KME-*).
struct SaeSpec {
  std::string name;
  std::string node;
  int line = 0;
};

enum class EventKind { kCutLink, kFailNode };

// A failure injected at emulated time `at_s`.
struct EventSpec {
  double at_s = 0.0;
  EventKind kind = EventKind::kCutLink;
  std::string target;          // link or node name
  int line = 0;
};

enum class RoutingMetricSpec { kHops, kPairTime, kFidelity };

struct Topology {
  std::string source;  // file it was read from
  std::string name = "qnet";
  uint64_t seed = 1;
  double duration_s = 10.0;    // emulated seconds
  double time_dilation = 1.0;  // wall seconds per emulated second
  std::vector<HardwareSpec> hardware;
  std::vector<NodeSpec> nodes;
  std::vector<LinkSpec> links;
  std::vector<RequestSpec> requests;
  std::vector<ConnectionSpec> connections;
  std::vector<AppSpec> apps;
  std::vector<EventSpec> events;
  std::vector<SaeSpec> saes;
  RoutingMetricSpec routing_metric = RoutingMetricSpec::kPairTime;

  const NodeSpec* FindNode(const std::string& name) const;
  const LinkSpec* FindLink(const std::string& name) const;
  // The link joining two nodes (either order), if any.
  const LinkSpec* LinkBetween(const std::string& x, const std::string& y) const;
  const HardwareSpec* HardwareOf(const std::string& node) const;
};

}  // namespace qnet

#endif  // QNET_STACK_TOPOLOGY_H_
