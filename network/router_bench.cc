// LinkStateRouter cost (specs/network.md section 1): one route recomputation
// after an advert change on chains and grids, and a whole chain converging in
// virtual time. Run: ninja -C build network_router_bench &&
// build/network/network_router_bench
// Measured (RelWithDebInfo, 2 shared cores, CPU time): one recompute 0.22 ms on
// a 100-node chain, 0.16 ms on a 10x10 grid, 0.017 ms on a 4x4 grid; a 100-node
// chain converging (200 ms virtual) 60 ms.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "network/router.h"
#include "stack/sim/simulator.h"
#include "stack/trace.h"

namespace qnet::network {
namespace {

struct Edge {
  std::string link, a, b;
};

std::vector<Edge> ChainEdges(int n) {
  std::vector<Edge> e;
  for (int i = 0; i + 1 < n; ++i) {
    e.push_back({absl::StrCat("l", i), absl::StrCat("n", i), absl::StrCat("n", i + 1)});
  }
  return e;
}

std::vector<Edge> GridEdges(int side) {
  std::vector<Edge> e;
  auto name = [](int r, int c) { return absl::StrCat("g", r, "_", c); };
  for (int r = 0; r < side; ++r) {
    for (int c = 0; c < side; ++c) {
      if (c + 1 < side) e.push_back({absl::StrCat("h", r, "_", c), name(r, c), name(r, c + 1)});
      if (r + 1 < side) e.push_back({absl::StrCat("v", r, "_", c), name(r, c), name(r + 1, c)});
    }
  }
  return e;
}

// One router (the first node of the first edge) that holds every other node's
// advert; each iteration changes one remote advert and asks for a route, so it
// runs exactly one Dijkstra.
void RunRecompute(benchmark::State& state, const std::vector<Edge>& edges) {
  std::map<std::string, v1::LinkStateAdvert> adverts;
  for (const auto& e : edges) {
    for (const auto& [self, other] : {std::pair(e.a, e.b), std::pair(e.b, e.a)}) {
      auto& a = adverts[self];
      a.set_origin(self);
      a.set_sequence(1);
      auto* l = a.add_links();
      l->set_link(e.link);
      l->set_neighbour(other);
      l->set_pair_time_s(0.01);
      l->set_fidelity(0.95);
    }
  }
  const std::string me = edges[0].a;
  std::vector<LocalLink> local;
  for (const auto& l : adverts[me].links()) local.push_back({l.link(), l.neighbour(), 0.01, 0.95});
  sim::Simulator sim;
  NullTracer tracer;
  LinkStateRouter router(me, local, &sim, &tracer, {}, RouterOptions{});
  router.Start();
  const std::string via = local[0].neighbour;
  for (auto& [origin, a] : adverts) {
    if (origin != me) router.OnAdvert(via, a);
  }
  const std::string far = edges.back().b;
  v1::LinkStateAdvert& changing = adverts[far];
  for (auto _ : state) {
    changing.set_sequence(changing.sequence() + 1);
    router.OnAdvert(via, changing);
    benchmark::DoNotOptimize(router.RouteTo(far));
  }
  state.counters["nodes"] = static_cast<double>(adverts.size());
}

void BM_RecomputeChain(benchmark::State& state) {
  RunRecompute(state, ChainEdges(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_RecomputeChain)->Arg(10)->Arg(100);

void BM_RecomputeGrid(benchmark::State& state) {
  RunRecompute(state, GridEdges(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_RecomputeGrid)->Arg(4)->Arg(10);

// Every router of an n-node chain from Start until every advert has reached
// every node (200 ms of virtual time, 1 ms per hop), plus one route query per
// node.
void BM_ConvergeChain(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    sim::Simulator sim;
    NullTracer tracer;
    std::map<std::string, std::unique_ptr<LinkStateRouter>> routers;
    std::map<std::string, std::vector<LocalLink>> local;
    for (const auto& e : ChainEdges(n)) {
      local[e.a].push_back({e.link, e.b, 0.01, 0.95});
      local[e.b].push_back({e.link, e.a, 0.01, 0.95});
    }
    for (auto& [name, links] : local) {
      LinkStateRouter::Output out;
      out.send = [&sim, &routers, name](const std::string& to, const v1::NetworkFrame& f) {
        sim.Schedule(sim.Now() + absl::Milliseconds(1), [&routers, name, to, f] {
          if (f.has_hello()) routers[to]->OnHello(name, f.hello());
          if (f.has_advert()) routers[to]->OnAdvert(name, f.advert());
        });
      };
      routers[name] =
          std::make_unique<LinkStateRouter>(name, links, &sim, &tracer, out, RouterOptions{});
    }
    for (auto& [name, r] : routers) r->Start();
    sim.RunUntil(Time::FromSeconds(0.2));
    for (auto& [name, r] : routers) benchmark::DoNotOptimize(r->RouteTo("n0"));
  }
}
BENCHMARK(BM_ConvergeChain)->Arg(100)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qnet::network

BENCHMARK_MAIN();
