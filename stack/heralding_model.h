// Analytic model of heralded entanglement generation on one link
// (REFERENCE.md "Heralded entanglement"; specs/physical.md PHYS-G*). The
// emulator builds the heralded density matrix from these same click
// probabilities; the link layer uses the model as its calibration table to
// pick the bright-state population and to estimate fidelity, as real hardware
// would from calibration data.
#ifndef QNET_STACK_HERALDING_MODEL_H_
#define QNET_STACK_HERALDING_MODEL_H_

#include <optional>

#include "absl/time/time.h"
#include "stack/topology.h"

namespace qnet {

// Per-side detection probability: efficiency times fibre transmission over the arm.
double ArmEfficiency(const LinkSpec& link, bool side_a);

// Single-click click-pattern probabilities per attempt (Humphreys et al. 2018,
// supplementary eqs. 8 and 10). uu: both bright; ud: a bright, b dark; du; dd.
struct SingleClickTerms {
  double p_uu = 0, p_ud = 0, p_du = 0, p_dd = 0;
  double total() const { return p_uu + p_ud + p_du + p_dd; }
};
SingleClickTerms SingleClick(const LinkSpec& link, double alpha_a, double alpha_b);

// Double-click (Barrett-Kok) outcome classes per attempt: a true herald (both
// photons detected, one per round) and false heralds where a dark count stands
// in for a lost photon (one-excitation branch: state |01> or |10>; two-excitation
// branch: |00> or |11>).
struct DoubleClickTerms {
  double p_true = 0, p_false_mixed = 0, p_false_same = 0;
  double total() const { return p_true + p_false_mixed + p_false_same; }
};
DoubleClickTerms DoubleClick(const LinkSpec& link);

// Success probability per attempt, and fidelity of the heralded state to the
// heralded Bell state, for the link's scheme at bright-state population alpha
// (used by single-click only).
double SuccessProbability(const LinkSpec& link, double alpha);
double HeraldedFidelity(const LinkSpec& link, double alpha);

// max(attempt time, round trip from the farther node to the heralding station).
absl::Duration AttemptCycle(const LinkSpec& link);

// Time from the start of an attempt until its herald reaches the given side:
// max(attempt time, farther arm + this arm propagation).
absl::Duration HeraldDelay(const LinkSpec& link, bool side_a);

// The alpha the link uses for a request with this minimum fidelity: the fixed
// alpha if the link has one, else the largest alpha in (0, 0.5] whose fidelity is
// at least min_fidelity (fastest rate). std::nullopt if the fidelity cannot be
// reached. For schemes without alpha, returns 0 when the scheme's fidelity
// meets min_fidelity.
std::optional<double> ChooseAlpha(const LinkSpec& link, double min_fidelity);

}  // namespace qnet

#endif  // QNET_STACK_HERALDING_MODEL_H_
