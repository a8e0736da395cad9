// PHYS-EV3, PHYS-EV4: the intercept-resend attacker on one pair.
#include "emulator/physics/intercept_resend.h"

#include <cmath>

#include "emulator/physics/heralded_state.h"
#include "gtest/gtest.h"

namespace qnet::physics {
namespace {

// The projector on outcome `bit` of `basis` for qubit b of a pair (I (x) P).
Matrix4 ProjectorOnB(Basis basis, int bit) {
  Matrix4 p = Matrix4::Zero();
  const Matrix2 one = BasisState(basis, bit);
  for (int a = 0; a < 2; ++a) p.block<2, 2>(2 * a, 2 * a) = one;
  return p;
}

// Probability that the two ends' results in `basis` disagree with the
// correlation of Bell state `pauli` (the QBER of rho in that basis).
double Qber(const Matrix4& rho, Basis basis, int pauli) {
  const bool differ = basis == Basis::kZ ? (pauli & 1) : (pauli & 2);
  double q = 0;
  for (int x = 0; x < 2; ++x) {
    for (int y = 0; y < 2; ++y) {
      if ((x != y) == differ) continue;
      Matrix4 proj = Matrix4::Zero();
      const Matrix2 px = BasisState(basis, x), py = BasisState(basis, y);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) proj.block<2, 2>(2 * i, 2 * j) = px(i, j) * py;
      q += (proj * rho).trace().real();
    }
  }
  return q;
}

// PHYS-EV3: after the attack the pair is (a's state given the outcome) (x)
// |outcome><outcome|, a's state being Tr_b[(I (x) P) rho] / p, exactly.
TEST(InterceptResendTest, LeavesTheCollapsedProductState) {
  Rng rng(3);
  for (Basis basis : {Basis::kZ, Basis::kX}) {
    for (int pauli = 0; pauli < 4; ++pauli) {
      for (int k = 0; k < 8; ++k) {
        const Matrix4 before = WernerState(0.9, pauli);
        Matrix4 rho = before;
        const Interception seen = InterceptResendInBasis(&rho, basis, rng);
        EXPECT_EQ(seen.basis, basis);
        const Matrix4 projected =
            ProjectorOnB(basis, seen.bit) * before * ProjectorOnB(basis, seen.bit);
        const double p = projected.trace().real();
        EXPECT_NEAR(p, 0.5, 1e-12);  // a Bell-diagonal pair: b alone is maximally mixed
        Matrix2 a_state = Matrix2::Zero();
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j)
            a_state(i, j) = (projected(2 * i, 2 * j) + projected(2 * i + 1, 2 * j + 1)) / p;
        const Matrix4 expected =
            DensityMatrix::Tensor(DensityMatrix(Matrix(a_state)),
                                  DensityMatrix(Matrix(BasisState(basis, seen.bit))))
                .matrix();
        EXPECT_TRUE(rho.isApprox(expected, 1e-12)) << rho;
        EXPECT_NEAR(rho.trace().real(), 1.0, 1e-12);
      }
    }
  }
}

// PHYS-EV4: in the attacker's basis the pair keeps its QBER e = 2(1-F)/3; in the
// other basis it becomes 1/2 exactly. Averaged over the basis: 1/4 + e/2.
TEST(InterceptResendTest, QberIsKeptInTheAttackersBasisAndOneHalfInTheOther) {
  Rng rng(11);
  const double f = 0.95, e = 2 * (1 - f) / 3;
  for (int pauli = 0; pauli < 4; ++pauli) {
    for (Basis attack : {Basis::kZ, Basis::kX}) {
      Matrix4 rho = WernerState(f, pauli);
      InterceptResendInBasis(&rho, attack, rng);
      const Basis other = attack == Basis::kZ ? Basis::kX : Basis::kZ;
      EXPECT_NEAR(Qber(rho, attack, pauli), e, 1e-12);
      EXPECT_NEAR(Qber(rho, other, pauli), 0.5, 1e-12);
    }
  }
}

// PHYS-EV3: the basis is Z or X with probability 1/2 each and the outcomes of
// a Bell pair are 0 or 1 with probability 1/2: n = 20000 draws, each count
// within 4 sigma = 4 sqrt(n / 4) of n / 2.
TEST(InterceptResendTest, BasisAndOutcomeAreUnbiased) {
  Rng rng(5);
  const int n = 20000;
  int x = 0, one = 0;
  for (int i = 0; i < n; ++i) {
    Matrix4 rho = WernerState(1.0, i % 4);
    const Interception seen = InterceptResend(&rho, rng);
    x += seen.basis == Basis::kX;
    one += seen.bit;
  }
  const double sigma = std::sqrt(n * 0.25);
  EXPECT_NEAR(x, n / 2.0, 4 * sigma);
  EXPECT_NEAR(one, n / 2.0, 4 * sigma);
}

}  // namespace
}  // namespace qnet::physics
