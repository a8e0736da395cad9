// An independent Monte Carlo of one circuit on a chain of Werner links with
// depolarising memories, written from the protocol description
// (specs/network.md, /tmp design "Generation in rounds") and the physics
// reference (REFERENCE.md; specs/physical.md PHYS-B5, PHYS-B12, PHYS-N3), not
// from the network layer's code. It has its own random generator.
//
// One round, all times relative to the head's Round(r):
//  - node j (0 = head .. n = tail) hears Round(r) at j d (d: one-way delay of
//    a hop);
//  - link i (1..n) has upstream end node i-1; its first attempt starts at
//    (i-1) d + setup (the link layer's CREATE-to-first-attempt time, 2 d + m);
//  - N_i ~ Geometric(p_i) attempts of one cycle each; the pair exists from the
//    start of the successful attempt C_i = start_i + (N_i - 1) cycle
//    (PHYS-B12) and is heralded to both ends at H_i = C_i + herald_delay;
//  - intermediate node j swaps at X_j = max(H_j, H_{j+1}) and its SwapRecord
//    reaches the head at X_j + j d;
//  - the head completes at T = max(H_1, max_j X_j + j d); if T - min_i H_i
//    exceeds the cutoff the round is discarded; either way the next round
//    starts at T.
// Every qubit depolarises from its pair's creation C_i until it is measured:
// the intermediate's two qubits at X_j, the end qubits at T (when the head
// records the truth). Werner pairs stay Werner under depolarising noise and
// swapping, so the delivered pair has
//   W = prod_i w_i prod_qubits exp(-(measured - created) / T_depolar),
//   F = (1 + 3 W) / 4 (REFERENCE.md "Memory decoherence", "Swapping").
#ifndef QNET_EMULATOR_SCENARIOS_CHAIN_MONTE_CARLO_H_
#define QNET_EMULATOR_SCENARIOS_CHAIN_MONTE_CARLO_H_

#include <cstdint>
#include <limits>
#include <vector>

namespace qnet::scenarios {

struct ChainTiming {
  double cycle_s = 0;         // attempt cycle (PHYS-B5)
  double herald_delay_s = 0;  // attempt start -> herald at both ends (PHYS-G5)
  double hop_delay_s = 0;     // one-way classical delay of every hop
  double link_setup_s = 0;    // Round at the upstream end -> first attempt
  // Extra time from completion to the next round's Round at the head (0 when
  // the head starts the next round at once).
  double round_gap_s = 0;
};

struct ChainModel {
  std::vector<double> p;         // success probability per attempt, per link
  std::vector<double> fidelity;  // Werner fidelity, per link
  ChainTiming timing;
  double depolar_s = std::numeric_limits<double>::infinity();  // every node
  double cutoff_s = std::numeric_limits<double>::infinity();
};

struct ChainMonteCarloResult {
  uint64_t delivered = 0;
  uint64_t discarded = 0;
  double fidelity_mean = 0;
  double fidelity_se = 0;                // standard error of the mean
  double time_between_deliveries_s = 0;  // total time / delivered
  double time_between_deliveries_se = 0;
};

// Runs rounds until `pairs` are delivered; `seed` seeds a std::mt19937_64.
ChainMonteCarloResult RunChainMonteCarlo(const ChainModel& model, uint64_t pairs, uint64_t seed);

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_CHAIN_MONTE_CARLO_H_
