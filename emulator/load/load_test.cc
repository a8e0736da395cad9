// The load test (label integration): the QKD demo topology and a five-node
// chain with apps, each on the local backend while a busy loop runs on every
// core for the whole run. Every run must make identical keys at both ends and
// deliver no pair at one end only (load_run.h CheckSummary says all it
// checks). `qnet_soak --runs N` repeats the same runs and tallies them.
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "emulator/load/load_run.h"
#include "gtest/gtest.h"

namespace qnet::load {
namespace {

class LoadTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/qnet_load_test_", getpid(), "_", GetParam());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  std::string dir_;
};

TEST_P(LoadTest, KeysEqualAndNoPairAtOneEndWhileEveryCoreIsBusy) {
  const std::string topology =
      absl::StrCat(QNET_SOURCE_DIR, "/emulator/topologies/", GetParam(), ".xml");
  LoadRun run;
  {
    BusyLoad load;
    ASSERT_GE(load.processes(), 1);
    run = RunAndCheck(QNET_BINARY, topology, dir_ + "/out");
  }
  EXPECT_TRUE(run.failures.empty()) << Describe(run) << "\n" << run.output;
  ASSERT_GE(run.summary.qkd_size(), 1);
  EXPECT_TRUE(run.summary.qkd(0).keys_match());
  EXPECT_GT(run.summary.qkd(0).key_bits(), 0u);
  for (const auto& l : run.summary.links()) EXPECT_EQ(l.pairs_one_end(), 0u) << l.name();
  std::printf("%s under load: %s\n", GetParam(), Describe(run).c_str());
}

INSTANTIATE_TEST_SUITE_P(Topologies, LoadTest,
                         ::testing::Values("qkd-demo", "chain5-apps"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// The checks themselves: a summary with a pair at one end, unequal keys or a
// one-sided link verdict fails, and says why.
TEST(CheckSummaryTest, NamesEveryKindOfFailure) {
  results::v1::Summary s;
  auto* q = s.add_qkd();
  q->set_name("qkd");
  q->set_keys_match(true);
  q->set_key_bits(1000);
  auto* l = s.add_links();
  l->set_name("ab");
  l->set_a("a");
  l->set_b("b");
  auto* c = s.add_connections();
  c->set_name("a-b");
  c->set_pairs(10);
  s.add_apps()->set_status("ok");
  EXPECT_TRUE(CheckSummary(s).empty());
  q->set_keys_match(false);
  l->set_pairs_one_end(2);
  l->set_downs_a(1);
  c->set_pairs_one_end(1);
  std::vector<std::string> failures = CheckSummary(s);
  ASSERT_EQ(failures.size(), 4u);
  EXPECT_EQ(failures[0], "qkd qkd: the two ends' keys differ or are missing");
  EXPECT_EQ(failures[1], "link ab: 2 pair(s) at one end only");
  EXPECT_EQ(failures[2], "link ab went down 1 time(s) at a but 0 at b");
  EXPECT_EQ(failures[3], "connection a-b: 1 pair(s) at one end only");
}

}  // namespace
}  // namespace qnet::load
