#include "emulator/physics/intercept_resend.h"

namespace qnet::physics {

Interception InterceptResend(Matrix4* rho, Rng& rng) {
  return InterceptResendInBasis(rho, rng.Bernoulli(0.5) ? Basis::kX : Basis::kZ, rng);
}

Interception InterceptResendInBasis(Matrix4* rho, Basis basis, Rng& rng) {
  // A projective measurement of b with a sampled outcome, then b replaced by
  // the outcome's eigenstate: the result is (rho_a|outcome) (x) |outcome><outcome|.
  DensityMatrix state{Matrix(*rho)};
  const int bit = state.MeasureAndRemove(1, basis, rng);  // state: side a, collapsed
  const DensityMatrix resent =
      DensityMatrix::Tensor(state, DensityMatrix(Matrix(BasisState(basis, bit))));
  *rho = resent.matrix();
  return Interception{basis, bit};
}

}  // namespace qnet::physics
