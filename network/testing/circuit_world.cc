#include "network/testing/circuit_world.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "network/circuit.h"

namespace qnet::network::testing {

// ---- FakeQuantum ----

void FakeQuantum::AddPair(const Qubit& a, const Qubit& b, int frame) {
  qubits_[a] = Entry{b, frame};
  qubits_[b] = Entry{a, frame};
}

void FakeQuantum::Free(const Qubit& q) {
  auto it = qubits_.find(q);
  if (it == qubits_.end()) return;
  if (it->second.partner) {
    auto p = qubits_.find(*it->second.partner);
    if (p != qubits_.end()) p->second.partner.reset();
  }
  qubits_.erase(it);
}

bool FakeQuantum::BellMeasure(const Qubit& a, const Qubit& b, int outcome) {
  auto ia = qubits_.find(a), ib = qubits_.find(b);
  if (ia == qubits_.end() || ib == qubits_.end() || !ia->second.partner || !ib->second.partner) {
    Free(a);
    Free(b);
    return false;
  }
  const Qubit pa = *ia->second.partner, pb = *ib->second.partner;
  const int frame = ia->second.frame ^ ib->second.frame ^ outcome;
  qubits_.erase(a);
  qubits_.erase(b);
  AddPair(pa, pb, frame);
  return true;
}

void FakeQuantum::Pauli(const Qubit& q, int index) {
  auto it = qubits_.find(q);
  if (it == qubits_.end()) return;
  it->second.frame ^= index;
  if (it->second.partner) qubits_[*it->second.partner].frame ^= index;
}

std::optional<FakeQuantum::Partner> FakeQuantum::PartnerOf(const Qubit& q) const {
  auto it = qubits_.find(q);
  if (it == qubits_.end() || !it->second.partner) return std::nullopt;
  return Partner{*it->second.partner, it->second.frame};
}

// ---- FakeDevice ----

void FakeDevice::Free(const physical::v1::Free& request) {
  Qubit q{node_, request.slot()};
  if (!quantum_->Has(q)) ++violations_;
  quantum_->Free(q);
}

void FakeDevice::ApplyGate(const physical::v1::Gate& request) {
  Qubit q{node_, request.slot()};
  if (!quantum_->Has(q)) ++violations_;
  switch (request.kind()) {
    case physical::v1::GATE_KIND_X:
      return quantum_->Pauli(q, 1);
    case physical::v1::GATE_KIND_Z:
      return quantum_->Pauli(q, 2);
    case physical::v1::GATE_KIND_Y:
      return quantum_->Pauli(q, 3);
    default:
      ++violations_;
  }
}

void FakeDevice::BellMeasure(const physical::v1::BellMeasure& request) {
  ++bell_measurements_;
  const int outcome = static_cast<int>(rng_.Below(4));
  if (!quantum_->BellMeasure({node_, request.slot_a()}, {node_, request.slot_b()}, outcome)) {
    ++violations_;
  }
  physical::v1::BellMeasureResult result;
  result.set_request_id(request.request_id());
  result.set_bell_state(BellFromIndex(outcome));
  const Time at = sim_->Now() + bsm_delay_;
  result.set_time_ns(static_cast<uint64_t>(at.nanos()));
  sim_->Schedule(at, [this, result] {
    if (bsm_sink_) bsm_sink_(result);
  });
}

void FakeDevice::Probe(const physical::v1::Probe& request) {
  ProbeRecord r;
  r.label = request.label();
  r.believed = BellIndex(request.bell_state());
  if (auto p = quantum_->PartnerOf({node_, request.slot()})) {
    r.truth = p->frame;
    r.partner = p->qubit;
  }
  probes_.push_back(std::move(r));
}

// ---- FakeLink ----

FakeLink::FakeLink(sim::Simulator* sim, FakeQuantum* quantum, Config config, Rng rng)
    : sim_(sim), quantum_(quantum), config_(std::move(config)), rng_(std::move(rng)) {
  for (int s = 0; s < 2; ++s) {
    ends_[s].link = this;
    ends_[s].side = s;
  }
}

void FakeLink::Connect(int side, link::MemoryPool* pool,
                       std::function<void(const link::v1::Ok&)> ok,
                       std::function<void(const link::v1::Err&)> err) {
  ends_[side].pool = pool;
  ends_[side].ok = std::move(ok);
  ends_[side].err = std::move(err);
}

absl::StatusOr<uint64_t> FakeLink::End::Create(const link::v1::Create& create) {
  if (create.remote_node() != link->NodeOf(1 - side)) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNSUPPORTED: ", create.remote_node(), " is not the other end"));
  }
  if (create.pairs() != 1 || create.type() != link::v1::REQUEST_TYPE_KEEP) {
    ++link->violations_;
    return absl::InvalidArgumentError("CREATE: the network layer asks for one kept pair");
  }
  if (link->refuse_count_ > 0) {
    --link->refuse_count_;
    return absl::UnavailableError(
        absl::StrCat(link::v1::ErrorCode_Name(link->refuse_code_), ": injected"));
  }
  if (link->cut_) return absl::UnavailableError("NORES: link cut");
  Request r{side, next_create_id++, create};
  link->queue_.push_back(r);
  link->Serve();
  return r.create_id;
}

void FakeLink::End::Release(uint32_t slot) {
  if (!held.erase(slot)) ++link->violations_;
  (void)pool->Release(slot);
}

void FakeLink::Serve() {
  if (busy_ || queue_.empty() || cut_) return;
  busy_ = true;
  const Request& r = queue_.front();
  if (fail_count_ > 0) {
    --fail_count_;
    const Request failed = r;
    queue_.pop_front();
    const uint64_t epoch = epoch_;
    sim_->Schedule(sim_->Now() + config_.cycle, [this, failed, epoch] {
      if (epoch != epoch_) return;
      busy_ = false;
      SendErr(0, failed, fail_code_, 0, 0);
      SendErr(1, failed, fail_code_, 0, 0);
      Serve();
    });
    return;
  }
  std::optional<uint32_t> slot_a = ends_[0].pool->Allocate();
  std::optional<uint32_t> slot_b = ends_[1].pool->Allocate();
  const uint64_t epoch = epoch_;
  if (!slot_a || !slot_b) {  // memory full: poll again next cycle
    if (slot_a) (void)ends_[0].pool->Return(*slot_a);
    if (slot_b) (void)ends_[1].pool->Return(*slot_b);
    sim_->Schedule(sim_->Now() + config_.cycle, [this, epoch] {
      if (epoch != epoch_) return;
      busy_ = false;
      Serve();
    });
    return;
  }
  running_ = {*slot_a, *slot_b};
  const uint64_t attempts = rng_.Geometric(config_.p);
  sim_->Schedule(sim_->Now() + config_.cycle * static_cast<double>(attempts),
                 [this, a = *slot_a, b = *slot_b, epoch] {
                   if (epoch != epoch_) return;
                   Herald(a, b);
                 });
}

void FakeLink::Herald(uint32_t slot_a, uint32_t slot_b) {
  const Request r = queue_.front();
  queue_.pop_front();
  busy_ = false;
  running_.reset();
  const int bell = config_.bell >= 0 ? config_.bell : static_cast<int>(rng_.Below(4));
  quantum_->AddPair({config_.a, slot_a}, {config_.b, slot_b}, bell);
  End& origin = ends_[r.side];
  link::v1::PairId id;
  id.set_origin(NodeOf(r.side));
  id.set_partner(NodeOf(1 - r.side));
  id.set_sequence(origin.next_sequence++);
  heralds_.push_back({id, sim_->Now(), r.create.purpose_id()});
  const bool expire = expire_count_ > 0;
  if (expire) --expire_count_;
  for (int s = 0; s < 2; ++s) {
    link::v1::Ok ok;
    ok.set_create_id(r.create_id);
    *ok.mutable_pair() = id;
    ok.set_bell_state(BellFromIndex(bell));
    ok.set_estimated_fidelity(config_.fidelity);
    ok.set_time_ns(static_cast<uint64_t>(sim_->Now().nanos()));
    ok.set_purpose_id(r.create.purpose_id());
    ok.set_remote_node(NodeOf(1 - s));
    ok.set_slot(s == 0 ? slot_a : slot_b);
    ok.set_link(config_.name);
    if (expire && s != expire_ok_side_) {  // never delivered here: the slot goes back
      quantum_->Free({NodeOf(s), ok.slot()});
      (void)ends_[s].pool->Return(ok.slot());
      continue;
    }
    ends_[s].held.insert(ok.slot());
    if (delay_ok_count_[s] > 0) {  // this end hears its herald late
      --delay_ok_count_[s];
      const uint64_t epoch = epoch_;
      sim_->Schedule(sim_->Now() + delay_ok_[s], [this, s, ok, epoch] {
        if (epoch == epoch_) ends_[s].ok(ok);
      });
      continue;
    }
    ends_[s].ok(ok);
  }
  if (expire) {
    for (int s = 0; s < 2; ++s)
      SendErr(s, r, link::v1::ERROR_CODE_EXPIRED, id.sequence(), id.sequence());
  }
  Serve();
}

void FakeLink::SendErr(int side, const Request& r, link::v1::ErrorCode code, uint64_t from,
                       uint64_t to) {
  link::v1::Err err;
  err.set_create_id(r.create_id);
  err.set_code(code);
  err.set_detail("injected");
  err.set_origin(NodeOf(r.side));
  err.set_link(config_.name);
  err.set_expired_from(from);
  err.set_expired_to(to);
  err.set_time_ns(static_cast<uint64_t>(sim_->Now().nanos()));
  ends_[side].err(err);
}

void FakeLink::Cut() {
  cut_ = true;
  ++epoch_;
  if (running_) {  // the request being served had its slots allocated
    (void)ends_[0].pool->Return(running_->first);
    (void)ends_[1].pool->Return(running_->second);
    running_.reset();
  }
  queue_.clear();
  busy_ = false;
}

// ---- RecordingNetListener ----

void RecordingNetListener::OnPair(const EndPair& pair) {
  Delivered d{pair, quantum->PartnerOf({node, pair.slot})};
  pairs.push_back(d);
  if (on_pair) on_pair(pair);
  if (auto_release) (void)pool->Release(pair.slot);
}

std::vector<uint64_t> RecordingNetListener::Seqs(const CircuitKey& key) const {
  std::vector<uint64_t> out;
  for (const auto& d : pairs)
    if (d.pair.circuit == key) out.push_back(d.pair.seq);
  return out;
}

void CollectingTracer::Record(results::v1::TraceRecord record) {
  if (record.time_ns() == 0) record.set_time_ns(static_cast<uint64_t>(clock_->Now().nanos()));
  if (record.node().empty()) record.set_node(node_);
  if (record.has_drop()) ++drops_;
  records.push_back(std::move(record));
}

// ---- CircuitWorld ----

CircuitWorld::Config CircuitWorld::Chain(int links, double p, absl::Duration cycle, double fidelity,
                                         int bell) {
  Config c;
  for (int i = 0; i <= links; ++i) c.nodes.push_back({absl::StrCat("n", i)});
  for (int i = 0; i < links; ++i) {
    c.links.push_back({absl::StrCat("l", i), absl::StrCat("n", i), absl::StrCat("n", i + 1), p,
                       cycle, fidelity, bell});
  }
  return c;
}

CircuitWorld::CircuitWorld(Config config) : config_(std::move(config)), rng_(config_.seed) {
  for (const auto& nc : config_.nodes) {
    auto n = std::make_unique<Node>();
    n->config = nc;
    n->device =
        std::make_unique<FakeDevice>(nc.name, &sim_, &quantum_, rng_.Fork("dev/" + nc.name));
    n->pool = std::make_unique<link::MemoryPool>(nc.memories, n->device.get());
    n->tracer = std::make_unique<CollectingTracer>(&sim_, nc.name);
    n->listener.node = nc.name;
    n->listener.pool = n->pool.get();
    n->listener.quantum = &quantum_;
    nodes_[nc.name] = std::move(n);
  }
  std::map<std::string, std::vector<NetworkLink>> node_links;
  for (const auto& lc : config_.links) {
    auto l = std::make_unique<FakeLink>(&sim_, &quantum_, lc, rng_.Fork("link/" + lc.name));
    for (int s = 0; s < 2; ++s) {
      const std::string& me = s == 0 ? lc.a : lc.b;
      const std::string& other = s == 0 ? lc.b : lc.a;
      Node* node = nodes_.at(me).get();
      l->Connect(
          s, node->pool.get(), [node](const link::v1::Ok& ok) { node->layer->OnLinkOk(ok); },
          [node](const link::v1::Err& err) { node->layer->OnLinkErr(err); });
      NetworkLink nl;
      nl.local.link = lc.name;
      nl.local.neighbour = other;
      nl.local.pair_time_s = absl::ToDoubleSeconds(lc.cycle) / lc.p;
      nl.local.fidelity = lc.fidelity;
      nl.service = l->end(s);
      node_links[me].push_back(nl);
    }
    links_[lc.name] = std::move(l);
  }
  for (auto& [name, n] : nodes_) {
    NetworkOptions options = config_.options;
    options.router.memory_time_s = n->config.memory_time_s;
    options.router.memories = n->config.memories;
    const std::string me = name;
    n->layer = std::make_unique<NetworkLayer>(
        name, node_links[name], &sim_, n->device.get(), n->pool.get(),
        [this, me](const std::string& to, const v1::NetworkFrame& f) { Carry(me, to, f); },
        &n->listener, n->tracer.get(), rng_.Fork("net/" + name), options);
    Node* node = n.get();
    n->device->set_bsm_sink(
        [node](const physical::v1::BellMeasureResult& r) { node->layer->OnBellMeasureResult(r); });
  }
}

CircuitWorld::~CircuitWorld() = default;

std::vector<std::string> CircuitWorld::node_names() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : nodes_) out.push_back(name);
  return out;
}

void CircuitWorld::Start(absl::Duration settle) {
  for (auto& [name, n] : nodes_) n->layer->Start();
  sim_.RunUntil(sim_.Now() + settle);
}

bool CircuitWorld::RunUntil(const std::function<bool()>& done, absl::Duration limit) {
  const Time end = sim_.Now() + limit;
  while (!done()) {
    if (!sim_.Step()) return done();
    if (sim_.Now() > end) return done();
  }
  return true;
}

void CircuitWorld::Carry(const std::string& from, const std::string& to,
                         const v1::NetworkFrame& frame) {
  ++frames_sent_;
  std::string bytes = frame.SerializeAsString();
  sim_.Schedule(sim_.Now() + config_.frame_delay, [this, from, to, bytes = std::move(bytes)] {
    if (cut_.contains({from, to})) return;
    v1::NetworkFrame f;
    if (!f.ParseFromString(bytes)) return;
    if (drop_filter && drop_filter(from, to, f)) return;
    nodes_.at(to)->layer->OnFrame(from, f);
  });
}

void CircuitWorld::CutLink(const std::string& name, bool report) {
  FakeLink& l = *links_.at(name);
  l.Cut();
  const std::string& a = l.config().a;
  const std::string& b = l.config().b;
  cut_.insert({a, b});
  cut_.insert({b, a});
  if (!report) return;
  nodes_.at(a)->layer->OnNeighbourDown(b);
  nodes_.at(b)->layer->OnNeighbourDown(a);
}

}  // namespace qnet::network::testing
