// CircuitTable: opening, setup, accept, refuse and teardown of circuits
// (specs/network.md NET-C-1 .. NET-C-19, NET-C-40 .. NET-C-44).
#include "network/circuit_table.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "network/circuit.h"
#include "network/pair_stream.h"

namespace qnet::network {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;

Circuit* CircuitTable::Find(const CircuitKey& key) {
  auto it = circuits_.find(key);
  return it == circuits_.end() ? nullptr : &it->second;
}

Circuit* CircuitTable::FindFrom(const std::string& neighbour, const v1::CircuitKey& key,
                                bool from_downstream, const char* what) {
  if (key.head().empty() || key.number() == 0) {
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat(what, " without a circuit key from ", neighbour));
    return nullptr;
  }
  Circuit* c = Find(FromProto(key));
  if (c == nullptr) {  // NET-C-60
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat(what, " for unknown circuit ",
                                                          key.head(), "/", key.number(), " from ",
                                                          neighbour));
    return nullptr;
  }
  const CircuitSide& side = from_downstream ? c->downstream : c->upstream;
  if (!side.present || side.neighbour != neighbour) {  // NET-C-61
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat(what, " for circuit ", c->key.ToString(), " from ", neighbour,
                            ", not its ", from_downstream ? "downstream" : "upstream",
                            " neighbour"));
    return nullptr;
  }
  return c;
}

Circuit* CircuitTable::FindByLabel(const std::string& link, const std::string& origin,
                                   uint32_t label) {
  auto it = labels_.find({link, origin, label});
  return it == labels_.end() ? nullptr : Find(it->second);
}

uint32_t CircuitTable::Unreserved() const {
  const uint32_t capacity = ctx_->memory->capacity();
  return capacity > reserved_ ? capacity - reserved_ : 0;
}

uint32_t CircuitTable::Grant(uint32_t asked, uint32_t sides) const {
  asked = std::max<uint32_t>(asked, 1);
  if (sides == 0) return asked;
  return std::min(asked, Unreserved() / sides);
}

uint32_t CircuitTable::NextLabel(const std::string& link) {
  return next_label_.try_emplace(link, kFirstNetworkLabel).first->second++;
}

// ---- Opening (NET-C-1 .. NET-C-9) ----

absl::StatusOr<CircuitKey> CircuitTable::Open(const CircuitRequest& request) {
  const std::string& node = ctx_->node;
  if (request.remote_node.empty() || request.remote_node == node) {
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
      shorter(ctx_->options.router.memory_time_s);
    } else if (advert != nullptr) {
      shorter(advert->memory_time_s());
    }
    if (i + 1 == route->path.size()) break;
    const std::string& link = route->links[i];
    double f = -1.0;
    if (auto it = ctx_->links.find(link); i == 0 && it != ctx_->links.end()) {
      f = it->second.local.fidelity;
    }
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
  const bool keeps = !request.measure.has_value();
  const uint32_t grant = Grant(request.depth, keeps ? 1 : 0);
  if (grant == 0) {  // NET-C-8
    return CircuitStatus(v1::CIRCUIT_ERROR_NORES, absl::StrCat(node, " has no unreserved memory"));
  }

  Circuit c;
  c.key = CircuitKey{node, next_number_++};
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
  c.info.depth = grant;
  c.info.measure = request.measure;
  c.downstream.present = true;
  c.downstream.neighbour = route->path[1];
  c.downstream.link = route->links[0];
  c.downstream.label = NextLabel(c.downstream.link);
  c.downstream.min_fidelity = plan->link_min_fidelity[0];
  c.downstream.keeps = keeps;
  c.granted = grant;
  c.reserved = keeps ? grant : 0;

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
  setup->set_depth(grant);
  if (request.measure) {
    setup->mutable_measure()->set_basis(request.measure->basis);
    if (request.measure->z_probability) {
      setup->mutable_measure()->set_z_probability(*request.measure->z_probability);
    }
  }

  const CircuitKey key = c.key;
  const std::string next = c.downstream.neighbour;
  c.setup_timer = ctx_->runtime->CreateTimer([this, key] { OnSetupTimeout(key); });
  c.setup_timer->ArmAt(ctx_->runtime->Now() + ctx_->options.setup_timeout);
  Install(std::move(c));
  ++ctx_->stats.circuits_opened;
  ctx_->Send(next, frame);
  return key;
}

void CircuitTable::Install(Circuit circuit) {
  reserved_ += circuit.reserved;
  if (circuit.upstream.present) {
    labels_[{circuit.upstream.link, circuit.upstream.neighbour, circuit.upstream.label}] =
        circuit.key;
  }
  if (circuit.downstream.present) {
    labels_[{circuit.downstream.link, ctx_->node, circuit.downstream.label}] = circuit.key;
  }
  const CircuitKey key = circuit.key;
  circuits_.emplace(key, std::move(circuit));
}

void CircuitTable::Refuse(const std::string& neighbour, const v1::CircuitKey& key,
                          v1::CircuitError code, const std::string& detail) {
  v1::NetworkFrame frame;
  v1::CircuitRefuse* r = frame.mutable_refuse();
  *r->mutable_circuit() = key;
  r->set_code(code);
  r->set_detail(detail);
  r->set_at_node(ctx_->node);
  ctx_->Send(neighbour, frame);
}

// ---- Setup (NET-C-10 .. NET-C-19) ----

void CircuitTable::HandleSetup(const std::string& neighbour, const v1::CircuitSetup& setup) {
  const v1::CircuitKey& pkey = setup.circuit();
  const std::string name = absl::StrCat(pkey.head(), "/", pkey.number());
  auto malformed = [&](const std::string& why) {  // NET-C-12
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("CircuitSetup ", name, " from ", neighbour, ": ", why));
    Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_MALFORMED, why);
  };
  if (pkey.head().empty() || pkey.number() == 0) {
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("CircuitSetup without a key from ", neighbour));
    return;
  }
  const CircuitKey key = FromProto(pkey);
  if (circuits_.contains(key)) {  // NET-C-13: no answer, the installed one stays
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("CircuitSetup for installed circuit ", name));
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
    if (setup.path(i) == ctx_->node) index = i;
  }
  if (index < 1 || setup.path(index - 1) != neighbour)
    return malformed("not sent by the previous hop");
  const v1::HopLink& up = setup.links(index - 1);
  if (up.link() != ctx_->LinkTo(neighbour))
    return malformed(absl::StrCat("link ", up.link(), " is not ours"));
  if (up.label() < kFirstNetworkLabel || labels_.contains({up.link(), neighbour, up.label()})) {
    return malformed(absl::StrCat("label ", up.label(), " invalid or in use on ", up.link()));
  }
  for (const auto& hop : setup.links()) {
    if (!(hop.min_fidelity() >= 0.0 && hop.min_fidelity() <= 1.0)) {
      return malformed("link minimum fidelity out of [0, 1]");
    }
  }
  if (setup.has_measure()) {
    const auto& m = setup.measure();
    if (!link::v1::BasisChoice_IsValid(m.basis()) ||
        (m.has_z_probability() && !(m.z_probability() >= 0.0 && m.z_probability() <= 1.0))) {
      return malformed("measure settings out of range");
    }
  }
  const bool tail = index == n - 1;
  const bool measure = setup.has_measure();
  const uint32_t sides = tail ? (measure ? 0 : 1) : 2;
  const uint32_t grant = Grant(setup.depth(), sides);
  if (grant == 0) {  // NET-C-14
    Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_NORES,
           absl::StrCat(ctx_->node, " has ", Unreserved(), " unreserved memories, needs ",
                        sides));
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
  c.info.depth = grant;
  if (measure) {
    EndMeasure m;
    m.basis = setup.measure().basis();
    if (setup.measure().has_z_probability()) m.z_probability = setup.measure().z_probability();
    c.info.measure = m;
  }
  c.upstream =
      CircuitSide{true, neighbour, up.link(), up.label(), up.min_fidelity(), !(tail && measure)};
  c.granted = grant;
  c.reserved = grant * sides;

  if (tail) {  // NET-C-15: the tail's upper layer decides
    absl::Status answer = ctx_->listener->OnIncomingCircuit(c.info);
    if (!answer.ok()) {
      Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_REFUSED, std::string(answer.message()));
      return;
    }
    c.up = true;
    CircuitInfo info = c.info;
    TraceCircuit(c, true, v1::CIRCUIT_ERROR_UNSPECIFIED, "");
    Install(std::move(c));
    ++ctx_->stats.circuits_transit;
    v1::NetworkFrame frame;
    *frame.mutable_accept()->mutable_circuit() = pkey;
    frame.mutable_accept()->set_depth(grant);
    ctx_->Send(neighbour, frame);
    ctx_->listener->OnCircuitUp(info);
    return;
  }
  const std::string& next = setup.path(index + 1);
  const v1::HopLink& down = setup.links(index);
  if (down.link() != ctx_->LinkTo(next) || !router_->LinkUp(down.link())) {  // NET-C-16
    Refuse(neighbour, pkey, v1::CIRCUIT_ERROR_NO_ROUTE,
           absl::StrCat(ctx_->node, " has no up link ", down.link(), " to ", next));
    return;
  }
  c.downstream =
      CircuitSide{true, next, down.link(), NextLabel(down.link()), down.min_fidelity(), true};
  v1::NetworkFrame frame;
  *frame.mutable_setup() = setup;
  frame.mutable_setup()->mutable_links(index)->set_label(c.downstream.label);  // NET-C-10
  frame.mutable_setup()->set_depth(grant);                                      // NET-C-11a
  Install(std::move(c));
  ++ctx_->stats.circuits_transit;
  ctx_->Send(next, frame);
}

void CircuitTable::HandleAccept(const std::string& neighbour, const v1::CircuitAccept& accept) {
  Circuit* c = FindFrom(neighbour, accept.circuit(), /*from_downstream=*/true, "CircuitAccept");
  if (c == nullptr) return;
  if (c->up) {
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("CircuitAccept for circuit ", c->key.ToString(), ", already up"));
    return;
  }
  if (accept.depth() == 0 || accept.depth() > c->granted) {  // NET-C-19
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("CircuitAccept for circuit ", c->key.ToString(), " with depth ",
                            accept.depth(), " (granted here ", c->granted, ")"));
    return;
  }
  // NET-C-11a: keep the reservation of the circuit's depth only.
  const uint32_t sides = (c->upstream.present && c->upstream.keeps ? 1 : 0) +
                         (c->downstream.present && c->downstream.keeps ? 1 : 0);
  const uint32_t reserved = accept.depth() * sides;
  reserved_ -= std::min(reserved_, c->reserved - reserved);
  c->reserved = reserved;
  c->granted = accept.depth();
  c->info.depth = accept.depth();
  c->up = true;
  const CircuitKey key = c->key;
  if (!c->head) {
    v1::NetworkFrame frame;
    *frame.mutable_accept() = accept;
    ctx_->Send(c->upstream.neighbour, frame);
    stream_->Start(*c);  // NET-C-20
    return;
  }
  c->setup_timer.reset();
  TraceCircuit(*c, true, v1::CIRCUIT_ERROR_UNSPECIFIED, "");
  const CircuitInfo info = c->info;
  stream_->Start(*c);  // NET-C-20
  if (Find(key) == nullptr) return;  // the CREATE was refused for good (NET-C-24)
  ctx_->listener->OnCircuitUp(info);
}

void CircuitTable::HandleRefuse(const std::string& neighbour, const v1::CircuitRefuse& refuse) {
  Circuit* c = FindFrom(neighbour, refuse.circuit(), /*from_downstream=*/true, "CircuitRefuse");
  if (c == nullptr) return;
  if (c->up) {
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("CircuitRefuse for circuit ", c->key.ToString(), ", already up"));
    return;
  }
  Circuit gone = Uninstall(c->key);  // NET-C-17
  if (!gone.head) {
    v1::NetworkFrame frame;
    *frame.mutable_refuse() = refuse;
    ctx_->Send(gone.upstream.neighbour, frame);
    return;
  }
  const std::string detail = absl::StrCat(refuse.at_node(), ": ", refuse.detail());
  TraceCircuit(gone, false, refuse.code(), detail);
  ctx_->listener->OnCircuitDown(gone.key, refuse.code(), detail);
}

void CircuitTable::OnSetupTimeout(const CircuitKey& key) {
  Circuit* c = Find(key);
  if (c == nullptr || c->up) return;
  TearDown(key, v1::CIRCUIT_ERROR_NO_ROUTE, "no answer to the setup in time", "", "");  // NET-C-18
}

// ---- Teardown (NET-C-40 .. NET-C-44) ----

void CircuitTable::Close(const CircuitKey& key, const std::string& detail) {
  if (Find(key) == nullptr) return;
  TearDown(key, v1::CIRCUIT_ERROR_CLOSED, detail, "", "");
}

void CircuitTable::HandleTeardown(const std::string& neighbour,
                                  const v1::CircuitTeardown& teardown) {
  if (teardown.circuit().head().empty() || teardown.circuit().number() == 0) {
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("CircuitTeardown without a key from ", neighbour));
    return;
  }
  Circuit* c = Find(FromProto(teardown.circuit()));
  if (c == nullptr || !((c->upstream.present && c->upstream.neighbour == neighbour) ||
                        (c->downstream.present && c->downstream.neighbour == neighbour))) {
    // Normal when both sides of a failure tear down; counted all the same.
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("CircuitTeardown for circuit ", teardown.circuit().head(), "/",
                            teardown.circuit().number(), " not installed with ", neighbour));
    return;
  }
  TearDown(c->key, teardown.code(), teardown.detail(), teardown.failed_link(), neighbour);
}

Circuit CircuitTable::Uninstall(CircuitKey key) {
  auto it = circuits_.find(key);
  Circuit c = std::move(it->second);
  circuits_.erase(it);
  reserved_ -= std::min(reserved_, c.reserved);
  if (c.upstream.present) labels_.erase({c.upstream.link, c.upstream.neighbour, c.upstream.label});
  if (c.downstream.present) labels_.erase({c.downstream.link, ctx_->node, c.downstream.label});
  c.setup_timer.reset();
  stream_->Stop(c);  // NET-C-21, NET-C-41
  return c;
}

void CircuitTable::TearDown(CircuitKey key, v1::CircuitError code, const std::string& detail,
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
      ctx_->Send(side->neighbour, frame);
    }
  }
  TraceCircuit(c, false, code, detail);
  // The tail's upper layer knows of the circuit only once it accepted it.
  if (!c.head && !(c.tail && c.up)) return;
  if (c.head) {  // NET-C-44
    for (const auto& [seq, label] : c.unacked) {
      stream_->ReportExpired(key, seq,
                             absl::StrCat("circuit down before the tail acknowledged: ", detail));
    }
  }
  ctx_->listener->OnCircuitDown(key, code, detail);  // NET-C-43
}

void CircuitTable::OnLinkDown(const std::string& link) {
  std::vector<CircuitKey> affected;
  for (const auto& [key, c] : circuits_) {
    if ((c.upstream.present && c.upstream.link == link) ||
        (c.downstream.present && c.downstream.link == link)) {
      affected.push_back(key);
    }
  }
  for (const CircuitKey& key : affected) {  // NET-C-42
    if (Find(key) == nullptr) continue;     // a callback closed it meanwhile
    TearDown(key, v1::CIRCUIT_ERROR_LINK_FAILURE,
             absl::StrCat("link ", link, " down at ", ctx_->node), link, "");
  }
}

void CircuitTable::TraceCircuit(const Circuit& c, bool up, v1::CircuitError code,
                                const std::string& detail) {
  results::v1::TraceRecord r;
  auto* e = r.mutable_circuit_event();
  e->set_circuit(c.key.ToString());
  e->set_up(up);
  for (const auto& n : c.info.path) e->add_path(n);
  e->set_role(c.role());
  if (!up) e->set_reason(v1::CircuitError_Name(code));
  e->set_detail(detail);
  ctx_->tracer->Record(std::move(r));
}

}  // namespace qnet::network
