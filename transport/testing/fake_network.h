// Test doubles for the transport layer, on the simulator runtime:
//  - FakeWorld: the devices of all nodes. It keeps no quantum state; it pairs
//    slots of two nodes as PHI_PLUS and answers measurements with outcomes
//    correlated as a perfect PHI_PLUS pair gives them (same basis: equal in Z
//    and X, opposite in Y; different bases: independent). A freshly Init'ed
//    qubit measured in Z without a gate gives 0. Every request is recorded.
//  - FakeNetwork: a NetworkService per node joined by a channel with a fixed
//    one-way delay that can drop datagrams, and circuits between two nodes
//    that hand out a pair every `pair_interval` (a kept pair waiting while
//    either node's MemoryPool is empty; a measure circuit's pair measured at
//    both ends in bases drawn as the link layer draws them, its results those
//    of PHI_PLUS) following the network layer's contract
//    (network/network.h): the head hears OnPair first, the tail one delay
//    later and acks it; a Nack'd pair or a teardown before the ack makes the
//    head report OnPairExpired. Faults: loss, circuit failure, refused opens.
#ifndef QNET_TRANSPORT_TESTING_FAKE_NETWORK_H_
#define QNET_TRANSPORT_TESTING_FAKE_NETWORK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "link/memory_pool.h"
#include "network/network.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/sim/simulator.h"
#include "stack/trace.h"
#include "transport/transport_layer.h"

namespace qnet::transport::testing {

class FakeWorld {
 public:
  struct Request {
    std::string node;
    std::string kind;  // "measure", "gate", "bell", "init", "free"
    uint32_t slot = 0;
    physical::v1::Basis basis = physical::v1::BASIS_UNSPECIFIED;
    physical::v1::GateKind gate = physical::v1::GATE_KIND_UNSPECIFIED;
    double angle = 0;
  };

  FakeWorld(sim::Simulator* sim, Rng rng);
  ~FakeWorld();
  PhysicalService* device(const std::string& node);
  void set_sink(const std::string& node, TransportLayer* transport) { sinks_[node] = transport; }
  void AddPair(const std::string& a, uint32_t slot_a, const std::string& b, uint32_t slot_b);
  const std::vector<Request>& requests() const { return requests_; }

 private:
  class Device;
  using End = std::pair<std::string, uint32_t>;
  struct Half {
    End partner;
    std::optional<std::pair<physical::v1::Basis, uint32_t>> partner_result;
  };
  uint32_t Outcome(const End& end, physical::v1::Basis basis);

  sim::Simulator* sim_;
  Rng rng_;
  std::map<std::string, std::unique_ptr<Device>> devices_;
  std::map<std::string, TransportLayer*> sinks_;
  std::map<End, Half> halves_;
  std::set<End> fresh_;  // Init'ed, untouched
  std::vector<Request> requests_;
};

class FakeNetwork {
 public:
  struct Options {
    absl::Duration delay = absl::Milliseconds(1);          // one way, datagrams and circuits
    absl::Duration pair_interval = absl::Milliseconds(2);  // head: one pair per interval
    uint32_t memories = 8;
    double estimated_fidelity = 0.9;
  };
  struct Stats {
    uint64_t datagrams = 0, datagrams_lost = 0, circuits = 0, pairs = 0;
  };

  FakeNetwork(sim::Simulator* sim, uint64_t seed, Options options);
  FakeNetwork(sim::Simulator* sim, uint64_t seed) : FakeNetwork(sim, seed, Options()) {}
  ~FakeNetwork();

  // `memories` 0: Options::memories.
  TransportLayer& AddNode(const std::string& name, TransportOptions options = {},
                          uint32_t memories = 0);
  TransportLayer& transport(const std::string& name);
  link::MemoryPool& pool(const std::string& name);
  FakeWorld& world() { return world_; }
  const Stats& stats() const { return stats_; }

  // Faults.
  void set_loss(double p) { loss_ = p; }
  // Drops every datagram for which `drop(source, destination, payload)` holds.
  void set_drop(std::function<bool(const std::string&, const std::string&, const std::string&)> f) {
    drop_ = std::move(f);
  }
  // The next `count` OpenCircuit calls fail at once with `code`.
  void RefuseOpens(int count, absl::StatusCode code = absl::StatusCode::kUnavailable) {
    refuse_opens_ = count;
    refuse_code_ = code;
  }
  // The tail does not get these seqs (of every circuit); the head hears OnPairExpired.
  void NackSeqs(std::set<uint64_t> seqs) { nack_ = std::move(seqs); }
  // Every live circuit goes down at both ends now with `code`.
  void FailCircuits(network::v1::CircuitError code);
  // Keys of every circuit opened, in order.
  std::vector<network::CircuitKey> circuits() const;
  bool circuit_live(const network::CircuitKey& key) const;
  // The depth the circuit was opened with (0: unknown circuit), and whether
  // it is a measure circuit.
  uint32_t circuit_depth(const network::CircuitKey& key) const;
  bool circuit_measures(const network::CircuitKey& key) const;

 private:
  class Service;
  struct Node;
  struct Circuit {
    network::CircuitKey key;
    std::string tail;
    std::string upper;
    bool head_live = true, tail_live = false;
    uint64_t next_seq = 1;
    std::set<uint64_t> unacked;
    std::optional<network::EndMeasure> measure;
    uint32_t depth = 1;
  };

  absl::StatusOr<network::CircuitKey> Open(const std::string& head,
                                           const network::CircuitRequest& request);
  void CloseFrom(const std::string& node, const network::CircuitKey& key);
  absl::Status Datagram(const std::string& from, const std::string& to, std::string payload);
  network::CircuitInfo Info(const Circuit& c, bool head) const;
  void Tick(network::CircuitKey key);
  physical::v1::Basis DrawBasis(const network::EndMeasure& m);
  void HeadDown(Circuit& c, network::v1::CircuitError code);
  Circuit* Find(const network::CircuitKey& key);

  sim::Simulator* sim_;
  Options options_;
  Rng rng_;
  FakeWorld world_;
  NullTracer tracer_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  std::map<network::CircuitKey, Circuit> circuits_;
  std::map<std::string, uint64_t> next_number_;
  double loss_ = 0;
  std::function<bool(const std::string&, const std::string&, const std::string&)> drop_;
  int refuse_opens_ = 0;
  absl::StatusCode refuse_code_ = absl::StatusCode::kUnavailable;
  std::set<uint64_t> nack_;
  Stats stats_;
};

}  // namespace qnet::transport::testing

#endif  // QNET_TRANSPORT_TESTING_FAKE_NETWORK_H_
