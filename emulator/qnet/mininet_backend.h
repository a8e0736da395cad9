// The `mininet` backend of `qnet run`: one Mininet host (network namespace) per
// node, one veth link per topology link, qworld in the root namespace; run by
// the Python driver emulator/mininet/qnet_mininet.py on Mininet's own API.
//
// The launcher checks the prerequisites, writes OUT/plan.json (the whole run:
// hosts, links with their /30 subnets and interface names, every command and
// log path, limits) and runs `/usr/bin/python3 <dir of qnet>/qnet_mininet.py
// OUT/plan.json` in a process group of its own. The driver tears everything
// down itself (also on SIGTERM, which the launcher forwards on Ctrl-C or on a
// timeout); the launcher kills it only if it has not finished tearing down
// after a grace period.
//
// Plan (JSON object):
//   tag            run tag; every host and interface name starts with it
//   out_dir, socket_path, wall_timeout_s, duration_s, time_dilation
//   qworld         {argv: [...], log}
//   nodes          [{name, host, argv: [...], log, trace}]
//   links          [{name, a, b, subnet, a_ip, b_ip, a_intf, b_intf}]
//   apps           [{name, node, kind, role, argv: [...], log, result}]: app
//                  programs (PlanApps) started in their node's host after the
//                  qnodes; not part of the run's success: an app that exits
//                  without its result file gets one with "ok": false
//   qkd_fetch      [{node, command}]: key-fetch commands (qkd_setup.h); the
//                  driver prints each as `mnexec -a PID COMMAND` with the pid
//                  of the node's host (its network namespace), node "" as is
//   serve_keys     true: after the run, the apps still running (qkd KMEs)
//                  keep serving until SIGINT/SIGTERM, which then ends the
//                  driver with status 0 (TOPO-45)
// A node's address (its KME address, MininetNodeAddress) is its address on
// its first link in topology order.
// Link k (topology order, from 0) gets subnet 10.(n / 256).(n % 256).0/30 with
// n = k + 1, a = .1 and b = .2; a qnode listens on 0.0.0.0:kMininetPort in its
// host and dials its peers at their address on the shared link.
#ifndef QNET_EMULATOR_QNET_MININET_BACKEND_H_
#define QNET_EMULATOR_QNET_MININET_BACKEND_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "emulator/qnet/local_backend.h"
#include "stack/topology.h"

namespace qnet::launcher {

inline constexpr int kMininetPort = 7000;
inline constexpr char kMininetPython[] = "/usr/bin/python3";

// OK when this process can run the mininet backend: root, network namespaces
// (unshare(CLONE_NEWNET) and `ip netns list` work), Mininet importable by
// /usr/bin/python3, and `mnexec` on $PATH. Otherwise the error says what is
// missing and what to do.
absl::Status CheckMininetPrerequisites();

// "q" + the launcher's pid in base 36: unique among concurrent runs.
std::string MininetRunTag();

// The plan as JSON (see above).
absl::StatusOr<std::string> MininetPlanJson(const Topology& topology,
                                            const DaemonSettings& settings,
                                            const DaemonPaths& daemons, const std::string& tag,
                                            absl::Duration wall_timeout, bool serve_keys = false);

// The address of `node` in the Mininet network ("" for a node without links).
std::string MininetNodeAddress(const Topology& topology, const std::string& node);

// Writes OUT/plan.json, the qkd apps' PSKs and PKI (PrepareQkd), and runs the
// driver found next to the qnet binary. The caller has checked
// CheckMininetPrerequisites().
absl::Status RunMininet(const Topology& topology, const DaemonSettings& settings,
                        const DaemonPaths& daemons, absl::Duration wall_timeout,
                        bool serve_keys = false);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_MININET_BACKEND_H_
