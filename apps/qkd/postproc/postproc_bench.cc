// Post-processing throughput on one core (specs/qkd.md sections 4-6): Mbit/s
// of sifted key for Cascade (both ends in process), Toeplitz hashing (m = n/2)
// and the whole chain (Cascade + verification + secure length + Toeplitz at
// both ends) at QBER 2 %. Counter "Mbit/s" = sifted bits / wall time.
#include <benchmark/benchmark.h>

#include "apps/qkd/postproc/cascade.h"
#include "apps/qkd/postproc/privacy.h"
#include "stack/random.h"

namespace qnet::qkd {
namespace {

constexpr double kQber = 0.02;

struct Data {
  BitVector alice, bob, seed;
};
Data MakeData(size_t n) {
  Rng rng(42);
  Data d{BitVector(n), BitVector(n), BitVector(n + n / 2 - 1)};
  for (size_t i = 0; i < n; ++i) {
    const bool x = (rng.Next() & 1) != 0;
    d.alice.Set(i, x);
    d.bob.Set(i, x != rng.Bernoulli(kQber));
  }
  for (size_t i = 0; i < d.seed.size(); ++i) d.seed.Set(i, (rng.Next() & 1) != 0);
  return d;
}

void Rate(benchmark::State& state, size_t n) {
  state.counters["Mbit/s"] = benchmark::Counter(static_cast<double>(n) * state.iterations() / 1e6,
                                                benchmark::Counter::kIsRate);
}

void BM_Cascade(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Data d = MakeData(n);
  uint64_t seed = 1;
  for (auto _ : state) {
    auto run = RunCascade(d.alice, d.bob, kQber, {}, seed++);
    benchmark::DoNotOptimize(run.disclosed_bits);
  }
  Rate(state, n);
}
BENCHMARK(BM_Cascade)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

void BM_Toeplitz(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Data d = MakeData(n);
  for (auto _ : state) {
    auto y = ToeplitzHash(d.alice, d.seed, n / 2);
    benchmark::DoNotOptimize(y->size());
  }
  Rate(state, n);
}
BENCHMARK(BM_Toeplitz)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

void BM_Chain(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Data d = MakeData(n);
  uint64_t seed = 1;
  for (auto _ : state) {
    const CascadeRun run = RunCascade(d.alice, d.bob, kQber, {}, seed++);
    const bool same = VerificationHash(d.alice, seed) == VerificationHash(run.corrected, seed);
    SecureLengthInput in;
    in.n = n;
    in.k = n;
    in.qber_x = kQber;
    in.leak_ec = run.disclosed_bits;
    in.leak_verify = 64;
    const SecureLength len = ComputeSecureLength(in);
    const BitVector seed_bits = d.seed.Slice(0, n + len.bits - 1);
    auto ka = ToeplitzHash(d.alice, seed_bits, len.bits);
    auto kb = ToeplitzHash(run.corrected, seed_bits, len.bits);
    benchmark::DoNotOptimize(same && *ka == *kb);
  }
  Rate(state, n);
}
BENCHMARK(BM_Chain)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qnet::qkd

BENCHMARK_MAIN();
