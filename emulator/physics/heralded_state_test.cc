#include "emulator/physics/heralded_state.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace qnet::physics {
namespace {

void ExpectValidState(const Matrix4& rho) {
  EXPECT_NEAR(rho.trace().real(), 1.0, 1e-12);
  EXPECT_TRUE(rho.isApprox(rho.adjoint(), 1e-12));
  Eigen::SelfAdjointEigenSolver<Matrix4> eig(rho);
  EXPECT_GE(eig.eigenvalues().minCoeff(), -1e-12);
}

double Fidelity(const Matrix4& rho, int pauli) {
  return DensityMatrix(rho).FidelityTo(BellVector(pauli));
}

LinkSpec SingleClickLink(double length_km, double midpoint, double dark, double visibility) {
  LinkSpec l;
  l.scheme = HeraldingScheme::kSingleClick;
  l.length_km = length_km;
  l.midpoint_fraction = midpoint;
  l.efficiency = 0.6;
  l.dark_count_prob = dark;
  l.visibility = visibility;
  return l;
}

// PHYS-H2, PHYS-H3: the single-click state's fidelity to the heralded Bell
// state equals heralding_model's HeraldedFidelity() for several alphas, dark
// count probabilities and visibilities, for both detectors.
TEST(HeraldedStateTest, SingleClickFidelityEqualsAnalyticModel) {
  for (double alpha : {0.02, 0.1, 0.3, 0.5}) {
    for (double dark : {0.0, 1e-4, 1e-2}) {
      for (double v : {1.0, 0.9, 0.6}) {
        const LinkSpec link = SingleClickLink(10, 0.3, dark, v);
        const SingleClickTerms t = SingleClick(link, alpha, alpha);
        const Matrix4 plus = SingleClickState(t, v, false);
        const Matrix4 minus = SingleClickState(t, v, true);
        ExpectValidState(plus);
        ExpectValidState(minus);
        const double model = HeraldedFidelity(link, alpha);
        EXPECT_NEAR(Fidelity(plus, kPsiPlus), model, 1e-12) << alpha << " " << dark << " " << v;
        EXPECT_NEAR(Fidelity(minus, kPsiMinus), model, 1e-12);
        // The wrong sign sees only the populations.
        EXPECT_NEAR(Fidelity(plus, kPsiMinus),
                    (t.p_ud + t.p_du - 2 * std::sqrt(v * t.p_ud * t.p_du)) / (2 * t.total()),
                    1e-12);
      }
    }
  }
}

// PHYS-H2: qubit order (a, b), |1> = bright: the |10> population is p_ud (a bright).
TEST(HeraldedStateTest, SingleClickOrderIsSideAThenSideB) {
  const LinkSpec link = SingleClickLink(20, 0.5, 0, 1);
  const SingleClickTerms t = SingleClick(link, 0.4, 0.1);
  const Matrix4 rho = SingleClickState(t, 1, false);
  EXPECT_NEAR(rho(2, 2).real(), t.p_ud / t.total(), 1e-12);
  EXPECT_NEAR(rho(1, 1).real(), t.p_du / t.total(), 1e-12);
  EXPECT_GT(t.p_ud, t.p_du);
}

// PHYS-H4, PHYS-H5: sampled double-click heralds have mean fidelity equal to
// the model within 3 standard errors, and Psi+ / Psi- come 50/50.
TEST(HeraldedStateTest, DoubleClickSampledMeanFidelityMatchesModel) {
  LinkSpec link;
  link.scheme = HeraldingScheme::kDoubleClick;
  link.efficiency = 0.3;
  link.length_km = 5;
  link.dark_count_prob = 0.05;  // large, so false heralds are frequent
  link.visibility = 0.85;
  Rng rng(11);
  const int n = 40000;
  double sum = 0, sum2 = 0;
  int minus = 0;
  for (int i = 0; i < n; ++i) {
    const HeraldedState h = SampleHeraldedState(link, 0, 0, rng);
    ExpectValidState(h.rho);
    const double f = Fidelity(h.rho, h.bell_index);
    sum += f;
    sum2 += f * f;
    minus += h.bell_index == kPsiMinus;
  }
  const double mean = sum / n;
  const double se = std::sqrt((sum2 / n - mean * mean) / n);
  EXPECT_GT(se, 0);
  EXPECT_NEAR(mean, HeraldedFidelity(link, 0), 3 * se);
  RecordProperty("double_click_mean_fidelity",
                 absl::StrCat(mean, " (model ", HeraldedFidelity(link, 0), ", se ", se, ")"));
  EXPECT_NEAR(minus, n / 2.0, 3 * std::sqrt(n * 0.25));
  EXPECT_NEAR(Fidelity(DoubleClickState(DoubleClickClass::kTrue, 0.85, true), kPsiMinus),
              (1 + 0.85) / 2, 1e-12);
}

// PHYS-H6: Werner states have fidelity F to their Bell state.
TEST(HeraldedStateTest, WernerStateHasFidelityF) {
  for (int k = 0; k < 4; ++k) {
    const Matrix4 rho = WernerState(0.83, k);
    ExpectValidState(rho);
    EXPECT_NEAR(Fidelity(rho, k), 0.83, 1e-12);
    EXPECT_NEAR(Fidelity(rho, (k + 1) % 4), 0.17 / 3, 1e-12);
  }
}

// PHYS-B8: the success probability is the scheme's total.
TEST(HeraldedStateTest, SuccessProbabilityPerScheme) {
  LinkSpec link = SingleClickLink(10, 0.5, 1e-3, 0.9);
  EXPECT_DOUBLE_EQ(AttemptSuccessProbability(link, 0.2, 0.3), SingleClick(link, 0.2, 0.3).total());
  link.scheme = HeraldingScheme::kDoubleClick;
  EXPECT_DOUBLE_EQ(AttemptSuccessProbability(link, 0.2, 0.3), DoubleClick(link).total());
  link.scheme = HeraldingScheme::kWerner;
  link.p_success = 0.125;
  EXPECT_DOUBLE_EQ(AttemptSuccessProbability(link, 0.2, 0.3), 0.125);
}

}  // namespace
}  // namespace qnet::physics
