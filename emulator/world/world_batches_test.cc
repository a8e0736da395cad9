// Batches of several pairs and the shared start time (specs/physical.md
// PHYS-B4a, PHYS-B17 .. PHYS-B21): one pair of Generates heralds up to
// `pairs` successes, each at its own time, with the timing and statistics of
// as many single-pair batches back to back.
#include <cmath>
#include <memory>

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

LinkSpec Werner(double p, double fidelity = 1.0) {
  LinkSpec l;
  l.scheme = HeraldingScheme::kWerner;
  l.p_success = p;
  l.fidelity = fidelity;
  l.attempt_s = 10e-6;
  l.length_km = 0;
  return l;
}

class BatchWorld {
 public:
  explicit BatchWorld(const LinkSpec& link, int memories = 8, WorldOptions options = {},
                      uint64_t seed = 11)
      : topology_(testing::TwoNodes(link, memories)) {
    world_ = std::make_unique<World>(topology_, Rng(seed), &out_, options);
    world_->Handle("a", testing::Hello("a"), Time::Zero());
    world_->Handle("b", testing::Hello("b"), Time::Zero());
    out_.Clear();
  }
  void Send(const std::string& node, const pv::NodeToWorld& m, Time now) {
    world_->Handle(node, m, now);
  }
  std::vector<testing::Delivery> Heralds(const std::string& node) const {
    return out_.To(node, pv::WorldToNode::kHerald);
  }
  std::vector<testing::Delivery> Errors(const std::string& node) const {
    return out_.To(node, pv::WorldToNode::kError);
  }
  RecordingOutput& out() { return out_; }
  World& world() { return *world_; }

 private:
  Topology topology_;
  RecordingOutput out_;
  std::unique_ptr<World> world_;
};

GenerateArgs Keep(uint64_t batch, std::vector<uint32_t> slots) {
  GenerateArgs g;
  g.batch = batch;
  g.slot.reset();
  g.slots = std::move(slots);
  return g;
}

GenerateArgs MeasureDirectly(uint64_t batch, uint32_t pairs, std::vector<pv::Basis> bases = {}) {
  GenerateArgs g;
  g.batch = batch;
  g.slot.reset();
  g.pairs = pairs;
  g.basis = pv::BASIS_Z;
  g.bases = std::move(bases);
  return g;
}

// PHYS-B17, PHYS-B18, PHYS-B20: four slots at each end give four successes,
// heralded one by one with index 1..4, `more` on all but the last, each pair
// in the next slot at both ends, pair j N_j attempts after pair j - 1; the
// batch leaves no gap between its pairs, and over many batches the mean
// number of attempts per pair is 1/p (within 3 standard errors).
TEST(WorldBatchesTest, PHYS_B17_B18_FourSlotsGiveFourHeraldsBackToBack) {
  const double p = 0.05;
  BatchWorld w(Werner(p));
  const absl::Duration cycle = AttemptCycle(Werner(p));
  Time now = Time::FromNanos(1000);
  const Time t0 = now;
  double attempts = 0;
  const int batches = 2000;
  for (int b = 1; b <= batches; ++b) {
    w.out().Clear();
    w.Send("a", testing::Generate(Keep(b, {3, 1, 0, 2})), now);
    w.Send("b", testing::Generate(Keep(b, {0, 1, 2, 3})), now);
    const auto ha = w.Heralds("a"), hb = w.Heralds("b");
    ASSERT_EQ(ha.size(), 4u);
    ASSERT_EQ(hb.size(), 4u);
    Time previous_end = now;
    const uint32_t a_slots[] = {3, 1, 0, 2};
    for (int j = 0; j < 4; ++j) {
      const pv::Herald& x = ha[j].message.herald();
      const pv::Herald& y = hb[j].message.herald();
      ASSERT_EQ(x.outcome(), pv::OUTCOME_SUCCESS);
      ASSERT_EQ(x.index(), static_cast<uint32_t>(j + 1));
      ASSERT_EQ(x.more(), j < 3);
      ASSERT_EQ(y.more(), j < 3);
      ASSERT_EQ(x.slot(), a_slots[j]);
      ASSERT_EQ(y.slot(), static_cast<uint32_t>(j));
      ASSERT_EQ(x.pair_seq(), y.pair_seq());
      ASSERT_EQ(x.time_ns(), y.time_ns());
      ASSERT_EQ(x.attempts(), y.attempts());
      // Pair j exists N_j cycles after the previous pair's herald time.
      ASSERT_EQ(Time::FromNanos(static_cast<int64_t>(x.time_ns())),
                previous_end + cycle * static_cast<int64_t>(x.attempts()));
      ASSERT_EQ(ha[j].at, Time::FromNanos(static_cast<int64_t>(x.time_ns())));  // length 0
      previous_end = ha[j].at;
      attempts += static_cast<double>(x.attempts());
    }
    for (uint32_t s = 0; s < 4; ++s) {
      w.Send("a", testing::Free(s), previous_end);
      w.Send("b", testing::Free(s), previous_end);
    }
    now = previous_end;
  }
  EXPECT_EQ(w.world().errors(), 0u);
  const auto records = w.out().Records(rv::TraceRecord::kBatch);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().batch().pairs(), 4u);  // PHYS-B16
  EXPECT_EQ(now - t0, cycle * static_cast<int64_t>(attempts));
  const double n = 4.0 * batches;
  const double mean = attempts / n;
  const double se = std::sqrt(1 - p) / p / std::sqrt(n);
  EXPECT_NEAR(mean, 1 / p, 3 * se);
}

// PHYS-B17, PHYS-B19: the batch has as many pairs as the end that can take
// fewer; a measure-directly end measures pair j in measure_bases[j]; the
// keep end's unused slot is free again once the batch's last herald is in.
TEST(WorldBatchesTest, PHYS_B17_B19_FewerPairsOfTheTwoEndsAndBasisPerPair) {
  BatchWorld w(Werner(1.0));
  const Time now = Time::FromNanos(5000);
  w.Send("a", testing::Generate(Keep(1, {0, 1, 2})), now);
  w.Send("b", testing::Generate(MeasureDirectly(1, 2, {pv::BASIS_X, pv::BASIS_Y})), now);
  const auto ha = w.Heralds("a"), hb = w.Heralds("b");
  ASSERT_EQ(ha.size(), 2u);
  ASSERT_EQ(hb.size(), 2u);
  EXPECT_TRUE(hb[0].message.herald().more());
  EXPECT_FALSE(hb[1].message.herald().more());
  EXPECT_EQ(hb[0].message.herald().basis(), pv::BASIS_X);
  EXPECT_EQ(hb[1].message.herald().basis(), pv::BASIS_Y);
  EXPECT_FALSE(hb[0].message.herald().has_slot());
  EXPECT_EQ(ha[1].message.herald().slot(), 1u);
  // Slot 2 was not used: a keep Generate for it is accepted at the batch end,
  // slots 0 and 1 hold the collapsed qubits.
  const Time end = ha[1].at;
  w.out().Clear();
  w.Send("a", testing::Generate(Keep(2, {2})), end);
  w.Send("a", testing::Init(0), end);
  const auto errors = w.Errors("a");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message.error().code(), pv::ERROR_CODE_SLOT_BUSY);
  EXPECT_EQ(errors[0].message.error().slot(), 0u);
}

// PHYS-B19: a measure-directly batch of many pairs at both ends with one
// basis per pair; for perfect Werner pairs the results agree or differ as the
// heralded Bell state says in every basis, and bases missing from the list
// are measure_basis.
TEST(WorldBatchesTest, PHYS_B19_MeasureDirectlyBatchFollowsTheHeraldedStatePerPair) {
  BatchWorld w(Werner(0.3));
  const int pairs = 300;
  std::vector<pv::Basis> bases;
  for (int j = 0; j < pairs - 10; ++j) bases.push_back(static_cast<pv::Basis>(1 + j % 3));
  w.Send("a", testing::Generate(MeasureDirectly(1, pairs, bases)), Time::Zero());
  w.Send("b", testing::Generate(MeasureDirectly(1, pairs, bases)), Time::Zero());
  const auto ha = w.Heralds("a"), hb = w.Heralds("b");
  ASSERT_EQ(ha.size(), static_cast<size_t>(pairs));
  for (int j = 0; j < pairs; ++j) {
    const pv::Herald& x = ha[j].message.herald();
    const pv::Herald& y = hb[j].message.herald();
    const pv::Basis basis = j < pairs - 10 ? bases[j] : pv::BASIS_Z;
    ASSERT_EQ(x.basis(), basis);
    ASSERT_EQ(y.basis(), basis);
    const int index = static_cast<int>(x.bell_state()) - 1;
    const bool differ = basis == pv::BASIS_Z   ? (index & 1)
                        : basis == pv::BASIS_X ? (index & 2)
                                               : ((index & 1) ^ (index >> 1)) == 0;
    ASSERT_EQ(x.result() != y.result(), differ) << j;
  }
}

// PHYS-B21: a deadline inside a batch ends it after the successes that came
// before it with a DEADLINE herald whose attempts complete the batch's count;
// the slots of the missing pairs are free after that herald.
TEST(WorldBatchesTest, PHYS_B21_DeadlineEndsTheBatchAfterTheEarlierPairs) {
  const double p = 0.02;
  const LinkSpec link = Werner(p);
  const int64_t c = absl::ToInt64Nanoseconds(AttemptCycle(link));
  int saw_partial = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    BatchWorld w(link, 8, {}, seed);
    GenerateArgs a = Keep(1, {0, 1, 2, 3, 4, 5, 6, 7});
    a.deadline_ns = static_cast<uint64_t>(150 * c);  // about three successes on average
    w.Send("a", testing::Generate(a), Time::Zero());
    w.Send("b", testing::Generate(Keep(1, {0, 1, 2, 3, 4, 5, 6, 7})), Time::Zero());
    const auto ha = w.Heralds("a");
    ASSERT_FALSE(ha.empty());
    uint64_t attempts = 0;
    for (size_t j = 0; j + 1 < ha.size(); ++j) {
      ASSERT_EQ(ha[j].message.herald().outcome(), pv::OUTCOME_SUCCESS);
      ASSERT_TRUE(ha[j].message.herald().more());
      attempts += ha[j].message.herald().attempts();
    }
    const pv::Herald& last = ha.back().message.herald();
    if (last.outcome() == pv::OUTCOME_SUCCESS) {  // eight pairs before the deadline: rare
      EXPECT_EQ(ha.size(), 8u);
      continue;
    }
    ASSERT_EQ(last.outcome(), pv::OUTCOME_DEADLINE);
    EXPECT_FALSE(last.more());
    EXPECT_EQ(last.time_ns(), static_cast<uint64_t>(150 * c));
    EXPECT_EQ(attempts + last.attempts(), 150u);
    const size_t successes = ha.size() - 1;
    if (successes > 0 && successes < 8) ++saw_partial;
    // The slots of pairs never heralded take a new batch at the deadline.
    w.out().Clear();
    w.Send("a", testing::Generate(Keep(2, {static_cast<uint32_t>(successes)})),
           Time::FromNanos(150 * c));
    EXPECT_TRUE(w.Errors("a").empty()) << "seed " << seed;
  }
  EXPECT_GT(saw_partial, 10);
}

// PHYS-B4a: with a start lag allowed, a batch starts at the later of the two
// ends' start_ns, if no earlier than `max_start_lag` before its arrival and
// no earlier than the previous batch's end; without one, at arrival.
TEST(WorldBatchesTest, PHYS_B4a_BatchStartsAtTheEndsReferenceTime) {
  WorldOptions options;
  options.max_start_lag = absl::Microseconds(100);
  const LinkSpec link = Werner(1.0);
  const absl::Duration cycle = AttemptCycle(link);
  struct Case {
    int64_t start_a_us, start_b_us, arrive_us;
    std::optional<int64_t> lag_us;  // nullopt: the default World (no lag)
    int64_t expect_start_us;
  } cases[] = {
      {950, 960, 1000, 100, 960},   // the later reference
      {500, 960, 1000, 100, 960},   // a's very early claim does not matter
      {500, 600, 1000, 100, 900},   // both too early: at most the lag before arrival
      {1500, 960, 1000, 100, 1000}, // a start after arrival counts as arrival
      {0, 960, 1000, 100, 1000},    // no start_ns: arrival
      {950, 960, 1000, std::nullopt, 1000},
  };
  for (const Case& k : cases) {
    BatchWorld w(link, 4, k.lag_us ? options : WorldOptions{});
    GenerateArgs a = Keep(1, {0}), b = Keep(1, {0});
    a.start_ns = static_cast<uint64_t>(k.start_a_us * 1000);
    b.start_ns = static_cast<uint64_t>(k.start_b_us * 1000);
    const Time arrive = Time::FromNanos(k.arrive_us * 1000);
    w.Send("a", testing::Generate(a), arrive);
    w.Send("b", testing::Generate(b), arrive);
    const auto ha = w.Heralds("a");
    ASSERT_EQ(ha.size(), 1u);
    EXPECT_EQ(Time::FromNanos(static_cast<int64_t>(ha[0].message.herald().time_ns())),
              Time::FromNanos(k.expect_start_us * 1000) + cycle)
        << k.start_a_us << " " << k.start_b_us;
  }
  // Never before the previous batch's end.
  BatchWorld w(link, 4, options);
  w.Send("a", testing::Generate(Keep(1, {0})), Time::FromNanos(1'000'000));
  w.Send("b", testing::Generate(Keep(1, {0})), Time::FromNanos(1'000'000));
  const Time end1 = w.Heralds("a").at(0).at;
  GenerateArgs a = Keep(2, {1}), b = Keep(2, {1});
  a.start_ns = b.start_ns = 999'000;
  w.Send("a", testing::Generate(a), end1);
  w.Send("b", testing::Generate(b), end1);
  EXPECT_EQ(Time::FromNanos(static_cast<int64_t>(w.Heralds("a").at(1).message.herald().time_ns())),
            end1 + cycle);
}

// PHYS-B19, PHYS-E1: malformed batch fields are refused with MALFORMED and
// change nothing (the batch number stays usable).
TEST(WorldBatchesTest, PHYS_B19_MalformedBatchFieldsAreRefused) {
  BatchWorld w(Werner(0.5));
  std::vector<pv::NodeToWorld> bad;
  GenerateArgs both = Keep(1, {1});
  both.slot = 0;
  bad.push_back(testing::Generate(both));
  bad.push_back(testing::Generate(Keep(1, {1, 2, 1})));
  GenerateArgs keep_bases = Keep(1, {0});
  keep_bases.bases = {pv::BASIS_Z};
  bad.push_back(testing::Generate(keep_bases));
  bad.push_back(testing::Generate(MeasureDirectly(1, 2, {pv::BASIS_Z, pv::BASIS_UNSPECIFIED})));
  bad.push_back(testing::Generate(MeasureDirectly(1, 5000)));
  for (const auto& m : bad) {
    w.out().Clear();
    w.Send("a", m, Time::Zero());
    const auto errors = w.Errors("a");
    ASSERT_EQ(errors.size(), 1u) << m.DebugString();
    EXPECT_EQ(errors[0].message.error().code(), pv::ERROR_CODE_MALFORMED) << m.DebugString();
  }
  w.out().Clear();
  w.Send("a", testing::Generate(Keep(1, {0, 1})), Time::Zero());
  w.Send("b", testing::Generate(Keep(1, {0, 1})), Time::Zero());
  EXPECT_EQ(w.Heralds("a").size(), 2u);
  EXPECT_TRUE(w.Errors("a").empty());
}

}  // namespace
}  // namespace qnet::world
