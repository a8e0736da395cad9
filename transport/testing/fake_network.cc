#include "transport/testing/fake_network.h"

#include <utility>

namespace qnet::transport::testing {

using physical::v1::Basis;

// ---- FakeWorld ----

class FakeWorld::Device : public PhysicalService {
 public:
  Device(FakeWorld* world, std::string node) : world_(world), node_(std::move(node)) {}
  void Generate(const physical::v1::Generate&) override {}
  void Free(const physical::v1::Free& r) override {
    world_->requests_.push_back({node_, "free", r.slot()});
    world_->halves_.erase({node_, r.slot()});
    world_->fresh_.erase({node_, r.slot()});
  }
  void Measure(const physical::v1::Measure& r) override {
    world_->requests_.push_back({node_, "measure", r.slot(), r.basis()});
    const uint32_t result = world_->Outcome({node_, r.slot()}, r.basis());
    physical::v1::MeasureResult m;
    m.set_request_id(r.request_id());
    m.set_result(result);
    m.set_time_ns(world_->sim_->Now().nanos());
    const std::string node = node_;
    FakeWorld* w = world_;
    world_->sim_->Schedule(world_->sim_->Now(), [w, node, m] {
      if (auto it = w->sinks_.find(node); it != w->sinks_.end()) it->second->OnMeasureResult(m);
    });
  }
  void ApplyGate(const physical::v1::Gate& r) override {
    Request q{node_, "gate", r.slot()};
    q.gate = r.kind();
    q.angle = r.angle();
    world_->requests_.push_back(q);
    world_->fresh_.erase({node_, r.slot()});
  }
  void BellMeasure(const physical::v1::BellMeasure& r) override {
    world_->requests_.push_back({node_, "bell", r.slot_a()});
    world_->halves_.erase({node_, r.slot_a()});
    world_->halves_.erase({node_, r.slot_b()});
    physical::v1::BellMeasureResult m;
    m.set_request_id(r.request_id());
    m.set_bell_state(static_cast<physical::v1::BellState>(1 + world_->rng_.Below(4)));
    m.set_time_ns(world_->sim_->Now().nanos());
    const std::string node = node_;
    FakeWorld* w = world_;
    world_->sim_->Schedule(world_->sim_->Now(), [w, node, m] {
      if (auto it = w->sinks_.find(node); it != w->sinks_.end()) {
        it->second->OnBellMeasureResult(m);
      }
    });
  }
  void Init(const physical::v1::Init& r) override {
    world_->requests_.push_back({node_, "init", r.slot()});
    world_->fresh_.insert({node_, r.slot()});
  }
  void Probe(const physical::v1::Probe&) override {}

 private:
  FakeWorld* world_;
  std::string node_;
};

FakeWorld::FakeWorld(sim::Simulator* sim, Rng rng) : sim_(sim), rng_(std::move(rng)) {}
FakeWorld::~FakeWorld() = default;

PhysicalService* FakeWorld::device(const std::string& node) {
  auto& d = devices_[node];
  if (!d) d = std::make_unique<Device>(this, node);
  return d.get();
}

void FakeWorld::AddPair(const std::string& a, uint32_t slot_a, const std::string& b,
                        uint32_t slot_b) {
  halves_[{a, slot_a}] = Half{{b, slot_b}, std::nullopt};
  halves_[{b, slot_b}] = Half{{a, slot_a}, std::nullopt};
}

uint32_t FakeWorld::Outcome(const End& end, Basis basis) {
  if (fresh_.erase(end) > 0 && basis == physical::v1::BASIS_Z) return 0;
  auto it = halves_.find(end);
  if (it == halves_.end()) return static_cast<uint32_t>(rng_.Below(2));
  Half half = it->second;
  halves_.erase(it);
  if (half.partner_result) {
    const auto [partner_basis, partner_bit] = *half.partner_result;
    if (partner_basis != basis) return static_cast<uint32_t>(rng_.Below(2));
    return basis == physical::v1::BASIS_Y ? 1 - partner_bit : partner_bit;
  }
  const uint32_t bit = static_cast<uint32_t>(rng_.Below(2));
  if (auto p = halves_.find(half.partner); p != halves_.end()) {
    p->second.partner_result = std::make_pair(basis, bit);
  }
  return bit;
}

// ---- FakeNetwork ----

class FakeNetwork::Service : public network::NetworkService {
 public:
  Service(FakeNetwork* net, std::string node) : net_(net), node_(std::move(node)) {}
  absl::StatusOr<network::CircuitKey> OpenCircuit(const network::CircuitRequest& r) override {
    return net_->Open(node_, r);
  }
  void CloseCircuit(const network::CircuitKey& key, const std::string&) override {
    net_->CloseFrom(node_, key);
  }
  absl::Status SendDatagram(const std::string& destination, std::string payload) override {
    return net_->Datagram(node_, destination, std::move(payload));
  }
  std::optional<network::Route> RouteTo(const std::string& destination) const override {
    if (!net_->nodes_.contains(destination)) return std::nullopt;
    network::Route route;
    route.path = {node_, destination};
    route.links = {node_ + "-" + destination};
    return route;
  }

 private:
  FakeNetwork* net_;
  std::string node_;
};

struct FakeNetwork::Node {
  std::unique_ptr<Service> service;
  std::unique_ptr<link::MemoryPool> pool;
  std::unique_ptr<TransportLayer> transport;
};

FakeNetwork::FakeNetwork(sim::Simulator* sim, uint64_t seed, Options options)
    : sim_(sim), options_(options), rng_(seed), world_(sim, Rng(seed).Fork("world")) {}

FakeNetwork::~FakeNetwork() = default;

TransportLayer& FakeNetwork::AddNode(const std::string& name, TransportOptions options,
                                     uint32_t memories) {
  auto node = std::make_unique<Node>();
  node->service = std::make_unique<Service>(this, name);
  node->pool = std::make_unique<link::MemoryPool>(memories ? memories : options_.memories,
                                                  world_.device(name));
  node->transport =
      std::make_unique<TransportLayer>(name, sim_, node->service.get(), world_.device(name),
                                       node->pool.get(), &tracer_, options);
  world_.set_sink(name, node->transport.get());
  TransportLayer& t = *node->transport;
  nodes_[name] = std::move(node);
  return t;
}

TransportLayer& FakeNetwork::transport(const std::string& name) {
  return *nodes_.at(name)->transport;
}

link::MemoryPool& FakeNetwork::pool(const std::string& name) { return *nodes_.at(name)->pool; }

absl::Status FakeNetwork::Datagram(const std::string& from, const std::string& to,
                                   std::string payload) {
  if (!nodes_.contains(to)) return absl::UnavailableError("no route");
  ++stats_.datagrams;
  if ((loss_ > 0 && rng_.Bernoulli(loss_)) || (drop_ && drop_(from, to, payload))) {
    ++stats_.datagrams_lost;
    return absl::OkStatus();
  }
  sim_->Schedule(sim_->Now() + options_.delay, [this, from, to, payload] {
    nodes_.at(to)->transport->OnDatagram(from, payload);
  });
  return absl::OkStatus();
}

FakeNetwork::Circuit* FakeNetwork::Find(const network::CircuitKey& key) {
  auto it = circuits_.find(key);
  return it == circuits_.end() ? nullptr : &it->second;
}

network::CircuitInfo FakeNetwork::Info(const Circuit& c, bool head) const {
  network::CircuitInfo info;
  info.key = c.key;
  info.path = {c.key.head, c.tail};
  info.links = {c.key.head + "-" + c.tail};
  info.is_head = head;
  info.remote_node = head ? c.tail : c.key.head;
  info.upper = c.upper;
  info.depth = c.depth;
  info.measure = c.measure;
  return info;
}

physical::v1::Basis FakeNetwork::DrawBasis(const network::EndMeasure& m) {
  switch (m.basis) {
    case link::v1::BASIS_CHOICE_Z:
      return physical::v1::BASIS_Z;
    case link::v1::BASIS_CHOICE_X:
      return physical::v1::BASIS_X;
    case link::v1::BASIS_CHOICE_Y:
      return physical::v1::BASIS_Y;
    case link::v1::BASIS_CHOICE_XYZ: {
      const physical::v1::Basis three[] = {physical::v1::BASIS_Z, physical::v1::BASIS_X,
                                           physical::v1::BASIS_Y};
      return three[rng_.Below(3)];
    }
    default:
      if (m.z_probability) {
        return rng_.Bernoulli(*m.z_probability) ? physical::v1::BASIS_Z : physical::v1::BASIS_X;
      }
      return rng_.Below(2) == 0 ? physical::v1::BASIS_Z : physical::v1::BASIS_X;
  }
}

absl::StatusOr<network::CircuitKey> FakeNetwork::Open(const std::string& head,
                                                      const network::CircuitRequest& r) {
  if (refuse_opens_ > 0) {
    --refuse_opens_;
    return absl::Status(refuse_code_, "refused by the fake");
  }
  if (!nodes_.contains(r.remote_node)) return absl::NotFoundError("NO_ROUTE");
  Circuit c;
  c.key = network::CircuitKey{head, ++next_number_[head]};
  c.tail = r.remote_node;
  c.upper = r.upper;
  c.measure = r.measure;
  c.depth = std::max<uint32_t>(r.depth, 1);
  const network::CircuitKey key = c.key;
  circuits_[key] = c;
  ++stats_.circuits;
  sim_->Schedule(sim_->Now() + options_.delay, [this, key] {
    Circuit* c = Find(key);
    if (c == nullptr || !c->head_live) return;
    TransportLayer& tail = *nodes_.at(c->tail)->transport;
    const network::CircuitInfo info = Info(*c, false);
    if (!tail.OnIncomingCircuit(info).ok()) {
      sim_->Schedule(sim_->Now() + options_.delay, [this, key] {
        Circuit* c = Find(key);
        if (c == nullptr || !c->head_live) return;
        c->head_live = false;
        nodes_.at(key.head)->transport->OnCircuitDown(key, network::v1::CIRCUIT_ERROR_REFUSED,
                                                      "refused by the tail");
      });
      return;
    }
    c->tail_live = true;
    tail.OnCircuitUp(info);
    sim_->Schedule(sim_->Now() + options_.delay, [this, key] {
      Circuit* c = Find(key);
      if (c == nullptr || !c->head_live) return;
      nodes_.at(key.head)->transport->OnCircuitUp(Info(*c, true));
      sim_->Schedule(sim_->Now() + options_.pair_interval, [this, key] { Tick(key); });
    });
  });
  return key;
}

void FakeNetwork::Tick(network::CircuitKey key) {
  Circuit* c = Find(key);
  if (c == nullptr || !c->head_live) return;
  link::MemoryPool& head_pool = *nodes_.at(key.head)->pool;
  link::MemoryPool& tail_pool = *nodes_.at(c->tail)->pool;
  std::optional<uint32_t> hs, ts;
  physical::v1::Basis basis[2] = {physical::v1::BASIS_UNSPECIFIED,
                                  physical::v1::BASIS_UNSPECIFIED};
  uint32_t result[2] = {0, 0};
  if (c->measure) {  // measured at both ends at once: PHI_PLUS correlations
    basis[0] = DrawBasis(*c->measure);
    basis[1] = DrawBasis(*c->measure);
    result[0] = static_cast<uint32_t>(rng_.Below(2));
    result[1] = basis[0] != basis[1]                   ? static_cast<uint32_t>(rng_.Below(2))
                : basis[0] == physical::v1::BASIS_Y ? 1 - result[0]
                                                        : result[0];
  } else {
    hs = head_pool.Allocate();
    ts = tail_pool.Allocate();
    if (!hs || !ts) {  // generation waits for memory
      if (hs) (void)head_pool.Return(*hs);
      if (ts) (void)tail_pool.Return(*ts);
      sim_->Schedule(sim_->Now() + options_.pair_interval, [this, key] { Tick(key); });
      return;
    }
  }
  const uint64_t seq = c->next_seq++;
  const std::string tail = c->tail;
  if (!c->measure) world_.AddPair(key.head, *hs, tail, *ts);
  c->unacked.insert(seq);
  ++stats_.pairs;
  network::EndPair pair;
  pair.circuit = key;
  pair.seq = seq;
  pair.slot = hs.value_or(0);
  pair.measured = c->measure.has_value();
  pair.basis = basis[0];
  pair.result = result[0];
  pair.estimated_fidelity = options_.estimated_fidelity;
  pair.completed = sim_->Now();
  pair.delivered = sim_->Now();
  pair.remote_node = tail;
  nodes_.at(key.head)->transport->OnPair(pair);
  const uint32_t tail_slot = ts.value_or(0);
  sim_->Schedule(sim_->Now() + options_.delay, [this, key, pair, tail_slot, b = basis[1],
                                                r = result[1]] {
    Circuit* c = Find(key);
    if (c == nullptr) return;
    link::MemoryPool& pool = *nodes_.at(c->tail)->pool;
    if (!c->tail_live || nack_.contains(pair.seq)) {
      if (!pair.measured) (void)pool.Release(tail_slot);
      if (c->tail_live) {  // DeliverNack back to the head
        sim_->Schedule(sim_->Now() + options_.delay, [this, key, seq = pair.seq] {
          Circuit* c = Find(key);
          if (c == nullptr || !c->head_live || c->unacked.erase(seq) == 0) return;
          nodes_.at(key.head)->transport->OnPairExpired(key, seq, "nack");
        });
      }
      return;
    }
    network::EndPair at_tail = pair;
    at_tail.slot = tail_slot;
    at_tail.basis = b;
    at_tail.result = r;
    at_tail.delivered = sim_->Now();
    at_tail.remote_node = key.head;
    nodes_.at(c->tail)->transport->OnPair(at_tail);
    sim_->Schedule(sim_->Now() + options_.delay, [this, key, seq = pair.seq] {
      if (Circuit* c = Find(key)) c->unacked.erase(seq);  // DeliverAck
    });
  });
  sim_->Schedule(sim_->Now() + options_.pair_interval, [this, key] { Tick(key); });
}

void FakeNetwork::HeadDown(Circuit& c, network::v1::CircuitError code) {
  if (!c.head_live) return;
  c.head_live = false;
  const network::CircuitKey key = c.key;
  const std::set<uint64_t> unacked = std::move(c.unacked);
  c.unacked.clear();
  TransportLayer& head = *nodes_.at(key.head)->transport;
  for (uint64_t seq : unacked) head.OnPairExpired(key, seq, "teardown before the ack");
  head.OnCircuitDown(key, code, "fake teardown");
}

void FakeNetwork::CloseFrom(const std::string& node, const network::CircuitKey& key) {
  Circuit* c = Find(key);
  if (c == nullptr) return;
  if (node == key.head) {
    if (!c->head_live) return;
    HeadDown(*c, network::v1::CIRCUIT_ERROR_CLOSED);
    sim_->Schedule(sim_->Now() + options_.delay, [this, key] {
      Circuit* c = Find(key);
      if (c == nullptr || !c->tail_live) return;
      c->tail_live = false;
      nodes_.at(c->tail)->transport->OnCircuitDown(key, network::v1::CIRCUIT_ERROR_CLOSED,
                                                   "closed by the head");
    });
  } else {
    if (!c->tail_live) return;
    c->tail_live = false;
    nodes_.at(c->tail)->transport->OnCircuitDown(key, network::v1::CIRCUIT_ERROR_CLOSED,
                                                 "closed here");
    sim_->Schedule(sim_->Now() + options_.delay, [this, key] {
      if (Circuit* c = Find(key)) HeadDown(*c, network::v1::CIRCUIT_ERROR_CLOSED);
    });
  }
}

void FakeNetwork::FailCircuits(network::v1::CircuitError code) {
  for (auto& [key, c] : circuits_) {
    if (c.tail_live) {
      c.tail_live = false;
      nodes_.at(c.tail)->transport->OnCircuitDown(key, code, "fake failure");
    }
    HeadDown(c, code);
  }
}

std::vector<network::CircuitKey> FakeNetwork::circuits() const {
  std::vector<network::CircuitKey> keys;
  for (const auto& [key, c] : circuits_) keys.push_back(key);
  return keys;
}

bool FakeNetwork::circuit_live(const network::CircuitKey& key) const {
  auto it = circuits_.find(key);
  return it != circuits_.end() && (it->second.head_live || it->second.tail_live);
}

uint32_t FakeNetwork::circuit_depth(const network::CircuitKey& key) const {
  auto it = circuits_.find(key);
  return it == circuits_.end() ? 0 : it->second.depth;
}

bool FakeNetwork::circuit_measures(const network::CircuitKey& key) const {
  auto it = circuits_.find(key);
  return it != circuits_.end() && it->second.measure.has_value();
}

}  // namespace qnet::transport::testing
