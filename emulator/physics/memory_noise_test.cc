#include "emulator/physics/memory_noise.h"

#include <cmath>

#include "emulator/physics/heralded_state.h"
#include "emulator/physics/qubit_registry.h"
#include "gtest/gtest.h"

namespace qnet::physics {
namespace {

HardwareSpec Hardware(double t1, double t2, double depolar) {
  HardwareSpec h;
  h.t1_s = t1;
  h.t2_s = t2;
  h.depolar_s = depolar;
  return h;
}

// PHYS-N2: one qubit of Phi+ stored for t: F = (1 + exp(-t/T1))/4 + exp(-t/T2)/2.
TEST(MemoryNoiseTest, StoredPhiPlusFidelityMatchesT1T2Formula) {
  const double t1 = 2e-3, t2 = 1e-3;
  QubitRegistry registry({Hardware(t1, t2, kInfiniteSeconds), HardwareSpec{}});
  const QubitId a{0, 0}, b{1, 0};
  ASSERT_TRUE(registry.AddPair(a, b, BellProjector(kPhiPlus), Time::Zero()).ok());
  for (double t : {0.0, 1e-4, 5e-4, 1e-3, 3e-3, 1e-2}) {
    const double expected = (1 + std::exp(-t / t1)) / 4 + std::exp(-t / t2) / 2;
    EXPECT_NEAR(*registry.BellFidelity(a, b, kPhiPlus, Time::FromSeconds(t)), expected, 1e-9)
        << "t = " << t;
  }
}

// PHYS-N2: |1> decays to |0> with probability gamma = 1 - exp(-t/T1).
TEST(MemoryNoiseTest, AmplitudeDampingRelaxesToGround) {
  const MemoryNoise noise(1e-3, 1e-3, kInfiniteSeconds);
  DensityMatrix rho(BasisState(Basis::kZ, 1));
  rho.ApplyChannel(0, noise.Channel(0.7e-3));
  EXPECT_NEAR(rho.ProbabilityOfOne(0), std::exp(-0.7), 1e-12);
  EXPECT_NEAR(rho.Trace(), 1.0, 1e-12);
}

// PHYS-N3: depolarising multiplies the Werner parameter by l = exp(-t/T) per
// stored qubit: F = (3 w l_a l_b + 1)/4.
TEST(MemoryNoiseTest, DepolarisingScalesWernerParameterPerQubit) {
  const double ta = 0.5, tb = 2.0;
  QubitRegistry registry({Hardware(kInfiniteSeconds, kInfiniteSeconds, ta),
                          Hardware(kInfiniteSeconds, kInfiniteSeconds, tb)});
  const double f0 = 0.9, w0 = (4 * f0 - 1) / 3;
  const QubitId a{0, 1}, b{1, 3};
  ASSERT_TRUE(registry.AddPair(a, b, WernerState(f0, kPsiMinus), Time::Zero()).ok());
  for (double t : {0.1, 0.4, 1.5}) {
    const double w = w0 * std::exp(-t / ta) * std::exp(-t / tb);
    EXPECT_NEAR(*registry.BellFidelity(a, b, kPsiMinus, Time::FromSeconds(t)), (3 * w + 1) / 4,
                1e-9);
  }
}

// PHYS-N5: lazy application over any split of the storage time gives the
// same state as one application, with all three processes at once.
TEST(MemoryNoiseTest, SplitStorageEqualsOneStep) {
  const MemoryNoise noise(1e-3, 0.8e-3, 3e-3);
  DensityMatrix once(BellProjector(kPsiPlus)), split(BellProjector(kPsiPlus));
  once.ApplyChannel(1, noise.Channel(1e-3));
  for (int i = 0; i < 10; ++i) split.ApplyChannel(1, noise.Channel(1e-4));
  EXPECT_TRUE(once.matrix().isApprox(split.matrix(), 1e-12));
  EXPECT_NEAR(once.Trace(), 1.0, 1e-12);
  // Positive: all eigenvalues >= 0.
  Eigen::SelfAdjointEigenSolver<Matrix> eig(once.matrix());
  EXPECT_GE(eig.eigenvalues().minCoeff(), -1e-12);
}

// PHYS-N4: T2 > 2 T1 is clamped to 2 T1.
TEST(MemoryNoiseTest, UnphysicalT2IsClamped) {
  EXPECT_DOUBLE_EQ(MemoryNoise(1.0, 5.0, kInfiniteSeconds).t2_s(), 2.0);
  EXPECT_DOUBLE_EQ(MemoryNoise(1.0, kInfiniteSeconds, kInfiniteSeconds).t2_s(), 2.0);
  EXPECT_DOUBLE_EQ(MemoryNoise(1.0, 0.5, kInfiniteSeconds).t2_s(), 0.5);
  EXPECT_TRUE(MemoryNoise().noiseless());
  EXPECT_TRUE(MemoryNoise().Channel(10).isIdentity());
}

}  // namespace
}  // namespace qnet::physics
