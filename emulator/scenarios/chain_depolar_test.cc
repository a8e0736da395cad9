// Streaming Werner chains with depolarising memories (sim backend): the mean
// end-to-end true fidelity, the time between deliveries and the share of
// discarded pairs agree, within 3 to 3.5 combined standard errors, with an
// independent Monte Carlo of the streaming model and the memory decay
// (chain_monte_carlo.h, chain_timing.h). One case has a cutoff that discards
// a good share of the pairs (NET-C-36), so the Monte Carlo's model of the
// cutoff (age = completion - oldest herald) is checked too.
#include <cmath>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "emulator/scenarios/analytic.h"
#include "emulator/scenarios/chain_monte_carlo.h"
#include "emulator/scenarios/chain_timing.h"
#include "emulator/scenarios/scenario_runner.h"
#include "emulator/scenarios/topology_gen.h"
#include "gtest/gtest.h"

namespace qnet::scenarios {
namespace {

constexpr uint32_t kPairs = 3000;

void CheckDepolarisingChain(const std::string& name, int links, double p, double depolar_s,
                            double cutoff_s, uint64_t seed) {
  ChainGen chain;
  chain.name = name;
  chain.seed = seed;
  chain.links = std::vector<LinkGen>(links, {p, 0.97});
  chain.attempt_us = 10;
  chain.classical_delay_us = 0.001;
  chain.memories = 2;  // one per side: depth 1, the model's
  chain.depolar_s = depolar_s;
  chain.cutoff_s = cutoff_s;  // explicit: the derived default depends on min-fidelity
  chain.pairs = kPairs;
  const ChainModel model_spec = ChainGenModel(chain);
  const ChainMonteCarloResult mc = RunChainMonteCarlo(model_spec, 200000, seed + 7);
  const double discard_share =
      static_cast<double>(mc.discarded) / static_cast<double>(mc.discarded + mc.delivered);
  chain.duration_s = chain.start_s + 0.3 + 1.3 * kPairs * mc.time_between_deliveries_s;

  absl::StatusOr<ScenarioRun> run = RunScenario(ChainXml(chain), name);
  ASSERT_TRUE(run.ok()) << run.status();
  absl::StatusOr<std::map<std::string, CircuitTrace>> circuits = ReadCircuits(*run);
  ASSERT_TRUE(circuits.ok()) << circuits.status();
  ASSERT_EQ(circuits->size(), 1u);
  const CircuitTrace& c = circuits->begin()->second;
  ASSERT_GE(c.head_seqs.size(), kPairs)
      << "delivered too few pairs in " << chain.duration_s << " s";
  const MeanSe fid = MeanAndSe(c.true_fidelity);
  ASSERT_EQ(fid.n, c.head_seqs.size());
  const MeanSe gap = MeanAndSe(DeliveryGaps(c));
  const double emulated_discards =
      static_cast<double>(c.discarded) / static_cast<double>(c.discarded + c.head_seqs.size());
  const double fid_tol = 3 * std::hypot(fid.se, mc.fidelity_se);
  std::printf(
      "[%s] links %d p %g T %g s cutoff %g s: F emulated %.5f +- %.5f, Monte Carlo %.5f +- %.5f "
      "(diff %.2f combined se); no-noise F %.5f; time between deliveries %.6f vs %.6f s; "
      "discarded %.3f vs %.3f; wall %.2f s\n",
      name.c_str(), links, p, depolar_s, cutoff_s, fid.mean, fid.se, mc.fidelity_mean,
      mc.fidelity_se, (fid.mean - mc.fidelity_mean) / std::hypot(fid.se, mc.fidelity_se),
      ChainWernerFidelity(model_spec.fidelity), gap.mean, mc.time_between_deliveries_s,
      emulated_discards, discard_share, run->wall_s);
  ::testing::Test::RecordProperty("fidelity_emulated", absl::StrFormat("%.5f", fid.mean));
  ::testing::Test::RecordProperty("fidelity_monte_carlo",
                                  absl::StrFormat("%.5f", mc.fidelity_mean));
  EXPECT_NEAR(fid.mean, mc.fidelity_mean, fid_tol);
  // The memory noise matters: the mean is well below the noiseless figure.
  EXPECT_LT(fid.mean, ChainWernerFidelity(model_spec.fidelity) - 10 * fid_tol);
  EXPECT_NEAR(gap.mean, mc.time_between_deliveries_s,
              3.5 * std::hypot(gap.se, mc.time_between_deliveries_se));
  const double n_rounds = static_cast<double>(c.discarded + c.head_seqs.size());
  EXPECT_NEAR(emulated_discards, discard_share,
              3.5 * std::sqrt(discard_share * (1 - discard_share) / n_rounds) + 1e-9);

  const results::v1::ConnectionSummary* s = FindConnection(run->summary, "e2e");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->pairs_one_end(), 0u);
  EXPECT_NEAR(s->true_fidelity_mean(), fid.mean, 1e-9);
  if (!::testing::Test::HasFailure()) RemoveOutput(*run);
}

TEST(DepolarisingChainTest, TwoLinks) { CheckDepolarisingChain("depol2", 2, 0.02, 0.02, 10, 22); }
TEST(DepolarisingChainTest, ThreeLinks) { CheckDepolarisingChain("depol3", 3, 0.02, 0.02, 10, 32); }
TEST(DepolarisingChainTest, FourLinks) { CheckDepolarisingChain("depol4", 4, 0.02, 0.02, 10, 42); }
TEST(DepolarisingChainTest, EightLinks) { CheckDepolarisingChain("depol8", 8, 0.02, 0.05, 10, 82); }
// A cutoff of 0.6 ms (60 cycles) discards a good share of the pairs.
TEST(DepolarisingChainTest, ThreeLinksWithABindingCutoff) {
  CheckDepolarisingChain("depol3cut", 3, 0.02, 0.02, 0.0006, 33);
}

}  // namespace
}  // namespace qnet::scenarios
