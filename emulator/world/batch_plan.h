// The timing and outcome of one heralded-generation batch, once qworld has
// both ends' Generate (specs/physical.md PHYS-B4..PHYS-B13, the generation
// contract). Pure: depends only on the link, the two requests, the start time
// and the random stream, so the World and its tests share it.
#ifndef QNET_EMULATOR_WORLD_BATCH_PLAN_H_
#define QNET_EMULATOR_WORLD_BATCH_PLAN_H_

#include <cstdint>

#include "qnet/physical/v1/physical.pb.h"
#include "stack/random.h"
#include "stack/time.h"
#include "stack/topology.h"

namespace qnet::world {

struct BatchPlan {
  physical::v1::Outcome outcome = physical::v1::OUTCOME_UNSPECIFIED;
  uint64_t attempts = 0;
  Time start;            // S
  Time end;              // Herald.time_ns, the same for both ends
  Time pair_time;        // success: t_N, when the pair exists (and is measured)
  Time deliver[2];       // when the herald reaches side a [0] and side b [1]
  double p_success = 0;  // per attempt (0 unless attempts were possible)
  // No success can ever happen and there is no deadline (p = 0, or the first
  // success lies beyond the representable time): no herald is sent (PHYS-B13).
  bool never_ends = false;
};

// The attempt cycle in ns, at least 1 (PHYS-B5).
absl::Duration CycleOf(const LinkSpec& link);

// Plans the batch paired from `a` (side a's Generate) and `b` (side b's),
// starting at `start`. Samples the number of attempts until success from `rng`
// (geometric, never looped). `down_at`: the link is cut from then on (PHYS-L1):
// an attempt starting at or after it fails, so the batch ends DEADLINE at its
// deadline, or never (PHYS-B13) without one. The draw is made either way, so
// the link's random stream does not depend on the cut.
BatchPlan PlanBatch(const LinkSpec& link, const physical::v1::Generate& a,
                    const physical::v1::Generate& b, Time start, Rng& rng,
                    Time down_at = Time::Infinite());

}  // namespace qnet::world

#endif  // QNET_EMULATOR_WORLD_BATCH_PLAN_H_
