// `qnet run --backend mininet` end to end (label mininet): the two-node werner
// topology's rate matches the sim backend's within 10 %, and afterwards `ip
// netns`, `ip link` and the process list show nothing of the run (launcher
// brief, "Tests"). The driver alone: link addresses, the wall timeout,
// SIGTERM, the start-up deadline (TOPO-47) and the probe (TOPO-46). Skips with
// the reason when this machine cannot run Mininet (not root, no network
// namespaces, no Mininet, or the probe cannot start a Mininet host).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
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

// The driver next to the qnet binary (CMake copies it there).
std::string DriverDir() { return std::filesystem::path(QNET_BINARY).parent_path().string(); }
std::string Driver() { return DriverDir() + "/qnet_mininet.py"; }

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
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();

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

// `extra`: more plan fields, each followed by a comma.
std::string FakePlan(const std::string& dir, const std::string& tag, double wall_timeout_s,
                     const std::string& extra = "") {
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
      absl::StrCat(R"({)", extra, R"("tag": ")", tag, R"(", "out_dir": ")", dir,
                   R"(", "socket_path": ")", dir, R"(/qworld.sock", "wall_timeout_s": )",
                   wall_timeout_s,
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
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_driver_", getpid());
  std::filesystem::remove_all(dir);
  const std::string tag = absl::StrCat("qt", getpid() % 10000);
  const std::string plan = FakePlan(dir, tag, 2);
  const std::string driver = Driver();
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
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_sigterm_", getpid());
  std::filesystem::remove_all(dir);
  const std::string tag = absl::StrCat("qs", getpid() % 10000);
  const std::string plan = FakePlan(dir, tag, 60);
  const std::string driver = Driver();
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

// A program put first on the driver's PATH; its path contains "/fake_", so a
// leftover shows in ExpectNothingLeft.
std::string FakeProgram(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = test_runs::WriteTemp(dir + "/fake_bin", name, text);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

std::string PathWithFakes(const std::string& dir) {
  const char* path = std::getenv("PATH");
  return absl::StrCat(dir, "/fake_bin:", path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
}

// An `mnexec` that becomes a session leader like the real one and then never
// starts the shell: the host's shell prompt never comes, as on a machine that
// cannot run Mininet hosts.
constexpr char kSilentMnexec[] =
    "#!/usr/bin/python3\nimport os, time\nos.setsid()\ntime.sleep(60)\n";

// The start-up deadline (TOPO-47) without a broken machine: with the silent
// mnexec the first host never starts; the driver gives up after the plan's
// 2 s with status 3 and one line naming the host shell it waited for (also in
// the plan's startup_failure_file, which the launcher turns into its error),
// and leaves no process, interface or host shell behind.
TEST(MininetDriverTest, StartupDeadlineNamesTheHostShellItWaitedForAndLeavesNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_deadline_", getpid());
  std::filesystem::remove_all(dir);
  const std::string tag = absl::StrCat("qd", getpid() % 10000);
  FakeProgram(dir, "mnexec", kSilentMnexec);
  const std::string plan =
      FakePlan(dir, tag, 60,
               absl::StrCat(R"("startup_timeout_s": 2, "startup_failure_file": ")", dir,
                            R"(/logs/mininet-startup.txt", )"));
  const absl::Time start = absl::Now();
  test_runs::CommandResult r =
      RunProgram({"env", "PATH=" + PathWithFakes(dir), kMininetPython, Driver(), plan});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.exit_code, kMininetStartupFailed) << r.output;
  EXPECT_LT(took, absl::Seconds(15)) << r.output;
  const std::string line = absl::StrCat(
      "Mininet could not start the network within 2 s: it was waiting for the shell of host ", tag,
      "n1 (mnexec in a new network namespace); this machine cannot run Mininet hosts (use "
      "--backend local)");
  EXPECT_NE(r.output.find("qnet_mininet: " + line + "\n"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(line), r.output.rfind(line)) << "said more than once:\n" << r.output;
  EXPECT_EQ(test_runs::ReadFile(dir + "/logs/mininet-startup.txt"), line + "\n");
  const absl::Status error = MininetStartupError(dir);
  EXPECT_TRUE(absl::IsFailedPrecondition(error)) << error;
  EXPECT_NE(error.message().find(absl::StrCat("waiting for the shell of host ", tag, "n1")),
            absl::string_view::npos)
      << error;
  EXPECT_NE(error.message().find("--backend local"), absl::string_view::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(dir + "/logs/qworld.log")) << "qworld started anyway";
  ExpectNothingLeft(dir, tag);
  std::filesystem::remove_all(dir);
}

// A later stage: both hosts start, but creating the veth pair never returns
// (an `ip` whose `ip link add` hangs, in the shell of the link's a end). The
// line names the link; the two live shells, one of them mid-command, are
// torn down as well.
TEST(MininetDriverTest, StartupDeadlineNamesTheLinkItWaitedForAndLeavesNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/qnet_mininet_deadline_link_", getpid());
  std::filesystem::remove_all(dir);
  const std::string tag = absl::StrCat("ql", getpid() % 10000);
  const std::string real_ip(
      absl::StripAsciiWhitespace(RunProgram({"sh", "-c", "command -v ip"}).output));
  ASSERT_FALSE(real_ip.empty());
  FakeProgram(dir, "ip",
              absl::StrCat("#!/bin/sh\ncase \"$*\" in\n  \"link add\"*) sleep 60; exit 1 ;;\nesac\n"
                           "exec ",
                           real_ip, " \"$@\"\n"));
  const std::string plan = FakePlan(dir, tag, 60, R"("startup_timeout_s": 2, )");
  const absl::Time start = absl::Now();
  test_runs::CommandResult r =
      RunProgram({"env", "PATH=" + PathWithFakes(dir), kMininetPython, Driver(), plan});
  EXPECT_EQ(r.exit_code, kMininetStartupFailed) << r.output;
  EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << r.output;
  EXPECT_NE(r.output.find(absl::StrCat("within 2 s: it was waiting for the veth link ab (", tag,
                                       "n1-1 <-> ", tag, "n2-1")),
            std::string::npos)
      << r.output;
  ExpectNothingLeft(dir, tag);
  std::filesystem::remove_all(dir);
}

// TOPO-46: the probe starts one host (named from its tag), runs `true` in it
// and leaves nothing; a bad tag is a usage error.
TEST(MininetProbeTest, ProbeStartsAHostAndLeavesNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/qnet_mininet_probe_", getpid());
  const std::string tag = absl::StrCat("qp", getpid() % 10000);
  const absl::Time start = absl::Now();
  test_runs::CommandResult r = RunProgram({kMininetPython, Driver(), "--probe", tag});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(absl::Now() - start, kMininetProbeTimeout) << r.output;
  ExpectNothingLeft(dir, tag);
  EXPECT_EQ(RunProgram({kMininetPython, Driver(), "--probe", "Bad/Tag"}).exit_code, 2);
  EXPECT_EQ(RunProgram({kMininetPython, Driver(), "--probe"}).exit_code, 2);
}

// TOPO-46: where the probe cannot start a host (the silent mnexec first on
// PATH), the prerequisite check fails within the probe's deadline with the
// probe's reason, which is what every mininet test skips with on such a
// machine, and what `qnet run --backend mininet` says before it starts.
TEST(MininetProbeTest, APrerequisiteCheckWhoseProbeCannotStartAHostSaysWhatItWaitedFor) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  if (absl::Status s = CheckMininetPrerequisites(DriverDir()); !s.ok()) GTEST_SKIP() << s.message();
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/qnet_mininet_probe_fails_", getpid());
  std::filesystem::remove_all(dir);
  FakeProgram(dir, "mnexec", kSilentMnexec);
  const char* old_path = std::getenv("PATH");
  const std::string saved = old_path != nullptr ? old_path : "";
  setenv("PATH", PathWithFakes(dir).c_str(), 1);
  const absl::Time start = absl::Now();
  const absl::Status s = CheckMininetPrerequisites(DriverDir());
  const absl::Duration took = absl::Now() - start;
  if (old_path != nullptr) {
    setenv("PATH", saved.c_str(), 1);
  } else {
    unsetenv("PATH");
  }
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find(absl::StrCat(
                "Mininet cannot start a host on this machine: Mininet could not start a host "
                "within 10 s: it was waiting for the shell of host ",
                MininetProbeTag(), "n1 (mnexec in a new network namespace)")),
            absl::string_view::npos)
      << s;
  EXPECT_NE(s.message().find("exited with status 3"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("use --backend local"), absl::string_view::npos) << s;
  EXPECT_LT(took, kMininetProbeTimeout + absl::Seconds(10)) << s;
  ExpectNothingLeft(dir, MininetProbeTag());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qnet::launcher
