// Simulator throughput: events per second for a self-rescheduling event
// population (a steady queue of `range(0)` pending events), and timers re-armed
// the way protocol layers use them.
//   build/stack/sim/simulator_bench --benchmark_counters_tabular=true
#include "benchmark/benchmark.h"
#include "stack/sim/simulator.h"
#include "stack/random.h"

namespace qnet::sim {
namespace {

void BM_ScheduleAndRun(benchmark::State& state) {
  const int pending = static_cast<int>(state.range(0));
  Simulator sim;
  Rng rng(1);
  std::function<void()> tick;
  tick = [&] { sim.Schedule(sim.Now() + absl::Nanoseconds(1 + rng.Below(1000)), tick); };
  for (int i = 0; i < pending; ++i) sim.Schedule(Time::FromNanos(static_cast<int64_t>(rng.Below(1000))), tick);
  for (auto _ : state) sim.Step();
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ScheduleAndRun)->Arg(16)->Arg(1024)->Arg(65536);

void BM_TimerRearm(benchmark::State& state) {
  Simulator sim;
  std::unique_ptr<Timer> timer;
  timer = sim.CreateTimer([&] { timer->ArmAt(sim.Now() + absl::Microseconds(10)); });
  timer->ArmAt(Time::FromNanos(1));
  for (auto _ : state) {
    timer->ArmAt(sim.Now() + absl::Microseconds(5));  // re-arm before it fires, as a retransmit timer does
    sim.Step();
  }
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TimerRearm);

}  // namespace
}  // namespace qnet::sim

BENCHMARK_MAIN();
