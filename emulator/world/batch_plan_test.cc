#include "emulator/world/batch_plan.h"

#include "gtest/gtest.h"
#include "stack/heralding_model.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;

LinkSpec Werner(double p) {
  LinkSpec l;
  l.name = "ab";
  l.scheme = HeraldingScheme::kWerner;
  l.p_success = p;
  l.fidelity = 0.9;
  l.attempt_s = 10e-6;
  return l;
}

pv::Generate Gen(uint64_t queue_id = 1, uint64_t deadline_ns = 0, uint32_t idle = 0) {
  pv::Generate g;
  g.set_link("ab");
  g.set_batch(1);
  g.set_queue_id(queue_id);
  g.set_slot(0);
  g.set_deadline_ns(deadline_ns);
  g.set_idle_cycles(idle);
  return g;
}

const Time kStart = Time::FromNanos(1'000'000);

// PHYS-B6: different queue ids end the batch after one cycle, no attempt.
TEST(BatchPlanTest, QueueMismatchEndsAfterOneCycle) {
  Rng rng(1);
  const BatchPlan plan = PlanBatch(Werner(0.5), Gen(1), Gen(2), kStart, rng);
  EXPECT_EQ(plan.outcome, pv::OUTCOME_QUEUE_MISMATCH);
  EXPECT_EQ(plan.attempts, 0u);
  EXPECT_EQ(plan.end, kStart + absl::Microseconds(10));
  EXPECT_EQ(plan.deliver[0], plan.end);
  EXPECT_EQ(plan.deliver[1], plan.end);
}

// PHYS-B7: idle for max(idle_cycles, 1) cycles; a keep without slot idles one cycle.
TEST(BatchPlanTest, IdleLastsTheLongerIdleCount) {
  Rng rng(1);
  BatchPlan plan = PlanBatch(Werner(0.5), Gen(1, 0, 3), Gen(1, 0, 5), kStart, rng);
  EXPECT_EQ(plan.outcome, pv::OUTCOME_IDLE);
  EXPECT_EQ(plan.end, kStart + absl::Microseconds(50));
  pv::Generate no_slot = Gen();
  no_slot.clear_slot();
  plan = PlanBatch(Werner(0.5), Gen(), no_slot, kStart, rng);
  EXPECT_EQ(plan.outcome, pv::OUTCOME_IDLE);
  EXPECT_EQ(plan.end, kStart + absl::Microseconds(10));
  // Measure directly needs no slot.
  no_slot.set_measure_basis(pv::BASIS_X);
  plan = PlanBatch(Werner(1.0), Gen(), no_slot, kStart, rng);
  EXPECT_EQ(plan.outcome, pv::OUTCOME_SUCCESS);
}

// PHYS-B10, PHYS-B11: attempts start only before the earlier non-zero
// deadline; a deadline batch ends after the allowed attempts.
TEST(BatchPlanTest, DeadlineCountsAttemptsStartingBeforeIt) {
  Rng rng(1);
  const LinkSpec link = Werner(1e-12);
  const int64_t c = 10'000;
  struct Case {
    int64_t deadline_offset_ns;
    uint64_t allowed;
  } cases[] = {{0, 0}, {-5, 0}, {1, 1}, {c, 1}, {c + 1, 2}, {5 * c + c / 2, 6}};
  for (const Case& k : cases) {
    const uint64_t d = static_cast<uint64_t>(kStart.nanos() + k.deadline_offset_ns);
    const BatchPlan plan = PlanBatch(link, Gen(1, d), Gen(1, 0), kStart, rng);
    EXPECT_EQ(plan.outcome, pv::OUTCOME_DEADLINE) << k.deadline_offset_ns;
    EXPECT_EQ(plan.attempts, k.allowed) << k.deadline_offset_ns;
    EXPECT_EQ(plan.end, Time::FromNanos(kStart.nanos() + static_cast<int64_t>(k.allowed) * c));
    EXPECT_EQ(plan.deliver[0], plan.end);
  }
  // The earlier of two deadlines counts.
  const BatchPlan plan =
      PlanBatch(link, Gen(1, kStart.nanos() + 3 * c), Gen(1, kStart.nanos() + 2 * c), kStart, rng);
  EXPECT_EQ(plan.attempts, 2u);
}

// PHYS-B12: on success t_N = S + (N-1) cycle, time_ns = t_N + cycle, and side
// i hears at t_N + HeraldDelay(i); the nearer node first.
TEST(BatchPlanTest, SuccessTimesOnAnAsymmetricLink) {
  LinkSpec link = Werner(0.05);
  link.length_km = 40;
  link.midpoint_fraction = 0.2;  // a is near the station
  const absl::Duration cycle = CycleOf(link);
  EXPECT_EQ(cycle, AttemptCycle(link));
  Rng rng(3);
  for (int i = 0; i < 200; ++i) {
    const BatchPlan plan = PlanBatch(link, Gen(), Gen(), kStart, rng);
    ASSERT_EQ(plan.outcome, pv::OUTCOME_SUCCESS);
    const Time t_n = kStart + cycle * static_cast<int64_t>(plan.attempts - 1);
    EXPECT_EQ(plan.pair_time, t_n);
    EXPECT_EQ(plan.end, t_n + cycle);
    EXPECT_EQ(plan.deliver[0], t_n + HeraldDelay(link, true));
    EXPECT_EQ(plan.deliver[1], t_n + HeraldDelay(link, false));
    EXPECT_LT(plan.deliver[0], plan.deliver[1]);
    EXPECT_LE(plan.deliver[1], plan.end);
  }
}

// PHYS-B13: p = 0 without a deadline never ends; with one it is a deadline.
TEST(BatchPlanTest, ZeroProbability) {
  Rng rng(1);
  EXPECT_TRUE(PlanBatch(Werner(0), Gen(), Gen(), kStart, rng).never_ends);
  const BatchPlan plan = PlanBatch(Werner(0), Gen(1, kStart.nanos() + 100'000), Gen(), kStart, rng);
  EXPECT_FALSE(plan.never_ends);
  EXPECT_EQ(plan.outcome, pv::OUTCOME_DEADLINE);
  EXPECT_EQ(plan.attempts, 10u);
}

}  // namespace
}  // namespace qnet::world
