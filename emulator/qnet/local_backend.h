// The `local` backend of `qnet run`: qworld and one qnode per node as real
// processes on loopback (DESIGN.md, "Three ways to run the same stack": "a
// process group on 127.0.x.y in local mode").
//
// Promises:
// - Node i (topology order, from 0) listens on its own loopback address
//   LoopbackAddress(i) = 127.0.(1 + i / 254).(1 + i % 254) and a TCP port that
//   was free when the plan was made; qworld serves a Unix socket.
// - qworld and every qnode run in one process group of their own (ChildGroup),
//   output to OUT/logs/qworld.log and OUT/logs/NAME.log.
// - RunLocal returns only when every process is gone: after all exited with
//   status 0 (OK), or after it killed the whole group because one failed, the
//   wall timeout passed, or the launcher got SIGINT/SIGTERM; the error then
//   names the process and its log.
#ifndef QNET_EMULATOR_QNET_LOCAL_BACKEND_H_
#define QNET_EMULATOR_QNET_LOCAL_BACKEND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "emulator/qnet/progress.h"
#include "stack/topology.h"

namespace qnet::launcher {

// Where the daemons are. FindDaemons looks, for each of qworld and qnode, at
// $QNET_QWORLD / $QNET_QNODE, then next to the qnet binary (`self_dir`), then
// in the build tree's `self_dir/../qworld/qworld` and `self_dir/../qnode/qnode`,
// then on $PATH.
struct DaemonPaths {
  std::string qworld;
  std::string qnode;
};
absl::StatusOr<DaemonPaths> FindDaemons(const std::string& self_dir);

// The directory holding the running executable.
std::string SelfDir();

// What every real-process backend passes on to the daemons.
struct DaemonSettings {
  std::string topology_path;  // absolute; the copy in the out dir
  std::string out_dir;        // absolute
  std::optional<uint64_t> seed;
  std::optional<double> duration_s;
};

// Flags shared by qworld and qnode: --out, --seed, --duration (as set).
std::vector<std::string> CommonDaemonFlags(const DaemonSettings& settings);

// A Unix socket path for qworld: OUT/qworld.sock, or a short path under /tmp
// when that is too long for sockaddr_un.
std::string QworldSocketPath(const std::string& out_dir);

std::string LoopbackAddress(size_t node_index);
// A TCP port on `address` that nobody listened on when asked.
absl::StatusOr<int> FreeTcpPort(const std::string& address);

struct LocalNode {
  std::string name;
  std::string address;
  int port = 0;
  std::vector<std::string> argv;
  std::string log_path;
};

struct LocalPlan {
  std::string socket_path;
  std::vector<std::string> qworld_argv;
  std::string qworld_log_path;
  std::vector<LocalNode> nodes;
};

absl::StatusOr<LocalPlan> PlanLocal(const Topology& topology, const DaemonSettings& settings,
                                    const DaemonPaths& daemons);

// Runs the plan. `progress` (may be null) is polled and printed about once a
// second. Creates OUT/logs.
absl::Status RunLocal(const Topology& topology, const LocalPlan& plan, const std::string& out_dir,
                      absl::Duration wall_timeout, ProgressPrinter* printer);

// Node names become file names and host names: letters, digits, '-', '_', '.'
// only, and not "qworld" (its log and trace names are taken).
absl::Status CheckNodeNamesUsable(const Topology& topology);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_LOCAL_BACKEND_H_
