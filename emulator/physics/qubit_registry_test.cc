#include "emulator/physics/qubit_registry.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "emulator/physics/heralded_state.h"
#include "gtest/gtest.h"

namespace qnet::physics {
namespace {

std::vector<HardwareSpec> Nodes(int n, double readout_error = 0) {
  std::vector<HardwareSpec> out(n);
  for (auto& h : out) h.readout_error = readout_error;
  return out;
}

// PHYS-M1, PHYS-M2: outcome correlations of the four Bell states measured in
// the same basis at both ends: Phi+ agrees in Z and X, disagrees in Y; Psi+
// disagrees in Z only; Phi- disagrees in X only; Psi- disagrees in all three.
// Each bit alone is uniform (within 3 standard errors).
TEST(QubitRegistryTest, BellStateCorrelationsPerBasis) {
  // disagree[bell][basis], basis order Z, X, Y.
  const bool disagree[4][3] = {
      {false, false, true}, {true, false, false}, {false, true, false}, {true, true, true}};
  const Basis bases[3] = {Basis::kZ, Basis::kX, Basis::kY};
  Rng rng(17);
  QubitRegistry registry(Nodes(2));
  const QubitId a{0, 0}, b{1, 0};
  const int n = 2000;
  for (int k = 0; k < 4; ++k) {
    for (int j = 0; j < 3; ++j) {
      int ones = 0, differ = 0;
      for (int i = 0; i < n; ++i) {
        ASSERT_TRUE(registry.AddPair(a, b, BellProjector(k), Time::Zero()).ok());
        const int ra = *registry.Measure(a, bases[j], false, Time::Zero(), rng);
        const int rb = *registry.Measure(b, bases[j], false, Time::Zero(), rng);
        ones += ra;
        differ += ra != rb;
      }
      EXPECT_EQ(differ, disagree[k][j] ? n : 0) << "bell " << k << " basis " << j;
      EXPECT_NEAR(ones, n / 2.0, 3 * std::sqrt(n * 0.25));
    }
  }
  EXPECT_EQ(registry.qubits(), 0u);
  EXPECT_EQ(registry.groups(), 0u);
}

// PHYS-M3: the reported bit is flipped with probability readout_error; the
// kept qubit stays in the eigenstate of the true outcome.
TEST(QubitRegistryTest, ReadoutErrorRate) {
  const double e = 0.08;
  QubitRegistry registry(Nodes(1, e));
  Rng rng(23);
  const QubitId q{0, 2};
  const int n = 20000;
  int flipped = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(registry.AddQubit(q, BasisState(Basis::kX, 1), Time::Zero()).ok());
    flipped += *registry.Measure(q, Basis::kX, false, Time::Zero(), rng) != 1;
  }
  EXPECT_NEAR(flipped, n * e, 3 * std::sqrt(n * e * (1 - e)));
  RecordProperty("readout_flip_rate",
                 absl::StrCat(static_cast<double>(flipped) / n, " (expected ", e, ")"));
  ASSERT_TRUE(registry.AddQubit(q, BasisState(Basis::kY, 0), Time::Zero()).ok());
  ASSERT_TRUE(registry.Measure(q, Basis::kY, true, Time::Zero(), rng).ok());
  ASSERT_TRUE(registry.Holds(q));
  const QubitId only[1] = {q};
  EXPECT_TRUE(
      registry.ReducedState(only, Time::Zero())->matrix().isApprox(BasisState(Basis::kY, 0)));
}

// PHYS-M7 and the swap rule of REFERENCE.md: pairs A-B1 in Bell state i and
// B2-C in Bell state j, BSM on (B1, B2) with outcome m: A-C is in Bell state
// i xor j xor m, for all 16 input combinations; every outcome occurs.
TEST(QubitRegistryTest, BellMeasurementSwapFollowsPauliXorRule) {
  QubitRegistry registry(Nodes(3));
  Rng rng(29);
  const QubitId a{0, 0}, b1{1, 0}, b2{1, 1}, c{2, 0};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      int seen[4] = {0, 0, 0, 0};
      for (int trial = 0; trial < 40; ++trial) {
        ASSERT_TRUE(registry.AddPair(a, b1, BellProjector(i), Time::Zero()).ok());
        ASSERT_TRUE(registry.AddPair(b2, c, BellProjector(j), Time::Zero()).ok());
        absl::StatusOr<int> m = registry.BellMeasure(b1, b2, Time::Zero(), rng);
        ASSERT_TRUE(m.ok());
        ++seen[*m];
        EXPECT_FALSE(registry.Holds(b1));
        EXPECT_FALSE(registry.Holds(b2));
        EXPECT_NEAR(*registry.BellFidelity(a, c, i ^ j ^ *m, Time::Zero()), 1.0, 1e-9)
            << "i=" << i << " j=" << j << " m=" << *m;
        ASSERT_TRUE(registry.Free(a).ok());
        ASSERT_TRUE(registry.Free(c).ok());
      }
      for (int m = 0; m < 4; ++m) EXPECT_GT(seen[m], 0) << "outcome " << m << " never seen";
    }
  }
  EXPECT_EQ(registry.groups(), 0u);
}

// PHYS-M5, PHYS-M6: gates act on the stored state; a CNOT joins two groups.
TEST(QubitRegistryTest, GatesBuildAndUndoEntanglement) {
  QubitRegistry registry(Nodes(1));
  const QubitId x{0, 0}, y{0, 1};
  ASSERT_TRUE(registry.AddQubit(x, BasisState(Basis::kZ, 0), Time::Zero()).ok());
  ASSERT_TRUE(registry.AddQubit(y, BasisState(Basis::kZ, 0), Time::Zero()).ok());
  ASSERT_TRUE(registry.Apply(Gate1::kH, x, 0, Time::Zero()).ok());
  ASSERT_TRUE(registry.Apply(Gate2::kCnot, x, y, Time::Zero()).ok());
  EXPECT_EQ(registry.groups(), 1u);
  EXPECT_NEAR(*registry.BellFidelity(x, y, kPhiPlus, Time::Zero()), 1.0, 1e-12);
  ASSERT_TRUE(registry.Apply(Gate2::kCz, x, y, Time::Zero()).ok());
  EXPECT_NEAR(*registry.BellFidelity(x, y, kPhiMinus, Time::Zero()), 1.0, 1e-12);
  ASSERT_TRUE(registry.Apply(Gate1::kRZ, y, M_PI, Time::Zero()).ok());  // Z up to phase
  EXPECT_NEAR(*registry.BellFidelity(x, y, kPhiPlus, Time::Zero()), 1.0, 1e-12);
  ASSERT_TRUE(registry.Apply(Gate1::kY, y, 0, Time::Zero()).ok());
  EXPECT_NEAR(*registry.BellFidelity(x, y, kPsiMinus, Time::Zero()), 1.0, 1e-12);
}

// PHYS-Q4, PHYS-Q5: invalid operations are refused and change nothing.
TEST(QubitRegistryTest, InvalidOperationsChangeNothing) {
  std::vector<HardwareSpec> nodes = Nodes(1);
  QubitRegistry registry(nodes, /*max_group_qubits=*/3);
  const QubitId p{0, 0}, q{0, 1}, r{0, 2}, s{0, 3}, empty{0, 9};
  ASSERT_TRUE(registry.AddPair(p, q, BellProjector(kPsiPlus), Time::Zero()).ok());
  ASSERT_TRUE(registry.AddPair(r, s, BellProjector(kPhiPlus), Time::Zero()).ok());
  Rng rng(1);
  EXPECT_EQ(registry.Free(empty).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Measure(empty, Basis::kZ, false, Time::Zero(), rng).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.AddQubit(p, BasisState(Basis::kZ, 0), Time::Zero()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry.Apply(Gate2::kCnot, p, p, Time::Zero()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Apply(Gate2::kCnot, q, r, Time::Zero()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(registry.BellMeasure(q, r, Time::Zero(), rng).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(registry.groups(), 2u);
  EXPECT_NEAR(*registry.BellFidelity(p, q, kPsiPlus, Time::Zero()), 1.0, 1e-12);
  EXPECT_NEAR(*registry.BellFidelity(r, s, kPhiPlus, Time::Zero()), 1.0, 1e-12);
}

// PHYS-N5, PHYS-T2: evaluating a state at a later time does not change it;
// touching a qubit applies exactly its pending noise.
TEST(QubitRegistryTest, ReducedStateDoesNotMutateAndLazyNoiseIsExact) {
  std::vector<HardwareSpec> nodes = Nodes(2);
  nodes[0].t1_s = 1e-3;
  nodes[0].t2_s = 5e-4;
  nodes[1].depolar_s = 2e-3;
  QubitRegistry registry(nodes);
  const QubitId a{0, 0}, b{1, 0};
  ASSERT_TRUE(registry.AddPair(a, b, BellProjector(kPhiPlus), Time::FromNanos(1000)).ok());
  const Time later = Time::FromNanos(1000 + 400000);
  const double f1 = *registry.BellFidelity(a, b, kPhiPlus, later);
  EXPECT_DOUBLE_EQ(*registry.BellFidelity(a, b, kPhiPlus, later), f1);
  ASSERT_TRUE(registry.Apply(Gate1::kZ, a, 0, Time::FromNanos(200000)).ok());
  ASSERT_TRUE(registry.Apply(Gate1::kZ, a, 0, Time::FromNanos(300000)).ok());
  EXPECT_NEAR(*registry.BellFidelity(a, b, kPhiPlus, later), f1, 1e-12);
  const double t = 400e-6;
  const double l = std::exp(-t / 2e-3);
  // T1/T2 on a, depolarising on b: F = l F_T1T2 + (1 - l)/4.
  const double f_a = (1 + std::exp(-t / 1e-3)) / 4 + std::exp(-t / 5e-4) / 2;
  EXPECT_NEAR(f1, l * f_a + (1 - l) / 4, 1e-12);
}

}  // namespace
}  // namespace qnet::physics

namespace qnet::physics {
namespace {

// A random two-qubit density matrix: a mixture of random pure states.
Matrix4 RandomState(Rng& rng) {
  Matrix4 rho = Matrix4::Zero();
  for (int k = 0; k < 3; ++k) {
    Eigen::Vector4cd v;
    for (int i = 0; i < 4; ++i) v(i) = {rng.Uniform() - 0.5, rng.Uniform() - 0.5};
    v.normalize();
    rho += rng.Uniform() * v * v.adjoint();
  }
  return rho / rho.trace().real();
}

// PHYS-M7, PHYS-Q3: the swap of two pairs that are groups of their own
// (what every repeater does) gives the outcome, the random draws and the
// partners' state that the general path gives (a 4-qubit group, CNOT, H,
// two Z measurements), for random mixed states, either qubit order in each
// pair and depolarising memories with pending noise.
TEST(QubitRegistryTest, SwapOfTwoPairsEqualsTheGeneralBellMeasurement) {
  HardwareSpec hw;
  hw.name = "hw";
  hw.memories = 4;
  hw.depolar_s = 0.5;
  Rng states(99);
  for (int trial = 0; trial < 200; ++trial) {
    SCOPED_TRACE(trial);
    const Matrix4 rho1 = RandomState(states), rho2 = RandomState(states);
    const bool flip1 = trial & 1, flip2 = trial & 2;  // where a and b sit in their pairs
    const QubitId A{0, 0}, B1{1, 0}, B2{1, 1}, C{2, 0};
    QubitRegistry fast({hw, hw, hw});
    if (flip1) {
      ASSERT_TRUE(fast.AddPair(B1, A, rho1, Time::Zero()).ok());
    } else {
      ASSERT_TRUE(fast.AddPair(A, B1, rho1, Time::Zero()).ok());
    }
    if (flip2) {
      ASSERT_TRUE(fast.AddPair(C, B2, rho2, Time::FromNanos(1000)).ok());
    } else {
      ASSERT_TRUE(fast.AddPair(B2, C, rho2, Time::FromNanos(1000)).ok());
    }
    const Time now = Time::FromNanos(200'000'000);
    Rng rng_fast(1000 + static_cast<uint64_t>(trial));
    absl::StatusOr<int> m = fast.BellMeasure(B1, B2, now, rng_fast);
    ASSERT_TRUE(m.ok());
    // The general path by hand: (A, B1) and (B2, C), B1 and B2 brought up to date.
    DensityMatrix s1(rho1), s2(rho2);
    const MemoryNoise noise(hw);
    const int b1 = flip1 ? 0 : 1, b2 = flip2 ? 1 : 0;
    s1.ApplyChannel(b1, noise.Channel(0.2));
    s2.ApplyChannel(b2, noise.Channel(0.2 - 1e-6));
    if (flip1) s1 = s1.Reduced({1, 0});
    if (flip2) s2 = s2.Reduced({1, 0});
    DensityMatrix joint = DensityMatrix::Tensor(s1, s2);  // A, B1, B2, C
    joint.ApplyUnitary(1, 2, Cnot());
    joint.ApplyUnitary(1, Hadamard());
    Rng rng_slow(1000 + static_cast<uint64_t>(trial));
    const int z = joint.MeasureAndRemove(1, Basis::kZ, rng_slow);  // A, B2, C
    const int x = joint.MeasureAndRemove(1, Basis::kZ, rng_slow);  // A, C
    EXPECT_EQ(*m, x | (z << 1));
    absl::StatusOr<DensityMatrix> ac = fast.ReducedState({A, C}, Time::Zero());
    ASSERT_TRUE(ac.ok());
    EXPECT_LT((ac->matrix() - joint.matrix()).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_EQ(fast.groups(), 1u);
    EXPECT_FALSE(fast.Holds(B1));
    EXPECT_FALSE(fast.Holds(B2));
  }
}

}  // namespace
}  // namespace qnet::physics
