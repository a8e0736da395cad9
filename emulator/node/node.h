// Node: the one place where a node's stack is composed (CONVENTIONS: wiring at
// composition time). It builds one Egp per link end of this node, one
// NetworkLayer and one TransportLayer, shares the node's memory slots among
// them, routes neighbour frames and device indications to the right layer
// instance, and drives the workloads of the topology file: <request> elements
// (link layer, from == this node) and <connection> elements (transport, either
// end). The qnode daemon and the sim backend both build a Node; only its Env
// differs.
//
// Routing of inputs:
//  - wire frames: body `link` -> the Egp of that link; body `network` ->
//    NetworkLayer::OnFrame.
//  - heralds -> the Egp of their link; physical errors naming a link -> that
//    Egp.
//  - BellMeasureResult: odd request ids -> network layer, even -> transport;
//    MeasureResult -> transport.
//  - link OK: purpose ids of network circuits (network::IsNetworkPurpose) ->
//    network layer, others -> the <request> workload. ERR carries no purpose:
//    it goes to the network layer when its (link, origin, create id) is one
//    the network layer issued (origin) or saw an OK for (partner), or when its
//    origin is another node that has no <request> towards this one; else to
//    the workload.
//  - OnLinkDown (a cut link or failed node, reported by the backend) ->
//    NetworkLayer::OnNeighbourDown.
#ifndef QNET_EMULATOR_NODE_NODE_H_
#define QNET_EMULATOR_NODE_NODE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "qnet/wire/v1/frame.pb.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/runtime.h"
#include "stack/topology.h"
#include "stack/trace.h"
#include "transport/transport.h"

namespace qnet::network {
struct NetworkStats;
}

namespace qnet::node {

struct ConnectionCounts;

class Node : public PhysicalListener {
 public:
  struct Env {
    Runtime* runtime = nullptr;
    PhysicalService* physical = nullptr;
    Tracer* tracer = nullptr;
    // Sends a frame to a neighbour over the classical channel (the caller
    // applies the link's propagation delay).
    std::function<void(const std::string& neighbour, const wire::v1::Frame& frame)> send;
    // Extra scheduling margin for the link layer (LINK-20): zero in virtual
    // time; real-time backends set it above their frame-delivery jitter.
    absl::Duration link_margin = absl::ZeroDuration();
    // Floors of the router's hello and dead intervals (NET-R-6a): zero in
    // virtual time; real-time backends set them so that CPU stalls of a
    // loaded host do not take links down.
    absl::Duration min_hello_interval = absl::ZeroDuration();
    absl::Duration min_dead_interval = absl::ZeroDuration();
  };

  Node(const Topology& topology, std::string name, Env env, Rng rng);
  ~Node() override;

  const std::string& name() const;

  // Emulated time 0 has come: schedule the workload.
  void Start();
  // Stop issuing work (the run's duration is over); pending requests stay.
  void Stop();

  // A frame from `neighbour`, already parsed. Frames with a wrong version,
  // sender or link are dropped with a counted reason (LINK-W*).
  void OnFrame(const std::string& neighbour, const wire::v1::Frame& frame);
  // A frame from `neighbour` that could not be parsed, or was oversized.
  void OnBadFrame(const std::string& neighbour, bool oversized, const std::string& detail);

  void OnHerald(const physical::v1::Herald& herald) override;
  void OnMeasureResult(const physical::v1::MeasureResult& result) override;
  void OnBellMeasureResult(const physical::v1::BellMeasureResult& result) override;
  void OnPhysicalError(const physical::v1::Error& error) override;

  // The backend cut `link` (failure event): the network layer hears at once
  // that the neighbour on it is gone.
  void OnLinkDown(const std::string& link);

  // The node's transport service (app server, in-process apps).
  transport::TransportService* transport();

  // Counts at this end of a <connection> of the topology (nullptr if this node
  // is not one of its ends).
  const ConnectionCounts* connection_counts(const std::string& name) const;
  const network::NetworkStats& network_stats() const;

  // Counts for progress and tests.
  uint64_t oks() const;
  uint64_t errs() const;
  uint64_t drops() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qnet::node

#endif  // QNET_EMULATOR_NODE_NODE_H_
