// PairStream: standing CREATEs, swaps, Tracks, completion and delivery
// (specs/network.md NET-C-20 .. NET-C-39, NET-C-26).
#include "network/pair_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "link/create_check.h"
#include "network/circuit.h"
#include "network/circuit_table.h"

namespace qnet::network {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_NO_CONSUMER;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;

namespace {

bool SamePair(const link::v1::PairId& a, const link::v1::PairId& b) {
  return a.sequence() == b.sequence() && a.origin() == b.origin() && a.partner() == b.partner();
}

// A gap of more missing seqs than this in one Deliver is not a run of lost
// Delivers but a malformed frame.
constexpr uint64_t kMaxSeqGap = 4096;
// Tracks waiting at one node per circuit (NET-C-62), and expired pairs
// remembered per circuit (NET-C-30b).
constexpr size_t kMaxParked = 4096;
constexpr size_t kMaxLost = 4096;

Time FromWireNs(uint64_t ns) { return Time::FromNanos(static_cast<int64_t>(ns)); }

double WernerClamped(double fidelity) { return std::clamp(WernerOf(fidelity), 0.0, 1.0); }

// NET-C-35: whether the Pauli correction of `bell` flips a result measured in `basis`.
bool CorrectionFlips(physical::v1::BellState bell, physical::v1::Basis basis) {
  const int index = BellIndex(bell);  // x bit | z bit << 1
  if (index <= 0) return false;
  const bool x = index & 1, z = index & 2;
  switch (basis) {
    case physical::v1::BASIS_Z:
      return x;  // X or Y anticommute with Z
    case physical::v1::BASIS_X:
      return z;  // Z or Y anticommute with X
    case physical::v1::BASIS_Y:
      return x != z;  // X or Z anticommute with Y
    default:
      return false;
  }
}

}  // namespace

// ---- Generation (NET-C-20 .. NET-C-25) ----

void PairStream::Start(Circuit& c) {
  if (c.downstream.present) IssueCreate(c.key);
}

void PairStream::IssueCreate(CircuitKey key) {
  Circuit* c = table_->Find(key);
  if (c == nullptr || !c->downstream.present || !c->up) return;
  link::v1::Create create;
  create.set_remote_node(c->downstream.neighbour);
  create.set_pairs(0);  // LINK-45: standing
  create.set_type(c->downstream.keeps ? link::v1::REQUEST_TYPE_KEEP
                                      : link::v1::REQUEST_TYPE_MEASURE);
  const bool tail_measures = c->measures() && c->index + 2 == c->info.path.size();
  create.set_partner_type(tail_measures ? link::v1::REQUEST_TYPE_MEASURE
                                        : link::v1::REQUEST_TYPE_KEEP);
  create.set_purpose_id(c->downstream.label);
  create.set_min_fidelity(c->downstream.min_fidelity);
  create.set_priority(ctx_->options.link_priority);
  create.set_window(c->granted);
  if (c->measures()) {
    create.set_basis(c->info.measure->basis);
    if (c->info.measure->z_probability) create.set_z_probability(*c->info.measure->z_probability);
  }
  link::LinkService* service = ctx_->ServiceOf(c->downstream.link);
  absl::StatusOr<uint64_t> id = service->Create(create);
  if (id.ok()) {
    c->create_id = *id;
    return;
  }
  c->create_id.reset();
  const link::v1::ErrorCode code = link::ErrorCodeOf(id.status());
  if (code == link::v1::ERROR_CODE_NOTIME || code == link::v1::ERROR_CODE_UNSUPPORTED ||
      code == link::v1::ERROR_CODE_CREATE) {  // NET-C-24
    table_->TearDown(
        key, v1::CIRCUIT_ERROR_LINK_ERROR,
        absl::StrCat("link ", c->downstream.link, " refused the CREATE: ", id.status().message()),
        "", "");
    return;
  }
  RetryCreate(*c);  // NET-C-23
}

void PairStream::RetryCreate(Circuit& c) {
  const CircuitKey key = c.key;
  if (!c.retry_timer) {
    c.retry_timer = ctx_->runtime->CreateTimer([this, key] { IssueCreate(key); });
  }
  c.retry_timer->ArmAt(ctx_->runtime->Now() + ctx_->options.create_retry);
}

void PairStream::Stop(Circuit& c) {
  c.retry_timer.reset();
  c.park_timer.reset();
  c.deliver_timer.reset();
  c.ack_timer.reset();
  if (c.create_id && c.downstream.present) {  // NET-C-21
    if (link::LinkService* service = ctx_->ServiceOf(c.downstream.link)) {
      (void)service->Cancel(*c.create_id);
    }
  }
  c.create_id.reset();
  // NET-C-41: every held pair is freed; pairs heralded later find no circuit
  // and are released on arrival (NET-C-25).
  for (const LinkPair& p : c.up_pairs) ctx_->ReleasePair(c.upstream.link, p);
  for (const LinkPair& p : c.down_pairs) ctx_->ReleasePair(c.downstream.link, p);
  c.up_pairs.clear();
  c.down_pairs.clear();
  c.swaps.clear();
  c.parked.clear();
}

void PairStream::OnLinkOk(const link::v1::Ok& ok) {
  const std::string link = ok.link().empty() ? ctx_->LinkTo(ok.remote_node()) : ok.link();
  LinkPair pair;
  pair.id = ok.pair();
  pair.bell = ok.bell_state();
  pair.herald = FromWireNs(ok.time_ns());
  pair.estimated_fidelity = ok.estimated_fidelity();
  if (ok.has_slot()) {
    pair.slot = ok.slot();
  } else {
    pair.measured = true;
    pair.basis = ok.basis();
    pair.result = ok.result();
  }
  Circuit* c = table_->FindByLabel(link, ok.pair().origin(), ok.purpose_id());
  if (c == nullptr) {  // NET-C-25: e.g. a pair heralded after the teardown
    ctx_->ReleasePair(link, pair);
    ctx_->Drop(DROP_REASON_NO_CONSUMER,
               absl::StrCat("OK ", PairName(ok.pair()), " with label ", ok.purpose_id(),
                            " of no circuit"),
               link);
    return;
  }
  const bool mine = ok.pair().origin() == ctx_->node;
  const CircuitSide& side = mine ? c->downstream : c->upstream;
  std::string bad;
  if (BellIndex(pair.bell) < 0) {
    bad = "without a Bell state";
  } else if (side.keeps == pair.measured) {
    bad = side.keeps ? "without a slot" : "with a slot on a measuring end";
  } else if (mine && c->create_id != ok.create_id()) {
    bad = "of a stale CREATE";
  }
  if (bad.empty() && c->lost.contains(KeyOf(pair.id))) {
    bad = "that came after its Track gave up";  // NET-C-30b: no end-to-end pair uses it
  }
  if (!bad.empty()) {
    ctx_->ReleasePair(link, pair);
    ctx_->Drop(bad.starts_with("without") || bad.starts_with("with a")
                   ? DROP_REASON_MALFORMED_FRAME
                   : DROP_REASON_NO_CONSUMER,
               absl::StrCat("OK ", PairName(ok.pair()), " ", bad, " for circuit ",
                            c->key.ToString()),
               link);
    return;
  }
  if (mine) {
    if (c->head && c->links() == 1) return Complete(*c, std::move(pair), nullptr);  // NET-C-31
    const PairKey key = KeyOf(pair.id);
    c->down_pairs.push_back(std::move(pair));  // NET-C-22
    if (c->head) return ServeParked(c->key);   // its Track may have come first
    // A Track that came first now waits for the swap only (NET-C-30a).
    if (auto parked = c->parked.find(key); parked != c->parked.end()) {
      parked->second.give_up = Time::Infinite();
    }
    return TrySwap(*c);
  }
  c->up_pairs.push_back(pair);
  if (!c->tail) return TrySwap(*c);
  if (c->links() > 1) {  // NET-C-30
    v1::Track track;
    *track.mutable_circuit() = ToProto(c->key);
    *track.mutable_pair() = pair.id;
    *track.mutable_tail_pair() = pair.id;
    track.set_bell(physical::v1::BELL_STATE_PHI_PLUS);
    track.set_fidelity_product(1.0);
    SendTrack(*c, std::move(track));
  }
  if (!c->pending_delivers.empty()) ServePendingDelivers(c->key);  // NET-C-38a
}

void PairStream::OnLinkErr(const link::v1::Err& err) {
  const std::string& link = err.link();
  const bool mine = err.origin() == ctx_->node;
  if (err.code() != link::v1::ERROR_CODE_EXPIRED) {
    if (!mine) return;  // the origin acts on it
    for (auto& [key, c] : table_->circuits()) {
      if (!c.downstream.present || c.downstream.link != link || c.create_id != err.create_id()) {
        continue;
      }
      c.create_id.reset();
      if (err.code() == link::v1::ERROR_CODE_NOTIME ||
          err.code() == link::v1::ERROR_CODE_UNSUPPORTED ||
          err.code() == link::v1::ERROR_CODE_CREATE) {  // NET-C-24
        table_->TearDown(CircuitKey(key), v1::CIRCUIT_ERROR_LINK_ERROR,
                         absl::StrCat("link ", link, ": ", link::v1::ErrorCode_Name(err.code()),
                                      " ", err.detail()),
                         "", "");
      } else {
        RetryCreate(c);  // NET-C-23
      }
      return;
    }
    return;
  }
  // NET-C-26: an expired link pair is gone.
  auto expired = [&](const link::v1::PairId& id) {
    return id.origin() == err.origin() && id.sequence() >= err.expired_from() &&
           id.sequence() <= err.expired_to();
  };
  for (auto& [id, ps] : swaps_) {  // a swap still running
    const Circuit* c = table_->Find(ps.key);
    if (c == nullptr) continue;
    if (c->upstream.link == link && expired(ps.up.id)) ps.up_lost = true;
    if (c->downstream.link == link && expired(ps.down.id)) ps.down_lost = true;
  }
  std::vector<CircuitKey> keys;
  for (const auto& [key, c] : table_->circuits()) keys.push_back(key);
  for (const CircuitKey& key : keys) {
    Circuit* c = table_->Find(key);
    if (c == nullptr) continue;
    for (bool upstream : {true, false}) {
      const CircuitSide& side = upstream ? c->upstream : c->downstream;
      if (!side.present || side.link != link) continue;
      // Also the pairs never heard of here: a Track or Deliver naming one
      // later is answered at once (NET-C-30b, NET-C-38).
      for (uint64_t q = err.expired_from();
           q <= err.expired_to() && q < err.expired_from() + kMaxLost; ++q) {
        link::v1::PairId id;
        id.set_origin(err.origin());
        id.set_sequence(q);
        MarkLost(*c, id);
      }
      std::deque<LinkPair>& pairs = upstream ? c->up_pairs : c->down_pairs;
      for (auto p = pairs.begin(); p != pairs.end();) {
        if (!expired(p->id)) {
          ++p;
          continue;
        }
        ctx_->ReleasePair(link, *p);
        p = pairs.erase(p);
      }
    }
    if (c->head || c->tail) continue;
    // Swapped already: the end-to-end pair it went into is lost.
    std::vector<v1::Track> discards;
    for (auto m = c->swaps.begin(); m != c->swaps.end();) {
      if (c->upstream.link == link && expired(m->second.upstream)) m->second.upstream_lost = true;
      const bool down = c->downstream.link == link && m->first.origin == err.origin() &&
                        m->first.sequence >= err.expired_from() &&
                        m->first.sequence <= err.expired_to();
      if (!down) {
        ++m;
        continue;
      }
      if (!m->second.upstream_lost) {
        v1::Track t;
        *t.mutable_circuit() = ToProto(c->key);
        *t.mutable_pair() = m->second.upstream;
        t.set_bell(physical::v1::BELL_STATE_PHI_PLUS);
        t.set_fidelity_product(1.0);
        t.set_discard(true);
        t.set_detail(absl::StrCat("link pair expired at ", ctx_->node, ": ", err.detail()));
        discards.push_back(std::move(t));
      }
      m = c->swaps.erase(m);
    }
    for (v1::Track& t : discards) SendTrack(*c, std::move(t));
  }
}

void PairStream::MarkLost(Circuit& c, const link::v1::PairId& id) {
  if (c.lost.size() >= kMaxLost) c.lost.erase(c.lost.begin());
  c.lost[KeyOf(id)] = ctx_->runtime->Now();
}

// ---- Swapping (NET-C-27 .. NET-C-29) ----

void PairStream::TrySwap(Circuit& c) {
  if (c.head || c.tail) return;
  while (!c.up_pairs.empty() && !c.down_pairs.empty()) {  // NET-C-27: the oldest of each
    const uint64_t id = next_request_;
    next_request_ += 2;  // odd ids only (NetworkLayer::OwnsRequestId)
    PendingSwap& ps = swaps_[id];
    ps.key = c.key;
    ps.up = std::move(c.up_pairs.front());
    ps.down = std::move(c.down_pairs.front());
    c.up_pairs.pop_front();
    c.down_pairs.pop_front();
    physical::v1::BellMeasure bm;
    bm.set_request_id(id);
    bm.set_slot_a(ps.up.slot);
    bm.set_slot_b(ps.down.slot);
    ctx_->physical->BellMeasure(bm);
    // NET-C-28: the measurement empties both slots (PHYS-M7) the moment it is
    // made; the device handles requests in order, so a Generate sent after
    // this finds them free. The link ends hear it (LINK-46) and generate again
    // without waiting for the outcome.
    (void)ctx_->memory->Return(ps.up.slot);
    (void)ctx_->memory->Return(ps.down.slot);
  }
}

void PairStream::OnBellMeasureResult(const physical::v1::BellMeasureResult& result) {
  auto it = swaps_.find(result.request_id());
  if (it == swaps_.end()) {
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("BellMeasureResult for unknown request ", result.request_id()));
    return;
  }
  PendingSwap ps = std::move(it->second);
  swaps_.erase(it);
  ++ctx_->stats.swaps;
  results::v1::TraceRecord r;
  auto* e = r.mutable_swap_event();
  e->set_circuit(ps.key.ToString());
  *e->mutable_upstream() = ps.up.id;
  *e->mutable_downstream() = ps.down.id;
  e->set_outcome(result.bell_state());
  ctx_->tracer->Record(std::move(r));
  Circuit* c = table_->Find(ps.key);
  if (c == nullptr) return;
  if (ps.down_lost) {  // NET-C-26: the downstream half is gone; so is the upstream chain
    if (!ps.up_lost) {
      v1::Track t;
      *t.mutable_circuit() = ToProto(c->key);
      *t.mutable_pair() = ps.up.id;
      t.set_bell(physical::v1::BELL_STATE_PHI_PLUS);
      t.set_fidelity_product(1.0);
      t.set_discard(true);
      t.set_detail(absl::StrCat("link pair expired at ", ctx_->node));
      SendTrack(*c, std::move(t));
    }
    return;
  }
  SwapMemo memo;  // NET-C-29
  memo.upstream = ps.up.id;
  memo.outcome = result.bell_state();
  memo.downstream_bell = ps.down.bell;
  memo.upstream_herald = ps.up.herald;
  memo.downstream_herald = ps.down.herald;
  memo.downstream_fidelity = ps.down.estimated_fidelity;
  memo.upstream_lost = ps.up_lost;
  const PairKey down = KeyOf(ps.down.id);
  c->swaps[down] = std::move(memo);
  auto parked = c->parked.find(down);
  if (parked != c->parked.end()) {
    v1::Track track = std::move(parked->second.track);
    c->parked.erase(parked);
    ProcessTrack(*c, std::move(track));
  }
}

// ---- Tracking (NET-C-30 .. NET-C-31) ----

void PairStream::SendTrack(Circuit& c, v1::Track track) {
  v1::NetworkFrame frame;
  *frame.mutable_track() = std::move(track);
  ctx_->Send(c.upstream.neighbour, frame);
}

void PairStream::HandleTrack(const std::string& neighbour, const v1::Track& track) {
  Circuit* c = table_->FindFrom(neighbour, track.circuit(), /*from_downstream=*/true, "Track");
  if (c == nullptr) return;
  const double product = track.fidelity_product();
  if (track.pair().origin().empty() || track.pair().sequence() == 0 ||
      (!track.discard() && (track.tail_pair().origin().empty() ||
                            track.tail_pair().sequence() == 0)) ||
      BellIndex(track.bell()) < 0 || !(product >= 0.0 && product <= 1.0)) {  // NET-C-62
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("Track ", PairName(track.pair()), " of circuit ", c->key.ToString(),
                            " from ", neighbour));
    return;
  }
  if (c->parked.contains(KeyOf(track.pair()))) {
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("Track ", PairName(track.pair()), " of circuit ", c->key.ToString(),
                            " repeated"));
    return;
  }
  ProcessTrack(*c, track);
}

void PairStream::ProcessTrack(Circuit& c, v1::Track track) {
  const PairKey p = KeyOf(track.pair());
  if (c.head) {
    auto h = std::find_if(c.down_pairs.begin(), c.down_pairs.end(),
                          [&](const LinkPair& l) { return KeyOf(l.id) == p; });
    if (h != c.down_pairs.end()) {
      LinkPair pair = std::move(*h);
      c.down_pairs.erase(h);
      return Complete(c, std::move(pair), &track);  // NET-C-31
    }
    if (track.discard()) {
      // NET-C-26: the end-to-end pair is lost; h, if its OK is still on its
      // way, is freed when it comes (NET-C-38b) instead of held for ever.
      MarkLost(c, track.pair());
      return;
    }
    if (c.lost.contains(p)) return ReleaseDownstream(c, track, "expired at the head");
    return Park(c, std::move(track), /*known=*/false);
  }
  auto memo = c.swaps.find(p);
  if (memo == c.swaps.end()) {
    // NET-C-30a: held, or in a Bell measurement whose result has not come:
    // wait for the swap.
    if (HoldsUnswapped(c, p)) return Park(c, std::move(track), /*known=*/true);
    if (track.discard()) {
      MarkLost(c, track.pair());  // as at the head: a late OK finds no use
      return;
    }
    if (c.lost.contains(p)) return ReleaseDownstream(c, track, "expired");
    return Park(c, std::move(track), /*known=*/false);
  }
  SwapMemo m = std::move(memo->second);
  c.swaps.erase(memo);
  if (m.upstream_lost) {
    if (!track.discard()) ReleaseDownstream(c, track, "its upstream half expired");
    return;
  }
  // NET-C-30a: fold this swap in and pass it on towards the head.
  track.set_bell(BellXor(track.bell(), BellXor(m.outcome, m.downstream_bell)));
  int64_t oldest = track.oldest_herald_ns() == 0 ? INT64_MAX
                                                 : static_cast<int64_t>(track.oldest_herald_ns());
  oldest = std::min({oldest, m.upstream_herald.nanos(), m.downstream_herald.nanos()});
  track.set_oldest_herald_ns(static_cast<uint64_t>(oldest));
  track.set_fidelity_product(track.fidelity_product() * WernerClamped(m.downstream_fidelity));
  *track.mutable_pair() = m.upstream;
  SendTrack(c, std::move(track));
}

bool PairStream::HoldsUnswapped(const Circuit& c, const PairKey& p) const {
  if (std::any_of(c.down_pairs.begin(), c.down_pairs.end(),
                  [&](const LinkPair& l) { return KeyOf(l.id) == p; })) {
    return true;
  }
  return std::any_of(swaps_.begin(), swaps_.end(), [&](const auto& entry) {
    return entry.second.key == c.key && KeyOf(entry.second.down.id) == p;
  });
}

void PairStream::Park(Circuit& c, v1::Track track, bool known) {
  if (c.parked.size() >= kMaxParked) {  // NET-C-62
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("Track ", PairName(track.pair()), " of circuit ", c.key.ToString(),
                            ": ", kMaxParked, " Tracks wait already"));
    return;
  }
  const PairKey p = KeyOf(track.pair());
  const Time give_up =
      known ? Time::Infinite() : ctx_->runtime->Now() + ctx_->options.deliver_wait;
  c.parked[p] = ParkedTrack{std::move(track), give_up};
  ArmParkTimer(c);
}

void PairStream::ArmParkTimer(Circuit& c) {
  Time next = Time::Infinite();
  for (const auto& [p, parked] : c.parked) next = std::min(next, parked.give_up);
  if (next.is_infinite()) {
    if (c.park_timer) c.park_timer->Cancel();
    return;
  }
  if (!c.park_timer) {
    const CircuitKey key = c.key;
    c.park_timer = ctx_->runtime->CreateTimer([this, key] { ServeParked(key); });
  }
  c.park_timer->ArmAt(next);
}

void PairStream::ServeParked(const CircuitKey& key) {
  Circuit* c = table_->Find(key);
  if (c == nullptr || c->parked.empty()) return;
  const Time now = ctx_->runtime->Now();
  // Tracks whose pair has come (the head), or whose wait is over.
  std::vector<v1::Track> ready, late;
  for (auto it = c->parked.begin(); it != c->parked.end();) {
    const bool here = HoldsUnswapped(*c, it->first);
    if (here && c->head) {
      ready.push_back(std::move(it->second.track));
    } else if (here) {
      it->second.give_up = Time::Infinite();  // heard of now: waits for the swap
      ++it;
      continue;
    } else if (it->second.give_up <= now) {
      late.push_back(std::move(it->second.track));
    } else {
      ++it;
      continue;
    }
    it = c->parked.erase(it);
  }
  for (v1::Track& t : ready) {
    c = table_->Find(key);
    if (c == nullptr) return;
    ProcessTrack(*c, std::move(t));
  }
  for (v1::Track& t : late) {
    c = table_->Find(key);
    if (c == nullptr) return;
    MarkLost(*c, t.pair());  // its OK, if it still comes, finds no use (NET-C-30b)
    ReleaseDownstream(*c, t, absl::StrCat("no such pair at ", ctx_->node, " in time"));
  }
  c = table_->Find(key);
  if (c != nullptr) ArmParkTimer(*c);
}

void PairStream::ReleaseDownstream(Circuit& c, const v1::Track& track, const std::string& why) {
  if (track.discard()) return;
  v1::NetworkFrame frame;
  v1::ReleasePair* rel = frame.mutable_release();  // NET-C-30b
  *rel->mutable_circuit() = ToProto(c.key);
  *rel->mutable_tail_pair() = track.tail_pair();
  rel->set_detail(absl::StrCat("pair ", PairName(track.pair()), ": ", why));
  ctx_->Send(c.downstream.neighbour, frame);
}

// ---- Completion at the head (NET-C-31 .. NET-C-36) ----

void PairStream::Discard(Circuit& c, const LinkPair& h, const std::string& reason, double age_s) {
  ctx_->ReleasePair(c.downstream.link, h);
  ++ctx_->stats.pairs_discarded;
  results::v1::TraceRecord r;
  auto* d = r.mutable_pair_discarded();
  d->set_circuit(c.key.ToString());
  *d->mutable_link_pair() = h.id;
  d->set_reason(reason);
  d->set_age_s(age_s);
  ctx_->tracer->Record(std::move(r));
}

void PairStream::Complete(Circuit& c, LinkPair h, const v1::Track* track) {
  const CircuitKey key = c.key;
  if (track != nullptr && track->discard()) return Discard(c, h, "expired", 0.0);
  // NET-C-31: B = bell(h) xor the Track's combined outcomes.
  physical::v1::BellState bell = h.bell;
  Time oldest = h.herald;
  double w = WernerClamped(h.estimated_fidelity);
  link::v1::PairId tail_pair = h.id;
  if (track != nullptr) {
    bell = BellXor(bell, track->bell());
    if (track->oldest_herald_ns() != 0) oldest = std::min(oldest, FromWireNs(track->oldest_herald_ns()));
    w *= track->fidelity_product();
    tail_pair = track->tail_pair();
  }
  const Time now = ctx_->runtime->Now();
  const absl::Duration age = now - oldest;
  if (age > c.info.cutoff) {  // NET-C-36
    Discard(c, h, "cutoff", absl::ToDoubleSeconds(age));
    v1::NetworkFrame frame;
    v1::ReleasePair* rel = frame.mutable_release();
    *rel->mutable_circuit() = ToProto(key);
    *rel->mutable_tail_pair() = tail_pair;
    rel->set_detail("cutoff");
    ctx_->Send(c.downstream.neighbour, frame);
    return;
  }
  const uint64_t seq = ++c.delivered;  // NET-C-32
  const std::string label = absl::StrCat(key.ToString(), "/", seq);
  EndPair pair;
  pair.circuit = key;
  pair.seq = seq;
  pair.estimated_fidelity = FidelityOfWerner(w);
  pair.completed = now;
  pair.delivered = now;
  pair.remote_node = c.info.remote_node;
  pair.link_pair = h.id;
  if (h.measured) {  // NET-C-35: the correction, applied to the result
    pair.measured = true;
    pair.basis = h.basis;
    pair.result = h.result ^ (CorrectionFlips(bell, h.basis) ? 1u : 0u);
  } else {
    pair.slot = h.slot;
    physical::v1::Probe probe;  // NET-C-33
    probe.set_slot(h.slot);
    probe.set_bell_state(bell);
    probe.set_label(label);
    ctx_->physical->Probe(probe);
    if (const physical::v1::GateKind gate = CorrectionGate(bell);
        gate != physical::v1::GATE_KIND_UNSPECIFIED) {  // NET-C-35
      physical::v1::Gate g;
      g.set_kind(gate);
      g.set_slot(h.slot);
      ctx_->physical->ApplyGate(g);
    }
  }
  results::v1::TraceRecord r;
  auto* e = r.mutable_end_pair();
  e->set_circuit(key.ToString());
  e->set_seq(seq);
  e->set_role("head");
  e->set_slot(pair.slot);
  e->set_estimated_fidelity(pair.estimated_fidelity);
  e->set_completed_ns(static_cast<uint64_t>(now.nanos()));
  e->set_delivered_ns(static_cast<uint64_t>(now.nanos()));
  e->set_remote_node(pair.remote_node);
  e->set_label(label);
  e->set_tracked_bell(bell);
  for (const auto& n : c.info.path) e->add_path(n);
  *e->mutable_link_pair() = h.id;
  if (pair.measured) {
    e->set_measured(true);
    e->set_basis(pair.basis);
    e->set_result(pair.result);
  }
  ctx_->tracer->Record(std::move(r));
  ++ctx_->stats.pairs_completed;
  ++ctx_->stats.pairs_delivered;
  v1::NetworkFrame frame;
  v1::Deliver* d = frame.mutable_deliver();  // NET-C-34
  *d->mutable_circuit() = ToProto(key);
  d->set_seq(seq);
  *d->mutable_tail_pair() = tail_pair;
  d->set_estimated_fidelity(pair.estimated_fidelity);
  d->set_completed_ns(static_cast<uint64_t>(now.nanos()));
  ctx_->Send(c.downstream.neighbour, frame);
  c.unacked[seq] = label;
  ctx_->listener->OnPair(pair);  // last: it may close the circuit
}

// ---- Delivery at the tail (NET-C-37 .. NET-C-39) ----

void PairStream::HandleDeliver(const std::string& neighbour, const v1::Deliver& deliver) {
  Circuit* c = table_->FindFrom(neighbour, deliver.circuit(), /*from_downstream=*/false, "Deliver");
  if (c == nullptr) return;
  if (!c->tail) {
    v1::NetworkFrame frame;
    *frame.mutable_deliver() = deliver;
    ctx_->Send(c->downstream.neighbour, frame);
    return;
  }
  if (deliver.tail_pair().origin().empty()) {  // NET-C-63
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("Deliver seq ", deliver.seq(), " of circuit ", c->key.ToString(),
                            " without a tail pair"));
    return;
  }
  const uint64_t seq = deliver.seq();
  if (seq <= c->last_seq || seq - c->last_seq > kMaxSeqGap) {  // NET-C-64
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("Deliver seq ", seq, " of circuit ", c->key.ToString(), " after seq ",
                            c->last_seq));
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
  c->pending_delivers.push_back(
      {neighbour, deliver, ctx_->runtime->Now() + ctx_->options.deliver_wait});
  ServePendingDelivers(c->key);
}

void PairStream::SendDeliverNack(const std::string& neighbour, const v1::CircuitKey& circuit,
                                 uint64_t seq, const std::string& detail) {
  v1::NetworkFrame frame;
  v1::DeliverNack* n = frame.mutable_deliver_nack();
  *n->mutable_circuit() = circuit;
  n->set_seq(seq);
  n->set_detail(detail);
  ctx_->Send(neighbour, frame);
}

void PairStream::ServePendingDelivers(const CircuitKey& key) {
  const Time now = ctx_->runtime->Now();
  for (;;) {
    // Looked up afresh each time: handing a pair up may close the circuit.
    Circuit* c = table_->Find(key);
    if (c == nullptr) return;
    if (c->pending_delivers.empty()) break;
    if (!DeliverHeld(*c, c->pending_delivers.front().neighbour,
                     c->pending_delivers.front().deliver, /*pop_first=*/true)) {
      const Circuit::PendingDeliver& p = c->pending_delivers.front();
      const bool lost = c->lost.contains(KeyOf(p.deliver.tail_pair()));
      if (!lost && p.refuse_at > now) break;  // keep waiting, and keep the order
      SendDeliverNack(p.neighbour, p.deliver.circuit(), p.deliver.seq(),  // NET-C-38
                      absl::StrCat("pair ", PairName(p.deliver.tail_pair()), " not held at ",
                                   ctx_->node));
      MarkLost(*c, p.deliver.tail_pair());  // if its OK still comes, it is freed at once
      c->pending_delivers.pop_front();
    }
  }
  Circuit* c = table_->Find(key);
  if (c->pending_delivers.empty()) {
    if (c->deliver_timer) c->deliver_timer->Cancel();
    return;
  }
  if (!c->deliver_timer) {
    c->deliver_timer = ctx_->runtime->CreateTimer([this, key] { ServePendingDelivers(key); });
  }
  c->deliver_timer->ArmAt(c->pending_delivers.front().refuse_at);
}

bool PairStream::DeliverHeld(Circuit& cref, const std::string& neighbour_ref,
                             const v1::Deliver& deliver_ref, bool pop_first) {
  Circuit* c = &cref;
  const CircuitKey key = c->key;
  auto it = std::find_if(c->up_pairs.begin(), c->up_pairs.end(), [&](const LinkPair& p) {
    return SamePair(p.id, deliver_ref.tail_pair());
  });
  if (it == c->up_pairs.end()) return false;
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
  for (const LinkPair& p : c->up_pairs) {
    if (SamePair(p.id, pair.id)) continue;
    if (p.id.origin() == pair.id.origin() && p.id.sequence() < pair.id.sequence()) {
      ctx_->ReleasePair(c->upstream.link, p);
    } else {
      keep.push_back(p);
    }
  }
  c->up_pairs = std::move(keep);
  EndPair end;
  end.circuit = key;
  end.seq = seq;
  end.slot = pair.slot;
  end.measured = pair.measured;
  end.basis = pair.basis;
  end.result = pair.result;
  end.estimated_fidelity = deliver.estimated_fidelity();
  end.completed = FromWireNs(deliver.completed_ns());
  end.delivered = ctx_->runtime->Now();
  end.remote_node = c->info.remote_node;
  end.link_pair = pair.id;
  results::v1::TraceRecord r;
  auto* e = r.mutable_end_pair();
  e->set_circuit(key.ToString());
  e->set_seq(seq);
  e->set_role("tail");
  e->set_slot(pair.slot);
  e->set_estimated_fidelity(end.estimated_fidelity);
  e->set_completed_ns(deliver.completed_ns());
  e->set_delivered_ns(static_cast<uint64_t>(end.delivered.nanos()));
  e->set_remote_node(end.remote_node);
  e->set_label(absl::StrCat(key.ToString(), "/", seq));
  for (const auto& n : c->info.path) e->add_path(n);
  *e->mutable_link_pair() = pair.id;
  if (pair.measured) {
    e->set_measured(true);
    e->set_basis(pair.basis);
    e->set_result(pair.result);
  }
  ctx_->tracer->Record(std::move(r));
  ++ctx_->stats.pairs_delivered;
  // NET-C-37: one cumulative DeliverAck for the Delivers handled together.
  c->ack_seq = seq;
  if (!c->ack_timer) {
    c->ack_timer = ctx_->runtime->CreateTimer([this, key] { SendAck(key); });
  }
  if (!c->ack_timer->armed()) c->ack_timer->ArmAt(ctx_->runtime->Now());
  ctx_->listener->OnPair(end);
  return true;
}

void PairStream::SendAck(const CircuitKey& key) {
  Circuit* c = table_->Find(key);
  if (c == nullptr || c->ack_seq <= c->acked_seq) return;
  c->acked_seq = c->ack_seq;
  v1::NetworkFrame frame;
  v1::DeliverAck* ack = frame.mutable_deliver_ack();
  *ack->mutable_circuit() = ToProto(key);
  ack->set_seq(c->ack_seq);
  ctx_->Send(c->upstream.neighbour, frame);
}

void PairStream::HandleDeliverAck(const std::string& neighbour, const v1::DeliverAck& ack) {
  Circuit* c = table_->FindFrom(neighbour, ack.circuit(), /*from_downstream=*/true, "DeliverAck");
  if (c == nullptr) return;
  if (!c->head) {
    v1::NetworkFrame frame;
    *frame.mutable_deliver_ack() = ack;
    ctx_->Send(c->upstream.neighbour, frame);
    return;
  }
  // Cumulative: every seq up to it was delivered (the Nacks of refused ones
  // came before it on the same path).
  auto end = c->unacked.upper_bound(ack.seq());
  if (end == c->unacked.begin()) {
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("DeliverAck seq ", ack.seq(), " of circuit ", c->key.ToString(),
                            " not awaiting one"));
    return;
  }
  c->unacked.erase(c->unacked.begin(), end);
}

void PairStream::HandleDeliverNack(const std::string& neighbour, const v1::DeliverNack& nack) {
  Circuit* c =
      table_->FindFrom(neighbour, nack.circuit(), /*from_downstream=*/true, "DeliverNack");
  if (c == nullptr) return;
  if (!c->head) {
    v1::NetworkFrame frame;
    *frame.mutable_deliver_nack() = nack;
    ctx_->Send(c->upstream.neighbour, frame);
    return;
  }
  if (c->unacked.erase(nack.seq()) == 0) {
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("DeliverNack seq ", nack.seq(), " of circuit ", c->key.ToString(),
                            " not awaiting one"));
    return;
  }
  ReportExpired(c->key, nack.seq(), nack.detail());  // NET-C-38
}

void PairStream::HandleRelease(const std::string& neighbour, const v1::ReleasePair& release) {
  Circuit* c =
      table_->FindFrom(neighbour, release.circuit(), /*from_downstream=*/false, "ReleasePair");
  if (c == nullptr) return;
  if (!c->tail) {
    v1::NetworkFrame frame;
    *frame.mutable_release() = release;
    ctx_->Send(c->downstream.neighbour, frame);
    return;
  }
  if (release.tail_pair().origin().empty()) {  // NET-C-63
    ctx_->Drop(DROP_REASON_MALFORMED_FRAME,
               absl::StrCat("ReleasePair of circuit ", c->key.ToString(), " without a tail pair"));
    return;
  }
  auto it = std::find_if(c->up_pairs.begin(), c->up_pairs.end(), [&](const LinkPair& p) {
    return SamePair(p.id, release.tail_pair());
  });
  if (it == c->up_pairs.end()) {
    if (c->lost.contains(KeyOf(release.tail_pair()))) return;  // expired here already
    ctx_->Drop(DROP_REASON_UNEXPECTED_FRAME,
               absl::StrCat("ReleasePair ", PairName(release.tail_pair()), " of circuit ",
                            c->key.ToString(), " not held"));
    return;
  }
  ctx_->ReleasePair(c->upstream.link, *it);  // NET-C-36, NET-C-30b
  c->up_pairs.erase(it);
}

void PairStream::ReportExpired(CircuitKey key, uint64_t seq, const std::string& detail) {
  ++ctx_->stats.pairs_expired;
  results::v1::TraceRecord r;
  auto* e = r.mutable_pair_expired();
  e->set_circuit(key.ToString());
  e->set_seq(seq);
  e->set_detail(detail);
  ctx_->tracer->Record(std::move(r));
  ctx_->listener->OnPairExpired(key, seq, detail);
}

}  // namespace qnet::network
