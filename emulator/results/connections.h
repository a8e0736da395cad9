// Per-connection and per-app figures of summary.json (specs/topology.md
// RES-20..RES-33), computed from the network layer's trace records
// (CircuitEvent, SwapEvent, EndPairEvent, PairExpired, PairDiscarded),
// qworld's PairTruth records and the apps' result files.
//
// Promises: deterministic for the same records in the same order; trace
// records are untrusted (records of circuits no connection of the topology can
// own are ignored, a PairTruth without a matching pair is unused); an app
// result file that is missing or not a JSON object is reported in its
// AppSummary, never fails the summary.
#ifndef QNET_EMULATOR_RESULTS_CONNECTIONS_H_
#define QNET_EMULATOR_RESULTS_CONNECTIONS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "qnet/results/v1/results.pb.h"
#include "stack/topology.h"

namespace qnet::results {

class ConnectionSummarizer {
 public:
  explicit ConnectionSummarizer(const Topology& topology);

  // Takes the records this class summarises (network records from node
  // traces, pair_truth from qworld's); returns false for any other record.
  // `node` is the node whose trace holds the record.
  bool Record(const std::string& node, const v1::TraceRecord& r);

  // Appends one ConnectionSummary per <connection>, in topology order.
  void Finish(v1::Summary* summary);

 private:
  // A measure circuit's end reports its basis and result (RES-29).
  struct Measured {
    bool measured = false;
    int basis = 0;  // physical.v1.Basis
    uint32_t result = 0;
  };
  struct HeadPair {
    int64_t delivered_ns = 0;
    double estimated_fidelity = 0;
    std::string label;
    Measured measured;
  };
  struct TailPair {
    int64_t delivered_ns = 0;
    Measured measured;
  };
  struct Circuit {
    std::string key;  // "<head>/<number>"
    std::string head;
    std::vector<std::string> path;
    int64_t up_ns = -1;  // head's first up record; -1: none
    int64_t first_seen_ns = -1;
    int64_t down_ns = -1;  // head's first down record
    std::string down_reason;
    bool tail_down = false;
    uint32_t swaps = 0;
    std::map<uint64_t, HeadPair> head_pairs;  // by seq
    std::map<uint64_t, TailPair> tail_pairs;  // by seq
    std::set<uint64_t> expired;
    std::map<std::string, uint64_t> discards;
    int connection = -1;  // index into topology.connections
  };

  Circuit& CircuitOf(const std::string& key, int64_t t);
  void Attribute();
  void FinishConnection(int index, v1::ConnectionSummary* out);

  const Topology& topology_;
  std::map<std::string, Circuit> circuits_;
  std::map<std::string, double> truth_;  // PairTruth by label (first record)
};

// Reads OUT_DIR/apps/<name>.json and <name>.<suffix>.json of every <app>
// (RES-31, RES-32: the two programs of the pair) and appends
// one AppSummary per app, in topology order.
void SummarizeApps(const Topology& topology, const std::string& out_dir, v1::Summary* summary);

}  // namespace qnet::results

#endif  // QNET_EMULATOR_RESULTS_CONNECTIONS_H_
