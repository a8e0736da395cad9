#include "link/testing/fake_physical.h"

#include <algorithm>
#include <utility>

#include "stack/heralding_model.h"

namespace qnet::link::testing {

using physical::v1::Herald;

FakeLinkPhysics::FakeLinkPhysics(sim::Simulator* sim, const LinkSpec& link, Rng rng)
    : sim_(sim), link_(link), rng_(std::move(rng)) {
  for (int i = 0; i < 2; ++i) {
    sides_[i].fake = this;
    sides_[i].is_a = i == 0;
  }
}

void FakeLinkPhysics::Side::Free(const physical::v1::Free& request) {
  if (occupied.erase(request.slot()) == 0) ++fake->violations_.free_empty_slot;
}

void FakeLinkPhysics::OnGenerate(bool side_a, const physical::v1::Generate& request) {
  const int i = side_a ? 0 : 1;
  Side& side = sides_[i];
  if (side.refuse_count > 0) {  // a refusal changes nothing (PHYS-E1)
    --side.refuse_count;
    return SendError(i, side.refuse_code, request.batch(), "refused by fault injection");
  }
  if (!side.batches_seen.insert(request.batch()).second) {
    ++violations_.repeated_batch;
    return;
  }
  // PHYS-B2, PHYS-B3: batch numbering against this end's and the other end's.
  const int other = 1 - i;
  if (request.batch() <= side.last_batch) {
    return SendError(i, physical::v1::ERROR_CODE_BAD_BATCH, request.batch(), "already sent");
  }
  std::optional<uint64_t> waiting;
  for (const auto& [batch, p] : pending_) {
    if (p.g[other] && !p.g[i]) waiting = batch;
  }
  if (waiting ? request.batch() < *waiting : request.batch() <= sides_[other].last_batch) {
    return SendError(i, physical::v1::ERROR_CODE_BAD_BATCH, request.batch(),
                     "behind the other end's batch");
  }
  if (waiting && *waiting < request.batch()) {
    pending_.erase(*waiting);
    SendError(other, physical::v1::ERROR_CODE_BAD_BATCH, *waiting, "superseded");
  }
  side.last_batch = request.batch();
  Pending& p = pending_[request.batch()];
  p.g[i] = request;
  if (p.g[0] && p.g[1]) {
    const physical::v1::Generate ga = *p.g[0], gb = *p.g[1];
    pending_.erase(request.batch());
    RunBatch(request.batch(), ga, gb);
  }
}

namespace {

// Result of end b given end a's result, for a perfect Bell state measured in
// the same basis at both ends: +1 correlation -> equal bits.
uint32_t PartnerResult(physical::v1::BellState bell, physical::v1::Basis basis, uint32_t result_a) {
  // Pauli correlations <PP>: Psi+: XX=+1, YY=+1, ZZ=-1; Psi-: all -1;
  // Phi+: XX=+1, YY=-1, ZZ=+1; Phi-: XX=-1, YY=+1, ZZ=+1.
  int corr = 1;
  using physical::v1::BASIS_X;
  using physical::v1::BASIS_Y;
  switch (bell) {
    case physical::v1::BELL_STATE_PSI_PLUS:
      corr = basis == physical::v1::BASIS_Z ? -1 : 1;
      break;
    case physical::v1::BELL_STATE_PSI_MINUS:
      corr = -1;
      break;
    case physical::v1::BELL_STATE_PHI_PLUS:
      corr = basis == BASIS_Y ? -1 : 1;
      break;
    case physical::v1::BELL_STATE_PHI_MINUS:
      corr = basis == BASIS_X ? -1 : 1;
      break;
    default:
      break;
  }
  return corr == 1 ? result_a : 1 - result_a;
}

}  // namespace

namespace {

std::vector<uint32_t> SlotsOf(const physical::v1::Generate& g) {
  if (g.slots_size() > 0) return {g.slots().begin(), g.slots().end()};
  if (g.has_slot()) return {g.slot()};
  return {};
}

bool Keeps(const physical::v1::Generate& g) {
  return g.measure_basis() == physical::v1::BASIS_UNSPECIFIED;
}

// PHYS-B17: the pairs an end can take in this batch.
uint32_t Capacity(const physical::v1::Generate& g) {
  const uint32_t asked = std::max<uint32_t>(g.pairs(), 1);
  if (!Keeps(g)) return asked;
  const uint32_t slots = static_cast<uint32_t>(SlotsOf(g).size());
  return g.pairs() == 0 ? slots : std::min(asked, slots);
}

physical::v1::Basis BasisOfPair(const physical::v1::Generate& g, int j) {
  return j < g.measure_bases_size() ? g.measure_bases(j) : g.measure_basis();
}

}  // namespace

void FakeLinkPhysics::RunBatch(uint64_t batch, const physical::v1::Generate& ga,
                               const physical::v1::Generate& gb) {
  const Time start = sim_->Now();
  const absl::Duration cycle = AttemptCycle(link_);
  BatchRecord rec;
  rec.batch = batch;
  rec.start = start;
  rec.queue_id_a = ga.queue_id();
  rec.queue_id_b = gb.queue_id();
  rec.alpha_a = ga.alpha();
  rec.alpha_b = gb.alpha();
  rec.slot_a = ga.has_slot() || ga.slots_size() > 0;
  rec.slot_b = gb.has_slot() || gb.slots_size() > 0;
  Herald h;
  h.set_link(link_.name);
  h.set_batch(batch);
  auto finish = [&](physical::v1::Outcome outcome, Time end, uint64_t attempts) {
    rec.outcome = outcome;
    rec.end = end;
    rec.attempts += attempts;
    batches_.push_back(rec);
    h.set_outcome(outcome);
    h.set_time_ns(end.nanos());
    h.set_attempts(attempts);
    h.set_more(false);
    Herald ha = h, hb = h;
    ha.set_queue_id(ga.queue_id());
    hb.set_queue_id(gb.queue_id());
    DeliverAt(0, ha, end);
    DeliverAt(1, hb, end);
  };
  if (ga.queue_id() != gb.queue_id())
    return finish(physical::v1::OUTCOME_QUEUE_MISMATCH, start + cycle, 0);
  const bool keep_a = Keeps(ga), keep_b = Keeps(gb);
  const std::vector<uint32_t> slots[2] = {SlotsOf(ga), SlotsOf(gb)};
  if (ga.idle_cycles() > 0 || gb.idle_cycles() > 0 || (keep_a && slots[0].empty()) ||
      (keep_b && slots[1].empty())) {
    const uint32_t n = std::max({ga.idle_cycles(), gb.idle_cycles(), 1u});
    return finish(physical::v1::OUTCOME_IDLE, start + cycle * n, 0);
  }
  double p = 0;
  switch (link_.scheme) {
    case HeraldingScheme::kSingleClick:
      p = SingleClick(link_, ga.alpha(), gb.alpha()).total();
      break;
    case HeraldingScheme::kDoubleClick:
      p = DoubleClick(link_).total();
      break;
    case HeraldingScheme::kWerner:
      p = link_.p_success;
      break;
  }
  uint64_t allowed = UINT64_MAX;
  const uint64_t da = ga.deadline_ns(), db = gb.deadline_ns();
  const uint64_t d = da == 0 ? db : (db == 0 ? da : std::min(da, db));
  if (d != 0) {
    const int64_t dn = static_cast<int64_t>(d);
    const int64_t c = absl::ToInt64Nanoseconds(cycle);
    allowed = dn <= start.nanos() ? 0 : static_cast<uint64_t>((dn - start.nanos() + c - 1) / c);
  }
  const physical::v1::Generate* g[2] = {&ga, &gb};
  const uint32_t pairs = std::min(Capacity(ga), Capacity(gb));
  uint64_t used = 0;
  for (uint32_t j = 0; j < pairs; ++j) {
    const uint64_t n = rng_.Geometric(p);
    if (allowed != UINT64_MAX && n > allowed - used) {
      return finish(physical::v1::OUTCOME_DEADLINE,
                    start + cycle * static_cast<int64_t>(allowed), allowed - used);
    }
    used += n;
    const Time t_n = start + cycle * static_cast<int64_t>(used - 1);
    const Time end = t_n + cycle;
    rec.attempts += n;
    ++rec.pairs;
    h.set_outcome(physical::v1::OUTCOME_SUCCESS);
    h.set_time_ns(end.nanos());
    h.set_attempts(n);
    h.set_index(j + 1);
    h.set_more(j + 1 < pairs);
    h.set_bell_state(rng_.Below(2) == 0 ? physical::v1::BELL_STATE_PSI_PLUS
                                        : physical::v1::BELL_STATE_PSI_MINUS);
    h.set_pair_seq(++pair_seq_);
    Herald out[2] = {h, h};
    const uint32_t result_a = static_cast<uint32_t>(rng_.Below(2));
    for (int i = 0; i < 2; ++i) {
      out[i].set_queue_id(g[i]->queue_id());
      if (Keeps(*g[i])) {
        const uint32_t slot = slots[i][j];
        if (sides_[i].occupied.count(slot)) ++violations_.generate_slot_in_use;
        out[i].set_slot(slot);
        sides_[i].occupied.insert(slot);
      } else {
        out[i].set_basis(BasisOfPair(*g[i], static_cast<int>(j)));
      }
    }
    const bool both_measure = !keep_a && !keep_b;
    if (!keep_a) out[0].set_result(result_a);
    if (!keep_b) {
      const bool same = both_measure && out[0].basis() == out[1].basis();
      out[1].set_result(same ? PartnerResult(h.bell_state(), out[1].basis(), result_a)
                             : static_cast<uint32_t>(rng_.Below(2)));
    }
    for (int i = 0; i < 2; ++i) {
      if (sides_[i].mutate_next_success) {
        auto mutate = std::move(sides_[i].mutate_next_success);
        sides_[i].mutate_next_success = nullptr;
        mutate(out[i]);
      }
      DeliverAt(i, out[i], t_n + HeraldDelay(link_, i == 0));
    }
    rec.end = end;
  }
  rec.outcome = physical::v1::OUTCOME_SUCCESS;
  batches_.push_back(rec);
}

void FakeLinkPhysics::DeliverAt(int side, Herald herald, Time at) {
  sim_->Schedule(at, [this, side, herald = std::move(herald)] {
    if (sides_[side].sink) sides_[side].sink(herald);
  });
}

void FakeLinkPhysics::SendError(int side, physical::v1::ErrorCode code, uint64_t batch,
                                const std::string& detail) {
  ++errors_sent_;
  physical::v1::Error error;
  error.set_code(code);
  error.set_detail(detail);
  error.set_link(link_.name);
  error.set_batch(batch);
  sim_->Schedule(sim_->Now() + error_delay_, [this, side, error = std::move(error)] {
    if (sides_[side].error_sink) sides_[side].error_sink(error);
  });
}

}  // namespace qnet::link::testing
