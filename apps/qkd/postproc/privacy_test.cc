// Privacy amplification, secure length and the verification hash
// (specs/qkd.md sections 5 and 6), and the whole post-processing chain on
// binary-symmetric-channel data against the asymptotic secret fraction.
#include "apps/qkd/postproc/privacy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "apps/qkd/auth/poly_hash.h"
#include "apps/qkd/postproc/cascade.h"
#include "stack/random.h"

namespace qnet::qkd {
namespace {

BitVector RandomBits(Rng& rng, size_t n) {
  BitVector v(n);
  for (size_t i = 0; i < n; ++i) v.Set(i, (rng.Next() & 1) != 0);
  return v;
}

BitVector Bits(std::initializer_list<int> bits) {
  BitVector v;
  for (int b : bits) v.PushBack(b != 0);
  return v;
}

// QKD-A2: h values to 12 digits.
TEST(BinaryEntropyTest, QKD_A2_Values) {
  EXPECT_EQ(BinaryEntropy(0.0), 0.0);
  EXPECT_EQ(BinaryEntropy(1.0), 0.0);
  EXPECT_EQ(BinaryEntropy(-0.1), 0.0);
  EXPECT_EQ(BinaryEntropy(0.5), 1.0);
  EXPECT_NEAR(BinaryEntropy(0.01), 0.0807931358959, 1e-12);
  EXPECT_NEAR(BinaryEntropy(0.02), 0.1414405425418, 1e-12);
  EXPECT_NEAR(BinaryEntropy(0.05), 0.2863969571160, 1e-12);
  EXPECT_NEAR(BinaryEntropy(0.11), 0.4999159581645, 1e-12);
  EXPECT_NEAR(BinaryEntropy(0.25), 0.8112781244591, 1e-12);
  EXPECT_DOUBLE_EQ(BinaryEntropy(0.3), BinaryEntropy(0.7));
}

// QKD-A3: the 3 x 4 example of the spec. Seed s0..s5 = 1 0 1 1 0 0, rows
// T[i][j] = s[i - j + 3]: (1 1 0 1), (0 1 1 0), (0 0 1 1); x = 1 1 1 0 gives
// y = (0, 0, 1).
TEST(ToeplitzTest, QKD_A3_HandWorkedExample) {
  const BitVector seed = Bits({1, 0, 1, 1, 0, 0});
  const BitVector key = Bits({1, 1, 1, 0});
  const BitVector want = Bits({0, 0, 1});
  auto dense = ToeplitzHashDense(key, seed, 3);
  auto fast = ToeplitzHash(key, seed, 3);
  ASSERT_TRUE(dense.ok() && fast.ok());
  EXPECT_EQ(*dense, want);
  EXPECT_EQ(*fast, want);
  // Unit vectors read the matrix's columns: e_0 -> column 0 = (1, 0, 0).
  EXPECT_EQ(*ToeplitzHash(Bits({1, 0, 0, 0}), seed, 3), Bits({1, 0, 0}));
  EXPECT_EQ(*ToeplitzHash(Bits({0, 0, 0, 1}), seed, 3), Bits({1, 0, 1}));
}

// QKD-A4: FFT hashing equals the definition bit for bit, edge sizes included.
TEST(ToeplitzTest, QKD_A4_FftEqualsDense) {
  Rng rng(21);
  std::vector<std::pair<size_t, size_t>> sizes = {
      {1, 1},    {2, 1},       {2, 2},         {63, 1},        {64, 64},    {65, 33},
      {127, 1},  {128, 2},     {129, 129},     {1000, 1},      {1000, 999}, {1000, 1000},
      {4097, 7}, {4096, 4096}, {30011, 15000}, {100000, 50001}};
  for (int r = 0; r < 200; ++r) {
    const size_t n = 1 + rng.Below(3000);
    sizes.emplace_back(n, 1 + rng.Below(n));
  }
  for (const auto& [n, m] : sizes) {
    const BitVector key = RandomBits(rng, n);
    const BitVector seed = RandomBits(rng, n + m - 1);
    auto dense = ToeplitzHashDense(key, seed, m);
    auto fast = ToeplitzHash(key, seed, m);
    ASSERT_TRUE(dense.ok() && fast.ok()) << n << " x " << m;
    ASSERT_EQ(fast->size(), m);
    ASSERT_EQ(*fast, *dense) << n << " x " << m;
  }
}

// QKD-A4: all-ones inputs give the largest convolution values (up to n).
TEST(ToeplitzTest, QKD_A4_AllOnesLarge) {
  const size_t n = 1 << 20, m = 1 << 19;
  BitVector key(n), seed(n + m - 1);
  for (size_t i = 0; i < n; ++i) key.Set(i, true);
  for (size_t i = 0; i < seed.size(); ++i) seed.Set(i, true);
  auto fast = ToeplitzHash(key, seed, m);
  ASSERT_TRUE(fast.ok()) << fast.status();
  // Every row has n ones and n is even: every output bit is 0.
  EXPECT_EQ(fast->Count(), 0u);
  key.Flip(0);  // now n - 1 ones in every row
  fast = ToeplitzHash(key, seed, m);
  ASSERT_TRUE(fast.ok());
  EXPECT_EQ(fast->Count(), m);
}

// QKD-A1, QKD-A6: wrong seed length, m > n, and sizes above the exactness
// bound are refused.
TEST(ToeplitzTest, QKD_A6_RefusesBadSizes) {
  Rng rng(22);
  const BitVector key = RandomBits(rng, 100);
  EXPECT_EQ(ToeplitzHash(key, RandomBits(rng, 148), 50).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToeplitzHash(key, RandomBits(rng, 200), 101).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToeplitzHashDense(key, RandomBits(rng, 150), 50).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto none = ToeplitzHash(key, RandomBits(rng, 99), 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  const size_t n = kToeplitzMaxSeedBits;  // n + m - 1 = 2^24 + 1
  EXPECT_EQ(ToeplitzHash(BitVector(n), BitVector(n + 1), 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// QKD-L1..L4: the worked example of the spec.
TEST(SecureLengthTest, QKD_L5_WorkedExample) {
  SecureLengthInput in;
  in.n = 100000;
  in.k = 50000;
  in.qber_x = 0.02;
  in.leak_ec = 15000;
  in.leak_verify = 64;
  in.eps_sec = 1e-10;
  in.eps_cor = 1e-15;
  const SecureLength out = ComputeSecureLength(in);
  EXPECT_NEAR(out.mu, 0.026675535135, 1e-11);
  EXPECT_NEAR(out.phase_error, 0.046675535135, 1e-11);
  EXPECT_NEAR(out.l, 57608.394, 1e-3);
  EXPECT_EQ(out.bits, 57608u);
}

// QKD-L3, QKD-L4: no test bits, or a phase error that leaves nothing: 0.
TEST(SecureLengthTest, QKD_L4_ZeroWhenNothingIsSecret) {
  SecureLengthInput in;
  in.n = 100000;
  in.k = 0;
  in.qber_x = 0.0;
  EXPECT_EQ(ComputeSecureLength(in).bits, 0u);
  in.k = 50000;
  in.qber_x = 0.11;
  in.leak_ec = 60000;
  EXPECT_EQ(ComputeSecureLength(in).bits, 0u);
  EXPECT_LT(ComputeSecureLength(in).l, 0.0);
  in.qber_x = 0.6;  // capped at 0.5
  in.leak_ec = 0;
  EXPECT_EQ(ComputeSecureLength(in).phase_error, 0.5);
  EXPECT_EQ(ComputeSecureLength(in).bits, 0u);
}

// QKD-V1: the hash is PolyHash64 over (bit length as 8 bytes LE | key bytes).
TEST(VerificationHashTest, QKD_V1_Definition) {
  Rng rng(23);
  const BitVector key = RandomBits(rng, 1001);
  std::string message = {static_cast<char>(0xE9), 0x03, 0, 0, 0, 0, 0, 0};  // 1001
  message += key.ToBytes();
  EXPECT_EQ(VerificationHash(key, 0x0123456789ABCDEFull),
            PolyHash64(0x0123456789ABCDEFull, message));
}

// QKD-V2: one flipped bit, or the same bytes with another bit length, change
// the hash (for these keys: a collision has probability <= 18 / 2^64).
TEST(VerificationHashTest, QKD_V2_DetectsDifferences) {
  Rng rng(24);
  const BitVector key = RandomBits(rng, 1000);
  const uint64_t hash_key = rng.Next();
  for (size_t i : {0, 1, 500, 999}) {
    BitVector other = key;
    other.Flip(i);
    EXPECT_NE(VerificationHash(key, hash_key), VerificationHash(other, hash_key));
  }
  BitVector shorter = key.Slice(0, 8);
  BitVector longer = shorter;
  longer.PushBack(false);
  EXPECT_NE(VerificationHash(shorter, hash_key), VerificationHash(longer, hash_key));
}

// QKD-L6: the whole chain on BSC data with large blocks (n = 10^6 key bits,
// k = 10^6 X test bits, Q_Z = Q_X = 2 %): both ends' final keys are equal and
// the secret fraction is within 10 % of the asymptotic 1 - f h(Q_Z) - h(Q_X)
// (f and Q_Z measured on the block). Measured (seed 25): f = 1.160,
// fraction 0.6578 vs asymptotic 0.6945 (ratio 0.947: the finite-size mu
// = 0.0069 costs about 3.7 % of the key).
TEST(PipelineTest, QKD_L6_SecretFractionNearAsymptotic) {
  Rng rng(25);
  const size_t n = 1000000, k = 1000000;
  const double q = 0.02;
  BitVector alice = RandomBits(rng, n), bob = alice;
  uint64_t z_errors = 0;
  for (size_t i = 0; i < n; ++i) {
    if (rng.Bernoulli(q)) {
      bob.Flip(i);
      ++z_errors;
    }
  }
  uint64_t x_errors = 0;
  for (size_t i = 0; i < k; ++i) x_errors += rng.Bernoulli(q);
  const double qz = static_cast<double>(z_errors) / n;
  const double qx = static_cast<double>(x_errors) / k;
  const CascadeRun run = RunCascade(alice, bob, qz, {}, rng.Next());
  ASSERT_EQ(run.corrected, alice);
  const uint64_t hash_key = rng.Next();
  ASSERT_EQ(VerificationHash(alice, hash_key), VerificationHash(run.corrected, hash_key));
  SecureLengthInput in;
  in.n = n;
  in.k = k;
  in.qber_x = qx;
  in.leak_ec = run.disclosed_bits;
  in.leak_verify = 64;
  const SecureLength len = ComputeSecureLength(in);
  const BitVector seed = RandomBits(rng, n + len.bits - 1);
  auto ka = ToeplitzHash(alice, seed, len.bits);
  auto kb = ToeplitzHash(run.corrected, seed, len.bits);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_EQ(*ka, *kb);
  const double f = run.disclosed_bits / (n * BinaryEntropy(qz));
  const double fraction = static_cast<double>(len.bits) / n;
  const double asymptotic = 1 - f * BinaryEntropy(qz) - BinaryEntropy(qx);
  std::printf("f %.4f, Q_Z %.5f, Q_X %.5f, fraction %.4f, asymptotic %.4f, ratio %.4f\n", f, qz, qx,
              fraction, asymptotic, fraction / asymptotic);
  EXPECT_GT(f, 1.10);
  EXPECT_LT(f, 1.22);
  EXPECT_NEAR(fraction / asymptotic, 1.0, 0.10);
}

}  // namespace
}  // namespace qnet::qkd
