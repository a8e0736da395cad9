// Builders and observers shared by the network-layer conformance tests
// (specs/network.md): network frames the harness sends as a neighbour, the
// link-layer frames it sends as the master of a circuit link, and scans of
// what the node sent.
#ifndef QNET_INTEROP_TESTS_NET_UTIL_H_
#define QNET_INTEROP_TESTS_NET_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "interop-tests/test_util.h"
#include "qnet/network/v1/network.pb.h"

namespace qnet::interop {

using network::v1::NetworkFrame;

// network/network_layer.h kFirstNetworkLabel: link purpose ids at or above it
// are circuit labels.
inline constexpr uint32_t kFirstLabel = 0x40000000u;

inline network::v1::CircuitKey Key(const std::string& head, uint64_t number) {
  network::v1::CircuitKey k;
  k.set_head(head);
  k.set_number(number);
  return k;
}

inline bool SameKey(const network::v1::CircuitKey& a, const network::v1::CircuitKey& b) {
  return a.head() == b.head() && a.number() == b.number();
}

inline link::v1::PairId Pair(const std::string& origin, const std::string& partner,
                             uint64_t sequence) {
  link::v1::PairId p;
  p.set_origin(origin);
  p.set_partner(partner);
  p.set_sequence(sequence);
  return p;
}

inline std::string Str(const link::v1::PairId& p) {
  return p.origin() + ">" + p.partner() + "#" + std::to_string(p.sequence());
}

struct AdvertLink {
  std::string link, neighbour;
  double pair_time_s = 2e-4;
  double fidelity = 0.9;
};

inline NetworkFrame Advert(const std::string& origin, uint64_t sequence,
                           const std::vector<AdvertLink>& links, uint32_t memories = 4) {
  NetworkFrame f;
  auto* a = f.mutable_advert();
  a->set_origin(origin);
  a->set_sequence(sequence);
  for (const auto& l : links) {
    auto* la = a->add_links();
    la->set_link(l.link);
    la->set_neighbour(l.neighbour);
    la->set_pair_time_s(l.pair_time_s);
    la->set_fidelity(l.fidelity);
  }
  a->set_memories(memories);
  return f;
}

inline NetworkFrame Datagram(const std::string& source, const std::string& destination,
                             uint32_t ttl, const std::string& payload) {
  NetworkFrame f;
  auto* d = f.mutable_datagram();
  d->set_source(source);
  d->set_destination(destination);
  d->set_ttl(ttl);
  d->set_payload(payload);
  return f;
}

struct HopSpec {
  std::string link;
  uint32_t label = 0;
  double min_fidelity = 0.8;
};

// The attributes of the suite's circuit links: the harness's default Werner
// link with a memory poll of 10 s, so that a link end whose window or memory
// is full holds its Generate until a slot frees (LINK-41) instead of sending
// IDLE Generates the scripted qworld would have to answer.
inline constexpr const char* kCircuitLink =
    R"(scheme="werner" length-km="1" attempt-us="100" p-success="0.5" fidelity="0.9" )"
    R"(memory-poll-us="10000000")";

inline NetworkFrame SetupFrame(const network::v1::CircuitKey& key,
                               const std::vector<std::string>& path,
                               const std::vector<HopSpec>& links, const std::string& upper = "",
                               uint32_t depth = 1) {
  NetworkFrame f;
  auto* s = f.mutable_setup();
  *s->mutable_circuit() = key;
  for (const auto& n : path) s->add_path(n);
  for (const auto& l : links) {
    auto* hl = s->add_links();
    hl->set_link(l.link);
    hl->set_label(l.label);
    hl->set_min_fidelity(l.min_fidelity);
  }
  s->set_cutoff_ns(0);
  s->set_min_fidelity(0.5);
  s->set_expected_fidelity(0.73);
  s->set_expected_pair_time_s(3e-4);
  s->set_upper(upper);
  s->set_depth(depth);
  return f;
}

inline NetworkFrame AcceptFrame(const network::v1::CircuitKey& key, uint32_t depth = 1) {
  NetworkFrame f;
  *f.mutable_accept()->mutable_circuit() = key;
  f.mutable_accept()->set_depth(depth);
  return f;
}

inline NetworkFrame RefuseFrame(const network::v1::CircuitKey& key, network::v1::CircuitError code,
                                const std::string& at_node) {
  NetworkFrame f;
  auto* r = f.mutable_refuse();
  *r->mutable_circuit() = key;
  r->set_code(code);
  r->set_detail("refused by the harness");
  r->set_at_node(at_node);
  return f;
}

inline NetworkFrame TeardownFrame(const network::v1::CircuitKey& key,
                                  network::v1::CircuitError code, const std::string& failed = "") {
  NetworkFrame f;
  auto* t = f.mutable_teardown();
  *t->mutable_circuit() = key;
  t->set_code(code);
  t->set_detail("torn down by the harness");
  t->set_failed_link(failed);
  return f;
}

inline NetworkFrame DeliverFrame(const network::v1::CircuitKey& key, uint64_t seq,
                                 const link::v1::PairId& tail_pair, uint64_t completed_ns) {
  NetworkFrame f;
  auto* d = f.mutable_deliver();
  *d->mutable_circuit() = key;
  d->set_seq(seq);
  *d->mutable_tail_pair() = tail_pair;
  d->set_estimated_fidelity(0.8);
  d->set_completed_ns(completed_ns);
  return f;
}

inline NetworkFrame DeliverAckFrame(const network::v1::CircuitKey& key, uint64_t seq) {
  NetworkFrame f;
  *f.mutable_deliver_ack()->mutable_circuit() = key;
  f.mutable_deliver_ack()->set_seq(seq);
  return f;
}

inline NetworkFrame DeliverNackFrame(const network::v1::CircuitKey& key, uint64_t seq,
                                     const std::string& detail = "harness lost it") {
  NetworkFrame f;
  *f.mutable_deliver_nack()->mutable_circuit() = key;
  f.mutable_deliver_nack()->set_seq(seq);
  f.mutable_deliver_nack()->set_detail(detail);
  return f;
}

inline NetworkFrame ReleaseFrame(const network::v1::CircuitKey& key,
                                 const link::v1::PairId& tail_pair,
                                 const std::string& detail = "released by the harness") {
  NetworkFrame f;
  *f.mutable_release()->mutable_circuit() = key;
  *f.mutable_release()->mutable_tail_pair() = tail_pair;
  f.mutable_release()->set_detail(detail);
  return f;
}

// Track (NET-C-30): `pair` is the receiver's downstream link pair.
inline NetworkFrame TrackFrame(const network::v1::CircuitKey& key, const link::v1::PairId& pair,
                               const link::v1::PairId& tail_pair,
                               physical::v1::BellState bell = physical::v1::BELL_STATE_PHI_PLUS,
                               uint64_t oldest_herald_ns = 0, double fidelity_product = 1.0,
                               bool discard = false) {
  NetworkFrame f;
  auto* t = f.mutable_track();
  *t->mutable_circuit() = key;
  *t->mutable_pair() = pair;
  *t->mutable_tail_pair() = tail_pair;
  t->set_bell(bell);
  t->set_oldest_herald_ns(oldest_herald_ns);
  t->set_fidelity_product(fidelity_product);
  t->set_discard(discard);
  return f;
}

// The harness's standing CREATE as the master of a circuit link (NET-C-20;
// specs/link.md LINK-18, LINK-45, LINK-46): QueueAdd of pairs 0, KEEP at both
// ends, window = the circuit's depth, the circuit's label as purpose id. The
// node under test is the link's non-master end and schedules it from
// eligible_ns.
inline LinkFrame CircuitQueueAdd(uint64_t queue_id, const std::string& origin,
                                 const std::string& remote, uint32_t label, double min_fidelity,
                                 uint64_t eligible_ns, uint32_t window = 1,
                                 const std::string& link = "L") {
  link::v1::Create c;
  c.set_remote_node(remote);
  c.set_pairs(0);
  c.set_type(link::v1::REQUEST_TYPE_KEEP);
  c.set_partner_type(link::v1::REQUEST_TYPE_KEEP);
  c.set_purpose_id(label);
  c.set_min_fidelity(min_fidelity);
  c.set_window(window);
  AddFields a;
  a.queue_id = queue_id;
  a.origin = origin;
  a.origin_create_id = queue_id;
  a.create = c;
  a.eligible_ns = eligible_ns;
  a.estimated_fidelity = 0.9;
  a.virtual_start = 0;
  return AddFrame(a, link);
}

// Bell states as Pauli indices (REFERENCE.md: PHI_PLUS 0 = I, PSI_PLUS 1 = X,
// PHI_MINUS 2 = Z, PSI_MINUS 3 = Y) and their product (xor of the indices).
inline int BellIndexOf(physical::v1::BellState b) { return static_cast<int>(b) - 1; }
inline physical::v1::BellState BellFromIndex(int i) {
  return static_cast<physical::v1::BellState>(i + 1);
}
inline physical::v1::BellState BellXor(physical::v1::BellState a, physical::v1::BellState b) {
  return BellFromIndex(BellIndexOf(a) ^ BellIndexOf(b));
}
// NET-C-30a / NET-C-31: the Werner parameter w = (4F - 1)/3, clamped to [0, 1].
inline double WernerOf(double fidelity) { return std::clamp((4 * fidelity - 1) / 3, 0.0, 1.0); }

// qworld's answer to a BellMeasure.
inline bool SendBellMeasureResult(Harness& h, uint64_t request_id,
                                  physical::v1::BellState outcome) {
  physical::v1::WorldToNode res;
  res.set_version(1);
  res.mutable_bell_measure_result()->set_request_id(request_id);
  res.mutable_bell_measure_result()->set_bell_state(outcome);
  res.mutable_bell_measure_result()->set_time_ns(h.NowNs());
  return h.SendPhysics(res);
}

// The key of a circuit frame (Setup .. Track), or nullptr for other bodies.
inline const network::v1::CircuitKey* KeyOf(const NetworkFrame& n) {
  switch (n.body_case()) {
    case NetworkFrame::kSetup:
      return &n.setup().circuit();
    case NetworkFrame::kAccept:
      return &n.accept().circuit();
    case NetworkFrame::kRefuse:
      return &n.refuse().circuit();
    case NetworkFrame::kTeardown:
      return &n.teardown().circuit();
    case NetworkFrame::kDeliver:
      return &n.deliver().circuit();
    case NetworkFrame::kDeliverAck:
      return &n.deliver_ack().circuit();
    case NetworkFrame::kDeliverNack:
      return &n.deliver_nack().circuit();
    case NetworkFrame::kRelease:
      return &n.release().circuit();
    case NetworkFrame::kTrack:
      return &n.track().circuit();
    default:
      return nullptr;
  }
}

// Whether a wire frame is a network frame of this body for this circuit.
inline bool IsNet(const wire::v1::Frame& f, NetworkFrame::BodyCase body,
                  const network::v1::CircuitKey& key) {
  if (!f.has_network() || f.network().body_case() != body) return false;
  const network::v1::CircuitKey* k = KeyOf(f.network());
  return k != nullptr && SameKey(*k, key);
}

// The network frames of a body case in a peer log.
inline std::vector<Timed<NetworkFrame>> NetFramesIn(const std::vector<Timed<wire::v1::Frame>>& log,
                                                    NetworkFrame::BodyCase body) {
  std::vector<Timed<NetworkFrame>> out;
  for (const auto& f : log)
    if (f.msg.has_network() && f.msg.network().body_case() == body)
      out.push_back({f.msg.network(), f.at_ns});
  return out;
}

// The first network frame of a body case from `peer` at or after `from`.
inline std::optional<Timed<NetworkFrame>> AwaitNet(Harness& h, int peer, size_t from,
                                                   NetworkFrame::BodyCase body,
                                                   Ms timeout = kWait) {
  auto f = AwaitPeer(
      h, peer, from,
      [body](const wire::v1::Frame& m) {
        return m.has_network() && m.network().body_case() == body;
      },
      timeout);
  if (!f) return std::nullopt;
  return Timed<NetworkFrame>{f->msg.network(), f->at_ns};
}

// The next advert from `origin` on the connection with `peer`.
inline std::optional<Timed<NetworkFrame>> ExpectAdvertOf(Harness& h, const std::string& origin,
                                                         Ms timeout, int peer = 0) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto f = h.ExpectNet(NetworkFrame::kAdvert, left, peer);
    if (!f) return std::nullopt;
    if (f->msg.advert().origin() == origin) return f;
  }
}

inline bool AdvertHasLink(const network::v1::LinkStateAdvert& a, const std::string& link) {
  for (const auto& l : a.links())
    if (l.link() == link) return true;
  return false;
}

// A drop record whose detail mentions `needle` (case-sensitive), if any.
inline int DropsMentioning(const Trace& trace, const std::string& needle) {
  int n = 0;
  for (const auto& r : trace)
    if (r.has_drop() && r.drop().detail().find(needle) != std::string::npos) ++n;
  return n;
}

}  // namespace qnet::interop

#endif  // QNET_INTEROP_TESTS_NET_UTIL_H_
