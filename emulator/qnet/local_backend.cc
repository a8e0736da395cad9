#include "emulator/qnet/local_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "emulator/qnet/child_group.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;

bool IsExecutable(const std::string& path) {
  std::error_code ec;
  return !path.empty() && fs::is_regular_file(path, ec) && access(path.c_str(), X_OK) == 0;
}

absl::StatusOr<std::string> FindDaemon(const std::string& name, const char* env_var,
                                       const std::string& self_dir) {
  if (const char* env = std::getenv(env_var); env != nullptr && *env != '\0') {
    if (IsExecutable(env)) return std::string(env);
    return absl::NotFoundError(
        absl::StrCat("$", env_var, " is set to '", env, "', which is not an executable file"));
  }
  std::vector<std::string> tried = {
      absl::StrCat(self_dir, "/", name),
      absl::StrCat(self_dir, "/../", name, "/", name),
  };
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      tried.push_back(absl::StrCat(dir, "/", name));
    }
  }
  for (const std::string& candidate : tried) {
    if (IsExecutable(candidate)) return fs::weakly_canonical(candidate).string();
  }
  return absl::NotFoundError(absl::StrCat(
      "cannot find the ", name, " binary (looked in ", self_dir, ", ", self_dir, "/../", name,
      ", $PATH; set $", env_var, " to choose one); build it with `make -C build ", name, "`"));
}

std::string FormatSeconds(double s) { return absl::StrFormat("%.9g", s); }

// Aborted: qworld failed or the launcher was interrupted; `ended` says how.
absl::Status WaitForSocket(ChildGroup& group, const std::string& path, absl::Duration limit,
                           WaitResult* ended) {
  const absl::Time give_up = absl::Now() + limit;
  while (true) {
    std::error_code ec;
    if (fs::exists(path, ec)) return absl::OkStatus();
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError(absl::StrCat("qworld did not create its socket ", path,
                                                      " within ", absl::FormatDuration(limit)));
    }
    WaitResult r = group.Wait(absl::Now() + absl::Milliseconds(20));
    if (r.end != WaitEnd::kTimedOut) {
      if (r.end == WaitEnd::kAllExited)
        return absl::InternalError("qworld exited before it opened its socket");
      *ended = r;
      return absl::AbortedError("stopped");
    }
  }
}

}  // namespace

std::string SelfDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

absl::StatusOr<DaemonPaths> FindDaemons(const std::string& self_dir) {
  DaemonPaths paths;
  absl::StatusOr<std::string> qworld = FindDaemon("qworld", "QNET_QWORLD", self_dir);
  if (!qworld.ok()) return qworld.status();
  absl::StatusOr<std::string> qnode = FindDaemon("qnode", "QNET_QNODE", self_dir);
  if (!qnode.ok()) return qnode.status();
  paths.qworld = *qworld;
  paths.qnode = *qnode;
  return paths;
}

std::vector<std::string> CommonDaemonFlags(const DaemonSettings& settings) {
  std::vector<std::string> flags = {"--out", settings.out_dir};
  if (settings.seed) {
    flags.push_back("--seed");
    flags.push_back(absl::StrCat(*settings.seed));
  }
  if (settings.duration_s) {
    flags.push_back("--duration");
    flags.push_back(FormatSeconds(*settings.duration_s));
  }
  return flags;
}

std::string QworldSocketPath(const std::string& out_dir) {
  std::string path = out_dir + "/qworld.sock";
  if (path.size() < sizeof(sockaddr_un{}.sun_path)) return path;
  return absl::StrCat("/tmp/qnet-", getpid(), "-qworld.sock");
}

std::string LoopbackAddress(size_t node_index) {
  return absl::StrCat("127.0.", 1 + node_index / 254, ".", 1 + node_index % 254);
}

absl::StatusOr<int> FreeTcpPort(const std::string& address) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("not an IPv4 address: ", address));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  socklen_t len = sizeof sa;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    const int e = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot bind a port on ", address, ": ", strerror(e)));
  }
  close(fd);
  return static_cast<int>(ntohs(sa.sin_port));
}

absl::Status CheckNodeNamesUsable(const Topology& topology) {
  for (const NodeSpec& node : topology.nodes) {
    if (node.name.empty() || node.name == "qworld" || node.name == "." || node.name == ".." ||
        node.name.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
            std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          topology.source, ":", node.line, ": node name '", node.name,
          "' cannot be run as a process: use letters, digits, '-', '_' or '.', and not 'qworld'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalPlan> PlanLocal(const Topology& topology, const DaemonSettings& settings,
                                    const DaemonPaths& daemons) {
  if (absl::Status s = CheckNodeNamesUsable(topology); !s.ok()) return s;
  if (topology.nodes.size() > 254 * 254)
    return absl::InvalidArgumentError("too many nodes for the local backend");
  LocalPlan plan;
  plan.socket_path = QworldSocketPath(settings.out_dir);
  plan.qworld_log_path = settings.out_dir + "/logs/qworld.log";
  plan.qworld_argv = {daemons.qworld, "--topology", settings.topology_path, "--socket",
                      plan.socket_path};
  for (std::string& flag : CommonDaemonFlags(settings)) plan.qworld_argv.push_back(std::move(flag));

  for (size_t i = 0; i < topology.nodes.size(); ++i) {
    LocalNode node;
    node.name = topology.nodes[i].name;
    node.address = LoopbackAddress(i);
    absl::StatusOr<int> port = FreeTcpPort(node.address);
    if (!port.ok()) return port.status();
    node.port = *port;
    node.log_path = absl::StrCat(settings.out_dir, "/logs/", node.name, ".log");
    plan.nodes.push_back(std::move(node));
  }
  for (LocalNode& node : plan.nodes) {
    node.argv = {daemons.qnode,
                 "--topology",
                 settings.topology_path,
                 "--node",
                 node.name,
                 "--qworld",
                 "unix:" + plan.socket_path,
                 "--listen",
                 absl::StrCat(node.address, ":", node.port)};
    for (const LinkSpec& link : topology.links) {
      if (link.a != node.name && link.b != node.name) continue;
      const std::string& neighbour = link.a == node.name ? link.b : link.a;
      for (const LocalNode& other : plan.nodes) {
        if (other.name != neighbour) continue;
        node.argv.push_back("--peer");
        node.argv.push_back(absl::StrCat(neighbour, "=", other.address, ":", other.port));
      }
    }
    for (std::string& flag : CommonDaemonFlags(settings)) node.argv.push_back(std::move(flag));
  }
  return plan;
}

namespace {

std::string LogHint(const std::string& log_path) {
  std::string hint = absl::StrCat("; its log is ", log_path);
  const std::string tail = TailOfFile(log_path, 5);
  if (!tail.empty()) absl::StrAppend(&hint, ", ending:\n", tail);
  return hint;
}

// Turns how Wait() ended into the launcher's error, after killing the group.
absl::Status Finish(ChildGroup& group, const WaitResult& r, absl::Duration wall_timeout) {
  switch (r.end) {
    case WaitEnd::kAllExited:
      return absl::OkStatus();
    case WaitEnd::kChildFailed: {
      group.KillAll();
      return absl::AbortedError(absl::StrCat(r.failed->name, " ", r.failed->Describe(),
                                             " (the other processes were stopped)",
                                             LogHint(r.failed->log_path)));
    }
    case WaitEnd::kTimedOut: {
      std::vector<std::string> running;
      for (const ChildSpec& spec : group.Running()) {
        running.push_back(absl::StrCat(spec.name, " (log ", spec.log_path, ")"));
      }
      group.KillAll();
      return absl::DeadlineExceededError(
          absl::StrCat("the run did not finish within its wall-time limit of ",
                       absl::FormatDuration(wall_timeout),
                       "; stopped: ", running.empty() ? "nothing" : absl::StrJoin(running, ", ")));
    }
    case WaitEnd::kInterrupted: {
      group.KillAll();
      return absl::CancelledError(absl::StrCat("interrupted by ", strsignal(r.interrupt_signal),
                                               "; every process of the run was stopped"));
    }
  }
  return absl::InternalError("unreachable");
}

}  // namespace

absl::Status RunLocal(const Topology& topology, const LocalPlan& plan, const std::string& out_dir,
                      absl::Duration wall_timeout, ProgressPrinter* printer) {
  std::error_code ec;
  fs::create_directories(out_dir + "/logs", ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", out_dir, "/logs: ", ec.message()));
  fs::remove(plan.socket_path, ec);

  const absl::Time deadline = absl::Now() + wall_timeout;
  ChildGroup group;
  absl::Status spawned = group.Spawn(ChildSpec{"qworld", plan.qworld_argv, plan.qworld_log_path});
  if (!spawned.ok()) return spawned;
  WaitResult ended;
  if (absl::Status s = WaitForSocket(group, plan.socket_path, absl::Seconds(10), &ended); !s.ok()) {
    if (absl::IsAborted(s)) return Finish(group, ended, wall_timeout);
    group.KillAll();
    return absl::Status(s.code(), absl::StrCat(s.message(), LogHint(plan.qworld_log_path)));
  }
  for (const LocalNode& node : plan.nodes) {
    spawned = group.Spawn(ChildSpec{"qnode " + node.name, node.argv, node.log_path});
    if (!spawned.ok()) {
      group.KillAll();
      return spawned;
    }
  }

  RunProgress progress(topology, out_dir);
  auto tick = [&] {
    if (printer != nullptr) printer->Print(progress.Poll());
  };
  WaitResult r = group.Wait(deadline, tick);
  if (printer != nullptr) {
    if (r.end == WaitEnd::kAllExited) printer->Print(progress.Poll());
    printer->Finish();
  }
  absl::Status status = Finish(group, r, wall_timeout);
  fs::remove(plan.socket_path, ec);
  return status;
}

}  // namespace qnet::launcher
