// Whole two-node runs on the sim backend, checked against the analytic model
// (issue "first light", done-means; specs/physical.md generation contract).
#include "emulator/backend/sim_backend.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "emulator/results/summary.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"
#include "stack/topology_loader.h"

namespace qnet::backend {
namespace {

std::string TempDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_sim_", name, "_", getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  Topology topology;
  results::v1::Summary summary;
};

RunResult RunXml(const std::string& xml, const std::string& name) {
  absl::StatusOr<Topology> topo = ParseTopology(xml, name + ".xml");
  EXPECT_TRUE(topo.ok()) << topo.status();
  const std::string dir = TempDir(name);
  absl::Status s = RunSimulation(*topo, dir);
  EXPECT_TRUE(s.ok()) << s;
  absl::StatusOr<results::v1::Summary> summary = results::Summarize(*topo, dir, "sim");
  EXPECT_TRUE(summary.ok()) << summary.status();
  return RunResult{*topo, summary.ok() ? *summary : results::v1::Summary()};
}

std::string SingleClickXml(double alpha, const std::string& type) {
  return absl::StrFormat(R"(<network name="sc" seed="11" duration-s="3">
  <hardware name="hw" memories="4"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="2" loss-db-km="0.2" scheme="single-click"
        attempt-us="10" efficiency="0.4" dark-count-prob="1e-4" visibility="0.9" alpha="%g"/>
  <request from="a" to="b" pairs="1000000" type="%s" min-fidelity="0" basis="xz"/>
</network>)",
                         alpha, type);
}

// Rate within 3 standard errors of p_succ / cycle, and mean true fidelity within
// 0.01 of the formula, for single-click at three alphas (PHYS-G*, LINK rate).
TEST(SimBackendTest, SingleClickRateAndFidelityMatchTheModelAtThreeAlphas) {
  for (double alpha : {0.05, 0.1, 0.25}) {
    SCOPED_TRACE(absl::StrCat("alpha ", alpha));
    RunResult r = RunXml(SingleClickXml(alpha, "keep"), absl::StrCat("sc", alpha));
    ASSERT_EQ(r.summary.links_size(), 1);
    const auto& link = r.summary.links(0);
    const LinkSpec& spec = r.topology.links[0];
    const double p = SuccessProbability(spec, alpha);
    const double cycle = absl::ToDoubleSeconds(AttemptCycle(spec));
    const double expected_rate = p / cycle;
    ASSERT_GT(link.pairs(), 1000u);
    // Geometric waiting times: per-pair time has sd = cycle * sqrt(1-p) / p.
    const double rate_se = expected_rate * std::sqrt(1 - p) / std::sqrt(static_cast<double>(link.pairs()));
    EXPECT_NEAR(link.rate_hz(), expected_rate, 3 * rate_se);
    EXPECT_NEAR(link.true_fidelity_mean(), HeraldedFidelity(spec, alpha), 0.01);
    EXPECT_NEAR(link.estimated_fidelity_mean(), HeraldedFidelity(spec, alpha), 1e-9);
  }
}

TEST(SimBackendTest, WernerRateFidelityAndQberMatchTheModel) {
  const std::string xml = R"(<network name="w" seed="5" duration-s="2">
  <hardware name="hw" memories="2"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1" scheme="werner" attempt-us="20" p-success="0.05" fidelity="0.9"/>
  <request from="a" to="b" pairs="1000000" type="measure" basis="xz"/>
</network>)";
  RunResult r = RunXml(xml, "werner");
  ASSERT_EQ(r.summary.links_size(), 1);
  const auto& link = r.summary.links(0);
  const double cycle = absl::ToDoubleSeconds(AttemptCycle(r.topology.links[0]));
  const double expected_rate = 0.05 / cycle;
  ASSERT_GT(link.pairs(), 1000u);
  EXPECT_NEAR(link.rate_hz(), expected_rate,
              3 * expected_rate * std::sqrt(0.95) / std::sqrt(static_cast<double>(link.pairs())));
  EXPECT_NEAR(link.true_fidelity_mean(), 0.9, 0.01);
  // Werner: QBER = 2 (1 - F) / 3 in every basis (REFERENCE.md, QKD).
  const double q = 2 * (1 - 0.9) / 3;
  const double nz = static_cast<double>(link.measured_pairs_z());
  const double nx = static_cast<double>(link.measured_pairs_x());
  ASSERT_GT(nz, 500);
  ASSERT_GT(nx, 500);
  EXPECT_NEAR(link.qber_z(), q, 3 * std::sqrt(q * (1 - q) / nz));
  EXPECT_NEAR(link.qber_x(), q, 3 * std::sqrt(q * (1 - q) / nx));
}

TEST(SimBackendTest, SameSeedGivesByteIdenticalSummary) {
  const std::string xml = SingleClickXml(0.1, "measure");
  absl::StatusOr<Topology> topo = ParseTopology(xml, "det.xml");
  ASSERT_TRUE(topo.ok());
  std::string bytes[2];
  for (int i = 0; i < 2; ++i) {
    const std::string dir = TempDir(absl::StrCat("det", i));
    ASSERT_TRUE(RunSimulation(*topo, dir).ok());
    auto summary = results::Summarize(*topo, dir, "sim");
    ASSERT_TRUE(summary.ok());
    ASSERT_TRUE(results::WriteSummary(*summary, dir + "/summary.json").ok());
    bytes[i] = ReadFile(dir + "/summary.json");
  }
  EXPECT_FALSE(bytes[0].empty());
  EXPECT_EQ(bytes[0], bytes[1]);
  // A different seed gives a different run.
  topo->seed += 1;
  const std::string dir = TempDir("det_other");
  ASSERT_TRUE(RunSimulation(*topo, dir).ok());
  auto other = results::Summarize(*topo, dir, "sim");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(results::WriteSummary(*other, dir + "/summary.json").ok());
  EXPECT_NE(ReadFile(dir + "/summary.json"), bytes[0]);
}

}  // namespace
}  // namespace qnet::backend
