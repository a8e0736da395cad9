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
    if (r.has_link_liveness()) liveness.push_back(r.link_liveness());
  }
  uint64_t Count(DropReason reason) const {
    auto it = drops.find(reason);
    return it == drops.end() ? 0 : it->second;
  }
  std::map<DropReason, uint64_t> drops;
  std::vector<results::v1::LinkLiveness> liveness;
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
    for (const auto& n : names_) index_[n] = static_cast<int>(index_.size());
    const size_t n = names_.size();
    d_.assign(n, std::vector<double>(n, kInf));
    adj_.resize(n);
    for (size_t i = 0; i < n; ++i) d_[i][i] = 0;
    for (const auto& l : links) {
      if (removed.contains(l.name)) continue;
      const double c = LinkCost(metric, l.pair_time_s, l.fidelity);
      if (!std::isfinite(c)) continue;
      const int a = index_[l.a], b = index_[l.b];
      adj_[a].push_back({b, c});
      adj_[b].push_back({a, c});
      d_[a][b] = d_[b][a] = std::min(d_[a][b], c);
    }
    for (size_t k = 0; k < n; ++k)
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < n; ++j) d_[i][j] = std::min(d_[i][j], d_[i][k] + d_[k][j]);
  }
  double Cost(const std::string& s, const std::string& t) { return d_[index_[s]][index_[t]]; }
  // Greedy: the name-smallest neighbour that stays on a shortest path.
  std::vector<std::string> Path(const std::string& s, const std::string& t) {
    std::vector<std::string> names(names_.begin(), names_.end());
    const int dst = index_[t];
    std::vector<std::string> path = {s};
    int cur = index_[s];
    while (cur != dst) {
      int best = -1;
      for (const auto& [to, cost] : adj_[cur]) {
        if (std::fabs(cost + d_[to][dst] - d_[cur][dst]) > 1e-9 * std::max(1.0, d_[cur][dst])) {
          continue;
        }
        if (best < 0 || to < best) best = to;  // index order is name order
      }
      path.push_back(names[best]);
      cur = best;
    }
    return path;
  }
  const std::set<std::string>& names() const { return names_; }

 private:
  std::set<std::string> names_;
  std::map<std::string, int> index_;
  std::vector<std::vector<double>> d_;
  std::vector<std::vector<std::pair<int, double>>> adj_;
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
  // Frames from `from` to `to` only are lost while cut.
  void CutOneWay(const std::string& from, const std::string& to) { one_way_.insert({from, to}); }
  void RestoreOneWay(const std::string& from, const std::string& to) {
    one_way_.erase({from, to});
  }

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
    if (cut_.contains(Key(from, to)) || one_way_.contains({from, to})) return;
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
  std::set<std::pair<std::string, std::string>> one_way_;
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

// NET-R-22, NET-R-23, NET-R-28..31: a 100-node chain converges; every node's route
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

// NET-R-25..27: each metric picks a different path between a and z.
TEST(RouterMetric, NET_R_25_26_27_EachMetricItsPath) {
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

// NET-R-2, NET-R-5, NET-R-6, NET-R-20, NET-R-22: a cut link goes down at both
// ends within the dead interval, every route avoids it, and it comes back when
// hellos resume.
TEST(RouterLiveness, NET_R_2_CutLinkDownWithinDeadIntervalAndBack) {
  Rng rng(3);
  RouterOptions options = Options(RoutingMetric::kHops);
  RouterNet net(Ring(8, &rng), options);
  net.Start();
  net.RunFor(absl::Milliseconds(300));
  Oracle full(net.links(), RoutingMetric::kHops);
  net.ExpectRoutesMatch(full);
  const std::string a = Name(0), b = Name(1), link = "l" + Name(0);
  ASSERT_EQ(net.router(a).RouteTo(b)->links, std::vector<std::string>{link});

  const Time cut = net.sim().Now();
  net.Cut(a, b);
  net.RunFor(absl::Milliseconds(300));
  const absl::Duration dead = options.hello_interval * options.dead_intervals;
  for (const auto& end : {a, b}) {
    const auto& changes = net.node(end).link_changes;
    ASSERT_EQ(changes.size(), 1u) << end;
    EXPECT_EQ(changes[0].second, std::make_pair(link, false));
    // The last hello arrived at most one interval before the cut (plus the
    // 1 ms delay), so down within (dead - interval, dead + delay] of the cut.
    EXPECT_GT(changes[0].first - cut, dead - options.hello_interval) << end;
    EXPECT_LE(changes[0].first - cut, dead + absl::Milliseconds(1)) << end;
    EXPECT_FALSE(net.router(end).LinkUp(link));
  }
  Oracle without(net.links(), RoutingMetric::kHops, {link});
  net.ExpectRoutesMatch(without);
  EXPECT_EQ(net.router(a).RouteTo(b)->path.size(), 8u);  // the long way round

  const Time restore = net.sim().Now();
  net.Restore(a, b);
  net.RunFor(absl::Milliseconds(300));
  for (const auto& end : {a, b}) {
    const auto& changes = net.node(end).link_changes;
    ASSERT_EQ(changes.size(), 2u) << end;
    EXPECT_EQ(changes[1].second, std::make_pair(link, true));
    // NET-R-5: the first hello after the restore says "not heard"; its
    // receiver answers at once (NET-R-1a), which brings the other end up, and
    // that end's own hello the first: one interval and three delays.
    EXPECT_LE(changes[1].first - restore, options.hello_interval + absl::Milliseconds(3));
    EXPECT_TRUE(net.router(end).LinkUp(link));
  }
  net.ExpectRoutesMatch(full);
}

// NET-R-3, NET-R-5: the composition's report takes a link down at once; the
// next hello brings it back.
TEST(RouterLiveness, NET_R_3_SetLinkDownAtOnceUpOnNextHello) {
  RouterNet net(Chain(3), Options(RoutingMetric::kHops));
  net.Start();
  net.RunFor(absl::Milliseconds(100));
  const std::string link = "l" + Name(0);
  ASSERT_TRUE(net.router(Name(2)).RouteTo(Name(0)).has_value());
  net.router(Name(1)).SetLinkDown(link);
  EXPECT_FALSE(net.router(Name(1)).LinkUp(link));
  ASSERT_EQ(net.node(Name(1)).link_changes.size(), 1u);
  EXPECT_EQ(net.node(Name(1)).link_changes[0].first, net.sim().Now());
  EXPECT_FALSE(net.router(Name(1)).RouteTo(Name(0)).has_value());  // NET-R-21
  // n2 hears n1's new advert after one delay: no route over the link (NET-R-20).
  net.RunFor(absl::Microseconds(1500));
  EXPECT_FALSE(net.router(Name(2)).RouteTo(Name(0)).has_value());
  // NET-R-2a: n1's hello saying "not heard" took the link down at n0 one delay
  // after n1's report.
  ASSERT_EQ(net.node(Name(0)).link_changes.size(), 1u);
  EXPECT_EQ(net.node(Name(0)).link_changes[0].second, std::make_pair(link, false));
  EXPECT_EQ(net.node(Name(0)).link_changes[0].first,
            net.node(Name(1)).link_changes[0].first + absl::Milliseconds(1));
  // The hellos still flow, so the three-way exchange brings it back at both
  // ends within a few delays (NET-R-5).
  net.RunFor(absl::Milliseconds(5));
  ASSERT_EQ(net.node(Name(0)).link_changes.size(), 2u);
  EXPECT_TRUE(net.router(Name(1)).LinkUp(link));
  EXPECT_TRUE(net.router(Name(0)).LinkUp(link));
  EXPECT_GT(net.node(Name(0)).link_changes[1].first, net.node(Name(1)).link_changes[0].first);
  net.RunFor(absl::Milliseconds(5));
  ASSERT_TRUE(net.router(Name(2)).RouteTo(Name(0)).has_value());
  EXPECT_EQ(net.router(Name(2)).RouteTo(Name(0))->path.size(), 3u);
}

// NET-R-2a, NET-R-1a, NET-R-6: when only one direction fails, the end that
// stops hearing declares the link down after the dead interval and the other
// end, which still hears it, follows one delay later instead of never; both
// come back up together once the direction works again, and every transition
// is traced with its reason.
TEST(RouterLiveness, NET_R_2a_OneSidedLossTakesTheLinkDownAtBothEnds) {
  RouterOptions options = Options(RoutingMetric::kHops);
  RouterNet net(Chain(2), options);
  const std::string a = Name(0), b = Name(1), link = "l" + Name(0);
  net.Start();
  net.RunFor(absl::Milliseconds(100));
  const Time cut = net.sim().Now();
  net.CutOneWay(b, a);  // a no longer hears b; b still hears a
  net.RunFor(absl::Milliseconds(300));
  const auto& at_a = net.node(a).link_changes;
  const auto& at_b = net.node(b).link_changes;
  ASSERT_EQ(at_a.size(), 1u);
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(at_a[0].second, std::make_pair(link, false));
  EXPECT_EQ(at_b[0].second, std::make_pair(link, false));
  const absl::Duration dead = options.hello_interval * options.dead_intervals;
  EXPECT_LE(at_a[0].first - cut, dead + absl::Milliseconds(1));
  EXPECT_EQ(at_b[0].first, at_a[0].first + absl::Milliseconds(1));
  // b keeps hearing a, but a's hellos say "not heard": b stays down.
  EXPECT_FALSE(net.router(b).LinkUp(link));

  const Time restore = net.sim().Now();
  net.RestoreOneWay(b, a);
  net.RunFor(absl::Milliseconds(100));
  ASSERT_EQ(at_a.size(), 2u);
  ASSERT_EQ(at_b.size(), 2u);
  EXPECT_TRUE(at_a[1].second.second);
  EXPECT_TRUE(at_b[1].second.second);
  EXPECT_LE(std::max(at_a[1].first, at_b[1].first) - restore,
            options.hello_interval + absl::Milliseconds(3));
  const auto& traced_a = net.node(a).tracer.liveness;
  const auto& traced_b = net.node(b).tracer.liveness;
  ASSERT_EQ(traced_a.size(), 2u);
  ASSERT_EQ(traced_b.size(), 2u);
  EXPECT_EQ(traced_a[0].reason(), "dead interval");
  EXPECT_EQ(traced_b[0].reason(), "neighbour's verdict");
  EXPECT_EQ(traced_a[1].reason(), "hello");
  EXPECT_TRUE(traced_b[1].up());
  EXPECT_EQ(traced_a[0].link(), link);
}

// NET-R-2, NET-R-6a: a dead interval stretched by min_dead_interval: a 0.5 s
// silence (a stalled process) takes no link down, a 1.5 s one does, at both
// ends.
TEST(RouterLiveness, NET_R_2_MinDeadIntervalRidesOutAStall) {
  RouterOptions options = Options(RoutingMetric::kHops);
  options.min_dead_interval = absl::Seconds(1);
  RouterNet net(Chain(2), options);
  const std::string a = Name(0), b = Name(1);
  net.Start();
  net.RunFor(absl::Milliseconds(100));
  net.Cut(a, b);
  net.RunFor(absl::Milliseconds(500));
  net.Restore(a, b);
  net.RunFor(absl::Milliseconds(100));
  EXPECT_TRUE(net.node(a).link_changes.empty());
  EXPECT_TRUE(net.node(b).link_changes.empty());
  net.Cut(a, b);
  net.RunFor(absl::Milliseconds(1500));
  ASSERT_EQ(net.node(a).link_changes.size(), 1u);
  ASSERT_EQ(net.node(b).link_changes.size(), 1u);
}

// NET-R-7: a link coming back up brings the returning neighbour every advert it
// missed, without waiting for a refresh.
TEST(RouterFlooding, NET_R_7_DatabaseExchangeOnLinkUp) {
  RouterNet net(Chain(4), Options(RoutingMetric::kHops));  // refresh 10 s
  net.Start();
  net.RunFor(absl::Milliseconds(100));
  ASSERT_TRUE(net.router(Name(0)).RouteTo(Name(3)).has_value());
  net.Cut(Name(0), Name(1));
  net.RunFor(absl::Milliseconds(200));  // n0 is alone now
  ASSERT_FALSE(net.router(Name(0)).LinkUp("l" + Name(0)));
  net.Cut(Name(2), Name(3));  // n0 cannot hear of this
  net.RunFor(absl::Milliseconds(200));
  net.Restore(Name(0), Name(1));
  net.RunFor(absl::Milliseconds(100));
  ASSERT_TRUE(net.router(Name(0)).LinkUp("l" + Name(0)));
  EXPECT_TRUE(net.router(Name(0)).RouteTo(Name(2)).has_value());
  EXPECT_FALSE(net.router(Name(0)).RouteTo(Name(3)).has_value());
  EXPECT_LT(net.sim().Now(), Time::FromSeconds(1));  // long before any refresh
}

// NET-R-23: routes-changed notices come with changes only, one per instant.
TEST(RouterLiveness, NET_R_23_RoutesChangedOnlyOnChange) {
  RouterNet net(Chain(4), Options(RoutingMetric::kHops));
  net.Start();
  net.RunFor(absl::Milliseconds(200));
  const int before = net.node(Name(3)).routes_changed;
  EXPECT_GT(before, 0);
  net.RunFor(absl::Seconds(5));  // hellos only, no advert (refresh is 10 s)
  EXPECT_EQ(net.node(Name(3)).routes_changed, before);
  net.RunFor(absl::Milliseconds(10));  // mid-interval: n0's next hello is 11 ms away
  // The connection between n0 and n1 fails and n1's composition notices.
  net.Cut(Name(0), Name(1));
  net.router(Name(1)).SetLinkDown("l" + Name(0));
  net.RunFor(absl::Milliseconds(5));  // n1's advert reaches n3 after 2 ms
  EXPECT_EQ(net.node(Name(3)).routes_changed, before + 1);
  EXPECT_FALSE(net.router(Name(3)).RouteTo(Name(0)).has_value());
}

// NET-R-11, NET-R-23: the own advert is re-flooded every refresh interval with a
// new sequence, which changes no route.
TEST(RouterFlooding, NET_R_11_PeriodicRefresh) {
  RouterOptions options = Options(RoutingMetric::kHops);
  options.refresh_interval = absl::Seconds(1);
  RouterNet net(Chain(3), options);
  net.Start();
  net.RunFor(absl::Milliseconds(500));
  const uint64_t seq = net.router(Name(2)).AdvertOf(Name(0))->sequence();
  const int changed = net.node(Name(2)).routes_changed;
  net.RunFor(absl::Seconds(3));
  EXPECT_EQ(net.router(Name(2)).AdvertOf(Name(0))->sequence(), seq + 3);
  EXPECT_EQ(net.node(Name(2)).routes_changed, changed);  // NET-R-23: same content
}

// One router driven directly: node "a" with links ab (to b) and ac (to c).
class SoloRouter : public ::testing::Test {
 protected:
  SoloRouter() {
    LinkStateRouter::Output out;
    out.send = [this](const std::string& to, const v1::NetworkFrame& f) {
      sent.push_back({to, f});
    };
    router = std::make_unique<LinkStateRouter>(
        "a", std::vector<LocalLink>{{"ab", "b", 0.01, 0.9}, {"ac", "c", 0.02, 0.9}}, &sim, &tracer,
        out, Options(RoutingMetric::kPairTime));
    router->Start();
    sent.clear();
  }
  static v1::LinkStateAdvert Advert(const std::string& origin, uint64_t seq,
                                    std::vector<LinkDef> links) {
    v1::LinkStateAdvert a;
    a.set_origin(origin);
    a.set_sequence(seq);
    for (const auto& l : links) {
      auto* la = a.add_links();
      la->set_link(l.name);
      la->set_neighbour(l.a == origin ? l.b : l.a);
      la->set_pair_time_s(l.pair_time_s);
      la->set_fidelity(l.fidelity);
    }
    return a;
  }
  int AdvertsSent() const {
    int n = 0;
    for (const auto& [to, f] : sent) n += f.has_advert();
    return n;
  }

  sim::Simulator sim;
  CountingTracer tracer;
  std::vector<std::pair<std::string, v1::NetworkFrame>> sent;
  std::unique_ptr<LinkStateRouter> router;
};

// NET-R-4, NET-R-6, NET-R-9, NET-R-10: at Start the links are up and the first
// hellos and advert go out; a link change re-originates the advert with the next
// sequence, flooded over up links only.
TEST(RouterFlooding, NET_R_4_9_10_OwnAdvert) {
  sim::Simulator sim;
  CountingTracer tracer;
  std::vector<std::pair<std::string, v1::NetworkFrame>> sent;
  std::vector<std::pair<std::string, bool>> changes;
  LinkStateRouter::Output out;
  out.send = [&](const std::string& to, const v1::NetworkFrame& f) { sent.push_back({to, f}); };
  out.on_link_change = [&](const std::string& link, bool up) { changes.push_back({link, up}); };
  RouterOptions options = Options(RoutingMetric::kPairTime);
  options.memory_time_s = 0.5;
  options.memories = 4;
  LinkStateRouter router("a", {{"ab", "b", 0.01, 0.9}, {"ac", "c", 0.02, 0.8}}, &sim, &tracer, out,
                         options);
  router.Start();
  EXPECT_TRUE(router.LinkUp("ab"));
  EXPECT_TRUE(router.LinkUp("ac"));
  std::map<std::string, int> hellos, adverts;
  for (const auto& [to, f] : sent) (f.has_hello() ? hellos : adverts)[to]++;
  EXPECT_EQ(hellos, (std::map<std::string, int>{{"b", 1}, {"c", 1}}));
  EXPECT_EQ(adverts, (std::map<std::string, int>{{"b", 1}, {"c", 1}}));
  const v1::LinkStateAdvert* own = router.AdvertOf("a");
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->origin(), "a");
  EXPECT_EQ(own->sequence(), 1u);
  EXPECT_EQ(own->memory_time_s(), 0.5);
  EXPECT_EQ(own->memories(), 4u);
  ASSERT_EQ(own->links_size(), 2);
  EXPECT_EQ(own->links(1).link(), "ac");
  EXPECT_EQ(own->links(1).neighbour(), "c");
  EXPECT_EQ(own->links(1).pair_time_s(), 0.02);
  EXPECT_EQ(own->links(1).fidelity(), 0.8);
  sent.clear();
  router.SetLinkDown("ac");
  EXPECT_EQ(changes, (std::vector<std::pair<std::string, bool>>{{"ac", false}}));
  // The hello telling c (NET-R-1a), then the advert, to b only.
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].first, "c");
  EXPECT_EQ(sent[0].second.hello().link(), "ac");
  EXPECT_FALSE(sent[0].second.hello().heard());
  EXPECT_EQ(sent[1].first, "b");
  EXPECT_EQ(sent[1].second.advert().sequence(), 2u);
  ASSERT_EQ(sent[1].second.advert().links_size(), 1);
  EXPECT_EQ(sent[1].second.advert().links(0).link(), "ab");
  router.SetLinkDown("ac");  // already down: nothing new
  EXPECT_EQ(changes.size(), 1u);
  EXPECT_EQ(router.AdvertOf("a")->sequence(), 2u);
  EXPECT_TRUE(tracer.drops.empty());
}

// NET-R-16..19: malformed adverts are dropped, traced, counted, not stored and
// not flooded.
TEST_F(SoloRouter, NET_R_16_17_18_19_MalformedAdvertsDropped) {
  const LinkDef ab{"ab", "a", "b", 0.01, 0.9}, bd{"bd", "b", "d", 0.01, 0.9};
  std::vector<v1::LinkStateAdvert> bad;
  bad.push_back(Advert("", 1, {bd}));   // NET-R-16
  bad.push_back(Advert("b", 0, {ab}));  // NET-R-16: sequences start at 1
  auto nan = Advert("b", 1, {ab, bd});
  nan.mutable_links(1)->set_pair_time_s(std::nan(""));  // NET-R-17
  bad.push_back(nan);
  auto inf = Advert("b", 1, {ab, bd});
  inf.mutable_links(1)->set_pair_time_s(kInf);
  bad.push_back(inf);
  auto neg = Advert("b", 1, {ab, bd});
  neg.mutable_links(1)->set_pair_time_s(-0.01);
  bad.push_back(neg);
  auto fid = Advert("b", 1, {ab, bd});
  fid.mutable_links(1)->set_fidelity(1.5);
  bad.push_back(fid);
  auto mem = Advert("b", 1, {ab});
  mem.set_memory_time_s(-1);
  bad.push_back(mem);
  bad.push_back(Advert("b", 1, {{"xb", "a", "b"}}));  // names a but a has no link xb (NET-R-18)
  bad.push_back(Advert("d", 1, {{"ab", "a", "d"}}));  // a's link ab joins a to b, not d
  bad.push_back(Advert("b", 1, {{"ab", "b", "e"}}));  // a's link ab, but not towards a
  bad.push_back(Advert("b", 1, {{"bd", "b", "b"}}));  // a link to itself
  bad.push_back(Advert("b", 1, {bd, bd}));            // the same link twice
  for (const auto& advert : bad) router->OnAdvert("b", advert);
  EXPECT_EQ(router->stats().adverts_malformed, bad.size());
  EXPECT_EQ(tracer.Count(results::v1::DROP_REASON_MALFORMED_FRAME), bad.size());
  EXPECT_EQ(router->AdvertOf("b"), nullptr);
  EXPECT_EQ(router->AdvertOf("d"), nullptr);
  EXPECT_EQ(AdvertsSent(), 0);
  // From a node that is no neighbour (NET-R-19).
  router->OnAdvert("z", Advert("b", 1, {ab}));
  EXPECT_EQ(tracer.Count(results::v1::DROP_REASON_UNEXPECTED_FRAME), 1u);
  EXPECT_EQ(router->AdvertOf("b"), nullptr);
  // A well-formed one is accepted and flooded to c only (NET-R-12).
  router->OnAdvert("b", Advert("b", 1, {ab, bd}));
  EXPECT_NE(router->AdvertOf("b"), nullptr);
  ASSERT_EQ(AdvertsSent(), 1);
  EXPECT_EQ(sent.back().first, "c");
}

// NET-R-12..14: newer replaces and is flooded; equal or older is ignored
// (counted, not traced); a strictly older copy gets the newer one back.
TEST_F(SoloRouter, NET_R_13_14_StaleAdvertsIgnored) {
  const LinkDef ab{"ab", "a", "b", 0.01, 0.9}, bd{"bd", "b", "d", 0.01, 0.9};
  router->OnAdvert("b", Advert("b", 5, {ab, bd}));
  EXPECT_EQ(router->stats().adverts_accepted, 1u);
  EXPECT_EQ(AdvertsSent(), 1);
  router->OnAdvert("c", Advert("b", 5, {ab}));  // equal: a flooding duplicate
  EXPECT_EQ(AdvertsSent(), 1);
  router->OnAdvert("c", Advert("b", 3, {ab}));  // older
  EXPECT_EQ(router->stats().adverts_stale, 2u);
  EXPECT_TRUE(tracer.drops.empty());
  ASSERT_EQ(router->AdvertOf("b")->links_size(), 2);  // the seq 5 content stays
  EXPECT_EQ(router->AdvertOf("b")->sequence(), 5u);
  ASSERT_EQ(AdvertsSent(), 2);  // seq 5 handed back to c
  EXPECT_EQ(sent.back().first, "c");
  EXPECT_EQ(sent.back().second.advert().sequence(), 5u);
  router->OnAdvert("c", Advert("b", 6, {ab}));  // newer
  EXPECT_EQ(router->AdvertOf("b")->links_size(), 1);
  EXPECT_EQ(sent.back().first, "b");  // flooded to b, not back to c
}

// NET-R-15: an advert of this node newer than its own (from before a restart)
// makes it continue above that sequence.
TEST_F(SoloRouter, NET_R_15_OwnOldAdvertRaisesSequence) {
  const uint64_t own = router->AdvertOf("a")->sequence();
  router->OnAdvert("b", Advert("a", own + 100, {}));
  EXPECT_EQ(router->AdvertOf("a")->sequence(), own + 101);
  EXPECT_EQ(router->AdvertOf("a")->links_size(), 2);
  EXPECT_EQ(AdvertsSent(), 2);  // to b and c
}

// NET-R-20, NET-R-21: a link counts only when both ends advertise it.
TEST_F(SoloRouter, NET_R_20_21_TwoWayCheck) {
  const LinkDef ab{"ab", "a", "b", 0.01, 0.9}, bd{"bd", "b", "d", 0.03, 0.9};
  EXPECT_FALSE(router->RouteTo("a").has_value());  // NET-R-31: none to itself
  EXPECT_FALSE(router->RouteTo("b").has_value());  // b has not advertised ab yet
  router->OnAdvert("b", Advert("b", 1, {ab, bd}));
  ASSERT_TRUE(router->RouteTo("b").has_value());
  EXPECT_FALSE(router->RouteTo("d").has_value());  // only b claims bd
  router->OnAdvert("b", Advert("d", 1, {bd}));
  auto r = router->RouteTo("d");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->path, (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(r->links, (std::vector<std::string>{"ab", "bd"}));
  EXPECT_NEAR(r->cost, 0.04, 1e-15);
  EXPECT_NEAR(r->expected_pair_time_s, 0.01 + 0.03 - 1 / (1 / 0.01 + 1 / 0.03), 1e-15);
  // Local liveness decides for a's own links (NET-R-21).
  router->SetLinkDown("ab");
  EXPECT_FALSE(router->RouteTo("d").has_value());
  EXPECT_EQ(router->NextHop("d"), std::nullopt);
}

// NET-R-24: when the two ends advertise different figures for a link, the
// route uses the longer pair time and the lower fidelity.
TEST_F(SoloRouter, NET_R_24_LessFavourableEndWins) {
  router->OnAdvert("b", Advert("b", 1, {{"ab", "a", "b", 0.05, 0.95}}));
  auto r = router->RouteTo("b");
  ASSERT_TRUE(r.has_value());
  EXPECT_NEAR(r->cost, 0.05, 1e-15);  // b's 0.05 s, not a's 0.01 s
  EXPECT_NEAR(r->expected_pair_time_s, 0.05, 1e-15);
  EXPECT_NEAR(r->expected_fidelity, 0.9, 1e-12);  // a's 0.9, not b's 0.95
}

// NET-R-8: a hello naming a link that does not join the sender to this node is
// dropped, traced and counted, and keeps nothing alive.
TEST_F(SoloRouter, NET_R_8_BadHelloDropped) {
  v1::NetHello hello;
  hello.set_link("ac");
  router->OnHello("b", hello);  // ac joins a to c, not b
  hello.set_link("zz");
  router->OnHello("b", hello);
  EXPECT_EQ(router->stats().hellos_dropped, 2u);
  EXPECT_EQ(tracer.Count(results::v1::DROP_REASON_UNKNOWN_LINK), 2u);
  // Only b's hellos on ab arrive: ac goes down after 4 intervals, ab stays up.
  hello.set_link("ab");
  for (int i = 0; i < 5; ++i) {
    sim.RunUntil(sim.Now() + absl::Milliseconds(20));
    router->OnHello("b", hello);
  }
  EXPECT_TRUE(router->LinkUp("ab"));
  EXPECT_FALSE(router->LinkUp("ac"));
}

// NET-R-1, NET-R-1a: hellos on every link every interval, and at each transition.
TEST_F(SoloRouter, NET_R_1_HelloEveryInterval) {
  sim.RunUntil(sim.Now() + absl::Milliseconds(100));  // 5 more rounds of hellos
  int ab = 0, ac = 0;
  for (const auto& [to, f] : sent) {
    if (!f.has_hello()) continue;
    (f.hello().link() == "ab" ? ab : ac)++;
    EXPECT_EQ(to, f.hello().link() == "ab" ? "b" : "c");
  }
  // Five periodic hellos each, and one sent when the unheard links went down
  // after the dead interval (NET-R-1a); none says "heard" (NET-R-1).
  EXPECT_EQ(ab, 6);
  EXPECT_EQ(ac, 6);
  for (const auto& [to, f] : sent) EXPECT_FALSE(f.has_hello() && f.hello().heard());
}

// NET-R-30: the swap-ASAP expectation E[max] of exponential link times.
TEST(RouterPairTime, NET_R_30_ExpectedMaxPairTime) {
  EXPECT_EQ(ExpectedMaxPairTime({}), 0.0);
  EXPECT_NEAR(ExpectedMaxPairTime({0.2}), 0.2, 1e-15);
  EXPECT_NEAR(ExpectedMaxPairTime({0.1, 0.3}), 0.1 + 0.3 - 1 / (10 + 1 / 0.3), 1e-15);
  EXPECT_NEAR(ExpectedMaxPairTime({0.1, 0.1, 0.1}), 0.1 * (1 + 0.5 + 1.0 / 3), 1e-15);
  // Exact value for m links of a and m of b, by grouped inclusion-exclusion in
  // long double; m = 8 goes through the subset sum, m = 10 through the integral.
  auto exact = [](int m, long double a, long double b) {
    long double sum = 0, ci = 1;
    for (int i = 0; i <= m; ++i) {
      long double cj = 1;
      for (int j = 0; j <= m; ++j) {
        if (i + j > 0) sum += ((i + j) % 2 ? 1 : -1) * ci * cj / (i / a + j / b);
        cj = cj * (m - j) / (j + 1);
      }
      ci = ci * (m - i) / (i + 1);
    }
    return static_cast<double>(sum);
  };
  for (int m : {8, 10}) {
    std::vector<double> t(m, 0.01);
    t.insert(t.end(), m, 0.05);
    EXPECT_NEAR(ExpectedMaxPairTime(t), exact(m, 0.01, 0.05), 1e-9 * exact(m, 0.01, 0.05)) << m;
  }
  // Zero times (instant links) do not count.
  EXPECT_NEAR(ExpectedMaxPairTime({0.0, 0.2}), 0.2, 1e-15);
}

}  // namespace
}  // namespace qnet::network

namespace qnet::network {
namespace {

// NET-R-7a: adverts flooded before a neighbour's connection existed are lost;
// the first hello on the link brings the database over at once instead of at
// the next refresh (10 s here).
TEST(RouterFlooding, NET_R_7a_FirstHelloBringsTheDatabase) {
  RouterOptions options = Options(RoutingMetric::kHops);
  RouterNet net(Chain(3), options);
  // The middle link carries nothing for the first 30 ms (less than the dead
  // interval, so it never goes down): the start adverts across it are lost.
  net.Cut(Name(1), Name(2));
  net.Start();
  net.RunFor(absl::Milliseconds(30));
  EXPECT_FALSE(net.router(Name(0)).RouteTo(Name(2)).has_value());
  net.Restore(Name(1), Name(2));
  // One hello interval plus the delays later, both ends know each other.
  net.RunFor(options.hello_interval + absl::Milliseconds(5));
  ASSERT_TRUE(net.router(Name(0)).RouteTo(Name(2)).has_value());
  ASSERT_TRUE(net.router(Name(2)).RouteTo(Name(0)).has_value());
  EXPECT_EQ(net.router(Name(0)).RouteTo(Name(2))->path.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(net.node(Name(i)).link_changes.empty()) << i;
}

}  // namespace
}  // namespace qnet::network
