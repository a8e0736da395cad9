// The intercept-resend attacker of a link (specs/physical.md PHYS-EV*): it
// measures side b's qubit of a fresh pair in Z or X, chosen uniformly at
// random, and sends on the eigenstate of the outcome it saw. The pair leaves
// as a product state: side a's qubit collapsed by the measurement, side b's
// qubit the re-prepared eigenstate. On a perfect Bell pair this gives a QBER
// of 1/4 in Z and in X (the attacker's basis is wrong half the time, and then
// the result is random); on a pair with QBER e in a basis it gives
// 1/4 + e/2 in that basis.
#ifndef QNET_EMULATOR_PHYSICS_INTERCEPT_RESEND_H_
#define QNET_EMULATOR_PHYSICS_INTERCEPT_RESEND_H_

#include "emulator/physics/density_matrix.h"
#include "stack/random.h"

namespace qnet::physics {

struct Interception {
  Basis basis = Basis::kZ;  // the attacker's basis, Z or X
  int bit = 0;              // what the attacker saw and re-prepared
};

// Intercepts side b (qubit 1) of the two-qubit state `rho` (qubit order (a, b),
// PHYS-Q1) in place (PHYS-EV3, PHYS-EV4). Draws the basis (one Uniform) and the
// outcome (one Uniform) from `rng`.
Interception InterceptResend(Matrix4* rho, Rng& rng);

// The same with the basis given (tests, and the exact expectations of the spec).
Interception InterceptResendInBasis(Matrix4* rho, Basis basis, Rng& rng);

}  // namespace qnet::physics

#endif  // QNET_EMULATOR_PHYSICS_INTERCEPT_RESEND_H_
