// Per-connection and per-app figures of summary.json on hand-written trace
// files: every number worked out by hand from its definition in
// specs/topology.md (RES-20..RES-33).
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emulator/results/summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stack/json_lines.h"
#include "stack/topology_loader.h"

namespace qnet::results {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMs = 1'000'000;

// A results folder with trace files written record by record, explicit times.
class Folder {
 public:
  explicit Folder(const std::string& name)
      : dir_(absl::StrCat(::testing::TempDir(), "/qnet_connections_", name, "_", getpid())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/nodes");
    std::filesystem::create_directories(dir_ + "/apps");
  }
  ~Folder() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }

  void Add(const std::string& node, int64_t t_ns, v1::TraceRecord r) {
    auto& tracer = tracers_[node];
    if (!tracer) {
      const std::string path =
          node == "qworld" ? dir_ + "/qworld.jsonl" : dir_ + "/nodes/" + node + ".jsonl";
      tracer = std::make_unique<JsonLinesTracer>(path, node, nullptr);
    }
    r.set_time_ns(static_cast<uint64_t>(t_ns));
    tracer->Record(std::move(r));
  }
  void Circuit(const std::string& node, int64_t t, const std::string& key, bool up,
               std::vector<std::string> path, const std::string& reason = "") {
    v1::TraceRecord r;
    auto* e = r.mutable_circuit_event();
    e->set_circuit(key);
    e->set_up(up);
    for (const auto& n : path) e->add_path(n);
    e->set_role(node == path.front() ? "head" : node == path.back() ? "tail" : "intermediate");
    e->set_reason(reason);
    Add(node, t, r);
  }
  void EndPair(const std::string& node, int64_t t, const std::string& key, uint64_t seq, bool head,
               double estimate = 0.9) {
    v1::TraceRecord r;
    auto* e = r.mutable_end_pair();
    e->set_circuit(key);
    e->set_seq(seq);
    e->set_role(head ? "head" : "tail");
    e->set_estimated_fidelity(estimate);
    e->set_delivered_ns(static_cast<uint64_t>(t));
    e->set_label(absl::StrCat(key, "/", seq));
    Add(node, t, r);
  }
  // A measure circuit's endPair: basis and result instead of a qubit.
  void MeasuredPair(const std::string& node, int64_t t, const std::string& key, uint64_t seq,
                    bool head, physical::v1::Basis basis, uint32_t result) {
    v1::TraceRecord r;
    auto* e = r.mutable_end_pair();
    e->set_circuit(key);
    e->set_seq(seq);
    e->set_role(head ? "head" : "tail");
    e->set_delivered_ns(static_cast<uint64_t>(t));
    e->set_measured(true);
    e->set_basis(basis);
    e->set_result(result);
    Add(node, t, r);
  }
  void Swap(const std::string& node, int64_t t, const std::string& key) {
    v1::TraceRecord r;
    r.mutable_swap_event()->set_circuit(key);
    Add(node, t, r);
  }
  void Expired(const std::string& node, int64_t t, const std::string& key, uint64_t seq) {
    v1::TraceRecord r;
    r.mutable_pair_expired()->set_circuit(key);
    r.mutable_pair_expired()->set_seq(seq);
    Add(node, t, r);
  }
  void Discarded(const std::string& node, int64_t t, const std::string& key) {
    v1::TraceRecord r;
    r.mutable_pair_discarded()->set_circuit(key);
    r.mutable_pair_discarded()->set_reason("cutoff");
    Add(node, t, r);
  }
  void Truth(int64_t t, const std::string& label, double fidelity) {
    v1::TraceRecord r;
    r.mutable_pair_truth()->set_label(label);
    r.mutable_pair_truth()->set_true_fidelity(fidelity);
    Add("qworld", t, r);
  }
  void AppFile(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/apps/" + name + ".json") << text;
  }
  void Close() { tracers_.clear(); }

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<JsonLinesTracer>> tracers_;
};

Topology Load(const std::string& xml) {
  absl::StatusOr<Topology> t = ParseTopology(xml, "conn.xml");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : Topology{};
}

const char kRing[] = R"(<network name="ring" duration-s="1">
  <hardware name="hw"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <node name="d" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1" scheme="werner" p-success="0.1"/>
  <link name="bc" a="b" b="c" length-km="1" scheme="werner" p-success="0.1"/>
  <link name="ad" a="a" b="d" length-km="1" scheme="werner" p-success="0.1"/>
  <link name="dc" a="d" b="c" length-km="1" scheme="werner" p-success="0.1"/>
  <connection name="k" from="a" to="c" start-s="0.1"/>
  <connection name="done" from="c" to="a" pairs="1"/>
  <app name="t" kind="teleport" node="a" peer="c"/>
  <app name="gone" kind="chsh" node="c" peer="a"/>
  <app name="bad" kind="chsh" node="a" peer="b"/>
  <app name="f" kind="chsh" node="b" peer="c"/>
</network>)";

// RES-20..RES-30: a connection served by a circuit that fails and a second
// one (reroute), with an expiry, a discarded round, a pair at the head only
// after the circuit went down (one end), one still in flight at the end, and a
// probe whose fidelity could not be computed; a second connection that got
// the one pair it asked for.
TEST(ConnectionSummaryTest, HandWrittenNetworkTracesGiveTheDefinedFigures) {
  const Topology topology = Load(kRing);
  Folder f("figures");
  const std::vector<std::string> p1 = {"a", "b", "c"}, p2 = {"a", "d", "c"};
  f.Circuit("a", 101 * kMs, "a/1", true, p1);
  f.Circuit("b", 101 * kMs, "a/1", true, p1);
  f.Circuit("c", 102 * kMs, "a/1", true, p1);
  f.Swap("b", 109 * kMs, "a/1");
  f.EndPair("a", 110 * kMs, "a/1", 1, true, 0.9);
  f.EndPair("c", 111 * kMs, "a/1", 1, false);
  f.Swap("b", 129 * kMs, "a/1");
  f.EndPair("a", 130 * kMs, "a/1", 2, true, 0.92);
  f.EndPair("c", 131 * kMs, "a/1", 2, false);
  f.Discarded("a", 140 * kMs, "a/1");
  f.Swap("b", 149 * kMs, "a/1");
  f.EndPair("a", 150 * kMs, "a/1", 3, true);
  f.EndPair("a", 155 * kMs, "a/1", 4, true);
  f.Circuit("a", 160 * kMs, "a/1", false, p1, "CIRCUIT_ERROR_LINK_DOWN");
  f.Circuit("c", 160 * kMs, "a/1", false, p1, "CIRCUIT_ERROR_LINK_DOWN");
  f.Expired("a", 160 * kMs, "a/1", 3);
  f.Circuit("a", 170 * kMs, "a/2", true, p2);
  f.Circuit("c", 171 * kMs, "a/2", true, p2);
  for (int i = 0; i < 3; ++i) f.Swap("d", (190 + i) * kMs, "a/2");
  f.EndPair("a", 200 * kMs, "a/2", 1, true, 0.88);
  f.EndPair("c", 201 * kMs, "a/2", 1, false);
  f.EndPair("a", 240 * kMs, "a/2", 2, true, 0.9);
  f.EndPair("c", 241 * kMs, "a/2", 2, false);
  f.EndPair("a", 990 * kMs, "a/2", 3, true);
  // The other connection: one pair, complete at 20 ms.
  f.Circuit("c", 5 * kMs, "c/1", true, {"c", "b", "a"});
  f.EndPair("c", 20 * kMs, "c/1", 1, true, 0.95);
  f.EndPair("a", 21 * kMs, "c/1", 1, false);
  f.Truth(110 * kMs, "a/1/1", 0.8);
  f.Truth(130 * kMs, "a/1/2", 0.9);
  f.Truth(200 * kMs, "a/2/1", 0.85);
  f.Truth(240 * kMs, "a/2/2", -1);
  f.Truth(250 * kMs, "a/9/9", 0.1);
  f.Truth(251 * kMs, "a/1/1", 0.2);  // a second record of a label is ignored
  f.Truth(20 * kMs, "c/1/1", 0.97);
  f.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, f.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->connections_size(), 2);
  const v1::ConnectionSummary& k = s->connections(0);
  EXPECT_EQ(k.name(), "k");
  EXPECT_EQ(k.from(), "a");
  EXPECT_EQ(k.to(), "c");
  EXPECT_THAT(k.path(), ElementsAre("a", "b", "c"));  // RES-21
  EXPECT_EQ(k.pairs(), 4u);                           // RES-22
  EXPECT_EQ(k.reroutes(), 1u);                        // RES-23
  ASSERT_EQ(k.circuits_size(), 2);
  EXPECT_EQ(k.circuits(0).circuit(), "a/1");
  EXPECT_DOUBLE_EQ(k.circuits(0).up_s(), 0.101);
  EXPECT_DOUBLE_EQ(k.circuits(0).down_s(), 0.160);
  EXPECT_EQ(k.circuits(0).down_reason(), "CIRCUIT_ERROR_LINK_DOWN");
  EXPECT_EQ(k.circuits(0).pairs(), 2u);
  EXPECT_THAT(k.circuits(1).path(), ElementsAre("a", "d", "c"));
  EXPECT_DOUBLE_EQ(k.circuits(1).down_s(), 0);
  EXPECT_EQ(k.circuits(1).pairs(), 2u);
  EXPECT_EQ(k.swaps(), 6u);     // RES-27
  EXPECT_EQ(k.expiries(), 1u);  // RES-27
  ASSERT_EQ(k.discards_size(), 1);
  EXPECT_EQ(k.discards(0).reason(), "cutoff");
  EXPECT_EQ(k.discards(0).count(), 1u);
  EXPECT_EQ(k.pairs_one_end(), 1u);    // RES-28: a/1 seq 4
  EXPECT_EQ(k.pairs_in_flight(), 1u);  // RES-28: a/2 seq 3
  // RES-24: unlimited pairs: active from 0.1 s to the run's end.
  EXPECT_DOUBLE_EQ(k.active_s(), 0.9);
  EXPECT_DOUBLE_EQ(k.rate_hz(), 4 / 0.9);
  // Gaps from the start: 10, 20, 70, 40 ms: mean 35, sd sqrt(700).
  EXPECT_NEAR(k.rate_hz_stderr(), (4 / 0.9) * (std::sqrt(700.0) / 35) / 2, 1e-9);
  // RES-25: 10, 20, 200 - 155 = 45 (after the head-only pair), 40 ms.
  EXPECT_NEAR(k.latency_s_mean(), 0.02875, 1e-12);
  // RES-30: gaps between deliveries 20, 70, 40 ms.
  EXPECT_NEAR(k.mean_time_between_deliveries_s(), 0.13 / 3, 1e-12);
  const double sd = std::sqrt(
      (std::pow(0.02 - 0.13 / 3, 2) + std::pow(0.07 - 0.13 / 3, 2) + std::pow(0.04 - 0.13 / 3, 2)) /
      2);
  EXPECT_NEAR(k.time_between_deliveries_stderr_s(), sd / std::sqrt(3.0), 1e-12);
  // RES-26: 0.8, 0.9, 0.85 (a/2/2's -1 is not a sample).
  EXPECT_EQ(k.fidelity_samples(), 3u);
  EXPECT_NEAR(k.true_fidelity_mean(), 0.85, 1e-12);
  EXPECT_NEAR(k.true_fidelity_stderr(), 0.05 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(k.estimated_fidelity_mean(), (0.9 + 0.92 + 0.88 + 0.9) / 4, 1e-12);

  const v1::ConnectionSummary& done = s->connections(1);
  EXPECT_EQ(done.name(), "done");
  EXPECT_THAT(done.path(), ElementsAre("c", "b", "a"));
  EXPECT_EQ(done.pairs(), 1u);
  EXPECT_EQ(done.pairs_requested(), 1u);
  EXPECT_DOUBLE_EQ(done.active_s(), 0.02);  // complete: up to its last delivery
  EXPECT_DOUBLE_EQ(done.rate_hz(), 50);
  EXPECT_DOUBLE_EQ(done.latency_s_mean(), 0.02);
  EXPECT_DOUBLE_EQ(done.true_fidelity_mean(), 0.97);
  EXPECT_EQ(done.reroutes(), 0u);
  EXPECT_EQ(done.pairs_one_end(), 0u);
}

// RES-21: two connections between the same nodes: a circuit goes to the
// started connection without one, then a reroute to the connection whose
// circuit went down most recently.
TEST(ConnectionSummaryTest, CircuitsOfTwinConnectionsAreToldApartByTime) {
  const Topology topology = Load(R"(<network duration-s="2">
  <hardware name="hw"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1" scheme="werner" p-success="0.1"/>
  <connection name="x" from="a" to="b"/>
  <connection name="y" from="a" to="b" start-s="0.5"/>
</network>)");
  Folder f("twins");
  f.Circuit("a", 10 * kMs, "a/1", true, {"a", "b"});
  f.Circuit("a", 600 * kMs, "a/2", true, {"a", "b"});
  f.Circuit("a", 700 * kMs, "a/1", false, {"a", "b"}, "CIRCUIT_ERROR_LINK_DOWN");
  f.Circuit("a", 750 * kMs, "a/3", true, {"a", "b"});
  f.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, f.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->connections_size(), 2);
  const v1::ConnectionSummary& x = s->connections(0);
  const v1::ConnectionSummary& y = s->connections(1);
  ASSERT_EQ(x.circuits_size(), 2);
  EXPECT_EQ(x.circuits(0).circuit(), "a/1");
  EXPECT_EQ(x.circuits(1).circuit(), "a/3");
  EXPECT_EQ(x.reroutes(), 1u);
  ASSERT_EQ(y.circuits_size(), 1);
  EXPECT_EQ(y.circuits(0).circuit(), "a/2");
  EXPECT_EQ(y.reroutes(), 0u);
}

// RES-29: a measure connection's QBER per basis from the two ends' results:
// pairs in different bases do not count, X and Z must agree, Y must differ,
// and a pair delivered at one end only is not a sample.
TEST(ConnectionSummaryTest, MeasureConnectionQberPerBasis) {
  const Topology topology = Load(R"(<network duration-s="2">
  <hardware name="hw"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1" scheme="werner" p-success="0.1"/>
  <connection name="m" from="a" to="b" type="measure" basis="xyz"/>
</network>)");
  using physical::v1::BASIS_X;
  using physical::v1::BASIS_Y;
  using physical::v1::BASIS_Z;
  Folder f("qber");
  f.Circuit("a", 1 * kMs, "a/1", true, {"a", "b"});
  struct P {
    physical::v1::Basis head_basis, tail_basis;
    uint32_t head, tail;
  };
  const std::vector<P> pairs = {
      {BASIS_Z, BASIS_Z, 0, 0}, {BASIS_Z, BASIS_Z, 1, 0},  // Z: 1 error in 2
      {BASIS_X, BASIS_X, 1, 1}, {BASIS_X, BASIS_X, 0, 0},  // X: 0 in 2
      {BASIS_X, BASIS_X, 1, 1},                            //
      {BASIS_Y, BASIS_Y, 0, 1}, {BASIS_Y, BASIS_Y, 1, 1},  // Y: 1 in 2
      {BASIS_Z, BASIS_X, 0, 1},                            // bases differ: no sample
  };
  for (size_t i = 0; i < pairs.size(); ++i) {
    const int64_t t = static_cast<int64_t>(10 + i) * kMs;
    f.MeasuredPair("a", t, "a/1", i + 1, true, pairs[i].head_basis, pairs[i].head);
    f.MeasuredPair("b", t, "a/1", i + 1, false, pairs[i].tail_basis, pairs[i].tail);
  }
  f.MeasuredPair("a", 30 * kMs, "a/1", 20, true, BASIS_Z, 1);  // the tail never had it
  f.Circuit("a", 40 * kMs, "a/1", false, {"a", "b"}, "CIRCUIT_ERROR_CLOSED");
  f.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, f.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  const v1::ConnectionSummary& m = s->connections(0);
  EXPECT_EQ(m.pairs(), 8u);
  EXPECT_EQ(m.pairs_one_end(), 1u);
  EXPECT_EQ(m.measured_pairs_z(), 2u);
  EXPECT_EQ(m.qber_errors_z(), 1u);
  EXPECT_DOUBLE_EQ(m.qber_z(), 0.5);
  EXPECT_EQ(m.measured_pairs_x(), 3u);
  EXPECT_EQ(m.qber_errors_x(), 0u);
  EXPECT_EQ(m.measured_pairs_y(), 2u);
  EXPECT_EQ(m.qber_errors_y(), 1u);
  EXPECT_THAT(RenderReport(*s), HasSubstr("m: QBER Z 50.00% (1/2), X 0.00% (0/3), Y 50.00% (1/2)"));
}

// RES-31, RES-32: the result files of an app's two programs (NAME.json and
// NAME.peer.json, as APP-P3 writes them) merge into its AppSummary: numbers
// and booleans in results, strings in texts, a field both files have kept
// from the first and as peer.FIELD from the second; the status follows "ok";
// a missing file, one that is not a JSON object and a failed app are
// reported, not fatal. RES-33: the report shows the connections and apps.
TEST(ConnectionSummaryTest, AppResultFilesAndTheReport) {
  const Topology topology = Load(kRing);
  Folder f("apps");
  f.AppFile("t", R"({"app": "teleport", "role": "sender", "ok": true, "error": "",
                     "pairs": 100, "expired": 2, "nested": {"x": 1}})");
  f.AppFile("t.peer", R"({"app": "teleport", "role": "receiver", "ok": true, "error": "",
                          "pairs": 100, "fidelity": 0.93, "stderr": 0.01})");
  f.AppFile("bad", "[1, 2");
  f.AppFile("f", R"({"app": "chsh", "ok": false, "error": "node unreachable", "pairs": 0})");
  f.Circuit("a", 101 * kMs, "a/1", true, {"a", "b", "c"});
  f.Circuit("a", 500 * kMs, "a/2", true, {"a", "d", "c"});
  f.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, f.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->apps_size(), 4);
  const v1::AppSummary& t = s->apps(0);
  EXPECT_EQ(t.name(), "t");
  EXPECT_EQ(t.kind(), "teleport");
  EXPECT_EQ(t.node(), "a");
  EXPECT_EQ(t.peer(), "c");
  EXPECT_EQ(t.status(), "ok");
  std::vector<std::pair<std::string, double>> results;
  for (const v1::NamedValue& r : t.results()) results.emplace_back(r.name(), r.value());
  EXPECT_EQ(results, (std::vector<std::pair<std::string, double>>{{"expired", 2},
                                                                  {"fidelity", 0.93},
                                                                  {"ok", 1},
                                                                  {"pairs", 100},
                                                                  {"peer.ok", 1},
                                                                  {"peer.pairs", 100},
                                                                  {"stderr", 0.01}}));
  std::vector<std::pair<std::string, std::string>> texts;
  for (const v1::NamedText& r : t.texts()) texts.emplace_back(r.name(), r.text());
  EXPECT_EQ(texts, (std::vector<std::pair<std::string, std::string>>{{"app", "teleport"},
                                                                     {"peer.app", "teleport"},
                                                                     {"peer.role", "receiver"},
                                                                     {"role", "sender"}}));
  EXPECT_EQ(t.error(), "");
  EXPECT_EQ(s->apps(1).name(), "gone");
  EXPECT_EQ(s->apps(1).status(), "missing");
  EXPECT_EQ(s->apps(1).error(), "apps/gone.json: cannot open");
  EXPECT_EQ(s->apps(2).status(), "malformed");
  EXPECT_THAT(s->apps(2).error(), HasSubstr("apps/bad.json: not a JSON object"));
  EXPECT_EQ(s->apps(2).results_size(), 0);
  EXPECT_EQ(s->apps(3).status(), "failed");
  EXPECT_EQ(s->apps(3).error(), "apps/f.json: node unreachable");
  EXPECT_THAT(SummaryJson(*s), HasSubstr("\"mean_time_between_deliveries_s\""));

  const std::string report = RenderReport(*s);
  EXPECT_THAT(report, HasSubstr("connection"));
  EXPECT_THAT(report, HasSubstr("a > b > c"));
  EXPECT_THAT(report, HasSubstr("k: rerouted at 0.500000 s over a > d > c"));
  EXPECT_THAT(report, HasSubstr("c > a (no circuit)"));
  EXPECT_THAT(report, HasSubstr("fidelity 0.93"));
  EXPECT_THAT(report, HasSubstr("missing"));
  EXPECT_THAT(report, HasSubstr("apps/f.json: node unreachable"));
}

}  // namespace
}  // namespace qnet::results
