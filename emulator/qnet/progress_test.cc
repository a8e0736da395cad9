// Progress read from the file qworld keeps up to date (specs/topology.md
// RES-1b): emulated time and pairs per link, nothing before the file exists,
// and the last good reading when it cannot be parsed.
#include "emulator/qnet/progress.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/qnet_progress_", getpid(), "_", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

TEST(RunProgressTest, RES_1b_EmulatedTimeAndPairsPerLinkFromTheProgressFile) {
  const std::string dir = TempDir("run");
  Topology topology;
  topology.duration_s = 10;
  LinkSpec ab, bc;
  ab.name = "ab", ab.a = "a", ab.b = "b";
  bc.name = "bc", bc.a = "b", bc.b = "c";
  topology.links = {ab, bc};
  RunProgress progress(topology, dir);

  ProgressSnapshot s = progress.Poll();  // no file yet
  EXPECT_EQ(s.emulated_s, 0);
  ASSERT_EQ(s.links.size(), 2u);
  EXPECT_EQ(s.links[0].oks, 0u);

  Write(dir + "/progress.json",
        R"({"emulatedNs":"3250000000","linkPairs":[{"name":"ab","count":"3"},)"
        R"({"name":"bc","count":"1"},{"name":"zz","count":"9"}]})");
  s = progress.Poll();
  EXPECT_DOUBLE_EQ(s.emulated_s, 3.25);
  EXPECT_EQ(s.duration_s, 10);
  EXPECT_EQ(s.links[0].name, "ab");
  EXPECT_EQ(s.links[0].oks, 3u);
  EXPECT_EQ(s.links[1].name, "bc");
  EXPECT_EQ(s.links[1].oks, 1u);

  Write(dir + "/progress.json", R"({"emulatedNs":"4000000000","linkPairs":[{"name":"ab","count":"4"}]})");
  s = progress.Poll();
  EXPECT_EQ(s.links[0].oks, 4u);
  EXPECT_DOUBLE_EQ(s.emulated_s, 4.0);
  EXPECT_EQ(FormatProgress("local", s),
            "[local] 4.0/10.0 s emulated (40%)  ab 4 pairs 1.0 Hz  bc 1 pairs 0.2 Hz");
  Write(dir + "/progress.json", "{not json");  // mid-write: the last reading stays
  s = progress.Poll();
  EXPECT_EQ(s.links[0].oks, 4u);
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
