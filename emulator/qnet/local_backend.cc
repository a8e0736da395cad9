#include "emulator/qnet/local_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
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

// The node's port of the app's listening side, as node::AssignPorts gives it
// (kept in step: explicit ports, then the first free from 1000 per node,
// connections first, then apps, in file order).
std::vector<uint32_t> AppPorts(const Topology& topology) {
  std::map<std::string, std::set<uint32_t>> used;
  for (const ConnectionSpec& c : topology.connections)
    if (c.port != 0) used[c.to].insert(c.port);
  for (const AppSpec& a : topology.apps)
    if (a.port != 0) used[a.peer].insert(a.port);
  auto assign = [&used](const std::string& node, uint32_t port) {
    if (port != 0) return port;
    std::set<uint32_t>& taken = used[node];
    uint32_t p = 1000;
    while (taken.contains(p)) ++p;
    taken.insert(p);
    return p;
  };
  for (const ConnectionSpec& c : topology.connections) assign(c.to, c.port);
  std::vector<uint32_t> ports;
  for (const AppSpec& a : topology.apps) ports.push_back(assign(a.peer, a.port));
  return ports;
}

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

absl::Status FindApps(const Topology& topology, const std::string& self_dir, DaemonPaths* daemons) {
  for (const AppSpec& app : topology.apps) {
    if (daemons->apps.contains(app.kind)) continue;
    const std::string binary = "qnet-" + app.kind;
    std::string env_var = "QNET_APP_" + app.kind;
    for (char& ch : env_var) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (const char* env = std::getenv(env_var.c_str()); env != nullptr && *env != '\0') {
      if (!IsExecutable(env)) {
        return absl::NotFoundError(
            absl::StrCat("$", env_var, " is set to '", env, "', which is not an executable file"));
      }
      daemons->apps[app.kind] = env;
      continue;
    }
    std::vector<std::string> tried = {
        absl::StrCat(self_dir, "/", binary),
        absl::StrCat(self_dir, "/../../apps/", app.kind, "/", binary),
    };
    if (const char* path = std::getenv("PATH"); path != nullptr) {
      for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty()))
        tried.push_back(absl::StrCat(dir, "/", binary));
    }
    for (const std::string& candidate : tried) {
      if (IsExecutable(candidate)) {
        daemons->apps[app.kind] = fs::weakly_canonical(candidate).string();
        break;
      }
    }
    if (!daemons->apps.contains(app.kind)) {
      return absl::NotFoundError(absl::StrCat(topology.source, ":", app.line, ": app kind '",
                                              app.kind, "': cannot find ", binary,
                                              " (looked next to qnet, in the build tree's apps/",
                                              app.kind, ", on $PATH; set $", env_var, ")"));
    }
  }
  return absl::OkStatus();
}

std::string AppSocketPath(const std::string& out_dir, const std::string& node) {
  std::string path = absl::StrCat(out_dir, "/nodes/", node, ".app.sock");
  if (path.size() < sizeof(sockaddr_un{}.sun_path)) return path;
  return absl::StrCat("/tmp/qnet-", getpid(), "-", node, ".app.sock");
}

std::vector<LocalApp> PlanApps(const Topology& topology, const DaemonSettings& settings,
                               const DaemonPaths& daemons,
                               const std::function<std::string(const std::string&)>& app_socket_of,
                               const AddressOf& address_of) {
  std::vector<LocalApp> apps;
  const std::vector<uint32_t> ports = AppPorts(topology);
  const uint64_t seed = settings.seed.value_or(topology.seed);
  for (size_t i = 0; i < topology.apps.size(); ++i) {
    const AppSpec& spec = topology.apps[i];
    const bool teleport = spec.kind == "teleport";
    const bool qkd = spec.kind == kQkdKind;
    const bool ab = spec.kind == "chsh" || qkd;
    const std::string init_role = teleport ? "sender" : ab ? "a" : "initiator";
    const std::string resp_role = teleport ? "receiver" : ab ? "b" : "responder";
    const bool init_reports = !teleport;
    const uint32_t own_port = 41000 + static_cast<uint32_t>(i);  // kAppInitiatorPortBase
    auto it = daemons.apps.find(spec.kind);
    const std::string binary = it == daemons.apps.end() ? "qnet-" + spec.kind : it->second;
    for (bool initiator : {false, true}) {  // the responder first: it binds the port
      LocalApp app;
      app.app = spec.name;
      app.kind = spec.kind;
      app.role = initiator ? init_role : resp_role;
      app.node = initiator ? spec.node : spec.peer;
      app.name = absl::StrCat(spec.name, " ", app.role);
      app.reports = initiator == init_reports;
      app.start_s = spec.start_s;
      app.log_path = absl::StrCat(settings.out_dir, "/logs/app-", spec.name, "-", app.role, ".log");
      app.result_path =
          app.reports ? absl::StrCat(settings.out_dir, "/apps/", spec.name, ".json")
                      : absl::StrCat(settings.out_dir, "/apps/", spec.name, ".", app.role, ".json");
      app.argv = {binary,
                  "--app_socket",
                  app_socket_of(app.node),
                  "--role",
                  app.role,
                  "--port",
                  absl::StrCat(initiator ? own_port : ports[i]),
                  "--pairs",
                  absl::StrCat(spec.pairs),
                  "--min_fidelity",
                  FormatSeconds(spec.min_fidelity),
                  "--seed",
                  absl::StrCat(seed + i + (initiator ? 0 : 1000)),
                  "--result",
                  app.result_path};
      if (initiator) {
        app.argv.insert(app.argv.end(),
                        {"--peer", spec.peer, "--peer_port", absl::StrCat(ports[i])});
      }
      for (const auto& [name, value] : spec.params) {
        const std::string flag = absl::StrReplaceAll(name, {{"-", "_"}});  // TOPO-39
        if (qkd && (flag == "kme_http_port" || flag == "kme_https_port")) continue;
        app.argv.push_back(absl::StrCat("--", flag, "=", value));
      }
      if (qkd) {
        for (std::string& flag : QkdFlags(topology, i, app.role, settings.out_dir, address_of))
          app.argv.push_back(std::move(flag));
      }
      apps.push_back(std::move(app));
    }
  }
  return apps;
}

std::vector<std::string> CommonDaemonFlags(const DaemonSettings& settings) {
  // RES-1a: the daemons write binary traces while they run; the launcher
  // turns them into JSON lines once they are done.
  std::vector<std::string> flags = {"--out", settings.out_dir, "--trace_format", "binary"};
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
    node.app_socket = AppSocketPath(settings.out_dir, node.name);
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
    node.argv.push_back("--app_socket");
    node.argv.push_back(node.app_socket);
    for (std::string& flag : CommonDaemonFlags(settings)) node.argv.push_back(std::move(flag));
  }
  std::map<std::string, std::string> addresses;
  for (const LocalNode& node : plan.nodes) addresses[node.name] = node.address;
  const AddressOf address_of = [addresses](const std::string& node) {
    auto it = addresses.find(node);
    return it == addresses.end() ? std::string("127.0.0.1") : it->second;
  };
  if (absl::Status s = CheckQkdApps(topology); !s.ok()) return s;
  plan.apps = PlanApps(
      topology, settings, daemons,
      [&settings](const std::string& node) { return AppSocketPath(settings.out_dir, node); },
      address_of);
  plan.key_fetch = KeyFetchCommands(topology, settings.out_dir, address_of);
  return plan;
}

namespace {

std::string LogHint(const std::string& log_path) {
  std::string hint = absl::StrCat("; its log is ", log_path);
  const std::string tail = TailOfFile(log_path, 5);
  if (!tail.empty()) absl::StrAppend(&hint, ", ending:\n", tail);
  return hint;
}

// An app that left no result file gets one saying why (the summary reads it).
void WriteAppFailure(const LocalApp& app, const std::string& why) {
  std::string escaped;
  for (char ch : why) {
    if (ch == '"' || ch == '\\') escaped.push_back('\\');
    if (ch == '\n') {
      escaped += "\\n";
      continue;
    }
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    escaped.push_back(ch);
  }
  std::ofstream out(app.result_path, std::ios::trunc);
  out << absl::StrCat(R"({"app": ")", app.kind, R"(", "role": ")", app.role,
                      R"(", "ok": false, "error": ")", escaped, "\"}\n");
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

// --serve-keys: the KMEs run until SIGINT/SIGTERM (the normal end: OK) or
// until every app has exited.
absl::Status ServeKeys(ChildGroup& apps, const LocalPlan& plan, std::FILE* out) {
  if (out != nullptr) {
    std::fprintf(out,
                 "qkd: serving keys (qworld and the nodes have stopped); Ctrl-C to stop. "
                 "Fetch keys with\n%s",
                 FormatKeyFetchCommands(plan.key_fetch).c_str());
    std::fflush(out);
  }
  while (apps.AnyRunning()) {
    WaitResult w = apps.Wait(absl::InfiniteFuture());
    if (w.end == WaitEnd::kInterrupted) {
      ChildGroup::ClearInterrupt();
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunLocal(const Topology& topology, const LocalPlan& plan, const std::string& out_dir,
                      absl::Duration wall_timeout, ProgressPrinter* printer,
                      const ServeOptions& serve) {
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

  // App programs: a group of their own, so that an app's failure is the app's
  // result (in its result file) rather than the run's.
  ChildGroup apps;
  if (!plan.apps.empty()) fs::create_directories(out_dir + "/apps", ec);
  std::map<std::string, std::string> address_of_node;
  for (const LocalNode& node : plan.nodes) address_of_node[node.name] = node.address;
  if (absl::Status s = PrepareQkd(topology, out_dir,
                                  [&](const std::string& node) { return address_of_node[node]; });
      !s.ok()) {
    group.KillAll();
    return s;
  }
  for (const LocalApp& app : plan.apps) {
    absl::Status s = apps.Spawn(ChildSpec{"app " + app.name, app.argv, app.log_path});
    if (!s.ok()) WriteAppFailure(app, absl::StrCat("cannot start: ", s.message()));
  }
  if (serve.out != nullptr && !plan.key_fetch.empty()) {
    std::fprintf(serve.out, "qkd: once keys are made, SAEs fetch them from the KMEs with\n%s",
                 FormatKeyFetchCommands(plan.key_fetch).c_str());
    std::fflush(serve.out);
  }

  RunProgress progress(topology, out_dir);
  auto tick = [&] {
    if (printer != nullptr) printer->Print(progress.Poll());
    if (apps.AnyRunning()) (void)apps.Wait(absl::Now());  // reap what has finished
  };
  WaitResult r = group.Wait(deadline, tick);
  if (printer != nullptr) {
    if (r.end == WaitEnd::kAllExited) printer->Print(progress.Poll());
    printer->Finish();
  }
  absl::Status status = Finish(group, r, wall_timeout);
  // The nodes are gone: apps still running lost their socket and finish on
  // their own, or (qkd) write their results and keep serving their KMEs; give
  // them a moment, then stop them.
  auto results_written = [&] {
    for (const LocalApp& app : plan.apps)
      if (!fs::exists(app.result_path, ec)) return false;
    return true;
  };
  const absl::Time grace_end = absl::Now() + kAppGrace;
  while (apps.AnyRunning() && !results_written() && absl::Now() < grace_end &&
         ChildGroup::PendingInterrupt() == 0)
    (void)apps.Wait(std::min(grace_end, absl::Now() + absl::Milliseconds(50)));
  if (status.ok() && serve.serve_keys && apps.AnyRunning()) {
    status = serve.report ? serve.report() : absl::OkStatus();
    if (status.ok()) status = ServeKeys(apps, plan, serve.out);
  }
  if (apps.AnyRunning()) apps.KillAll(absl::Seconds(2));
  for (const ChildExit& exit : apps.exits()) {
    for (const LocalApp& app : plan.apps) {
      if ("app " + app.name != exit.name || fs::exists(app.result_path, ec)) continue;
      WriteAppFailure(app, absl::StrCat(exit.name, " ", exit.Describe(), " without a result",
                                        LogHint(app.log_path)));
    }
  }
  fs::remove(plan.socket_path, ec);
  for (const LocalNode& node : plan.nodes) fs::remove(node.app_socket, ec);
  return status;
}

}  // namespace qnet::launcher
