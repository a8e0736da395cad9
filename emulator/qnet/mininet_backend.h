// The `mininet` backend of `qnet run`: one Mininet host (network namespace) per
// node, one veth link per topology link, qworld in the root namespace; run by
// the Python driver emulator/mininet/qnet_mininet.py on Mininet's own API.
//
// The launcher checks the prerequisites (the last of them a probe: the driver
// starts one Mininet host and runs `true` in it), writes OUT/plan.json (the
// whole run: hosts, links with their /30 subnets and interface names, every
// command and log path, limits) and runs `/usr/bin/python3 <dir of
// qnet>/qnet_mininet.py OUT/plan.json` in a process group of its own. The driver tears everything
// down itself (also on SIGTERM, which the launcher forwards on Ctrl-C or on a
// timeout); the launcher kills it only if it has not finished tearing down
// after a grace period.
//
// Plan (JSON object):
//   tag            run tag; every host and interface name starts with it
//   out_dir, socket_path, wall_timeout_s, duration_s, time_dilation
//   startup_timeout_s     deadline for building the network (hosts, links,
//                  addresses; MininetStartupTimeout); past it the driver tears
//                  down what exists, prints what it was waiting for and exits
//                  with kMininetStartupFailed (TOPO-47)
//   startup_failure_file  OUT/logs/mininet-startup.txt: where the driver then
//                  writes that line (MininetStartupError reads it)
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
inline constexpr char kMininetDriver[] = "qnet_mininet.py";
// The driver's exit status when Mininet could not start the network (or the
// probe's host) within the start-up deadline.
inline constexpr int kMininetStartupFailed = 3;
// How long the probe may take to start its host (the driver's PROBE_TIMEOUT_S).
inline constexpr absl::Duration kMininetProbeTimeout = absl::Seconds(10);

// OK when this process can run the mininet backend: root, network namespaces
// (unshare(CLONE_NEWNET) and `ip netns list` work), Mininet importable by
// /usr/bin/python3, `mnexec` on $PATH, and then the probe: `/usr/bin/python3
// DRIVER_DIR/qnet_mininet.py --probe MininetProbeTag()` starts one Mininet
// host, runs `true` in it and tears it down within kMininetProbeTimeout
// (TOPO-46). Otherwise the error (FailedPrecondition; NotFound for a missing
// driver) says what is missing and what to do; a failed probe gives "Mininet
// cannot start a host on this machine: <the probe's reason>; use --backend
// local ...". `driver_dir` is the folder of the driver: the qnet binary's
// (tests pass the folder of QNET_BINARY).
absl::Status CheckMininetPrerequisites(const std::string& driver_dir = SelfDir());

// "q" + the launcher's pid in base 36, five digits: unique among concurrent
// runs; all tags have the same length, so that no tag + "n" is a prefix of
// another run's host or interface names.
std::string MininetRunTag();
// The same with "p": the probe's host, which no run's name can clash with.
std::string MininetProbeTag();

// The start-up deadline a plan gets: 20 s + 0.5 s per node + 0.25 s per link.
absl::Duration MininetStartupTimeout(const Topology& topology);

// The error of a run whose driver exited with kMininetStartupFailed: the line
// it wrote into OUT/logs/mininet-startup.txt (what it was waiting for), and
// what to do instead.
absl::Status MininetStartupError(const std::string& out_dir);

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
