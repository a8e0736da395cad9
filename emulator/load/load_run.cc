#include "emulator/load/load_run.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/qnet/testing/qnet_runs.h"

namespace qnet::load {

BusyLoad::BusyLoad(int processes) {
  const pid_t parent = getpid();
  for (int i = 0; i < processes; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      volatile uint64_t spin = 0;
      for (;;) spin = spin + 1;
    }
    if (pid > 0) pids_.push_back(pid);
  }
}

BusyLoad::~BusyLoad() {
  for (pid_t pid : pids_) kill(pid, SIGKILL);
  for (pid_t pid : pids_) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

int BusyLoad::DefaultProcesses() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::vector<std::string> CheckSummary(const results::v1::Summary& s) {
  std::vector<std::string> failures;
  auto fail = [&](auto&&... parts) { failures.push_back(absl::StrCat(parts...)); };
  for (const auto& q : s.qkd()) {
    if (q.aborted()) fail("qkd ", q.name(), " aborted: ", q.abort_reason());
    if (!q.keys_match()) fail("qkd ", q.name(), ": the two ends' keys differ or are missing");
    if (q.key_bits() == 0) fail("qkd ", q.name(), ": no key");
    if (!q.error().empty()) fail("qkd ", q.name(), ": ", q.error());
  }
  for (const auto& l : s.links()) {
    if (l.pairs_one_end() > 0)
      fail("link ", l.name(), ": ", l.pairs_one_end(), " pair(s) at one end only");
    if (l.inconsistent_pairs() > 0)
      fail("link ", l.name(), ": ", l.inconsistent_pairs(), " inconsistent pair(s)");
    if (l.downs_a() != l.downs_b()) {
      fail("link ", l.name(), " went down ", l.downs_a(), " time(s) at ", l.a(), " but ",
           l.downs_b(), " at ", l.b());
    }
  }
  for (const auto& c : s.connections()) {
    if (c.pairs_one_end() > 0)
      fail("connection ", c.name(), ": ", c.pairs_one_end(), " pair(s) at one end only");
    if (c.pairs() == 0) fail("connection ", c.name(), ": no pair delivered");
  }
  for (const auto& a : s.apps()) {
    if (a.status() != "ok") fail("app ", a.name(), ": ", a.status(), " ", a.error());
  }
  if (s.missing_traces_size() > 0)
    fail("missing traces: ", absl::StrJoin(s.missing_traces(), ", "));
  if (s.malformed_trace_lines() > 0) fail(s.malformed_trace_lines(), " malformed trace records");
  return failures;
}

LoadRun RunAndCheck(const std::string& qnet, const std::string& topology,
                    const std::string& out_dir) {
  LoadRun run;
  const absl::Time start = absl::Now();
  launcher::test_runs::CommandResult r = launcher::test_runs::RunProgram(
      {qnet, "run", topology, "--backend", "local", "--out", out_dir});
  run.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  run.exit_code = r.exit_code;
  run.output = std::move(r.output);
  if (run.exit_code != 0) run.failures.push_back(absl::StrCat("qnet exited with ", run.exit_code));
  if (!launcher::test_runs::ReadSummary(out_dir, &run.summary)) {
    run.failures.push_back(absl::StrCat("no readable ", out_dir, "/summary.json"));
  } else {
    for (std::string& f : CheckSummary(run.summary)) run.failures.push_back(std::move(f));
  }
  for (const std::string& p : launcher::test_runs::ProcessesMentioning(out_dir))
    run.failures.push_back("left running: " + p);
  return run;
}

std::string Describe(const LoadRun& run) {
  std::string keys;
  for (const auto& q : run.summary.qkd()) {
    absl::StrAppend(&keys, ", qkd ", q.name(), " ", q.key_bits(), " key bits",
                    q.keys_match() ? " equal" : " NOT equal");
  }
  const std::string verdict =
      run.failures.empty() ? "ok" : "FAILED: " + absl::StrJoin(run.failures, "; ");
  return absl::StrCat(verdict, keys, absl::StrFormat(", %.1f s wall", run.wall_s));
}

}  // namespace qnet::load
