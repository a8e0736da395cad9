#include "emulator/qnet/child_group.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace qnet::launcher {
namespace {

volatile sig_atomic_t g_interrupt = 0;

void OnInterrupt(int sig) { g_interrupt = sig; }

void Nap(absl::Duration d) {
  // nanosleep returns early on a signal, which is what Wait() wants.
  const timespec ts = absl::ToTimespec(d);
  nanosleep(&ts, nullptr);
}

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const std::string& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child between fork and exec: only async-signal-safe calls.
void ResetSignalsInChild() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace

std::string ChildExit::Describe() const {
  if (signaled) return absl::StrCat("was killed by signal ", signal, " (", strsignal(signal), ")");
  return absl::StrCat("exited with status ", exit_code);
}

ChildGroup::~ChildGroup() {
  if (AnyRunning()) KillAll(absl::Milliseconds(200));
}

absl::Status ChildGroup::Spawn(const ChildSpec& spec) {
  if (spec.argv.empty())
    return absl::InvalidArgumentError(absl::StrCat(spec.name, ": empty command"));
  int log_fd = -1;
  if (!spec.log_path.empty()) {
    log_fd = open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::InternalError(absl::StrCat("cannot open log ", spec.log_path, " for ", spec.name,
                                              ": ", strerror(errno)));
    }
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int err_pipe[2];
  if (null_fd < 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    if (log_fd >= 0) close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return absl::InternalError(absl::StrCat("cannot start ", spec.name, ": ", strerror(e)));
  }
  std::vector<char*> argv = CArgv(spec.argv);
  const pid_t parent = getpid();
  const pid_t group = pgid_;
  const pid_t pid = fork();
  if (pid == 0) {
    if (setpgid(0, group) != 0 && group != 0) setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, spec.death_signal);
    if (getppid() != parent) _exit(127);
    ResetSignalsInChild();
    dup2(null_fd, STDIN_FILENO);
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    const int e = errno;
    (void)!write(err_pipe[1], &e, sizeof e);
    _exit(127);
  }
  const int fork_errno = errno;
  close(err_pipe[1]);
  close(null_fd);
  if (log_fd >= 0) close(log_fd);
  if (pid < 0) {
    close(err_pipe[0]);
    return absl::InternalError(
        absl::StrCat("cannot fork for ", spec.name, ": ", strerror(fork_errno)));
  }
  // Also from the parent, so the group exists before Spawn returns (races with
  // the child's own call; either order gives the same result).
  setpgid(pid, group != 0 ? group : pid);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == sizeof exec_errno) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", spec.name, " (", spec.argv[0], "): ", strerror(exec_errno)));
  }
  if (pgid_ == 0) pgid_ = pid;
  children_.push_back(Child{spec, pid, true});
  return absl::OkStatus();
}

std::optional<ChildExit> ChildGroup::Record(Child& child, int status) {
  child.running = false;
  ChildExit exit;
  exit.name = child.spec.name;
  exit.log_path = child.spec.log_path;
  exit.pid = child.pid;
  if (WIFSIGNALED(status)) {
    exit.signaled = true;
    exit.signal = WTERMSIG(status);
  } else {
    exit.exit_code = WEXITSTATUS(status);
  }
  exits_.push_back(exit);
  if (exit.ok()) return std::nullopt;
  return exit;
}

std::optional<ChildExit> ChildGroup::ReapExited() {
  std::optional<ChildExit> first_failure;
  for (Child& child : children_) {
    if (!child.running) continue;
    int status;
    const pid_t r = waitpid(child.pid, &status, WNOHANG);
    if (r == child.pid) {
      std::optional<ChildExit> failure = Record(child, status);
      if (failure && !first_failure) first_failure = failure;
    } else if (r < 0 && errno == ECHILD) {
      child.running = false;  // reaped elsewhere; nothing left to wait for
    }
  }
  return first_failure;
}

WaitResult ChildGroup::Wait(absl::Time deadline, const std::function<void()>& tick,
                            absl::Duration tick_every) {
  absl::Time next_tick = absl::Now() + tick_every;
  while (true) {
    if (std::optional<ChildExit> failure = ReapExited()) {
      return WaitResult{WaitEnd::kChildFailed, failure, 0};
    }
    if (!AnyRunning()) return WaitResult{WaitEnd::kAllExited, std::nullopt, 0};
    if (const int sig = g_interrupt; sig != 0)
      return WaitResult{WaitEnd::kInterrupted, std::nullopt, sig};
    const absl::Time now = absl::Now();
    if (now >= deadline) return WaitResult{WaitEnd::kTimedOut, std::nullopt, 0};
    if (tick && now >= next_tick) {
      tick();
      next_tick = now + tick_every;
    }
    // Without a tick, next_tick is never moved on: it must not shorten the
    // nap (past it, the nap would be negative and Wait() would spin).
    const absl::Duration until_tick =
        tick ? next_tick - now + absl::Milliseconds(1) : absl::Milliseconds(50);
    Nap(std::min({absl::Milliseconds(50), deadline - now, until_tick}));
  }
}

void ChildGroup::Signal(int sig) {
  if (!AnyRunning()) return;
  if (pgid_ > 0) kill(-pgid_, sig);
  for (const Child& child : children_) {
    if (child.running) kill(child.pid, sig);
  }
}

void ChildGroup::KillAll(absl::Duration grace) {
  Signal(SIGTERM);
  const absl::Time give_up = absl::Now() + grace;
  while (AnyRunning() && absl::Now() < give_up) {
    ReapExited();
    if (AnyRunning()) Nap(absl::Milliseconds(10));
  }
  Signal(SIGKILL);
  for (Child& child : children_) {
    if (!child.running) continue;
    int status;
    pid_t r;
    while ((r = waitpid(child.pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (r == child.pid) {
      Record(child, status);
    } else {
      child.running = false;
    }
  }
}

bool ChildGroup::AnyRunning() const {
  for (const Child& child : children_) {
    if (child.running) return true;
  }
  return false;
}

std::vector<pid_t> ChildGroup::pids() const {
  std::vector<pid_t> out;
  for (const Child& child : children_) out.push_back(child.pid);
  return out;
}

std::vector<ChildSpec> ChildGroup::Running() const {
  std::vector<ChildSpec> out;
  for (const Child& child : children_) {
    if (child.running) out.push_back(child.spec);
  }
  return out;
}

void ChildGroup::InstallInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a signal cuts sleeps short
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int ChildGroup::PendingInterrupt() { return g_interrupt; }
void ChildGroup::ClearInterrupt() { g_interrupt = 0; }

namespace {

// Runs argv with stdin /dev/null and stdout and stderr on `out_fd`; waits up
// to `timeout`, then SIGTERM, `grace`, SIGKILL (no grace: SIGKILL at once).
// Returns the wait status, or nullopt if it could not be started.
std::optional<int> RunToCompletion(const std::vector<std::string>& argv, int out_fd,
                                   absl::Duration timeout, absl::Duration grace, int death_signal,
                                   bool* timed_out) {
  *timed_out = false;
  if (argv.empty()) return std::nullopt;
  std::vector<char*> cargv = CArgv(argv);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return std::nullopt;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(127);
    ResetSignalsInChild();
    dup2(null_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  close(null_fd);
  if (pid < 0) return std::nullopt;
  absl::Time give_up = absl::Now() + timeout;
  bool terminated = false;
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (absl::Now() >= give_up) {
      *timed_out = true;
      if (!terminated && grace > absl::ZeroDuration()) {
        kill(pid, SIGTERM);
        terminated = true;
        give_up = absl::Now() + grace;
        continue;
      }
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    Nap(absl::Milliseconds(10));
  }
}

}  // namespace

int RunQuietly(const std::vector<std::string>& argv, absl::Duration timeout) {
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null_fd < 0) return -1;
  bool timed_out = false;
  const std::optional<int> status =
      RunToCompletion(argv, null_fd, timeout, absl::ZeroDuration(), SIGKILL, &timed_out);
  close(null_fd);
  if (!status || timed_out) return -1;
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

CapturedRun RunCapturing(const std::vector<std::string>& argv, absl::Duration timeout,
                         absl::Duration grace, int death_signal) {
  CapturedRun run;
  const int fd = memfd_create("qnet-captured-output", MFD_CLOEXEC);
  if (fd < 0) {
    run.output = absl::StrCat("cannot create a file for the output: ", strerror(errno));
    return run;
  }
  const std::optional<int> status =
      RunToCompletion(argv, fd, timeout, grace, death_signal, &run.timed_out);
  if (!status) {
    close(fd);
    run.output = absl::StrCat("cannot run ", argv.empty() ? "" : argv[0]);
    return run;
  }
  if (WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  if (WIFSIGNALED(*status)) run.signal = WTERMSIG(*status);
  constexpr off_t kKeep = 64 * 1024;
  const off_t size = lseek(fd, 0, SEEK_END);
  off_t at = size > kKeep ? size - kKeep : 0;
  char buf[8192];
  while (at < size) {
    const ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    run.output.append(buf, static_cast<size_t>(n));
    at += n;
  }
  close(fd);
  return run;
}

std::string TailOfFile(const std::string& path, int max_lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<std::string> lines = absl::StrSplit(ss.str(), '\n');
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  const size_t from = lines.size() > static_cast<size_t>(max_lines) ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) absl::StrAppend(&out, lines[i], "\n");
  return out;
}

}  // namespace qnet::launcher
