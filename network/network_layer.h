// NetworkLayer: one node's network layer (specs/network.md). Implements
// NetworkService for the transport above, uses the node's link ends
// (link::LinkService) and device (PhysicalService) below, and talks to its
// neighbours' network layers through NetworkFrames.
//
// Composition (emulator/node): the node builds one NetworkLayer after its
// Egps, and routes to it
//  - every wire frame whose body is `network` (OnFrame),
//  - every link OK / ERR whose purpose id is a network label (IsNetworkPurpose),
//  - every BellMeasureResult (the network layer is the only user of
//    BellMeasure apart from the transport's app operations, which use request
//    ids the composition keeps apart),
//  - neighbour connection loss (OnNeighbourDown).
//
// Sans-I/O: inputs are the method calls, run at the runtime's Now(); outputs
// go through the injected interfaces. Single-threaded.
#ifndef QNET_NETWORK_NETWORK_LAYER_H_
#define QNET_NETWORK_NETWORK_LAYER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "link/link.h"
#include "link/memory_pool.h"
#include "network/network.h"
#include "network/router.h"
#include "qnet/link/v1/link.pb.h"
#include "qnet/network/v1/network.pb.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/runtime.h"
#include "stack/trace.h"

namespace qnet::network {

// Link-layer purpose ids at or above this value belong to network circuits
// (labels); lower ones to other link-layer users (the topology's <request>s).
inline constexpr uint32_t kFirstNetworkLabel = 0x40000000u;
inline bool IsNetworkPurpose(uint32_t purpose_id) { return purpose_id >= kFirstNetworkLabel; }

// One link end of this node, as the network layer sees it.
struct NetworkLink {
  LocalLink local;  // name, neighbour, advertised metrics
  link::LinkService* service = nullptr;
};

struct NetworkOptions {
  RouterOptions router;
  uint32_t link_priority = 0;                           // priority of circuit CREATEs (0 highest)
  absl::Duration create_retry = absl::Milliseconds(1);  // pause before re-issuing a failed CREATE
  absl::Duration setup_timeout = absl::Seconds(2);      // head: no Accept/Refuse by then -> down
  // How long a Deliver (at the tail) or a Track (at an intermediate or the
  // head) waits for its pair's OK before it is refused (NET-C-38a,
  // NET-C-30a; only real-time backends, whose herald and frame delivery
  // jitter, ever need it).
  absl::Duration deliver_wait = absl::Milliseconds(50);
};

struct NetworkStats {
  uint64_t circuits_opened = 0;   // at this head
  uint64_t circuits_transit = 0;  // installed here as an intermediate or tail
  uint64_t swaps = 0;
  uint64_t pairs_completed = 0;  // head: end-to-end pairs delivered
  uint64_t pairs_discarded = 0;  // head: by cutoff, or lost on the way
  uint64_t pairs_delivered = 0;   // OnPair calls at this node
  uint64_t pairs_expired = 0;
  uint64_t drops = 0;  // refused inputs (each traced)
};

class NetworkLayer : public NetworkService {
 public:
  // Sends a network frame to a neighbour (the composition wraps it in a
  // wire Frame and applies the link's delay).
  using SendFn = std::function<void(const std::string& neighbour, const v1::NetworkFrame& frame)>;

  NetworkLayer(std::string node, std::vector<NetworkLink> links, Runtime* runtime,
               PhysicalService* physical, link::MemoryPool* memory, SendFn send,
               NetworkListener* listener, Tracer* tracer, Rng rng, NetworkOptions options);
  ~NetworkLayer() override;

  void Start();

  // Inputs.
  void OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame);
  void OnLinkOk(const link::v1::Ok& ok);
  void OnLinkErr(const link::v1::Err& err);
  void OnBellMeasureResult(const physical::v1::BellMeasureResult& result);
  void OnNeighbourDown(const std::string& neighbour);

  // NetworkService.
  absl::StatusOr<CircuitKey> OpenCircuit(const CircuitRequest& request) override;
  void CloseCircuit(const CircuitKey& key, const std::string& detail) override;
  absl::Status SendDatagram(const std::string& destination, std::string payload) override;
  std::optional<Route> RouteTo(const std::string& destination) const override;

  // BellMeasure request ids this layer uses are odd; the composition gives
  // even ids to other users so results can be routed without a table.
  static bool OwnsRequestId(uint64_t request_id) { return request_id % 2 == 1; }

  const NetworkStats& stats() const;
  const LinkStateRouter& router() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qnet::network

#endif  // QNET_NETWORK_NETWORK_LAYER_H_
