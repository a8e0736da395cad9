// specs/network.md section 2 (streaming circuits, NET-C-*), checked on the
// wire with the node under test at an END of a circuit:
//   - as the tail of far -> peer -> iut: the harness plays the intermediate
//     "peer" (L: a="peer", the harness is L's master and issues the circuit's
//     standing CREATE there) and, through it, the head "far", which opens the
//     circuit for a transport connection to port 7 of the node (the
//     topology's <connection from="far" to="iut">);
//   - as the head of iut -> peer -> far (or iut -> peer): the node opens the
//     circuit for its <connection>; the harness plays the next hop "peer"
//     (L: a="iut", the node is L's master) and the tail "far" behind it.
// The transport handshake the circuit hangs on is played with
// qnet.transport.v1 messages in NetDatagrams (specs/transport.md).
#include <cmath>
#include <map>
#include <set>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "interop-tests/net_util.h"
#include "qnet/transport/v1/transport.pb.h"

namespace qnet::interop {
namespace {

using network::v1::CircuitKey;
using physical::v1::BellState;
using physical::v1::OUTCOME_SUCCESS;
namespace tv1 = transport::v1;

constexpr uint32_t kLabel = kFirstLabel + 3;  // the intermediate's label on L
constexpr uint64_t kHarnessConnection = 5;

constexpr BellState kPhiPlus = physical::v1::BELL_STATE_PHI_PLUS;
constexpr BellState kPsiPlus = physical::v1::BELL_STATE_PSI_PLUS;
constexpr BellState kPhiMinus = physical::v1::BELL_STATE_PHI_MINUS;
constexpr BellState kPsiMinus = physical::v1::BELL_STATE_PSI_MINUS;

std::string ConnectPayload(uint32_t dst_port) {
  tv1::TransportMessage m;
  m.set_src_connection(kHarnessConnection);
  m.mutable_connect()->set_src_port(40000);
  m.mutable_connect()->set_dst_port(dst_port);
  m.mutable_connect()->mutable_qos()->set_type(tv1::PAIR_TYPE_KEEP);
  m.mutable_connect()->mutable_qos()->set_window(1);
  return m.SerializeAsString();
}

std::optional<tv1::TransportMessage> TransportIn(const NetworkFrame& f) {
  tv1::TransportMessage m;
  if (!f.has_datagram() || !m.ParseFromString(f.datagram().payload())) return std::nullopt;
  return m;
}

// NET-C-35: the Pauli gate that takes the Bell state to PHI_PLUS.
physical::v1::GateKind Correction(BellState b) {
  switch (b) {
    case physical::v1::BELL_STATE_PSI_PLUS:
      return physical::v1::GATE_KIND_X;
    case physical::v1::BELL_STATE_PHI_MINUS:
      return physical::v1::GATE_KIND_Z;
    case physical::v1::BELL_STATE_PSI_MINUS:
      return physical::v1::GATE_KIND_Y;
    default:
      return physical::v1::GATE_KIND_UNSPECIFIED;
  }
}

// The topology's link L3 between peer and far (for routes; the harness plays both).
constexpr const char* kFarLink =
    R"(  <node name="far" hardware="hw"/>
  <link name="L3" a="peer" b="far" scheme="werner" length-km="1" attempt-us="100" p-success="0.5" fidelity="0.9"/>
)";

bool IsDeliverAnswer(const wire::v1::Frame& f) {
  return f.has_network() && (f.network().has_deliver_ack() || f.network().has_deliver_nack());
}

// ------------------------------------------------------------------ tail

// The node is the tail of far -> peer -> iut and listens on port 7.
class Tail {
 public:
  explicit Tail(uint32_t memories = 4) : h_(Make(memories)) {}
  static HarnessOptions Make(uint32_t memories) {
    HarnessOptions o;
    o.iut_is_master = false;  // L: a="peer" b="iut"
    o.memories = memories;
    o.link_attributes = kCircuitLink;
    o.extra_topology = std::string(kFarLink) +
                       R"(  <connection from="far" to="iut" port="7" type="keep" start-s="0"/>)"
                       "\n";
    return o;
  }

  // Started, routes known, the transport connection from far accepted.
  std::string Start() {
    if (std::string why = h_.Start(); !why.empty()) return why;
    h_.StartHellos(0);
    h_.SendNet(Advert("peer", 1, {{"L", "iut"}, {"L3", "far"}}), 0);
    h_.SendNet(Advert("far", 1, {{"L3", "peer"}}), 0);
    Watch(h_, Ms(200), 1);
    h_.SendNet(Datagram("far", "iut", 63, ConnectPayload(7)), 0);
    auto d = AwaitPeer(h_, 0, 0, [](const wire::v1::Frame& f) {
      if (!f.has_network()) return false;
      auto m = TransportIn(f.network());
      return m && m->has_accept();
    });
    if (!d) return "no transport Accept from the node\n" + h_.NodeLog();
    return "";
  }

  NetworkFrame SetupOf(uint32_t depth) const {
    tv1::CircuitUpper upper;
    upper.set_connection(kHarnessConnection);
    upper.set_first_pair_id(1);
    return SetupFrame(key_, {"far", "peer", "iut"},
                      {{"L3", kLabel + 100, 0.85}, {"L", kLabel, 0.85}}, upper.SerializeAsString(),
                      depth);
  }

  // The setup as peer forwards it; the node's answer (Accept or Refuse).
  std::optional<NetworkFrame> Open(uint32_t depth) {
    const size_t mark = h_.peer_log(0).size();
    h_.SendNet(SetupOf(depth), 0);
    auto a = AwaitPeer(h_, 0, mark, [&](const wire::v1::Frame& f) {
      return IsNet(f, NetworkFrame::kAccept, key_) || IsNet(f, NetworkFrame::kRefuse, key_);
    });
    if (!a) return std::nullopt;
    return a->msg.network();
  }

  // Open + the intermediate's standing CREATE on L with window `depth`.
  std::string Up(uint32_t depth) {
    auto a = Open(depth);
    if (!a) return "no answer to the CircuitSetup\n" + h_.NodeLog();
    if (!a->has_accept()) return "the tail refused: " + a->DebugString();
    depth_ = a->accept().depth();
    h_.SendPeer(CircuitQueueAdd(1, "peer", "iut", kLabel, 0.85, h_.NowNs() + 2'000'000, depth_), 0);
    return "";
  }

  // Heralds `n` pairs in the node's next Generate on L; returns their slots.
  std::vector<uint32_t> Pairs(uint32_t n) {
    auto g = NextGenerateOn(h_, &cursor_, "L");
    if (!g) return {};
    const std::vector<uint32_t> slots = SlotsOf(g->msg);
    if (slots.size() < n) return {};
    auto heralds = h_.HeraldsFor(g->msg, n, seq_ + 1);
    seq_ += n;
    h_.SendHeralds(heralds);
    return {slots.begin(), slots.begin() + n};
  }

  Harness& h() { return h_; }
  const CircuitKey key_ = Key("far", 1);
  uint32_t depth_ = 0;

 private:
  Harness h_;
  size_t cursor_ = 0;
  uint64_t seq_ = 0;
};

#define QNET_START_END(x)                                            \
  do {                                                               \
    const std::string why = (x).Start();                             \
    ASSERT_EQ(why, "") << "log of the node:\n" << (x).h().NodeLog(); \
  } while (0)

#define QNET_UP_TAIL(t, depth)               \
  do {                                       \
    const std::string why = (t).Up(depth);   \
    ASSERT_EQ(why, "") << (t).h().NodeLog(); \
  } while (0)

// NET-C-15 "The tail MUST ask its upper layer (OnIncomingCircuit); OK: it
// installs the circuit, answers CircuitAccept [...]" (the transport accepts a
// circuit naming the connection it accepted from the head, TRN-P3);
// NET-C-11a "[...] the tail's grant is the circuit's depth, which
// CircuitAccept carries back": a tail that keeps one side with 4 memories
// grants 4 of the 6 asked. NET-C-20: the tail is the upstream end of no link,
// so it issues no CREATE.
TEST(NetEnd, NET_C_11a_TailGrantsTheDepthItHasSlotsFor) {
  Tail t(4);
  QNET_START_END(t);
  Harness& h = t.h();
  auto a = t.Open(6);
  ASSERT_TRUE(a) << "no answer to the CircuitSetup\n" << h.NodeLog();
  ASSERT_TRUE(a->has_accept()) << a->DebugString();
  EXPECT_EQ(a->accept().depth(), 4u) << "the largest depth not above 6 with 4 slots";
  Watch(h, Ms(300), 1);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(LinkFramesIn(h.peer_log(0), LinkFrame::kAddRequest).empty())
      << "the tail issued a CREATE";
  EXPECT_TRUE(LinkFramesIn(h.peer_log(0), LinkFrame::kAdd).empty());
}

// NET-C-30 "When the tail of a circuit of more than one link gets a link pair
// t, it MUST send Track{circuit, pair = t, tail_pair = t, bell = PHI_PLUS,
// oldest_herald_ns = none, fidelity_product = 1} upstream"; NET-C-37 "The tail
// MUST hold last-link pairs until Deliver or ReleasePair names them; on
// Deliver it hands the pair up with the Deliver's seq [...] and answers
// DeliverAck." Depth 2: one batch of two pairs, one Track each, in order;
// while both are held the link end asks for nothing more (LINK-46); a Deliver
// hands pair 1 up (its owner releases it, hold-s 0: Free) and the link
// generates again.
TEST(NetEnd, NET_C_30_TailTracksEveryPairAndHoldsItUntilDelivered) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  QNET_UP_TAIL(t, 2);
  ASSERT_EQ(t.depth_, 2u);
  const size_t mark = h.peer_log(0).size();
  const size_t phys = h.physics_log().size();
  const std::vector<uint32_t> slots = t.Pairs(2);
  ASSERT_EQ(slots.size(), 2u) << "no Generate of two pairs on L\n" << h.NodeLog();
  for (uint64_t j = 1; j <= 2; ++j) {
    SCOPED_TRACE("pair " + std::to_string(j));
    auto tr = AwaitPeer(h, 0, mark, [&](const wire::v1::Frame& f) {
      return IsNet(f, NetworkFrame::kTrack, t.key_) && f.network().track().pair().sequence() == j;
    });
    ASSERT_TRUE(tr) << "no Track\n" << h.NodeLog();
    const auto& track = tr->msg.network().track();
    EXPECT_EQ(Str(track.pair()), Str(Pair("peer", "iut", j)));
    EXPECT_EQ(Str(track.tail_pair()), Str(Pair("peer", "iut", j)));
    EXPECT_EQ(track.bell(), kPhiPlus);
    EXPECT_EQ(track.oldest_herald_ns(), 0u);
    EXPECT_EQ(track.fidelity_product(), 1.0);
    EXPECT_FALSE(track.discard());
  }
  Watch(h, Ms(300), 1);
  EXPECT_EQ(NetFramesIn(h.peer_log(0), NetworkFrame::kTrack).size(), 2u) << "one Track per pair";
  size_t cursor = phys;
  ASSERT_TRUE(NextGenerateOn(h, &cursor, "L"));
  EXPECT_FALSE(NextGenerateOn(h, &cursor, "L", Ms(0)))
      << "LINK-46: a Generate with the window full";
  EXPECT_TRUE(FreesIn(h.physics_log()).empty()) << "Free of an undelivered pair";
  const size_t before = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 1, Pair("peer", "iut", 1), h.NowNs()), 0));
  auto ack = AwaitPeer(h, 0, before, IsDeliverAnswer);
  ASSERT_TRUE(ack) << "no answer to Deliver seq 1";
  ASSERT_TRUE(ack->msg.network().has_deliver_ack()) << ack->msg.DebugString();
  EXPECT_EQ(ack->msg.network().deliver_ack().seq(), 1u);
  auto freed = AwaitPhysics(
      h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == slots[0]; });
  EXPECT_TRUE(freed) << "the delivered pair was not released by its owner (hold-s 0)";
  EXPECT_TRUE(NextGenerateOn(h, &cursor, "L")) << "no Generate after a slot of the window freed";
  QNET_STOP_AND_TRACE(h, trace);
  int tail_pairs = 0;
  for (const auto& r : trace) {
    if (!r.has_end_pair()) continue;
    ++tail_pairs;
    EXPECT_EQ(r.end_pair().role(), "tail");
    EXPECT_EQ(r.end_pair().seq(), 1u);
    EXPECT_EQ(Str(r.end_pair().link_pair()), Str(Pair("peer", "iut", 1)));
  }
  EXPECT_EQ(tail_pairs, 1) << "NET-C-52: one EndPairEvent per pair handed up\n" << Dump(trace);
}

// NET-C-37 (DeliverAck); NET-C-38 "A Deliver whose pair the tail does not
// hold MUST be answered with DeliverNack"; NET-C-38a (it waits for the pair's
// OK up to deliver_wait, 50 ms by default, and Delivers are handed up in seq
// order); NET-C-39 "A Deliver whose seq skips seqs MUST make the tail send
// DeliverNack ("Deliver lost") for each skipped seq and release the older held
// pairs"; NET-C-64 "A Deliver at the tail whose seq is not above the last
// one, or more than 4096 above it, MUST be dropped". Depth 3: pairs 1..3 held.
TEST(NetEnd, NET_C_37_TailAcksDeliveredPairsAndNacksOthers) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  QNET_UP_TAIL(t, 3);
  ASSERT_EQ(t.depth_, 3u);
  const std::vector<uint32_t> slots = t.Pairs(3);
  ASSERT_EQ(slots.size(), 3u) << h.NodeLog();
  Watch(h, Ms(200), 1);
  size_t mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 1, Pair("peer", "iut", 1), h.NowNs()), 0));
  auto ack = AwaitPeer(h, 0, mark, IsDeliverAnswer);
  ASSERT_TRUE(ack) << "no answer to Deliver seq 1";
  ASSERT_TRUE(ack->msg.network().has_deliver_ack()) << ack->msg.DebugString();
  EXPECT_TRUE(SameKey(ack->msg.network().deliver_ack().circuit(), t.key_));
  EXPECT_EQ(ack->msg.network().deliver_ack().seq(), 1u);
  // Seq 2 names a pair the tail never had; seq 5 (pair 3) skips 3 and 4.
  mark = h.peer_log(0).size();
  const uint64_t sent = h.NowNs();
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 2, Pair("peer", "iut", 99), h.NowNs()), 0));
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 5, Pair("peer", "iut", 3), h.NowNs()), 0));
  auto ack5 = AwaitPeer(h, 0, mark, [](const wire::v1::Frame& f) {
    return f.has_network() && f.network().has_deliver_ack() && f.network().deliver_ack().seq() == 5;
  });
  ASSERT_TRUE(ack5) << "no DeliverAck for seq 5";
  // Pair 2, older than pair 3, can no longer be delivered: released.
  auto freed2 = AwaitPhysics(
      h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == slots[1]; });
  EXPECT_TRUE(freed2) << "NET-C-39: the older held pair 2 was not released";
  // NET-C-64: seq 5 again, and a seq 4097 above it: dropped, unanswered.
  const size_t before_dup = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 5, Pair("peer", "iut", 3), h.NowNs()), 0));
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 5 + 4097, Pair("peer", "iut", 3), h.NowNs()), 0));
  Watch(h, Ms(300), 1);
  QNET_STOP_AND_TRACE(h, trace);
  std::map<uint64_t, uint64_t> nack_at;
  std::vector<uint64_t> acks;
  int answers_after_dup = 0;
  for (size_t i = mark; i < h.peer_log(0).size(); ++i) {
    const auto& f = h.peer_log(0)[i];
    if (!f.msg.has_network()) continue;
    if (f.msg.network().has_deliver_nack()) nack_at[f.msg.network().deliver_nack().seq()] = f.at_ns;
    if (f.msg.network().has_deliver_ack()) acks.push_back(f.msg.network().deliver_ack().seq());
    if (i >= before_dup && IsDeliverAnswer(f.msg)) ++answers_after_dup;
  }
  EXPECT_EQ(acks, std::vector<uint64_t>{5});
  ASSERT_EQ(nack_at.size(), 3u) << "Nacks for seq 2 (not held), 3 and 4 (skipped)";
  for (uint64_t s : {2, 3, 4}) EXPECT_TRUE(nack_at.count(s)) << "no DeliverNack for seq " << s;
  EXPECT_GE(nack_at[2], sent + 49'000'000) << "NET-C-38a: Nack before deliver_wait";
  EXPECT_EQ(answers_after_dup, 0) << "NET-C-64: a repeated or far-ahead Deliver was answered";
  EXPECT_GE(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 2u) << Dump(trace);
  std::vector<uint64_t> handed_up;
  for (const auto& r : trace)
    if (r.has_end_pair()) handed_up.push_back(r.end_pair().seq());
  EXPECT_EQ(handed_up, (std::vector<uint64_t>{1, 5})) << Dump(trace);
}

// NET-C-38b "A pair refused by NET-C-38 after its wait [...] MUST be freed at
// once if its OK comes later, so that it does not hold the side's window."
// Deliver seq 1 names pair 1 before it is heralded: Nack after the wait; the
// pair's herald then comes, and its slot is freed at once.
TEST(NetEnd, NET_C_38b_PairRefusedBeforeItsOkIsFreedOnArrival) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  QNET_UP_TAIL(t, 1);
  size_t cursor = 0;
  auto g = NextGenerateOn(h, &cursor, "L");
  ASSERT_TRUE(g) << h.NodeLog();
  const size_t mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 1, Pair("peer", "iut", 1), h.NowNs()), 0));
  auto nack = AwaitPeer(h, 0, mark, IsDeliverAnswer);
  ASSERT_TRUE(nack) << "no answer to a Deliver of a pair not heralded";
  ASSERT_TRUE(nack->msg.network().has_deliver_nack()) << nack->msg.DebugString();
  EXPECT_EQ(nack->msg.network().deliver_nack().seq(), 1u);
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  auto freed = AwaitPhysics(h, phys, [&](const NodeToWorld& n) {
    return n.has_free() && n.free().slot() == SlotsOf(g->msg)[0];
  });
  EXPECT_TRUE(freed) << "a pair refused before its OK was not freed when it came";
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& r : trace) EXPECT_FALSE(r.has_end_pair()) << "the refused pair was handed up";
}

// NET-C-36 "[...] send ReleasePair(tail pair) to the tail (which frees it)";
// NET-C-63 "A Deliver or ReleasePair without a tail pair MUST be dropped
// (MALFORMED_FRAME)". The held pair 1 is released instead of delivered.
TEST(NetEnd, NET_C_36_TailFreesAReleasedPair) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  QNET_UP_TAIL(t, 1);
  const std::vector<uint32_t> slots = t.Pairs(1);
  ASSERT_EQ(slots.size(), 1u) << h.NodeLog();
  Watch(h, Ms(100), 1);
  const size_t phys = h.physics_log().size();
  const size_t mark = h.peer_log(0).size();
  NetworkFrame no_pair = ReleaseFrame(t.key_, Pair("peer", "iut", 1));
  no_pair.mutable_release()->clear_tail_pair();
  ASSERT_TRUE(h.SendNet(no_pair, 0));
  NetworkFrame deliver_no_pair = DeliverFrame(t.key_, 1, Pair("peer", "iut", 1), h.NowNs());
  deliver_no_pair.mutable_deliver()->clear_tail_pair();
  ASSERT_TRUE(h.SendNet(deliver_no_pair, 0));
  ASSERT_TRUE(h.SendNet(ReleaseFrame(t.key_, Pair("peer", "iut", 1), "cutoff"), 0));
  auto freed = AwaitPhysics(
      h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == slots[0]; });
  EXPECT_TRUE(freed) << "released pair (slot " << slots[0] << ") not freed";
  Watch(h, Ms(200), 1);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).size(), 2u) << Dump(trace);
  for (size_t i = mark; i < h.peer_log(0).size(); ++i)
    EXPECT_FALSE(IsDeliverAnswer(h.peer_log(0)[i].msg)) << "a malformed Deliver was answered";
  for (const auto& r : trace) EXPECT_FALSE(r.has_end_pair()) << "a released pair was handed up";
}

// NET-C-61 "Circuit frames from a neighbour that is not the circuit's [...]
// downstream (Accept, Refuse, Track, DeliverAck, DeliverNack) neighbour MUST be
// dropped (UNEXPECTED_FRAME); a Track at the tail, which has no downstream
// neighbour, is such a frame"; NET-C-65 (counted, no state change: nothing
// sent, the held pair still delivered).
TEST(NetEnd, NET_C_61_TrackAtTheTailIsDropped) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  QNET_UP_TAIL(t, 1);
  ASSERT_EQ(t.Pairs(1).size(), 1u) << h.NodeLog();
  Watch(h, Ms(100), 1);
  const size_t mark = h.peer_log(0).size();
  const link::v1::PairId p = Pair("peer", "iut", 1);
  ASSERT_TRUE(h.SendNet(TrackFrame(t.key_, p, p), 0));
  Watch(h, Ms(300), 1);
  for (size_t i = mark; i < h.peer_log(0).size(); ++i) {
    const auto& f = h.peer_log(0)[i].msg;
    EXPECT_FALSE(f.has_network() && KeyOf(f.network()) != nullptr)
        << "answered a Track at the tail: " << f.DebugString();
  }
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 1, p, h.NowNs()), 0));
  auto ack = AwaitPeer(h, 0, mark, IsDeliverAnswer);
  ASSERT_TRUE(ack);
  EXPECT_TRUE(ack->msg.network().has_deliver_ack()) << "the Track changed the circuit";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
  EXPECT_TRUE(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).empty()) << Dump(trace);
}

// ------------------------------------------------------------------ head

// The node heads a circuit for its <connection> to `remote` (port 7): "far"
// over iut -L- peer -L3- far (the harness plays peer and, through it, far),
// or "peer" over iut -L- peer (the harness is the tail).
class Head {
 public:
  explicit Head(const std::string& connection_attributes = "", const std::string& remote = "far",
                bool iut_is_master = true)
      : remote_(remote), h_(Make(connection_attributes, remote, iut_is_master)) {}
  static HarnessOptions Make(const std::string& attrs, const std::string& remote,
                             bool iut_is_master) {
    HarnessOptions o;  // L: a="iut" b="peer": the node is L's master and upstream end
    o.iut_is_master = iut_is_master;  // false: L a="peer", the node is L's upstream end only
    o.link_attributes = kCircuitLink;
    o.extra_topology = std::string(kFarLink) + R"(  <connection from="iut" to=")" + remote +
                       R"(" port="7" start-s="0.3" )" + attrs + "/>\n";
    return o;
  }

  // Started, the transport handshake answered, the setup read (and, unless
  // accept_depth is 0, accepted with that depth).
  std::string Start(uint32_t accept_depth = 1) {
    if (std::string why = h_.Start(); !why.empty()) return why;
    h_.StartHellos(0);
    h_.SendNet(Advert("peer", 1, {{"L", "iut"}, {"L3", "far"}}), 0);
    h_.SendNet(Advert("far", 1, {{"L3", "peer"}}), 0);
    auto c = AwaitPeer(
        h_, 0, 0,
        [](const wire::v1::Frame& f) {
          if (!f.has_network()) return false;
          auto m = TransportIn(f.network());
          return m && m->has_connect();
        },
        Ms(5000));
    if (!c) return "the node sent no transport Connect for its <connection>\n" + h_.NodeLog();
    const auto& dg = c->msg.network().datagram();
    if (dg.destination() != remote_ || dg.source() != "iut")
      return "Connect datagram " + dg.source() + " -> " + dg.destination();
    tv1::TransportMessage accept;
    accept.set_src_connection(kHarnessConnection);
    accept.set_dst_connection(TransportIn(c->msg.network())->src_connection());
    accept.mutable_accept();
    h_.SendNet(Datagram(remote_, "iut", 63, accept.SerializeAsString()), 0);
    auto s = AwaitNet(h_, 0, 0, NetworkFrame::kSetup);
    if (!s) return "no CircuitSetup after the transport Accept\n" + h_.NodeLog();
    setup_ = s->msg.setup();
    if (accept_depth != 0) h_.SendNet(AcceptFrame(setup_.circuit(), accept_depth), 0);
    return "";
  }

  // The head's standing CREATE on L (its QueueAdd to peer).
  std::optional<link::v1::QueueAdd> Create() {
    auto f = AwaitLink(h_, 0, 0, LinkFrame::kAdd);
    if (!f) return std::nullopt;
    return f->msg.add();
  }

  // The tail pair of the head's link pair j in the Tracks the harness sends.
  static link::v1::PairId TailPair(uint64_t j) { return Pair("peer", "far", 100 + j); }

  Harness& h() { return h_; }
  const network::v1::CircuitSetup& setup() const { return setup_; }
  CircuitKey key() const { return setup_.circuit(); }

 private:
  std::string remote_;
  Harness h_;
  network::v1::CircuitSetup setup_;
};

#define QNET_START_HEAD(x, depth)                                    \
  do {                                                               \
    const std::string why = (x).Start(depth);                        \
    ASSERT_EQ(why, "") << "log of the node:\n" << (x).h().NodeLog(); \
  } while (0)

// NET-C-1 "OpenCircuit MUST compute the path with the router's current
// shortest route [...]"; NET-C-9 (circuit numbers 1, 2, 3 per head); NET-C-10
// (the head labels link 1 from kFirstNetworkLabel); NET-C-5 "Each link MUST get
// the minimum fidelity w_i_min = w_i * s^(1/n) [...]" with NET-C-6's s =
// w_t / prod w (infinite memories, no cutoff); NET-C-2a / NET-C-11a (the
// setup asks for the depth the head grants: the connection's window 3, 3 of 4
// memories for its one kept side). The connection asks for 0.7 end to end
// over two links of 0.9; the transport's CircuitUpper names the connection
// and pair id 1 (specs/transport.md).
TEST(NetEnd, NET_C_1_HeadSignalsTheRoutedPath) {
  Head x(R"(min-fidelity="0.7" window="3")");
  QNET_START_HEAD(x, 0);
  const auto& s = x.setup();
  EXPECT_EQ(s.circuit().head(), "iut");
  EXPECT_EQ(s.circuit().number(), 1u);
  ASSERT_EQ(std::vector<std::string>(s.path().begin(), s.path().end()),
            (std::vector<std::string>{"iut", "peer", "far"}));
  ASSERT_EQ(s.links_size(), 2);
  EXPECT_EQ(s.links(0).link(), "L");
  EXPECT_EQ(s.links(1).link(), "L3");
  EXPECT_GE(s.links(0).label(), kFirstLabel);
  EXPECT_EQ(s.depth(), 3u);
  EXPECT_FALSE(s.has_measure());
  tv1::CircuitUpper upper;
  ASSERT_TRUE(upper.ParseFromString(s.upper()));
  EXPECT_EQ(upper.first_pair_id(), 1u);
  EXPECT_NE(upper.connection(), 0u);
  // NET-C-5/NET-C-6: w = 0.8667 per link, w_t = 0.6, s = w_t / w^2, each link w * sqrt(s).
  const double w = (4 * 0.9 - 1) / 3, wt = (4 * 0.7 - 1) / 3;
  const double w_min = w * std::sqrt(wt / (w * w));
  for (int i = 0; i < 2; ++i)
    EXPECT_NEAR(s.links(i).min_fidelity(), (1 + 3 * w_min) / 4, 1e-6) << "link " << i;
  EXPECT_EQ(s.cutoff_ns(), 0u) << "infinite memories, no explicit cutoff: no cutoff";
  EXPECT_NEAR(s.min_fidelity(), 0.7, 1e-12);
  EXPECT_NEAR(s.expected_fidelity(), (1 + 3 * w * w) / 4, 1e-9) << "NET-R-29";
  // NET-C-20: no CREATE before the Accept.
  Watch(x.h(), Ms(300), 1);
  EXPECT_TRUE(LinkFramesIn(x.h().peer_log(0), LinkFrame::kAdd).empty())
      << "a CREATE before the circuit was accepted";
  QNET_STOP_AND_TRACE(x.h(), trace);
}

// NET-C-20 (the head's standing CREATE on link 1, window = the circuit's
// depth from the Accept, 2 of the 3 asked); NET-C-31 "The head MUST complete
// an end-to-end pair when a Track names its downstream pair h [...]: its Bell
// state is B = bell(h) xor the Track's bell, [...] its estimated fidelity
// (1 + 3 w(h) x product)/4, and its tail pair the Track's tail_pair";
// NET-C-32 (seq 1, 2, 3, ... in completion order); NET-C-33 "Before handing a
// kept pair up, the head MUST send Probe{slot, B, "<head>/<number>/<seq>"}";
// NET-C-35 "Before handing it up the head MUST correct it: a kept qubit with
// the Pauli gate PSI_PLUS -> X, PHI_MINUS -> Z, PSI_MINUS -> Y, PHI_PLUS ->
// none" (after the Probe, which reports B); NET-C-34 "[...] send Deliver(seq,
// tail pair, estimated fidelity, completion time) towards the tail".
// Four pairs, the first batch of two (LINK-49), Tracks in reverse order within
// each batch, covering all four corrections; NET-C-52: an EndPairEvent per
// pair with B.
TEST(NetEnd, NET_C_31_HeadCompletesOnTheTrackAndCorrects) {
  Head x(R"(window="3")");
  QNET_START_HEAD(x, 2);
  Harness& h = x.h();
  const CircuitKey key = x.key();
  ASSERT_EQ(x.setup().depth(), 3u);
  auto add = x.Create();
  ASSERT_TRUE(add) << "no standing CREATE on L after the Accept\n" << h.NodeLog();
  const auto& c = add->create();
  EXPECT_EQ(c.remote_node(), "peer");
  EXPECT_EQ(c.pairs(), 0u);
  EXPECT_EQ(c.window(), 2u) << "window = the depth of the Accept";
  EXPECT_EQ(c.purpose_id(), x.setup().links(0).label());
  EXPECT_NEAR(c.min_fidelity(), x.setup().links(0).min_fidelity(), 1e-12);
  EXPECT_EQ(c.priority(), 0u);
  EXPECT_EQ(c.type(), link::v1::REQUEST_TYPE_KEEP);
  EXPECT_EQ(c.partner_type(), link::v1::REQUEST_TYPE_KEEP);
  const double w_h = WernerOf(add->estimated_fidelity());
  struct Case {
    BellState head, track;
    double product;
  };
  const Case cases[] = {
      {kPsiPlus, kPhiPlus, 1.0},     // B = PSI_PLUS: X
      {kPsiPlus, kPsiMinus, 0.8},    // 1 ^ 3 = 2: PHI_MINUS, Z
      {kPhiMinus, kPsiPlus, 0.5},    // 2 ^ 1 = 3: PSI_MINUS, Y
      {kPsiMinus, kPsiMinus, 0.25},  // 0: PHI_PLUS, none
  };
  size_t cursor = 0;
  uint64_t seq = 0;
  std::map<uint64_t, BellState> bell_of_seq;
  int batches = 0;
  for (uint64_t first = 1; first <= 4;) {
    auto g = NextGenerateOn(h, &cursor, "L");
    ASSERT_TRUE(g) << "no Generate on L\n" << h.NodeLog();
    if (++batches == 1) {
      ASSERT_EQ(SlotsOf(g->msg).size(), 2u) << "LINK-49: the window of 2\n" << g->msg.DebugString();
    }
    const uint32_t k = std::min<uint32_t>(PairsOf(g->msg), static_cast<uint32_t>(5 - first));
    ASSERT_GE(k, 1u) << g->msg.DebugString();
    auto heralds = h.HeraldsFor(g->msg, k, first);
    for (uint32_t j = 0; j < k; ++j) heralds[j].set_bell_state(cases[first + j - 1].head);
    ASSERT_TRUE(h.SendHeralds(heralds));
    for (int j = static_cast<int>(k) - 1; j >= 0; --j) {  // the later pair's Track first
      const uint64_t p = first + j;
      SCOPED_TRACE("pair " + std::to_string(p));
      const Case& cs = cases[p - 1];
      const size_t mark = h.peer_log(0).size();
      const size_t phys = h.physics_log().size();
      const uint64_t oldest = h.NowNs() - 1'000'000;
      const uint64_t sent = h.NowNs();
      ASSERT_TRUE(h.SendNet(
          TrackFrame(key, Pair("iut", "peer", p), Head::TailPair(p), cs.track, oldest, cs.product),
          0));
      const BellState b = BellXor(cs.head, cs.track);
      auto d = AwaitNet(h, 0, mark, NetworkFrame::kDeliver);
      ASSERT_TRUE(d) << "no Deliver\n" << h.NodeLog();
      ++seq;
      bell_of_seq[seq] = b;
      EXPECT_TRUE(SameKey(d->msg.deliver().circuit(), key));
      EXPECT_EQ(d->msg.deliver().seq(), seq);
      EXPECT_EQ(Str(d->msg.deliver().tail_pair()), Str(Head::TailPair(p)));
      EXPECT_NEAR(d->msg.deliver().estimated_fidelity(), (1 + 3 * w_h * cs.product) / 4, 1e-9);
      EXPECT_GE(d->msg.deliver().completed_ns(), sent);
      EXPECT_LE(d->msg.deliver().completed_ns(), d->at_ns);
      const uint32_t slot = heralds[j].slot();
      std::optional<size_t> probe_at, gate_at;
      Watch(h, Ms(50), 1);
      for (size_t i = phys; i < h.physics_log().size(); ++i) {
        const auto& msg = h.physics_log()[i].msg;
        if (msg.has_probe()) {
          EXPECT_FALSE(probe_at) << "two Probes for one pair";
          probe_at = i;
          EXPECT_EQ(msg.probe().slot(), slot);
          EXPECT_EQ(msg.probe().bell_state(), b);
          EXPECT_EQ(msg.probe().label(), "iut/1/" + std::to_string(seq));
        }
        if (msg.has_gate()) {
          EXPECT_FALSE(gate_at) << "two gates for one pair";
          gate_at = i;
          EXPECT_EQ(msg.gate().kind(), Correction(b));
          EXPECT_EQ(msg.gate().slot(), slot);
        }
      }
      ASSERT_TRUE(probe_at) << "no Probe";
      if (Correction(b) == physical::v1::GATE_KIND_UNSPECIFIED) {
        EXPECT_FALSE(gate_at) << "a gate for a PHI_PLUS pair";
      } else {
        ASSERT_TRUE(gate_at) << "no correction gate";
        EXPECT_LT(*probe_at, *gate_at) << "the Probe must report B, before the correction";
      }
      ASSERT_TRUE(h.SendNet(DeliverAckFrame(key, seq), 0));
    }
    first += k;
  }
  Watch(h, Ms(100), 1);
  QNET_STOP_AND_TRACE(h, trace);
  std::map<uint64_t, BellState> traced;
  for (const auto& r : trace) {
    if (!r.has_end_pair()) continue;
    EXPECT_EQ(r.end_pair().role(), "head");
    EXPECT_EQ(r.end_pair().label(), "iut/1/" + std::to_string(r.end_pair().seq()));
    traced[r.end_pair().seq()] = r.end_pair().tracked_bell();
  }
  EXPECT_EQ(traced, bell_of_seq) << Dump(trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 0u) << Dump(trace);
}

// NET-C-31 "[...] (for a circuit of one link: when h arrives) [...] its tail
// pair [...] h itself for one link"; NET-C-33..35. The node heads iut -> peer:
// each pair completes on its OK: Probe with the heralded Bell state, the
// correction, Deliver naming h.
TEST(NetEnd, NET_C_31_OneLinkCircuitCompletesOnTheOk) {
  Head x("", "peer");
  QNET_START_HEAD(x, 1);
  Harness& h = x.h();
  const CircuitKey key = x.key();
  ASSERT_EQ(x.setup().path_size(), 2);
  size_t cursor = 0;
  const BellState bells[] = {kPsiMinus, kPhiPlus};
  for (uint64_t p = 1; p <= 2; ++p) {
    SCOPED_TRACE("pair " + std::to_string(p));
    auto g = NextGenerateOn(h, &cursor, "L");
    ASSERT_TRUE(g) << "no Generate on L\n" << h.NodeLog();
    const size_t mark = h.peer_log(0).size();
    const size_t phys = h.physics_log().size();
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, p);
    herald.set_bell_state(bells[p - 1]);
    ASSERT_TRUE(h.SendHerald(herald));
    auto d = AwaitNet(h, 0, mark, NetworkFrame::kDeliver);
    ASSERT_TRUE(d) << "no Deliver on the OK of a one-link circuit\n" << h.NodeLog();
    EXPECT_EQ(d->msg.deliver().seq(), p);
    EXPECT_EQ(Str(d->msg.deliver().tail_pair()), Str(Pair("iut", "peer", p)));
    EXPECT_NEAR(d->msg.deliver().estimated_fidelity(), 0.9, 1e-9) << "(1 + 3 w(h)) / 4 = F(h)";
    auto probe = AwaitPhysics(h, phys, [](const NodeToWorld& n) { return n.has_probe(); });
    ASSERT_TRUE(probe) << "no Probe";
    EXPECT_EQ(probe->msg.probe().bell_state(), bells[p - 1]);
    EXPECT_EQ(probe->msg.probe().slot(), herald.slot());
    EXPECT_EQ(probe->msg.probe().label(), "iut/1/" + std::to_string(p));
    Watch(h, Ms(50), 1);
    int gates = 0;
    for (size_t i = phys; i < h.physics_log().size(); ++i) {
      if (!h.physics_log()[i].msg.has_gate()) continue;
      ++gates;
      EXPECT_EQ(h.physics_log()[i].msg.gate().kind(), Correction(bells[p - 1]));
    }
    EXPECT_EQ(gates, Correction(bells[p - 1]) == physical::v1::GATE_KIND_UNSPECIFIED ? 0 : 1);
    ASSERT_TRUE(h.SendNet(DeliverAckFrame(key, p), 0));
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn(h.peer_log(0), NetworkFrame::kTrack).empty());
}

// NET-C-36 "If the completion time minus the oldest herald exceeds the
// cutoff, the head MUST instead free h, send ReleasePair(tail pair) to the
// tail (which frees it) and record PairDiscarded(reason "cutoff")"; NET-C-26
// "[...] (every hop forwards a discarding Track [...], and the head frees h
// and records PairDiscarded(reason "expired"))"; NET-C-32 "[...] discarded
// pairs take no seq". Cutoff 0.2 s (carried in the setup, NET-C-11): pair 1's
// Track reports a herald at time 0 (the pairs come after the connection
// starts, 0.3 s); pair 2's Track discards; pair 3's Track, sent with its
// herald, is delivered as seq 1 with label iut/1/1.
TEST(NetEnd, NET_C_36_HeadDiscardsOldAndLostPairs) {
  Head x(R"(cutoff-s="0.2")");
  QNET_START_HEAD(x, 1);
  Harness& h = x.h();
  const CircuitKey key = x.key();
  EXPECT_EQ(x.setup().cutoff_ns(), 200'000'000u) << "cutoff not carried in the setup";
  size_t cursor = 0;
  std::vector<uint32_t> slots;
  for (uint64_t p = 1; p <= 3; ++p) {
    SCOPED_TRACE("pair " + std::to_string(p));
    auto g = NextGenerateOn(h, &cursor, "L");
    ASSERT_TRUE(g) << "no Generate on L (the window was not freed?)\n" << h.NodeLog();
    const Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, p);
    slots.push_back(herald.slot());
    const size_t mark = h.peer_log(0).size();
    const size_t phys = h.physics_log().size();
    ASSERT_TRUE(h.SendHerald(herald));
    // The head acts on the herald at once (time_ns = now); the discarding
    // Track must find h there, the others would wait for it (NET-C-30b).
    if (p < 3) Watch(h, Ms(100), 1);
    const link::v1::PairId hp = Pair("iut", "peer", p);
    if (p == 1) {
      ASSERT_GT(herald.time_ns(), 250'000'000u);
      ASSERT_TRUE(h.SendNet(TrackFrame(key, hp, Head::TailPair(p), kPhiPlus, 1), 0));
      auto rel = AwaitNet(h, 0, mark, NetworkFrame::kRelease);
      ASSERT_TRUE(rel) << "no ReleasePair for a pair older than the cutoff\n" << h.NodeLog();
      EXPECT_TRUE(SameKey(rel->msg.release().circuit(), key));
      EXPECT_EQ(Str(rel->msg.release().tail_pair()), Str(Head::TailPair(p)));
    } else if (p == 2) {
      ASSERT_TRUE(h.SendNet(TrackFrame(key, hp, Head::TailPair(p), kPhiPlus, 0, 1.0, true), 0));
    } else {
      ASSERT_TRUE(h.SendNet(TrackFrame(key, hp, Head::TailPair(p), kPhiPlus, h.NowNs()), 0));
      auto d = AwaitNet(h, 0, mark, NetworkFrame::kDeliver);
      ASSERT_TRUE(d) << "no Deliver for a fresh pair";
      EXPECT_EQ(d->msg.deliver().seq(), 1u) << "discarded pairs take no seq";
      continue;
    }
    auto freed = AwaitPhysics(h, phys, [&](const NodeToWorld& n) {
      return n.has_free() && n.free().slot() == slots.back();
    });
    EXPECT_TRUE(freed) << "the head's pair was not freed";
  }
  Watch(h, Ms(100), 1);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(NetFramesIn(h.peer_log(0), NetworkFrame::kDeliver).size(), 1u)
      << "a discarded pair was delivered";
  std::vector<std::string> probes;
  for (const auto& m : h.physics_log())
    if (m.msg.has_probe()) probes.push_back(m.msg.probe().label());
  EXPECT_EQ(probes, std::vector<std::string>{"iut/1/1"}) << "a discarded pair was probed";
  std::vector<std::string> reasons;
  for (const auto& r : trace)
    if (r.has_pair_discarded()) reasons.push_back(r.pair_discarded().reason());
  EXPECT_EQ(reasons, (std::vector<std::string>{"cutoff", "expired"})) << Dump(trace);
}

// NET-C-38 "A Deliver whose pair the tail does not hold MUST be answered with
// DeliverNack; the head reports that seq with OnPairExpired" -- observed
// through the transport above, which tells the other end which pair ids
// expired (specs/transport.md TRN-E1: Expired over the connection's reliable
// stream). NET-C-64 "[...] a DeliverAck/Nack for a seq not awaited MUST be
// dropped": the same Nack again, and an Ack of a seq never delivered.
TEST(NetEnd, NET_C_38_HeadReportsANackedSeqExpired) {
  Head x;
  QNET_START_HEAD(x, 1);
  Harness& h = x.h();
  const CircuitKey key = x.key();
  size_t cursor = 0;
  auto g = NextGenerateOn(h, &cursor, "L");
  ASSERT_TRUE(g) << h.NodeLog();
  const size_t mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  ASSERT_TRUE(h.SendNet(TrackFrame(key, Pair("iut", "peer", 1), Head::TailPair(1)), 0));
  ASSERT_TRUE(AwaitNet(h, 0, mark, NetworkFrame::kDeliver)) << h.NodeLog();
  ASSERT_TRUE(h.SendNet(DeliverNackFrame(key, 1, "tail lost it"), 0));
  auto expired = AwaitPeer(h, 0, mark, [](const wire::v1::Frame& f) {
    if (!f.has_network()) return false;
    auto m = TransportIn(f.network());
    return m && m->has_segment() && m->segment().has_expired();
  });
  ASSERT_TRUE(expired) << "no Expired message to the other end after a DeliverNack";
  auto m = TransportIn(expired->msg.network());
  EXPECT_EQ(std::vector<uint64_t>(m->segment().expired().pair_ids().begin(),
                                  m->segment().expired().pair_ids().end()),
            std::vector<uint64_t>{1});
  ASSERT_TRUE(h.SendNet(DeliverNackFrame(key, 1, "again"), 0));
  ASSERT_TRUE(h.SendNet(DeliverAckFrame(key, 7), 0));
  Watch(h, Ms(300), 1);
  QNET_STOP_AND_TRACE(h, trace);
  int expired_records = 0;
  for (const auto& r : trace) expired_records += r.has_pair_expired();
  EXPECT_EQ(expired_records, 1) << "NET-C-52: one PairExpired per expired seq\n" << Dump(trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 2u) << Dump(trace);
}

// NET-C-20 with the node's end of link 1 not the master (L: a="peer"): its
// standing CREATE goes out as a QueueAddRequest (LINK-19) with the same
// fields (pairs 0, window = the circuit's depth, KEEP / KEEP, label, link
// minimum, priority 0); once the harness queues it the node serves it; NET-C-21
// with LINK-48: when the circuit goes down (the next hop tears it down) the
// node cancels its request with QueueCancel{origin_create_id}.
TEST(NetEnd, NET_C_21_HeadAsLinkPeerRequestsAndCancelsItsCreate) {
  Head x(R"(window="2")", "far", /*iut_is_master=*/false);
  QNET_START_HEAD(x, 2);
  Harness& h = x.h();
  auto req = AwaitLink(h, 0, 0, LinkFrame::kAddRequest);
  ASSERT_TRUE(req) << "no QueueAddRequest on L after the Accept\n" << h.NodeLog();
  const auto& r = req->msg.add_request();
  const auto& c = r.create();
  EXPECT_EQ(c.remote_node(), "peer");
  EXPECT_EQ(c.pairs(), 0u);
  EXPECT_EQ(c.window(), 2u);
  EXPECT_EQ(c.purpose_id(), x.setup().links(0).label());
  EXPECT_NEAR(c.min_fidelity(), x.setup().links(0).min_fidelity(), 1e-12);
  EXPECT_EQ(c.priority(), 0u);
  EXPECT_EQ(c.type(), link::v1::REQUEST_TYPE_KEEP);
  EXPECT_EQ(c.partner_type(), link::v1::REQUEST_TYPE_KEEP);
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .origin = "iut",
                                   .origin_create_id = r.origin_create_id(),
                                   .create = c,
                                   .eligible_ns = h.NowNs() + 2'000'000})));
  size_t cursor = 0;
  auto g = NextGenerateOn(h, &cursor, "L");
  ASSERT_TRUE(g) << "the queued request was not served\n" << h.NodeLog();
  EXPECT_EQ(g->msg.queue_id(), 1u);
  EXPECT_EQ(SlotsOf(g->msg).size(), 2u) << "LINK-49: the window of 2";
  const size_t mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(TeardownFrame(x.key(), network::v1::CIRCUIT_ERROR_CLOSED), 0));
  auto cancel = AwaitLink(h, 0, mark, LinkFrame::kCancel);
  ASSERT_TRUE(cancel) << "the request was not cancelled when the circuit went down";
  EXPECT_EQ(cancel->msg.cancel().origin_create_id(), r.origin_create_id());
  QNET_STOP_AND_TRACE(h, trace);
}

// NET-C-30b at the head: "A Track whose pair this node does not have (it
// expired or was never heard of in time) MUST be answered with
// ReleasePair{tail_pair} downstream and dropped." The head never had link
// pair iut>peer#50.
TEST(NetEnd, NET_C_30b_HeadReleasesTheTailPairOfAnUnknownPair) {
  Head x;
  QNET_START_HEAD(x, 1);
  Harness& h = x.h();
  const CircuitKey key = x.key();
  ASSERT_TRUE(x.Create()) << h.NodeLog();
  const size_t mark = h.peer_log(0).size();
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(TrackFrame(key, Pair("iut", "peer", 50), Head::TailPair(50)), 0));
  auto rel = AwaitNet(h, 0, mark, NetworkFrame::kRelease);
  ASSERT_TRUE(rel) << "no ReleasePair for a Track of a pair the head never had";
  EXPECT_EQ(Str(rel->msg.release().tail_pair()), Str(Head::TailPair(50)));
  Watch(h, Ms(100), 1);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn(h.peer_log(0), NetworkFrame::kDeliver).empty());
  for (size_t i = phys; i < h.physics_log().size(); ++i)
    EXPECT_FALSE(h.physics_log()[i].msg.has_probe());
}

// NET-C-2a, NET-C-11, NET-C-20 and NET-C-35 on a measure circuit: the head of
// a measure connection (basis X) sets measure{X} in the setup; its CREATE is
// type MEASURE, partner_type KEEP (peer keeps), basis X; its link end measures
// directly (no slot, LINK-47); on each Track it corrects the measured result
// "by flipping it when that gate anticommutes with the basis (X basis: Z or
// Y)", sends no Probe and no gate, and delivers; the EndPairEvent carries the
// corrected result (NET-C-52).
TEST(NetEnd, NET_C_35_MeasuringHeadFlipsTheResult) {
  Head x(R"(type="measure" basis="x")");
  QNET_START_HEAD(x, 1);
  Harness& h = x.h();
  const CircuitKey key = x.key();
  ASSERT_TRUE(x.setup().has_measure()) << x.setup().DebugString();
  EXPECT_EQ(x.setup().measure().basis(), link::v1::BASIS_CHOICE_X);
  auto add = x.Create();
  ASSERT_TRUE(add) << h.NodeLog();
  EXPECT_EQ(add->create().type(), link::v1::REQUEST_TYPE_MEASURE);
  EXPECT_EQ(add->create().partner_type(), link::v1::REQUEST_TYPE_KEEP);
  EXPECT_EQ(add->create().basis(), link::v1::BASIS_CHOICE_X);
  struct Case {
    BellState head, track;
    uint32_t raw;
  };
  const Case cases[] = {
      {kPhiPlus, kPhiPlus, 1},   // B = I: kept
      {kPsiPlus, kPhiPlus, 0},   // B = X: commutes with X, kept
      {kPsiPlus, kPsiPlus, 1},   // B = I
      {kPhiMinus, kPhiPlus, 0},  // B = Z: flipped
      {kPsiPlus, kPhiMinus, 1},  // B = Y: flipped
  };
  size_t cursor = 0;
  std::map<uint64_t, uint32_t> want;
  uint64_t seq = 0;
  for (uint64_t p = 1; p <= 5; ++p) {
    SCOPED_TRACE("pair " + std::to_string(p));
    const Case& cs = cases[p - 1];
    auto g = NextGenerateOn(h, &cursor, "L");
    ASSERT_TRUE(g) << "no Generate on L\n" << h.NodeLog();
    EXPECT_TRUE(SlotsOf(g->msg).empty()) << "a measuring end asked for memory";
    EXPECT_EQ(g->msg.measure_basis(), physical::v1::BASIS_X);
    // One success per batch (the keeping end, peer, took one).
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, p);
    herald.set_bell_state(cs.head);
    herald.set_result(cs.raw);
    ASSERT_TRUE(h.SendHerald(herald));
    Watch(h, Ms(30), 1);
    const size_t mark = h.peer_log(0).size();
    ASSERT_TRUE(h.SendNet(TrackFrame(key, Pair("iut", "peer", p), Head::TailPair(p), cs.track), 0));
    auto d = AwaitNet(h, 0, mark, NetworkFrame::kDeliver);
    ASSERT_TRUE(d) << "no Deliver\n" << h.NodeLog();
    EXPECT_EQ(d->msg.deliver().seq(), ++seq);
    const int b = BellIndexOf(BellXor(cs.head, cs.track));
    const bool flips = (b & 2) != 0;  // Z or Y anticommute with X
    want[seq] = cs.raw ^ (flips ? 1u : 0u);
    ASSERT_TRUE(h.SendNet(DeliverAckFrame(key, seq), 0));
  }
  Watch(h, Ms(100), 1);
  QNET_STOP_AND_TRACE(h, trace);
  std::map<uint64_t, uint32_t> got;
  for (const auto& r : trace) {
    if (!r.has_end_pair()) continue;
    EXPECT_TRUE(r.end_pair().measured());
    EXPECT_EQ(r.end_pair().basis(), physical::v1::BASIS_X);
    got[r.end_pair().seq()] = r.end_pair().result();
  }
  EXPECT_EQ(got, want) << Dump(trace);
  for (const auto& m : h.physics_log()) {
    EXPECT_FALSE(m.msg.has_probe()) << "a Probe for a measured pair";
    EXPECT_FALSE(m.msg.has_gate()) << "a gate for a measured pair";
  }
}

}  // namespace
}  // namespace qnet::interop
