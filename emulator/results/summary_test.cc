// Summarize on hand-written trace files: every figure of summary.json against
// numbers worked out by hand from its definition (specs/topology.md RES-8..RES-17),
// byte-identical output for identical input, and the human report.
#include "emulator/results/summary.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"
#include "stack/json_lines.h"
#include "stack/topology_loader.h"

namespace qnet::results {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace pv1 = ::qnet::physical::v1;
namespace lv1 = ::qnet::link::v1;

constexpr int64_t kMs = 1'000'000;

const char kTopology[] = R"(<network name="hand" seed="77" duration-s="1">
  <hardware name="hw"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="2" attempt-us="100" efficiency="0.5" alpha="0.1"/>
  <link name="bc" a="b" b="c" length-km="1" scheme="werner" attempt-us="50" p-success="0.02"
        fidelity="0.9"/>
  <request from="a" to="b" pairs="10" type="measure" basis="xyz"/>
</network>)";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes trace files of a results folder with explicit times (no clock).
class Traces {
 public:
  explicit Traces(const std::string& name)
      : dir_(absl::StrCat(::testing::TempDir(), "/qnet_results_", name, "_", getpid())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/nodes");
  }
  ~Traces() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }

  // Node `node` writes the binary form (RES-1a) from now on.
  void Binary(const std::string& node) { binary_.insert(node); }

  void Add(const std::string& node, int64_t t_ns, v1::TraceRecord r) {
    auto& tracer = tracers_[node];
    if (!tracer) {
      const bool binary = binary_.contains(node);
      const std::string ext = binary ? ".pb" : ".jsonl";
      const std::string path =
          node == "qworld" ? dir_ + "/qworld" + ext : dir_ + "/nodes/" + node + ext;
      tracer = std::make_unique<JsonLinesTracer>(
          path, node, nullptr,
          binary ? JsonLinesTracer::Format::kBinary : JsonLinesTracer::Format::kJsonLines);
    }
    r.set_time_ns(static_cast<uint64_t>(t_ns));
    tracer->Record(std::move(r));
  }
  void Close() { tracers_.clear(); }

  void Create(const std::string& node, const std::string& remote, uint64_t id, int64_t t) {
    v1::TraceRecord r;
    r.mutable_create()->set_remote_node(remote);
    r.mutable_create()->set_pairs(10);
    r.set_create_id(id);
    Add(node, t, r);
  }
  void Busy(const std::string& node, const std::string& link, bool busy, int64_t t) {
    v1::TraceRecord r;
    r.mutable_link_busy()->set_link(link);
    r.mutable_link_busy()->set_busy(busy);
    Add(node, t, r);
  }
  struct OkArgs {
    std::string origin = "a";
    uint64_t seq = 1;
    uint64_t create_id = 1;
    pv1::BellState bell = pv1::BELL_STATE_PSI_PLUS;
    pv1::Basis basis = pv1::BASIS_UNSPECIFIED;
    uint32_t result = 0;
    double estimated_fidelity = 0.8;
    std::string link = "ab";
  };
  void Ok(const std::string& node, const std::string& remote, int64_t t, const OkArgs& o) {
    v1::TraceRecord r;
    lv1::Ok* ok = r.mutable_ok();
    ok->set_create_id(o.create_id);
    ok->mutable_pair()->set_origin(o.origin);
    ok->mutable_pair()->set_partner(o.origin == node ? remote : node);
    ok->mutable_pair()->set_sequence(o.seq);
    ok->set_bell_state(o.bell);
    ok->set_estimated_fidelity(o.estimated_fidelity);
    ok->set_basis(o.basis);
    ok->set_result(o.result);
    ok->set_herald_seq(100 + o.seq);
    ok->set_link(o.link);
    ok->set_remote_node(remote);
    Add(node, t, r);
  }
  void Truth(const std::string& link, uint64_t herald_seq, double fidelity, int64_t t) {
    v1::TraceRecord r;
    r.mutable_herald_truth()->set_link(link);
    r.mutable_herald_truth()->set_pair_seq(herald_seq);
    r.mutable_herald_truth()->set_true_fidelity(fidelity);
    Add("qworld", t, r);
  }
  void Batch(const std::string& link, uint64_t attempts, double alpha, int64_t t) {
    v1::TraceRecord r;
    r.mutable_batch()->set_link(link);
    r.mutable_batch()->set_attempts(attempts);
    r.mutable_batch()->set_alpha_a(alpha);
    r.mutable_batch()->set_alpha_b(alpha);
    Add("qworld", t, r);
  }
  void Err(const std::string& node, lv1::ErrorCode code, int64_t t) {
    v1::TraceRecord r;
    r.mutable_err()->set_code(code);
    r.mutable_err()->set_link("ab");
    Add(node, t, r);
  }
  void Drop(const std::string& node, v1::DropReason reason, const std::string& link, int64_t t) {
    v1::TraceRecord r;
    r.mutable_drop()->set_reason(reason);
    r.mutable_drop()->set_link(link);
    Add(node, t, r);
  }

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<JsonLinesTracer>> tracers_;
  std::set<std::string> binary_;
};

Topology LoadHand() {
  absl::StatusOr<Topology> t = ParseTopology(kTopology, "hand.xml");
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// The constructed run of link ab (a is the origin of every pair):
//   CREATE at 100 ms; busy 100-600 ms and 800 ms-end (1 s): busy_s = 0.7.
//   Pairs 1..6: OK at a at 150, 250, 400, 500, 850, 950 ms; at b 1 ms later,
//   except pair 4, which b never reports (one end only).
//   Bell state / basis / results (a, b):
//     1: Psi+ Z (0, 1)  anti expected, disagree -> no error
//     2: Psi+ Z (0, 0)  -> error
//     3: Psi- X (1, 0)  anti expected -> no error
//     4: (one end only, not counted)
//     5: Phi+ Y (0, 0)  Phi+ is anti in Y -> error
//     6: Psi+ X at a, Z at b: different bases, not counted
//   True fidelities (herald 101..106): .8 .9 .85 .5 .95 .7.
void WriteHandRun(Traces& tr) {
  tr.Create("a", "b", 1, 100 * kMs);
  tr.Busy("a", "ab", true, 100 * kMs);
  tr.Busy("b", "ab", true, 101 * kMs);  // end b's view is not used
  struct P {
    uint64_t seq;
    int64_t t_ms;
    pv1::BellState bell;
    pv1::Basis basis_a, basis_b;
    uint32_t ra, rb;
    double truth;
  };
  const P pairs[] = {
      {1, 150, pv1::BELL_STATE_PSI_PLUS, pv1::BASIS_Z, pv1::BASIS_Z, 0, 1, 0.8},
      {2, 250, pv1::BELL_STATE_PSI_PLUS, pv1::BASIS_Z, pv1::BASIS_Z, 0, 0, 0.9},
      {3, 400, pv1::BELL_STATE_PSI_MINUS, pv1::BASIS_X, pv1::BASIS_X, 1, 0, 0.85},
      {4, 500, pv1::BELL_STATE_PSI_PLUS, pv1::BASIS_Z, pv1::BASIS_Z, 0, 0, 0.5},
      {5, 850, pv1::BELL_STATE_PHI_PLUS, pv1::BASIS_Y, pv1::BASIS_Y, 0, 0, 0.95},
      {6, 950, pv1::BELL_STATE_PSI_PLUS, pv1::BASIS_X, pv1::BASIS_Z, 1, 1, 0.7},
  };
  for (const P& p : pairs) {
    Traces::OkArgs at_a{.seq = p.seq, .bell = p.bell, .basis = p.basis_a, .result = p.ra};
    Traces::OkArgs at_b = at_a;
    at_b.basis = p.basis_b;
    at_b.result = p.rb;
    at_b.estimated_fidelity = 0.5;  // the summary takes the origin's estimate
    tr.Ok("a", "b", p.t_ms * kMs, at_a);
    if (p.seq != 4) tr.Ok("b", "a", (p.t_ms + 1) * kMs, at_b);
    tr.Truth("ab", 100 + p.seq, p.truth, (p.t_ms + 1) * kMs);
    if (p.seq == 4) tr.Busy("a", "ab", false, 600 * kMs);
    if (p.seq == 4) tr.Busy("a", "ab", true, 800 * kMs);
    if (p.seq == 4) tr.Busy("a", "ab", true, 810 * kMs);  // repeated: ignored
  }
  tr.Batch("ab", 100, 0.2, 200 * kMs);
  tr.Batch("ab", 300, 0.1, 300 * kMs);
  tr.Batch("ab", 50, 0.0, 310 * kMs);  // no alpha recorded: attempts only
  tr.Err("a", lv1::ERROR_CODE_TIMEOUT, 700 * kMs);
  tr.Err("b", lv1::ERROR_CODE_EXPIRED, 700 * kMs);
  tr.Err("b", lv1::ERROR_CODE_EXPIRED, 701 * kMs);
  tr.Drop("a", v1::DROP_REASON_MALFORMED_FRAME, "", 300 * kMs);
  tr.Drop("b", v1::DROP_REASON_PAIR_EXPIRED, "ab", 700 * kMs);
  tr.Drop("qworld", v1::DROP_REASON_QUEUE_MISMATCH, "ab", 705 * kMs);
  // Outside the topology: an OK on an unknown link, a truth of an unknown link.
  tr.Ok("a", "b", 900 * kMs, {.seq = 9, .link = "zz"});
  tr.Truth("nope", 1, 0.9, 900 * kMs);
  tr.Close();
  std::ofstream(tr.dir() + "/nodes/b.jsonl", std::ios::app) << "{not json\n";
}

TEST(SummaryTest, HandWrittenTracesGiveTheDefinedFigures) {
  const Topology topology = LoadHand();
  Traces tr("hand");
  WriteHandRun(tr);
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->backend(), "sim");
  EXPECT_EQ(s->seed(), 77u);
  EXPECT_EQ(s->topology(), "hand");
  EXPECT_DOUBLE_EQ(s->emulated_s(), 1.0);
  ASSERT_EQ(s->links_size(), 2);
  const v1::LinkSummary& ab = s->links(0);
  EXPECT_EQ(ab.name(), "ab");
  EXPECT_EQ(ab.a(), "a");
  EXPECT_EQ(ab.b(), "b");
  EXPECT_EQ(ab.scheme(), "single-click");

  // RES-10: pairs seen at both ends; rate over end a's busy time.
  EXPECT_EQ(ab.pairs(), 5u);
  EXPECT_EQ(ab.pairs_one_end(), 1u);
  EXPECT_EQ(ab.oks(), 11u);
  EXPECT_EQ(ab.creates(), 1u);
  EXPECT_EQ(ab.inconsistent_pairs(), 0u);
  EXPECT_NEAR(ab.busy_s(), 0.7, 1e-12);  // RES-9: 0.5 + (1.0 - 0.8)
  EXPECT_NEAR(ab.rate_hz(), 5 / 0.7, 1e-9);
  // Inter-delivery times on the busy clock B (deliveries at 151, 251, 401, 851,
  // 951 ms): B = 51, 151, 301, 500 + 51 = 551, 651 ms, so the gaps are 51, 100,
  // 150, 250, 100 ms.
  const double gaps[] = {0.051, 0.100, 0.150, 0.250, 0.100};
  double mean = 0, ss = 0;
  for (double g : gaps) mean += g / 5;
  for (double g : gaps) ss += (g - mean) * (g - mean);
  const double cv = std::sqrt(ss / 4) / mean;
  EXPECT_NEAR(ab.rate_hz_stderr(), (5 / 0.7) * cv / std::sqrt(5.0), 1e-9);

  // RES-11: true fidelity over delivered pairs only (pair 4's 0.5 is out).
  EXPECT_EQ(ab.fidelity_samples(), 5u);
  EXPECT_NEAR(ab.true_fidelity_mean(), 0.84, 1e-12);
  EXPECT_NEAR(ab.true_fidelity_stderr(), std::sqrt(0.037 / 4) / std::sqrt(5.0), 1e-12);
  EXPECT_NEAR(ab.estimated_fidelity_mean(), 0.8, 1e-12);

  // RES-12: latencies 50, 100, 150, 350 (after undelivered pair 4 at 500), 100 ms.
  EXPECT_EQ(ab.latency_samples(), 5u);
  EXPECT_NEAR(ab.latency_s_mean(), 0.15, 1e-12);

  // RES-13.
  EXPECT_EQ(ab.measured_pairs_z(), 2u);
  EXPECT_EQ(ab.qber_errors_z(), 1u);
  EXPECT_DOUBLE_EQ(ab.qber_z(), 0.5);
  EXPECT_EQ(ab.measured_pairs_x(), 1u);
  EXPECT_DOUBLE_EQ(ab.qber_x(), 0.0);
  EXPECT_EQ(ab.measured_pairs_y(), 1u);
  EXPECT_DOUBLE_EQ(ab.qber_y(), 1.0);

  // RES-14: attempts from every batch, model probability weighted by the
  // attempts of batches that recorded alpha.
  const LinkSpec& spec = topology.links[0];
  EXPECT_EQ(ab.attempts(), 450u);
  const double p =
      (100 * SingleClick(spec, 0.2, 0.2).total() + 300 * SingleClick(spec, 0.1, 0.1).total()) / 400;
  EXPECT_NEAR(ab.p_success_model(), p, 1e-15);
  EXPECT_DOUBLE_EQ(ab.cycle_s(), 100e-6);
  EXPECT_NEAR(ab.rate_model_hz(), p / 100e-6, 1e-9);

  // RES-15.
  ASSERT_EQ(ab.errors_size(), 2);
  EXPECT_EQ(ab.errors(0).reason(), "ERROR_CODE_EXPIRED");
  EXPECT_EQ(ab.errors(0).count(), 2u);
  EXPECT_EQ(ab.errors(1).reason(), "ERROR_CODE_TIMEOUT");
  EXPECT_EQ(ab.errors(1).count(), 1u);
  ASSERT_EQ(ab.discards_size(), 2);
  EXPECT_EQ(ab.discards(0).reason(), "DROP_REASON_PAIR_EXPIRED");
  EXPECT_EQ(ab.discards(1).reason(), "DROP_REASON_QUEUE_MISMATCH");
  ASSERT_EQ(s->drops_size(), 3);
  EXPECT_EQ(s->drops(0).reason(), "DROP_REASON_MALFORMED_FRAME");
  EXPECT_EQ(s->drops(1).reason(), "DROP_REASON_PAIR_EXPIRED");
  EXPECT_EQ(s->drops(2).reason(), "DROP_REASON_QUEUE_MISMATCH");

  // A link without records: zeros, and its model from the topology.
  const v1::LinkSummary& bc = s->links(1);
  EXPECT_EQ(bc.name(), "bc");
  EXPECT_EQ(bc.pairs(), 0u);
  EXPECT_EQ(bc.rate_hz(), 0);
  EXPECT_DOUBLE_EQ(bc.p_success_model(), 0.02);
  EXPECT_DOUBLE_EQ(bc.cycle_s(), 50e-6);

  // RES-17: untrusted traces are counted, not fatal.
  EXPECT_EQ(s->malformed_trace_lines(), 1u);
  EXPECT_EQ(s->unattributed_records(), 2u);
  ASSERT_EQ(s->missing_traces_size(), 1);
  EXPECT_EQ(s->missing_traces(0), "nodes/c.jsonl");
}

TEST(SummaryTest, IdenticalInputGivesIdenticalBytes) {
  const Topology topology = LoadHand();
  Traces tr("bytes");
  WriteHandRun(tr);
  std::string written[2];
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "local");
    ASSERT_TRUE(s.ok());
    const std::string path = absl::StrCat(tr.dir(), "/summary", i, ".json");
    ASSERT_TRUE(WriteSummary(*s, path).ok());
    written[i] = ReadFile(path);
  }
  EXPECT_EQ(written[0], written[1]);
  EXPECT_EQ(written[0], SummaryJson(*Summarize(topology, tr.dir(), "local")));
  // RES-6: every field is printed, defaults included, with the proto's
  // snake_case names, and counts are JSON numbers (not strings).
  EXPECT_THAT(written[0], HasSubstr("\"rate_hz\": "));
  EXPECT_THAT(written[0], HasSubstr("\"qber_y\": 0,"));  // link bc
  EXPECT_THAT(written[0], HasSubstr("\"latency_s_mean\": 0.15"));
  EXPECT_THAT(written[0], HasSubstr("\"pairs\": 5,"));
  EXPECT_THAT(written[0], HasSubstr("\"seed\": 77,"));
  EXPECT_EQ(written[0].back(), '\n');
  absl::StatusOr<v1::Summary> back = ReadSummary(absl::StrCat(tr.dir(), "/summary0.json"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(SummaryJson(*back), written[0]);
}

// RES-12: the latency clock is per request, and requests are keyed by origin.
TEST(SummaryTest, LatencyIsPerRequestOfEachOrigin) {
  const Topology topology = LoadHand();
  Traces tr("latency");
  tr.Create("a", "b", 1, 10 * kMs);
  tr.Create("b", "a", 1, 40 * kMs);  // b's create id 1 is another request
  tr.Ok("a", "b", 50 * kMs, {.origin = "a", .seq = 1});
  tr.Ok("b", "a", 51 * kMs, {.origin = "a", .seq = 1});
  tr.Ok("b", "a", 60 * kMs, {.origin = "b", .seq = 1});
  tr.Ok("a", "b", 61 * kMs, {.origin = "b", .seq = 1});
  tr.Ok("a", "b", 70 * kMs, {.origin = "a", .seq = 2});
  tr.Ok("b", "a", 71 * kMs, {.origin = "a", .seq = 2});
  tr.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok());
  const v1::LinkSummary& ab = s->links(0);
  EXPECT_EQ(ab.pairs(), 3u);
  // a#1: 50 - 10 = 40 ms; b#1: 60 - 40 = 20 ms; a#2: 70 - 50 = 20 ms.
  EXPECT_EQ(ab.latency_samples(), 3u);
  EXPECT_NEAR(ab.latency_s_mean(), (0.040 + 0.020 + 0.020) / 3, 1e-12);
  // No LinkBusy records: no busy time, so no rate (rather than a made-up one).
  EXPECT_EQ(ab.busy_s(), 0);
  EXPECT_EQ(ab.rate_hz(), 0);
}

TEST(SummaryTest, DisagreeingEndsAndRepeatedOksAreInconsistent) {
  const Topology topology = LoadHand();
  Traces tr("inconsistent");
  tr.Ok("a", "b", 50 * kMs, {.seq = 1, .bell = pv1::BELL_STATE_PSI_PLUS});
  tr.Ok("b", "a", 51 * kMs, {.seq = 1, .bell = pv1::BELL_STATE_PSI_MINUS});
  tr.Ok("a", "b", 60 * kMs, {.seq = 2});
  tr.Ok("a", "b", 61 * kMs, {.seq = 2});  // repeated at the same end
  tr.Ok("b", "a", 62 * kMs, {.seq = 2});
  tr.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->links(0).pairs(), 2u);
  EXPECT_EQ(s->links(0).inconsistent_pairs(), 2u);
  EXPECT_EQ(s->links(0).oks(), 5u);
}

// RES-14 fallbacks: with no alpha recorded, the link's fixed alpha; without
// one, the alpha the link layer would choose for the first request.
TEST(SummaryTest, ModelProbabilityFallsBackToTheTopology) {
  Topology topology = LoadHand();
  Traces tr("model");
  tr.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->links(0).p_success_model(), SuccessProbability(topology.links[0], 0.1));
  topology.links[0].alpha.reset();
  topology.requests[0].min_fidelity = 0.8;
  s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->links(0).p_success_model(),
                   SuccessProbability(topology.links[0], *ChooseAlpha(topology.links[0], 0.8)));
  EXPECT_EQ(s->missing_traces_size(), 4);  // three nodes and qworld
}

// RES-15b, RES-1a: linkLiveness downs count per end (ups do not), from a JSON
// lines trace at a and a binary one at b, and the report names them.
TEST(SummaryTest, LinkDownsCountPerEndFromEitherTraceForm) {
  const Topology topology = LoadHand();
  Traces tr("downs");
  tr.Binary("b");
  auto liveness = [&](const std::string& node, const std::string& link, bool up, int64_t t) {
    v1::TraceRecord r;
    r.mutable_link_liveness()->set_link(link);
    r.mutable_link_liveness()->set_up(up);
    r.mutable_link_liveness()->set_reason(up ? "hello" : "dead interval");
    tr.Add(node, t, r);
  };
  liveness("a", "ab", false, 1 * kMs);
  liveness("b", "ab", false, 2 * kMs);
  liveness("a", "ab", true, 3 * kMs);
  liveness("b", "ab", true, 3 * kMs);
  liveness("a", "ab", false, 4 * kMs);
  liveness("b", "bc", false, 5 * kMs);
  tr.Close();
  ASSERT_TRUE(std::filesystem::exists(tr.dir() + "/nodes/b.pb"));
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "local");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->links(0).downs_a(), 2u);
  EXPECT_EQ(s->links(0).downs_b(), 1u);
  EXPECT_EQ(s->links(1).downs_a(), 1u);  // b is bc's a end
  EXPECT_EQ(s->links(1).downs_b(), 0u);
  EXPECT_EQ(s->missing_traces_size(), 2);  // c and qworld wrote nothing
  EXPECT_THAT(RenderReport(*s), HasSubstr("ab: went down 2 time(s) at a, 1 at b"));
}

// RES-15a: qworld's `intercepted` records count per link; one naming an
// unknown link is unattributed (RES-17).
TEST(SummaryTest, InterceptedRecordsAreCountedPerLink) {
  const Topology topology = LoadHand();
  Traces tr("intercepted");
  for (uint64_t seq : {1, 2, 5}) {
    v1::TraceRecord r;
    r.mutable_intercepted()->set_link("bc");
    r.mutable_intercepted()->set_pair_seq(seq);
    r.mutable_intercepted()->set_basis(seq == 2 ? pv1::BASIS_X : pv1::BASIS_Z);
    tr.Add("qworld", static_cast<int64_t>(seq) * kMs, r);
  }
  v1::TraceRecord stray;
  stray.mutable_intercepted()->set_link("zz");
  tr.Add("qworld", 9 * kMs, stray);
  tr.Close();
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->links_size(), 2);
  EXPECT_EQ(s->links(0).name(), "ab");
  EXPECT_EQ(s->links(0).intercepted(), 0u);
  EXPECT_EQ(s->links(1).name(), "bc");
  EXPECT_EQ(s->links(1).intercepted(), 3u);
  EXPECT_EQ(s->unattributed_records(), 1u);
  const std::string report = RenderReport(*s);  // RES-18
  EXPECT_THAT(report, HasSubstr("bc: eavesdropper intercepted 3 pair(s)"));
  EXPECT_THAT(report, Not(HasSubstr("ab: eavesdropper")));
}

TEST(SummaryTest, NotADirectoryIsAnError) {
  const Topology topology = LoadHand();
  EXPECT_EQ(Summarize(topology, "/nonexistent/results", "sim").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SummaryTest, ReportShowsTheFiguresForHumans) {
  const Topology topology = LoadHand();
  Traces tr("report");
  WriteHandRun(tr);
  absl::StatusOr<v1::Summary> s = Summarize(topology, tr.dir(), "sim");
  ASSERT_TRUE(s.ok());
  const std::string report = RenderReport(*s);
  EXPECT_THAT(report, HasSubstr("topology \"hand\", backend sim, seed 77, 1 s emulated"));
  EXPECT_THAT(report, HasSubstr("rate Hz"));
  EXPECT_THAT(report, HasSubstr("7.14 +- "));          // 5 pairs / 0.7 s
  EXPECT_THAT(report, HasSubstr("0.8400 +- 0.0430"));  // true fidelity
  EXPECT_THAT(report, HasSubstr("150.00"));            // latency ms
  EXPECT_THAT(report, HasSubstr("ab: QBER Z 50.00% (1/2), X 0.00% (0/1), Y 100.00% (1/1)"));
  EXPECT_THAT(report, HasSubstr("ab: errors EXPIRED 2, TIMEOUT 1"));
  EXPECT_THAT(report, HasSubstr("ab: discards PAIR_EXPIRED 1, QUEUE_MISMATCH 1"));
  EXPECT_THAT(report, HasSubstr("drops: MALFORMED_FRAME 1, PAIR_EXPIRED 1, QUEUE_MISMATCH 1"));
  EXPECT_THAT(report, HasSubstr("missing trace files: nodes/c.jsonl"));
  EXPECT_THAT(report, HasSubstr("1 malformed trace line(s)"));
  // The table: a header and one row per link, columns aligned on the right.
  std::istringstream lines(report);
  std::string line, header, row_ab;
  while (std::getline(lines, line)) {
    if (line.rfind("link ", 0) == 0) header = line;
    if (line.rfind("ab ", 0) == 0) row_ab = line;
  }
  EXPECT_THAT(header, HasSubstr("attempts"));
  EXPECT_EQ(row_ab.size(), header.size());
  EXPECT_EQ(row_ab.substr(row_ab.size() - 3), "450");
}

}  // namespace
}  // namespace qnet::results
