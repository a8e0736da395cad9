// specs/network.md section 2 (NET-C-*), checked on the wire with the node
// under test at an END of a circuit: as the tail (the harness is the head
// "peer", opening the circuit for a transport connection to a port the node
// listens on, as the topology's <connection> says) and as the head (the node
// opens the circuit for its <connection>; the harness plays the next hop and,
// for a two-link path, the intermediate "peer" and the tail "far" behind it).
// The transport handshake the circuit hangs on is played with
// qnet.transport.v1 messages in NetDatagrams (specs/transport.md).
#include <cmath>
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

constexpr uint32_t kLabel = kFirstLabel + 3;
constexpr uint64_t kHarnessConnection = 5;

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

// The Pauli index of REFERENCE.md (PHI_PLUS 0, PSI_PLUS 1 = X, PHI_MINUS 2 = Z,
// PSI_MINUS 3 = Y) and back.
int Index(BellState b) { return static_cast<int>(b) - 1; }
BellState FromIndex(int i) { return static_cast<BellState>(i + 1); }
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

// ------------------------------------------------------------------ tail

// The node is the tail of peer -> iut (L: a="peer", the harness is the link
// master and issues L's CREATEs); it listens on port 7.
class Tail {
 public:
  Tail() : h_(Make()) {}
  static HarnessOptions Make() {
    HarnessOptions o;
    o.iut_is_master = false;
    o.extra_topology = R"(  <connection from="peer" to="iut" port="7" type="keep" start-s="0"/>)"
                       "\n";
    return o;
  }

  // Started, routes known, the transport connection accepted, the circuit up.
  std::string Start() {
    if (std::string why = h_.Start(); !why.empty()) return why;
    h_.StartHellos(0);
    h_.SendNet(Advert("peer", 1, {{"L", "iut"}}), 0);
    Watch(h_, Ms(200), 1);
    h_.SendNet(Datagram("peer", "iut", 64, ConnectPayload(7)), 0);
    auto d = AwaitPeer(h_, 0, 0, [](const wire::v1::Frame& f) {
      if (!f.has_network()) return false;
      auto m = TransportIn(f.network());
      return m && m->has_accept();
    });
    if (!d) return "no transport Accept from the node\n" + h_.NodeLog();
    tv1::CircuitUpper upper;
    upper.set_connection(kHarnessConnection);
    upper.set_first_pair_id(1);
    const size_t mark = h_.peer_log(0).size();
    h_.SendNet(SetupFrame(key_, {"peer", "iut"}, {{"L", kLabel, 0.85}}, upper.SerializeAsString()),
               0);
    auto a = AwaitPeer(h_, 0, mark, [](const wire::v1::Frame& f) {
      return f.has_network() && (f.network().has_accept() || f.network().has_refuse());
    });
    if (!a) return "no answer to the CircuitSetup";
    if (!a->msg.network().has_accept())
      return "the tail refused: " + a->msg.network().refuse().DebugString();
    return "";
  }

  // Round r: the harness's CREATE on L, the node's Generate, a herald. Returns
  // the slot of the node's half.
  std::optional<uint32_t> Pair(uint64_t round) {
    const size_t phys = h_.physics_log().size();
    h_.SendNet(RoundFrame(key_, round), 0);
    h_.SendPeer(CircuitQueueAdd(round, "peer", "iut", kLabel, 0.85, h_.NowNs() + 3'000'000), 0);
    auto g = AwaitGenerate(h_, phys, "L");
    if (!g || !g->msg.has_slot()) return std::nullopt;
    h_.SendHerald(h_.HeraldFor(g->msg, OUTCOME_SUCCESS, round));
    Watch(h_, Ms(100), 1);
    return g->msg.slot();
  }

  Harness& h() { return h_; }
  const CircuitKey key_ = Key("peer", 1);

 private:
  Harness h_;
};

#define QNET_START_END(x)                                            \
  do {                                                               \
    const std::string why = (x).Start();                             \
    ASSERT_EQ(why, "") << "log of the node:\n" << (x).h().NodeLog(); \
  } while (0)

// NET-C-15 "The tail MUST ask its upper layer (`OnIncomingCircuit`); OK: it
// installs the circuit, answers CircuitAccept [...]" (the transport accepts a
// circuit naming its accepted connection). NET-C-37 "[...] on Deliver it hands
// the pair up with the Deliver's seq and answers DeliverAck." NET-C-38 "A
// Deliver whose pair the tail does not hold MUST be answered with
// DeliverNack". NET-C-39 "A Deliver whose seq skips seqs MUST make the tail
// send DeliverNack ("Deliver lost") for each skipped seq [...]". NET-C-64 "A
// Deliver at the tail whose seq is not above the last one [...] MUST be
// dropped".
TEST(NetEnd, NET_C_37_TailAcksDeliveredPairsAndNacksUnknownOnes) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  ASSERT_TRUE(t.Pair(1)) << "no Generate on L for round 1\n" << h.NodeLog();
  size_t mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 1, 1, Pair("peer", "iut", 1), h.NowNs()), 0));
  auto ack = AwaitPeer(h, 0, mark, [](const wire::v1::Frame& f) {
    return f.has_network() && (f.network().has_deliver_ack() || f.network().has_deliver_nack());
  });
  ASSERT_TRUE(ack) << "no answer to Deliver seq 1";
  ASSERT_TRUE(ack->msg.network().has_deliver_ack()) << ack->msg.DebugString();
  EXPECT_TRUE(SameKey(ack->msg.network().deliver_ack().circuit(), t.key_));
  EXPECT_EQ(ack->msg.network().deliver_ack().seq(), 1u);
  // Round 2: a pair is held, but the Deliver names one the tail never had.
  ASSERT_TRUE(t.Pair(2));
  mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 2, 2, Pair("peer", "iut", 99), h.NowNs()), 0));
  auto nack = AwaitPeer(h, 0, mark, [](const wire::v1::Frame& f) {
    return f.has_network() && (f.network().has_deliver_ack() || f.network().has_deliver_nack());
  });
  ASSERT_TRUE(nack) << "no answer to a Deliver of an unknown pair";
  ASSERT_TRUE(nack->msg.network().has_deliver_nack()) << nack->msg.DebugString();
  EXPECT_TRUE(SameKey(nack->msg.network().deliver_nack().circuit(), t.key_));
  EXPECT_EQ(nack->msg.network().deliver_nack().seq(), 2u);
  // Round 3 delivered as seq 5: Nacks for 3 and 4, Ack for 5.
  ASSERT_TRUE(t.Pair(3));
  mark = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 3, 5, Pair("peer", "iut", 3), h.NowNs()), 0));
  auto ack5 = AwaitPeer(h, 0, mark, [](const wire::v1::Frame& f) {
    return f.has_network() && f.network().has_deliver_ack();
  });
  ASSERT_TRUE(ack5) << "no DeliverAck for seq 5";
  EXPECT_EQ(ack5->msg.network().deliver_ack().seq(), 5u);
  // NET-C-64: seq 5 again is dropped, no answer.
  const size_t before_dup = h.peer_log(0).size();
  ASSERT_TRUE(h.SendNet(DeliverFrame(t.key_, 3, 5, Pair("peer", "iut", 3), h.NowNs()), 0));
  Watch(h, Ms(300), 1);
  QNET_STOP_AND_TRACE(h, trace);
  std::vector<uint64_t> nacked;
  int acks_after_dup = 0;
  for (size_t i = mark; i < h.peer_log(0).size(); ++i) {
    const auto& f = h.peer_log(0)[i].msg;
    if (f.has_network() && f.network().has_deliver_nack())
      nacked.push_back(f.network().deliver_nack().seq());
    if (i >= before_dup && f.has_network() &&
        (f.network().has_deliver_ack() || f.network().has_deliver_nack()))
      ++acks_after_dup;
  }
  EXPECT_EQ(nacked, (std::vector<uint64_t>{3, 4})) << "NET-C-39: one Nack per skipped seq";
  EXPECT_EQ(acks_after_dup, 0) << "NET-C-64: a repeated Deliver was answered";
}

// NET-C-36 "[...] send ReleasePair(tail pair) to the tail (which frees it)";
// NET-C-37 "The tail MUST hold last-link pairs until Deliver or ReleasePair
// names them". The pair of round 1 is released instead of delivered.
TEST(NetEnd, NET_C_36_TailFreesAReleasedPair) {
  Tail t;
  QNET_START_END(t);
  Harness& h = t.h();
  auto slot = t.Pair(1);
  ASSERT_TRUE(slot) << h.NodeLog();
  const size_t phys = h.physics_log().size();
  NetworkFrame rel;
  *rel.mutable_release()->mutable_circuit() = t.key_;
  rel.mutable_release()->set_round(1);
  *rel.mutable_release()->mutable_tail_pair() = Pair("peer", "iut", 1);
  rel.mutable_release()->set_detail("cutoff");
  ASSERT_TRUE(h.SendNet(rel, 0));
  auto freed = AwaitPhysics(
      h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == *slot; });
  EXPECT_TRUE(freed) << "released pair (slot " << *slot << ") not freed";
  QNET_STOP_AND_TRACE(h, trace);
}

// ------------------------------------------------------------------ head

// The node heads a circuit for its <connection> to "far" (port 7) over
// iut -L- peer -L3- far; the harness plays peer and, through peer, far.
class Head {
 public:
  explicit Head(const std::string& connection_attributes = "") : h_(Make(connection_attributes)) {}
  static HarnessOptions Make(const std::string& attrs) {
    HarnessOptions o;  // L: a="iut" b="peer": the node is L's master and upstream end
    o.extra_topology = R"(  <node name="far" hardware="hw"/>
  <link name="L3" a="peer" b="far" scheme="werner" length-km="1" attempt-us="100" p-success="0.5" fidelity="0.9"/>
  <connection from="iut" to="far" port="7" type="keep" start-s="0.3" )" +
                       attrs + "/>\n";
    return o;
  }

  // Started, the transport handshake answered, the setup read and accepted.
  std::string Start() {
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
    if (dg.destination() != "far" || dg.source() != "iut")
      return "Connect datagram " + dg.source() + " -> " + dg.destination();
    tv1::TransportMessage accept;
    accept.set_src_connection(kHarnessConnection);
    accept.set_dst_connection(TransportIn(c->msg.network())->src_connection());
    accept.mutable_accept();
    h_.SendNet(Datagram("far", "iut", 63, accept.SerializeAsString()), 0);
    auto s = AwaitNet(h_, 0, 0, NetworkFrame::kSetup);
    if (!s) return "no CircuitSetup after the transport Accept\n" + h_.NodeLog();
    setup_ = s->msg.setup();
    h_.SendNet(AcceptFrame(setup_.circuit()), 0);
    return "";
  }

  Harness& h() { return h_; }
  const network::v1::CircuitSetup& setup() const { return setup_; }

 private:
  Harness h_;
  network::v1::CircuitSetup setup_;
};

// NET-C-1 "`OpenCircuit` MUST compute the path with the router's current
// shortest route [...]"; NET-C-9 (circuit numbers 1, 2, 3 per head); NET-C-10
// (the head labels link 1 from kFirstNetworkLabel); NET-C-5 "Each link MUST get
// the minimum fidelity w_i_min = w_i * s^(1/n) [...]" with NET-C-6's s =
// w_t / prod w (infinite memories, no cutoff). The connection asks for 0.7 end
// to end over two links of 0.9; the transport's CircuitUpper names the
// connection and pair id 1 (specs/transport.md).
TEST(NetEnd, NET_C_1_HeadSignalsTheRoutedPath) {
  Head x(R"(min-fidelity="0.7")");
  QNET_START_END(x);
  const auto& s = x.setup();
  EXPECT_EQ(s.circuit().head(), "iut");
  EXPECT_EQ(s.circuit().number(), 1u);
  ASSERT_EQ(std::vector<std::string>(s.path().begin(), s.path().end()),
            (std::vector<std::string>{"iut", "peer", "far"}));
  ASSERT_EQ(s.links_size(), 2);
  EXPECT_EQ(s.links(0).link(), "L");
  EXPECT_EQ(s.links(1).link(), "L3");
  EXPECT_GE(s.links(0).label(), kFirstLabel);
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
  QNET_STOP_AND_TRACE(x.h(), trace);
}

// NET-C-31 "The head MUST complete round r when it holds its link-1 pair h and
// the SwapRecords of every intermediate; the pair's Bell state is B = bell(h)
// xor (outcome_k xor downstream_bell_k) over k"; NET-C-33 "[...] the head MUST
// send `Probe{slot, B, "<head>/<number>/<seq>"}`"; NET-C-35 "[...] the head
// MUST apply the Pauli correction to its qubit: PSI_PLUS -> X, PHI_MINUS -> Z,
// PSI_MINUS -> Y, PHI_PLUS -> none"; NET-C-34 "[...] send Deliver(round, seq,
// tail pair id, [...]) towards the tail"; NET-C-32 (seq 1, 2, 3, ...);
// NET-C-20 (round r+1 as soon as round r is completed). Four rounds cover all
// four corrections.
TEST(NetEnd, NET_C_31_HeadTracksTheBellStateAndCorrects) {
  Head x;
  QNET_START_END(x);
  Harness& h = x.h();
  const CircuitKey key = x.setup().circuit();
  struct Case {
    BellState head, outcome, down;
  };
  const Case cases[] = {
      {physical::v1::BELL_STATE_PSI_PLUS, physical::v1::BELL_STATE_PHI_MINUS,
       physical::v1::BELL_STATE_PSI_PLUS},  // 1^2^1 = 2: Z
      {physical::v1::BELL_STATE_PHI_PLUS, physical::v1::BELL_STATE_PSI_MINUS,
       physical::v1::BELL_STATE_PHI_MINUS},  // 0^3^2 = 1: X
      {physical::v1::BELL_STATE_PSI_MINUS, physical::v1::BELL_STATE_PHI_PLUS,
       physical::v1::BELL_STATE_PHI_PLUS},  // 3: Y
      {physical::v1::BELL_STATE_PHI_MINUS, physical::v1::BELL_STATE_PSI_PLUS,
       physical::v1::BELL_STATE_PSI_MINUS},  // 2^1^3 = 0: none
  };
  size_t phys = 0;
  size_t peer_mark = 0;
  for (uint64_t round = 1; round <= 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Case& cs = cases[round - 1];
    auto r = AwaitPeer(h, 0, peer_mark, [&](const wire::v1::Frame& f) {
      return f.has_network() && f.network().has_round() && f.network().round().round() == round;
    });
    ASSERT_TRUE(r) << "no Round " << round << "\n" << h.NodeLog();
    auto g = AwaitGenerate(h, phys, "L");
    ASSERT_TRUE(g && g->msg.has_slot()) << "no Generate on L";
    phys = h.physics_log().size();
    const uint64_t mark = h.peer_log(0).size();
    Herald hh = h.HeraldFor(g->msg, OUTCOME_SUCCESS, round);
    hh.set_bell_state(cs.head);
    ASSERT_TRUE(h.SendHerald(hh));
    NetworkFrame swap;
    auto* s = swap.mutable_swap();
    *s->mutable_circuit() = key;
    s->set_round(round);
    s->set_node("peer");
    *s->mutable_upstream() = Pair("iut", "peer", round);
    *s->mutable_downstream() = Pair("peer", "far", round);
    s->set_outcome(cs.outcome);
    s->set_downstream_bell(cs.down);
    s->set_upstream_herald_ns(hh.time_ns());
    s->set_downstream_herald_ns(h.NowNs());
    s->set_downstream_estimated_fidelity(0.9);
    ASSERT_TRUE(h.SendNet(swap, 0));
    const BellState b = FromIndex(Index(cs.head) ^ Index(cs.outcome) ^ Index(cs.down));
    auto d = AwaitNet(h, 0, mark, NetworkFrame::kDeliver);
    ASSERT_TRUE(d) << "no Deliver for round " << round << "\n" << h.NodeLog();
    EXPECT_TRUE(SameKey(d->msg.deliver().circuit(), key));
    EXPECT_EQ(d->msg.deliver().round(), round);
    EXPECT_EQ(d->msg.deliver().seq(), round);
    EXPECT_EQ(Str(d->msg.deliver().tail_pair()), Str(Pair("peer", "far", round)));
    auto probe = AwaitPhysics(h, phys, [](const NodeToWorld& n) { return n.has_probe(); });
    ASSERT_TRUE(probe) << "no Probe";
    EXPECT_EQ(probe->msg.probe().slot(), g->msg.slot());
    EXPECT_EQ(probe->msg.probe().bell_state(), b);
    EXPECT_EQ(probe->msg.probe().label(), "iut/1/" + std::to_string(round));
    // The correction is on the head's qubit; none for PHI_PLUS.
    std::vector<physical::v1::Gate> gates;
    Watch(h, Ms(100), 1);
    for (size_t i = phys; i < h.physics_log().size(); ++i)
      if (h.physics_log()[i].msg.has_gate()) gates.push_back(h.physics_log()[i].msg.gate());
    if (Correction(b) == physical::v1::GATE_KIND_UNSPECIFIED) {
      EXPECT_TRUE(gates.empty()) << "a gate for a PHI_PLUS pair";
    } else {
      ASSERT_EQ(gates.size(), 1u);
      EXPECT_EQ(gates[0].kind(), Correction(b));
      EXPECT_EQ(gates[0].slot(), g->msg.slot());
    }
    ASSERT_TRUE(h.SendNet(DeliverAckFrame(key, round), 0));
    peer_mark = mark;
  }
  QNET_STOP_AND_TRACE(h, trace);
}

// NET-C-36 "If the completion time minus the oldest herald time of the round's
// link pairs exceeds the cutoff, the head MUST instead free h, send
// ReleasePair(tail pair) to the tail [...]"; NET-C-20 (the next round starts);
// NET-C-32 "[...] discarded rounds take no seq": round 2, completed in time, is
// seq 1. Cutoff 50 ms (carried in the setup, NET-C-11); round 1's SwapRecord
// reports a downstream pair heralded 1 s before.
TEST(NetEnd, NET_C_36_HeadDiscardsRoundsOlderThanTheCutoff) {
  Head x(R"(cutoff-s="0.05")");
  QNET_START_END(x);
  Harness& h = x.h();
  const CircuitKey key = x.setup().circuit();
  EXPECT_EQ(x.setup().cutoff_ns(), 50'000'000u) << "cutoff not carried in the setup";
  auto g = AwaitGenerate(h, 0, "L");
  ASSERT_TRUE(g && g->msg.has_slot()) << h.NodeLog();
  const size_t phys = h.physics_log().size();
  const size_t mark = h.peer_log(0).size();
  Herald hh = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
  ASSERT_TRUE(h.SendHerald(hh));
  NetworkFrame swap;
  auto* s = swap.mutable_swap();
  *s->mutable_circuit() = key;
  s->set_round(1);
  s->set_node("peer");
  *s->mutable_upstream() = Pair("iut", "peer", 1);
  *s->mutable_downstream() = Pair("peer", "far", 1);
  s->set_outcome(physical::v1::BELL_STATE_PHI_PLUS);
  s->set_downstream_bell(physical::v1::BELL_STATE_PHI_PLUS);
  s->set_upstream_herald_ns(hh.time_ns());
  const uint64_t now = h.NowNs();
  s->set_downstream_herald_ns(now > 1'000'000'000 ? now - 1'000'000'000 : 1);
  ASSERT_TRUE(h.SendNet(swap, 0));
  auto rel = AwaitNet(h, 0, mark, NetworkFrame::kRelease);
  ASSERT_TRUE(rel) << "no ReleasePair for a round older than the cutoff\n" << h.NodeLog();
  EXPECT_EQ(rel->msg.release().round(), 1u);
  EXPECT_EQ(Str(rel->msg.release().tail_pair()), Str(Pair("peer", "far", 1)));
  auto freed = AwaitPhysics(h, phys, [&](const NodeToWorld& n) {
    return n.has_free() && n.free().slot() == g->msg.slot();
  });
  EXPECT_TRUE(freed) << "the head's pair not freed";
  auto r2 = AwaitPeer(h, 0, mark, [](const wire::v1::Frame& f) {
    return f.has_network() && f.network().has_round() && f.network().round().round() == 2;
  });
  EXPECT_TRUE(r2) << "no Round 2 after the discard";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn(h.peer_log(0), NetworkFrame::kDeliver).empty())
      << "discarded round delivered";
  for (const auto& m : h.physics_log()) EXPECT_FALSE(m.msg.has_probe()) << "discarded round probed";
}

// NET-C-38 "[...] the head reports that seq with `OnPairExpired`" -- observed
// through the transport above, which tells the other end which pair ids
// expired (specs/transport.md: Expired over the connection's reliable stream).
TEST(NetEnd, NET_C_38_HeadReportsANackedSeqExpired) {
  Head x;
  QNET_START_END(x);
  Harness& h = x.h();
  const CircuitKey key = x.setup().circuit();
  auto g = AwaitGenerate(h, 0, "L");
  ASSERT_TRUE(g && g->msg.has_slot()) << h.NodeLog();
  const size_t mark = h.peer_log(0).size();
  Herald hh = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
  ASSERT_TRUE(h.SendHerald(hh));
  NetworkFrame swap;
  auto* s = swap.mutable_swap();
  *s->mutable_circuit() = key;
  s->set_round(1);
  s->set_node("peer");
  *s->mutable_upstream() = Pair("iut", "peer", 1);
  *s->mutable_downstream() = Pair("peer", "far", 1);
  s->set_outcome(physical::v1::BELL_STATE_PHI_PLUS);
  s->set_downstream_bell(physical::v1::BELL_STATE_PHI_PLUS);
  s->set_upstream_herald_ns(hh.time_ns());
  s->set_downstream_herald_ns(h.NowNs());
  ASSERT_TRUE(h.SendNet(swap, 0));
  ASSERT_TRUE(AwaitNet(h, 0, mark, NetworkFrame::kDeliver)) << h.NodeLog();
  NetworkFrame nack;
  *nack.mutable_deliver_nack()->mutable_circuit() = key;
  nack.mutable_deliver_nack()->set_seq(1);
  nack.mutable_deliver_nack()->set_detail("tail lost it");
  ASSERT_TRUE(h.SendNet(nack, 0));
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
  QNET_STOP_AND_TRACE(h, trace);
}

}  // namespace
}  // namespace qnet::interop
