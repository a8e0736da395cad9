// The sim backend: every node, qworld's core and the classical channels in one
// process on the simulator runtime. Writes the same files as a real run:
// OUT/nodes/NAME.jsonl and OUT/qworld.jsonl; summary.json is made from them
// by emulator/results.
#ifndef QNET_EMULATOR_BACKEND_SIM_BACKEND_H_
#define QNET_EMULATOR_BACKEND_SIM_BACKEND_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "stack/topology.h"

namespace qnet::backend {

struct SimProgress {
  double emulated_s = 0;
  uint64_t oks = 0;
  uint64_t events = 0;
};

// Runs `topology` (its seed and duration) writing traces under `out_dir`.
// `progress`, if set, is called about every 5 % of the emulated duration.
absl::Status RunSimulation(const Topology& topology, const std::string& out_dir,
                           const std::function<void(const SimProgress&)>& progress = nullptr);

}  // namespace qnet::backend

#endif  // QNET_EMULATOR_BACKEND_SIM_BACKEND_H_
