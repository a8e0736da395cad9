// qnode: one emulated node as one process (DESIGN.md, "Process model"). See
// node_daemon.h for what it does.
//
//   qnode --topology FILE --node NAME --qworld unix:PATH|tcp:HOST:PORT
//         --listen HOST:PORT --peer NEIGHBOUR=HOST:PORT (repeatable)
//         --out DIR [--seed N] [--duration S] [--app_socket PATH]
//
// Exit status: 0 when the run ended normally, 1 on an error, 128 + signal
// number after SIGINT/SIGTERM.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "emulator/qnode/node_daemon.h"
#include "stack/event_runtime.h"
#include "stack/topology_loader.h"

ABSL_FLAG(std::string, topology, "", "topology file (XML, specs/topology.md)");
ABSL_FLAG(std::string, node, "", "name of the node this process runs");
ABSL_FLAG(std::string, qworld, "", "qworld's address: unix:PATH or tcp:HOST:PORT");
ABSL_FLAG(std::string, listen, "", "HOST:PORT on which neighbours connect to this node");
ABSL_FLAG(std::vector<std::string>, peer, {},
          "NEIGHBOUR=HOST:PORT of a neighbour this node dials; repeat the flag (or separate with "
          "commas)");
ABSL_FLAG(std::string, out, ".", "results folder: the trace goes to OUT/nodes/NAME.jsonl");
ABSL_FLAG(std::string, trace_format, "json",
          "json: OUT/nodes/NAME.jsonl; binary: OUT/nodes/NAME.pb, cheaper per record "
          "(specs/topology.md RES-1a)");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt, "seed (default: the topology's)");
ABSL_FLAG(std::optional<double>, duration, std::nullopt,
          "emulated seconds to run (default: the topology's)");
ABSL_FLAG(double, connect_timeout, 30, "wall seconds allowed to reach qworld and each neighbour");
ABSL_FLAG(std::string, app_socket, "",
          "Unix socket path on which the node serves its transport to apps (specs/app-api.md); "
          "empty: none");
ABSL_FLAG(double, link_margin_ms, 2,
          "least link-layer scheduling margin in wall milliseconds (LINK-20: above frame jitter)");
ABSL_FLAG(double, hello_interval_ms, 250,
          "least interval between the router's hellos, in wall milliseconds (NET-R-6a)");
ABSL_FLAG(double, dead_interval_ms, 2000,
          "least dead interval of a link without hellos, in wall milliseconds (NET-R-6a)");
ABSL_FLAG(double, hello_timeout_s, 10,
          "wall seconds a new neighbour connection has to say Hello before it is closed");

namespace {

int Fail(const std::string& node, const std::string& message) {
  std::fprintf(stderr, "qnode %s: %s\n", node.c_str(), message.c_str());
  return 1;
}

// absl keeps only the last occurrence of a flag; --peer is repeatable, so its
// values are collected from argv before parsing.
std::vector<std::string> CollectPeers(int argc, char** argv) {
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (std::strcmp(arg, "--") == 0) break;
    for (const char* prefix : {"--peer=", "-peer="}) {
      if (std::strncmp(arg, prefix, std::strlen(prefix)) == 0)
        values.emplace_back(arg + std::strlen(prefix));
    }
    if ((std::strcmp(arg, "--peer") == 0 || std::strcmp(arg, "-peer") == 0) && i + 1 < argc) {
      values.emplace_back(argv[++i]);
    }
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "qnode --topology FILE --node NAME --qworld unix:PATH|tcp:HOST:PORT --listen HOST:PORT "
      "--peer NEIGHBOUR=HOST:PORT ... --out DIR [--seed N] [--duration S]");
  const std::vector<std::string> peer_values = CollectPeers(argc, argv);
  absl::ParseCommandLine(argc, argv);
  const std::string name = absl::GetFlag(FLAGS_node);
  if (name.empty()) return Fail(name, "--node is required");
  if (absl::GetFlag(FLAGS_topology).empty()) return Fail(name, "--topology is required");
  if (absl::GetFlag(FLAGS_qworld).empty()) return Fail(name, "--qworld is required");
  absl::StatusOr<std::map<std::string, std::string>> peers = qnet::qnode::ParsePeers(peer_values);
  if (!peers.ok()) return Fail(name, std::string(peers.status().message()));
  absl::StatusOr<qnet::Topology> topology = qnet::LoadTopologyFile(absl::GetFlag(FLAGS_topology));
  if (!topology.ok()) return Fail(name, std::string(topology.status().message()));

  qnet::qnode::NodeDaemonOptions options;
  options.node = name;
  options.qworld_address = absl::GetFlag(FLAGS_qworld);
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.peers = *std::move(peers);
  options.out_dir = absl::GetFlag(FLAGS_out);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.duration_s = absl::GetFlag(FLAGS_duration);
  options.connect_timeout = absl::Seconds(absl::GetFlag(FLAGS_connect_timeout));
  options.link_margin_wall = absl::Milliseconds(absl::GetFlag(FLAGS_link_margin_ms));
  options.app_socket = absl::GetFlag(FLAGS_app_socket);
  for (double v : {absl::GetFlag(FLAGS_hello_interval_ms), absl::GetFlag(FLAGS_dead_interval_ms),
                   absl::GetFlag(FLAGS_hello_timeout_s)}) {
    if (!(v >= 0) || !std::isfinite(v)) {
      return Fail(name, "--hello_interval_ms, --dead_interval_ms and --hello_timeout_s must be "
                        "finite and not negative");
    }
  }
  options.hello_interval_wall = absl::Milliseconds(absl::GetFlag(FLAGS_hello_interval_ms));
  options.dead_interval_wall = absl::Milliseconds(absl::GetFlag(FLAGS_dead_interval_ms));
  options.hello_timeout = absl::Seconds(absl::GetFlag(FLAGS_hello_timeout_s));
  const std::string format = absl::GetFlag(FLAGS_trace_format);
  if (format != "json" && format != "binary") {
    std::fprintf(stderr, "qnode: --trace_format must be json or binary, not '%s'\n",
                 format.c_str());
    return 2;
  }
  options.binary_trace = format == "binary";

  absl::StatusOr<std::unique_ptr<qnet::EventRuntime>> runtime = qnet::EventRuntime::Create();
  if (!runtime.ok()) return Fail(name, std::string(runtime.status().message()));
  qnet::EventRuntime* rt = runtime->get();
  absl::StatusOr<std::unique_ptr<qnet::qnode::NodeDaemon>> daemon =
      qnet::qnode::NodeDaemon::Create(rt, *std::move(topology), options);
  if (!daemon.ok()) return Fail(name, std::string(daemon.status().message()));

  int exit_code = 0;
  bool signalled = false;
  (*daemon)->set_on_finished([&](int code) {
    if (!signalled) exit_code = code;
    rt->Stop();
  });
  absl::Status signals = rt->HandleTerminationSignals([&](int signo) {
    if (signalled) {  // second signal: leave at once
      rt->Stop();
      return;
    }
    signalled = true;
    exit_code = 128 + signo;
    (*daemon)->Shutdown(absl::StrCat("interrupted by signal ", signo), exit_code);
  });
  if (!signals.ok()) return Fail(name, std::string(signals.message()));
  if (absl::Status s = rt->Run(); !s.ok()) return Fail(name, std::string(s.message()));
  daemon->reset();
  return exit_code;
}
