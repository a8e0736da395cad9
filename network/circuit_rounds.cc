// NetworkLayer rounds: link CREATEs per round, swap as soon as possible,
// completion at the head (Bell-state tracking, cutoff, correction) and
// delivery to the tail (specs/network.md NET-C-20 .. NET-C-39).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "link/create_check.h"
#include "network/circuit.h"
#include "network/circuit_state.h"

namespace qnet::network {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_NO_CONSUMER;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;

namespace {

bool SamePair(const link::v1::PairId& a, const link::v1::PairId& b) {
  return a.origin() == b.origin() && a.partner() == b.partner() && a.sequence() == b.sequence();
}

std::string PairName(const link::v1::PairId& p) {
  return absl::StrCat(p.origin(), "->", p.partner(), "#", p.sequence());
}

// A gap of more missing seqs than this in one Deliver is not a run of lost
// Delivers but a malformed frame.
constexpr uint64_t kMaxSeqGap = 4096;

}  // namespace

void NetworkLayer::Impl::StartRound(Circuit& c, uint64_t round) {
  c.round = round;
  c.swaps.clear();
  if (c.tail) return;
  v1::NetworkFrame frame;
  v1::Round* r = frame.mutable_round();
  r->mutable_circuit()->set_head(c.key.head);
  r->mutable_circuit()->set_number(c.key.number);
  r->set_round(round);
  Send(c.downstream.neighbour, frame);  // NET-C-21
  IssueCreate(c.key);                   // NET-C-22
}

void NetworkLayer::Impl::HandleRound(const std::string& neighbour, const v1::Round& round) {
  Circuit* c = FindFrom(neighbour, round.circuit(), /*from_downstream=*/false, "Round");
  if (c == nullptr) return;
  if (!c->up || round.round() != c->round + 1) {  // NET-C-62
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("Round ", round.round(), " of circuit ", c->key.ToString(), " after round ",
                      c->round, c->up ? "" : " (not up)"));
    return;
  }
  StartRound(*c, round.round());
}

void NetworkLayer::Impl::IssueCreate(CircuitKey key) {
  Circuit* c = Find(key);
  if (c == nullptr || !c->downstream.present) return;
  link::v1::Create create;
  create.set_remote_node(c->downstream.neighbour);
  create.set_pairs(1);
  create.set_type(link::v1::REQUEST_TYPE_KEEP);
  create.set_purpose_id(c->downstream.label);
  create.set_min_fidelity(c->downstream.min_fidelity);
  create.set_priority(options_.link_priority);
  link::LinkService* service = ServiceOf(c->downstream.link);
  absl::StatusOr<uint64_t> id = service->Create(create);
  if (id.ok()) {
    c->create_id = *id;
    return;
  }
  c->create_id.reset();
  const link::v1::ErrorCode code = link::ErrorCodeOf(id.status());
  if (code == link::v1::ERROR_CODE_NOTIME || code == link::v1::ERROR_CODE_UNSUPPORTED ||
      code == link::v1::ERROR_CODE_CREATE) {  // NET-C-24
    TearDown(
        key, v1::CIRCUIT_ERROR_LINK_ERROR,
        absl::StrCat("link ", c->downstream.link, " refused the CREATE: ", id.status().message()),
        "", "");
    return;
  }
  RetryCreate(*c);  // NET-C-23
}

void NetworkLayer::Impl::RetryCreate(Circuit& c) {
  const CircuitKey key = c.key;
  if (!c.retry_timer) c.retry_timer = runtime_->CreateTimer([this, key] { IssueCreate(key); });
  c.retry_timer->ArmAt(runtime_->Now() + options_.create_retry);
}

void NetworkLayer::Impl::ReleasePair(const std::string& link, const LinkPair& pair) {
  if (link::LinkService* service = ServiceOf(link)) service->Release(pair.slot);
}

void NetworkLayer::Impl::OnLinkOk(const link::v1::Ok& ok) {
  const std::string link = ok.link().empty() ? LinkTo(ok.remote_node()) : ok.link();
  if (!ok.has_slot()) {
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("OK without a slot for purpose ", ok.purpose_id(), " on ", link), link);
    return;
  }
  LinkPair pair{ok.pair(), ok.slot(), ok.bell_state(),
                Time::FromNanos(static_cast<int64_t>(ok.time_ns())), ok.estimated_fidelity()};
  auto it = labels_.find({link, ok.pair().origin(), ok.purpose_id()});
  if (it == labels_.end()) {  // NET-C-25: e.g. a CREATE outstanding at teardown
    ReleasePair(link, pair);
    Drop(
        DROP_REASON_NO_CONSUMER,
        absl::StrCat("OK ", PairName(ok.pair()), " with label ", ok.purpose_id(), " of no circuit"),
        link);
    return;
  }
  const CircuitKey key = it->second;
  Circuit& c = circuits_.at(key);
  const bool mine = ok.pair().origin() == node_;
  if (BellIndex(pair.bell) < 0) {
    ReleasePair(link, pair);
    Drop(DROP_REASON_MALFORMED_FRAME,
         absl::StrCat("OK ", PairName(ok.pair()), " without a Bell state"), link);
    if (mine && c.create_id == ok.create_id()) IssueCreate(key);
    return;
  }
  if (mine) {
    if (c.create_id != ok.create_id()) {
      ReleasePair(link, pair);
      Drop(DROP_REASON_NO_CONSUMER,
           absl::StrCat("OK ", PairName(ok.pair()), " of a stale CREATE of circuit ",
                        key.ToString()),
           link);
      return;
    }
    c.create_id.reset();
    c.down_pair = pair;
    if (c.head) {
      TryComplete(key);
    } else {
      TrySwap(c);
    }
    return;
  }
  if (c.tail) {  // NET-C-37
    c.held.push_back(pair);
    if (!c.pending_delivers.empty()) ServePendingDelivers(key);  // NET-C-38a
    return;
  }
  if (c.up_pair) {
    ReleasePair(link, *c.up_pair);
    Drop(DROP_REASON_NO_CONSUMER,
         absl::StrCat("pair ", PairName(c.up_pair->id), " of circuit ", key.ToString(),
                      " replaced by a newer one"),
         link);
  }
  c.up_pair = pair;
  TrySwap(c);
}

void NetworkLayer::Impl::OnLinkErr(const link::v1::Err& err) {
  const std::string& link = err.link();
  const bool mine = err.origin() == node_;
  if (err.code() != link::v1::ERROR_CODE_EXPIRED) {
    if (!mine) return;  // the origin acts on it
    for (auto& [key, c] : circuits_) {
      if (!c.downstream.present || c.downstream.link != link || c.create_id != err.create_id()) {
        continue;
      }
      c.create_id.reset();
      if (err.code() == link::v1::ERROR_CODE_NOTIME ||
          err.code() == link::v1::ERROR_CODE_UNSUPPORTED) {  // NET-C-24
        TearDown(CircuitKey(key), v1::CIRCUIT_ERROR_LINK_ERROR,
                 absl::StrCat("link ", link, ": ", link::v1::ErrorCode_Name(err.code()), " ",
                              err.detail()),
                 "", "");
      } else {
        RetryCreate(c);  // NET-C-23
      }
      return;
    }
    return;
  }
  // NET-C-26: an expired link pair is gone; the round needs another one.
  auto expired = [&](const std::optional<LinkPair>& p) {
    return p && p->id.origin() == err.origin() && p->id.sequence() >= err.expired_from() &&
           p->id.sequence() <= err.expired_to();
  };
  std::vector<CircuitKey> reissue;
  for (auto& [key, c] : circuits_) {
    if (mine && c.downstream.present && c.downstream.link == link) {
      if (expired(c.down_pair)) {
        ReleasePair(link, *c.down_pair);
        c.down_pair.reset();
        reissue.push_back(key);
      } else if (c.create_id == err.create_id()) {  // expired before its OK reached us
        c.create_id.reset();
        reissue.push_back(key);
      }
    }
    if (!mine && c.upstream.present && c.upstream.link == link) {
      if (expired(c.up_pair)) {
        ReleasePair(link, *c.up_pair);
        c.up_pair.reset();
      }
      for (auto p = c.held.begin(); p != c.held.end();) {
        if (expired(*p)) {
          ReleasePair(link, *p);
          p = c.held.erase(p);
        } else {
          ++p;
        }
      }
    }
  }
  for (const CircuitKey& key : reissue) IssueCreate(key);
}

void NetworkLayer::Impl::TrySwap(Circuit& c) {
  if (c.head || c.tail || !c.up_pair || !c.down_pair) return;
  const uint64_t id = next_request_;
  next_request_ += 2;  // odd ids only (NetworkLayer::OwnsRequestId)
  PendingSwap& ps = swaps_[id];
  ps.key = c.key;
  ps.round = c.round;
  ps.up = *c.up_pair;
  ps.down = *c.down_pair;
  c.up_pair.reset();
  c.down_pair.reset();
  physical::v1::BellMeasure bm;
  bm.set_request_id(id);
  bm.set_slot_a(ps.up.slot);
  bm.set_slot_b(ps.down.slot);
  physical_->BellMeasure(bm);  // NET-C-27
}

void NetworkLayer::Impl::OnBellMeasureResult(const physical::v1::BellMeasureResult& result) {
  auto it = swaps_.find(result.request_id());
  if (it == swaps_.end()) {
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("BellMeasureResult for unknown request ", result.request_id()));
    return;
  }
  PendingSwap ps = std::move(it->second);
  swaps_.erase(it);
  // NET-C-28: the measurement emptied both slots.
  (void)memory_->Return(ps.up.slot);
  (void)memory_->Return(ps.down.slot);
  ++stats_.swaps;
  results::v1::TraceRecord r;
  auto* e = r.mutable_swap_event();
  e->set_circuit(ps.key.ToString());
  e->set_round(ps.round);
  *e->mutable_upstream() = ps.up.id;
  *e->mutable_downstream() = ps.down.id;
  e->set_outcome(result.bell_state());
  tracer_->Record(std::move(r));
  Circuit* c = Find(ps.key);
  if (c == nullptr || c->round != ps.round) return;
  v1::NetworkFrame frame;
  v1::SwapRecord* s = frame.mutable_swap();  // NET-C-29
  s->mutable_circuit()->set_head(ps.key.head);
  s->mutable_circuit()->set_number(ps.key.number);
  s->set_round(ps.round);
  s->set_node(node_);
  *s->mutable_upstream() = ps.up.id;
  *s->mutable_downstream() = ps.down.id;
  s->set_outcome(result.bell_state());
  s->set_downstream_bell(ps.down.bell);
  s->set_upstream_herald_ns(static_cast<uint64_t>(ps.up.herald.nanos()));
  s->set_downstream_herald_ns(static_cast<uint64_t>(ps.down.herald.nanos()));
  s->set_downstream_estimated_fidelity(ps.down.estimated_fidelity);
  Send(c->upstream.neighbour, frame);
}

void NetworkLayer::Impl::HandleSwap(const std::string& neighbour, const v1::SwapRecord& swap) {
  Circuit* c = FindFrom(neighbour, swap.circuit(), /*from_downstream=*/true, "SwapRecord");
  if (c == nullptr) return;
  if (!c->head) {  // NET-C-30
    v1::NetworkFrame frame;
    *frame.mutable_swap() = swap;
    Send(c->upstream.neighbour, frame);
    return;
  }
  const auto& path = c->info.path;
  const bool intermediate =
      std::find(path.begin() + 1, path.end() - 1, swap.node()) != path.end() - 1;
  if (swap.round() != c->round || !intermediate || c->swaps.contains(swap.node()) ||
      BellIndex(swap.outcome()) < 0 || BellIndex(swap.downstream_bell()) < 0) {  // NET-C-63
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("SwapRecord of ", swap.node(), " round ", swap.round(), " for circuit ",
                      c->key.ToString(), " in round ", c->round));
    return;
  }
  c->swaps[swap.node()] = swap;
  TryComplete(c->key);
}

void NetworkLayer::Impl::TryComplete(CircuitKey key) {
  Circuit* cp = Find(key);
  if (cp == nullptr || !cp->head || !cp->down_pair ||
      cp->swaps.size() + 2 != cp->info.path.size()) {
    return;
  }
  Circuit& c = *cp;
  const LinkPair h = *c.down_pair;
  c.down_pair.reset();
  // NET-C-31: B = bell(h) xor (outcome_k xor bell(d_k)) over the intermediates.
  physical::v1::BellState bell = h.bell;
  Time oldest = h.herald;
  double w = std::clamp(WernerOf(h.estimated_fidelity), 0.0, 1.0);
  link::v1::PairId tail_pair = h.id;
  for (size_t i = 1; i + 1 < c.info.path.size(); ++i) {
    const v1::SwapRecord& s = c.swaps.at(c.info.path[i]);
    bell = BellXor(bell, BellXor(s.outcome(), s.downstream_bell()));
    oldest = std::min({oldest, Time::FromNanos(static_cast<int64_t>(s.upstream_herald_ns())),
                       Time::FromNanos(static_cast<int64_t>(s.downstream_herald_ns()))});
    w *= std::clamp(WernerOf(s.downstream_estimated_fidelity()), 0.0, 1.0);
    tail_pair = s.downstream();
  }
  c.swaps.clear();
  const Time now = runtime_->Now();
  const uint64_t round = c.round;
  const absl::Duration age = now - oldest;
  if (age > c.info.cutoff) {  // NET-C-36
    ReleasePair(c.downstream.link, h);
    v1::NetworkFrame frame;
    v1::ReleasePair* rel = frame.mutable_release();
    rel->mutable_circuit()->set_head(key.head);
    rel->mutable_circuit()->set_number(key.number);
    rel->set_round(round);
    *rel->mutable_tail_pair() = tail_pair;
    rel->set_detail("cutoff");
    Send(c.downstream.neighbour, frame);
    ++stats_.rounds_discarded;
    results::v1::TraceRecord r;
    auto* d = r.mutable_round_discarded();
    d->set_circuit(key.ToString());
    d->set_round(round);
    d->set_reason("cutoff");
    d->set_age_s(absl::ToDoubleSeconds(age));
    tracer_->Record(std::move(r));
    StartRound(c, round + 1);
    return;
  }
  const uint64_t seq = ++c.delivered;  // NET-C-32
  const std::string label = absl::StrCat(key.ToString(), "/", seq);
  physical::v1::Probe probe;  // NET-C-33
  probe.set_slot(h.slot);
  probe.set_bell_state(bell);
  probe.set_label(label);
  physical_->Probe(probe);
  if (const physical::v1::GateKind gate = CorrectionGate(bell);
      gate != physical::v1::GATE_KIND_UNSPECIFIED) {  // NET-C-35
    physical::v1::Gate g;
    g.set_kind(gate);
    g.set_slot(h.slot);
    physical_->ApplyGate(g);
  }
  EndPair pair;
  pair.circuit = key;
  pair.seq = seq;
  pair.round = round;
  pair.slot = h.slot;
  pair.estimated_fidelity = FidelityOfWerner(w);
  pair.completed = now;
  pair.delivered = now;
  pair.remote_node = c.info.remote_node;
  results::v1::TraceRecord r;
  auto* e = r.mutable_end_pair();
  e->set_circuit(key.ToString());
  e->set_seq(seq);
  e->set_round(round);
  e->set_role("head");
  e->set_slot(h.slot);
  e->set_estimated_fidelity(pair.estimated_fidelity);
  e->set_completed_ns(static_cast<uint64_t>(now.nanos()));
  e->set_delivered_ns(static_cast<uint64_t>(now.nanos()));
  e->set_remote_node(pair.remote_node);
  e->set_label(label);
  e->set_tracked_bell(bell);
  for (const auto& n : c.info.path) e->add_path(n);
  tracer_->Record(std::move(r));
  ++stats_.rounds_completed;
  ++stats_.pairs_delivered;
  v1::NetworkFrame frame;
  v1::Deliver* d = frame.mutable_deliver();  // NET-C-34
  d->mutable_circuit()->set_head(key.head);
  d->mutable_circuit()->set_number(key.number);
  d->set_round(round);
  d->set_seq(seq);
  *d->mutable_tail_pair() = tail_pair;
  d->set_estimated_fidelity(pair.estimated_fidelity);
  d->set_completed_ns(static_cast<uint64_t>(now.nanos()));
  Send(c.downstream.neighbour, frame);
  c.unacked[seq] = label;
  StartRound(c, round + 1);
  listener_->OnPair(pair);
}

void NetworkLayer::Impl::HandleDeliver(const std::string& neighbour, const v1::Deliver& deliver) {
  Circuit* c = FindFrom(neighbour, deliver.circuit(), /*from_downstream=*/false, "Deliver");
  if (c == nullptr) return;
  if (!c->tail) {
    v1::NetworkFrame frame;
    *frame.mutable_deliver() = deliver;
    Send(c->downstream.neighbour, frame);
    return;
  }
  const uint64_t seq = deliver.seq();
  if (seq <= c->last_seq || seq - c->last_seq > kMaxSeqGap) {  // NET-C-64
    Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("Deliver seq ", seq, " of circuit ",
                                                    c->key.ToString(), " after seq ", c->last_seq));
    return;
  }
  // NET-C-39: seqs skipped were Delivers lost on the way; their pairs are the
  // older held ones, released when a later pair is handed up.
  for (uint64_t s = c->last_seq + 1; s < seq; ++s) {
    SendDeliverNack(neighbour, deliver.circuit(), s, "Deliver lost");
  }
  c->last_seq = seq;
  // Delivers are served in seq order; one whose pair's OK has not arrived yet
  // waits (NET-C-38a: the OK may still be on its way on real-time backends).
  c->pending_delivers.push_back({neighbour, deliver, runtime_->Now() + options_.deliver_wait});
  ServePendingDelivers(c->key);
}

void NetworkLayer::Impl::SendDeliverNack(const std::string& neighbour,
                                         const v1::CircuitKey& circuit, uint64_t seq,
                                         const std::string& detail) {
  v1::NetworkFrame frame;
  v1::DeliverNack* n = frame.mutable_deliver_nack();
  *n->mutable_circuit() = circuit;
  n->set_seq(seq);
  n->set_detail(detail);
  Send(neighbour, frame);
}

void NetworkLayer::Impl::ServePendingDelivers(const CircuitKey& key) {
  const Time now = runtime_->Now();
  for (;;) {
    // Looked up afresh each time: handing a pair up may close the circuit.
    auto cit = circuits_.find(key);
    if (cit == circuits_.end()) return;
    Circuit& c = cit->second;
    if (c.pending_delivers.empty()) break;
    if (!DeliverHeld(c, c.pending_delivers.front().neighbour, c.pending_delivers.front().deliver,
                     /*pop_first=*/true)) {
      const Circuit::PendingDeliver& p = c.pending_delivers.front();
      if (p.refuse_at > now) break;  // keep waiting, and keep the order
      SendDeliverNack(
          p.neighbour, p.deliver.circuit(), p.deliver.seq(),  // NET-C-38
          absl::StrCat("pair ", PairName(p.deliver.tail_pair()), " not held at ", node_));
      c.pending_delivers.pop_front();
    }
  }
  Circuit& c = circuits_.at(key);
  if (c.pending_delivers.empty()) {
    if (c.deliver_timer) c.deliver_timer->Cancel();
    return;
  }
  if (!c.deliver_timer) {
    c.deliver_timer = runtime_->CreateTimer([this, key] { ServePendingDelivers(key); });
  }
  c.deliver_timer->ArmAt(c.pending_delivers.front().refuse_at);
}

bool NetworkLayer::Impl::DeliverHeld(Circuit& cref, const std::string& neighbour_ref,
                                     const v1::Deliver& deliver_ref, bool pop_first) {
  Circuit* c = &cref;
  const CircuitKey key = c->key;
  auto it = std::find_if(c->held.begin(), c->held.end(), [&](const LinkPair& p) {
    return SamePair(p.id, deliver_ref.tail_pair());
  });
  if (it == c->held.end()) return false;
  // Copies: the references may point into pending_delivers, popped here.
  const std::string neighbour = neighbour_ref;
  const v1::Deliver deliver = deliver_ref;
  const uint64_t seq = deliver.seq();
  if (pop_first) c->pending_delivers.pop_front();
  const LinkPair pair = *it;
  // NET-C-39: held pairs older than this one (by the link's sequence; OKs can
  // arrive out of order on real-time backends, NET-C-38a) will never be named
  // by a Deliver any more.
  std::deque<LinkPair> keep;
  for (const LinkPair& p : c->held) {
    if (SamePair(p.id, pair.id)) continue;
    if (p.id.origin() == pair.id.origin() && p.id.sequence() < pair.id.sequence()) {
      ReleasePair(c->upstream.link, p);
    } else {
      keep.push_back(p);
    }
  }
  c->held = std::move(keep);
  EndPair end;
  end.circuit = key;
  end.seq = seq;
  end.round = deliver.round();
  end.slot = pair.slot;
  end.estimated_fidelity = deliver.estimated_fidelity();
  end.completed = Time::FromNanos(static_cast<int64_t>(deliver.completed_ns()));
  end.delivered = runtime_->Now();
  end.remote_node = c->info.remote_node;
  results::v1::TraceRecord r;
  auto* e = r.mutable_end_pair();
  e->set_circuit(key.ToString());
  e->set_seq(seq);
  e->set_round(end.round);
  e->set_role("tail");
  e->set_slot(pair.slot);
  e->set_estimated_fidelity(end.estimated_fidelity);
  e->set_completed_ns(deliver.completed_ns());
  e->set_delivered_ns(static_cast<uint64_t>(end.delivered.nanos()));
  e->set_remote_node(end.remote_node);
  e->set_label(absl::StrCat(key.ToString(), "/", seq));
  for (const auto& n : c->info.path) e->add_path(n);
  tracer_->Record(std::move(r));
  ++stats_.pairs_delivered;
  v1::NetworkFrame frame;
  v1::DeliverAck* ack = frame.mutable_deliver_ack();  // NET-C-37
  *ack->mutable_circuit() = deliver.circuit();
  ack->set_seq(seq);
  Send(neighbour, frame);
  listener_->OnPair(end);
  return true;
}

void NetworkLayer::Impl::HandleDeliverAck(const std::string& neighbour, const v1::DeliverAck& ack) {
  Circuit* c = FindFrom(neighbour, ack.circuit(), /*from_downstream=*/true, "DeliverAck");
  if (c == nullptr) return;
  if (!c->head) {
    v1::NetworkFrame frame;
    *frame.mutable_deliver_ack() = ack;
    Send(c->upstream.neighbour, frame);
    return;
  }
  if (c->unacked.erase(ack.seq()) == 0) {
    Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("DeliverAck seq ", ack.seq(), " of circuit ",
                                                    c->key.ToString(), " not awaiting one"));
  }
}

void NetworkLayer::Impl::HandleDeliverNack(const std::string& neighbour,
                                           const v1::DeliverNack& nack) {
  Circuit* c = FindFrom(neighbour, nack.circuit(), /*from_downstream=*/true, "DeliverNack");
  if (c == nullptr) return;
  if (!c->head) {
    v1::NetworkFrame frame;
    *frame.mutable_deliver_nack() = nack;
    Send(c->upstream.neighbour, frame);
    return;
  }
  if (c->unacked.erase(nack.seq()) == 0) {
    Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("DeliverNack seq ", nack.seq(), " of circuit ",
                                                    c->key.ToString(), " not awaiting one"));
    return;
  }
  ReportExpired(c->key, nack.seq(), nack.detail());  // NET-C-38
}

void NetworkLayer::Impl::HandleRelease(const std::string& neighbour,
                                       const v1::ReleasePair& release) {
  Circuit* c = FindFrom(neighbour, release.circuit(), /*from_downstream=*/false, "ReleasePair");
  if (c == nullptr) return;
  if (!c->tail) {
    v1::NetworkFrame frame;
    *frame.mutable_release() = release;
    Send(c->downstream.neighbour, frame);
    return;
  }
  auto it = std::find_if(c->held.begin(), c->held.end(),
                         [&](const LinkPair& p) { return SamePair(p.id, release.tail_pair()); });
  if (it == c->held.end()) {
    Drop(DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("ReleasePair ", PairName(release.tail_pair()), " of circuit ",
                      c->key.ToString(), " not held"));
    return;
  }
  for (auto p = c->held.begin(); p != it + 1; ++p) ReleasePair(c->upstream.link, *p);  // NET-C-36
  c->held.erase(c->held.begin(), it + 1);
}

void NetworkLayer::Impl::ReportExpired(CircuitKey key, uint64_t seq, const std::string& detail) {
  ++stats_.pairs_expired;
  results::v1::TraceRecord r;
  auto* e = r.mutable_pair_expired();
  e->set_circuit(key.ToString());
  e->set_seq(seq);
  e->set_detail(detail);
  tracer_->Record(std::move(r));
  listener_->OnPairExpired(key, seq, detail);
}

}  // namespace qnet::network
