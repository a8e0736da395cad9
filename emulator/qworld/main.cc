// qworld: the physics-emulation daemon of one emulated network (DESIGN.md,
// "Process model"; specs/physical.md). See world_server.h for what it does.
//
//   qworld --topology FILE --socket PATH [--listen-tcp HOST:PORT] --out DIR
//          [--seed N] [--duration S]
//
// Exit status: 0 when the run ended normally, 1 on an error, 128 + signal
// number after SIGINT/SIGTERM.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "emulator/qworld/world_server.h"
#include "stack/event_runtime.h"
#include "stack/topology_loader.h"

ABSL_FLAG(std::string, topology, "", "topology file (XML, specs/topology.md)");
ABSL_FLAG(std::string, socket, "", "Unix socket path the nodes connect to");
ABSL_FLAG(std::string, listen_tcp, "", "also accept nodes on this HOST:PORT");
ABSL_FLAG(std::string, out, ".", "results folder: qworld.jsonl is written here");
ABSL_FLAG(std::string, trace_format, "json",
          "json: OUT/qworld.jsonl; binary: OUT/qworld.pb (specs/topology.md RES-1a)");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt, "seed (default: the topology's)");
ABSL_FLAG(std::optional<double>, duration, std::nullopt,
          "emulated seconds to run (default: the topology's)");
ABSL_FLAG(double, grace, 0.05, "emulated seconds after the duration before Stop is sent");
ABSL_FLAG(double, start_delay_ms, 300, "wall milliseconds from the last Hello to the epoch");
ABSL_FLAG(double, max_start_lag_ms, 5,
          "wall milliseconds before its arrival a batch may start, at the ends' reference time "
          "(specs/physical.md PHYS-B4a)");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "qworld: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "qworld --topology FILE --socket PATH [--listen-tcp HOST:PORT] --out DIR [--seed N] "
      "[--duration S]");
  absl::ParseCommandLine(argc, argv);
  const std::string topology_path = absl::GetFlag(FLAGS_topology);
  if (topology_path.empty()) return Fail("--topology is required");
  if (absl::GetFlag(FLAGS_socket).empty() && absl::GetFlag(FLAGS_listen_tcp).empty()) {
    return Fail("--socket (or --listen-tcp) is required");
  }
  absl::StatusOr<qnet::Topology> topology = qnet::LoadTopologyFile(topology_path);
  if (!topology.ok()) return Fail(std::string(topology.status().message()));

  qnet::qworld::WorldServerOptions options;
  options.socket_path = absl::GetFlag(FLAGS_socket);
  options.listen_tcp = absl::GetFlag(FLAGS_listen_tcp);
  options.out_dir = absl::GetFlag(FLAGS_out);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.duration_s = absl::GetFlag(FLAGS_duration);
  options.grace_s = absl::GetFlag(FLAGS_grace);
  options.start_delay = absl::Milliseconds(absl::GetFlag(FLAGS_start_delay_ms));
  options.max_start_lag_wall = absl::Milliseconds(absl::GetFlag(FLAGS_max_start_lag_ms));
  const std::string format = absl::GetFlag(FLAGS_trace_format);
  if (format != "json" && format != "binary") return Fail("--trace_format must be json or binary");
  options.binary_trace = format == "binary";

  absl::StatusOr<std::unique_ptr<qnet::EventRuntime>> runtime = qnet::EventRuntime::Create();
  if (!runtime.ok()) return Fail(std::string(runtime.status().message()));
  qnet::EventRuntime* rt = runtime->get();
  absl::StatusOr<std::unique_ptr<qnet::qworld::WorldServer>> server =
      qnet::qworld::WorldServer::Create(rt, *std::move(topology), options);
  if (!server.ok()) return Fail(std::string(server.status().message()));

  int exit_code = 0;
  (*server)->set_on_finished([&](absl::Status why) {
    if (!why.ok() && exit_code == 0) exit_code = 1;
    rt->Stop();
  });
  absl::Status signals = rt->HandleTerminationSignals([&](int signo) {
    if (exit_code != 0) {  // second signal: leave at once
      rt->Stop();
      return;
    }
    exit_code = 128 + signo;
    (*server)->Abort(absl::CancelledError(absl::StrCat("qworld interrupted by signal ", signo)));
  });
  if (!signals.ok()) return Fail(std::string(signals.message()));
  if (absl::Status s = rt->Run(); !s.ok()) return Fail(std::string(s.message()));
  server->reset();
  return exit_code;
}
