// Whole two-node runs on the sim backend, checked against the analytic model
// (issue "first light", done-means; specs/physical.md generation contract).
#include "emulator/backend/sim_backend.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "emulator/results/summary.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"
#include "stack/json_lines.h"
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
    const double rate_se =
        expected_rate * std::sqrt(1 - p) / std::sqrt(static_cast<double>(link.pairs()));
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

// ---- End-to-end connections (issue 3): the composed stack on the sim backend ----

// Three-node Werner chain a - b - c (F = 0.95 per link) with one connection.
std::string ChainXml(const std::string& connection, const std::string& extra = "",
                     double duration_s = 0.6) {
  return absl::StrFormat(R"(<network name="chain3" seed="7" duration-s="%g">
  <hardware name="hw" memories="4"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="2" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.95"/>
  <link name="bc" a="b" b="c" length-km="2" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.95"/>
  %s
  %s
</network>)",
                         duration_s, connection, extra);
}

struct ConnectionRun {
  Topology topology;
  SimReport report;
  std::vector<results::v1::PairTruth> truths;
};

ConnectionRun RunConnections(const std::string& xml, const std::string& name) {
  ConnectionRun r;
  absl::StatusOr<Topology> topo = ParseTopology(xml, name + ".xml");
  EXPECT_TRUE(topo.ok()) << topo.status();
  if (!topo.ok()) return r;
  r.topology = *topo;
  const std::string dir = TempDir(name);
  absl::Status s = RunSimulation(r.topology, dir, nullptr, &r.report);
  EXPECT_TRUE(s.ok()) << s;
  auto records = ReadTraceFile(dir + "/qworld.jsonl");
  EXPECT_TRUE(records.ok()) << records.status();
  if (records.ok()) {
    for (const auto& rec : *records)
      if (rec.has_pair_truth()) r.truths.push_back(rec.pair_truth());
  }
  return r;
}

// TOPO-32, NET-C (delivery at both ends), TRN pair ids: a <connection> from a
// to c over the chain delivers pairs 1, 2, 3, ... at both ends, the same ids
// in the same order, none expired; the head's true end-to-end fidelity is the
// swapped Werner value (1 + 3 w^2) / 4 (REFERENCE.md "Swapping").
TEST(SimBackendTest, ChainConnectionDeliversTheSamePairsAtBothEnds) {
  ConnectionRun r = RunConnections(
      ChainXml(R"(<connection name="ac" from="a" to="c" start-s="0.05"/>)"), "chain_keep");
  ASSERT_TRUE(r.report.initiator.contains("ac"));
  ASSERT_TRUE(r.report.responder.contains("ac"));
  const node::ConnectionCounts& head = r.report.initiator["ac"];
  const node::ConnectionCounts& tail = r.report.responder["ac"];
  EXPECT_TRUE(head.connected);
  EXPECT_TRUE(tail.connected);
  ASSERT_GT(head.pairs, 200u);
  // The tail hears of a pair one Deliver later than the head: at most a few behind.
  EXPECT_LE(tail.pairs, head.pairs);
  EXPECT_GE(tail.pairs + 3, head.pairs);
  for (size_t i = 0; i < tail.pair_ids.size(); ++i) {
    ASSERT_EQ(tail.pair_ids[i], i + 1);
    ASSERT_EQ(head.pair_ids[i], i + 1);
  }
  EXPECT_EQ(head.expired, 0u);
  EXPECT_EQ(tail.expired, 0u);
  EXPECT_EQ(head.released, head.pairs);  // hold-s 0: released at once
  // Truth: one probe per delivered pair, fidelity of two swapped Werner links.
  ASSERT_GE(r.truths.size(), head.pairs);
  double sum = 0;
  for (const auto& t : r.truths) sum += t.true_fidelity();
  const double w = (4 * 0.95 - 1) / 3;
  EXPECT_NEAR(sum / r.truths.size(), (1 + 3 * w * w) / 4, 0.005);
}

// The same connection in measure type with basis z: both ends report an outcome
// per pair, PHI_PLUS frame, so the ones match up to the Werner error rate.
TEST(SimBackendTest, ChainMeasureConnectionCountsOutcomesAtBothEnds) {
  ConnectionRun r = RunConnections(
      ChainXml(R"(<connection name="ac" from="a" to="c" type="measure" basis="z" pairs="300"/>)"),
      "chain_measure");
  const node::ConnectionCounts& head = r.report.initiator["ac"];
  const node::ConnectionCounts& tail = r.report.responder["ac"];
  // pairs-N: exactly 300 at both ends, then closed kDone at both.
  EXPECT_EQ(head.pairs, 300u);
  EXPECT_EQ(tail.pairs, 300u);
  EXPECT_EQ(head.measured, 300u);
  ASSERT_TRUE(head.closed.has_value());
  ASSERT_TRUE(tail.closed.has_value());
  EXPECT_EQ(*head.closed, transport::CloseReason::kDone);
  EXPECT_EQ(*tail.closed, transport::CloseReason::kDone);
  // Z outcomes are uniform at each end.
  EXPECT_NEAR(head.ones / 300.0, 0.5, 3 * std::sqrt(0.25 / 300));
}

// TOPO-35: cutting the only path's link b-c stops deliveries; the frames on it
// are lost and counted; both ends see the connection closed (no other route).
TEST(SimBackendTest, CutLinkEndsTheChainConnection) {
  ConnectionRun r = RunConnections(
      ChainXml(R"(<connection name="ac" from="a" to="c"/>)", R"(<event at="0.3" cut-link="bc"/>)",
               /*duration_s=*/2),
      "chain_cut");
  const node::ConnectionCounts& head = r.report.initiator["ac"];
  const node::ConnectionCounts& tail = r.report.responder["ac"];
  ASSERT_GT(head.pairs, 50u);
  EXPECT_GT(r.report.frames_cut, 0u);
  ASSERT_TRUE(head.closed.has_value());
  EXPECT_NE(*head.closed, transport::CloseReason::kDone);
  EXPECT_LE(tail.pairs, head.pairs);
}

// Reroute: in a ring a-b-c-d-a the connection a -> c survives the cut of one
// of its links; pair ids continue after the reroute at both ends.
TEST(SimBackendTest, RingConnectionReroutesAroundACutLink) {
  const std::string xml = R"(<network name="ring" seed="3" duration-s="0.8" routing-metric="hops">
  <hardware name="hw" memories="4"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <node name="d" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="2" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.95"/>
  <link name="bc" a="b" b="c" length-km="2" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.95"/>
  <link name="cd" a="c" b="d" length-km="2" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.95"/>
  <link name="da" a="d" b="a" length-km="2" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.95"/>
  <connection name="ac" from="a" to="c"/>
  <event at="0.3" cut-link="bc"/>
</network>)";
  ConnectionRun r = RunConnections(xml, "ring_cut");
  const node::ConnectionCounts& head = r.report.initiator["ac"];
  const node::ConnectionCounts& tail = r.report.responder["ac"];
  EXPECT_FALSE(head.closed.has_value()) << head.close_detail;
  ASSERT_GT(tail.pairs, 200u);
  EXPECT_GT(r.report.frames_cut, 0u);
  // Ids increase at both ends across the reroute; what each end kept (its
  // delivered ids less those reported expired to it) is the same sequence,
  // but for the last few the tail had not heard of when the run ended.
  auto kept = [](const node::ConnectionCounts& c) {
    std::vector<uint64_t> ids;
    for (uint64_t id : c.pair_ids)
      if (std::find(c.expired_ids.begin(), c.expired_ids.end(), id) == c.expired_ids.end())
        ids.push_back(id);
    return ids;
  };
  const std::vector<uint64_t> head_ids = kept(head), tail_ids = kept(tail);
  for (size_t i = 1; i < head.pair_ids.size(); ++i)
    ASSERT_LT(head.pair_ids[i - 1], head.pair_ids[i]);
  ASSERT_LE(tail_ids.size(), head_ids.size());
  EXPECT_GE(tail_ids.size() + 3, head_ids.size());
  for (size_t i = 0; i < tail_ids.size(); ++i) ASSERT_EQ(head_ids[i], tail_ids[i]) << "index " << i;
  // Pairs went on after the cut: more than the ~0.3 s before it gave.
  EXPECT_GT(tail.pair_ids.back(), head.pair_ids.size() / 2);
}

// In-process apps (emulator brief, sim backend): chain3-apps.xml's teleport and
// chsh run inside the simulation through InProcessAppClient and AppSession,
// the classes the programs use; both write their results (OUT/apps) and agree
// with the model: teleport (2F+1)/3 and S = 2 sqrt2 w^2 within 4 stderr, for
// F the swapped chain's fidelity (1 + 3 w^2)/4, w = (4 * 0.97 - 1)/3.
TEST(SimBackendTest, InProcessAppsOnTheChainMatchTheModel) {
  absl::StatusOr<Topology> topo = LoadTopologyFile(QNET_TOPOLOGIES "/chain3-apps.xml");
  ASSERT_TRUE(topo.ok()) << topo.status();
  const std::string dir = TempDir("chain_apps");
  SimReport report;
  ASSERT_TRUE(RunSimulation(*topo, dir, nullptr, &report).ok());
  absl::StatusOr<results::v1::Summary> summary = results::Summarize(*topo, dir, "sim");
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_EQ(summary->apps_size(), 2);
  const double w = (4 * 0.97 - 1) / 3;
  const double f = (1 + 3 * w * w) / 4;
  for (const results::v1::AppSummary& app : summary->apps()) {
    SCOPED_TRACE(app.name());
    EXPECT_EQ(app.status(), "ok") << app.error();
    std::map<std::string, double> r;
    for (const auto& v : app.results()) r[v.name()] = v.value();
    ASSERT_GT(r["stderr"], 0);
    if (app.kind() == "teleport") {
      EXPECT_EQ(r["pairs"], 60);
      EXPECT_NEAR(r["fidelity"], (2 * f + 1) / 3, 4 * r["stderr"]);
    } else {
      EXPECT_EQ(r["pairs"], 120);
      EXPECT_NEAR(r["S"], 2 * std::sqrt(2.0) * w * w, 4 * r["stderr"]);
    }
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/apps/teleport.sender.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/apps/chsh.b.json"));
}

}  // namespace
}  // namespace qnet::backend
