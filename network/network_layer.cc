// NetworkLayer: frame dispatch, circuit setup and teardown, datagrams
// (specs/network.md section 2). Rounds, swaps and delivery: circuit_rounds.cc.
#include "network/network_layer.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "network/circuit.h"
#include "network/circuit_state.h"

namespace qnet::network {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;
using results::v1::DROP_REASON_UNKNOWN_LINK;

namespace {

// Hop limit of a new datagram: 64, or twice the current path length on larger
// networks (NET-C-70), so that long chains are reachable while a transient
// routing loop still ends.
constexpr uint32_t kDatagramTtl = 64;

v1::CircuitKey ToProto(const CircuitKey& key) {
  v1::CircuitKey k;
  k.set_head(key.head);
  k.set_number(key.number);
  return k;
}

CircuitKey FromProto(const v1::CircuitKey& key) { return CircuitKey{key.head(), key.number()}; }

}  // namespace

NetworkLayer::Impl::Impl(std::string node, std::vector<NetworkLink> links, Runtime* runtime,
                         PhysicalService* physical, link::MemoryPool* memory, SendFn send,
                         NetworkListener* listener, Tracer* tracer, Rng rng, NetworkOptions options)
    : node_(std::move(node)),
      runtime_(runtime),
      physical_(physical),
      memory_(memory),
      send_(std::move(send)),
      listener_(listener),
      tracer_(tracer),
      rng_(std::move(rng)),
      options_(std::move(options)) {
  std::vector<LocalLink> local;
  for (auto& l : links) {
    local.push_back(l.local);
    neighbour_link_[l.local.neighbour] = l.local.link;
    links_[l.local.link] = std::move(l);
  }
  LinkStateRouter::Output output;
  output.send = [this](const std::string& neighbour, const v1::NetworkFrame& frame) {
    send_(neighbour, frame);
  };
  output.on_link_change = [this](const std::string& link, bool up) { OnLinkChange(link, up); };
  output.on_routes_changed = [] {};
  router_ = std::make_unique<LinkStateRouter>(node_, std::move(local), runtime_, tracer_,
                                              std::move(output), options_.router);
}

void NetworkLayer::Impl::Drop(results::v1::DropReason reason, std::string detail,
                              std::string link) {
  ++stats_.drops;
  tracer_->Drop(reason, std::move(detail), std::move(link));
}

Circuit* NetworkLayer::Impl::Find(const CircuitKey& key) {
  auto it = circuits_.find(key);
  return it == circuits_.end() ? nullptr : &it->second;
}

Circuit* NetworkLayer::Impl::FindFrom(const std::string& neighbour, const v1::CircuitKey& key,
                                      bool from_downstream, const char* what) {
  if (key.head().empty() || key.number() == 0) {
    Drop(DROP_REASON_MALFORMED_FRAME,
         absl::StrCat(what, " without a circuit key from ", neighbour));
    return nullptr;
  }
  Circuit* c = Find(FromProto(key));
  const std::string name = absl::StrCat(key.head(), "/", key.number());
  if (c == nullptr) {  // NET-C-60
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat(what, " for unknown circuit ", name, " from ", neighbour));
    return nullptr;
  }
  const CircuitSide& side = from_downstream ? c->downstream : c->upstream;
  if (!side.present || side.neighbour != neighbour) {  // NET-C-61
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat(what, " for circuit ", name, " from ", neighbour, ", not its ",
                      from_downstream ? "downstream" : "upstream", " neighbour"));
    return nullptr;
  }
  return c;
}

uint32_t NetworkLayer::Impl::Unreserved() const {
  const uint32_t capacity = memory_->capacity();
  return capacity > reserved_ ? capacity - reserved_ : 0;
}

link::LinkService* NetworkLayer::Impl::ServiceOf(const std::string& link) const {
  auto it = links_.find(link);
  return it == links_.end() ? nullptr : it->second.service;
}

std::string NetworkLayer::Impl::LinkTo(const std::string& neighbour) const {
  auto it = neighbour_link_.find(neighbour);
  return it == neighbour_link_.end() ? "" : it->second;
}

void NetworkLayer::Impl::OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame) {
  if (!neighbour_link_.contains(neighbour)) {  // NET-C-60
    Drop(DROP_REASON_UNKNOWN_LINK, absl::StrCat("network frame from non-neighbour ", neighbour));
    return;
  }
  switch (frame.body_case()) {
    case v1::NetworkFrame::kHello:
      return router_->OnHello(neighbour, frame.hello());
    case v1::NetworkFrame::kAdvert:
      return router_->OnAdvert(neighbour, frame.advert());
    case v1::NetworkFrame::kDatagram:
      return HandleDatagram(neighbour, frame.datagram());
    case v1::NetworkFrame::kSetup:
      return HandleSetup(neighbour, frame.setup());
    case v1::NetworkFrame::kAccept:
      return HandleAccept(neighbour, frame.accept());
    case v1::NetworkFrame::kRefuse:
      return HandleRefuse(neighbour, frame.refuse());
    case v1::NetworkFrame::kTeardown:
      return HandleTeardown(neighbour, frame.teardown());
    case v1::NetworkFrame::kRound:
      return HandleRound(neighbour, frame.round());
    case v1::NetworkFrame::kSwap:
      return HandleSwap(neighbour, frame.swap());
    case v1::NetworkFrame::kDeliver:
      return HandleDeliver(neighbour, frame.deliver());
    case v1::NetworkFrame::kDeliverAck:
      return HandleDeliverAck(neighbour, frame.deliver_ack());
    case v1::NetworkFrame::kDeliverNack:
      return HandleDeliverNack(neighbour, frame.deliver_nack());
    case v1::NetworkFrame::kRelease:
      return HandleRelease(neighbour, frame.release());
    case v1::NetworkFrame::BODY_NOT_SET:
      break;
  }
  Drop(DROP_REASON_MALFORMED_FRAME, absl::StrCat("network frame without a body from ", neighbour));
}

// ---- Datagrams (NET-C-70 .. NET-C-73) ----

absl::Status NetworkLayer::Impl::SendDatagram(const std::string& destination, std::string payload) {
  if (destination.empty() || destination == node_) {
    return absl::InvalidArgumentError(absl::StrCat("datagram destination '", destination, "'"));
  }
  std::optional<std::string> next = router_->NextHop(destination);
  if (!next.has_value()) {
    return absl::UnavailableError(absl::StrCat("no route to ", destination));
  }
  v1::NetworkFrame frame;
  v1::NetDatagram* d = frame.mutable_datagram();
  d->set_source(node_);
  d->set_destination(destination);
  uint32_t ttl = kDatagramTtl;
  if (std::optional<Route> route = router_->RouteTo(destination); route.has_value()) {
    ttl = std::max<uint32_t>(ttl, 2 * static_cast<uint32_t>(route->path.size()));
  }
  d->set_ttl(ttl);
  d->set_payload(std::move(payload));
  Send(*next, frame);
  return absl::OkStatus();
}

void NetworkLayer::Impl::HandleDatagram(const std::string& neighbour,
                                        const v1::NetDatagram& datagram) {
  if (datagram.source().empty() || datagram.destination().empty() || datagram.ttl() == 0) {
    Drop(DROP_REASON_MALFORMED_FRAME,
         absl::StrCat("datagram from ", neighbour, " without source, destination or ttl"));
    return;
  }
  if (datagram.destination() == node_) {
    listener_->OnDatagram(datagram.source(), datagram.payload());
    return;
  }
  if (datagram.ttl() <= 1) {  // NET-C-72
    Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("datagram ", datagram.source(), " -> ",
                                                    datagram.destination(), ": ttl exhausted"));
    return;
  }
  std::optional<std::string> next = router_->NextHop(datagram.destination());
  if (!next.has_value()) {  // NET-C-73
    Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("datagram ", datagram.source(), " -> ",
                                                    datagram.destination(), ": no route"));
    return;
  }
  v1::NetworkFrame frame;
  *frame.mutable_datagram() = datagram;
  frame.mutable_datagram()->set_ttl(datagram.ttl() - 1);
  Send(*next, frame);
}

// ---- Setup (NET-C-1 .. NET-C-19) ----

absl::StatusOr<CircuitKey> NetworkLayer::Impl::OpenCircuit(const CircuitRequest& request) {
  if (request.remote_node.empty() || request.remote_node == node_) {
    return CircuitStatus(v1::CIRCUIT_ERROR_MALFORMED,
                         absl::StrCat("remote node '", request.remote_node, "'"));
  }
  std::optional<Route> route = router_->RouteTo(request.remote_node);
  if (!route.has_value() || route->path.size() < 2 ||
      route->links.size() + 1 != route->path.size()) {  // NET-C-2
    return CircuitStatus(v1::CIRCUIT_ERROR_NO_ROUTE,
                         absl::StrCat("no route to ", request.remote_node));
  }
  // Advertised fidelities and memory times along the path (NET-C-3, NET-C-6).
  std::vector<double> fidelity;
  double memory_time_s = 0.0;
  auto shorter = [&](double t) {
    if (t > 0 && (memory_time_s == 0.0 || t < memory_time_s)) memory_time_s = t;
  };
  for (size_t i = 0; i < route->path.size(); ++i) {
    const v1::LinkStateAdvert* advert = router_->AdvertOf(route->path[i]);
    if (i == 0) {
      shorter(options_.router.memory_time_s);
    } else if (advert != nullptr) {
      shorter(advert->memory_time_s());
    }
    if (i + 1 == route->path.size()) break;
    const std::string& link = route->links[i];
    double f = -1.0;
    if (auto it = links_.find(link); i == 0 && it != links_.end()) f = it->second.local.fidelity;
    if (f < 0 && advert != nullptr) {
      for (const auto& l : advert->links()) {
        if (l.link() == link) f = l.fidelity();
      }
    }
    if (f < 0) f = 1.0;  // unknown: no constraint from it
    fidelity.push_back(f);
  }
  absl::StatusOr<CircuitPlan> plan =
      PlanCircuit(fidelity, request.min_fidelity, request.cutoff, memory_time_s);
  if (!plan.ok()) return plan.status();
  if (request.min_rate_hz > 0 &&
      (route->expected_pair_time_s <= 0 ||
       1.0 / route->expected_pair_time_s < request.min_rate_hz)) {  // NET-C-7
    return CircuitStatus(
        v1::CIRCUIT_ERROR_NOTIME,
        absl::StrCat("rate ", request.min_rate_hz, " Hz unreachable: the path gives ",
                     route->expected_pair_time_s > 0 ? 1.0 / route->expected_pair_time_s : 0.0,
                     " Hz"));
  }
  if (Unreserved() < 1) {  // NET-C-8
    return CircuitStatus(v1::CIRCUIT_ERROR_NORES, absl::StrCat(node_, " has no unreserved memory"));
  }

  Circuit c;
  c.key = CircuitKey{node_, next_number_++};
  c.head = true;
  c.index = 0;
  c.info.key = c.key;
  c.info.path = route->path;
  c.info.links = route->links;
  c.info.is_head = true;
  c.info.remote_node = request.remote_node;
  c.info.expected_fidelity = plan->expected_fidelity;
  c.info.expected_pair_time_s = route->expected_pair_time_s;
  c.info.cutoff = plan->cutoff;
  c.info.upper = request.upper;
  c.downstream.present = true;
  c.downstream.neighbour = route->path[1];
  c.downstream.link = route->links[0];
  c.downstream.label =
      next_label_.try_emplace(c.downstream.link, kFirstNetworkLabel).first->second++;
  c.downstream.min_fidelity = plan->link_min_fidelity[0];
  c.reserved = 1;

  v1::NetworkFrame frame;
  v1::CircuitSetup* setup = frame.mutable_setup();
  *setup->mutable_circuit() = ToProto(c.key);
  for (const auto& n : route->path) setup->add_path(n);
  for (size_t i = 0; i < route->links.size(); ++i) {
    v1::HopLink* hop = setup->add_links();
    hop->set_link(route->links[i]);
    hop->set_min_fidelity(plan->link_min_fidelity[i]);
  }
  setup->mutable_links(0)->set_label(c.downstream.label);
  setup->set_cutoff_ns(plan->cutoff == absl::InfiniteDuration()
                           ? 0
                           : static_cast<uint64_t>(absl::ToInt64Nanoseconds(plan->cutoff)));
  setup->set_min_fidelity(request.min_fidelity);
  setup->set_expected_fidelity(plan->expected_fidelity);
  setup->set_expected_pair_time_s(route->expected_pair_time_s);
  setup->set_upper(request.upper);

  const CircuitKey key = c.key;
  const std::string next = c.downstream.neighbour;
  c.setup_timer = runtime_->CreateTimer([this, key] { OnSetupTimeout(key); });
  c.setup_timer->ArmAt(runtime_->Now() + options_.setup_timeout);
  Install(std::move(c));
  ++stats_.circuits_opened;
  Send(next, frame);
  return key;
}

void NetworkLayer::Impl::Install(Circuit circuit) {
  reserved_ += circuit.reserved;
  if (circuit.upstream.present) {
    labels_[{circuit.upstream.link, circuit.upstream.neighbour, circuit.upstream.label}] =
        circuit.key;
  }
  if (circuit.downstream.present) {
    labels_[{circuit.downstream.link, node_, circuit.downstream.label}] = circuit.key;
  }
  const CircuitKey key = circuit.key;
  circuits_.emplace(key, std::move(circuit));
}

void NetworkLayer::Impl::Refuse(const std::string& neighbour, const v1::CircuitKey& key,
                                v1::CircuitError code, const std::string& detail) {
  v1::NetworkFrame frame;
  v1::CircuitRefuse* r = frame.mutable_refuse();
  *r->mutable_circuit() = key;
  r->set_code(code);
  r->set_detail(detail);
  r->set_at_node(node_);
  Send(neighbour, frame);
}

void NetworkLayer::Impl::HandleSetup(const std::string& neighbour, const v1::CircuitSetup& setup) {
  const v1::CircuitKey& pkey = setup.circuit();
  const std::string name = absl::StrCat(pkey.head(), "/", pkey.number());
  auto malformed = [&](const std::string& why) {  // NET-C-12
    Drop(DROP_REASON_MALFORMED_FRAME,
         absl::StrCat("CircuitSetup ", name, " from ", neighbour, ": ", why));
    Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_MALFORMED, why);
  };
  if (pkey.head().empty() || pkey.number() == 0) {
    Drop(DROP_REASON_MALFORMED_FRAME, absl::StrCat("CircuitSetup without a key from ", neighbour));
    return;
  }
  const CircuitKey key = FromProto(pkey);
  if (circuits_.contains(key)) {  // NET-C-13: no answer, the installed one stays
    Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("CircuitSetup for installed circuit ", name));
    return;
  }
  const int n = setup.path_size();
  if (n < 2 || setup.links_size() != n - 1 || setup.path(0) != pkey.head()) {
    return malformed("path and links do not match");
  }
  std::set<std::string> seen(setup.path().begin(), setup.path().end());
  if (static_cast<int>(seen.size()) != n) return malformed("path visits a node twice");
  int index = -1;
  for (int i = 1; i < n; ++i) {
    if (setup.path(i) == node_) index = i;
  }
  if (index < 1 || setup.path(index - 1) != neighbour)
    return malformed("not sent by the previous hop");
  const v1::HopLink& up = setup.links(index - 1);
  if (up.link() != LinkTo(neighbour))
    return malformed(absl::StrCat("link ", up.link(), " is not ours"));
  if (up.label() < kFirstNetworkLabel || labels_.contains({up.link(), neighbour, up.label()})) {
    return malformed(absl::StrCat("label ", up.label(), " invalid or in use on ", up.link()));
  }
  for (const auto& hop : setup.links()) {
    if (!(hop.min_fidelity() >= 0.0 && hop.min_fidelity() <= 1.0)) {
      return malformed("link minimum fidelity out of [0, 1]");
    }
  }
  const bool tail = index == n - 1;
  const uint32_t need = tail ? 1 : 2;
  if (Unreserved() < need) {  // NET-C-14
    Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_NORES,
           absl::StrCat(node_, " has ", Unreserved(), " unreserved memories, needs ", need));
    return;
  }
  Circuit c;
  c.key = key;
  c.index = static_cast<size_t>(index);
  c.tail = tail;
  c.info.key = key;
  c.info.path.assign(setup.path().begin(), setup.path().end());
  for (const auto& hop : setup.links()) c.info.links.push_back(hop.link());
  c.info.is_head = false;
  c.info.remote_node = pkey.head();
  c.info.expected_fidelity = setup.expected_fidelity();
  c.info.expected_pair_time_s = setup.expected_pair_time_s();
  c.info.cutoff = setup.cutoff_ns() == 0
                      ? absl::InfiniteDuration()
                      : absl::Nanoseconds(static_cast<int64_t>(setup.cutoff_ns()));
  c.info.upper = setup.upper();
  c.upstream = CircuitSide{true, neighbour, up.link(), up.label(), up.min_fidelity()};
  c.reserved = need;

  if (tail) {  // NET-C-15: the tail's upper layer decides
    absl::Status answer = listener_->OnIncomingCircuit(c.info);
    if (!answer.ok()) {
      Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_REFUSED, std::string(answer.message()));
      return;
    }
    c.up = true;
    CircuitInfo info = c.info;
    TraceCircuit(c, true, v1::CIRCUIT_ERROR_UNSPECIFIED, "");
    Install(std::move(c));
    ++stats_.circuits_transit;
    v1::NetworkFrame frame;
    *frame.mutable_accept()->mutable_circuit() = pkey;
    Send(neighbour, frame);
    listener_->OnCircuitUp(info);
    return;
  }
  const std::string& next = setup.path(index + 1);
  const v1::HopLink& down = setup.links(index);
  if (down.link() != LinkTo(next) || !router_->LinkUp(down.link())) {  // NET-C-16
    Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_NO_ROUTE,
           absl::StrCat(node_, " has no up link ", down.link(), " to ", next));
    return;
  }
  c.downstream =
      CircuitSide{true, next, down.link(),
                  next_label_.try_emplace(down.link(), kFirstNetworkLabel).first->second++,
                  down.min_fidelity()};
  v1::NetworkFrame frame;
  *frame.mutable_setup() = setup;
  frame.mutable_setup()->mutable_links(index)->set_label(c.downstream.label);  // NET-C-10
  Install(std::move(c));
  ++stats_.circuits_transit;
  Send(next, frame);
}

void NetworkLayer::Impl::HandleAccept(const std::string& neighbour,
                                      const v1::CircuitAccept& accept) {
  Circuit* c = FindFrom(neighbour, accept.circuit(), /*from_downstream=*/true, "CircuitAccept");
  if (c == nullptr) return;
  if (c->up) {
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("CircuitAccept for circuit ", c->key.ToString(), ", already up"));
    return;
  }
  c->up = true;
  if (!c->head) {
    v1::NetworkFrame frame;
    *frame.mutable_accept() = accept;
    Send(c->upstream.neighbour, frame);
    return;
  }
  c->setup_timer.reset();
  TraceCircuit(*c, true, v1::CIRCUIT_ERROR_UNSPECIFIED, "");
  const CircuitInfo info = c->info;
  StartRound(*c, 1);  // NET-C-20
  listener_->OnCircuitUp(info);
}

void NetworkLayer::Impl::HandleRefuse(const std::string& neighbour,
                                      const v1::CircuitRefuse& refuse) {
  Circuit* c = FindFrom(neighbour, refuse.circuit(), /*from_downstream=*/true, "CircuitRefuse");
  if (c == nullptr) return;
  if (c->up) {
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("CircuitRefuse for circuit ", c->key.ToString(), ", already up"));
    return;
  }
  Circuit gone = Uninstall(c->key);  // NET-C-17
  if (!gone.head) {
    v1::NetworkFrame frame;
    *frame.mutable_refuse() = refuse;
    Send(gone.upstream.neighbour, frame);
    return;
  }
  const std::string detail = absl::StrCat(refuse.at_node(), ": ", refuse.detail());
  TraceCircuit(gone, false, refuse.code(), detail);
  listener_->OnCircuitDown(gone.key, refuse.code(), detail);
}

void NetworkLayer::Impl::OnSetupTimeout(const CircuitKey& key) {
  Circuit* c = Find(key);
  if (c == nullptr || c->up) return;
  TearDown(key, v1::CIRCUIT_ERROR_NO_ROUTE, "no answer to the setup in time", "", "");  // NET-C-18
}

// ---- Teardown (NET-C-40 .. NET-C-47) ----

void NetworkLayer::Impl::CloseCircuit(const CircuitKey& key, const std::string& detail) {
  if (Find(key) == nullptr) return;
  TearDown(key, v1::CIRCUIT_ERROR_CLOSED, detail, "", "");
}

void NetworkLayer::Impl::HandleTeardown(const std::string& neighbour,
                                        const v1::CircuitTeardown& teardown) {
  if (teardown.circuit().head().empty() || teardown.circuit().number() == 0) {
    Drop(DROP_REASON_MALFORMED_FRAME,
         absl::StrCat("CircuitTeardown without a key from ", neighbour));
    return;
  }
  Circuit* c = Find(FromProto(teardown.circuit()));
  if (c == nullptr || !((c->upstream.present && c->upstream.neighbour == neighbour) ||
                        (c->downstream.present && c->downstream.neighbour == neighbour))) {
    // Normal when both sides of a failure tear down; counted all the same.
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("CircuitTeardown for circuit ", teardown.circuit().head(), "/",
                      teardown.circuit().number(), " not installed with ", neighbour));
    return;
  }
  TearDown(c->key, teardown.code(), teardown.detail(), teardown.failed_link(), neighbour);
}

Circuit NetworkLayer::Impl::Uninstall(CircuitKey key) {
  auto it = circuits_.find(key);
  Circuit c = std::move(it->second);
  circuits_.erase(it);
  reserved_ -= std::min(reserved_, c.reserved);
  if (c.upstream.present) labels_.erase({c.upstream.link, c.upstream.neighbour, c.upstream.label});
  if (c.downstream.present) labels_.erase({c.downstream.link, node_, c.downstream.label});
  c.retry_timer.reset();
  c.setup_timer.reset();
  // NET-C-41: every held pair is freed. A CREATE still outstanding yields an
  // OK for an unknown label later, which is released on arrival.
  if (c.up_pair) ReleasePair(c.upstream.link, *c.up_pair);
  if (c.down_pair) ReleasePair(c.downstream.link, *c.down_pair);
  for (const LinkPair& p : c.held) ReleasePair(c.upstream.link, p);
  c.up_pair.reset();
  c.down_pair.reset();
  c.held.clear();
  return c;
}

void NetworkLayer::Impl::TearDown(CircuitKey key, v1::CircuitError code, const std::string& detail,
                                  const std::string& failed_link, const std::string& except) {
  Circuit c = Uninstall(key);
  v1::NetworkFrame frame;
  v1::CircuitTeardown* t = frame.mutable_teardown();
  *t->mutable_circuit() = ToProto(key);
  t->set_code(code);
  t->set_detail(detail);
  t->set_failed_link(failed_link);
  for (const CircuitSide* side : {&c.upstream, &c.downstream}) {  // NET-C-40
    if (side->present && side->neighbour != except && side->link != failed_link) {
      Send(side->neighbour, frame);
    }
  }
  TraceCircuit(c, false, code, detail);
  // The tail's upper layer knows of the circuit only once it accepted it.
  if (!c.head && !(c.tail && c.up)) return;
  if (c.head) {  // NET-C-44
    for (const auto& [seq, label] : c.unacked) {
      ReportExpired(key, seq, absl::StrCat("circuit down before the tail acknowledged: ", detail));
    }
  }
  listener_->OnCircuitDown(key, code, detail);  // NET-C-43
}

void NetworkLayer::Impl::OnLinkChange(const std::string& link, bool up) {
  if (up) return;
  std::vector<CircuitKey> affected;
  for (const auto& [key, c] : circuits_) {
    if ((c.upstream.present && c.upstream.link == link) ||
        (c.downstream.present && c.downstream.link == link)) {
      affected.push_back(key);
    }
  }
  for (const CircuitKey& key : affected) {  // NET-C-42
    if (Find(key) == nullptr) continue;     // a callback closed it meanwhile
    TearDown(key, v1::CIRCUIT_ERROR_LINK_FAILURE, absl::StrCat("link ", link, " down at ", node_),
             link, "");
  }
}

void NetworkLayer::Impl::OnNeighbourDown(const std::string& neighbour) {
  const std::string link = LinkTo(neighbour);
  if (link.empty()) {
    Drop(DROP_REASON_UNKNOWN_LINK, absl::StrCat("neighbour down: ", neighbour, " is not one"));
    return;
  }
  router_->SetLinkDown(link);
  OnLinkChange(link, false);  // idempotent if the router already reported it
}

void NetworkLayer::Impl::TraceCircuit(const Circuit& c, bool up, v1::CircuitError code,
                                      const std::string& detail) {
  results::v1::TraceRecord r;
  auto* e = r.mutable_circuit_event();
  e->set_circuit(c.key.ToString());
  e->set_up(up);
  for (const auto& n : c.info.path) e->add_path(n);
  e->set_role(c.role());
  if (!up) e->set_reason(v1::CircuitError_Name(code));
  e->set_detail(detail);
  tracer_->Record(std::move(r));
}

// ---- NetworkLayer ----

NetworkLayer::NetworkLayer(std::string node, std::vector<NetworkLink> links, Runtime* runtime,
                           PhysicalService* physical, link::MemoryPool* memory, SendFn send,
                           NetworkListener* listener, Tracer* tracer, Rng rng,
                           NetworkOptions options)
    : impl_(std::make_unique<Impl>(std::move(node), std::move(links), runtime, physical, memory,
                                   std::move(send), listener, tracer, std::move(rng),
                                   std::move(options))) {}
NetworkLayer::~NetworkLayer() = default;

void NetworkLayer::Start() { impl_->Start(); }
void NetworkLayer::OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame) {
  impl_->OnFrame(neighbour, frame);
}
void NetworkLayer::OnLinkOk(const link::v1::Ok& ok) { impl_->OnLinkOk(ok); }
void NetworkLayer::OnLinkErr(const link::v1::Err& err) { impl_->OnLinkErr(err); }
void NetworkLayer::OnBellMeasureResult(const physical::v1::BellMeasureResult& result) {
  impl_->OnBellMeasureResult(result);
}
void NetworkLayer::OnNeighbourDown(const std::string& neighbour) {
  impl_->OnNeighbourDown(neighbour);
}
absl::StatusOr<CircuitKey> NetworkLayer::OpenCircuit(const CircuitRequest& request) {
  return impl_->OpenCircuit(request);
}
void NetworkLayer::CloseCircuit(const CircuitKey& key, const std::string& detail) {
  impl_->CloseCircuit(key, detail);
}
absl::Status NetworkLayer::SendDatagram(const std::string& destination, std::string payload) {
  return impl_->SendDatagram(destination, std::move(payload));
}
std::optional<Route> NetworkLayer::RouteTo(const std::string& destination) const {
  return impl_->RouteTo(destination);
}
const NetworkStats& NetworkLayer::stats() const { return impl_->stats(); }
const LinkStateRouter& NetworkLayer::router() const { return impl_->router(); }

}  // namespace qnet::network
