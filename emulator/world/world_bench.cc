// World throughput: requests handled per second for the Generate / Generate /
// Free / Free cycle of one link (two Generates that pair into a heralded
// batch, then both ends free their qubit at the herald).
//
//   make -C build-physics world_bench && build-physics/emulator/world/world_bench
#include "benchmark/benchmark.h"
#include "emulator/world/world.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;

class CountingOutput : public World::Output {
 public:
  void Deliver(const std::string&, pv::WorldToNode message, Time at) override {
    if (message.has_herald()) last_herald = at;
    ++deliveries;
  }
  void Record(results::v1::TraceRecord) override { ++records; }
  Time last_herald;
  uint64_t deliveries = 0, records = 0;
};

pv::NodeToWorld Message(const std::string& hello_node) {
  pv::NodeToWorld m;
  m.set_version(1);
  m.mutable_hello()->set_node(hello_node);
  return m;
}

void BM_GenerateGenerateFree(benchmark::State& state, HeraldingScheme scheme) {
  Topology topology;
  HardwareSpec hw;
  hw.name = "hw";
  hw.t1_s = 1.0;
  hw.t2_s = 0.5;
  topology.hardware.push_back(hw);
  topology.nodes = {NodeSpec{"a", "hw", 0}, NodeSpec{"b", "hw", 0}};
  LinkSpec link;
  link.name = "ab";
  link.a = "a";
  link.b = "b";
  link.length_km = 10;
  link.scheme = scheme;
  link.efficiency = 0.5;
  link.p_success = 0.1;
  link.fidelity = 0.9;
  topology.links.push_back(link);
  CountingOutput out;
  World world(topology, Rng(1), &out);
  world.Handle("a", Message("a"), Time::Zero());
  world.Handle("b", Message("b"), Time::Zero());

  pv::NodeToWorld generate;
  generate.set_version(1);
  pv::Generate* g = generate.mutable_generate();
  g->set_link("ab");
  g->set_queue_id(1);
  g->set_slot(0);
  g->set_alpha(0.1);
  pv::NodeToWorld free;
  free.set_version(1);
  free.mutable_free()->set_slot(0);

  Time now = Time::Zero();
  uint64_t batch = 0;
  for (auto _ : state) {
    g->set_batch(++batch);
    world.Handle("a", generate, now);
    world.Handle("b", generate, now);
    now = out.last_herald;
    world.Handle("a", free, now);
    world.Handle("b", free, now);
  }
  if (world.errors() != 0) state.SkipWithError("World answered with errors");
  state.counters["requests/s"] =
      benchmark::Counter(static_cast<double>(world.operations()), benchmark::Counter::kIsRate);
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_GenerateGenerateFree, single_click, HeraldingScheme::kSingleClick);
BENCHMARK_CAPTURE(BM_GenerateGenerateFree, werner, HeraldingScheme::kWerner);

}  // namespace
}  // namespace qnet::world

BENCHMARK_MAIN();
