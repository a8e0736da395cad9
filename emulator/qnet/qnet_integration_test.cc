// `qnet run` end to end with real processes on loopback (label integration):
// the local backend reproduces the sim backend's rate within 10 %, a failing
// daemon, a timeout and Ctrl-C each stop the whole run with the reason, and no
// process of a run is left afterwards (launcher brief, "Tests").
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "emulator/qnet/child_group.h"
#include "emulator/qnet/testing/qnet_runs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;
using test_runs::ProcessesMentioning;
using test_runs::ReadFile;
using test_runs::ReadSummary;
using test_runs::RunProgram;
using ::testing::HasSubstr;

class QnetRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/qnet_run_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    // Whatever happened, nothing of this test's runs may still run.
    EXPECT_EQ(ProcessesMentioning(dir_), std::vector<std::string>{}) << "processes left behind";
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string Topology(double duration_s) {
    return test_runs::WriteTemp(dir_, "pair.xml", test_runs::TwoNodeWernerXml("pair", duration_s));
  }
  std::string FakeDaemon(const std::string& name, const std::string& script) {
    const std::string path = test_runs::WriteTemp(dir_, name, "#!/bin/sh\n" + script + "\n");
    fs::permissions(path, fs::perms::owner_all);
    return path;
  }
  std::string dir_;
};

TEST_F(QnetRunTest, LocalRateMatchesSimWithin10PercentAndTheRunIsComplete) {
  const std::string topology = Topology(4);
  const std::string sim_out = dir_ + "/sim", local_out = dir_ + "/local";
  test_runs::CommandResult sim =
      RunProgram({QNET_BINARY, "run", topology, "--backend", "sim", "--out", sim_out});
  ASSERT_EQ(sim.exit_code, 0) << sim.output;
  test_runs::CommandResult local =
      RunProgram({QNET_BINARY, "run", topology, "--backend=local", "--out", local_out});
  ASSERT_EQ(local.exit_code, 0) << local.output;

  results::v1::Summary s, l;
  ASSERT_TRUE(ReadSummary(sim_out, &s));
  ASSERT_TRUE(ReadSummary(local_out, &l));
  EXPECT_EQ(s.backend(), "sim");
  EXPECT_EQ(l.backend(), "local");
  ASSERT_EQ(s.links_size(), 1);
  ASSERT_EQ(l.links_size(), 1);
  ASSERT_GT(s.links(0).pairs(), 300u);
  ASSERT_GT(l.links(0).pairs(), 300u);
  const double sim_rate = s.links(0).rate_hz(), local_rate = l.links(0).rate_hz();
  EXPECT_NEAR(local_rate, sim_rate, 0.10 * sim_rate) << local.output;
  std::printf("rates: sim %.2f Hz (%llu pairs), local %.2f Hz (%llu pairs)\n", sim_rate,
              static_cast<unsigned long long>(s.links(0).pairs()), local_rate,
              static_cast<unsigned long long>(l.links(0).pairs()));

  // The results folder holds the topology, traces, logs and the report's source.
  EXPECT_EQ(ReadFile(local_out + "/topology.xml"), ReadFile(topology));
  // RES-1a: binary traces by default on real backends; `qnet trace` prints them
  // as JSON lines, one TraceRecord per line.
  EXPECT_TRUE(fs::exists(local_out + "/qworld.pb"));
  EXPECT_TRUE(fs::exists(local_out + "/nodes/a.pb"));
  EXPECT_TRUE(fs::exists(local_out + "/nodes/b.pb"));
  test_runs::CommandResult trace = RunProgram({QNET_BINARY, "trace", local_out + "/nodes/a.pb"});
  ASSERT_EQ(trace.exit_code, 0) << trace.output.substr(0, 2000);
  EXPECT_THAT(trace.output, HasSubstr("\"node\":\"a\""));
  EXPECT_THAT(trace.output, HasSubstr("\"ok\""));
  EXPECT_GE(static_cast<uint64_t>(std::count(trace.output.begin(), trace.output.end(), '\n')),
            l.links(0).pairs());
  EXPECT_TRUE(fs::exists(local_out + "/logs/qworld.log"));
  EXPECT_TRUE(fs::exists(local_out + "/logs/a.log"));
  EXPECT_FALSE(fs::exists(local_out + "/qworld.sock"));
  // Progress lines (not a TTY: one per line) and the report.
  EXPECT_THAT(local.output, HasSubstr("[local] "));
  EXPECT_THAT(local.output, HasSubstr(" s emulated"));
  EXPECT_THAT(local.output, HasSubstr("results: " + fs::weakly_canonical(local_out).string()));

  test_runs::CommandResult report = RunProgram({QNET_BINARY, "report", local_out});
  EXPECT_EQ(report.exit_code, 0) << report.output;
  EXPECT_THAT(report.output, HasSubstr("ab"));
}

TEST_F(QnetRunTest, AFailingDaemonStopsTheRunAndIsNamedWithItsLog) {
  const std::string topology = Topology(30);
  const std::string fake =
      FakeDaemon("qnode_that_fails", "echo 'fake qnode: giving up' >&2; sleep 0.3; exit 3");
  const std::string out = dir_ + "/out";
  const std::string cmd = absl::StrCat("QNET_QNODE=", fake);
  test_runs::CommandResult r = RunProgram({"env", cmd, QNET_BINARY, "run", topology, "--out", out});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("exited with status 3"));
  EXPECT_THAT(r.output, ::testing::ContainsRegex("qnode [ab] exited with status 3"));
  EXPECT_THAT(r.output, ::testing::ContainsRegex("its log is .*/out/logs/[ab]\\.log"));
  EXPECT_THAT(r.output, HasSubstr("fake qnode: giving up"));
}

TEST_F(QnetRunTest, TheWallTimeoutStopsEveryProcess) {
  const std::string topology = Topology(30);
  const std::string fake = FakeDaemon("qnode_that_hangs", "exec sleep 60");
  const std::string out = dir_ + "/out";
  const absl::Time start = absl::Now();
  test_runs::CommandResult r = RunProgram({"env", absl::StrCat("QNET_QNODE=", fake), QNET_BINARY,
                                           "run", topology, "--out", out, "--wall-timeout", "2"});
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("did not finish within its wall-time limit of 2s"));
  EXPECT_THAT(r.output, HasSubstr("qnode a (log "));
}

TEST_F(QnetRunTest, CtrlCStopsTheRunAndLeavesNothing) {
  const std::string topology = Topology(60);
  const std::string out = dir_ + "/out";
  ChildGroup group;
  ASSERT_TRUE(group
                  .Spawn(ChildSpec{
                      "qnet", {QNET_BINARY, "run", topology, "--out", out}, dir_ + "/qnet.log"})
                  .ok());
  // Wait until the link delivers pairs (RES-1b progress), then interrupt as a
  // terminal would.
  // (A link's count appears once it is non-zero: Protobuf JSON omits zeros.)
  auto delivering = [&] {
    return ReadFile(out + "/progress.json").find("\"count\"") != std::string::npos;
  };
  for (int i = 0; i < 200 && !delivering(); ++i) usleep(50000);
  EXPECT_TRUE(delivering());
  kill(group.pids()[0], SIGINT);
  WaitResult r = group.Wait(absl::Now() + absl::Seconds(30));
  ASSERT_EQ(r.end, WaitEnd::kChildFailed);
  EXPECT_EQ(r.failed->exit_code, 128 + SIGINT);
  EXPECT_THAT(ReadFile(dir_ + "/qnet.log"), HasSubstr("interrupted by Interrupt"));
}

TEST_F(QnetRunTest, UsageErrorsAreClearAndExitWith2) {
  const std::string topology = Topology(1);
  test_runs::CommandResult r = RunProgram({QNET_BINARY, "run", topology, "--speed", "fast"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown flag '--speed'"));
  r = RunProgram({QNET_BINARY, "run", dir_ + "/missing.xml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("topology file '" + dir_ + "/missing.xml' not found"));
  const std::string bad = test_runs::WriteTemp(
      dir_, "bad.xml", "<network name=\"x\">\n  <node nmae=\"a\"/>\n</network>\n");
  r = RunProgram({QNET_BINARY, "run", bad, "--backend", "sim", "--out", dir_ + "/bad"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("bad.xml:2"));
  r = RunProgram({QNET_BINARY, "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown command 'frobnicate'"));
  r = RunProgram({QNET_BINARY, "report", dir_ + "/nowhere"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("not found"));
  // An out dir holding an earlier run is not overwritten.
  fs::create_directories(dir_ + "/used");
  test_runs::WriteTemp(dir_ + "/used", "summary.json", "{}");
  r = RunProgram({QNET_BINARY, "run", topology, "--backend", "sim", "--out", dir_ + "/used"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("exists and is not empty"));
}

}  // namespace
}  // namespace qnet::launcher
