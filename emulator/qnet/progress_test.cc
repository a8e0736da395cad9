// Progress read from growing trace files (launcher brief: "emulated time from
// the traces' last time_ns and OK counts per link, read incrementally from the
// growing JSON-lines files").
#include "emulator/qnet/progress.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/qnet_progress_", getpid(), "_", name);
  fs::remove_all(dir);
  fs::create_directories(dir + "/nodes");
  return dir;
}

std::string OkLine(const std::string& node, const std::string& link, uint64_t time_ns,
                   uint64_t seq) {
  results::v1::TraceRecord record;
  record.set_time_ns(time_ns);
  record.set_node(node);
  record.mutable_ok()->set_link(link);
  record.mutable_ok()->mutable_pair()->set_sequence(seq);
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(record, &json).ok());
  return json + "\n";
}

std::string BatchLine(const std::string& link, uint64_t time_ns) {
  results::v1::TraceRecord record;
  record.set_time_ns(time_ns);
  record.set_node("qworld");
  record.mutable_batch()->set_link(link);
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(record, &json).ok());
  return json + "\n";
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

TEST(TraceTailTest, ReadsOnlyCompleteLinesAndKeepsThePartialOne) {
  const std::string dir = TempDir("tail");
  const std::string path = dir + "/t.jsonl";
  TraceTail tail(path);
  std::vector<uint64_t> seen;
  auto collect = [&](const results::v1::TraceRecord& r) {
    seen.push_back(r.ok().pair().sequence());
  };
  tail.Poll(collect);  // missing file: nothing, no error
  EXPECT_TRUE(seen.empty());

  const std::string third = OkLine("a", "ab", 3000, 3);
  Append(path, OkLine("a", "ab", 1000, 1) + OkLine("a", "ab", 2000, 2) + third.substr(0, 10));
  tail.Poll(collect);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  tail.Poll(collect);  // nothing new
  EXPECT_EQ(seen.size(), 2u);
  Append(path, third.substr(10) + "this is not json\n" + OkLine("a", "ab", 4000, 4));
  tail.Poll(collect);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(tail.lines(), 5u);
  EXPECT_EQ(tail.bad_lines(), 1u);
}

TEST(TraceTailTest, ARewrittenFileIsReadFromTheStart) {
  const std::string dir = TempDir("rewrite");
  const std::string path = dir + "/t.jsonl";
  Append(path, OkLine("a", "ab", 1000, 1) + OkLine("a", "ab", 2000, 2));
  TraceTail tail(path);
  int n = 0;
  tail.Poll([&](const results::v1::TraceRecord&) { ++n; });
  EXPECT_EQ(n, 2);
  fs::remove(path);
  Append(path, OkLine("a", "ab", 500, 7));
  std::vector<uint64_t> seen;
  tail.Poll([&](const results::v1::TraceRecord& r) { seen.push_back(r.ok().pair().sequence()); });
  EXPECT_EQ(seen, (std::vector<uint64_t>{7}));
}

TEST(RunProgressTest, EmulatedTimeIsTheLatestRecordAndOksAreCountedAtTheAEnd) {
  const std::string dir = TempDir("run");
  Topology topology;
  topology.duration_s = 10;
  topology.nodes = {NodeSpec{"a", "hw", 0}, NodeSpec{"b", "hw", 0}, NodeSpec{"c", "hw", 0}};
  LinkSpec ab, bc;
  ab.name = "ab", ab.a = "a", ab.b = "b";
  bc.name = "bc", bc.a = "b", bc.b = "c";
  topology.links = {ab, bc};
  RunProgress progress(topology, dir);

  ProgressSnapshot s = progress.Poll();
  EXPECT_EQ(s.emulated_s, 0);
  ASSERT_EQ(s.links.size(), 2u);
  EXPECT_EQ(s.links[0].oks, 0u);

  // Each pair gives an OK at both ends; only the `a` end's are counted.
  for (uint64_t i = 1; i <= 3; ++i) {
    Append(dir + "/nodes/a.jsonl", OkLine("a", "ab", i * 1'000'000'000, i));
    Append(dir + "/nodes/b.jsonl", OkLine("b", "ab", i * 1'000'000'000, i));
  }
  Append(dir + "/nodes/b.jsonl", OkLine("b", "bc", 1'500'000'000, 1));
  Append(dir + "/nodes/c.jsonl", OkLine("c", "bc", 1'500'000'000, 1));
  Append(dir + "/qworld.jsonl", BatchLine("ab", 3'250'000'000));
  s = progress.Poll();
  EXPECT_DOUBLE_EQ(s.emulated_s, 3.25);
  EXPECT_EQ(s.duration_s, 10);
  EXPECT_EQ(s.links[0].name, "ab");
  EXPECT_EQ(s.links[0].oks, 3u);
  EXPECT_EQ(s.links[1].name, "bc");
  EXPECT_EQ(s.links[1].oks, 1u);

  Append(dir + "/nodes/a.jsonl", OkLine("a", "ab", 4'000'000'000, 4));
  s = progress.Poll();
  EXPECT_EQ(s.links[0].oks, 4u);
  EXPECT_DOUBLE_EQ(s.emulated_s, 4.0);
  EXPECT_EQ(FormatProgress("local", s),
            "[local] 4.0/10.0 s emulated (40%)  ab 4 pairs 1.0 Hz  bc 1 pairs 0.2 Hz");
  ProgressSnapshot sim;
  sim.emulated_s = 0.5;
  sim.duration_s = 2;
  sim.all_oks = 12;
  EXPECT_EQ(FormatProgress("sim", sim), "[sim] 0.5/2.0 s emulated (25%)  12 OKs at all nodes");
}

TEST(ProgressPrinterTest, PlainOutputHasOneLinePerChange) {
  const std::string path = TempDir("printer") + "/out.txt";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  ProgressPrinter printer(f, "local");
  ProgressSnapshot s;
  s.duration_s = 10;
  s.links.push_back(LinkProgress{"ab", 0});
  printer.Print(s);
  s.emulated_s = 1;
  s.links[0].oks = 5;
  printer.Print(s);
  printer.Print(s);  // nothing new: not repeated
  printer.Finish();
  std::fclose(f);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(),
            "[local] 0.0/10.0 s emulated (0%)  ab 0 pairs 0.0 Hz\n"
            "[local] 1.0/10.0 s emulated (10%)  ab 5 pairs 5.0 Hz\n");
}

}  // namespace
}  // namespace qnet::launcher
