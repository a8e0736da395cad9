// The timing and outcome of one heralded-generation batch, once qworld has
// both ends' Generate (specs/physical.md PHYS-B4..PHYS-B13, the generation
// contract, and PHYS-B17..PHYS-B21 for batches of several pairs). Pure:
// depends only on the link, the two requests, the start time, the number of
// pairs and the random stream, so the World and its tests share it.
#ifndef QNET_EMULATOR_WORLD_BATCH_PLAN_H_
#define QNET_EMULATOR_WORLD_BATCH_PLAN_H_

#include <cstdint>
#include <vector>

#include "qnet/physical/v1/physical.pb.h"
#include "stack/random.h"
#include "stack/time.h"
#include "stack/topology.h"

namespace qnet::world {

// One heralded success of a batch.
struct PairPlan {
  uint64_t attempts = 0;  // attempts since the previous success (or the batch start)
  Time pair_time;         // t_j: when the pair exists (and is measured)
  Time end;               // the herald's time_ns: t_j + cycle, the same for both ends
  Time deliver[2];        // when the herald reaches side a [0] and side b [1]
};

struct BatchPlan {
  // The outcome of the batch's last herald: SUCCESS when every pair asked
  // for was heralded, else DEADLINE, IDLE or QUEUE_MISMATCH.
  physical::v1::Outcome outcome = physical::v1::OUTCOME_UNSPECIFIED;
  uint64_t attempts = 0;  // attempts of the whole batch
  Time start;             // S
  Time end;               // time_ns of the batch's last herald, the same for both ends
  Time pair_time;         // SUCCESS: t_N of the last pair
  Time deliver[2];        // when the last herald reaches side a [0] and side b [1]
  // Every success in order; the last one is the batch's last herald when
  // `outcome` is SUCCESS, else a DEADLINE herald follows at `end`.
  std::vector<PairPlan> successes;
  double p_success = 0;  // per attempt (0 unless attempts were possible)
  // After `successes` no herald follows: no success can ever happen and there
  // is no deadline (p = 0, a cut link, or a success beyond the representable
  // time; PHYS-B13).
  bool never_ends = false;
};

// The attempt cycle in ns, at least 1 (PHYS-B5).
absl::Duration CycleOf(const LinkSpec& link);

// Plans the batch paired from `a` (side a's Generate) and `b` (side b's),
// starting at `start`, for up to `pairs` (>= 1) successes. Samples the number
// of attempts until each success from `rng` (geometric, never looped).
// `down_at`: the link is cut from then on (PHYS-L1): an attempt starting at or
// after it fails, so the batch ends DEADLINE at its deadline, or never
// (PHYS-B13) without one. The draws are made either way, so the link's random
// stream does not depend on the cut.
BatchPlan PlanBatch(const LinkSpec& link, const physical::v1::Generate& a,
                    const physical::v1::Generate& b, Time start, Rng& rng,
                    Time down_at = Time::Infinite(), uint32_t pairs = 1);

}  // namespace qnet::world

#endif  // QNET_EMULATOR_WORLD_BATCH_PLAN_H_
