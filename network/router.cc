// LinkStateRouter (specs/network.md section 1, NET-R-*).
#include "network/router.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace qnet::network {
namespace {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;
using results::v1::DROP_REASON_UNKNOWN_LINK;

constexpr double kInf = std::numeric_limits<double>::infinity();

double WernerOf(double fidelity) { return std::clamp((4.0 * fidelity - 1.0) / 3.0, 0.0, 1.0); }

// Costs within a relative 1e-9 are equal, so that sums taken in different
// orders do not break the name-order tie rule (NET-R-28).
bool CostLess(double a, double b) {
  const double scale = std::max({1.0, std::fabs(a), std::fabs(b)});
  return a < b - 1e-9 * scale;
}

// Adaptive Simpson on a smooth, monotone integrand.
template <typename F>
double Simpson(const F& f, double a, double b, double fa, double fm, double fb, double whole,
               double eps, int depth) {
  const double m = 0.5 * (a + b);
  const double lm = 0.5 * (a + m), rm = 0.5 * (m + b);
  const double flm = f(lm), frm = f(rm);
  const double left = (m - a) / 6.0 * (fa + 4.0 * flm + fm);
  const double right = (b - m) / 6.0 * (fm + 4.0 * frm + fb);
  if (depth <= 0 || std::fabs(left + right - whole) <= 15.0 * eps) {
    return left + right + (left + right - whole) / 15.0;
  }
  return Simpson(f, a, m, fa, flm, fm, left, eps / 2.0, depth - 1) +
         Simpson(f, m, b, fm, frm, fb, right, eps / 2.0, depth - 1);
}

}  // namespace

double ExpectedMaxPairTime(const std::vector<double>& pair_times_s) {
  std::vector<double> t;
  for (double x : pair_times_s) {
    if (x > 0 && std::isfinite(x)) t.push_back(x);
  }
  if (t.empty()) return 0.0;
  const size_t n = t.size();
  // All equal (the common homogeneous chain): t * H_n exactly.
  if (std::all_of(t.begin(), t.end(), [&](double x) { return x == t[0]; })) {
    double h = 0;
    for (size_t k = 1; k <= n; ++k) h += 1.0 / static_cast<double>(k);
    return t[0] * h;
  }
  if (n <= 16) {
    // Inclusion-exclusion: E[max] = sum over non-empty S of (-1)^(|S|+1) / sum_{i in S} 1/t_i.
    double sum = 0;
    for (uint32_t mask = 1; mask < (1u << n); ++mask) {
      double rate = 0;
      for (size_t i = 0; i < n; ++i) {
        if (mask & (1u << i)) rate += 1.0 / t[i];
      }
      sum += (std::popcount(mask) % 2 == 1 ? 1.0 : -1.0) / rate;
    }
    return sum;
  }
  // Longer paths: integral of P(max > x) = 1 - prod(1 - e^{-x/t_i}) over [0, U],
  // U far enough that the tail (< n e^{-U/t_max}) is below 1e-15 of t_max.
  const double t_max = *std::max_element(t.begin(), t.end());
  const double upper = t_max * (std::log(static_cast<double>(n)) + 40.0);
  auto f = [&](double x) {
    double p = 1.0;
    for (double ti : t) p *= -std::expm1(-x / ti);
    return 1.0 - p;
  };
  // Split at multiples of t_max so the knee near t_max ln n is resolved.
  double total = 0;
  const int pieces = static_cast<int>(std::ceil(upper / t_max));
  for (int k = 0; k < pieces; ++k) {
    const double a = k * t_max, b = std::min(upper, (k + 1) * t_max);
    const double fa = f(a), fb = f(b), fm = f(0.5 * (a + b));
    total += Simpson(f, a, b, fa, fm, fb, (b - a) / 6.0 * (fa + 4.0 * fm + fb), 1e-12 * t_max, 40);
  }
  return total;
}

double LinkCost(RoutingMetric metric, double pair_time_s, double fidelity) {
  switch (metric) {
    case RoutingMetric::kHops:
      return 1.0;
    case RoutingMetric::kPairTime:
      return pair_time_s;
    case RoutingMetric::kFidelity: {
      const double w = (4.0 * fidelity - 1.0) / 3.0;
      if (!(w > 0)) return kInf;
      return -std::log(std::min(w, 1.0));
    }
  }
  return kInf;
}

class LinkStateRouter::Impl {
 public:
  Impl(std::string node, std::vector<LocalLink> links, Runtime* runtime, Tracer* tracer,
       Output output, RouterOptions options)
      : node_(std::move(node)),
        runtime_(runtime),
        tracer_(tracer),
        output_(std::move(output)),
        options_(options) {
    for (auto& l : links) {
      LinkState s;
      s.local = std::move(l);
      const size_t i = links_.size();
      link_index_[s.local.link] = i;
      neighbours_[s.local.neighbour].push_back(i);
      links_.push_back(std::move(s));
    }
    for (size_t i = 0; i < links_.size(); ++i) {
      links_[i].dead_timer = runtime_->CreateTimer([this, i] { OnDead(i); });
    }
    hello_timer_ = runtime_->CreateTimer([this] { OnHelloTimer(); });
    refresh_timer_ = runtime_->CreateTimer([this] { OnRefreshTimer(); });
    notify_timer_ = runtime_->CreateTimer([this] {
      if (output_.on_routes_changed) output_.on_routes_changed();
    });
  }

  void Start() {
    started_ = true;
    const Time now = runtime_->Now();
    for (auto& l : links_) {
      l.up = true;  // NET-R-4
      l.dead_timer->ArmAt(now + DeadInterval());
    }
    OriginateOwnAdvert();  // NET-R-4, NET-R-10
    OnHelloTimer();
    refresh_timer_->ArmAt(now + options_.refresh_interval);
  }

  void OnHello(const std::string& from, const v1::NetHello& hello) {
    auto it = link_index_.find(hello.link());
    if (it == link_index_.end() || links_[it->second].local.neighbour != from) {  // NET-R-8
      ++stats_.hellos_dropped;
      tracer_->Drop(DROP_REASON_UNKNOWN_LINK,
                    absl::StrCat("NetHello from ", from, " names link '", hello.link(),
                                 "' that does not join it to ", node_),
                    hello.link());
      return;
    }
    ++stats_.hellos_received;
    // Before Start every link is about to come up at once (NET-R-4); a hello
    // that arrives first must not bring one link up alone and make the node
    // advertise a partial link set.
    if (!started_) return;
    const size_t i = it->second;
    LinkState& l = links_[i];
    l.dead_timer->ArmAt(runtime_->Now() + DeadInterval());  // NET-R-2
    const bool was_hearing = l.hearing;
    l.hearing = true;
    if (!l.ever_heard && l.up) {
      // NET-R-7a: the first hello proves the neighbour can hear us now; what
      // was flooded before its connection existed was lost, so send it all.
      for (const auto& [origin, advert] : lsdb_) SendAdvert(l.local.neighbour, advert);
    }
    l.ever_heard = true;
    if (hello.heard()) {
      l.confirmed = true;
      if (!l.up) SetUp(i, true, "hello");  // NET-R-5
    } else if (l.up && l.confirmed) {
      SetUp(i, false, "neighbour's verdict");  // NET-R-2a: the neighbour declared it down
    } else if (!l.up && !was_hearing) {
      SendHello(i);  // NET-R-1a: tell the neighbour at once that we hear it
    }
  }

  void OnAdvert(const std::string& from, const v1::LinkStateAdvert& advert) {
    if (!neighbours_.contains(from)) {  // NET-R-19
      ++stats_.adverts_malformed;
      tracer_->Drop(DROP_REASON_UNEXPECTED_FRAME,
                    absl::StrCat("LinkStateAdvert from ", from, ", not a neighbour of ", node_));
      return;
    }
    if (std::string why = Validate(advert); !why.empty()) {  // NET-R-16
      ++stats_.adverts_malformed;
      tracer_->Drop(
          DROP_REASON_MALFORMED_FRAME,
          absl::StrCat("LinkStateAdvert of '", advert.origin(), "' from ", from, ": ", why));
      return;
    }
    if (advert.origin() == node_) {
      // An advert of ours from before a restart: continue above its sequence (NET-R-15).
      if (advert.sequence() > own_sequence_) {
        own_sequence_ = advert.sequence();
        OriginateOwnAdvert();
      } else {
        ++stats_.adverts_stale;
        if (advert.sequence() < own_sequence_) SendAdvert(from, lsdb_[node_]);
      }
      return;
    }
    auto it = lsdb_.find(advert.origin());
    if (it != lsdb_.end() && advert.sequence() <= it->second.sequence()) {
      ++stats_.adverts_stale;  // NET-R-13
      // A strictly older copy: the sender missed the newer one; hand it back (NET-R-14).
      if (advert.sequence() < it->second.sequence()) SendAdvert(from, it->second);
      return;
    }
    ++stats_.adverts_accepted;
    const bool changed = Store(advert);  // NET-R-12
    Flood(advert, from);
    if (changed) RoutesMayHaveChanged();
  }

  void SetLinkDown(const std::string& link) {
    auto it = link_index_.find(link);
    if (it == link_index_.end()) return;
    LinkState& l = links_[it->second];
    l.dead_timer->Cancel();
    l.hearing = false;
    if (l.up) SetUp(it->second, false, "reported");  // NET-R-3
  }

  bool LinkUp(const std::string& link) const {
    auto it = link_index_.find(link);
    return it != link_index_.end() && links_[it->second].up;
  }

  std::optional<Route> RouteTo(const std::string& destination) const {
    Recompute();
    auto it = routes_.find(destination);
    if (it == routes_.end()) return std::nullopt;
    CachedRoute& c = it->second;
    if (!c.pair_time_s) c.pair_time_s = ExpectedMaxPairTime(c.pair_times);
    Route r = c.route;
    r.expected_pair_time_s = *c.pair_time_s;
    return r;
  }

  std::optional<std::string> NextHop(const std::string& destination) const {
    Recompute();
    auto it = routes_.find(destination);
    if (it == routes_.end()) return std::nullopt;
    return it->second.route.path[1];  // NET-R-31
  }

  const v1::LinkStateAdvert* AdvertOf(const std::string& origin) const {
    auto it = lsdb_.find(origin);
    return it == lsdb_.end() ? nullptr : &it->second;
  }

  const RouterStats& stats() const { return stats_; }

 private:
  struct LinkState {
    LocalLink local;
    bool up = false;
    bool ever_heard = false;  // a hello came on this link since Start (NET-R-7a)
    bool hearing = false;     // a valid hello came within the dead interval (NET-R-2)
    bool confirmed = false;   // the neighbour said it hears us since the link came up

    std::unique_ptr<Timer> dead_timer;
  };
  struct CachedRoute {
    Route route;
    std::vector<double> pair_times;
    std::optional<double> pair_time_s;  // computed on first query
  };
  struct Edge {
    int to;
    const std::string* link;
    double cost;
    double pair_time_s;
    double fidelity;
  };

  absl::Duration DeadInterval() const {
    return std::max(options_.hello_interval * options_.dead_intervals, options_.min_dead_interval);
  }

  void SendHello(size_t i) {
    v1::NetworkFrame f;
    f.mutable_hello()->set_link(links_[i].local.link);
    f.mutable_hello()->set_heard(links_[i].hearing);
    ++stats_.hellos_sent;
    SendFrame(links_[i].local.neighbour, f);
  }

  void SetUp(size_t i, bool up, const char* reason) {
    LinkState& l = links_[i];
    l.up = up;
    if (!up) l.confirmed = false;
    SendHello(i);  // NET-R-1a: the neighbour's verdict follows ours
    results::v1::TraceRecord r;
    auto* t = r.mutable_link_liveness();
    t->set_link(l.local.link);
    t->set_up(up);
    t->set_reason(reason);
    tracer_->Record(std::move(r));
    if (output_.on_link_change) output_.on_link_change(l.local.link, up);  // NET-R-6
    OriginateOwnAdvert();                                                  // NET-R-10
    if (up) {
      // Database exchange with the returning neighbour: whatever it missed (NET-R-7).
      for (const auto& [origin, advert] : lsdb_) {
        if (origin != node_) SendAdvert(l.local.neighbour, advert);
      }
    }
  }

  void OnHelloTimer() {
    // NET-R-1: also on down links, so they can come back.
    for (size_t i = 0; i < links_.size(); ++i) SendHello(i);
    hello_timer_->ArmAt(runtime_->Now() + options_.hello_interval);
  }

  void OnRefreshTimer() {
    OriginateOwnAdvert();  // NET-R-11
    refresh_timer_->ArmAt(runtime_->Now() + options_.refresh_interval);
  }

  void OnDead(size_t i) {
    links_[i].hearing = false;
    if (links_[i].up) SetUp(i, false, "dead interval");  // NET-R-2
  }

  void OriginateOwnAdvert() {
    v1::LinkStateAdvert a;
    a.set_origin(node_);
    a.set_sequence(++own_sequence_);  // NET-R-9
    for (const auto& l : links_) {
      if (!l.up) continue;
      auto* la = a.add_links();
      la->set_link(l.local.link);
      la->set_neighbour(l.local.neighbour);
      la->set_pair_time_s(l.local.pair_time_s);
      la->set_fidelity(l.local.fidelity);
    }
    a.set_memory_time_s(options_.memory_time_s);
    a.set_memories(options_.memories);
    const bool changed = Store(a);
    Flood(a, /*except=*/"");
    if (changed) RoutesMayHaveChanged();
  }

  // Stores the newest advert of its origin; true if more than its sequence
  // changed (a refresh changes no route, NET-R-23).
  bool Store(const v1::LinkStateAdvert& advert) {
    v1::LinkStateAdvert& stored = lsdb_[advert.origin()];
    stored.set_sequence(advert.sequence());
    const bool changed = stored.SerializeAsString() != advert.SerializeAsString();
    stored = advert;
    return changed;
  }

  // To every neighbour with an up link, once, except `except` (NET-R-12).
  void Flood(const v1::LinkStateAdvert& advert, const std::string& except) {
    for (const auto& [neighbour, indices] : neighbours_) {
      if (neighbour == except) continue;
      if (std::none_of(indices.begin(), indices.end(), [&](size_t i) { return links_[i].up; })) {
        continue;
      }
      SendAdvert(neighbour, advert);
    }
  }

  void SendFrame(const std::string& neighbour, const v1::NetworkFrame& frame) {
    if (const auto& send_frame = output_.send) send_frame(neighbour, frame);
  }

  void SendAdvert(const std::string& neighbour, const v1::LinkStateAdvert& advert) {
    v1::NetworkFrame f;
    *f.mutable_advert() = advert;
    ++stats_.adverts_sent;
    SendFrame(neighbour, f);
  }

  // Empty if well formed, else why not (NET-R-16..18).
  std::string Validate(const v1::LinkStateAdvert& a) const {
    if (a.origin().empty()) return "empty origin";
    if (a.sequence() == 0) return "sequence 0";
    if (!std::isfinite(a.memory_time_s()) || a.memory_time_s() < 0) {
      return absl::StrCat("memory_time_s ", a.memory_time_s());
    }
    absl::flat_hash_map<std::string, int> seen;
    for (const auto& l : a.links()) {
      if (l.link().empty() || l.neighbour().empty()) return "link without a name or neighbour";
      if (l.neighbour() == a.origin()) return absl::StrCat("link ", l.link(), " to itself");
      if (++seen[l.link()] > 1) return absl::StrCat("link ", l.link(), " twice");
      if (!std::isfinite(l.pair_time_s()) || l.pair_time_s() < 0) {
        return absl::StrCat("link ", l.link(), " pair_time_s ", l.pair_time_s());
      }
      if (!std::isfinite(l.fidelity()) || l.fidelity() < 0 || l.fidelity() > 1) {
        return absl::StrCat("link ", l.link(), " fidelity ", l.fidelity());
      }
      auto it = link_index_.find(l.link());
      const bool names_me = l.neighbour() == node_;
      const bool mine = it != link_index_.end();
      if (a.origin() == node_) {
        // Our own advert flooded back: its links must be ours, as we have them.
        if (!mine || links_[it->second].local.neighbour != l.neighbour()) {
          return absl::StrCat("own advert names link ", l.link(), " to ", l.neighbour(),
                              " that is not one of the receiver's links");
        }
        continue;
      }
      if ((names_me || mine) &&
          !(names_me && mine && links_[it->second].local.neighbour == a.origin())) {
        return absl::StrCat("link ", l.link(), " to ", l.neighbour(),
                            " contradicts the receiver's links");
      }
    }
    return "";
  }

  void RoutesMayHaveChanged() {
    dirty_ = true;
    // One notification per instant however many adverts arrive (NET-R-23).
    if (!notify_timer_->armed()) notify_timer_->ArmAt(runtime_->Now());
  }

  // Dijkstra from this node over two-way links (NET-R-20..29); at most once per change
  // (NET-R-23).
  void Recompute() const {
    if (!dirty_) return;
    dirty_ = false;
    ++stats_.route_computations;
    routes_.clear();

    // Node indices in name order, so index order is name order (ties, NET-R-28).
    std::vector<std::string> names;
    names.push_back(node_);
    for (const auto& [origin, advert] : lsdb_) {
      names.push_back(origin);
      for (const auto& l : advert.links()) names.push_back(l.neighbour());
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    absl::flat_hash_map<std::string, int> index;
    for (size_t i = 0; i < names.size(); ++i) index[names[i]] = static_cast<int>(i);

    // What each origin advertises, by (origin, link).
    absl::flat_hash_map<std::pair<std::string, std::string>, const v1::LinkAdvert*> adv;
    for (const auto& [origin, advert] : lsdb_) {
      for (const auto& l : advert.links()) adv[{origin, l.link()}] = &l;
    }
    auto other_end = [&](const std::string& origin, const std::string& link,
                         const std::string& expected) -> const v1::LinkAdvert* {
      auto it = adv.find({origin, link});
      if (it == adv.end() || it->second->neighbour() != expected) return nullptr;
      return it->second;
    };

    std::vector<std::vector<Edge>> graph(names.size());
    auto add_edge = [&](const std::string& from, const std::string& to, const std::string* link,
                        double t1, double f1, double t2, double f2) {
      // Both ends advertise the link; use the less favourable figures (NET-R-24).
      const double t = std::max(t1, t2), f = std::min(f1, f2);
      const double cost = LinkCost(options_.metric, t, f);
      if (!std::isfinite(cost)) return;  // NET-R-27
      graph[index[from]].push_back(Edge{index[to], link, cost, t, f});
    };
    for (const auto& l : links_) {  // NET-R-21: local liveness + the neighbour's advert
      if (!l.up) continue;
      const auto* back = other_end(l.local.neighbour, l.local.link, node_);
      if (back == nullptr) continue;
      add_edge(node_, l.local.neighbour, &l.local.link, l.local.pair_time_s, l.local.fidelity,
               back->pair_time_s(), back->fidelity());
    }
    for (const auto& [origin, advert] : lsdb_) {
      if (origin == node_) continue;
      for (const auto& l : advert.links()) {  // NET-R-20: both ends advertise it up
        const v1::LinkAdvert* back = nullptr;
        if (l.neighbour() == node_) {
          // Validated: l.link() is ours and joins us to origin.
          const LinkState& mine = links_[link_index_.at(l.link())];
          if (!mine.up) continue;
          add_edge(origin, node_, &l.link(), l.pair_time_s(), l.fidelity(), mine.local.pair_time_s,
                   mine.local.fidelity);
          continue;
        }
        back = other_end(l.neighbour(), l.link(), origin);
        if (back == nullptr) continue;
        add_edge(origin, l.neighbour(), &l.link(), l.pair_time_s(), l.fidelity(),
                 back->pair_time_s(), back->fidelity());
      }
    }

    // O(N^2) Dijkstra keeping, per node, the name-order smallest of the
    // shortest paths: (cost, path) compared lexicographically.
    const size_t n = names.size();
    std::vector<double> dist(n, kInf);
    std::vector<std::vector<int>> path(n);
    std::vector<std::vector<const Edge*>> via(n);
    std::vector<bool> done(n, false);
    const int src = index[node_];
    dist[src] = 0;
    path[src] = {src};
    auto better = [&](double c1, const std::vector<int>& p1, double c2,
                      const std::vector<int>& p2) {
      if (CostLess(c1, c2)) return true;
      if (CostLess(c2, c1)) return false;
      return p1 < p2;
    };
    for (;;) {
      int u = -1;
      for (size_t v = 0; v < n; ++v) {
        if (done[v] || dist[v] == kInf) continue;
        if (u < 0 || better(dist[v], path[v], dist[u], path[u])) u = static_cast<int>(v);
      }
      if (u < 0) break;
      done[u] = true;
      for (const Edge& e : graph[u]) {
        if (done[e.to]) continue;
        std::vector<int> candidate = path[u];
        candidate.push_back(e.to);
        const double c = dist[u] + e.cost;
        if (dist[e.to] == kInf || better(c, candidate, dist[e.to], path[e.to])) {
          dist[e.to] = c;
          path[e.to] = std::move(candidate);
          via[e.to] = via[u];
          via[e.to].push_back(&e);
        }
      }
    }
    for (size_t v = 0; v < n; ++v) {
      if (static_cast<int>(v) == src || dist[v] == kInf) continue;
      CachedRoute c;
      double w = 1.0;
      for (int p : path[v]) c.route.path.push_back(names[p]);
      for (const Edge* e : via[v]) {
        c.route.links.push_back(*e->link);
        c.pair_times.push_back(e->pair_time_s);
        w *= WernerOf(e->fidelity);
      }
      c.route.cost = dist[v];
      c.route.expected_fidelity = (1.0 + 3.0 * w) / 4.0;  // NET-R-29
      routes_[names[v]] = std::move(c);
    }
  }

  const std::string node_;
  Runtime* runtime_;
  Tracer* tracer_;
  Output output_;
  RouterOptions options_;

  std::vector<LinkState> links_;
  absl::flat_hash_map<std::string, size_t> link_index_;
  std::map<std::string, std::vector<size_t>> neighbours_;  // name order: deterministic floods
  std::unique_ptr<Timer> hello_timer_, refresh_timer_, notify_timer_;

  uint64_t own_sequence_ = 0;
  bool started_ = false;
  std::map<std::string, v1::LinkStateAdvert> lsdb_;  // newest per origin, own included

  mutable bool dirty_ = true;
  mutable std::map<std::string, CachedRoute> routes_;
  mutable RouterStats stats_;
};

LinkStateRouter::LinkStateRouter(std::string node, std::vector<LocalLink> links, Runtime* runtime,
                                 Tracer* tracer, Output output, RouterOptions options)
    : impl_(std::make_unique<Impl>(std::move(node), std::move(links), runtime, tracer,
                                   std::move(output), options)) {}
LinkStateRouter::~LinkStateRouter() = default;

void LinkStateRouter::Start() { impl_->Start(); }
void LinkStateRouter::OnHello(const std::string& neighbour, const v1::NetHello& hello) {
  impl_->OnHello(neighbour, hello);
}
void LinkStateRouter::OnAdvert(const std::string& neighbour, const v1::LinkStateAdvert& advert) {
  impl_->OnAdvert(neighbour, advert);
}
void LinkStateRouter::SetLinkDown(const std::string& link) { impl_->SetLinkDown(link); }
bool LinkStateRouter::LinkUp(const std::string& link) const { return impl_->LinkUp(link); }
std::optional<Route> LinkStateRouter::RouteTo(const std::string& destination) const {
  return impl_->RouteTo(destination);
}
std::optional<std::string> LinkStateRouter::NextHop(const std::string& destination) const {
  return impl_->NextHop(destination);
}
const v1::LinkStateAdvert* LinkStateRouter::AdvertOf(const std::string& origin) const {
  return impl_->AdvertOf(origin);
}
const RouterStats& LinkStateRouter::stats() const { return impl_->stats(); }

}  // namespace qnet::network
