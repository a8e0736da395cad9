// ChildGroup: the launcher's promise that a run's processes share one group,
// report how they ended, and never outlive the run (launcher brief: "never
// leave a process behind").
#include "emulator/qnet/child_group.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/qnet_child_group_", getpid(), "_", name);
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

// A zombie counts as gone (it is no longer running).
bool Running(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat) return false;
  std::string all;
  std::getline(stat, all);
  const size_t close = all.rfind(')');
  return close != std::string::npos && close + 2 < all.size() && all[close + 2] != 'Z';
}

// Processes of group `pgid` that are still running (zombies excluded: the
// container's init may reap orphans late).
int RunningInGroup(pid_t pgid) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (getpgid(pid) == pgid && Running(pid)) ++n;
  }
  return n;
}

ChildSpec Shell(const std::string& name, const std::string& script, const std::string& log = "") {
  return ChildSpec{name, {"/bin/sh", "-c", script}, log};
}

TEST(ChildGroupTest, AllChildrenExitingZeroIsSuccess) {
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(Shell("one", "exit 0")).ok());
  ASSERT_TRUE(group.Spawn(Shell("two", "sleep 0.1")).ok());
  WaitResult r = group.Wait(absl::Now() + absl::Seconds(20));
  EXPECT_EQ(r.end, WaitEnd::kAllExited);
  ASSERT_EQ(group.exits().size(), 2u);
  for (const ChildExit& e : group.exits()) EXPECT_TRUE(e.ok()) << e.name << " " << e.Describe();
}

TEST(ChildGroupTest, ChildrenShareOneGroupThatIsNotTheLaunchers) {
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(Shell("a", "sleep 30")).ok());
  ASSERT_TRUE(group.Spawn(Shell("b", "sleep 30")).ok());
  const std::vector<pid_t> pids = group.pids();
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_EQ(getpgid(pids[0]), group.pgid());
  EXPECT_EQ(getpgid(pids[1]), group.pgid());
  EXPECT_NE(group.pgid(), getpgrp());
  group.KillAll();
  EXPECT_FALSE(Alive(pids[0]));
  EXPECT_FALSE(Alive(pids[1]));
}

TEST(ChildGroupTest, FailingChildIsNamedWithItsLogAndOutputIsCaptured) {
  const std::string log = TempPath("fail.log");
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(Shell("sleeper", "sleep 30")).ok());
  ASSERT_TRUE(
      group.Spawn(Shell("qnode x", "echo to-stdout; echo to-stderr >&2; exit 3", log)).ok());
  WaitResult r = group.Wait(absl::Now() + absl::Seconds(20));
  ASSERT_EQ(r.end, WaitEnd::kChildFailed);
  ASSERT_TRUE(r.failed.has_value());
  EXPECT_EQ(r.failed->name, "qnode x");
  EXPECT_EQ(r.failed->exit_code, 3);
  EXPECT_EQ(r.failed->log_path, log);
  EXPECT_EQ(r.failed->Describe(), "exited with status 3");
  EXPECT_EQ(TailOfFile(log, 5), "to-stdout\nto-stderr\n");
  EXPECT_EQ(TailOfFile(log, 1), "to-stderr\n");
  group.KillAll();
  EXPECT_FALSE(group.AnyRunning());
}

TEST(ChildGroupTest, DeathBySignalIsAFailure) {
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(Shell("victim", "kill -9 $$")).ok());
  WaitResult r = group.Wait(absl::Now() + absl::Seconds(20));
  ASSERT_EQ(r.end, WaitEnd::kChildFailed);
  EXPECT_TRUE(r.failed->signaled);
  EXPECT_EQ(r.failed->signal, SIGKILL);
}

TEST(ChildGroupTest, MissingProgramIsReportedBySpawn) {
  ChildGroup group;
  absl::Status s = group.Spawn(ChildSpec{"qworld", {"/nonexistent/qworld"}, ""});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot start qworld (/nonexistent/qworld)"), std::string::npos) << s;
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s;
  EXPECT_FALSE(group.AnyRunning());
}

TEST(ChildGroupTest, TimeoutThenKillAllLeavesNothingIncludingGrandchildren) {
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(Shell("parent", "sleep 60 & wait")).ok());
  ASSERT_TRUE(group.Spawn(Shell("stubborn", "trap '' TERM; sleep 60 & wait; sleep 60")).ok());
  const pid_t pgid = group.pgid();
  usleep(100000);
  EXPECT_GE(RunningInGroup(pgid), 4);  // two shells, two background sleeps
  const absl::Time start = absl::Now();
  WaitResult r = group.Wait(start + absl::Milliseconds(300));
  EXPECT_EQ(r.end, WaitEnd::kTimedOut);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(group.Running().size(), 2u);
  group.KillAll(absl::Milliseconds(200));
  EXPECT_FALSE(group.AnyRunning());
  // The background sleeps were grandchildren in the same group: gone too
  // (SIGKILL was sent; give the kernel a moment to finish them).
  for (int i = 0; i < 200 && RunningInGroup(pgid) > 0; ++i) usleep(10000);
  EXPECT_EQ(RunningInGroup(pgid), 0);
}

TEST(ChildGroupTest, InterruptMakesWaitReturnWithTheSignal) {
  ChildGroup::InstallInterruptHandlers();
  ChildGroup::ClearInterrupt();
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(Shell("sleeper", "sleep 30")).ok());
  kill(getpid(), SIGTERM);
  WaitResult r = group.Wait(absl::Now() + absl::Seconds(20));
  EXPECT_EQ(r.end, WaitEnd::kInterrupted);
  EXPECT_EQ(r.interrupt_signal, SIGTERM);
  ChildGroup::ClearInterrupt();
  group.KillAll();
  EXPECT_FALSE(group.AnyRunning());
}

TEST(ChildGroupTest, ChildrenDieWithTheLauncherEvenWhenItIsKilled) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t launcher = fork();
  if (launcher == 0) {
    // A launcher that starts a child and is then killed without cleaning up.
    auto* group = new ChildGroup();
    if (!group->Spawn(ChildSpec{"orphan-to-be", {"/bin/sleep", "60"}, ""}).ok()) _exit(1);
    const pid_t child = group->pids()[0];
    (void)!write(fds[1], &child, sizeof child);
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t child = 0;
  ASSERT_EQ(read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  close(fds[0]);
  ASSERT_TRUE(Running(child));
  kill(launcher, SIGKILL);
  int status;
  waitpid(launcher, &status, 0);
  for (int i = 0; i < 200 && Running(child); ++i) usleep(10000);
  EXPECT_FALSE(Running(child));
}

TEST(ChildGroupTest, RunQuietlyReturnsTheExitStatus) {
  EXPECT_EQ(RunQuietly({"true"}), 0);
  EXPECT_EQ(RunQuietly({"sh", "-c", "echo noise; exit 4"}), 4);
  EXPECT_NE(RunQuietly({"/nonexistent/program"}), 0);
  const absl::Time start = absl::Now();
  EXPECT_EQ(RunQuietly({"sleep", "30"}, absl::Milliseconds(200)), -1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// Waiting without a tick (the Mininet backend's driver, --serve-keys) naps
// instead of spinning once a second has passed.
TEST(ChildGroupTest, WaitWithoutATickDoesNotSpin) {
  ChildGroup group;
  ASSERT_TRUE(group.Spawn(ChildSpec{"sleeper", {"/bin/sleep", "2.5"}, ""}).ok());
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  const WaitResult r = group.Wait(absl::Now() + absl::Seconds(30));
  getrusage(RUSAGE_SELF, &after);
  EXPECT_EQ(r.end, WaitEnd::kAllExited);
  const absl::Duration cpu =
      absl::DurationFromTimeval(after.ru_utime) - absl::DurationFromTimeval(before.ru_utime) +
      absl::DurationFromTimeval(after.ru_stime) - absl::DurationFromTimeval(before.ru_stime);
  EXPECT_LT(cpu, absl::Milliseconds(300)) << "Wait() used " << cpu << " of CPU in 2.5 s";
}

// The Mininet probe's runner: output of both streams, the exit status, and a
// program past its timeout gets SIGTERM (its chance to clean up), then SIGKILL.
TEST(ChildGroupTest, RunCapturingKeepsTheOutputAndStopsALateProgram) {
  CapturedRun r = RunCapturing({"sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.output, "out\nerr\n");

  r = RunCapturing({"/nonexistent/program"}, absl::Seconds(10));
  EXPECT_NE(r.exit_code, 0);

  // SIGTERM is trapped and answered: the program ends in the grace period.
  absl::Time start = absl::Now();
  r = RunCapturing(
      {"sh", "-c",
       "trap 'echo cleaned up; exit 7' TERM; echo started; while :; do sleep 0.05; done"},
      absl::Milliseconds(300), absl::Seconds(10));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.output, "started\ncleaned up\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));

  // SIGTERM ignored: SIGKILL after the grace period.
  start = absl::Now();
  r = RunCapturing({"sh", "-c", "trap '' TERM; exec sleep 30"}, absl::Milliseconds(200),
                   absl::Milliseconds(300));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
}

}  // namespace
}  // namespace qnet::launcher
