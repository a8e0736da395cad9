#include "stack/heralding_model.h"

#include <cmath>

#include "gtest/gtest.h"

namespace qnet {
namespace {

LinkSpec SymmetricSingleClick(double eta, double visibility) {
  LinkSpec l;
  l.scheme = HeraldingScheme::kSingleClick;
  l.length_km = 0;
  l.efficiency = eta;
  l.visibility = visibility;
  return l;
}

// PHYS-G2: symmetric, no dark counts: P = 2 a eta - a^2 eta^2 and
// F = (1-a)(1+sqrt V)/(2 - a eta) (REFERENCE.md).
TEST(HeraldingModelTest, SingleClickMatchesClosedForm) {
  for (double a : {0.05, 0.1, 0.3}) {
    const LinkSpec l = SymmetricSingleClick(0.4, 0.9);
    EXPECT_NEAR(SuccessProbability(l, a), 2 * a * 0.4 - a * a * 0.16, 1e-12);
    EXPECT_NEAR(HeraldedFidelity(l, a), (1 - a) * (1 + std::sqrt(0.9)) / (2 - a * 0.4), 1e-12);
  }
}

TEST(HeraldingModelTest, FibreLossAndCycle) {
  LinkSpec l = SymmetricSingleClick(0.5, 1);
  l.length_km = 20;
  l.loss_db_km = 0.2;
  l.attempt_s = 10e-6;
  EXPECT_NEAR(ArmEfficiency(l, true), 0.5 * std::pow(10, -0.2), 1e-12);
  // Round trip to the midpoint: 2 * 10 km / 206753 km/s = 96.7 us > 10 us.
  EXPECT_NEAR(absl::ToDoubleSeconds(AttemptCycle(l)), 20 / kFibreKmPerSecond, 1e-9);
  EXPECT_EQ(HeraldDelay(l, true), AttemptCycle(l));
}

TEST(HeraldingModelTest, ChooseAlphaIsLargestAlphaMeetingFidelity) {
  const LinkSpec l = SymmetricSingleClick(0.3, 1.0);
  auto a = ChooseAlpha(l, 0.9);
  ASSERT_TRUE(a.has_value());
  EXPECT_NEAR(HeraldedFidelity(l, *a), 0.9, 1e-6);
  EXPECT_FALSE(ChooseAlpha(l, 1.0).has_value());
  EXPECT_EQ(*ChooseAlpha(l, 0.1), 0.5);
}

}  // namespace
}  // namespace qnet
