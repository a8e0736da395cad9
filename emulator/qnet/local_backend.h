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
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "emulator/qnet/progress.h"
#include "emulator/qnet/qkd_setup.h"
#include "stack/topology.h"

namespace qnet::launcher {

// Where the daemons are. FindDaemons looks, for each of qworld and qnode, at
// $QNET_QWORLD / $QNET_QNODE, then next to the qnet binary (`self_dir`), then
// in the build tree's `self_dir/../qworld/qworld` and `self_dir/../qnode/qnode`,
// then on $PATH.
struct DaemonPaths {
  std::string qworld;
  std::string qnode;
  // App programs by kind ("teleport" -> .../qnet-teleport), for the kinds the
  // topology's <app>s use.
  std::map<std::string, std::string> apps;
};
absl::StatusOr<DaemonPaths> FindDaemons(const std::string& self_dir);
// Finds qnet-KIND for every app kind of the topology: $QNET_APP_<KIND>
// (upper case), next to qnet, in the build tree's self_dir/../../apps/KIND/,
// then on $PATH.
absl::Status FindApps(const Topology& topology, const std::string& self_dir, DaemonPaths* daemons);

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

// The app socket of a node: OUT/nodes/NAME.app.sock, or a short path under
// /tmp when that is too long for sockaddr_un.
std::string AppSocketPath(const std::string& out_dir, const std::string& node);

struct LocalNode {
  std::string name;
  std::string address;
  int port = 0;
  std::vector<std::string> argv;
  std::string log_path;
  std::string app_socket;  // --app_socket
};

// One process of an <app>: the initiator role at the app's `node` (teleport
// sender, chsh a) or the responder at its `peer` (teleport receiver, chsh b,
// which binds the app's port). Flags: --app_socket of its node, --role,
// --port, --peer/--peer_port (initiator), --pairs, --min_fidelity, --seed
// (the run's seed + app index, +1000 for the responder), --result, and every
// other attribute of the element as --NAME=VALUE with every '-' of NAME turned
// into '_' (TOPO-39: `block-bits="2000"` -> --block_bits=2000). The reporting
// side (teleport receiver, chsh a, qkd a) writes OUT/apps/NAME.json, the other
// OUT/apps/NAME.ROLE.json. A qkd app (roles "a" at `node`, "b" at `peer`) gets
// QkdFlags (qkd_setup.h) instead of its kme-http-port / kme-https-port
// attributes.
struct LocalApp {
  std::string name;  // "<app name> <role>"
  std::string app;   // the <app> name
  std::string node;
  std::string kind;
  std::string role;
  bool reports = false;
  std::vector<std::string> argv;
  std::string log_path;  // OUT/logs/app-NAME-ROLE.log
  std::string result_path;
  double start_s = 0;  // emulated start time of the app
};

struct LocalPlan {
  std::string socket_path;
  std::vector<std::string> qworld_argv;
  std::string qworld_log_path;
  std::vector<LocalNode> nodes;
  std::vector<LocalApp> apps;
  // Where a client fetches keys of the qkd apps (qkd_setup.h).
  std::vector<KeyFetchCommand> key_fetch;
};

// What RunLocal does once the run is over while qkd apps still serve their
// KMEs (TOPO-44, TOPO-45).
struct ServeOptions {
  std::FILE* out = nullptr;  // where the key-fetch commands go; null: nowhere
  // Keep the qkd apps (KMEs) running after the report until SIGINT/SIGTERM.
  bool serve_keys = false;
  // With serve_keys, called after the run went well, before the wait: writes
  // the summary and prints the report (the launcher's summary step).
  std::function<absl::Status()> report;
};

// The app processes of the topology's <app>s, for nodes that serve
// `app_socket_of(node)`.
// `address_of` gives a node's address (the KME address of a qkd end).
std::vector<LocalApp> PlanApps(const Topology& topology, const DaemonSettings& settings,
                               const DaemonPaths& daemons,
                               const std::function<std::string(const std::string&)>& app_socket_of,
                               const AddressOf& address_of = nullptr);

absl::StatusOr<LocalPlan> PlanLocal(const Topology& topology, const DaemonSettings& settings,
                                    const DaemonPaths& daemons);

// Runs the plan. `progress` (may be null) is polled and printed about once a
// second. Creates OUT/logs. With qkd apps, writes their PSKs and OUT/pki
// (PrepareQkd) before the apps start and prints plan.key_fetch to
// `serve.out`. When qworld and the qnodes are gone, apps get kAppGrace to
// write their results; then they are stopped with SIGTERM (qnet-qkd exits 0 or
// 3 for an aborted session; an app's exit status is its result, not the
// run's: TOPO-45), unless `serve.serve_keys` keeps them serving (see
// ServeOptions); the run's status is OK after that wait.
absl::Status RunLocal(const Topology& topology, const LocalPlan& plan, const std::string& out_dir,
                      absl::Duration wall_timeout, ProgressPrinter* printer,
                      const ServeOptions& serve = {});

// Time the apps get to finish after the nodes are gone.
inline constexpr absl::Duration kAppGrace = absl::Seconds(3);

// Node names become file names and host names: letters, digits, '-', '_', '.'
// only, and not "qworld" (its log and trace names are taken).
absl::Status CheckNodeNamesUsable(const Topology& topology);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_LOCAL_BACKEND_H_
