#include "stack/random.h"

#include <cmath>

#include "gtest/gtest.h"

namespace qnet {
namespace {

TEST(RngTest, SameSeedSameSequenceAndForksDiffer) {
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.Next(), b.Next());
  Rng f1 = Rng(42).Fork("alice"), f2 = Rng(42).Fork("bob");
  EXPECT_NE(f1.Next(), f2.Next());
  EXPECT_EQ(Rng(42).Fork("alice").Next(), Rng(42).Fork("alice").Next());
}

TEST(RngTest, GeometricMeanIsOneOverP) {
  Rng rng(7);
  const double p = 0.05;
  const int n = 200000;
  double sum = 0, sum2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = static_cast<double>(rng.Geometric(p));
    sum += x;
    sum2 += x * x;
  }
  const double mean = sum / n;
  const double sd = std::sqrt(sum2 / n - mean * mean);
  EXPECT_NEAR(mean, 1 / p, 4 * sd / std::sqrt(n));
  EXPECT_EQ(rng.Geometric(1.0), 1u);
}

TEST(RngTest, BelowIsUniform) {
  Rng rng(3);
  int counts[3] = {0, 0, 0};
  const int n = 300000;
  for (int i = 0; i < n; ++i) ++counts[rng.Below(3)];
  for (int c : counts) EXPECT_NEAR(c, n / 3.0, 4 * std::sqrt(n * (1 / 3.0) * (2 / 3.0)));
}

}  // namespace
}  // namespace qnet
