#include "emulator/scenarios/scenario_runner.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "emulator/backend/sim_backend.h"
#include "emulator/results/summary.h"
#include "stack/json_lines.h"
#include "stack/topology_loader.h"

namespace qnet::scenarios {

absl::StatusOr<ScenarioRun> RunScenario(
    const std::string& xml, const std::string& name,
    const std::function<void(const backend::SimProgress&)>& progress) {
  absl::StatusOr<Topology> topology = ParseTopology(xml, name + ".xml");
  if (!topology.ok()) return topology.status();
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string base = tmp != nullptr ? tmp : std::filesystem::temp_directory_path().string();
  ScenarioRun run;
  run.topology = *std::move(topology);
  run.out_dir = absl::StrCat(base, "/qnet_scenario_", name, "_", getpid());
  std::filesystem::remove_all(run.out_dir);
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = backend::RunSimulation(run.topology, run.out_dir, progress); !s.ok())
    return s;
  run.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  absl::StatusOr<results::v1::Summary> summary =
      results::Summarize(run.topology, run.out_dir, "sim");
  if (!summary.ok()) return summary.status();
  run.summary = *std::move(summary);
  return run;
}

void RemoveOutput(const ScenarioRun& run) {
  std::error_code ec;
  std::filesystem::remove_all(run.out_dir, ec);
}

absl::StatusOr<std::map<std::string, CircuitTrace>> ReadCircuits(const ScenarioRun& run) {
  std::map<std::string, CircuitTrace> circuits;
  std::map<std::string, std::string> circuit_of_label;
  std::map<std::string, double> truth;  // label -> true fidelity
  auto circuit = [&](const std::string& name) -> CircuitTrace& {
    CircuitTrace& c = circuits[name];
    if (c.circuit.empty()) {
      c.circuit = name;
      c.head = std::vector<std::string>(absl::StrSplit(name, '/'))[0];
    }
    return c;
  };
  std::map<std::string, std::map<uint64_t, int64_t>> completed;  // circuit -> seq -> ns
  std::map<std::string, std::map<uint64_t, std::string>> labels;
  auto read = [&](const std::string& path) -> absl::Status {
    return ForEachTraceRecord(path, [&](results::v1::TraceRecord&& r) {
      switch (r.event_case()) {
        case results::v1::TraceRecord::kEndPair: {
          const auto& e = r.end_pair();
          CircuitTrace& c = circuit(e.circuit());
          if (c.path.empty()) c.path.assign(e.path().begin(), e.path().end());
          if (e.role() == "head") {
            c.head_seqs.insert(e.seq());
            completed[e.circuit()][e.seq()] = static_cast<int64_t>(e.completed_ns());
            labels[e.circuit()][e.seq()] = e.label();
          } else {
            c.tail_seqs.insert(e.seq());
            c.tail = r.node();
          }
          break;
        }
        case results::v1::TraceRecord::kPairExpired:
          circuit(r.pair_expired().circuit()).expired_seqs.insert(r.pair_expired().seq());
          break;
        case results::v1::TraceRecord::kPairDiscarded:
          ++circuit(r.pair_discarded().circuit()).discarded;
          break;
        case results::v1::TraceRecord::kSwapEvent:
          ++circuit(r.swap_event().circuit()).swaps;
          break;
        case results::v1::TraceRecord::kCircuitEvent: {
          const auto& e = r.circuit_event();
          CircuitTrace& c = circuit(e.circuit());
          if (e.up() && c.path.empty()) c.path.assign(e.path().begin(), e.path().end());
          if (!e.up()) c.went_down = true;
          break;
        }
        case results::v1::TraceRecord::kPairTruth:
          truth[r.pair_truth().label()] = r.pair_truth().true_fidelity();
          break;
        default:
          break;
      }
    });
  };
  for (const NodeSpec& n : run.topology.nodes) {
    if (absl::Status s = read(TraceFilePath(absl::StrCat(run.out_dir, "/nodes/", n.name))); !s.ok())
      return s;
  }
  if (absl::Status s = read(TraceFilePath(run.out_dir + "/qworld")); !s.ok()) return s;
  for (auto& [name, c] : circuits) {
    for (const auto& [seq, ns] : completed[name]) {
      c.completed_ns.push_back(ns);
      auto t = truth.find(labels[name][seq]);
      if (t != truth.end()) c.true_fidelity.push_back(t->second);
    }
    if (c.tail.empty() && !c.path.empty()) c.tail = c.path.back();
  }
  return circuits;
}

MeanSe MeanAndSe(const std::vector<double>& x) {
  MeanSe m;
  m.n = x.size();
  if (x.empty()) return m;
  double sum = 0, sum2 = 0;
  for (double v : x) {
    sum += v;
    sum2 += v * v;
  }
  const double n = static_cast<double>(x.size());
  m.mean = sum / n;
  m.se = n > 1 ? std::sqrt(std::max(0.0, (sum2 - n * m.mean * m.mean) / (n - 1)) / n) : 0;
  return m;
}

std::vector<double> DeliveryGaps(const CircuitTrace& c) {
  std::vector<double> gaps;
  for (size_t i = 1; i < c.completed_ns.size(); ++i)
    gaps.push_back(static_cast<double>(c.completed_ns[i] - c.completed_ns[i - 1]) * 1e-9);
  return gaps;
}

const results::v1::ConnectionSummary* FindConnection(const results::v1::Summary& summary,
                                                     const std::string& name) {
  for (const auto& c : summary.connections())
    if (c.name() == name) return &c;
  return nullptr;
}

}  // namespace qnet::scenarios
