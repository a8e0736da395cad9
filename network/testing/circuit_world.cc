#include "network/testing/circuit_world.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "link/create_check.h"
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

bool FakeLink::Item::Keeps(int s) const {
  return link::TypeAt(create, s == side) == link::v1::REQUEST_TYPE_KEEP;
}

absl::StatusOr<uint64_t> FakeLink::End::Create(const link::v1::Create& create) {
  if (create.remote_node() != link->NodeOf(1 - side)) {
    return absl::InvalidArgumentError(
        absl::StrCat("UNSUPPORTED: ", create.remote_node(), " is not the other end"));
  }
  if (link->refuse_count_ > 0) {
    --link->refuse_count_;
    return absl::UnavailableError(
        absl::StrCat(link::v1::ErrorCode_Name(link->refuse_code_), ": injected"));
  }
  if (link->cut_) return absl::UnavailableError("NORES: link cut");
  Item item;
  item.id = link->next_item_++;
  item.side = side;
  item.create_id = next_create_id++;
  item.create = create;
  link->items_.push_back(item);
  link->Serve();
  return item.create_id;
}

absl::Status FakeLink::End::Cancel(uint64_t create_id) {
  for (auto it = link->items_.begin(); it != link->items_.end(); ++it) {
    if (it->side == side && it->create_id == create_id) {
      link->items_.erase(it);
      ++link->cancels_;
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError("no such request");
}

void FakeLink::End::Release(uint32_t slot) {
  if (!held.contains(slot)) ++link->violations_;
  (void)pool->Release(slot);  // OnSlotFreed does the bookkeeping
}

void FakeLink::End::OnSlotFreed(uint32_t slot) {
  held.erase(slot);
  // After the pool is done with this slot: serve again at the same time.
  const uint64_t epoch = link->epoch_;
  link->sim_->Schedule(link->sim_->Now(), [l = link, epoch] {
    if (epoch == l->epoch_) l->Serve();
  });
}

uint32_t FakeLink::End::HeldBy(uint64_t item) const {
  uint32_t n = 0;
  for (const auto& [slot, id] : held) n += id == item;
  return n;
}

physical::v1::Basis FakeLink::DrawBasis(const link::v1::Create& create) {
  switch (create.basis()) {
    case link::v1::BASIS_CHOICE_Z:
      return physical::v1::BASIS_Z;
    case link::v1::BASIS_CHOICE_X:
      return physical::v1::BASIS_X;
    case link::v1::BASIS_CHOICE_Y:
      return physical::v1::BASIS_Y;
    default:
      if (create.has_z_probability()) {
        return rng_.Bernoulli(create.z_probability()) ? physical::v1::BASIS_Z
                                                      : physical::v1::BASIS_X;
      }
      return rng_.Below(2) == 0 ? physical::v1::BASIS_Z : physical::v1::BASIS_X;
  }
}

void FakeLink::Serve() {
  if (busy_ || items_.empty() || cut_) return;
  // Round robin: the first request from the turn on whose keeping ends have
  // room in its window and a free slot.
  for (size_t k = 0; k < items_.size(); ++k) {
    const size_t i = (next_turn_ + k) % items_.size();
    Item& item = items_[i];
    bool room = true;
    for (int s = 0; s < 2; ++s) {
      if (!item.Keeps(s)) continue;
      const uint32_t w = item.create.window();
      if ((w != 0 && ends_[s].HeldBy(item.id) >= w) || ends_[s].pool->free_count() == 0) {
        room = false;
      }
    }
    if (!room) continue;
    next_turn_ = i + 1;
    busy_ = true;
    const uint64_t epoch = epoch_;
    const uint64_t id = item.id;
    if (fail_count_ > 0) {
      --fail_count_;
      const Item failed = item;
      items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i));
      sim_->Schedule(sim_->Now() + config_.cycle, [this, failed, epoch] {
        if (epoch != epoch_) return;
        busy_ = false;
        SendErr(0, failed, fail_code_, 0, 0);
        SendErr(1, failed, fail_code_, 0, 0);
        Serve();
      });
      return;
    }
    std::optional<uint32_t> slot[2];
    for (int s = 0; s < 2; ++s) {
      if (item.Keeps(s)) slot[s] = ends_[s].pool->Allocate();
    }
    running_ = {slot[0], slot[1]};
    const uint64_t attempts = rng_.Geometric(config_.p);
    sim_->Schedule(sim_->Now() + config_.cycle * static_cast<double>(attempts),
                   [this, id, a = slot[0], b = slot[1], epoch] {
                     if (epoch != epoch_) return;
                     Herald(id, a, b);
                   });
    return;
  }
}

void FakeLink::Herald(uint64_t item_id, std::optional<uint32_t> slot_a,
                      std::optional<uint32_t> slot_b) {
  busy_ = false;
  running_.reset();
  const std::optional<uint32_t> slots[2] = {slot_a, slot_b};
  auto it = std::find_if(items_.begin(), items_.end(),
                         [&](const Item& i) { return i.id == item_id; });
  if (it == items_.end()) {  // cancelled while its pair was made: nobody wants it
    for (int s = 0; s < 2; ++s)
      if (slots[s]) (void)ends_[s].pool->Return(*slots[s]);
    return Serve();
  }
  const Item r = *it;
  if (++it->served == r.create.pairs()) items_.erase(it);
  const int bell = config_.bell >= 0 ? config_.bell : static_cast<int>(rng_.Below(4));
  Qubit qubit[2];
  for (int s = 0; s < 2; ++s) {
    qubit[s] = Qubit{NodeOf(s), slots[s] ? *slots[s] : kVirtualSlot + next_virtual_++};
  }
  quantum_->AddPair(qubit[0], qubit[1], bell);
  End& origin = ends_[r.side];
  link::v1::PairId id;
  id.set_origin(NodeOf(r.side));
  id.set_partner(NodeOf(1 - r.side));
  id.set_sequence(origin.next_sequence++);
  heralds_.push_back({id, sim_->Now(), r.create.purpose_id(), {qubit[0], qubit[1]}});
  HeraldRecord& record = heralds_.back();
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
    ok.set_link(config_.name);
    if (slots[s]) {
      ok.set_slot(*slots[s]);
    } else {  // measured at once: a random result (the fake keeps no state for it)
      ok.set_basis(DrawBasis(r.create));
      ok.set_result(static_cast<uint32_t>(rng_.Below(2)));
      record.basis[s] = ok.basis();
      record.result[s] = ok.result();
    }
    if (expire && s != expire_ok_side_) {  // never delivered here: the slot goes back
      quantum_->Free(qubit[s]);
      if (slots[s]) (void)ends_[s].pool->Return(*slots[s]);
      continue;
    }
    if (slots[s]) {
      ends_[s].held[*slots[s]] = r.id;
      ends_[s].pool->SetOwner(*slots[s], &ends_[s]);
    }
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

void FakeLink::SendErr(int side, const Item& r, link::v1::ErrorCode code, uint64_t from,
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
    if (running_->first) (void)ends_[0].pool->Return(*running_->first);
    if (running_->second) (void)ends_[1].pool->Return(*running_->second);
    running_.reset();
  }
  items_.clear();
  busy_ = false;
}

// ---- RecordingNetListener ----

void RecordingNetListener::OnPair(const EndPair& pair) {
  Delivered d{pair, pair.measured ? std::nullopt : quantum->PartnerOf({node, pair.slot})};
  pairs.push_back(d);
  if (on_pair) on_pair(pair);
  if (auto_release && !pair.measured) (void)pool->Release(pair.slot);
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

const FakeLink::HeraldRecord* CircuitWorld::HeraldOf(const link::v1::PairId& id) const {
  for (const auto& [name, l] : links_) {
    for (const auto& h : l->heralds()) {
      if (h.id.origin() == id.origin() && h.id.sequence() == id.sequence() &&
          h.id.partner() == id.partner()) {
        return &h;
      }
    }
  }
  return nullptr;
}

std::optional<Qubit> CircuitWorld::QubitOf(const std::string& node,
                                           const link::v1::PairId& id) const {
  if (const FakeLink::HeraldRecord* h = HeraldOf(id)) {
    for (const Qubit& q : h->qubit)
      if (q.node == node) return q;
  }
  return std::nullopt;
}

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
