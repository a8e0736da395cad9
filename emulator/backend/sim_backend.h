// The sim backend: every node, qworld's core and the classical channels in one
// process on the simulator runtime. Writes the same files as a real run:
// OUT/nodes/NAME.jsonl and OUT/qworld.jsonl (or NAME.pb, qworld.pb: RES-1a);
// summary.json is made from them by emulator/results.
#ifndef QNET_EMULATOR_BACKEND_SIM_BACKEND_H_
#define QNET_EMULATOR_BACKEND_SIM_BACKEND_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "emulator/node/connection_workload.h"
#include "stack/topology.h"

namespace qnet::backend {

struct SimProgress {
  double emulated_s = 0;
  uint64_t oks = 0;
  uint64_t events = 0;
};

// What the run's workloads saw, for tests and the launcher (the traces and
// summary.json hold the rest).
struct SimReport {
  // Per <connection> name: the counts at its initiator and its responder.
  std::map<std::string, node::ConnectionCounts> initiator, responder;
  // Per <app> name: the reporting side's result JSON (also in OUT/apps/).
  std::map<std::string, std::string> apps;
  uint64_t frames_cut = 0;  // classical frames lost on cut links
};

// Runs `topology` (its seed and duration) writing traces under `out_dir`, and
// OUT/apps/NAME.json for every <app> (in-process apps, in_process_apps.h).
// Failure events (<event>) cut a link's classical channel from their time on
// (frames dropped and counted at the node that sent or would have received
// them) and tell both ends' nodes (Node::OnLinkDown); qworld's core cuts the
// fibre itself (PHYS-L3). A failed node's links are all cut.
// `progress`, if set, is called about every 5 % of the emulated duration;
// `report`, if set, is filled at the end. `binary_traces` writes the traces
// in the binary form (*.pb) instead of JSON lines.
absl::Status RunSimulation(const Topology& topology, const std::string& out_dir,
                           const std::function<void(const SimProgress&)>& progress = nullptr,
                           SimReport* report = nullptr, bool binary_traces = false);

}  // namespace qnet::backend

#endif  // QNET_EMULATOR_BACKEND_SIM_BACKEND_H_
