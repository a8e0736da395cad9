// Cascade efficiency table (specs/qkd.md QKD-C*; REFERENCE.md "QKD
// post-processing"): for QBER 1, 2, 5, 8 % and n = 10^4 (100 blocks) and
// 10^5 (20 blocks) of binary-symmetric-channel data, the mean efficiency
// f = disclosed / (n h(Q)) with Q the block's actual error fraction, the
// disclosed parities, the parity-request rounds and the blocks left with
// residual errors. Prints a markdown table. Usage: cascade_efficiency [seed]
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
  return 0;
}
