// Runs a topology in the sim backend and reads back what the scenario tests
// check: the summary (emulator/results) and, independently of it, the
// network layer's end-pair records joined with qworld's truth records.
#ifndef QNET_EMULATOR_SCENARIOS_SCENARIO_RUNNER_H_
#define QNET_EMULATOR_SCENARIOS_SCENARIO_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "emulator/backend/sim_backend.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/topology.h"

namespace qnet::scenarios {

struct ScenarioRun {
  Topology topology;
  results::v1::Summary summary;
  std::string out_dir;
  double wall_s = 0;  // wall time of RunSimulation alone
};

// Parses `xml`, runs it in the sim backend under a fresh temporary folder
// named after `name`, and summarises it.
// `progress`, if set, is passed to RunSimulation.
absl::StatusOr<ScenarioRun> RunScenario(
    const std::string& xml, const std::string& name,
    const std::function<void(const backend::SimProgress&)>& progress = nullptr);

// Deletes the run's output folder (traces of big runs take tens of MB).
void RemoveOutput(const ScenarioRun& run);

// One circuit as the traces show it.
struct CircuitTrace {
  std::string circuit;  // "<head>/<number>"
  std::string head, tail;
  std::vector<std::string> path;      // head first
  std::vector<int64_t> completed_ns;  // head deliveries, in seq order
  std::set<uint64_t> head_seqs, tail_seqs, expired_seqs;
  std::vector<double> true_fidelity;  // per head delivery with a truth record
  uint64_t discarded = 0;             // rounds discarded by cutoff
  uint64_t swaps = 0;
  bool went_down = false;
};

// Every circuit of the run, by circuit name.
absl::StatusOr<std::map<std::string, CircuitTrace>> ReadCircuits(const ScenarioRun& run);

// Mean and standard error of a sample.
struct MeanSe {
  double mean = 0;
  double se = 0;
  uint64_t n = 0;
};
MeanSe MeanAndSe(const std::vector<double>& x);

// Gaps between consecutive head deliveries of one circuit, in seconds.
std::vector<double> DeliveryGaps(const CircuitTrace& c);

// The summary's entry for a connection, or null.
const results::v1::ConnectionSummary* FindConnection(const results::v1::Summary& summary,
                                                     const std::string& name);

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_SCENARIO_RUNNER_H_
