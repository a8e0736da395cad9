// CircuitWorld: several NetworkLayers on the simulator, for the network
// layer's sim tests (specs/network.md section 2). Each link is a FakeLink, a
// "pair factory" implementing link::LinkService at both ends: CREATEs are
// served first come first served, one at a time, each after a geometric
// number of attempt cycles, with both ends' OKs at the herald time and a
// chosen (or uniformly random) Bell state. Each node's FakeDevice is its
// PhysicalService; FakeQuantum keeps the Pauli frame of every pair the fakes
// made, so tests compare what the protocol tracks with the truth. Network
// frames travel between neighbours with a fixed delay, serialized and parsed.
#ifndef QNET_NETWORK_TESTING_CIRCUIT_WORLD_H_
#define QNET_NETWORK_TESTING_CIRCUIT_WORLD_H_

#include <compare>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "link/link.h"
#include "link/memory_pool.h"
#include "network/network_layer.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/sim/simulator.h"
#include "stack/trace.h"

namespace qnet::network::testing {

struct Qubit {
  std::string node;
  uint32_t slot = 0;
  friend auto operator<=>(const Qubit&, const Qubit&) = default;
};

// Pauli frames of two-qubit pairs: a pair in frame f is (P_f x I)|PHI_PLUS>
// with f the Pauli index of BellIndex (network/circuit.h).
class FakeQuantum {
 public:
  void AddPair(const Qubit& a, const Qubit& b, int frame);
  bool Has(const Qubit& q) const { return qubits_.contains(q); }
  void Free(const Qubit& q);
  // Bell measurement of a and b with outcome index m: their partners form a
  // pair in frame f_a ^ f_b ^ m. False if a or b holds no paired qubit.
  bool BellMeasure(const Qubit& a, const Qubit& b, int outcome);
  void Pauli(const Qubit& q, int index);
  struct Partner {
    Qubit qubit;
    int frame = 0;
  };
  std::optional<Partner> PartnerOf(const Qubit& q) const;
  size_t size() const { return qubits_.size(); }

 private:
  struct Entry {
    std::optional<Qubit> partner;
    int frame = 0;
  };
  std::map<Qubit, Entry> qubits_;
};

class FakeDevice : public PhysicalService {
 public:
  struct ProbeRecord {
    std::string label;
    int believed = -1;  // Bell index the protocol tracked
    int truth = -1;     // Bell index of the pair then; -1: no pair
    std::optional<Qubit> partner;
  };
  FakeDevice(std::string node, sim::Simulator* sim, FakeQuantum* quantum, Rng rng)
      : node_(std::move(node)), sim_(sim), quantum_(quantum), rng_(std::move(rng)) {}
  void set_bsm_sink(std::function<void(const physical::v1::BellMeasureResult&)> sink) {
    bsm_sink_ = std::move(sink);
  }
  void set_bsm_delay(absl::Duration d) { bsm_delay_ = d; }

  void Generate(const physical::v1::Generate&) override { ++violations_; }
  void Free(const physical::v1::Free& request) override;
  void Measure(const physical::v1::Measure&) override { ++violations_; }
  void ApplyGate(const physical::v1::Gate& request) override;
  void BellMeasure(const physical::v1::BellMeasure& request) override;
  void Init(const physical::v1::Init&) override { ++violations_; }
  void Probe(const physical::v1::Probe& request) override;

  const std::vector<ProbeRecord>& probes() const { return probes_; }
  uint64_t violations() const { return violations_; }
  uint64_t bell_measurements() const { return bell_measurements_; }

 private:
  std::string node_;
  sim::Simulator* sim_;
  FakeQuantum* quantum_;
  Rng rng_;
  std::function<void(const physical::v1::BellMeasureResult&)> bsm_sink_;
  absl::Duration bsm_delay_ = absl::ZeroDuration();
  std::vector<ProbeRecord> probes_;
  uint64_t violations_ = 0;
  uint64_t bell_measurements_ = 0;
};

class FakeLink {
 public:
  struct Config {
    std::string name, a, b;
    double p = 0.1;                                 // success probability per attempt
    absl::Duration cycle = absl::Microseconds(10);  // attempt cycle
    double fidelity = 1.0;                          // advertised and estimated
    int bell = -1;                                  // Bell index of every pair; -1: uniform
  };
  struct HeraldRecord {
    link::v1::PairId id;
    Time at;
    uint32_t purpose_id = 0;
    Qubit qubit[2];  // side a's and side b's (a measuring end's is virtual)
    // A measuring end's basis and raw result (UNSPECIFIED for a kept qubit).
    physical::v1::Basis basis[2] = {physical::v1::BASIS_UNSPECIFIED,
                                    physical::v1::BASIS_UNSPECIFIED};
    uint32_t result[2] = {0, 0};
  };
  FakeLink(sim::Simulator* sim, FakeQuantum* quantum, Config config, Rng rng);
  FakeLink(const FakeLink&) = delete;
  FakeLink& operator=(const FakeLink&) = delete;

  const Config& config() const { return config_; }
  link::LinkService* end(int side) { return &ends_[side]; }
  void Connect(int side, link::MemoryPool* pool, std::function<void(const link::v1::Ok&)> ok,
               std::function<void(const link::v1::Err&)> err);
  // Fault injection: the next `count` CREATEs are refused at once with
  // `code`, or end with an ERR `code` at both ends after acceptance.
  void RefuseNextCreates(link::v1::ErrorCode code, int count) {
    refuse_code_ = code;
    refuse_count_ = count;
  }
  void FailNextCreates(link::v1::ErrorCode code, int count) {
    fail_code_ = code;
    fail_count_ = count;
  }
  // The next `count` pairs reach only end `ok_side` with an OK and are then
  // reported EXPIRED at both ends (what LINK-14 makes of a pair one end could
  // not deliver).
  void ExpireNextPairs(int count, int ok_side) {
    expire_count_ = count;
    expire_ok_side_ = ok_side;
  }
  // The next `count` OKs at end `side` arrive `delay` after the herald (a
  // late herald, as scheduling jitter makes it on real-time backends).
  void DelayNextOks(int side, int count, absl::Duration delay) {
    delay_ok_count_[side] = count;
    delay_ok_[side] = delay;
  }
  // Cut: the requests are dropped, nothing is heralded any more.
  void Cut();
  bool cut() const { return cut_; }

  const std::vector<HeraldRecord>& heralds() const { return heralds_; }
  // Requests being served (standing or not done yet), and the cancels seen.
  size_t requests() const { return items_.size(); }
  uint64_t cancels() const { return cancels_; }
  uint64_t violations() const { return violations_; }

 private:
  // One end of the fake link: the LinkService its node uses, and the owner of
  // the slots holding its requests' pairs (LINK-46 windows).
  struct End : public link::LinkService, public link::SlotOwner {
    FakeLink* link = nullptr;
    int side = 0;
    link::MemoryPool* pool = nullptr;
    std::function<void(const link::v1::Ok&)> ok;
    std::function<void(const link::v1::Err&)> err;
    std::map<uint32_t, uint64_t> held;  // slot -> item id
    uint64_t next_create_id = 1;
    uint64_t next_sequence = 1;
    absl::StatusOr<uint64_t> Create(const link::v1::Create& create) override;
    void Release(uint32_t slot) override;
    absl::Status Cancel(uint64_t create_id) override;
    void OnSlotFreed(uint32_t slot) override;
    uint32_t HeldBy(uint64_t item) const;
  };
  // A request being served: standing (pairs 0) or until its pairs are done.
  struct Item {
    uint64_t id = 0;
    int side = 0;  // its origin
    uint64_t create_id = 0;
    link::v1::Create create;
    uint64_t served = 0;
    bool Keeps(int s) const;
  };
  const std::string& NodeOf(int side) const { return side == 0 ? config_.a : config_.b; }
  void Serve();
  void Herald(uint64_t item, std::optional<uint32_t> slot_a, std::optional<uint32_t> slot_b);
  void SendErr(int side, const Item& r, link::v1::ErrorCode code, uint64_t from, uint64_t to);
  physical::v1::Basis DrawBasis(const link::v1::Create& create);

  sim::Simulator* sim_;
  FakeQuantum* quantum_;
  Config config_;
  Rng rng_;
  End ends_[2];
  std::vector<Item> items_;  // in the order they came
  uint64_t next_item_ = 1;
  size_t next_turn_ = 0;  // round robin over items_
  bool busy_ = false;
  std::optional<std::pair<std::optional<uint32_t>, std::optional<uint32_t>>> running_;
  bool cut_ = false;
  uint64_t epoch_ = 0;  // bumped by Cut() so scheduled heralds lapse
  uint32_t next_virtual_ = 0;
  link::v1::ErrorCode refuse_code_ = link::v1::ERROR_CODE_UNSPECIFIED;
  int refuse_count_ = 0;
  link::v1::ErrorCode fail_code_ = link::v1::ERROR_CODE_UNSPECIFIED;
  int fail_count_ = 0;
  int expire_count_ = 0;
  int delay_ok_count_[2] = {0, 0};
  absl::Duration delay_ok_[2] = {absl::ZeroDuration(), absl::ZeroDuration()};
  int expire_ok_side_ = 0;
  std::vector<HeraldRecord> heralds_;
  uint64_t cancels_ = 0;
  uint64_t violations_ = 0;
};

// Slots of a measuring end's virtual qubits in FakeQuantum (never a memory slot).
inline constexpr uint32_t kVirtualSlot = 1u << 30;

// Records everything the network layer tells its upper layer. With
// auto_release, a delivered kept pair's slot goes back to the pool at once
// (after the partner and frame of the qubit are noted).
class RecordingNetListener : public NetworkListener {
 public:
  struct Delivered {
    EndPair pair;
    std::optional<FakeQuantum::Partner> partner;  // at delivery
  };
  absl::Status OnIncomingCircuit(const CircuitInfo& info) override {
    incoming.push_back(info);
    return accept;
  }
  void OnCircuitUp(const CircuitInfo& info) override { ups.push_back(info); }
  void OnCircuitDown(const CircuitKey& key, v1::CircuitError code,
                     const std::string& detail) override {
    downs.push_back({key, code, detail});
    if (on_down) on_down(key, code);
  }
  void OnPair(const EndPair& pair) override;  // a kept pair's partner is noted
  void OnPairExpired(const CircuitKey& key, uint64_t seq, const std::string& detail) override {
    expired.push_back({key, seq, detail});
  }
  void OnDatagram(const std::string& source, const std::string& payload) override {
    datagrams.push_back({source, payload});
  }
  // Seqs delivered on one circuit, in delivery order.
  std::vector<uint64_t> Seqs(const CircuitKey& key) const;

  struct Down {
    CircuitKey key;
    v1::CircuitError code;
    std::string detail;
  };
  struct Expired {
    CircuitKey key;
    uint64_t seq;
    std::string detail;
  };
  absl::Status accept = absl::OkStatus();
  bool auto_release = true;
  std::string node;
  link::MemoryPool* pool = nullptr;
  FakeQuantum* quantum = nullptr;
  std::function<void(const EndPair&)> on_pair;
  std::function<void(const CircuitKey&, v1::CircuitError)> on_down;
  std::vector<CircuitInfo> incoming, ups;
  std::vector<Down> downs;
  std::vector<Delivered> pairs;
  std::vector<Expired> expired;
  std::vector<std::pair<std::string, std::string>> datagrams;
};

class CollectingTracer : public Tracer {
 public:
  CollectingTracer(const Clock* clock, std::string node) : clock_(clock), node_(std::move(node)) {}
  void Record(results::v1::TraceRecord record) override;
  uint64_t drops() const { return drops_; }
  std::vector<results::v1::TraceRecord> records;

 private:
  const Clock* clock_;
  std::string node_;
  uint64_t drops_ = 0;
};

class CircuitWorld {
 public:
  struct NodeConfig {
    std::string name;
    uint32_t memories = 4;
    double memory_time_s = 0.0;  // advertised; 0: infinite
  };
  struct Config {
    std::vector<NodeConfig> nodes;
    std::vector<FakeLink::Config> links;
    absl::Duration frame_delay = absl::ZeroDuration();
    uint64_t seed = 1;
    NetworkOptions options;
  };
  // n0 - n1 - ... - n<links>, link i named "l<i>" between n<i> and n<i+1>.
  static Config Chain(int links, double p, absl::Duration cycle, double fidelity = 1.0,
                      int bell = -1);

  explicit CircuitWorld(Config config);
  ~CircuitWorld();

  // Starts every layer and runs until routing has converged.
  void Start(absl::Duration settle = absl::Milliseconds(5));
  sim::Simulator& sim() { return sim_; }
  FakeQuantum& quantum() { return quantum_; }
  NetworkLayer& layer(const std::string& node) { return *nodes_.at(node)->layer; }
  RecordingNetListener& listener(const std::string& node) { return nodes_.at(node)->listener; }
  FakeDevice& device(const std::string& node) { return *nodes_.at(node)->device; }
  link::MemoryPool& pool(const std::string& node) { return *nodes_.at(node)->pool; }
  CollectingTracer& tracer(const std::string& node) { return *nodes_.at(node)->tracer; }
  FakeLink& link(const std::string& name) { return *links_.at(name); }
  // The qubit (a measuring end's virtual one) of `node` in link pair `id`.
  std::optional<Qubit> QubitOf(const std::string& node, const link::v1::PairId& id) const;
  // The herald record of link pair `id`.
  const FakeLink::HeraldRecord* HeraldOf(const link::v1::PairId& id) const;
  std::vector<std::string> node_names() const;

  // Runs until `done` holds (checked after every event) or `limit` passes.
  bool RunUntil(const std::function<bool()>& done, absl::Duration limit);
  // Cuts a link: its fake stops, frames over it are lost, and both ends'
  // compositions report the neighbour down.
  // With report false the compositions say nothing: the routers notice by
  // missing hellos.
  void CutLink(const std::string& name, bool report = true);
  // Frames for which this returns true are lost in flight.
  std::function<bool(const std::string& from, const std::string& to, const v1::NetworkFrame&)>
      drop_filter;
  uint64_t frames_sent() const { return frames_sent_; }

 private:
  struct Node {
    NodeConfig config;
    std::unique_ptr<FakeDevice> device;
    std::unique_ptr<link::MemoryPool> pool;
    std::unique_ptr<CollectingTracer> tracer;
    RecordingNetListener listener;
    std::unique_ptr<NetworkLayer> layer;
  };
  void Carry(const std::string& from, const std::string& to, const v1::NetworkFrame& frame);

  Config config_;
  sim::Simulator sim_;
  FakeQuantum quantum_;
  Rng rng_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  std::map<std::string, std::unique_ptr<FakeLink>> links_;
  std::set<std::pair<std::string, std::string>> cut_;  // node pairs, both orders
  uint64_t frames_sent_ = 0;
};

}  // namespace qnet::network::testing

#endif  // QNET_NETWORK_TESTING_CIRCUIT_WORLD_H_
