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
  m.timing.cycle_s = 1;
  m.timing.herald_delay_s = 1;
  m.timing.link_setup_s = 1;  // m = one cycle, d = 0
  return m;
}

// Without memory noise the Monte Carlo's rounds take setup + max N cycles, and
// every pair has the Werner product fidelity.
TEST(ChainMonteCarloTest, RoundTimeIsMaxOfGeometricsPlusSetup) {
  const std::vector<double> p = {0.05, 0.1, 0.02};
  const ChainModel m = Model(p, {0.95, 0.9, 0.99});
  const ChainMonteCarloResult r = RunChainMonteCarlo(m, 20000, 7);
  const Moments mm = MaxAttemptsMoments(p);
  EXPECT_EQ(r.delivered, 20000u);
  EXPECT_EQ(r.discarded, 0u);
  EXPECT_NEAR(r.time_between_deliveries_s, mm.mean + 1, 3 * std::sqrt(mm.variance / 20000));
  EXPECT_NEAR(r.time_between_deliveries_se, std::sqrt(mm.variance / 20000),
              0.05 * r.time_between_deliveries_se);
  EXPECT_NEAR(r.fidelity_mean, ChainWernerFidelity({0.95, 0.9, 0.99}), 1e-12);
}

// Deterministic links: every qubit waits exactly one herald delay before its
// swap or completion, so W = w1 w2 exp(-4 h / T).
TEST(ChainMonteCarloTest, DepolarisingDecayOfDeterministicRounds) {
  ChainModel m = Model({1, 1}, {0.9, 0.95});
  m.depolar_s = 20;
  const ChainMonteCarloResult r = RunChainMonteCarlo(m, 10, 1);
  const double w = WernerParameter(0.9) * WernerParameter(0.95) * std::exp(-4.0 / 20);
  EXPECT_NEAR(r.fidelity_mean, WernerFidelity(w), 1e-12);
  EXPECT_NEAR(r.time_between_deliveries_s, 2, 1e-12);
}

// A cutoff below one cycle discards every round whose links did not all
// succeed at the same attempt: P(N1 = N2) = p / (2 - p).
TEST(ChainMonteCarloTest, CutoffDiscardsRoundsWithUnequalHeralds) {
  ChainModel m = Model({0.2, 0.2}, {1, 1});
  m.cutoff_s = 0.5;
  const ChainMonteCarloResult r = RunChainMonteCarlo(m, 5000, 3);
  const double kept = 0.2 / (2 - 0.2);
  const double measured = 5000.0 / static_cast<double>(r.delivered + r.discarded);
  EXPECT_NEAR(measured, kept, 3 * std::sqrt(kept * (1 - kept) / (5000 / kept)));
}

}  // namespace
}  // namespace qnet::scenarios
