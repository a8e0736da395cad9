// The streaming model (chain_monte_carlo.h) of a Werner chain built by
// ChainXml: length-0 links, so the cycle is the attempt time (PHYS-B5) and
// the herald comes one cycle after the successful attempt starts (PHYS-G5,
// PHYS-B12); the default connection keeps its pairs with window 1 (depth 1)
// and releases them at once.
#ifndef QNET_EMULATOR_SCENARIOS_CHAIN_TIMING_H_
#define QNET_EMULATOR_SCENARIOS_CHAIN_TIMING_H_

#include "emulator/scenarios/chain_monte_carlo.h"
#include "emulator/scenarios/topology_gen.h"

namespace qnet::scenarios {

inline ChainModel ChainGenModel(const ChainGen& chain) {
  ChainModel m;
  for (const LinkGen& l : chain.links) {
    m.p.push_back(l.p);
    m.fidelity.push_back(l.fidelity);
  }
  m.cycle_s = chain.attempt_us * 1e-6;
  m.depolar_s = chain.depolar_s;
  if (chain.cutoff_s > 0) m.cutoff_s = chain.cutoff_s;
  return m;
}

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_CHAIN_TIMING_H_
