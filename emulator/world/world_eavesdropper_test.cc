// The intercept-resend attacker of a link through the World (specs/physical.md
// PHYS-EV*): QBERs measured at the link's two ends and across a swap, with the
// statistical bounds written down (4 standard errors, sigma = sqrt(q (1-q) / n)).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emulator/world/testing/recording_output.h"
#include "emulator/world/world.h"
#include "gtest/gtest.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;
namespace rv = results::v1;
using testing::GenerateArgs;
using testing::RecordingOutput;

LinkSpec Werner(double fidelity, double fraction, bool eve) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kWerner;
  link.p_success = 0.5;
  link.fidelity = fidelity;
  link.length_km = 1;
  if (eve) link.eavesdropper = LinkSpec::Eavesdropper::kInterceptResend;
  link.intercept_fraction = fraction;
  return link;
}

// Whether results in `basis` of a pair heralded as `bell` (proto value) differ.
bool ExpectDiffer(uint32_t bell, pv::Basis basis) {
  const int index = static_cast<int>(bell) - 1;
  return basis == pv::BASIS_Z ? (index & 1) : (index & 2);
}

Time TimeOf(uint64_t ns) { return Time::FromNanos(static_cast<int64_t>(ns)); }

// QBER as measured, per basis (Z, X), with the counts.
struct Qbers {
  int errors[2] = {0, 0};
  int counts[2] = {0, 0};
  double q(int k) const { return static_cast<double>(errors[k]) / counts[k]; }
  void Add(bool z, bool error) {
    errors[z ? 0 : 1] += error;
    ++counts[z ? 0 : 1];
  }
};

// Runs n batches on link "ab", both ends measuring directly in the same basis
// (Z on odd batches, X on even ones). Returns the QBERs; `out` keeps every
// delivery and record, `world_out` the World.
Qbers MeasureDirectly(const LinkSpec& link, int n, uint64_t seed, RecordingOutput* out,
                      std::unique_ptr<World>* world_out) {
  const Topology topology = testing::TwoNodes(link);
  auto world = std::make_unique<World>(topology, Rng(seed), out);
  world->Handle("a", testing::Hello("a"), Time::Zero());
  world->Handle("b", testing::Hello("b"), Time::Zero());
  Qbers qbers;
  Time now = Time::Zero();
  for (int i = 1; i <= n; ++i) {
    GenerateArgs g;
    g.batch = static_cast<uint64_t>(i);
    g.slot.reset();
    g.basis = i % 2 ? pv::BASIS_Z : pv::BASIS_X;
    const size_t mark = out->deliveries.size();
    world->Handle("a", testing::Generate(g), now);
    world->Handle("b", testing::Generate(g), now);
    const pv::Herald ha = out->To("a", pv::WorldToNode::kHerald, mark).at(0).message.herald();
    const pv::Herald hb = out->To("b", pv::WorldToNode::kHerald, mark).at(0).message.herald();
    EXPECT_EQ(ha.outcome(), pv::OUTCOME_SUCCESS);
    qbers.Add(i % 2, (ha.result() != hb.result()) != ExpectDiffer(ha.bell_state(), g.basis));
    now = TimeOf(ha.time_ns());
  }
  EXPECT_EQ(world->errors(), 0u);
  *world_out = std::move(world);
  return qbers;
}

void ExpectQber(const Qbers& qbers, double expected, const std::string& what) {
  for (int k = 0; k < 2; ++k) {
    const double sigma = std::sqrt(expected * (1 - expected) / qbers.counts[k]);
    EXPECT_NEAR(qbers.q(k), expected, 4 * sigma)
        << what << (k == 0 ? " Z" : " X") << ": n " << qbers.counts[k] << " sigma " << sigma;
    ::testing::Test::RecordProperty(absl::StrCat(what, k == 0 ? "_qber_z" : "_qber_x"),
                                    absl::StrCat(qbers.q(k), " (expected ", expected, ")"));
  }
}

// PHYS-EV4, PHYS-EV5: fraction 1 on perfect pairs: QBER 1/4 in Z and in X
// (n = 10000 per basis, 4 sigma = 0.0173); every pair intercepted, traced with
// its link, pair_seq and basis; each pair's truth fidelity is exactly 1/2.
TEST(WorldEavesdropperTest, InterceptResendGivesAQuarterQberInEachBasis) {
  RecordingOutput out;
  std::unique_ptr<World> world;
  const int n = 20000;
  const Qbers qbers = MeasureDirectly(Werner(1.0, 1.0, true), n, 5, &out, &world);
  ExpectQber(qbers, 0.25, "fraction_1");
  EXPECT_EQ(world->intercepted("ab"), static_cast<uint64_t>(n));
  EXPECT_EQ(world->intercepted("nope"), 0u);
  const auto records = out.Records(rv::TraceRecord::kIntercepted);
  ASSERT_EQ(records.size(), static_cast<size_t>(n));
  int x = 0;
  for (int i = 0; i < n; ++i) {
    const rv::Intercepted& r = records[i].intercepted();
    EXPECT_EQ(records[i].node(), "qworld");
    EXPECT_EQ(r.link(), "ab");
    EXPECT_EQ(r.pair_seq(), static_cast<uint64_t>(i + 1));
    ASSERT_TRUE(r.basis() == pv::BASIS_Z || r.basis() == pv::BASIS_X);
    x += r.basis() == pv::BASIS_X;
  }
  EXPECT_NEAR(x, n / 2.0, 4 * std::sqrt(n * 0.25));  // PHYS-EV3: basis uniform
  for (const auto& r : out.Records(rv::TraceRecord::kHeraldTruth))
    ASSERT_NEAR(r.herald_truth().true_fidelity(), 0.5, 1e-12);
}

// PHYS-EV4: fraction 0.4: QBER 0.4 x 1/4 = 0.10; the number intercepted is
// Binomial(n, 0.4), within 4 sigma = 4 sqrt(n 0.4 0.6).
TEST(WorldEavesdropperTest, FractionOfPairsGivesItsShareOfTheQber) {
  RecordingOutput out;
  std::unique_ptr<World> world;
  const int n = 20000;
  const Qbers qbers = MeasureDirectly(Werner(1.0, 0.4, true), n, 6, &out, &world);
  ExpectQber(qbers, 0.10, "fraction_0_4");
  EXPECT_NEAR(static_cast<double>(world->intercepted("ab")), 0.4 * n, 4 * std::sqrt(n * 0.4 * 0.6));
  EXPECT_EQ(out.Records(rv::TraceRecord::kIntercepted).size(), world->intercepted("ab"));
}

// PHYS-EV4: on Werner pairs (QBER e = 2(1-F)/3 per basis) the attacker gives
// 1/4 + e/2; without the attacker the QBER is e and nothing is intercepted.
TEST(WorldEavesdropperTest, WernerPairsWithAndWithoutTheAttacker) {
  const double f = 0.94, e = 2 * (1 - f) / 3;
  for (bool eve : {false, true}) {
    RecordingOutput out;
    std::unique_ptr<World> world;
    const Qbers qbers = MeasureDirectly(Werner(f, 1.0, eve), 20000, 7, &out, &world);
    ExpectQber(qbers, eve ? 0.25 + e / 2 : e, eve ? "werner_eve" : "werner");
    EXPECT_EQ(world->intercepted("ab"), eve ? 20000u : 0u);
    if (!eve) {
      EXPECT_TRUE(out.Records(rv::TraceRecord::kIntercepted).empty());
    }
  }
}

// PHYS-EV6: the attacker is hidden: with the same seed the heralds (Bell state,
// attempts, times, pair numbers) are the same with and without it; only the
// measured results change.
TEST(WorldEavesdropperTest, HeraldsAreTheSameWithAndWithoutTheAttacker) {
  RecordingOutput with, without;
  std::unique_ptr<World> w1, w2;
  MeasureDirectly(Werner(0.97, 0.5, true), 2000, 9, &with, &w1);
  MeasureDirectly(Werner(0.97, 0.5, false), 2000, 9, &without, &w2);
  for (const char* node : {"a", "b"}) {
    const auto h1 = with.To(node, pv::WorldToNode::kHerald);
    const auto h2 = without.To(node, pv::WorldToNode::kHerald);
    ASSERT_EQ(h1.size(), h2.size());
    int results_differ = 0;
    for (size_t i = 0; i < h1.size(); ++i) {
      pv::Herald a = h1[i].message.herald(), b = h2[i].message.herald();
      EXPECT_EQ(h1[i].at, h2[i].at);
      results_differ += a.result() != b.result();
      a.clear_result();
      b.clear_result();
      EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString()) << "herald " << i;
    }
    if (std::string(node) == "b") {
      EXPECT_GT(results_differ, 0);
    }
  }
}

// PHYS-EV3: pairs kept in memory at both ends are attacked too: Measure
// requests on the kept qubits give QBER 1/4 per basis (n = 5000 per basis,
// 4 sigma = 0.0245).
TEST(WorldEavesdropperTest, KeptPairsAreAttackedToo) {
  const Topology topology = testing::TwoNodes(Werner(1.0, 1.0, true));
  RecordingOutput out;
  World world(topology, Rng(13), &out);
  world.Handle("a", testing::Hello("a"), Time::Zero());
  world.Handle("b", testing::Hello("b"), Time::Zero());
  Qbers qbers;
  Time now = Time::Zero();
  for (int i = 1; i <= 10000; ++i) {
    GenerateArgs g;
    g.batch = static_cast<uint64_t>(i);
    world.Handle("a", testing::Generate(g), now);
    world.Handle("b", testing::Generate(g), now);
    const pv::Herald h = out.To("a", pv::WorldToNode::kHerald).back().message.herald();
    now = std::max(out.To("a", pv::WorldToNode::kHerald).back().at,
                   out.To("b", pv::WorldToNode::kHerald).back().at);
    const pv::Basis basis = i % 2 ? pv::BASIS_Z : pv::BASIS_X;
    world.Handle("a", testing::Measure(i, 0, basis), now);
    world.Handle("b", testing::Measure(i, 0, basis), now);
    const uint32_t ra =
        out.To("a", pv::WorldToNode::kMeasureResult).back().message.measure_result().result();
    const uint32_t rb =
        out.To("b", pv::WorldToNode::kMeasureResult).back().message.measure_result().result();
    qbers.Add(i % 2, (ra != rb) != ExpectDiffer(h.bell_state(), basis));
    out.Clear();
  }
  EXPECT_EQ(world.errors(), 0u);
  EXPECT_EQ(world.intercepted("ab"), 10000u);
  ExpectQber(qbers, 0.25, "kept");
}

// PHYS-EV4 through a swap: chain a - b - c, Werner F = 0.99 on both links,
// the attacker (fraction 1) on bc only. After the swap at b, the end pair's
// QBER per basis is the XOR composition e1 (1 - e2) + e2 (1 - e1) with
// e1 = 2(1-F)/3 (ab) and e2 = 1/4 + e1/2 (bc attacked); n = 6000 per basis,
// 4 sigma = 0.023.
TEST(WorldEavesdropperTest, SwapThroughAnAttackedLinkComposesTheQbers) {
  const double f = 0.99, e1 = 2 * (1 - f) / 3, e2 = 0.25 + e1 / 2;
  const double expected = e1 * (1 - e2) + e2 * (1 - e1);
  Topology topology = testing::TwoNodes(Werner(f, 1.0, false), 4, /*three=*/true);
  topology.links[1].eavesdropper = LinkSpec::Eavesdropper::kInterceptResend;
  RecordingOutput out;
  World world(topology, Rng(17), &out);
  for (const char* n : {"a", "b", "c"}) world.Handle(n, testing::Hello(n), Time::Zero());
  Qbers qbers;
  Time now = Time::Zero();
  const int rounds = 12000;
  for (int round = 1; round <= rounds; ++round) {
    GenerateArgs g;
    g.batch = static_cast<uint64_t>(round);
    world.Handle("a", testing::Generate(g), now);
    world.Handle("b", testing::Generate(g), now);
    g.link = "bc";
    g.slot = 1;
    world.Handle("b", testing::Generate(g), now);
    g.slot = 0;
    world.Handle("c", testing::Generate(g), now);
    const pv::Herald ab = out.To("a", pv::WorldToNode::kHerald).back().message.herald();
    const pv::Herald bc = out.To("c", pv::WorldToNode::kHerald).back().message.herald();
    now = std::max(TimeOf(ab.time_ns()), TimeOf(bc.time_ns())) + absl::Milliseconds(1);
    world.Handle("b", testing::BellMeasure(round, 0, 1), now);
    const int m = out.To("b", pv::WorldToNode::kBellMeasureResult)
                      .back()
                      .message.bell_measure_result()
                      .bell_state() -
                  1;
    const int index = (ab.bell_state() - 1) ^ (bc.bell_state() - 1) ^ m;
    const pv::Basis basis = round % 2 ? pv::BASIS_Z : pv::BASIS_X;
    world.Handle("a", testing::Measure(round, 0, basis), now);
    world.Handle("c", testing::Measure(round, 0, basis), now);
    const uint32_t ra =
        out.To("a", pv::WorldToNode::kMeasureResult).back().message.measure_result().result();
    const uint32_t rc =
        out.To("c", pv::WorldToNode::kMeasureResult).back().message.measure_result().result();
    qbers.Add(round % 2, (ra != rc) != ExpectDiffer(static_cast<uint32_t>(index + 1), basis));
    out.Clear();
  }
  EXPECT_EQ(world.errors(), 0u);
  EXPECT_EQ(world.intercepted("ab"), 0u);
  EXPECT_EQ(world.intercepted("bc"), static_cast<uint64_t>(rounds));
  ExpectQber(qbers, expected, "chain");
}

}  // namespace
}  // namespace qnet::world
