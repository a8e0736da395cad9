// An independent Monte Carlo of one circuit streaming on a chain of Werner
// links with depolarising memories and one memory per side of each node
// (depth 1), written from the model of specs/network.md section 2.9 and the
// physics (specs/physical.md PHYS-B5, PHYS-B12, PHYS-N3), not from the
// network layer's code. It has its own random generator and event queue.
//
// The model, in emulated time:
//  - link i joins nodes i and i + 1; it generates only while node i's
//    downstream memory and node i + 1's upstream memory are both free; then
//    its attempts follow each other every cycle, each succeeding with
//    probability p_i: after N ~ Geometric(p_i) attempts the pair exists from
//    the start of the last attempt and is heralded one cycle later (a link of
//    length 0: the herald comes at the end of the attempt);
//  - a node holding a pair on each side swaps at once: the two pairs become
//    one spanning both, and both its memories are free;
//  - when a pair spans the head to the tail, the end-to-end pair is complete:
//    delivered, or discarded if its age (completion minus the earliest herald
//    of its link pairs) exceeds the cutoff; either way the head's and tail's
//    memories are free at once.
// Classical messages take no time. Every qubit depolarises from its pair's
// creation until it is measured (a swap) or the pair is complete (the head
// records the truth then). Werner pairs stay Werner under depolarising noise
// and swapping, so a delivered pair has
//   W = prod_i w_i x prod_qubits exp(-(measured - created) / T_depolar),
//   F = (1 + 3 W) / 4.
#ifndef QNET_EMULATOR_SCENARIOS_CHAIN_MONTE_CARLO_H_
#define QNET_EMULATOR_SCENARIOS_CHAIN_MONTE_CARLO_H_

#include <cstdint>
#include <limits>
#include <vector>

namespace qnet::scenarios {

struct ChainModel {
  std::vector<double> p;         // success probability per attempt, per link
  std::vector<double> fidelity;  // Werner fidelity, per link
  double cycle_s = 10e-6;
  double depolar_s = std::numeric_limits<double>::infinity();  // every node
  double cutoff_s = std::numeric_limits<double>::infinity();
};

struct ChainMonteCarloResult {
  uint64_t delivered = 0;
  uint64_t discarded = 0;
  double fidelity_mean = 0;
  double fidelity_se = 0;                // standard error of the mean
  double time_between_deliveries_s = 0;  // mean gap between consecutive deliveries
  double time_between_deliveries_se = 0;
  double elapsed_s = 0;                  // until the last delivery
};

// Runs until `pairs` are delivered; `seed` seeds a std::mt19937_64.
ChainMonteCarloResult RunChainMonteCarlo(const ChainModel& model, uint64_t pairs, uint64_t seed);

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_CHAIN_MONTE_CARLO_H_
