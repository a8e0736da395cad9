// LinkStateRouter tests (specs/network.md section 1). Several routers on the
// simulator, frames serialized and carried with a per-link delay; the expected
// routes come from an independent Floyd-Warshall oracle.
#include "network/router.h"

#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "stack/random.h"
#include "stack/sim/simulator.h"
#include "stack/trace.h"

namespace qnet::network {
namespace {

using results::v1::DropReason;

class CountingTracer : public Tracer {
 public:
  void Record(results::v1::TraceRecord r) override {
    if (r.has_drop()) ++drops[r.drop().reason()];
  }
  uint64_t Count(DropReason reason) const {
    auto it = drops.find(reason);
    return it == drops.end() ? 0 : it->second;
  }
  std::map<DropReason, uint64_t> drops;
};

struct LinkDef {
  std::string name, a, b;
  double pair_time_s = 0.01;
  double fidelity = 0.95;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

// Independent oracle: all-pairs shortest costs, and the name-order smallest
// shortest path built greedily from them.
class Oracle {
 public:
  Oracle(const std::vector<LinkDef>& links, RoutingMetric metric,
         const std::set<std::string>& removed = {}) {
    for (const auto& l : links) names_.insert({l.a, l.b});
    for (const auto& n : names_) {
      for (const auto& m : names_) d_[n][m] = n == m ? 0 : kInf;
    }
    for (const auto& l : links) {
      if (removed.contains(l.name)) continue;
      const double c = LinkCost(metric, l.pair_time_s, l.fidelity);
      if (!std::isfinite(c)) continue;
      adj_[l.a].push_back({l.b, l.name, c});
      adj_[l.b].push_back({l.a, l.name, c});
      d_[l.a][l.b] = std::min(d_[l.a][l.b], c);
      d_[l.b][l.a] = std::min(d_[l.b][l.a], c);
    }
    for (const auto& k : names_)
      for (const auto& i : names_)
        for (const auto& j : names_) d_[i][j] = std::min(d_[i][j], d_[i][k] + d_[k][j]);
  }
  double Cost(const std::string& s, const std::string& t) { return d_[s][t]; }
  std::vector<std::string> Path(const std::string& s, const std::string& t) {
    std::vector<std::string> path = {s};
    std::string cur = s;
    while (cur != t) {
      std::string best;
      for (const auto& e : adj_[cur]) {
        if (std::fabs(e.cost + d_[e.to][t] - d_[cur][t]) > 1e-9 * std::max(1.0, d_[cur][t])) {
          continue;
        }
        if (best.empty() || e.to < best) best = e.to;
      }
      path.push_back(best);
      cur = best;
    }
    return path;
  }
  const std::set<std::string>& names() const { return names_; }

 private:
  struct E {
    std::string to, link;
    double cost;
  };
  std::set<std::string> names_;
  std::map<std::string, std::map<std::string, double>> d_;
  std::map<std::string, std::vector<E>> adj_;
};

// Routers for every node of a topology, wired through the simulator.
class RouterNet {
 public:
  struct Node {
    std::unique_ptr<LinkStateRouter> router;
    CountingTracer tracer;
    std::vector<std::pair<Time, std::pair<std::string, bool>>> link_changes;
    int routes_changed = 0;
  };

  RouterNet(std::vector<LinkDef> links, RouterOptions options,
            absl::Duration delay = absl::Milliseconds(1))
      : links_(std::move(links)), delay_(delay) {
    std::map<std::string, std::vector<LocalLink>> local;
    for (const auto& l : links_) {
      local[l.a].push_back({l.name, l.b, l.pair_time_s, l.fidelity});
      local[l.b].push_back({l.name, l.a, l.pair_time_s, l.fidelity});
    }
    for (auto& [name, ll] : local) {
      auto node = std::make_unique<Node>();
      Node* n = node.get();
      const std::string from = name;
      LinkStateRouter::Output out;
      out.send = [this, from](const std::string& to, const v1::NetworkFrame& f) {
        Carry(from, to, f);
      };
      out.on_link_change = [this, n](const std::string& link, bool up) {
        n->link_changes.push_back({sim_.Now(), {link, up}});
      };
      out.on_routes_changed = [n] { ++n->routes_changed; };
      node->router =
          std::make_unique<LinkStateRouter>(name, ll, &sim_, &node->tracer, out, options);
      nodes_[name] = std::move(node);
    }
  }

  void Start() {
    for (auto& [name, n] : nodes_) n->router->Start();
  }
  void RunFor(absl::Duration d) { sim_.RunUntil(sim_.Now() + d); }
  sim::Simulator& sim() { return sim_; }
  LinkStateRouter& router(const std::string& n) { return *nodes_.at(n)->router; }
  Node& node(const std::string& n) { return *nodes_.at(n); }
  const std::vector<LinkDef>& links() const { return links_; }
  // Frames between a and b (either direction) are lost while cut.
  void Cut(const std::string& a, const std::string& b) { cut_.insert(Key(a, b)); }
  void Restore(const std::string& a, const std::string& b) { cut_.erase(Key(a, b)); }

  // Every node's route to every other equals the oracle's (cost and path).
  void ExpectRoutesMatch(Oracle& oracle) {
    for (const auto& s : oracle.names()) {
      for (const auto& t : oracle.names()) {
        if (s == t) continue;
        auto r = router(s).RouteTo(t);
        if (!std::isfinite(oracle.Cost(s, t))) {
          EXPECT_FALSE(r.has_value()) << s << "->" << t;
          continue;
        }
        ASSERT_TRUE(r.has_value()) << s << "->" << t;
        EXPECT_NEAR(r->cost, oracle.Cost(s, t), 1e-9) << s << "->" << t;
        EXPECT_EQ(r->path, oracle.Path(s, t)) << s << "->" << t;
        ASSERT_EQ(r->links.size() + 1, r->path.size());
        EXPECT_EQ(router(s).NextHop(t), r->path[1]);
      }
    }
  }

 private:
  static std::pair<std::string, std::string> Key(const std::string& a, const std::string& b) {
    return a < b ? std::make_pair(a, b) : std::make_pair(b, a);
  }
  void Carry(const std::string& from, const std::string& to, const v1::NetworkFrame& frame) {
    if (cut_.contains(Key(from, to))) return;
    const std::string bytes = frame.SerializeAsString();
    sim_.Schedule(sim_.Now() + delay_, [this, from, to, bytes] {
      v1::NetworkFrame f;
      ASSERT_TRUE(f.ParseFromString(bytes));
      LinkStateRouter& r = router(to);
      if (f.has_hello()) r.OnHello(from, f.hello());
      if (f.has_advert()) r.OnAdvert(from, f.advert());
    });
  }

  std::vector<LinkDef> links_;
  absl::Duration delay_;
  sim::Simulator sim_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  std::set<std::pair<std::string, std::string>> cut_;
};

std::string Name(int i) { return absl::StrFormat("n%03d", i); }

std::vector<LinkDef> Chain(int n) {
  std::vector<LinkDef> links;
  for (int i = 0; i + 1 < n; ++i) links.push_back({"l" + Name(i), Name(i), Name(i + 1)});
  return links;
}

std::vector<LinkDef> Ring(int n, Rng* rng) {
  std::vector<LinkDef> links;
  for (int i = 0; i < n; ++i) {
    links.push_back({"l" + Name(i), Name(i), Name((i + 1) % n), 0.01 + 0.09 * rng->Uniform(),
                     0.9 + 0.1 * rng->Uniform()});
  }
  return links;
}

std::vector<LinkDef> Grid(int side, Rng* rng) {
  std::vector<LinkDef> links;
  auto name = [](int r, int c) { return absl::StrCat("g", r, c); };
  for (int r = 0; r < side; ++r) {
    for (int c = 0; c < side; ++c) {
      if (c + 1 < side) {
        links.push_back({absl::StrCat("h", r, c), name(r, c), name(r, c + 1),
                         rng ? 0.01 + 0.09 * rng->Uniform() : 0.01});
      }
      if (r + 1 < side) {
        links.push_back({absl::StrCat("v", r, c), name(r, c), name(r + 1, c),
                         rng ? 0.01 + 0.09 * rng->Uniform() : 0.01});
      }
    }
  }
  return links;
}

RouterOptions Options(RoutingMetric metric) {
  RouterOptions o;
  o.metric = metric;
  return o;
}

// NET-R-20, NET-R-22, NET-R-28: a 100-node chain converges; every node's route
// is the chain segment; queries do not rerun Dijkstra.
TEST(RouterConvergence, NET_R_22_Chain100) {
  RouterNet net(Chain(100), Options(RoutingMetric::kHops));
  net.Start();
  net.RunFor(absl::Seconds(1));
  Oracle oracle(net.links(), RoutingMetric::kHops);
  net.ExpectRoutesMatch(oracle);
  auto r = net.router(Name(0)).RouteTo(Name(99));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->path.size(), 100u);
  EXPECT_EQ(r->cost, 99.0);
  // 99 equal links of 10 ms: E[max] = t * H_99 (NET-R-30).
  double h = 0;
  for (int k = 1; k <= 99; ++k) h += 1.0 / k;
  EXPECT_NEAR(r->expected_pair_time_s, 0.01 * h, 1e-12);
  const double w = (4 * 0.95 - 1) / 3;
  EXPECT_NEAR(r->expected_fidelity, (1 + 3 * std::pow(w, 99)) / 4, 1e-12);  // NET-R-29
  // NET-R-23: steady state, routes cached: queries cost no Dijkstra.
  const uint64_t runs = net.router(Name(50)).stats().route_computations;
  for (int i = 0; i < 100; ++i) net.router(Name(50)).RouteTo(Name(i));
  EXPECT_EQ(net.router(Name(50)).stats().route_computations, runs);
}

TEST(RouterConvergence, NET_R_22_RingPairTime) {
  Rng rng(7);
  RouterNet net(Ring(9, &rng), Options(RoutingMetric::kPairTime));
  net.Start();
  net.RunFor(absl::Milliseconds(500));
  Oracle oracle(net.links(), RoutingMetric::kPairTime);
  net.ExpectRoutesMatch(oracle);
}

TEST(RouterConvergence, NET_R_28_Grid4x4HopsTiesByName) {
  RouterNet net(Grid(4, nullptr), Options(RoutingMetric::kHops));
  net.Start();
  net.RunFor(absl::Milliseconds(500));
  Oracle oracle(net.links(), RoutingMetric::kHops);
  net.ExpectRoutesMatch(oracle);
  // Corner to corner: 20 shortest paths; the name-smallest runs along row 0 first (g01 < g10).
  auto r = net.router("g00").RouteTo("g33");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->path, (std::vector<std::string>{"g00", "g01", "g02", "g03", "g13", "g23", "g33"}));
}

TEST(RouterConvergence, NET_R_22_Grid4x4PairTimeAndFidelity) {
  for (RoutingMetric metric : {RoutingMetric::kPairTime, RoutingMetric::kFidelity}) {
    Rng rng(11);
    auto links = Grid(4, &rng);
    for (auto& l : links) l.fidelity = 0.8 + 0.2 * rng.Uniform();
    RouterNet net(links, Options(metric));
    net.Start();
    net.RunFor(absl::Milliseconds(500));
    Oracle oracle(net.links(), metric);
    net.ExpectRoutesMatch(oracle);
  }
}

// NET-R-24..26: each metric picks a different path between a and z.
TEST(RouterMetric, NET_R_24_25_26_EachMetricItsPath) {
  std::vector<LinkDef> links = {
      {"az", "a", "z", 10.0, 0.99},                                // 1 hop, slow
      {"ab", "a", "b", 0.1, 0.8},   {"bz", "b", "z", 0.1, 0.8},    // fast, poor
      {"ac", "a", "c", 1.0, 0.999}, {"cd", "c", "d", 1.0, 0.999},  // good
      {"dz", "d", "z", 1.0, 0.999},
  };
  struct Case {
    RoutingMetric metric;
    std::vector<std::string> path;
    double cost, fidelity, pair_time;
  };
  const double w99 = (4 * 0.99 - 1) / 3, w8 = (4 * 0.8 - 1) / 3, w999 = (4 * 0.999 - 1) / 3;
  const std::vector<Case> cases = {
      {RoutingMetric::kHops, {"a", "z"}, 1.0, 0.99, 10.0},
      {RoutingMetric::kPairTime, {"a", "b", "z"}, 0.2, (1 + 3 * w8 * w8) / 4, 0.15},
      {RoutingMetric::kFidelity,
       {"a", "c", "d", "z"},
       -3 * std::log(w999),
       (1 + 3 * w999 * w999 * w999) / 4,
       1.0 + 0.5 + 1.0 / 3},
  };
  for (const auto& c : cases) {
    RouterNet net(links, Options(c.metric));
    net.Start();
    net.RunFor(absl::Milliseconds(200));
    auto r = net.router("a").RouteTo("z");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->path, c.path);
    EXPECT_NEAR(r->cost, c.cost, 1e-12);
    EXPECT_NEAR(r->expected_fidelity, c.fidelity, 1e-12);
    EXPECT_NEAR(r->expected_pair_time_s, c.pair_time, 1e-12);
    auto back = net.router("z").RouteTo("a");
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->path, std::vector<std::string>(c.path.rbegin(), c.path.rend()));
  }
  EXPECT_NEAR(-std::log(w99), LinkCost(RoutingMetric::kFidelity, 5, 0.99), 1e-15);
}

// NET-R-27: a link at F <= 1/4 is unusable under the fidelity metric.
TEST(RouterMetric, NET_R_27_FidelityQuarterUnusable) {
  EXPECT_EQ(LinkCost(RoutingMetric::kFidelity, 1, 0.25), kInf);
  EXPECT_EQ(LinkCost(RoutingMetric::kFidelity, 1, 0.1), kInf);
  EXPECT_EQ(LinkCost(RoutingMetric::kFidelity, 1, 1.0), 0.0);
  RouterNet net({{"ab", "a", "b", 0.01, 0.25}, {"bc", "b", "c", 0.01, 0.9}},
                Options(RoutingMetric::kFidelity));
  net.Start();
  net.RunFor(absl::Milliseconds(100));
  EXPECT_FALSE(net.router("a").RouteTo("c").has_value());
  EXPECT_TRUE(net.router("b").RouteTo("c").has_value());
}

}  // namespace
}  // namespace qnet::network
