#include "emulator/world/world.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "emulator/physics/heralded_state.h"
#include "emulator/physics/intercept_resend.h"
#include "emulator/physics/qubit_registry.h"
#include "emulator/world/batch_plan.h"
#include "stack/heralding_model.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;
namespace rv = results::v1;
using physics::QubitId;

// A refused request: the Error sent back (PHYS-E1).
struct Refusal {
  pv::ErrorCode code;
  std::string detail;
  std::optional<uint32_t> slot;
};

Refusal Refuse(pv::ErrorCode code, std::string detail,
               std::optional<uint32_t> slot = std::nullopt) {
  return Refusal{code, std::move(detail), slot};
}

std::optional<physics::Basis> BasisOf(pv::Basis basis) {
  switch (basis) {
    case pv::BASIS_Z:
      return physics::Basis::kZ;
    case pv::BASIS_X:
      return physics::Basis::kX;
    case pv::BASIS_Y:
      return physics::Basis::kY;
    default:
      return std::nullopt;
  }
}

rv::DropReason DropReasonOf(pv::ErrorCode code) {
  switch (code) {
    case pv::ERROR_CODE_VERSION:
      return rv::DROP_REASON_VERSION_MISMATCH;
    case pv::ERROR_CODE_MALFORMED:
      return rv::DROP_REASON_MALFORMED_FRAME;
    case pv::ERROR_CODE_UNKNOWN_LINK:
      return rv::DROP_REASON_UNKNOWN_LINK;
    case pv::ERROR_CODE_UNEXPECTED:
      return rv::DROP_REASON_UNEXPECTED_FRAME;
    default:
      return rv::DROP_REASON_PHYSICS_ERROR;
  }
}

// PHYS-B17: at most this many pairs in one batch.
constexpr uint32_t kMaxBatchPairs = 4096;

// The slots a keep Generate offers, in the order they are filled.
std::vector<uint32_t> SlotsOf(const pv::Generate& g) {
  if (g.slots_size() > 0) return {g.slots().begin(), g.slots().end()};
  if (g.has_slot()) return {g.slot()};
  return {};
}

bool Keeps(const pv::Generate& g) { return g.measure_basis() == pv::BASIS_UNSPECIFIED; }

// How many pairs an end can take in this batch (PHYS-B17).
uint32_t CapacityOf(const pv::Generate& g) {
  const uint32_t asked = std::max<uint32_t>(g.pairs(), 1);
  if (!Keeps(g)) return asked;
  const uint32_t slots = static_cast<uint32_t>(SlotsOf(g).size());
  return g.pairs() == 0 ? slots : std::min(asked, slots);
}

// The basis of the j-th pair (from 0) of a measure-directly end.
pv::Basis BasisOfPair(const pv::Generate& g, size_t j) {
  return j < static_cast<size_t>(g.measure_bases_size()) ? g.measure_bases(static_cast<int>(j))
                                                          : g.measure_basis();
}

}  // namespace

class World::Impl {
 public:
  Impl(const Topology& topology, Rng rng, Output* output, WorldOptions options);

  void Handle(const std::string& node, const pv::NodeToWorld& request, Time now);
  uint64_t Intercepted(const std::string& link) const {
    auto it = links_.find(link);
    return it == links_.end() ? 0 : it->second.intercepted;
  }

  uint64_t operations = 0;
  uint64_t errors = 0;

 private:
  struct NodeState {
    std::string name;
    HardwareSpec hardware;
    bool said_hello = false;
    // Per slot: until when a generation batch owns it (Infinite while the
    // batch waits for the peer's Generate). PHYS-B14.
    std::vector<Time> reserved_until;
    Rng rng;
  };
  struct LinkState {
    LinkState(LinkSpec s, uint32_t a, uint32_t b, Rng r) : spec(std::move(s)), node{a, b}, rng(r) {}
    LinkSpec spec;
    uint32_t node[2];  // side a, side b
    Rng rng;
    uint64_t last_batch[2] = {0, 0};
    std::optional<pv::Generate> pending[2];
    Time pending_at[2];  // when each pending Generate arrived
    Time free_at = Time::Zero();  // end of the latest batch
    uint64_t pair_seq = 0;
    Time down_at = Time::Infinite();  // PHYS-L1
    std::optional<Rng> eve_rng;       // PHYS-EV2: the attacker's own stream
    uint64_t intercepted = 0;         // PHYS-EV5
  };

  void Reply(const std::string& node, pv::WorldToNode message, Time at);
  void Reject(const std::string& node, const Refusal& refusal, Time now, pv::Error context);
  std::optional<Refusal> CheckSlot(const NodeState& n, uint32_t index, uint32_t slot,
                                   Time now) const;

  void OnHello(const std::string& sender, const pv::Hello& hello, Time now);
  std::optional<Refusal> OnGenerate(uint32_t index, const pv::Generate& g, Time now);
  std::optional<Refusal> OnFree(uint32_t index, const pv::Free& f, Time now);
  std::optional<Refusal> OnMeasure(uint32_t index, const pv::Measure& m, Time now);
  std::optional<Refusal> OnGate(uint32_t index, const pv::Gate& g, Time now);
  std::optional<Refusal> OnBellMeasure(uint32_t index, const pv::BellMeasure& m, Time now);
  void OnBye(uint32_t index);
  std::optional<Refusal> OnInit(uint32_t index, const pv::Init& init, Time now);
  void OnProbe(uint32_t index, const pv::Probe& probe, Time now);

 public:
  absl::Status SetLinkDown(const std::string& link, Time at);

 private:
  void RunBatch(LinkState& link, const pv::Generate& a, const pv::Generate& b, Time start);
  // The start a Generate that arrived at `arrival` asks for (PHYS-B4a).
  Time RequestedStart(const pv::Generate& g, Time arrival) const;
  void MaybeIntercept(LinkState& link, uint64_t pair_seq, physics::Matrix4* rho, Time at);
  void Release(LinkState& link, int side);

  Output* output_;
  const WorldOptions options_;
  std::vector<NodeState> nodes_;
  absl::flat_hash_map<std::string, uint32_t> node_index_;
  absl::flat_hash_map<std::string, LinkState> links_;
  std::unique_ptr<physics::QubitRegistry> registry_;
};

World::Impl::Impl(const Topology& topology, Rng rng, Output* output, WorldOptions options)
    : output_(output), options_(options) {
  std::vector<HardwareSpec> hardware;
  for (const NodeSpec& spec : topology.nodes) {
    const HardwareSpec* h = topology.HardwareOf(spec.name);
    NodeState n{spec.name, h ? *h : HardwareSpec{}, false, {}, rng.Fork("node/" + spec.name)};
    n.reserved_until.assign(n.hardware.memories, Time::Zero());
    node_index_[spec.name] = static_cast<uint32_t>(nodes_.size());
    hardware.push_back(n.hardware);
    nodes_.push_back(std::move(n));
  }
  registry_ = std::make_unique<physics::QubitRegistry>(std::move(hardware));
  for (const LinkSpec& spec : topology.links) {
    auto a = node_index_.find(spec.a), b = node_index_.find(spec.b);
    if (a == node_index_.end() || b == node_index_.end()) continue;  // the loader rejects these
    auto [it, fresh] = links_.emplace(
        spec.name, LinkState(spec, a->second, b->second, rng.Fork("link/" + spec.name)));
    if (fresh && spec.eavesdropper != LinkSpec::Eavesdropper::kNone)
      it->second.eve_rng = rng.Fork("eve/" + spec.name);
  }
  for (const EventSpec& event : topology.events) {  // PHYS-L3
    const Time at = Time::FromNanos(static_cast<int64_t>(std::llround(event.at_s * 1e9)));
    if (event.kind == EventKind::kCutLink) {
      (void)SetLinkDown(event.target, at);
      continue;
    }
    for (const LinkSpec& spec : topology.links)
      if (spec.a == event.target || spec.b == event.target) (void)SetLinkDown(spec.name, at);
  }
}

absl::Status World::Impl::SetLinkDown(const std::string& link, Time at) {
  auto it = links_.find(link);
  if (it == links_.end()) return absl::NotFoundError(absl::StrCat("no link '", link, "'"));
  it->second.down_at = std::min(it->second.down_at, at);
  return absl::OkStatus();
}

void World::Impl::Reply(const std::string& node, pv::WorldToNode message, Time at) {
  message.set_version(1);
  output_->Deliver(node, std::move(message), at);
}

void World::Impl::Reject(const std::string& node, const Refusal& refusal, Time now,
                         pv::Error context) {
  ++errors;
  context.set_code(refusal.code);
  context.set_detail(refusal.detail);
  if (refusal.slot) context.set_slot(*refusal.slot);
  rv::TraceRecord record;
  record.set_time_ns(now.nanos());
  record.set_node("qworld");
  rv::Drop* drop = record.mutable_drop();
  drop->set_reason(DropReasonOf(refusal.code));
  drop->set_detail(
      absl::StrCat(pv::ErrorCode_Name(refusal.code), " from ", node, ": ", refusal.detail));
  drop->set_link(context.link());
  output_->Record(std::move(record));
  pv::WorldToNode reply;
  *reply.mutable_error() = std::move(context);
  Reply(node, std::move(reply), now);
}

void World::Impl::Handle(const std::string& node, const pv::NodeToWorld& request, Time now) {
  ++operations;
  if (request.version() != 1) {  // PHYS-2
    Reject(node,
           Refuse(pv::ERROR_CODE_VERSION, absl::StrCat("version ", request.version(), " is not 1")),
           now, {});
    return;
  }
  if (request.body_case() == pv::NodeToWorld::kHello) {
    OnHello(node, request.hello(), now);
    return;
  }
  if (request.body_case() == pv::NodeToWorld::BODY_NOT_SET) {
    Reject(node, Refuse(pv::ERROR_CODE_MALFORMED, "request without a body"), now, {});
    return;
  }
  auto it = node_index_.find(node);
  if (it == node_index_.end() && !node.empty()) {
    Reject(
        node,
        Refuse(pv::ERROR_CODE_UNKNOWN_NODE, absl::StrCat("no node '", node, "' in the topology")),
        now, {});
    return;
  }
  if (it == node_index_.end() || !nodes_[it->second].said_hello) {  // PHYS-S2
    Reject(node, Refuse(pv::ERROR_CODE_UNEXPECTED, "request before Hello"), now, {});
    return;
  }
  const uint32_t index = it->second;
  pv::Error context;
  std::optional<Refusal> refusal;
  switch (request.body_case()) {
    case pv::NodeToWorld::kGenerate:
      context.set_link(request.generate().link());
      context.set_batch(request.generate().batch());
      refusal = OnGenerate(index, request.generate(), now);
      break;
    case pv::NodeToWorld::kFree:
      refusal = OnFree(index, request.free(), now);
      break;
    case pv::NodeToWorld::kMeasure:
      context.set_request_id(request.measure().request_id());
      refusal = OnMeasure(index, request.measure(), now);
      break;
    case pv::NodeToWorld::kGate:
      refusal = OnGate(index, request.gate(), now);
      break;
    case pv::NodeToWorld::kBellMeasure:
      context.set_request_id(request.bell_measure().request_id());
      refusal = OnBellMeasure(index, request.bell_measure(), now);
      break;
    case pv::NodeToWorld::kBye:
      OnBye(index);
      break;
    case pv::NodeToWorld::kInit:
      refusal = OnInit(index, request.init(), now);
      break;
    case pv::NodeToWorld::kProbe:
      OnProbe(index, request.probe(), now);  // never answered (PHYS-T6)
      break;
    default:
      refusal = Refuse(pv::ERROR_CODE_MALFORMED, "unknown request");
      break;
  }
  if (refusal) Reject(node, *refusal, now, std::move(context));
}

void World::Impl::OnHello(const std::string& sender, const pv::Hello& hello, Time now) {
  const std::string& reply_to = sender.empty() ? hello.node() : sender;
  if (!sender.empty() && sender != hello.node()) {
    Reject(reply_to,
           Refuse(pv::ERROR_CODE_UNEXPECTED,
                  absl::StrCat("this connection serves '", sender, "', not '", hello.node(), "'")),
           now, {});
    return;
  }
  auto it = node_index_.find(hello.node());
  if (it == node_index_.end()) {  // PHYS-S1
    Reject(reply_to,
           Refuse(pv::ERROR_CODE_UNKNOWN_NODE,
                  absl::StrCat("no node '", hello.node(), "' in the topology")),
           now, {});
    return;
  }
  NodeState& n = nodes_[it->second];
  if (n.said_hello) {
    Reject(reply_to, Refuse(pv::ERROR_CODE_UNEXPECTED, "second Hello"), now, {});
    return;
  }
  n.said_hello = true;
  pv::WorldToNode ack;
  ack.mutable_hello_ack()->set_node(n.name);
  ack.mutable_hello_ack()->set_memories(n.hardware.memories);
  Reply(reply_to, std::move(ack), now);
}

std::optional<Refusal> World::Impl::CheckSlot(const NodeState& n, uint32_t index, uint32_t slot,
                                              Time now) const {
  if (slot >= n.hardware.memories) {  // PHYS-E4
    return Refuse(pv::ERROR_CODE_BAD_SLOT,
                  absl::StrCat("slot ", slot, " >= memories ", n.hardware.memories), slot);
  }
  if (now < n.reserved_until[slot]) {  // PHYS-E6
    return Refuse(pv::ERROR_CODE_SLOT_BUSY,
                  absl::StrCat("slot ", slot, " belongs to a generation batch not yet heralded"),
                  slot);
  }
  if (!registry_->Holds(QubitId{index, slot})) {  // PHYS-E7
    return Refuse(pv::ERROR_CODE_EMPTY_SLOT, absl::StrCat("slot ", slot, " holds no qubit"), slot);
  }
  return std::nullopt;
}

std::optional<Refusal> World::Impl::OnGenerate(uint32_t index, const pv::Generate& g, Time now) {
  auto it = links_.find(g.link());
  if (it == links_.end()) {  // PHYS-E3
    return Refuse(pv::ERROR_CODE_UNKNOWN_LINK, absl::StrCat("no link '", g.link(), "'"));
  }
  LinkState& link = it->second;
  const int side = link.node[0] == index ? 0 : link.node[1] == index ? 1 : -1;
  if (side < 0) {  // PHYS-E5
    return Refuse(pv::ERROR_CODE_NOT_LINK_END,
                  absl::StrCat(nodes_[index].name, " is not an end of link ", g.link()));
  }
  if (g.batch() == 0) return Refuse(pv::ERROR_CODE_MALFORMED, "batch numbers start at 1");
  if (!(g.alpha() >= 0 && g.alpha() <= 1)) {
    return Refuse(pv::ERROR_CODE_MALFORMED, absl::StrCat("alpha ", g.alpha(), " is not in [0, 1]"));
  }
  const bool keep = Keeps(g);
  if (!keep && !BasisOf(g.measure_basis())) {
    return Refuse(pv::ERROR_CODE_MALFORMED, absl::StrCat("unknown basis ", g.measure_basis()));
  }
  // PHYS-B19: the fields of a batch of several pairs.
  if (g.pairs() > kMaxBatchPairs) {
    return Refuse(pv::ERROR_CODE_MALFORMED,
                  absl::StrCat(g.pairs(), " pairs in one batch (at most ", kMaxBatchPairs, ")"));
  }
  if (g.has_slot() && g.slots_size() > 0) {
    return Refuse(pv::ERROR_CODE_MALFORMED, "both slot and slots are set");
  }
  if (keep && g.measure_bases_size() > 0) {
    return Refuse(pv::ERROR_CODE_MALFORMED, "measure_bases on a Generate that keeps its qubits");
  }
  for (int j = 0; j < g.measure_bases_size(); ++j) {
    if (!BasisOf(g.measure_bases(j))) {
      return Refuse(pv::ERROR_CODE_MALFORMED,
                    absl::StrCat("unknown basis ", g.measure_bases(j), " for pair ", j + 1));
    }
  }
  if (g.measure_bases_size() > static_cast<int>(kMaxBatchPairs)) {
    return Refuse(pv::ERROR_CODE_MALFORMED, "more bases than pairs a batch may have");
  }
  const std::vector<uint32_t> slots = SlotsOf(g);
  if (slots.size() > kMaxBatchPairs) {
    return Refuse(pv::ERROR_CODE_MALFORMED, "more slots than pairs a batch may have");
  }
  // PHYS-B2, PHYS-B3: batch numbering.
  if (g.batch() <= link.last_batch[side]) {
    return Refuse(pv::ERROR_CODE_BAD_BATCH,
                  absl::StrCat("batch ", g.batch(), " of link ", g.link(), " was already sent"));
  }
  if (link.pending[side]) {
    return Refuse(pv::ERROR_CODE_BAD_BATCH, absl::StrCat("batch ", link.pending[side]->batch(),
                                                         " still waits for the peer's Generate"));
  }
  const int peer = 1 - side;
  const std::optional<pv::Generate>& waiting = link.pending[peer];
  const uint64_t peer_current = waiting ? waiting->batch() : link.last_batch[peer];
  if (g.batch() < peer_current || (!waiting && g.batch() == peer_current)) {
    return Refuse(pv::ERROR_CODE_BAD_BATCH,
                  absl::StrCat("batch ", g.batch(), " is behind the peer's batch ", peer_current));
  }
  NodeState& n = nodes_[index];
  for (size_t j = 0; j < slots.size(); ++j) {
    const uint32_t slot = slots[j];
    if (slot >= n.hardware.memories) {
      return Refuse(pv::ERROR_CODE_BAD_SLOT,
                    absl::StrCat("slot ", slot, " >= memories ", n.hardware.memories), slot);
    }
    if (std::find(slots.begin(), slots.begin() + static_cast<std::ptrdiff_t>(j), slot) !=
        slots.begin() + static_cast<std::ptrdiff_t>(j)) {
      return Refuse(pv::ERROR_CODE_MALFORMED, absl::StrCat("slot ", slot, " named twice"), slot);
    }
    if (keep && (now < n.reserved_until[slot] || registry_->Holds(QubitId{index, slot}))) {
      return Refuse(pv::ERROR_CODE_SLOT_BUSY,
                    absl::StrCat("slot ", slot, " is not free for a new qubit"), slot);
    }
  }
  link.last_batch[side] = g.batch();
  if (waiting && waiting->batch() == g.batch()) {
    const pv::Generate other = *waiting;
    const Time other_at = link.pending_at[peer];
    Release(link, peer);
    link.pending[peer].reset();
    // PHYS-B4, PHYS-B4a: the batch starts when both ends asked for it, and
    // never before the link's previous batch ended.
    const Time start = std::max({link.free_at, RequestedStart(g, now), RequestedStart(other, other_at)});
    RunBatch(link, side == 0 ? g : other, side == 0 ? other : g, start);
    return std::nullopt;
  }
  if (waiting) {  // the peer's batch can never be paired: it is superseded (PHYS-B3)
    pv::Error context;
    context.set_link(link.spec.name);
    context.set_batch(waiting->batch());
    const std::string& peer_name = nodes_[link.node[peer]].name;
    const Refusal r = Refuse(
        pv::ERROR_CODE_BAD_BATCH,
        absl::StrCat("batch ", waiting->batch(), " superseded by the peer's batch ", g.batch()));
    Release(link, peer);
    link.pending[peer].reset();
    Reject(peer_name, r, now, std::move(context));
  }
  link.pending[side] = g;
  link.pending_at[side] = now;
  if (keep) {
    for (uint32_t slot : slots) n.reserved_until[slot] = Time::Infinite();
  }
  return std::nullopt;
}

Time World::Impl::RequestedStart(const pv::Generate& g, Time arrival) const {
  if (g.start_ns() == 0 || options_.max_start_lag <= absl::ZeroDuration()) return arrival;
  const Time asked = g.start_ns() >= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                         ? arrival
                         : Time::FromNanos(static_cast<int64_t>(g.start_ns()));
  return std::clamp(asked, arrival - options_.max_start_lag, arrival);
}

void World::Impl::Release(LinkState& link, int side) {
  const std::optional<pv::Generate>& g = link.pending[side];
  if (!g || !Keeps(*g)) return;
  for (uint32_t slot : SlotsOf(*g)) nodes_[link.node[side]].reserved_until[slot] = Time::Zero();
}

void World::Impl::RunBatch(LinkState& link, const pv::Generate& a, const pv::Generate& b,
                           Time start) {
  const pv::Generate* g[2] = {&a, &b};
  const uint32_t pairs = std::min(CapacityOf(a), CapacityOf(b));  // PHYS-B17
  const BatchPlan plan = PlanBatch(link.spec, a, b, start, link.rng, link.down_at, pairs);
  bool keep[2];
  std::vector<uint32_t> slots[2];
  for (int i = 0; i < 2; ++i) {
    keep[i] = Keeps(*g[i]) && (g[i]->has_slot() || g[i]->slots_size() > 0);
    if (!keep[i]) continue;
    // PHYS-B14, PHYS-B20: a used slot belongs to the batch until its pair's
    // herald reaches the end, an unused one until the batch's last herald does.
    slots[i] = SlotsOf(*g[i]);
    for (size_t j = 0; j < slots[i].size(); ++j) {
      Time until = plan.never_ends ? Time::Infinite() : plan.deliver[i];
      if (j < plan.successes.size()) until = plan.successes[j].deliver[i];
      nodes_[link.node[i]].reserved_until[slots[i][j]] = until;
    }
  }
  link.free_at = plan.never_ends ? Time::Infinite() : plan.end;

  if (!plan.never_ends) {
    rv::TraceRecord batch;
    batch.set_time_ns(plan.end.nanos());
    batch.set_node("qworld");
    batch.mutable_batch()->set_link(link.spec.name);
    batch.mutable_batch()->set_batch(a.batch());
    batch.mutable_batch()->set_outcome(plan.outcome);
    batch.mutable_batch()->set_attempts(plan.attempts);
    batch.mutable_batch()->set_start_ns(plan.start.nanos());
    batch.mutable_batch()->set_pairs(static_cast<uint32_t>(plan.successes.size()));
    if (link.spec.scheme == HeraldingScheme::kSingleClick) {
      batch.mutable_batch()->set_alpha_a(a.alpha());
      batch.mutable_batch()->set_alpha_b(b.alpha());
    }
    output_->Record(std::move(batch));
  }

  uint64_t success_attempts = 0;
  for (size_t j = 0; j < plan.successes.size(); ++j) {
    const PairPlan& pair = plan.successes[j];
    success_attempts += pair.attempts;
    pv::Herald herald[2];
    for (int i = 0; i < 2; ++i) {
      herald[i].set_link(link.spec.name);
      herald[i].set_batch(a.batch());
      herald[i].set_outcome(pv::OUTCOME_SUCCESS);
      herald[i].set_time_ns(pair.end.nanos());
      herald[i].set_attempts(pair.attempts);
      herald[i].set_queue_id(g[i]->queue_id());
      herald[i].set_index(static_cast<uint32_t>(j + 1));
      // PHYS-B18: only the batch's last herald says no more.
      herald[i].set_more(j + 1 < plan.successes.size() || plan.outcome != pv::OUTCOME_SUCCESS ||
                         plan.never_ends);
    }
    const uint64_t pair_seq = ++link.pair_seq;
    physics::HeraldedState state =
        physics::SampleHeraldedState(link.spec, a.alpha(), b.alpha(), link.rng);
    MaybeIntercept(link, pair_seq, &state.rho, pair.end);  // PHYS-EV3: before anyone holds it
    const QubitId qubit[2] = {QubitId{link.node[0], keep[0] ? slots[0][j] : 0},
                              QubitId{link.node[1], keep[1] ? slots[1][j] : 0}};
    const Time later = std::max(pair.deliver[0], pair.deliver[1]);
    double truth =
        physics::DensityMatrix(state.rho).FidelityTo(physics::BellVector(state.bell_index));
    if (keep[0] && keep[1]) {
      // The slots were checked free and reserved since; this cannot fail.
      if (registry_->AddPair(qubit[0], qubit[1], state.rho, pair.pair_time).ok()) {
        truth = *registry_->BellFidelity(qubit[0], qubit[1], state.bell_index, later);  // PHYS-T2
      }
    } else {
      physics::DensityMatrix rho(state.rho);
      int remaining = 0;  // index of the next qubit in rho
      for (int i = 0; i < 2; ++i) {
        if (keep[i]) {
          ++remaining;
          continue;
        }
        const pv::Basis basis = BasisOfPair(*g[i], j);
        const int bit = rho.MeasureAndRemove(remaining, *BasisOf(basis), link.rng);
        herald[i].set_basis(basis);
        herald[i].set_result(physics::ApplyReadoutError(
            bit, nodes_[link.node[i]].hardware.readout_error, link.rng));  // PHYS-M3
      }
      for (int i = 0; i < 2; ++i) {
        if (keep[i]) {
          const physics::Matrix2 single = rho.matrix();
          (void)registry_->AddQubit(qubit[i], single, pair.pair_time);
        }
      }
    }
    for (int i = 0; i < 2; ++i) {
      herald[i].set_bell_state(static_cast<pv::BellState>(state.bell_index + 1));
      herald[i].set_pair_seq(pair_seq);
      if (keep[i]) herald[i].set_slot(slots[i][j]);
    }
    rv::TraceRecord record;
    record.set_time_ns(later.nanos());
    record.set_node("qworld");
    rv::HeraldTruth* t = record.mutable_herald_truth();
    t->set_link(link.spec.name);
    t->set_pair_seq(pair_seq);
    t->set_bell_state(static_cast<pv::BellState>(state.bell_index + 1));
    t->set_true_fidelity(truth);
    t->set_attempts(pair.attempts);
    output_->Record(std::move(record));
    for (int i = 0; i < 2; ++i) {
      pv::WorldToNode message;
      *message.mutable_herald() = std::move(herald[i]);
      Reply(nodes_[link.node[i]].name, std::move(message), pair.deliver[i]);
    }
  }
  if (plan.never_ends || plan.outcome == pv::OUTCOME_SUCCESS) return;
  // The batch ends without (more) success: DEADLINE, IDLE or QUEUE_MISMATCH.
  for (int i = 0; i < 2; ++i) {
    pv::WorldToNode message;
    pv::Herald* herald = message.mutable_herald();
    herald->set_link(link.spec.name);
    herald->set_batch(a.batch());
    herald->set_outcome(plan.outcome);
    herald->set_time_ns(plan.end.nanos());
    herald->set_attempts(plan.attempts - success_attempts);
    herald->set_queue_id(g[i]->queue_id());
    Reply(nodes_[link.node[i]].name, std::move(message), plan.deliver[i]);
  }
}

// PHYS-EV2..EV5: the attacker acts on the fresh pair, before memory noise
// starts and whatever the ends do with it (keep or measure directly); the
// heralds are not changed.
void World::Impl::MaybeIntercept(LinkState& link, uint64_t pair_seq, physics::Matrix4* rho,
                                 Time at) {
  if (!link.eve_rng) return;
  Rng& rng = *link.eve_rng;
  if (link.spec.intercept_fraction < 1 && !rng.Bernoulli(link.spec.intercept_fraction)) return;
  const physics::Interception seen = physics::InterceptResend(rho, rng);
  ++link.intercepted;
  rv::TraceRecord record;
  record.set_time_ns(at.nanos());
  record.set_node("qworld");
  rv::Intercepted* i = record.mutable_intercepted();
  i->set_link(link.spec.name);
  i->set_pair_seq(pair_seq);
  i->set_basis(seen.basis == physics::Basis::kZ ? pv::BASIS_Z : pv::BASIS_X);
  i->set_result(static_cast<uint32_t>(seen.bit));
  output_->Record(std::move(record));
}

std::optional<Refusal> World::Impl::OnFree(uint32_t index, const pv::Free& f, Time now) {
  if (auto r = CheckSlot(nodes_[index], index, f.slot(), now)) return r;
  (void)registry_->Free(QubitId{index, f.slot()});
  return std::nullopt;
}

std::optional<Refusal> World::Impl::OnMeasure(uint32_t index, const pv::Measure& m, Time now) {
  const std::optional<physics::Basis> basis = BasisOf(m.basis());
  if (!basis) return Refuse(pv::ERROR_CODE_MALFORMED, absl::StrCat("measure basis ", m.basis()));
  NodeState& n = nodes_[index];
  if (auto r = CheckSlot(n, index, m.slot(), now)) return r;
  absl::StatusOr<int> bit =
      registry_->Measure(QubitId{index, m.slot()}, *basis, m.keep(), now, n.rng);
  if (!bit.ok())
    return Refuse(pv::ERROR_CODE_EMPTY_SLOT, std::string(bit.status().message()), m.slot());
  pv::WorldToNode reply;
  reply.mutable_measure_result()->set_request_id(m.request_id());
  reply.mutable_measure_result()->set_result(*bit);
  reply.mutable_measure_result()->set_time_ns(now.nanos());
  Reply(n.name, std::move(reply), now);
  return std::nullopt;
}

std::optional<Refusal> World::Impl::OnGate(uint32_t index, const pv::Gate& g, Time now) {
  if (!std::isfinite(g.angle()))
    return Refuse(pv::ERROR_CODE_MALFORMED, "gate angle is not finite");
  NodeState& n = nodes_[index];
  const QubitId q{index, g.slot()};
  absl::Status status;
  switch (g.kind()) {
    case pv::GATE_KIND_CNOT:
    case pv::GATE_KIND_CZ: {
      if (!g.has_target()) return Refuse(pv::ERROR_CODE_MALFORMED, "two-qubit gate without target");
      if (g.target() == g.slot()) return Refuse(pv::ERROR_CODE_MALFORMED, "target equals control");
      if (auto r = CheckSlot(n, index, g.slot(), now)) return r;
      if (auto r = CheckSlot(n, index, g.target(), now)) return r;
      status = registry_->Apply(
          g.kind() == pv::GATE_KIND_CNOT ? physics::Gate2::kCnot : physics::Gate2::kCz, q,
          QubitId{index, g.target()}, now);
      break;
    }
    case pv::GATE_KIND_X:
    case pv::GATE_KIND_Y:
    case pv::GATE_KIND_Z:
    case pv::GATE_KIND_H:
    case pv::GATE_KIND_S:
    case pv::GATE_KIND_RX:
    case pv::GATE_KIND_RY:
    case pv::GATE_KIND_RZ: {
      static constexpr physics::Gate1 kGates[] = {
          physics::Gate1::kX, physics::Gate1::kY,  physics::Gate1::kZ,  physics::Gate1::kH,
          physics::Gate1::kS, physics::Gate1::kRX, physics::Gate1::kRY, physics::Gate1::kRZ};
      if (auto r = CheckSlot(n, index, g.slot(), now)) return r;
      status = registry_->Apply(kGates[g.kind() - pv::GATE_KIND_X], q, g.angle(), now);
      break;
    }
    default:
      return Refuse(pv::ERROR_CODE_MALFORMED, absl::StrCat("unknown gate kind ", g.kind()));
  }
  if (status.code() == absl::StatusCode::kResourceExhausted) {  // PHYS-Q5
    return Refuse(pv::ERROR_CODE_TOO_LARGE, std::string(status.message()), g.slot());
  }
  if (!status.ok())
    return Refuse(pv::ERROR_CODE_UNEXPECTED, std::string(status.message()), g.slot());
  return std::nullopt;
}

std::optional<Refusal> World::Impl::OnBellMeasure(uint32_t index, const pv::BellMeasure& m,
                                                  Time now) {
  if (m.slot_a() == m.slot_b()) return Refuse(pv::ERROR_CODE_MALFORMED, "slot_a equals slot_b");
  NodeState& n = nodes_[index];
  if (auto r = CheckSlot(n, index, m.slot_a(), now)) return r;
  if (auto r = CheckSlot(n, index, m.slot_b(), now)) return r;
  absl::StatusOr<int> pauli =
      registry_->BellMeasure(QubitId{index, m.slot_a()}, QubitId{index, m.slot_b()}, now, n.rng);
  if (!pauli.ok()) {
    const bool too_large = pauli.status().code() == absl::StatusCode::kResourceExhausted;
    return Refuse(too_large ? pv::ERROR_CODE_TOO_LARGE : pv::ERROR_CODE_UNEXPECTED,
                  std::string(pauli.status().message()));
  }
  pv::WorldToNode reply;
  reply.mutable_bell_measure_result()->set_request_id(m.request_id());
  reply.mutable_bell_measure_result()->set_bell_state(static_cast<pv::BellState>(*pauli + 1));
  reply.mutable_bell_measure_result()->set_time_ns(now.nanos());
  Reply(n.name, std::move(reply), now);
  return std::nullopt;
}

std::optional<Refusal> World::Impl::OnInit(uint32_t index, const pv::Init& init, Time now) {
  const NodeState& n = nodes_[index];
  const uint32_t slot = init.slot();
  if (slot >= n.hardware.memories) {  // PHYS-E4
    return Refuse(pv::ERROR_CODE_BAD_SLOT,
                  absl::StrCat("slot ", slot, " >= memories ", n.hardware.memories), slot);
  }
  if (now < n.reserved_until[slot] || registry_->Holds(QubitId{index, slot})) {  // PHYS-E6
    return Refuse(pv::ERROR_CODE_SLOT_BUSY,
                  absl::StrCat("slot ", slot, " is not free for a new qubit"), slot);
  }
  // PHYS-M9: |0><0|, up to date now.
  (void)registry_->AddQubit(QubitId{index, slot}, physics::BasisState(physics::Basis::kZ, 0), now);
  return std::nullopt;
}

void World::Impl::OnProbe(uint32_t index, const pv::Probe& probe, Time now) {
  const NodeState& n = nodes_[index];
  rv::TraceRecord record;
  record.set_time_ns(now.nanos());
  record.set_node("qworld");
  rv::PairTruth* truth = record.mutable_pair_truth();
  truth->set_label(probe.label());
  truth->set_node(n.name);
  truth->set_slot(probe.slot());
  truth->set_bell_state(probe.bell_state());
  truth->set_true_fidelity(-1);
  const QubitId q{index, probe.slot()};
  const std::vector<QubitId> group = registry_->GroupOf(q);
  std::optional<QubitId> partner;
  if (group.size() == 2) {
    partner = group[0] == q ? group[1] : group[0];
    truth->set_partner_node(nodes_[partner->node].name);
    truth->set_partner_slot(partner->slot);
  }
  if (probe.slot() >= n.hardware.memories) {
    truth->set_detail(absl::StrCat("slot ", probe.slot(), " >= memories ", n.hardware.memories));
  } else if (now < n.reserved_until[probe.slot()]) {
    truth->set_detail(
        absl::StrCat("slot ", probe.slot(), " belongs to a generation batch not yet heralded"));
  } else if (group.empty()) {
    truth->set_detail(absl::StrCat("slot ", probe.slot(), " holds no qubit"));
  } else if (!partner) {
    truth->set_detail(absl::StrCat("the qubit's group has ", group.size(), " qubits, not 2"));
  } else if (probe.bell_state() < pv::BELL_STATE_PHI_PLUS ||
             probe.bell_state() > pv::BELL_STATE_PSI_MINUS) {
    truth->set_detail(absl::StrCat("bell_state ", probe.bell_state(), " is not a Bell state"));
  } else {
    // Bell projectors are symmetric under exchanging the two qubits, so the
    // order (prober, partner) gives the same value as the link's order.
    absl::StatusOr<double> f = registry_->BellFidelity(q, *partner, probe.bell_state() - 1, now);
    if (f.ok()) {
      truth->set_true_fidelity(*f);
    } else {
      truth->set_detail(std::string(f.status().message()));
    }
  }
  output_->Record(std::move(record));
}

void World::Impl::OnBye(uint32_t index) {
  for (auto& [name, link] : links_) {
    for (int side = 0; side < 2; ++side) {
      if (link.node[side] != index || !link.pending[side]) continue;
      Release(link, side);
      link.pending[side].reset();
    }
  }
  NodeState& n = nodes_[index];
  for (uint32_t slot = 0; slot < n.hardware.memories; ++slot) {
    (void)registry_->Free(QubitId{index, slot});
    n.reserved_until[slot] = Time::Zero();
  }
  n.said_hello = false;
}

World::World(const Topology& topology, Rng rng, Output* output, WorldOptions options)
    : impl_(std::make_unique<Impl>(topology, rng, output, options)) {}
World::~World() = default;

void World::Handle(const std::string& node, const pv::NodeToWorld& request, Time now) {
  impl_->Handle(node, request, now);
}
absl::Status World::SetLinkDown(const std::string& link, Time at) {
  return impl_->SetLinkDown(link, at);
}
uint64_t World::operations() const { return impl_->operations; }
uint64_t World::errors() const { return impl_->errors; }
uint64_t World::intercepted(const std::string& link) const { return impl_->Intercepted(link); }

}  // namespace qnet::world
