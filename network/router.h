// LinkStateRouter: the routing half of the network layer (specs/network.md,
// "Routing"). Neighbour liveness by NetHello keepalives, a link-state database
// filled by flooded LinkStateAdverts, shortest paths by Dijkstra over the
// topology's routing metric, and next hops for datagrams.
//
// Sans-I/O: inputs are the method calls below (run at the runtime's Now()),
// outputs go through the injected Output callbacks and timers. The
// NetworkLayer owns the router and forwards it the routing frames.
#ifndef QNET_NETWORK_ROUTER_H_
#define QNET_NETWORK_ROUTER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "network/network.h"
#include "qnet/network/v1/network.pb.h"
#include "stack/runtime.h"
#include "stack/trace.h"

namespace qnet::network {

enum class RoutingMetric { kHops, kPairTime, kFidelity };

// One link of this node, with what it advertises.
struct LocalLink {
  std::string link;
  std::string neighbour;
  double pair_time_s = 0.0;  // expected seconds per pair
  double fidelity = 1.0;     // best fidelity the link offers
};

struct RouterOptions {
  absl::Duration hello_interval = absl::Milliseconds(20);
  int dead_intervals = 4;                               // missed hellos before "down"
  // The dead interval is the larger of hello_interval x dead_intervals and
  // this (real-time backends set it so that a CPU stall does not reach it).
  absl::Duration min_dead_interval = absl::ZeroDuration();
  absl::Duration refresh_interval = absl::Seconds(10);  // periodic re-flood of the own advert
  RoutingMetric metric = RoutingMetric::kPairTime;
  double memory_time_s = 0.0;  // this node's shortest memory time; 0: infinite
  uint32_t memories = 0;
};

// Counters (additive to the pinned interface): stale adverts are normal
// flooding duplicates and only counted; malformed inputs are also traced.
struct RouterStats {
  uint64_t hellos_sent = 0;
  uint64_t hellos_received = 0;
  uint64_t hellos_dropped = 0;  // unknown link or wrong neighbour (traced)
  uint64_t adverts_sent = 0;
  uint64_t adverts_accepted = 0;    // newer than the stored one, stored and re-flooded
  uint64_t adverts_stale = 0;       // older or equal sequence: ignored
  uint64_t adverts_malformed = 0;   // rejected (traced)
  uint64_t route_computations = 0;  // Dijkstra runs
};

// Analytic swap-ASAP expectation of the time to one end-to-end pair over links
// with the given expected pair times (each an exponential waiting time):
// E[max_i T_i] (NET-R-30). Links with a time <= 0 are ignored.
double ExpectedMaxPairTime(const std::vector<double>& pair_times_s);

// Cost of one link under a metric; +infinity when the link is unusable
// (NET-R-25..27).
double LinkCost(RoutingMetric metric, double pair_time_s, double fidelity);

class LinkStateRouter {
 public:
  struct Output {
    // Send a routing frame (NetHello or LinkStateAdvert) to a neighbour.
    std::function<void(const std::string& neighbour, const v1::NetworkFrame& frame)> send;
    // A local link went down or came (back) up.
    std::function<void(const std::string& link, bool up)> on_link_change;
    // The routes changed (after any database change that altered them).
    std::function<void()> on_routes_changed;
  };

  LinkStateRouter(std::string node, std::vector<LocalLink> links, Runtime* runtime, Tracer* tracer,
                  Output output, RouterOptions options);
  ~LinkStateRouter();

  // Emulated time 0: send the first hellos and advert, arm the timers. Links
  // start "up" (the topology says they exist) until a dead interval passes
  // without a hello or the neighbour says it no longer hears us (NET-R-2a).
  void Start();

  void OnHello(const std::string& neighbour, const v1::NetHello& hello);
  void OnAdvert(const std::string& neighbour, const v1::LinkStateAdvert& advert);
  // The composition knows a link failed (connection lost, cut): down at once.
  void SetLinkDown(const std::string& link);

  bool LinkUp(const std::string& link) const;
  // Shortest path to `destination` over links both ends advertise as up.
  std::optional<Route> RouteTo(const std::string& destination) const;
  std::optional<std::string> NextHop(const std::string& destination) const;
  // The newest advert of `origin`, if any (memory times for cutoffs).
  const v1::LinkStateAdvert* AdvertOf(const std::string& origin) const;
  const RouterStats& stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qnet::network

#endif  // QNET_NETWORK_ROUTER_H_
