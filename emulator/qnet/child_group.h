// ChildGroup: the processes of one emulated run (qworld, every qnode, or the
// Mininet driver), started by the launcher and never left behind.
//
// Promises:
// - Every child runs in one process group of its own (not the launcher's), so
//   a Ctrl-C at the terminal reaches only the launcher, which decides how to
//   stop the run; KillAll() signals that group and every child by pid.
// - A child dies with the launcher: each is started with PR_SET_PDEATHSIG
//   (SIGKILL by default), so even a launcher killed by SIGKILL leaves nothing.
// - A child's stdout and stderr go to its log file (or, with an empty log path,
//   to the launcher's own), stdin is /dev/null, signal dispositions and mask are
//   reset to the defaults.
// - A program that cannot be executed is reported by Spawn() itself, with the
//   errno text, not as a mysterious exit status 127.
// - Wait() reaps children as they exit and returns the first failure (nonzero
//   exit or death by signal), naming the child and its log.
//
// Not thread-safe; one ChildGroup per launcher. The destructor kills and reaps
// whatever is still running.
#ifndef QNET_EMULATOR_QNET_CHILD_GROUP_H_
#define QNET_EMULATOR_QNET_CHILD_GROUP_H_

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace qnet::launcher {

struct ChildSpec {
  std::string name;               // e.g. "qworld", "qnode a"
  std::vector<std::string> argv;  // argv[0] is the program path (no PATH search)
  std::string log_path;           // empty: inherit the launcher's stdout/stderr
  int death_signal = SIGKILL;     // sent to the child if the launcher dies
};

struct ChildExit {
  std::string name;
  std::string log_path;
  pid_t pid = 0;
  int exit_code = -1;  // valid when !signaled
  int signal = 0;      // valid when signaled
  bool signaled = false;
  bool ok() const { return !signaled && exit_code == 0; }
  // "exited with status 3" / "was killed by signal 9 (Killed)".
  std::string Describe() const;
};

// Why Wait() returned.
enum class WaitEnd { kAllExited, kChildFailed, kTimedOut, kInterrupted };

struct WaitResult {
  WaitEnd end = WaitEnd::kAllExited;
  std::optional<ChildExit> failed;  // kChildFailed: the first child that failed
  int interrupt_signal = 0;         // kInterrupted: SIGINT or SIGTERM
};

class ChildGroup {
 public:
  ChildGroup() = default;
  ~ChildGroup();
  ChildGroup(const ChildGroup&) = delete;
  ChildGroup& operator=(const ChildGroup&) = delete;

  // Starts a child. The first child founds the group; later ones join it.
  absl::Status Spawn(const ChildSpec& spec);

  // Waits until every child has exited, one fails, `deadline` passes, or the
  // launcher receives SIGINT/SIGTERM (see InstallInterruptHandlers). Calls
  // `tick` about every `tick_every` while waiting (progress display).
  WaitResult Wait(absl::Time deadline, const std::function<void()>& tick = nullptr,
                  absl::Duration tick_every = absl::Seconds(1));

  // Sends `sig` to the group and to every child still running.
  void Signal(int sig);
  // SIGTERM, up to `grace` for the children to exit, then SIGKILL; reaps all.
  void KillAll(absl::Duration grace = absl::Milliseconds(500));

  // True while some child has not been reaped.
  bool AnyRunning() const;
  pid_t pgid() const { return pgid_; }
  std::vector<pid_t> pids() const;
  // The children not reaped yet.
  std::vector<ChildSpec> Running() const;
  const std::vector<ChildExit>& exits() const { return exits_; }

  // Installs SIGINT/SIGTERM handlers that make Wait() return kInterrupted
  // (idempotent), and ignores SIGPIPE. Call once from main.
  static void InstallInterruptHandlers();
  // The interrupting signal received so far (0 if none); for tests and main.
  static int PendingInterrupt();
  static void ClearInterrupt();

 private:
  struct Child {
    ChildSpec spec;
    pid_t pid = 0;
    bool running = false;
  };
  // Reaps children that have exited without blocking; returns the first
  // failure among them, if any.
  std::optional<ChildExit> ReapExited();
  std::optional<ChildExit> Record(Child& child, int status);

  std::vector<Child> children_;
  std::vector<ChildExit> exits_;
  pid_t pgid_ = 0;
};

// Runs a program to completion with output discarded (for prerequisite checks
// such as `ip netns list`); returns its exit status, or -1 if it could not run
// or was killed after `timeout`.
int RunQuietly(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(20));

// What RunCapturing saw.
struct CapturedRun {
  int exit_code = -1;      // the exit status; -1 if it could not run or was killed
  int signal = 0;          // the signal that ended it, if one did
  bool timed_out = false;  // it was still running after the timeout
  std::string output;      // stdout and stderr interleaved (the last 64 KiB)
};

// Runs a program to completion (PATH search, stdin /dev/null) with its stdout
// and stderr captured in an anonymous temporary file (for the Mininet probe).
// After `timeout` it gets SIGTERM, after `grace` more SIGKILL; if the calling
// process dies first, the program gets `death_signal`.
CapturedRun RunCapturing(const std::vector<std::string>& argv, absl::Duration timeout,
                         absl::Duration grace = absl::Seconds(5), int death_signal = SIGKILL);

// The last `max_lines` lines of a text file (for failure reports).
std::string TailOfFile(const std::string& path, int max_lines);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_CHILD_GROUP_H_
