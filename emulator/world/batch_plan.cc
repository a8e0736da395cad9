#include "emulator/world/batch_plan.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "emulator/physics/heralded_state.h"
#include "stack/heralding_model.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;

constexpr uint64_t kUnbounded = std::numeric_limits<uint64_t>::max();
// Deadlines this far out (about 146 years) count as none, so that every time
// computed below fits in int64 nanoseconds.
constexpr uint64_t kLatestDeadlineNs =
    static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 2);

bool KeepsWithoutSlot(const pv::Generate& g) {
  return g.measure_basis() == pv::BASIS_UNSPECIFIED && !g.has_slot() && g.slots_size() == 0;
}

// S + cycles * cycle, or nullopt if not representable.
std::optional<Time> After(Time start, uint64_t cycles, int64_t cycle_ns) {
  const int64_t room = std::numeric_limits<int64_t>::max() - start.nanos();
  if (cycles > static_cast<uint64_t>(room / cycle_ns)) return std::nullopt;
  return Time::FromNanos(start.nanos() + static_cast<int64_t>(cycles) * cycle_ns);
}

}  // namespace

absl::Duration CycleOf(const LinkSpec& link) {
  return std::max(AttemptCycle(link), absl::Nanoseconds(1));
}

BatchPlan PlanBatch(const LinkSpec& link, const pv::Generate& a, const pv::Generate& b, Time start,
                    Rng& rng, Time down_at, uint32_t pairs) {
  BatchPlan plan;
  plan.start = start;
  if (start.is_infinite()) {
    plan.never_ends = true;
    return plan;
  }
  const int64_t c = absl::ToInt64Nanoseconds(CycleOf(link));
  auto finish = [&](pv::Outcome outcome, uint64_t attempts, uint64_t cycles) {
    plan.outcome = outcome;
    plan.attempts = attempts;
    const std::optional<Time> end = After(start, cycles, c);
    if (!end) {
      plan.never_ends = true;
      return;
    }
    plan.end = plan.deliver[0] = plan.deliver[1] = *end;
  };

  if (a.queue_id() != b.queue_id()) {  // PHYS-B6
    finish(pv::OUTCOME_QUEUE_MISMATCH, 0, 1);
    return plan;
  }
  if (a.idle_cycles() > 0 || b.idle_cycles() > 0 || KeepsWithoutSlot(a) || KeepsWithoutSlot(b)) {
    const uint64_t n = std::max<uint64_t>({a.idle_cycles(), b.idle_cycles(), 1});  // PHYS-B7
    finish(pv::OUTCOME_IDLE, 0, n);
    return plan;
  }

  plan.p_success = physics::AttemptSuccessProbability(link, a.alpha(), b.alpha());  // PHYS-B8
  uint64_t deadline_ns = kUnbounded;
  for (uint64_t d : {a.deadline_ns(), b.deadline_ns()}) {
    if (d != 0 && d <= kLatestDeadlineNs) deadline_ns = std::min(deadline_ns, d);
  }
  uint64_t allowed = kUnbounded;  // PHYS-B10: attempts k with t_k < D
  if (deadline_ns != kUnbounded) {
    const int64_t d = static_cast<int64_t>(deadline_ns);
    allowed = d <= start.nanos() ? 0 : static_cast<uint64_t>((d - start.nanos() + c - 1) / c);
  }
  // PHYS-B17: the successes follow each other; success j comes N_j attempts
  // after success j - 1 (or the start), each N_j ~ Geometric(p), drawn in order.
  uint64_t used = 0;
  for (uint32_t j = 0; j < std::max<uint32_t>(pairs, 1); ++j) {
    const uint64_t left = allowed == kUnbounded ? kUnbounded : allowed - used;
    uint64_t n = left == 0 ? kUnbounded : rng.Geometric(plan.p_success);  // PHYS-B9
    if (n != kUnbounded && !down_at.is_infinite()) {  // PHYS-L1: a success on a cut link fails
      const std::optional<Time> t_n =
          n > kUnbounded - used ? std::nullopt : After(start, used + n - 1, c);
      if (!t_n || *t_n >= down_at) n = kUnbounded;
    }
    if (left != kUnbounded && n > left) {
      finish(pv::OUTCOME_DEADLINE, allowed, allowed);  // PHYS-B11
      return plan;
    }
    const std::optional<Time> end =
        n == kUnbounded || n > kUnbounded - used ? std::nullopt : After(start, used + n, c);
    if (!end) {
      plan.attempts = used;
      plan.never_ends = true;  // PHYS-B13
      return plan;
    }
    used += n;
    PairPlan pair;  // PHYS-B12
    pair.attempts = n;
    pair.end = *end;
    pair.pair_time = Time::FromNanos(end->nanos() - c);
    pair.deliver[0] = pair.pair_time + HeraldDelay(link, true);
    pair.deliver[1] = pair.pair_time + HeraldDelay(link, false);
    plan.successes.push_back(pair);
  }
  const PairPlan& last = plan.successes.back();
  plan.outcome = pv::OUTCOME_SUCCESS;
  plan.attempts = used;
  plan.end = last.end;
  plan.pair_time = last.pair_time;
  plan.deliver[0] = last.deliver[0];
  plan.deliver[1] = last.deliver[1];
  return plan;
}

}  // namespace qnet::world
