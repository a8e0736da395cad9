// Statistical checks of heralded generation through the World: the emulated
// numbers agree with the analytic model (stack/heralding_model.h) and with the
// heralded density matrices, within 3 standard errors.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "emulator/physics/heralded_state.h"
#include "emulator/world/batch_plan.h"
#include "emulator/world/testing/recording_output.h"
#include "emulator/world/world.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;
namespace rv = results::v1;
using testing::GenerateArgs;
using testing::RecordingOutput;

struct Outcome {
  pv::Herald a, b;
  Time at_a, at_b;
};

class Driver {
 public:
  explicit Driver(const LinkSpec& link, HardwareSpec hw = {}, uint64_t seed = 5) {
    topology_ = testing::TwoNodes(link);
    hw.name = "hw";
    hw.memories = 4;
    topology_.hardware[0] = hw;
    world_ = std::make_unique<World>(topology_, Rng(seed), &out_);
    world_->Handle("a", testing::Hello("a"), Time::Zero());
    world_->Handle("b", testing::Hello("b"), Time::Zero());
  }
  // Runs batch `batch` starting at `now` and returns both heralds.
  Outcome Batch(GenerateArgs a, GenerateArgs b, uint64_t batch, Time now) {
    out_.deliveries.clear();
    a.batch = b.batch = batch;
    world_->Handle("a", testing::Generate(a), now);
    world_->Handle("b", testing::Generate(b), now);
    const auto ha = out_.To("a", pv::WorldToNode::kHerald);
    const auto hb = out_.To("b", pv::WorldToNode::kHerald);
    EXPECT_EQ(ha.size(), 1u);
    EXPECT_EQ(hb.size(), 1u);
    return Outcome{ha.at(0).message.herald(), hb.at(0).message.herald(), ha.at(0).at, hb.at(0).at};
  }
  void Send(const std::string& node, const pv::NodeToWorld& m, Time now) {
    world_->Handle(node, m, now);
  }
  const RecordingOutput& out() const { return out_; }
  World& world() { return *world_; }

 private:
  Topology topology_;
  RecordingOutput out_;
  std::unique_ptr<World> world_;
};

// Whether the two results of a pair heralded as Bell state `bell` (proto
// value) should differ when both ends measure in `basis`.
bool ExpectDiffer(uint32_t bell, pv::Basis basis) {
  const int index = static_cast<int>(bell) - 1;
  return basis == pv::BASIS_Z   ? (index & 1)
         : basis == pv::BASIS_X ? (index & 2)
                                : ((index & 1) ^ (index >> 1)) == 0;
}

// PHYS-B9, PHYS-B12 and the rate contract: with both ends asking for the
// next batch as soon as the herald arrives, batches follow without a gap, and
// the mean number of attempts is 1/p within 3 standard errors, so the
// delivered rate is p / cycle.
TEST(WorldStatisticsTest, MeanAttemptsIsOneOverPAndBatchesLeaveNoGap) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kSingleClick;
  link.length_km = 2;
  link.efficiency = 0.5;
  link.dark_count_prob = 1e-3;
  link.visibility = 0.9;
  Driver d(link);
  const double alpha_a = 0.2, alpha_b = 0.15;
  const double p = SingleClick(link, alpha_a, alpha_b).total();
  const absl::Duration cycle = AttemptCycle(link);
  const int n = 20000;
  GenerateArgs ga, gb;
  ga.alpha = alpha_a;
  gb.alpha = alpha_b;
  const Time t0 = Time::FromNanos(777);
  Time now = t0;
  double attempts = 0;
  for (int i = 1; i <= n; ++i) {
    const Outcome o = d.Batch(ga, gb, i, now);
    ASSERT_EQ(o.a.outcome(), pv::OUTCOME_SUCCESS);
    attempts += static_cast<double>(o.a.attempts());
    ASSERT_EQ(o.at_a, o.at_b);  // symmetric link: both hear at time_ns
    ASSERT_EQ(o.at_a.nanos(), static_cast<int64_t>(o.a.time_ns()));
    d.Send("a", testing::Free(0), o.at_a);
    d.Send("b", testing::Free(0), o.at_b);
    now = o.at_a;
  }
  EXPECT_EQ(d.world().errors(), 0u);
  // PHYS-B16: one Batch record per batch, starting where the previous ended.
  const auto batches = d.out().Records(rv::TraceRecord::kBatch);
  ASSERT_EQ(batches.size(), static_cast<size_t>(n));
  for (int i = 1; i < n; ++i) {
    ASSERT_EQ(batches[i].batch().start_ns(), batches[i - 1].time_ns());
    ASSERT_EQ(batches[i].batch().alpha_a(), alpha_a);
    ASSERT_EQ(batches[i].batch().alpha_b(), alpha_b);
  }
  EXPECT_EQ(batches[0].batch().start_ns(), static_cast<uint64_t>(t0.nanos()));
  // No gap: total time is exactly attempts * cycle.
  EXPECT_EQ(now - t0, cycle * static_cast<int64_t>(attempts));
  const double mean = attempts / n;
  const double se = std::sqrt(1 - p) / p / std::sqrt(n);
  RecordProperty("mean_attempts", absl::StrCat(mean, " (1/p = ", 1 / p, ", se ", se, ")"));
  EXPECT_NEAR(mean, 1 / p, 3 * se) << "p = " << p;
  const double rate = n / absl::ToDoubleSeconds(now - t0);
  const double model_rate = p / absl::ToDoubleSeconds(cycle);
  EXPECT_NEAR(rate, model_rate, 3 * model_rate * se * p);
}

// PHYS-T1, PHYS-T2: the truth record of a Werner pair has fidelity F when the
// memories are perfect, and (3 w l^2 + 1)/4 with depolarising memories, l =
// exp(-dt/T), dt = the time from the pair's creation to the later herald.
TEST(WorldStatisticsTest, WernerTruthFidelity) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kWerner;
  link.p_success = 0.3;
  link.fidelity = 0.87;
  link.length_km = 10;
  link.midpoint_fraction = 0.3;
  for (double depolar_s : {kInfiniteSeconds, 2e-4}) {
    HardwareSpec hw;
    hw.depolar_s = depolar_s;
    Driver d(link, hw);
    Time now = Time::Zero();
    for (int i = 1; i <= 300; ++i) {
      const Outcome o = d.Batch({}, {}, i, now);
      ASSERT_EQ(o.a.outcome(), pv::OUTCOME_SUCCESS);
      d.Send("a", testing::Free(0), o.at_a);
      d.Send("b", testing::Free(0), o.at_b);
      now = std::max(o.at_a, o.at_b);
    }
    const auto truths = d.out().Records(rv::TraceRecord::kHeraldTruth);
    ASSERT_EQ(truths.size(), 300u);
    const double dt =
        absl::ToDoubleSeconds(std::max(HeraldDelay(link, true), HeraldDelay(link, false)));
    const double w = (4 * link.fidelity - 1) / 3;
    const double l = std::isinf(depolar_s) ? 1.0 : std::exp(-dt / depolar_s);
    const double expected = (3 * w * l * l + 1) / 4;
    double sum = 0;
    for (const auto& r : truths) {
      EXPECT_NEAR(r.herald_truth().true_fidelity(), expected, 1e-12);
      sum += r.herald_truth().true_fidelity();
    }
    EXPECT_NEAR(sum / truths.size(), expected, 1e-12);
    RecordProperty(std::isinf(depolar_s) ? "truth_perfect_memory" : "truth_depolarising",
                   absl::StrCat(sum / truths.size(), " (expected ", expected, ")"));
    if (!std::isinf(depolar_s)) {
      EXPECT_LT(expected, link.fidelity - 0.1);
    }
  }
}

// PHYS-B12, PHYS-M3: measured directly, Werner pairs give QBER 2(1-F)/3 in Z
// and in X against the heralded Bell state, within 3 standard errors.
TEST(WorldStatisticsTest, WernerMeasureDirectlyQber) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kWerner;
  link.p_success = 0.5;
  link.fidelity = 0.85;
  Driver d(link);
  Time now = Time::Zero();
  const int n = 20000;
  int errors[2] = {0, 0}, counts[2] = {0, 0};
  for (int i = 1; i <= n; ++i) {
    GenerateArgs g;
    g.slot.reset();
    g.basis = i % 2 ? pv::BASIS_Z : pv::BASIS_X;
    const Outcome o = d.Batch(g, g, i, now);
    ASSERT_EQ(o.a.outcome(), pv::OUTCOME_SUCCESS);
    ASSERT_EQ(o.a.basis(), g.basis);
    ASSERT_FALSE(o.a.has_slot());
    errors[i % 2] += (o.a.result() != o.b.result()) != ExpectDiffer(o.a.bell_state(), g.basis);
    ++counts[i % 2];
    now = Time::FromNanos(static_cast<int64_t>(o.a.time_ns()));
  }
  const double q = 2 * (1 - link.fidelity) / 3;
  for (int k = 0; k < 2; ++k) {
    const double se = std::sqrt(q * (1 - q) / counts[k]);
    RecordProperty(k ? "werner_qber_z" : "werner_qber_x",
                   absl::StrCat(static_cast<double>(errors[k]) / counts[k], " (expected ", q,
                                ", se ", se, ")"));
    EXPECT_NEAR(static_cast<double>(errors[k]) / counts[k], q, 3 * se) << (k ? "Z" : "X");
  }
  for (const auto& r : d.out().Records(rv::TraceRecord::kHeraldTruth))
    EXPECT_NEAR(r.herald_truth().true_fidelity(), link.fidelity, 1e-12);
}

// PHYS-H2, PHYS-B12: single-click pairs measured directly give the QBER the
// heralded density matrix predicts: Q_Z = rho_00 + rho_33, Q_X = (1 - <XX>)/2
// for Psi+ (and the same for Psi-); their truth fidelity is HeraldedFidelity().
TEST(WorldStatisticsTest, SingleClickMeasureDirectlyQberMatchesDensityMatrix) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kSingleClick;
  link.length_km = 4;
  link.midpoint_fraction = 0.4;
  link.efficiency = 0.6;
  link.dark_count_prob = 0.01;
  link.visibility = 0.9;
  const double alpha = 0.25;
  const physics::Matrix4 rho =
      physics::SingleClickState(SingleClick(link, alpha, alpha), link.visibility, false);
  const double q_z = (rho(0, 0) + rho(3, 3)).real();
  const double xx = 2 * (rho(0, 3) + rho(1, 2)).real();
  const double q_x = (1 - xx) / 2;
  Driver d(link);
  Time now = Time::Zero();
  const int n = 20000;
  int errors[2] = {0, 0}, counts[2] = {0, 0};
  for (int i = 1; i <= n; ++i) {
    GenerateArgs g;
    g.slot.reset();
    g.alpha = alpha;
    g.basis = i % 2 ? pv::BASIS_Z : pv::BASIS_X;
    const Outcome o = d.Batch(g, g, i, now);
    errors[i % 2] += (o.a.result() != o.b.result()) != ExpectDiffer(o.a.bell_state(), g.basis);
    ++counts[i % 2];
    now = Time::FromNanos(static_cast<int64_t>(o.a.time_ns()));
  }
  const double q[2] = {q_x, q_z};
  for (int k = 0; k < 2; ++k) {
    const double se = std::sqrt(q[k] * (1 - q[k]) / counts[k]);
    RecordProperty(k ? "single_click_qber_z" : "single_click_qber_x",
                   absl::StrCat(static_cast<double>(errors[k]) / counts[k], " (expected ", q[k],
                                ", se ", se, ")"));
    EXPECT_NEAR(static_cast<double>(errors[k]) / counts[k], q[k], 3 * se) << (k ? "Z" : "X");
  }
  EXPECT_GT(q_z, 0.05);
  const double f = HeraldedFidelity(link, alpha);
  for (const auto& r : d.out().Records(rv::TraceRecord::kHeraldTruth))
    EXPECT_NEAR(r.herald_truth().true_fidelity(), f, 1e-12);
}

// PHYS-B12: one end keeps, the other measures directly; the kept qubit is
// projected accordingly (Psi pairs of fidelity 1 always disagree in Z).
TEST(WorldStatisticsTest, KeepAtOneEndMeasureAtTheOther) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kWerner;
  link.p_success = 0.4;
  link.fidelity = 1.0;
  Driver d(link);
  Time now = Time::Zero();
  for (int i = 1; i <= 200; ++i) {
    GenerateArgs keep, measure;
    measure.slot.reset();
    measure.basis = pv::BASIS_Z;
    const Outcome o = d.Batch(keep, measure, i, now);
    ASSERT_TRUE(o.a.has_slot());
    ASSERT_FALSE(o.b.has_slot());
    now = std::max(o.at_a, o.at_b);
    d.Send("a", testing::Measure(i, 0, pv::BASIS_Z), now);
    const auto r = d.out().To("a", pv::WorldToNode::kMeasureResult);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_NE(r[0].message.measure_result().result(), o.b.result());
  }
  EXPECT_EQ(d.world().errors(), 0u);
}

}  // namespace
}  // namespace qnet::world
