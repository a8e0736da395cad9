// The two-qubit state a successful heralded attempt leaves in the memories of
// link (a, b) (specs/physical.md PHYS-H1..PHYS-H6; REFERENCE.md "Heralded
// entanglement"). Built from the click terms of stack/heralding_model.h, so the
// emulated state and the analytic model agree exactly: the mean of
// <B|rho|B> over heralds equals HeraldedFidelity() and the success
// probability is the terms' total.
//
// Qubit order is (side a, side b); |1> is the bright (photon-emitting) state.
#ifndef QNET_EMULATOR_PHYSICS_HERALDED_STATE_H_
#define QNET_EMULATOR_PHYSICS_HERALDED_STATE_H_

#include "emulator/physics/density_matrix.h"
#include "stack/heralding_model.h"
#include "stack/random.h"
#include "stack/topology.h"

namespace qnet::physics {

// Single-click (PHYS-H2): [p_ud |10><10| + p_du |01><01| +
// s sqrt(V p_ud p_du)(|10><01| + h.c.) + p_uu |11><11| + p_dd |00><00|] / P,
// s = +1 for Psi+ (one detector), -1 for Psi- (the other).
Matrix4 SingleClickState(const SingleClickTerms& terms, double visibility, bool psi_minus);

// Double-click herald classes (PHYS-H4).
enum class DoubleClickClass { kTrue, kFalseMixed, kFalseSame };
// True: V|Psi><Psi| + (1-V)/2 (|01><01| + |10><10|); false mixed:
// (|01><01| + |10><10|)/2; false same: (|00><00| + |11><11|)/2.
Matrix4 DoubleClickState(DoubleClickClass herald_class, double visibility, bool psi_minus);

// Werner (PHYS-H6): F |B><B| + (1-F)/3 (I - |B><B|).
Matrix4 WernerState(double fidelity, int pauli_index);

struct HeraldedState {
  int bell_index = kPsiPlus;  // kPsiPlus or kPsiMinus: what the detectors say
  Matrix4 rho;
};

// Samples which herald a successful attempt gave and returns the state
// (PHYS-H1, PHYS-H5): Psi+ or Psi- with probability 1/2 each; for double-click the
// herald class in proportion to its term. alpha_a / alpha_b are used by
// single-click only.
HeraldedState SampleHeraldedState(const LinkSpec& link, double alpha_a, double alpha_b, Rng& rng);

// Success probability per attempt for the link's scheme and the two alphas
// (PHYS-B8).
double AttemptSuccessProbability(const LinkSpec& link, double alpha_a, double alpha_b);

}  // namespace qnet::physics

#endif  // QNET_EMULATOR_PHYSICS_HERALDED_STATE_H_
