// The references the scenario tests compare the emulation with: the waiting-
// time formulas of REFERENCE.md against each other and against sampling, and
// the chain Monte Carlo against cases with a closed form.
#include "emulator/scenarios/analytic.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "emulator/scenarios/chain_monte_carlo.h"
#include "gtest/gtest.h"

namespace qnet::scenarios {
namespace {

TEST(AnalyticTest, ExpectedMaxAttemptsMatchesTheClosedForms) {
  // One link: 1/p. Two links: (3 - 2p) / (p (2 - p)) (REFERENCE.md).
  EXPECT_NEAR(ExpectedMaxAttempts({0.1}), 10, 1e-9);
  for (double p : {0.01, 0.1, 0.5}) {
    EXPECT_NEAR(ExpectedMaxAttempts({p, p}), (3 - 2 * p) / (p * (2 - p)), 1e-9);
    for (int n : {2, 3, 4, 8}) {
      SCOPED_TRACE(absl::StrCat("n ", n, " p ", p));
      const std::vector<double> ps(n, p);
      EXPECT_NEAR(ExpectedMaxAttempts(ps), ExpectedMaxAttemptsEqual(n, p), 1e-9 * n / p);
      EXPECT_NEAR(ExpectedMaxAttempts(ps), MaxAttemptsMoments(ps).mean, 1e-6 / p);
    }
  }
  // Unequal p: inclusion-exclusion and the tail sum agree.
  const std::vector<double> mixed = {0.02, 0.05, 0.1, 0.03};
  EXPECT_NEAR(ExpectedMaxAttempts(mixed), MaxAttemptsMoments(mixed).mean, 1e-6);
  // H_n / lambda + 1/2 approximates it closely (REFERENCE.md).
  const double lambda = -std::log(1 - 0.02);
  EXPECT_NEAR(ExpectedMaxAttemptsEqual(8, 0.02),
              (1 + 1. / 2 + 1. / 3 + 1. / 4 + 1. / 5 + 1. / 6 + 1. / 7 + 1. / 8) / lambda + 0.5,
              0.1);
}

TEST(AnalyticTest, MaxAttemptsVarianceOfOneLinkIsGeometric) {
  for (double p : {0.02, 0.3})
    EXPECT_NEAR(MaxAttemptsMoments({p}).variance, (1 - p) / (p * p), 1e-6 / p);
}

TEST(AnalyticTest, ChainWernerFidelity) {
  EXPECT_NEAR(ChainWernerFidelity({0.9}), 0.9, 1e-12);
  // F1 F2 + (1 - F1)(1 - F2) / 3 (REFERENCE.md "Swapping").
  EXPECT_NEAR(ChainWernerFidelity({0.9, 0.8}), 0.9 * 0.8 + 0.1 * 0.2 / 3, 1e-12);
}

ChainModel Model(std::vector<double> p, std::vector<double> f) {
  ChainModel m;
  m.p = std::move(p);
  m.fidelity = std::move(f);
  m.cycle_s = 1;
  return m;
}

// One link: the end-to-end pair is complete at its herald, the link starts
// again at once: 1/p cycles per pair, the Werner fidelity of the link.
TEST(ChainMonteCarloTest, OneLinkTakesOneOverPCyclesPerPair) {
  const ChainModel m = Model({0.05}, {0.95});
  const ChainMonteCarloResult r = RunChainMonteCarlo(m, 20000, 7);
  EXPECT_EQ(r.delivered, 20000u);
  EXPECT_EQ(r.discarded, 0u);
  const double se = std::sqrt(0.95) / 0.05 / std::sqrt(20000.0);
  EXPECT_NEAR(r.time_between_deliveries_s, 20, 3 * se);
  EXPECT_NEAR(r.time_between_deliveries_se, se, 0.1 * se);
  EXPECT_NEAR(r.fidelity_mean, 0.95, 1e-12);
}

// Streaming beats one pair at a time by the figures the model is known for
// (p 0.1: 1.00, 1.03, 1.18 x 1 / E[max] for 2, 4, 8 links); every pair has
// the Werner product fidelity without memory noise.
TEST(ChainMonteCarloTest, PipeliningGainOverOnePairAtATime) {
  const double expected[] = {1.00, 1.03, 1.18};
  int i = 0;
  for (int n : {2, 4, 8}) {
    const ChainModel m = Model(std::vector<double>(n, 0.1), std::vector<double>(n, 0.99));
    const ChainMonteCarloResult r = RunChainMonteCarlo(m, 40000, 11);
    const double gain = ExpectedMaxAttempts(m.p) / r.time_between_deliveries_s;
    EXPECT_NEAR(gain, expected[i++], 0.015) << n << " links";
    EXPECT_NEAR(r.fidelity_mean, ChainWernerFidelity(m.fidelity), 1e-12);
  }
}

// Deterministic links: every pair heralds one cycle after its attempt, the
// swap and the completion come at once, so every qubit decays one cycle:
// W = w1 w2 exp(-4 / T), one pair per cycle.
TEST(ChainMonteCarloTest, DepolarisingDecayOfDeterministicLinks) {
  ChainModel m = Model({1, 1}, {0.9, 0.95});
  m.depolar_s = 20;
  const ChainMonteCarloResult r = RunChainMonteCarlo(m, 10, 1);
  const double w = WernerParameter(0.9) * WernerParameter(0.95) * std::exp(-4.0 / 20);
  EXPECT_NEAR(r.fidelity_mean, WernerFidelity(w), 1e-12);
  EXPECT_NEAR(r.time_between_deliveries_s, 1, 1e-12);
}

// Two links start together after every completion; a cutoff below one cycle
// discards every pair whose links did not succeed at the same attempt:
// P(N1 = N2) = p / (2 - p).
TEST(ChainMonteCarloTest, CutoffDiscardsPairsWithUnequalHeralds) {
  ChainModel m = Model({0.2, 0.2}, {1, 1});
  m.cutoff_s = 0.5;
  const ChainMonteCarloResult r = RunChainMonteCarlo(m, 5000, 3);
  const double kept = 0.2 / (2 - 0.2);
  const double measured = 5000.0 / static_cast<double>(r.delivered + r.discarded);
  EXPECT_NEAR(measured, kept, 3 * std::sqrt(kept * (1 - kept) / (5000 / kept)));
}

}  // namespace
}  // namespace qnet::scenarios
