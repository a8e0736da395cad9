#include "emulator/qnet/mininet_backend.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "emulator/qnet/child_group.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;
using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

Value Str(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}
Value Num(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}
Value Strings(const std::vector<std::string>& items) {
  Value v;
  ListValue* list = v.mutable_list_value();
  for (const std::string& s : items) *list->add_values() = Str(s);
  return v;
}
Value Object(std::initializer_list<std::pair<const char*, Value>> fields) {
  Value v;
  Struct* s = v.mutable_struct_value();
  for (const auto& [key, value] : fields) (*s->mutable_fields())[key] = value;
  return v;
}

// Can a child process get a network namespace of its own?
bool CanUnshareNet() {
  const pid_t pid = fork();
  if (pid == 0) _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
  if (pid < 0) return false;
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string LinkSubnetPrefix(size_t link_index) {
  const size_t n = link_index + 1;
  return absl::StrCat("10.", n / 256, ".", n % 256, ".");
}

// "q"/"p" + the pid in base 36, always five digits (pid_max is at most 2^22).
std::string PidTag(char letter) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string tag(6, '0');
  tag[0] = letter;
  unsigned long v = static_cast<unsigned long>(getpid());
  for (int i = 5; i >= 1; --i, v /= 36) tag[i] = kDigits[v % 36];
  return tag;
}

constexpr char kDriverPrefix[] = "qnet_mininet: ";
// The driver ends its start-up and probe failure lines with this; the
// launcher's own hint replaces it.
constexpr char kDriverHint[] = "; this machine cannot run Mininet hosts (use --backend local)";
constexpr char kHint[] = "; use --backend local (no root needed) or --backend sim";

// The driver's reason in its output: the last line it printed itself, without
// its prefix and its hint.
std::string DriverReason(const std::string& output) {
  std::string reason;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, kDriverPrefix)) reason = std::string(line);
  }
  if (reason.empty()) {
    std::vector<absl::string_view> lines = absl::StrSplit(output, '\n', absl::SkipWhitespace());
    if (!lines.empty()) reason = std::string(absl::StripAsciiWhitespace(lines.back()));
  }
  absl::string_view r = reason;
  absl::ConsumeSuffix(&r, kDriverHint);
  return std::string(r);
}

// Can Mininet start a host here? The driver's --probe (TOPO-46).
absl::Status ProbeMininet(const std::string& driver) {
  const std::vector<std::string> argv = {kMininetPython, driver, "--probe", MininetProbeTag()};
  // The driver keeps its own deadline and then tears down (bounded); this
  // outer limit only catches a driver that hangs. SIGTERM (its teardown) if
  // the caller dies.
  const CapturedRun probe =
      RunCapturing(argv, kMininetProbeTimeout + absl::Seconds(30), absl::Seconds(10), SIGTERM);
  if (probe.exit_code == 0) return absl::OkStatus();
  std::string how;
  if (probe.timed_out) {
    how = absl::StrCat("did not finish within ",
                       absl::FormatDuration(kMininetProbeTimeout + absl::Seconds(30)));
  } else if (probe.signal != 0) {
    how = absl::StrCat("was killed by signal ", probe.signal, " (", strsignal(probe.signal), ")");
  } else {
    how = absl::StrCat("exited with status ", probe.exit_code);
  }
  std::string reason = DriverReason(probe.output);
  if (reason.empty()) reason = "the probe printed nothing";
  return absl::FailedPreconditionError(
      absl::StrCat("Mininet cannot start a host on this machine: ", reason, " (`",
                   absl::StrJoin(argv, " "), "` ", how, ")", kHint));
}

}  // namespace

absl::Status CheckMininetPrerequisites(const std::string& driver_dir) {
  const std::string hint = kHint;
  if (geteuid() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the mininet backend needs root (it creates network namespaces and veth links)", hint));
  }
  if (!CanUnshareNet()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the mininet backend needs network namespaces, but unshare(CLONE_NEWNET) failed here",
        hint));
  }
  if (RunQuietly({"ip", "netns", "list"}) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("`ip netns list` failed: install iproute2 (.ci/install-deps)", hint));
  }
  if (RunQuietly({kMininetPython, "-c", "import mininet.net, mininet.link"}) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        kMininetPython,
        " cannot import mininet: install the Debian package `mininet` (.ci/install-deps)", hint));
  }
  if (RunQuietly({"sh", "-c", "command -v mnexec"}) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("mnexec (from the mininet package) is not on $PATH", hint));
  }
  const std::string driver = absl::StrCat(driver_dir, "/", kMininetDriver);
  std::error_code ec;
  if (!fs::is_regular_file(driver, ec)) {
    return absl::NotFoundError(
        absl::StrCat("the Mininet driver ", driver,
                     " is missing (CMake copies emulator/mininet/qnet_mininet.py there)"));
  }
  return ProbeMininet(driver);
}

std::string MininetRunTag() { return PidTag('q'); }
std::string MininetProbeTag() { return PidTag('p'); }

absl::Duration MininetStartupTimeout(const Topology& topology) {
  return absl::Seconds(20) + absl::Milliseconds(500) * static_cast<int64_t>(topology.nodes.size()) +
         absl::Milliseconds(250) * static_cast<int64_t>(topology.links.size());
}

absl::Status MininetStartupError(const std::string& out_dir) {
  const std::string path = out_dir + "/logs/mininet-startup.txt";
  std::string reason = DriverReason(TailOfFile(path, 1));
  if (reason.empty()) {
    reason = absl::StrCat("Mininet could not start the network (the driver exited with status ",
                          kMininetStartupFailed, " and left no reason in ", path, ")");
  }
  return absl::FailedPreconditionError(absl::StrCat(reason, kHint));
}

std::string MininetNodeAddress(const Topology& topology, const std::string& node) {
  for (size_t k = 0; k < topology.links.size(); ++k) {
    if (topology.links[k].a == node) return LinkSubnetPrefix(k) + "1";
    if (topology.links[k].b == node) return LinkSubnetPrefix(k) + "2";
  }
  return "";
}

absl::StatusOr<std::string> MininetPlanJson(const Topology& topology,
                                            const DaemonSettings& settings,
                                            const DaemonPaths& daemons, const std::string& tag,
                                            absl::Duration wall_timeout, bool serve_keys) {
  if (absl::Status s = CheckNodeNamesUsable(topology); !s.ok()) return s;
  if (absl::Status s = CheckQkdApps(topology); !s.ok()) return s;
  const AddressOf address_of = [&topology](const std::string& node) {
    return MininetNodeAddress(topology, node);
  };
  if (topology.nodes.size() > 999)
    return absl::InvalidArgumentError("the mininet backend runs at most 999 nodes");
  if (topology.links.size() >= 65535)
    return absl::InvalidArgumentError("the mininet backend runs at most 65534 links");

  std::map<std::string, std::string> host_of;
  for (size_t i = 0; i < topology.nodes.size(); ++i)
    host_of[topology.nodes[i].name] = absl::StrCat(tag, "n", i + 1);
  // Interfaces are numbered per host; Linux allows 15 characters.
  std::map<std::string, int> interfaces;
  std::map<std::string, std::string> ip_on_link;          // "node|link" -> address
  std::map<std::string, std::vector<std::string>> peers;  // node -> --peer values

  Value links;
  links.mutable_list_value();
  for (size_t k = 0; k < topology.links.size(); ++k) {
    const LinkSpec& link = topology.links[k];
    const std::string prefix = LinkSubnetPrefix(k);
    const std::string a_ip = prefix + "1", b_ip = prefix + "2";
    const std::string a_intf = absl::StrCat(host_of[link.a], "-", ++interfaces[link.a]);
    const std::string b_intf = absl::StrCat(host_of[link.b], "-", ++interfaces[link.b]);
    if (a_intf.size() > 15 || b_intf.size() > 15) {
      return absl::InvalidArgumentError(absl::StrCat(
          "too many links at one node for Mininet interface names (", a_intf, ", ", b_intf, ")"));
    }
    *links.mutable_list_value()->add_values() = Object({{"name", Str(link.name)},
                                                        {"a", Str(link.a)},
                                                        {"b", Str(link.b)},
                                                        {"subnet", Str(prefix + "0/30")},
                                                        {"a_ip", Str(a_ip)},
                                                        {"b_ip", Str(b_ip)},
                                                        {"a_intf", Str(a_intf)},
                                                        {"b_intf", Str(b_intf)}});
    peers[link.a].push_back(absl::StrCat(link.b, "=", b_ip, ":", kMininetPort));
    peers[link.b].push_back(absl::StrCat(link.a, "=", a_ip, ":", kMininetPort));
  }

  const std::string socket_path = QworldSocketPath(settings.out_dir);
  std::vector<std::string> qworld_argv = {daemons.qworld, "--topology", settings.topology_path,
                                          "--socket", socket_path};
  for (std::string& flag : CommonDaemonFlags(settings)) qworld_argv.push_back(std::move(flag));

  Value nodes;
  nodes.mutable_list_value();
  for (const NodeSpec& node : topology.nodes) {
    std::vector<std::string> argv = {daemons.qnode,
                                     "--topology",
                                     settings.topology_path,
                                     "--node",
                                     node.name,
                                     "--qworld",
                                     "unix:" + socket_path,
                                     "--listen",
                                     absl::StrCat("0.0.0.0:", kMininetPort)};
    for (const std::string& peer : peers[node.name]) {
      argv.push_back("--peer");
      argv.push_back(peer);
    }
    argv.push_back("--app_socket");
    argv.push_back(AppSocketPath(settings.out_dir, node.name));
    for (std::string& flag : CommonDaemonFlags(settings)) argv.push_back(std::move(flag));
    *nodes.mutable_list_value()->add_values() =
        Object({{"name", Str(node.name)},
                {"host", Str(host_of[node.name])},
                {"argv", Strings(argv)},
                {"log", Str(absl::StrCat(settings.out_dir, "/logs/", node.name, ".log"))}});
  }

  // App programs run in their node's host; the app socket is a file, so it
  // is reachable across namespaces.
  Value apps;
  apps.mutable_list_value();
  for (const LocalApp& app : PlanApps(
           topology, settings, daemons,
           [&settings](const std::string& node) { return AppSocketPath(settings.out_dir, node); },
           address_of)) {
    *apps.mutable_list_value()->add_values() = Object({{"name", Str(app.name)},
                                                       {"node", Str(app.node)},
                                                       {"kind", Str(app.kind)},
                                                       {"role", Str(app.role)},
                                                       {"argv", Strings(app.argv)},
                                                       {"log", Str(app.log_path)},
                                                       {"result", Str(app.result_path)}});
  }

  Value fetch;
  fetch.mutable_list_value();
  for (const KeyFetchCommand& c : KeyFetchCommands(topology, settings.out_dir, address_of)) {
    *fetch.mutable_list_value()->add_values() =
        Object({{"node", Str(c.node)}, {"command", Str(c.command)}});
  }
  Value serve;
  serve.set_bool_value(serve_keys);

  Value plan = Object({
      {"tag", Str(tag)},
      {"out_dir", Str(settings.out_dir)},
      {"socket_path", Str(socket_path)},
      {"wall_timeout_s", Num(absl::ToDoubleSeconds(wall_timeout))},
      {"startup_timeout_s", Num(absl::ToDoubleSeconds(MininetStartupTimeout(topology)))},
      {"startup_failure_file", Str(settings.out_dir + "/logs/mininet-startup.txt")},
      {"duration_s", Num(topology.duration_s)},
      {"time_dilation", Num(topology.time_dilation)},
      {"qworld", Object({{"argv", Strings(qworld_argv)},
                         {"log", Str(settings.out_dir + "/logs/qworld.log")}})},
      {"nodes", nodes},
      {"links", links},
      {"apps", apps},
      {"qkd_fetch", fetch},
      {"serve_keys", serve},
  });
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  if (auto s = google::protobuf::util::MessageToJsonString(plan.struct_value(), &json, options);
      !s.ok()) {
    return absl::InternalError(absl::StrCat("cannot write the plan: ", s.ToString()));
  }
  return json;
}

absl::Status RunMininet(const Topology& topology, const DaemonSettings& settings,
                        const DaemonPaths& daemons, absl::Duration wall_timeout, bool serve_keys) {
  const std::string driver = absl::StrCat(SelfDir(), "/", kMininetDriver);
  std::error_code ec;
  if (!fs::is_regular_file(driver, ec)) {
    return absl::NotFoundError(
        absl::StrCat("the Mininet driver ", driver,
                     " is missing (CMake copies emulator/mininet/qnet_mininet.py there)"));
  }
  fs::create_directories(settings.out_dir + "/logs", ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create ", settings.out_dir, "/logs: ", ec.message()));
  absl::StatusOr<std::string> plan =
      MininetPlanJson(topology, settings, daemons, MininetRunTag(), wall_timeout, serve_keys);
  if (!plan.ok()) return plan.status();
  if (absl::Status s = PrepareQkd(
          topology, settings.out_dir,
          [&topology](const std::string& node) { return MininetNodeAddress(topology, node); });
      !s.ok()) {
    return s;
  }
  const std::string plan_path = settings.out_dir + "/plan.json";
  {
    std::ofstream out(plan_path, std::ios::binary | std::ios::trunc);
    out << *plan << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", plan_path));
  }

  ChildGroup group;
  // SIGTERM if the launcher dies: the driver then still tears the network down.
  if (absl::Status s = group.Spawn(
          ChildSpec{"mininet driver", {kMininetPython, driver, plan_path}, "", SIGTERM});
      !s.ok()) {
    return s;
  }
  // The driver enforces the start-up deadline and the wall timeout itself;
  // this outer limit only catches a driver that hangs, with time for its
  // teardown.
  const absl::Duration teardown = absl::Seconds(60);
  const absl::Duration limit = MininetStartupTimeout(topology) + wall_timeout + teardown;
  // With --serve-keys the driver serves until Ctrl-C, which ends it with
  // status 0 once the run itself is over.
  WaitResult r = group.Wait(serve_keys ? absl::InfiniteFuture() : absl::Now() + limit);
  if (r.end == WaitEnd::kInterrupted || r.end == WaitEnd::kTimedOut) {
    ChildGroup::ClearInterrupt();  // a second Ctrl-C during teardown kills the driver
    group.Signal(SIGTERM);
    WaitResult after = group.Wait(absl::Now() + teardown);
    if (after.end == WaitEnd::kTimedOut || after.end == WaitEnd::kInterrupted) group.KillAll();
    if (serve_keys && after.end == WaitEnd::kAllExited) return absl::OkStatus();
    if (r.end == WaitEnd::kInterrupted) {
      return absl::CancelledError(absl::StrCat("interrupted by ", strsignal(r.interrupt_signal),
                                               "; the Mininet network was torn down"));
    }
    return absl::DeadlineExceededError(
        absl::StrCat("the Mininet driver did not finish within ", absl::FormatDuration(limit)));
  }
  if (r.end == WaitEnd::kChildFailed && !r.failed->signaled &&
      r.failed->exit_code == kMininetStartupFailed) {
    return MininetStartupError(settings.out_dir);
  }
  if (r.end == WaitEnd::kChildFailed) {
    return absl::AbortedError(
        absl::StrCat("the Mininet run failed: the driver ", r.failed->Describe(),
                     " (its reason is printed above; logs are in ", settings.out_dir, "/logs)"));
  }
  return absl::OkStatus();
}

}  // namespace qnet::launcher
