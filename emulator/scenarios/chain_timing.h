// The timing of one circuit round on a Werner chain built by ChainXml, as the
// protocol defines it (specs/network.md NET-C-2x, specs/link.md LINK-18/20/24,
// specs/physical.md PHYS-B5/B12/G5), for the chain Monte Carlo.
#ifndef QNET_EMULATOR_SCENARIOS_CHAIN_TIMING_H_
#define QNET_EMULATOR_SCENARIOS_CHAIN_TIMING_H_

#include "emulator/scenarios/chain_monte_carlo.h"
#include "emulator/scenarios/topology_gen.h"

namespace qnet::scenarios {

// Length-0 Werner links: cycle = attempt time (PHYS-B5), heralds one attempt
// time after the successful attempt starts at both ends (PHYS-G5, PHYS-B12).
// A CREATE at the link's master (the upstream end, `a` in ChainXml) becomes
// eligible 2 d + m later with m = one cycle in the sim backend (LINK-18,
// LINK-20), and both ends start the batch then (LINK-24). The head starts the
// next round at the completion instant.
inline ChainTiming ChainGenTiming(const ChainGen& chain) {
  ChainTiming t;
  t.cycle_s = chain.attempt_us * 1e-6;
  t.herald_delay_s = t.cycle_s;
  t.hop_delay_s = chain.classical_delay_us * 1e-6;
  t.link_setup_s = 2 * t.hop_delay_s + t.cycle_s;
  return t;
}

inline ChainModel ChainGenModel(const ChainGen& chain) {
  ChainModel m;
  for (const LinkGen& l : chain.links) {
    m.p.push_back(l.p);
    m.fidelity.push_back(l.fidelity);
  }
  m.timing = ChainGenTiming(chain);
  m.depolar_s = chain.depolar_s;
  if (chain.cutoff_s > 0) m.cutoff_s = chain.cutoff_s;
  return m;
}

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_CHAIN_TIMING_H_
