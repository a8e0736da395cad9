// Cascade efficiency table (specs/qkd.md QKD-C*; REFERENCE.md "QKD
// post-processing"): for QBER 1, 2, 5, 8 % and n = 10^4 (100 blocks) and
// 10^5 (20 blocks) of binary-symmetric-channel data, the mean efficiency
// f = disclosed / (n h(Q)) with Q the block's actual error fraction, the
// disclosed parities, the parity-request rounds and the blocks left with
// residual errors; then n = 10^6 at 2 % (5 blocks) with the default cap of
// 4096 queries per message and with no cap: the same disclosed bits, more
// messages (QKD-C8). Prints markdown tables. Usage: cascade_efficiency [seed]
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "apps/qkd/postproc/cascade.h"
#include "apps/qkd/postproc/privacy.h"
#include "stack/random.h"

int main(int argc, char** argv) {
  using qnet::qkd::BitVector;
  const uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1;
  qnet::Rng rng(seed);
  std::printf(
      "| QBER | n | blocks | f (mean) | f (min..max) | disclosed bits (mean) | rounds (mean) "
      "| blocks with residual errors |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const uint32_t n : {10000u, 100000u}) {
    const int blocks = n == 10000 ? 100 : 20;
    for (const double q : {0.01, 0.02, 0.05, 0.08}) {
      double f_sum = 0, f_min = 1e9, f_max = 0, disclosed = 0, rounds = 0;
      int residual = 0;
      for (int b = 0; b < blocks; ++b) {
        BitVector alice(n), bob(n);
        uint64_t errors = 0;
        for (uint32_t i = 0; i < n; ++i) {
          const bool x = (rng.Next() & 1) != 0;
          const bool e = rng.Bernoulli(q);
          errors += e;
          alice.Set(i, x);
          bob.Set(i, x != e);
        }
        const auto run = qnet::qkd::RunCascade(alice, bob, q, {}, rng.Next());
        const double actual = static_cast<double>(errors) / n;
        const double f = run.disclosed_bits / (n * qnet::qkd::BinaryEntropy(actual));
        f_sum += f;
        f_min = std::min(f_min, f);
        f_max = std::max(f_max, f);
        disclosed += static_cast<double>(run.disclosed_bits);
        rounds += run.rounds;
        residual += run.corrected == alice ? 0 : 1;
      }
      std::printf("| %.0f %% | %u | %d | %.3f | %.3f..%.3f | %.0f | %.1f | %d |\n", 100 * q, n,
                  blocks, f_sum / blocks, f_min, f_max, disclosed / blocks, rounds / blocks,
                  residual);
    }
  }
  std::printf("\n| QBER | n | block | cap | f | disclosed bits | rounds | residual errors |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  const uint32_t n = 1000000;
  const double q = 0.02;
  for (int b = 0; b < 5; ++b) {
    BitVector alice(n), bob(n);
    uint64_t errors = 0;
    for (uint32_t i = 0; i < n; ++i) {
      const bool x = (rng.Next() & 1) != 0;
      const bool e = rng.Bernoulli(q);
      errors += e;
      alice.Set(i, x);
      bob.Set(i, x != e);
    }
    const uint64_t cascade_seed = rng.Next();
    for (const uint32_t cap : {4096u, 0xFFFFFFFFu}) {
      qnet::qkd::CascadeParams params;
      params.max_queries_per_round = cap;
      const auto run = qnet::qkd::RunCascade(alice, bob, q, params, cascade_seed);
      const double f = run.disclosed_bits / (n * qnet::qkd::BinaryEntropy(double(errors) / n));
      std::printf("| 2 %% | %u | %d | %s | %.3f | %llu | %u | %s |\n", n, b,
                  cap == 4096u ? "4096" : "none", f,
                  static_cast<unsigned long long>(run.disclosed_bits), run.rounds,
                  run.corrected == alice ? "no" : "yes");
    }
  }
  return 0;
}
