// Throughput of the GF(2^64) polynomial hash (tags, verification hash) and of
// Authenticator Seal + Open on message sizes the session sends.
#include <cstdint>
#include <string>

#include "apps/qkd/auth/authenticator.h"
#include "apps/qkd/auth/poly_hash.h"
#include "benchmark/benchmark.h"

namespace qnet::qkd {
namespace {

void BM_PolyHash64(benchmark::State& state) {
  std::string m(static_cast<size_t>(state.range(0)), '\x5a');
  uint64_t k = 0x0123456789ABCDEFull;
  for (auto _ : state) {
    k = PolyHash64(k, m) | 1;
    benchmark::DoNotOptimize(k);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_PolyHash64)->Arg(64)->Arg(1500)->Arg(48 * 1024);

void BM_Gf64Multiply(benchmark::State& state) {
  uint64_t a = 0x9E3779B97F4A7C15ull, b = 0xC2B2AE3D27D4EB4Full;
  for (auto _ : state) {
    a = Gf64Multiply(a, b);
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_Gf64Multiply);

void BM_SealOpen(benchmark::State& state) {
  const size_t words = 1 << 20;
  std::string psk(8 + 16 * words, '\x33');
  auto alice = Authenticator::Create(psk, true);
  auto bob = Authenticator::Create(psk, false);
  const std::string m(static_cast<size_t>(state.range(0)), 'm');
  for (auto _ : state) {
    auto f = alice->Seal(m);
    if (!f.ok()) {
      state.SkipWithError("pad exhausted");
      break;
    }
    auto got = bob->Open(*f);
    benchmark::DoNotOptimize(got);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_SealOpen)->Arg(64)->Arg(4096)->Iterations(100000);

}  // namespace
}  // namespace qnet::qkd

BENCHMARK_MAIN();
