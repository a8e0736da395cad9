// Streaming circuits on Werner chains without memory noise (sim backend;
// specs/network.md section 2.9): with one memory per side of each node
// (depth 1) and negligible classical delays, the rate of end-to-end pairs is
// at least 0.95 of the swap-as-soon-as-possible limit that an independent
// Monte Carlo of the same model gives (chain_monte_carlo.h), which for p 0.1
// is 1.00, 1.03 and 1.18 times the one-pair-at-a-time rate 1 / (E[max] cycle)
// for 2, 4 and 8 links; and every pair's true fidelity is exactly
// (1 + 3 prod w_i) / 4. The ratios are recorded as test properties.
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "emulator/scenarios/analytic.h"
#include "emulator/scenarios/chain_monte_carlo.h"
#include "emulator/scenarios/chain_timing.h"
#include "emulator/scenarios/scenario_runner.h"
#include "emulator/scenarios/topology_gen.h"
#include "gtest/gtest.h"

namespace qnet::scenarios {
namespace {

constexpr uint32_t kPairs = 4000;

void CheckStreamingChain(const std::string& name, const std::vector<LinkGen>& links,
                         uint64_t seed) {
  ChainGen chain;
  chain.name = name;
  chain.seed = seed;
  chain.links = links;
  chain.attempt_us = 10;
  chain.classical_delay_us = 0.001;
  chain.memories = 2;  // one per side: depth 1 everywhere
  chain.pairs = kPairs;
  std::vector<double> p, f;
  for (const LinkGen& l : links) {
    p.push_back(l.p);
    f.push_back(l.fidelity);
  }
  const double cycle = chain.attempt_us * 1e-6;
  const ChainMonteCarloResult limit = RunChainMonteCarlo(ChainGenModel(chain), 100000, seed + 1);
  const double rounds_s = ExpectedMaxAttempts(p) * cycle;
  chain.duration_s = chain.start_s + 0.3 + 1.3 * kPairs * limit.time_between_deliveries_s;

  absl::StatusOr<ScenarioRun> run = RunScenario(ChainXml(chain), name);
  ASSERT_TRUE(run.ok()) << run.status();
  absl::StatusOr<std::map<std::string, CircuitTrace>> circuits = ReadCircuits(*run);
  ASSERT_TRUE(circuits.ok()) << circuits.status();
  ASSERT_EQ(circuits->size(), 1u) << "one circuit, never rerouted";
  const CircuitTrace& c = circuits->begin()->second;
  ASSERT_GE(c.head_seqs.size(), kPairs)
      << "delivered too few pairs in " << chain.duration_s << " s";
  EXPECT_EQ(c.path.size(), links.size() + 1);
  // One swap per intermediate per pair, plus the ones in flight at the end.
  EXPECT_GE(c.swaps, c.head_seqs.size() * (links.size() - 1));
  EXPECT_LE(c.swaps, (c.head_seqs.size() + links.size()) * (links.size() - 1));
  EXPECT_EQ(c.discarded, 0u) << "no memory noise: infinite cutoff";

  // Fidelity: every pair is exactly the Werner product (a wrong Bell-state
  // correction would give (1 - w) / 4 for that pair).
  const double expected_f = ChainWernerFidelity(f);
  const MeanSe fid = MeanAndSe(c.true_fidelity);
  ASSERT_EQ(fid.n, c.head_seqs.size()) << "a truth record for every delivered pair (NET-C-33)";
  for (double x : c.true_fidelity) ASSERT_NEAR(x, expected_f, 1e-9);

  // Rate: time between deliveries (head completions) against the limit.
  const MeanSe gap = MeanAndSe(DeliveryGaps(c));
  const double ratio = limit.time_between_deliveries_s / gap.mean;  // measured rate / limit rate
  const double ratio_se = ratio * std::hypot(gap.se / gap.mean, limit.time_between_deliveries_se /
                                                                    limit.time_between_deliveries_s);
  std::printf(
      "[%s] links %zu: limit %.3f cycles/pair (%.3f x the one-at-a-time rate), measured "
      "%.3f +- %.3f cycles/pair: rate / limit %.4f +- %.4f; F %.6f; wall %.2f s\n",
      name.c_str(), links.size(), limit.time_between_deliveries_s / cycle,
      rounds_s / limit.time_between_deliveries_s, gap.mean / cycle, gap.se / cycle, ratio,
      ratio_se, fid.mean, run->wall_s);
  ::testing::Test::RecordProperty("rate_over_limit", absl::StrFormat("%.4f", ratio));
  ::testing::Test::RecordProperty("limit_over_one_at_a_time",
                                  absl::StrFormat("%.4f", rounds_s / limit.time_between_deliveries_s));
  EXPECT_GE(ratio, 0.95) << "at least 0.95 of the swap-ASAP streaming limit";
  EXPECT_NEAR(ratio, 1.0, 3.5 * ratio_se + 0.01) << "the protocol costs next to nothing here";

  // The summary agrees with the traces.
  const results::v1::ConnectionSummary* s = FindConnection(run->summary, "e2e");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->pairs(), kPairs);
  EXPECT_EQ(s->pairs_one_end(), 0u);
  EXPECT_NEAR(s->true_fidelity_mean(), expected_f, 1e-9);
  EXPECT_NEAR(s->mean_time_between_deliveries_s(), gap.mean, 1e-6 * gap.mean);
  EXPECT_EQ(s->swaps(), c.swaps);
  if (!::testing::Test::HasFailure()) RemoveOutput(*run);
}

std::vector<LinkGen> Equal(int n, double p, double f) { return std::vector<LinkGen>(n, {p, f}); }

TEST(ChainStreamTest, TwoLinks) { CheckStreamingChain("stream2", Equal(2, 0.1, 0.95), 21); }

TEST(ChainStreamTest, FourLinksWithUnequalP) {
  CheckStreamingChain("stream4", {{0.1, 0.98}, {0.2, 0.95}, {0.15, 0.97}, {0.1, 0.99}}, 41);
}

TEST(ChainStreamTest, FourLinks) { CheckStreamingChain("stream4eq", Equal(4, 0.1, 0.97), 43); }

TEST(ChainStreamTest, EightLinks) { CheckStreamingChain("stream8", Equal(8, 0.1, 0.99), 81); }

}  // namespace
}  // namespace qnet::scenarios
