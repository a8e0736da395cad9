// World: the sans-I/O core of qworld (specs/physical.md). It owns the quantum
// state of every emulated qubit, runs heralded generation for every link, and
// answers the requests of every node. It does no I/O and reads no clock: each
// request comes with the emulated time it arrived, and every answer leaves
// through Output with the emulated time at which it must reach its node. The
// qworld daemon (emulator/qworld) and the sim backend drive the same class.
//
// Implements specs/physical.md: the session (PHYS-S1..S3, PHYS-S5), heralded
// generation (PHYS-B*), operations on memory qubits (PHYS-M*, via
// emulator/physics), truth and batch records (PHYS-T*, PHYS-B16) and errors
// (PHYS-2, PHYS-E*), Init (PHYS-M9), Probe (PHYS-T4), link cuts (PHYS-L*) and
// the intercept-resend attacker of a link (PHYS-EV*).
// Randomness: `rng` forked per link and per node (section 9), and per attacked
// link ("eve/NAME").
#ifndef QNET_EMULATOR_WORLD_WORLD_H_
#define QNET_EMULATOR_WORLD_WORLD_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "qnet/physical/v1/physical.pb.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/random.h"
#include "stack/time.h"
#include "stack/topology.h"

namespace qnet::world {

struct WorldOptions {
  // PHYS-B4a: how far before its arrival a Generate's start_ns may start its
  // batch. Zero: every batch starts at the later arrival (the sim backend,
  // where requests arrive at the time they are sent). The qworld daemon sets
  // it so that the wake-up latency of real processes does not slow the
  // emulated physics down.
  absl::Duration max_start_lag = absl::ZeroDuration();
};

class World {
 public:
  class Output {
   public:
    virtual ~Output() = default;
    // Deliver `message` to `node` at emulated time `at` (>= the time of the
    // request that caused it). Deliveries to one node with equal `at` must be
    // delivered in the order they were emitted.
    virtual void Deliver(const std::string& node, physical::v1::WorldToNode message, Time at) = 0;
    // A record for qworld's trace (HeraldTruth and drops), never shown to nodes.
    virtual void Record(results::v1::TraceRecord record) = 0;
  };

  // The topology's failure events are applied at once (PHYS-L3): each
  // <event cut-link> and each link of an <event fail-node> is down from the
  // event's time, so batches planned before that time already honour it.
  World(const Topology& topology, Rng rng, Output* output, WorldOptions options = {});
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // Handles one frame from `node` (already parsed) that arrived at `now`.
  // Invalid requests are answered with an Error message and counted; they
  // never change any quantum state (PHYS-E*).
  void Handle(const std::string& node, const physical::v1::NodeToWorld& request, Time now);

  // Link `link` is cut from emulated time `at` on (PHYS-L1, PHYS-L2): no
  // attempt starting at or after `at` succeeds; batches still end as the
  // generation contract says (DEADLINE at their deadline, IDLE and
  // QUEUE_MISMATCH as usual, never without a deadline). A batch planned before
  // this call keeps its outcome. Calling it again keeps the earlier time.
  // NotFound for a link the topology does not have.
  absl::Status SetLinkDown(const std::string& link, Time at);

  // Statistics for benchmarks and tests: requests handled (every Handle
  // call, refused or not) and requests refused with an Error.
  uint64_t operations() const;
  uint64_t errors() const;
  // Pairs of `link` its intercept-resend attacker measured (PHYS-EV5); 0 for
  // a link without one or a link the topology does not have.
  uint64_t intercepted(const std::string& link) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qnet::world

#endif  // QNET_EMULATOR_WORLD_WORLD_H_
