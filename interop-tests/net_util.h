// Builders and observers shared by the network-layer conformance tests
// (specs/network.md): network frames the harness sends as a neighbour, the
// link-layer frames it sends as the master of a circuit link, and scans of
// what the node sent.
#ifndef QNET_INTEROP_TESTS_NET_UTIL_H_
#define QNET_INTEROP_TESTS_NET_UTIL_H_

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
// The default hello interval (20 ms) and dead interval (4 hellos).
inline constexpr Ms kHello(20);
inline constexpr Ms kDead(80);

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

inline NetworkFrame SetupFrame(const network::v1::CircuitKey& key,
                               const std::vector<std::string>& path,
                               const std::vector<HopSpec>& links, const std::string& upper = "") {
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
  return f;
}

inline NetworkFrame AcceptFrame(const network::v1::CircuitKey& key) {
  NetworkFrame f;
  *f.mutable_accept()->mutable_circuit() = key;
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

// The harness's CREATE as the master of a circuit link: QueueAdd of one KEEP
// pair with the circuit's label (specs/link.md LINK-18; the node under test is
// the link's non-master end and schedules it from eligible_ns).
inline LinkFrame CircuitQueueAdd(uint64_t queue_id, const std::string& origin,
                                 const std::string& remote, uint32_t label, double min_fidelity,
                                 uint64_t eligible_ns, const std::string& link = "L") {
  link::v1::Create c;
  c.set_remote_node(remote);
  c.set_pairs(1);
  c.set_type(link::v1::REQUEST_TYPE_KEEP);
  c.set_purpose_id(label);
  c.set_min_fidelity(min_fidelity);
  AddFields a;
  a.queue_id = queue_id;
  a.origin = origin;
  a.origin_create_id = queue_id;
  a.create = c;
  a.eligible_ns = eligible_ns;
  a.estimated_fidelity = 0.9;
  a.virtual_start = queue_id;
  return AddFrame(a, link);
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

// Reads everything the node sends on every channel for `duration` (frames go
// to the logs), for checks that something did NOT happen.
inline void Watch(Harness& h, Ms duration, int peers = 2) {
  const auto end = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < end) {
    while (h.NextPhysics(Ms(0))) {
    }
    for (int i = 0; i < peers; ++i)
      while (h.NextPeer(Ms(0), i)) {
      }
    std::this_thread::sleep_for(Ms(5));
  }
}

// The first frame from `peer` at or after index `from` of its log that
// satisfies `pred`, waiting up to `timeout` for it. Unlike ExpectNet this also
// finds frames an earlier wait skipped over.
template <typename Pred>
std::optional<Timed<wire::v1::Frame>> AwaitPeer(Harness& h, int peer, size_t from, Pred pred,
                                                Ms timeout = kWait) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto& log = h.peer_log(peer);
    for (size_t i = from; i < log.size(); ++i)
      if (pred(log[i].msg)) return log[i];
    from = log.size();
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    h.NextPeer(std::min(left, Ms(50)), peer);
  }
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

// The first link frame of a body case from `peer` at or after `from`.
inline std::optional<Timed<LinkFrame>> AwaitLink(Harness& h, int peer, size_t from,
                                                 LinkFrame::BodyCase body, Ms timeout = kWait) {
  auto f = AwaitPeer(
      h, peer, from,
      [body](const wire::v1::Frame& m) { return m.has_link() && m.link().body_case() == body; },
      timeout);
  if (!f) return std::nullopt;
  return Timed<LinkFrame>{f->msg.link(), f->at_ns};
}

// The first physics request at or after index `from` of the log satisfying `pred`.
template <typename Pred>
std::optional<Timed<NodeToWorld>> AwaitPhysics(Harness& h, size_t from, Pred pred,
                                               Ms timeout = kWait) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto& log = h.physics_log();
    for (size_t i = from; i < log.size(); ++i)
      if (pred(log[i].msg)) return log[i];
    from = log.size();
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    h.NextPhysics(std::min(left, Ms(50)));
  }
}

inline std::optional<Timed<Generate>> AwaitGenerate(Harness& h, size_t from,
                                                    const std::string& link, Ms timeout = kWait) {
  auto m = AwaitPhysics(
      h, from,
      [&](const NodeToWorld& n) { return n.has_generate() && n.generate().link() == link; },
      timeout);
  if (!m) return std::nullopt;
  return Timed<Generate>{m->msg.generate(), m->at_ns};
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
