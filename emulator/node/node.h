// Node: the one place where a node's stack is composed (CONVENTIONS: wiring at
// composition time). It builds one Egp per link end of this node, shares the
// node's memory slots among them, routes neighbour frames and device
// indications to the right layer instance, and drives the link-layer workload
// of the topology file (<request> elements with from == this node). The qnode
// daemon and the sim backend both build a Node; only its Env differs.
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

namespace qnet::node {

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
