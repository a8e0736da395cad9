// `qnet run --backend mininet` end to end (label mininet): the two-node werner
// topology's rate matches the sim backend's within 10 %, and afterwards `ip
// netns`, `ip link` and the process list show nothing of the run (launcher
// brief, "Tests"). Skips with the reason when this machine cannot run Mininet
// (not root, no network namespaces, no Mininet).
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "emulator/qnet/child_group.h"
#include "emulator/qnet/mininet_backend.h"
#include "emulator/qnet/testing/qnet_runs.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

using test_runs::ProcessesMentioning;
using test_runs::ReadSummary;
using test_runs::RunProgram;

std::vector<std::string> InterfaceNames() {
  test_runs::CommandResult r = RunProgram({"ip", "-o", "link", "show"});
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(r.output, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ':');
    if (fields.size() < 2) continue;
    std::string name(absl::StripAsciiWhitespace(fields[1]));
    names.push_back(name.substr(0, name.find('@')));
  }
  return names;
}

TEST(MininetTest, TwoNodeRateMatchesSimAndNothingIsLeftBehind) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(); !s.ok()) GTEST_SKIP() << s.message();

  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_test_", getpid());
  std::filesystem::remove_all(dir);
  const std::string topology =
      test_runs::WriteTemp(dir, "pair.xml", test_runs::TwoNodeWernerXml("pair", 4));
  const std::string netns_before = RunProgram({"ip", "netns", "list"}).output;

  const std::string sim_out = dir + "/sim", mn_out = dir + "/mininet";
  test_runs::CommandResult sim =
      RunProgram({QNET_BINARY, "run", topology, "--backend", "sim", "--out", sim_out});
  ASSERT_EQ(sim.exit_code, 0) << sim.output;
  test_runs::CommandResult mn =
      RunProgram({QNET_BINARY, "run", topology, "--backend", "mininet", "--out", mn_out});

  // Whatever the outcome, nothing of the run may remain.
  const std::string plan_json = test_runs::ReadFile(mn_out + "/plan.json");
  google::protobuf::Struct plan;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(plan_json, &plan).ok()) << mn.output;
  const std::string tag = plan.fields().at("tag").string_value();
  ASSERT_FALSE(tag.empty());
  EXPECT_EQ(RunProgram({"ip", "netns", "list"}).output, netns_before);
  for (const std::string& name : InterfaceNames()) {
    EXPECT_NE(name.rfind(tag + "n", 0), 0u) << "interface left behind: " << name;
  }
  EXPECT_EQ(ProcessesMentioning(mn_out), std::vector<std::string>{}) << "processes left behind";
  EXPECT_EQ(ProcessesMentioning("mininet:" + tag + "n"), std::vector<std::string>{})
      << "host shells left behind";

  ASSERT_EQ(mn.exit_code, 0) << mn.output;
  results::v1::Summary sim_summary, mn_summary;
  ASSERT_TRUE(ReadSummary(sim_out, &sim_summary));
  ASSERT_TRUE(ReadSummary(mn_out, &mn_summary)) << mn.output;
  EXPECT_EQ(mn_summary.backend(), "mininet");
  ASSERT_EQ(sim_summary.links_size(), 1);
  ASSERT_EQ(mn_summary.links_size(), 1);
  const double sim_rate = sim_summary.links(0).rate_hz();
  const double mn_rate = mn_summary.links(0).rate_hz();
  ASSERT_GT(sim_summary.links(0).pairs(), 300u);
  EXPECT_NEAR(mn_rate, sim_rate, 0.10 * sim_rate) << mn.output;
  std::printf("rates: sim %.2f Hz (%llu pairs), mininet %.2f Hz (%llu pairs)\n", sim_rate,
              static_cast<unsigned long long>(sim_summary.links(0).pairs()), mn_rate,
              static_cast<unsigned long long>(mn_summary.links(0).pairs()));
  // Both ends delivered every pair (pairs counts those seen at both ends).
  EXPECT_GT(mn_summary.links(0).pairs(), 300u);
  std::filesystem::remove_all(dir);
}

std::string FakePlan(const std::string& dir, const std::string& tag, double wall_timeout_s) {
  const std::string qworld =
      test_runs::WriteTemp(dir, "fake_qworld.sh", "#!/bin/sh\ntouch \"$4\"\nexec sleep 60\n");
  const std::string qnode =
      test_runs::WriteTemp(dir, "fake_qnode.sh", "#!/bin/sh\nip -o addr show\nexec sleep 60\n");
  std::filesystem::permissions(qworld, std::filesystem::perms::owner_all);
  std::filesystem::permissions(qnode, std::filesystem::perms::owner_all);
  std::filesystem::create_directories(dir + "/logs");
  const std::string node = tag + "n";
  return test_runs::WriteTemp(
      dir, "plan.json",
      absl::StrCat(R"({"tag": ")", tag, R"(", "out_dir": ")", dir, R"(", "socket_path": ")", dir,
                   R"(/qworld.sock", "wall_timeout_s": )", wall_timeout_s,
                   R"(, "duration_s": 1, "time_dilation": 1,
  "qworld": {"argv": [")",
                   qworld, R"(", "--topology", "x", "--socket", ")", dir, R"(/qworld.sock"],
             "log": ")",
                   dir, R"(/logs/qworld.log"},
  "nodes": [{"name": "a", "host": ")",
                   node, R"(1", "argv": [")", qnode, R"("], "log": ")", dir,
                   R"(/logs/a.log"},
            {"name": "b", "host": ")",
                   node, R"(2", "argv": [")", qnode, R"("], "log": ")", dir,
                   R"(/logs/b.log"}],
  "links": [{"name": "ab", "a": "a", "b": "b", "subnet": "10.0.1.0/30", "a_ip": "10.0.1.1", "b_ip": "10.0.1.2",
             "a_intf": ")",
                   node, R"(1-1", "b_intf": ")", node, R"(2-1"}]})"));
}

void ExpectNothingLeft(const std::string& dir, const std::string& tag) {
  for (const std::string& name : InterfaceNames()) {
    EXPECT_NE(name.rfind(tag + "n", 0), 0u) << "interface left behind: " << name;
  }
  EXPECT_EQ(ProcessesMentioning(dir + "/fake_"), std::vector<std::string>{});
  EXPECT_EQ(ProcessesMentioning("mininet:" + tag + "n"), std::vector<std::string>{});
}

// The driver alone, with fake daemons that never exit: link addresses are
// assigned, and the wall timeout stops everything and tears the network down.
TEST(MininetDriverTest, TimeoutTearsDownAndLinkAddressesWereAssigned) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_driver_", getpid());
  std::filesystem::remove_all(dir);
  const std::string tag = absl::StrCat("qt", getpid() % 10000);
  const std::string plan = FakePlan(dir, tag, 2);
  const std::string driver = std::filesystem::path(QNET_BINARY).parent_path() / "qnet_mininet.py";
  test_runs::CommandResult r = RunProgram({kMininetPython, driver, plan});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("did not finish within its wall-time limit of 2 s"), std::string::npos)
      << r.output;
  EXPECT_NE(test_runs::ReadFile(dir + "/logs/a.log").find("inet 10.0.1.1/30"), std::string::npos);
  EXPECT_NE(test_runs::ReadFile(dir + "/logs/b.log").find("inet 10.0.1.2/30"), std::string::npos);
  ExpectNothingLeft(dir, tag);
  std::filesystem::remove_all(dir);
}

// SIGTERM to the driver (what the launcher forwards on Ctrl-C) tears down.
TEST(MininetDriverTest, SigtermTearsDown) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_sigterm_", getpid());
  std::filesystem::remove_all(dir);
  const std::string tag = absl::StrCat("qs", getpid() % 10000);
  const std::string plan = FakePlan(dir, tag, 60);
  const std::string driver = std::filesystem::path(QNET_BINARY).parent_path() / "qnet_mininet.py";
  ChildGroup group;
  ASSERT_TRUE(
      group.Spawn(ChildSpec{"driver", {kMininetPython, driver, plan}, dir + "/driver.log"}).ok());
  // Wait until both fake qnodes run (they log their addresses first).
  for (int i = 0; i < 300; ++i) {
    if (!test_runs::ReadFile(dir + "/logs/b.log").empty() &&
        !test_runs::ReadFile(dir + "/logs/a.log").empty())
      break;
    usleep(50000);
  }
  ASSERT_FALSE(test_runs::ReadFile(dir + "/logs/b.log").empty());
  group.Signal(SIGTERM);
  WaitResult r = group.Wait(absl::Now() + absl::Seconds(60));
  ASSERT_EQ(r.end, WaitEnd::kChildFailed);
  EXPECT_EQ(r.failed->exit_code, 128 + SIGTERM);
  EXPECT_NE(test_runs::ReadFile(dir + "/driver.log").find("interrupted by SIGTERM"),
            std::string::npos);
  ExpectNothingLeft(dir, tag);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qnet::launcher
