// Topology files for the scenario tests and benchmarks: Werner chains, grids
// and rings with <connection> workloads and failure events (specs/topology.md
// vocabulary). The generators write XML so that every scenario also goes
// through the loader's validation, as a user's file would.
#ifndef QNET_EMULATOR_SCENARIOS_TOPOLOGY_GEN_H_
#define QNET_EMULATOR_SCENARIOS_TOPOLOGY_GEN_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace qnet::scenarios {

// One <connection> (specs/topology.md): keep pairs, consumer holds each for
// hold_s; cutoff_s 0 lets the network layer derive it.
struct ConnectionGen {
  std::string name;
  std::string from, to;
  uint32_t pairs = 0;  // 0: until the run ends
  double hold_s = 0;
  double start_s = 0;
  double cutoff_s = 0;
  double min_fidelity = 0;
};

struct LinkGen {
  double p = 0.05;
  double fidelity = 0.95;
};

// Werner chain n0 - n1 - ... - n<links>; node names are zero-padded so that
// name order is path order. Length 0: the attempt cycle is the attempt time
// and heralds arrive one attempt time after the attempt starts.
struct ChainGen {
  std::string name = "chain";
  uint64_t seed = 1;
  double duration_s = 10;
  std::vector<LinkGen> links;
  double attempt_us = 10;
  double classical_delay_us = 0.001;  // 1 ns: negligible
  uint32_t memories = 4;
  double depolar_s = std::numeric_limits<double>::infinity();
  std::string routing_metric;              // empty: the default
  std::vector<ConnectionGen> connections;  // empty: one from the first to the last node
  uint32_t pairs = 1000;                   // for the default connection
  double cutoff_s = 0;                     // for the default connection
  // For the default connection: late enough for link-state routing to have
  // converged (hellos every 20 ms, then one flood).
  double start_s = 0.2;
};

std::string ChainNodeName(int index, int links);
std::string ChainLinkName(int index, int links);  // link i joins nodes i and i+1
std::string ChainXml(const ChainGen& chain);

// A mesh of Werner links, every link the same.
struct MeshGen {
  std::string name = "mesh";
  uint64_t seed = 1;
  double duration_s = 10;
  LinkGen link;
  double attempt_us = 10;
  double classical_delay_us = 1;
  uint32_t memories = 16;
  std::string routing_metric = "hops";
  std::vector<ConnectionGen> connections;
  // Cut events: (at seconds, link name).
  std::vector<std::pair<double, std::string>> cuts;
};

// rows x cols grid; node g<r>_<c>, link h<r>_<c> joins (r,c)-(r,c+1) and
// v<r>_<c> joins (r,c)-(r+1,c).
std::string GridNodeName(int row, int col);
std::string GridXml(const MeshGen& mesh, int rows, int cols);

// Ring of n nodes r0..r<n-1>; link l<i> joins r<i> and r<(i+1) % n>.
std::string RingXml(const MeshGen& mesh, int nodes);

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_TOPOLOGY_GEN_H_
