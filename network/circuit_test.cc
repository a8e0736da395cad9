// Network-layer circuits on the simulator: setup, rounds, swapping, Bell-state
// tracking, delivery at both ends, and the round time against the analytic
// swap-as-soon-as-possible figure (specs/network.md section 2).
#include "network/circuit.h"

#include <cmath>
#include <iostream>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "network/testing/circuit_world.h"

namespace qnet::network {
namespace {

using physical::v1::BellState;
using testing::CircuitWorld;

// ---- Arithmetic ----

TEST(CircuitArithmetic, NET_C_31_BellXorIsPauliIndexXor) {
  using physical::v1::BELL_STATE_PHI_MINUS;
  using physical::v1::BELL_STATE_PHI_PLUS;
  using physical::v1::BELL_STATE_PSI_MINUS;
  using physical::v1::BELL_STATE_PSI_PLUS;
  EXPECT_EQ(BellXor(BELL_STATE_PSI_PLUS, BELL_STATE_PHI_MINUS), BELL_STATE_PSI_MINUS);  // X Z = Y
  EXPECT_EQ(BellXor(BELL_STATE_PSI_MINUS, BELL_STATE_PSI_PLUS), BELL_STATE_PHI_MINUS);  // Y X = Z
  EXPECT_EQ(BellXor(BELL_STATE_PHI_MINUS, BELL_STATE_PHI_MINUS), BELL_STATE_PHI_PLUS);
  EXPECT_EQ(BellXor(BELL_STATE_PHI_PLUS, BELL_STATE_PSI_PLUS), BELL_STATE_PSI_PLUS);
  EXPECT_EQ(BellXor(physical::v1::BELL_STATE_UNSPECIFIED, BELL_STATE_PSI_PLUS),
            physical::v1::BELL_STATE_UNSPECIFIED);
}

TEST(CircuitArithmetic, NET_C_35_CorrectionGates) {
  EXPECT_EQ(CorrectionGate(physical::v1::BELL_STATE_PHI_PLUS), physical::v1::GATE_KIND_UNSPECIFIED);
  EXPECT_EQ(CorrectionGate(physical::v1::BELL_STATE_PSI_PLUS), physical::v1::GATE_KIND_X);
  EXPECT_EQ(CorrectionGate(physical::v1::BELL_STATE_PHI_MINUS), physical::v1::GATE_KIND_Z);
  EXPECT_EQ(CorrectionGate(physical::v1::BELL_STATE_PSI_MINUS), physical::v1::GATE_KIND_Y);
}

TEST(CircuitArithmetic, NET_C_5_SplitSharesTheSlackEquallyInLogTerms) {
  const std::vector<double> f = {0.95, 0.9, 0.97};
  absl::StatusOr<CircuitPlan> plan = PlanCircuit(f, 0.8, std::nullopt, 0.0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  double prod_min = 1.0, prod = 1.0;
  for (size_t i = 0; i < f.size(); ++i) {
    prod *= WernerOf(f[i]);
    prod_min *= WernerOf(plan->link_min_fidelity[i]);
    EXPECT_LT(plan->link_min_fidelity[i], f[i]);
  }
  // The links' minima multiply to the target exactly (to the 1e-9 margin).
  EXPECT_NEAR(prod_min, WernerOf(0.8), 1e-8);
  // Equal shares: every link gives up the same factor.
  const double share = WernerOf(plan->link_min_fidelity[0]) / WernerOf(f[0]);
  for (size_t i = 1; i < f.size(); ++i) {
    EXPECT_NEAR(WernerOf(plan->link_min_fidelity[i]) / WernerOf(f[i]), share, 1e-8);
  }
  EXPECT_NEAR(plan->expected_fidelity, (1 + 3 * prod) / 4, 1e-12);
  EXPECT_EQ(plan->cutoff, absl::InfiniteDuration());  // NET-C-6: infinite memories
}

TEST(CircuitArithmetic, NET_C_6_CutoffUsesHalfTheLogSlack) {
  const std::vector<double> f = {0.95, 0.95};
  const double T = 0.5;
  absl::StatusOr<CircuitPlan> plan = PlanCircuit(f, 0.8, std::nullopt, T);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const double slack = WernerOf(0.8) / (WernerOf(0.95) * WernerOf(0.95));
  const double half = std::sqrt(slack);
  EXPECT_NEAR(absl::ToDoubleSeconds(plan->cutoff), -T * std::log(half) / 4.0, 1e-9);
  // Links keep the other half: prod w_min = prod w * half.
  EXPECT_NEAR(WernerOf(plan->link_min_fidelity[0]) * WernerOf(plan->link_min_fidelity[1]),
              WernerOf(0.95) * WernerOf(0.95) * half, 1e-8);
  // Two qubits per link decaying for the cutoff use exactly the memory half.
  const double decay = std::exp(-absl::ToDoubleSeconds(plan->cutoff) / T);
  EXPECT_NEAR(std::pow(decay, 2 * 2), half, 1e-6);
  // An explicit cutoff leaves the whole slack to the links.
  plan = PlanCircuit(f, 0.8, absl::Milliseconds(3), T);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->cutoff, absl::Milliseconds(3));
  EXPECT_NEAR(WernerOf(plan->link_min_fidelity[0]) * WernerOf(plan->link_min_fidelity[1]),
              WernerOf(0.8), 1e-8);
}

TEST(CircuitArithmetic, NET_C_3_NET_C_4_InfeasibleAndNoRequirement) {
  absl::StatusOr<CircuitPlan> plan = PlanCircuit({0.9, 0.9, 0.9}, 0.8, std::nullopt, 0.0);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(CircuitErrorOf(plan.status()), v1::CIRCUIT_ERROR_NOTIME);
  plan = PlanCircuit({0.9, 0.9}, 0.0, std::nullopt, 1.0);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->link_min_fidelity, (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(plan->cutoff, absl::InfiniteDuration());
  EXPECT_EQ(CircuitErrorOf(PlanCircuit({}, 0.5, std::nullopt, 0).status()),
            v1::CIRCUIT_ERROR_MALFORMED);
}

// ---- Chains ----

std::string Tail(int links) { return absl::StrCat("n", links); }

CircuitKey Open(CircuitWorld& w, const std::string& head, const std::string& tail,
                double min_fidelity = 0.0) {
  CircuitRequest req;
  req.remote_node = tail;
  req.min_fidelity = min_fidelity;
  req.upper = "conn-1";
  absl::StatusOr<CircuitKey> key = w.layer(head).OpenCircuit(req);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.value_or(CircuitKey{});
}

class ChainTest : public ::testing::TestWithParam<int> {};

// NET-C-20..NET-C-37: chains of 1..5 links deliver the same seqs in the same
// order at both ends; the Bell state the head tracks is the true one for every
// pair (xor rule) and the delivered pair is PHI_PLUS between the two ends'
// slots of that seq.
TEST_P(ChainTest, NET_C_31_NET_C_37_SameSeqsBothEndsAndTrueBellState) {
  const int links = GetParam();
  CircuitWorld::Config config = CircuitWorld::Chain(links, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(3);
  config.seed = 7 + links;
  CircuitWorld w(config);
  w.Start();
  const std::string tail = Tail(links);
  const CircuitKey key = Open(w, "n0", tail);
  EXPECT_EQ(key, (CircuitKey{"n0", 1}));  // NET-C-9
  constexpr size_t kPairs = 200;
  ASSERT_TRUE(
      w.RunUntil([&] { return w.listener(tail).pairs.size() >= kPairs; }, absl::Seconds(5)));

  auto& head = w.listener("n0");
  auto& tl = w.listener(tail);
  ASSERT_EQ(head.ups.size(), 1u);
  ASSERT_EQ(tl.ups.size(), 1u);
  ASSERT_EQ(tl.incoming.size(), 1u);
  EXPECT_EQ(tl.incoming[0].upper, "conn-1");
  EXPECT_EQ(tl.incoming[0].path.size(), static_cast<size_t>(links + 1));
  const std::vector<uint64_t> head_seqs = head.Seqs(key);
  const std::vector<uint64_t> tail_seqs = tl.Seqs(key);
  ASSERT_GE(head_seqs.size(), kPairs);
  for (size_t i = 0; i < head_seqs.size(); ++i) ASSERT_EQ(head_seqs[i], i + 1);  // NET-C-32
  for (size_t i = 0; i < tail_seqs.size(); ++i) ASSERT_EQ(tail_seqs[i], i + 1);

  // The tail's slot for each seq, to join with the head's partner.
  std::map<uint64_t, uint32_t> tail_slot;
  for (const auto& d : tl.pairs) tail_slot[d.pair.seq] = d.pair.slot;
  for (const auto& d : head.pairs) {
    ASSERT_TRUE(d.partner.has_value()) << "seq " << d.pair.seq;
    EXPECT_EQ(d.partner->frame, 0) << "seq " << d.pair.seq << " not PHI_PLUS after correction";
    EXPECT_EQ(d.partner->qubit.node, tail);
    if (tail_slot.contains(d.pair.seq)) {
      EXPECT_EQ(d.partner->qubit.slot, tail_slot[d.pair.seq]);
    }
    EXPECT_EQ(d.pair.remote_node, tail);
  }
  // NET-C-33: one probe per delivered pair, label "<head>/<number>/<seq>",
  // tracked state equal to the true one.
  const auto& probes = w.device("n0").probes();
  ASSERT_EQ(probes.size(), head.pairs.size());
  std::map<int, int> states;
  for (size_t i = 0; i < probes.size(); ++i) {
    EXPECT_EQ(probes[i].label, absl::StrCat("n0/1/", i + 1));
    EXPECT_EQ(probes[i].believed, probes[i].truth) << probes[i].label;
    ++states[probes[i].truth];
  }
  EXPECT_EQ(states.size(), 4u) << "random Bell states should reach all four";
  for (int i = 1; i < links; ++i) {  // NET-C-27: one swap per intermediate per round
    const std::string n = absl::StrCat("n", i);
    EXPECT_GE(w.layer(n).stats().swaps, head.pairs.size());
    EXPECT_LE(w.layer(n).stats().swaps, head.pairs.size() + 1);
  }
  for (const auto& n : w.node_names()) {
    EXPECT_EQ(w.layer(n).stats().drops, 0u) << n;
    EXPECT_EQ(w.device(n).violations(), 0u) << n;
  }
  for (int i = 0; i < links; ++i) EXPECT_EQ(w.link(absl::StrCat("l", i)).violations(), 0u);
  EXPECT_EQ(w.layer("n0").stats().rounds_completed, head.pairs.size());
  EXPECT_EQ(w.layer("n0").stats().rounds_discarded, 0u);

  // Closing from the head: both ends hear CLOSED, every memory is free again.
  w.layer("n0").CloseCircuit(key, "done");
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(20));
  ASSERT_EQ(head.downs.size(), 1u);
  ASSERT_EQ(tl.downs.size(), 1u);
  EXPECT_EQ(tl.downs[0].code, v1::CIRCUIT_ERROR_CLOSED);
  // NET-C-44: every pair delivered at the head was delivered at the tail or
  // reported expired at the head (both, for a seq whose Ack was in flight).
  std::set<uint64_t> covered(tail_seqs.begin(), tail_seqs.end());
  for (const auto& d : tl.pairs) covered.insert(d.pair.seq);
  for (const auto& e : head.expired) covered.insert(e.seq);
  EXPECT_EQ(covered.size(), head.pairs.size());
  EXPECT_LE(head.expired.size(), 1u);
  for (const auto& n : w.node_names()) {
    EXPECT_EQ(w.pool(n).free_count(), w.pool(n).capacity()) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Links, ChainTest, ::testing::Values(1, 2, 3, 4, 5));

// E[max] of n geometric(p) attempt counts (REFERENCE.md "Waiting times").
double ExpectedMaxAttempts(int n, double p) {
  double sum = 0, binom = 1;
  for (int k = 1; k <= n; ++k) {
    binom = binom * (n - k + 1) / k;
    sum += (k % 2 ? 1 : -1) * binom / (1 - std::pow(1 - p, k));
  }
  return sum;
}

// NET-C-20/NET-C-22: every link of the circuit starts its round together, so
// with negligible classical delays the time between deliveries is the
// analytic swap-ASAP E[max] of the links' waiting times.
TEST(CircuitTiming, NET_C_22_RoundTimeMatchesSwapAsapExpectation) {
  for (int links : {2, 4}) {
    const double p = 0.1;
    const absl::Duration cycle = absl::Microseconds(10);
    CircuitWorld w(CircuitWorld::Chain(links, p, cycle));
    w.Start();
    const std::string tail = Tail(links);
    Open(w, "n0", tail);
    const size_t kPairs = links == 2 ? 20000 : 10000;
    ASSERT_TRUE(
        w.RunUntil([&] { return w.listener("n0").pairs.size() >= kPairs; }, absl::Seconds(60)));
    const auto& pairs = w.listener("n0").pairs;
    std::vector<double> gaps;
    for (size_t i = 1; i < kPairs; ++i) {
      gaps.push_back((pairs[i].pair.completed - pairs[i - 1].pair.completed) / cycle);
    }
    const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
    double var = 0;
    for (double g : gaps) var += (g - mean) * (g - mean);
    const double stderr_ = std::sqrt(var / (gaps.size() - 1) / gaps.size());
    const double expected = ExpectedMaxAttempts(links, p);
    RecordProperty(absl::StrCat("ratio_", links), absl::StrCat(mean / expected));
    EXPECT_NEAR(mean, expected, 4 * stderr_) << links << " links";
    EXPECT_NEAR(mean / expected, 1.0, 0.02) << links << " links";
    std::cout << links << " links: mean " << mean << " cycles, E[max] " << expected << ", ratio "
              << mean / expected << " +- " << stderr_ / expected << "\n";
  }
}

}  // namespace
}  // namespace qnet::network
