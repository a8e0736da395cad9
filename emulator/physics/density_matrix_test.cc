#include "emulator/physics/density_matrix.h"

#include <cmath>

#include "gtest/gtest.h"

namespace qnet::physics {
namespace {

DensityMatrix Zeros(int n) {
  Matrix m = Matrix::Zero(1 << n, 1 << n);
  m(0, 0) = 1;
  return DensityMatrix(m);
}

// PHYS-Q1: qubit 0 is the most significant bit; H on qubit 0 then CNOT(0 -> 1)
// makes Phi+ from |00>, and X on qubit 0 turns Phi+ into Psi+ (|10> + |01>).
TEST(DensityMatrixTest, CircuitMakesBellStatesInTheDocumentedOrder) {
  DensityMatrix rho = Zeros(2);
  rho.ApplyUnitary(0, Hadamard());
  rho.ApplyUnitary(0, 1, Cnot());
  EXPECT_NEAR(rho.FidelityTo(BellVector(kPhiPlus)), 1.0, 1e-12);
  rho.ApplyUnitary(0, PauliX());
  EXPECT_NEAR(rho.FidelityTo(BellVector(kPsiPlus)), 1.0, 1e-12);
  rho.ApplyUnitary(1, PauliZ());  // Z on b: |01> - |10>
  EXPECT_NEAR(rho.FidelityTo(BellVector(kPsiMinus)), 1.0, 1e-12);
  rho.ApplyUnitary(0, PauliX());  // |11> - |00>
  EXPECT_NEAR(rho.FidelityTo(BellVector(kPhiMinus)), 1.0, 1e-12);
}

TEST(DensityMatrixTest, RotationsMatchPaulisUpToPhase) {
  for (double angle : {0.3, M_PI}) {
    DensityMatrix a = Zeros(1), b = Zeros(1);
    a.ApplyUnitary(0, RotationY(angle));
    // RY(angle)|0> = cos(angle/2)|0> + sin(angle/2)|1>
    EXPECT_NEAR(a.ProbabilityOfOne(0), std::pow(std::sin(angle / 2), 2), 1e-12);
    b.ApplyUnitary(0, RotationX(angle));
    EXPECT_NEAR(b.ProbabilityOfOne(0), std::pow(std::sin(angle / 2), 2), 1e-12);
  }
  DensityMatrix plus = Zeros(1);
  plus.ApplyUnitary(0, Hadamard());
  plus.ApplyUnitary(0, RotationZ(M_PI / 2));  // |+> -> |+i> up to phase
  EXPECT_NEAR(plus.FidelityTo(Eigen::Vector2cd(M_SQRT1_2, Complex(0, M_SQRT1_2))), 1.0, 1e-12);
}

TEST(DensityMatrixTest, TensorThenReducedRecoversEachFactorAndReorders) {
  DensityMatrix a = Zeros(1);
  a.ApplyUnitary(0, RotationY(0.7));
  DensityMatrix bell = Zeros(2);
  bell.ApplyUnitary(0, Hadamard());
  bell.ApplyUnitary(0, 1, Cnot());
  bell.ApplyUnitary(1, PauliX());  // Psi+
  const DensityMatrix joint = DensityMatrix::Tensor(a, bell);
  ASSERT_EQ(joint.num_qubits(), 3);
  EXPECT_TRUE(joint.Reduced({0}).matrix().isApprox(a.matrix(), 1e-12));
  EXPECT_TRUE(joint.Reduced({1, 2}).matrix().isApprox(bell.matrix(), 1e-12));
  // Reversed order of a Psi+ is Psi+; of (a, bell qubit 1) is the swapped product.
  EXPECT_NEAR(joint.Reduced({2, 1}).FidelityTo(BellVector(kPsiPlus)), 1.0, 1e-12);
  const DensityMatrix swapped = joint.Reduced({1, 0});
  EXPECT_NEAR(swapped.ProbabilityOfOne(1), a.ProbabilityOfOne(0), 1e-12);
  EXPECT_NEAR(swapped.ProbabilityOfOne(0), 0.5, 1e-12);
  EXPECT_NEAR(joint.Trace(), 1.0, 1e-12);
}

// PHYS-M2: basis eigenstates give deterministic outcomes with the documented bits.
TEST(DensityMatrixTest, BasisEigenstatesMeasureToTheirBit) {
  Rng rng(3);
  for (Basis basis : {Basis::kZ, Basis::kX, Basis::kY}) {
    for (int bit : {0, 1}) {
      for (int i = 0; i < 20; ++i) {
        DensityMatrix rho(BasisState(basis, bit));
        EXPECT_EQ(rho.MeasureAndRemove(0, basis, rng), bit);
        EXPECT_EQ(rho.num_qubits(), 0);
      }
    }
  }
}

// PHYS-M1: measuring one qubit of a pair leaves the partner in the projected state.
TEST(DensityMatrixTest, MeasurementProjectsThePartner) {
  Rng rng(5);
  for (int i = 0; i < 50; ++i) {
    DensityMatrix rho = Zeros(2);
    rho.ApplyUnitary(0, Hadamard());
    rho.ApplyUnitary(0, 1, Cnot());  // Phi+: X outcomes agree
    const int bit = rho.MeasureAndRemove(0, Basis::kX, rng);
    ASSERT_EQ(rho.num_qubits(), 1);
    EXPECT_TRUE(rho.matrix().isApprox(BasisState(Basis::kX, bit), 1e-12));
  }
}

}  // namespace
}  // namespace qnet::physics
