// specs/network.md section 2 (circuits, rounds, swapping, NET-C-*), checked on
// the wire with the node under test as an INTERMEDIATE node of a circuit
// peer -> iut -> peer2. The harness plays the head "peer" (upstream, link L
// with a="peer": the harness is the link master and issues L's CREATEs), the
// tail "peer2" (downstream, link L2 with a="iut": the node issues L2's
// CREATEs), and qworld (heralds, BellMeasure results).
#include <map>
#include <set>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "interop-tests/net_util.h"

namespace qnet::interop {
namespace {

using google::protobuf::util::MessageDifferencer;
using network::v1::CircuitKey;
using physical::v1::BellState;
using physical::v1::OUTCOME_SUCCESS;

constexpr uint32_t kLabelL = kFirstLabel + 7;  // the head's label on L
constexpr int kUp = 0;                         // "peer", the head side
constexpr int kDown = 1;                       // "peer2", the tail side

bool IsNet(const wire::v1::Frame& f, NetworkFrame::BodyCase body, const CircuitKey& key) {
  if (!f.has_network() || f.network().body_case() != body) return false;
  const NetworkFrame& n = f.network();
  switch (body) {
    case NetworkFrame::kSetup:
      return SameKey(n.setup().circuit(), key);
    case NetworkFrame::kAccept:
      return SameKey(n.accept().circuit(), key);
    case NetworkFrame::kRefuse:
      return SameKey(n.refuse().circuit(), key);
    case NetworkFrame::kTeardown:
      return SameKey(n.teardown().circuit(), key);
    case NetworkFrame::kRound:
      return SameKey(n.round().circuit(), key);
    case NetworkFrame::kSwap:
      return SameKey(n.swap().circuit(), key);
    case NetworkFrame::kDeliver:
      return SameKey(n.deliver().circuit(), key);
    case NetworkFrame::kDeliverAck:
      return SameKey(n.deliver_ack().circuit(), key);
    case NetworkFrame::kDeliverNack:
      return SameKey(n.deliver_nack().circuit(), key);
    case NetworkFrame::kRelease:
      return SameKey(n.release().circuit(), key);
    default:
      return false;
  }
}

// The node as the middle of peer -> iut -> peer2.
class Intermediate {
 public:
  explicit Intermediate(uint32_t memories = 4) : h_(Make(memories)) {}

  static HarnessOptions Make(uint32_t memories) {
    HarnessOptions o;
    o.iut_is_master = false;  // L: a="peer" b="iut"
    o.second_peer = true;     // L2: a="iut" b="peer2"
    o.memories = memories;
    return o;
  }

  // Started, hellos flowing both ways, routes to peer and peer2 known.
  std::string Start() {
    if (std::string why = h_.Start(); !why.empty()) return why;
    h_.StartHellos(kUp);
    h_.StartHellos(kDown);
    h_.SendNet(Advert("peer", 1, {{"L", "iut"}}), kUp);
    h_.SendNet(Advert("peer2", 1, {{"L2", "iut"}}), kDown);
    Watch(h_, Ms(200));
    return "";
  }

  NetworkFrame SetupOf(uint64_t number) const {
    return SetupFrame(Key("peer", number), {"peer", "iut", "peer2"},
                      {{"L", kLabelL + static_cast<uint32_t>(number), 0.85}, {"L2", 0, 0.86}});
  }

  // Sends the head's setup; returns the setup the node forwards to peer2.
  std::optional<network::v1::CircuitSetup> Install(uint64_t number) {
    const size_t mark = h_.peer_log(kDown).size();
    h_.SendNet(SetupOf(number), kUp);
    auto f = AwaitPeer(h_, kDown, mark, [&](const wire::v1::Frame& m) {
      return IsNet(m, NetworkFrame::kSetup, Key("peer", number));
    });
    if (!f) return std::nullopt;
    return f->msg.network().setup();
  }

  // Install + the tail's Accept, forwarded to the head.
  std::optional<network::v1::CircuitSetup> Establish(uint64_t number) {
    auto s = Install(number);
    if (!s) return std::nullopt;
    const size_t mark = h_.peer_log(kUp).size();
    h_.SendNet(AcceptFrame(Key("peer", number)), kDown);
    if (!AwaitPeer(h_, kUp, mark, [&](const wire::v1::Frame& m) {
          return IsNet(m, NetworkFrame::kAccept, Key("peer", number));
        }))
      return std::nullopt;
    return s;
  }

  Harness& h() { return h_; }

 private:
  Harness h_;
};

#define QNET_START_MID(m)                                            \
  do {                                                               \
    const std::string why = (m).Start();                             \
    ASSERT_EQ(why, "") << "log of the node:\n" << (m).h().NodeLog(); \
  } while (0)

// NET-C-10 "The upstream end of each circuit link MUST choose the link's label
// [...] from `kFirstNetworkLabel` upwards, never reusing one on that link";
// NET-C-11 (every hop installs the circuit; the setup goes on to the next hop
// with every other field unchanged); NET-C-19 "CircuitAccept MUST travel to
// the head".
TEST(Net, NET_C_10_IntermediateForwardsSetupWithItsLabel) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto s1 = m.Install(1);
  ASSERT_TRUE(s1) << "setup not forwarded to peer2\n" << h.NodeLog();
  auto s2 = m.Install(2);
  ASSERT_TRUE(s2) << "second setup not forwarded to peer2";
  for (auto [sent, got] : {std::pair{m.SetupOf(1), *s1}, std::pair{m.SetupOf(2), *s2}}) {
    ASSERT_EQ(got.links_size(), 2);
    EXPECT_GE(got.links(1).label(), kFirstLabel) << "label below kFirstNetworkLabel";
    // Everything but the downstream label unchanged.
    network::v1::CircuitSetup expected = sent.setup();
    expected.mutable_links(1)->set_label(got.links(1).label());
    EXPECT_TRUE(MessageDifferencer::Equals(expected, got))
        << "sent:\n"
        << sent.setup().DebugString() << "forwarded:\n"
        << got.DebugString();
  }
  EXPECT_NE(s1->links(1).label(), s2->links(1).label()) << "two circuits share a label on L2";
  // NET-C-14: the tail's Accept goes back to the head.
  const size_t mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 2)), kDown));
  auto acc = AwaitNet(h, kUp, mark, NetworkFrame::kAccept);
  ASSERT_TRUE(acc) << "Accept not forwarded to the head";
  EXPECT_TRUE(SameKey(acc->msg.accept().circuit(), Key("peer", 2)));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn(h.peer_log(kDown), NetworkFrame::kAccept).empty())
      << "Accept echoed to the tail";
}

// NET-C-11 (an intermediate reserves 2 slots), NET-C-14 "A hop whose
// unreserved memories are fewer than it needs MUST refuse with NORES, naming
// itself in the detail." NET-C-17 "CircuitRefuse MUST travel to the head,
// every hop uninstalling the circuit and its reservation". With 2 memories the
// first circuit takes both.
TEST(Net, NET_C_14_NoresWhenMemoriesAreReservedAndRefuseReleasesThem) {
  Intermediate m(2);
  QNET_START_MID(m);
  Harness& h = m.h();
  ASSERT_TRUE(m.Install(1)) << h.NodeLog();
  size_t mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(m.SetupOf(2), kUp));
  auto r = AwaitNet(h, kUp, mark, NetworkFrame::kRefuse);
  ASSERT_TRUE(r) << "no Refuse for a circuit the node has no memories for";
  EXPECT_TRUE(SameKey(r->msg.refuse().circuit(), Key("peer", 2)));
  EXPECT_EQ(r->msg.refuse().code(), network::v1::CIRCUIT_ERROR_NORES);
  EXPECT_EQ(r->msg.refuse().at_node(), "iut");
  EXPECT_NE(r->msg.refuse().detail().find("iut"), std::string::npos) << r->msg.refuse().detail();
  // The tail refuses circuit 1: forwarded to the head unchanged, and its memories are free again.
  mark = h.peer_log(kUp).size();
  const NetworkFrame refuse =
      RefuseFrame(Key("peer", 1), network::v1::CIRCUIT_ERROR_REFUSED, "peer2");
  ASSERT_TRUE(h.SendNet(refuse, kDown));
  r = AwaitNet(h, kUp, mark, NetworkFrame::kRefuse);
  ASSERT_TRUE(r) << "the tail's Refuse not forwarded to the head";
  EXPECT_TRUE(MessageDifferencer::Equals(r->msg.refuse(), refuse.refuse())) << r->msg.DebugString();
  EXPECT_TRUE(m.Install(3)) << "circuit 3 refused although circuit 1's reservation was released";
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& f : NetFramesIn(h.peer_log(kDown), NetworkFrame::kSetup))
    EXPECT_NE(f.msg.setup().circuit().number(), 2u) << "refused setup forwarded";
}

struct RoundResult {
  Timed<Generate> gen_u, gen_d;
  uint64_t herald_u_ns = 0, herald_d_ns = 0;
  std::optional<Timed<NodeToWorld>> bsm;
  std::optional<Timed<NetworkFrame>> swap;
};

// One round at the intermediate: Round from the head, the head's L CREATE
// (QueueAdd, queue id `qid`), heralds of both links with the given Bell
// states, the BSM answered with `outcome`.
void RunRound(Harness& h, const CircuitKey& key, uint64_t round, uint64_t qid,
              const network::v1::CircuitSetup& setup, BellState bell_u, BellState bell_d,
              BellState outcome, RoundResult* out) {
  const size_t down_mark = h.peer_log(kDown).size();
  const size_t up_mark = h.peer_log(kUp).size();
  const size_t phys_mark = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(RoundFrame(key, round), kUp));
  ASSERT_TRUE(h.SendPeer(CircuitQueueAdd(qid, "peer", "iut", setup.links(0).label(),
                                         setup.links(0).min_fidelity(), h.NowNs() + 3'000'000),
                         kUp));
  // NET-C-20: Round forwarded towards the tail.
  auto fwd = AwaitNet(h, kDown, down_mark, NetworkFrame::kRound);
  ASSERT_TRUE(fwd) << "Round " << round << " not forwarded to peer2";
  EXPECT_TRUE(SameKey(fwd->msg.round().circuit(), key));
  EXPECT_EQ(fwd->msg.round().round(), round);
  // NET-C-21: the node, upstream end of L2, issues one CREATE there.
  auto add = AwaitLink(h, kDown, down_mark, LinkFrame::kAdd);
  ASSERT_TRUE(add) << "no CREATE (QueueAdd) on L2 for round " << round;
  const auto& c = add->msg.add().create();
  EXPECT_EQ(add->msg.link(), "L2");
  EXPECT_EQ(add->msg.add().origin(), "iut");
  EXPECT_EQ(c.remote_node(), "peer2");
  EXPECT_EQ(c.pairs(), 1u);
  EXPECT_EQ(c.type(), link::v1::REQUEST_TYPE_KEEP);
  EXPECT_EQ(c.purpose_id(), setup.links(1).label());
  EXPECT_NEAR(c.min_fidelity(), setup.links(1).min_fidelity(), 1e-12);
  EXPECT_EQ(c.priority(), 0u) << "NetworkOptions::link_priority defaults to 0";
  auto gu = AwaitGenerate(h, phys_mark, "L");
  auto gd = AwaitGenerate(h, phys_mark, "L2");
  ASSERT_TRUE(gu && gd) << "no Generate on " << (gu ? "L2" : "L") << "\n" << h.NodeLog();
  ASSERT_TRUE(gu->msg.has_slot() && gd->msg.has_slot());
  out->gen_u = *gu;
  out->gen_d = *gd;
  Herald hd = h.HeraldFor(gd->msg, OUTCOME_SUCCESS, round);
  hd.set_bell_state(bell_d);
  out->herald_d_ns = hd.time_ns();
  ASSERT_TRUE(h.SendHerald(hd));
  std::this_thread::sleep_for(Ms(5));
  Herald hu = h.HeraldFor(gu->msg, OUTCOME_SUCCESS, round);
  hu.set_bell_state(bell_u);
  out->herald_u_ns = hu.time_ns();
  ASSERT_TRUE(h.SendHerald(hu));
  // NET-C-30: swap at once with a physical BellMeasure of both slots.
  out->bsm = AwaitPhysics(h, phys_mark, [](const NodeToWorld& n) { return n.has_bell_measure(); });
  ASSERT_TRUE(out->bsm) << "no BellMeasure after both pairs of round " << round;
  physical::v1::WorldToNode res;
  res.set_version(1);
  res.mutable_bell_measure_result()->set_request_id(out->bsm->msg.bell_measure().request_id());
  res.mutable_bell_measure_result()->set_bell_state(outcome);
  res.mutable_bell_measure_result()->set_time_ns(h.NowNs());
  ASSERT_TRUE(h.SendPhysics(res));
  out->swap = AwaitNet(h, kUp, up_mark, NetworkFrame::kSwap);
}

// NET-C-21 "Round(r) MUST travel head to tail"; NET-C-22 "On round r every
// node but the tail MUST issue one link CREATE towards its downstream
// neighbour: pairs 1, type KEEP, purpose id = the link's label, min_fidelity =
// the link's minimum [...]"; NET-C-27 "An intermediate holding an
// upstream-link pair and a downstream-link pair of a circuit MUST BellMeasure
// them at once (request ids odd)"; NET-C-28 (both slots given back with
// Return: no Free); NET-C-29 "It MUST send SwapRecord(circuit, round, node,
// upstream and downstream pair ids, outcome, downstream Bell state, both
// herald times, [...]) to its upstream neighbour" -- the fields the head's
// xor rule (NET-C-31) needs. Two rounds; Deliver passes on to the tail
// (NET-C-34) and DeliverAck back to the head.
TEST(Net, NET_C_27_IntermediateSwapsAtOnceAndReportsTheSwap) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  const CircuitKey key = Key("peer", 1);
  struct Case {
    BellState u, d, outcome;
  };
  const Case cases[] = {
      {physical::v1::BELL_STATE_PHI_MINUS, physical::v1::BELL_STATE_PSI_PLUS,
       physical::v1::BELL_STATE_PSI_MINUS},
      {physical::v1::BELL_STATE_PSI_MINUS, physical::v1::BELL_STATE_PHI_PLUS,
       physical::v1::BELL_STATE_PHI_MINUS},
  };
  std::set<uint32_t> swapped_slots;
  for (uint64_t round = 1; round <= 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Case& cs = cases[round - 1];
    RoundResult r;
    RunRound(h, key, round, round, *setup, cs.u, cs.d, cs.outcome, &r);
    if (HasFatalFailure()) return;
    const auto& bsm = r.bsm->msg.bell_measure();
    EXPECT_EQ(std::set<uint32_t>({bsm.slot_a(), bsm.slot_b()}),
              std::set<uint32_t>({r.gen_u.msg.slot(), r.gen_d.msg.slot()}))
        << "BellMeasure of other slots than the round's pairs";
    EXPECT_EQ(bsm.request_id() % 2, 1u) << "network-layer BellMeasure ids are odd";
    swapped_slots.insert(bsm.slot_a());
    swapped_slots.insert(bsm.slot_b());
    ASSERT_TRUE(r.swap) << "no SwapRecord to the head\n" << h.NodeLog();
    const auto& s = r.swap->msg.swap();
    EXPECT_TRUE(SameKey(s.circuit(), key));
    EXPECT_EQ(s.round(), round);
    EXPECT_EQ(s.node(), "iut");
    EXPECT_EQ(Str(s.upstream()), Str(Pair("peer", "iut", round)));
    EXPECT_EQ(Str(s.downstream()), Str(Pair("iut", "peer2", round)));
    EXPECT_EQ(s.outcome(), cs.outcome);
    EXPECT_EQ(s.downstream_bell(), cs.d);
    EXPECT_EQ(s.upstream_herald_ns(), r.herald_u_ns);
    EXPECT_EQ(s.downstream_herald_ns(), r.herald_d_ns);
    // NET-C-40: Deliver passes to the tail, DeliverAck back to the head, unchanged.
    const size_t down_mark = h.peer_log(kDown).size();
    const size_t up_mark = h.peer_log(kUp).size();
    const NetworkFrame deliver =
        DeliverFrame(key, round, round, Pair("iut", "peer2", round), h.NowNs());
    ASSERT_TRUE(h.SendNet(deliver, kUp));
    auto d = AwaitNet(h, kDown, down_mark, NetworkFrame::kDeliver);
    ASSERT_TRUE(d) << "Deliver not forwarded to the tail";
    EXPECT_TRUE(MessageDifferencer::Equals(d->msg.deliver(), deliver.deliver()));
    ASSERT_TRUE(h.SendNet(DeliverAckFrame(key, round), kDown));
    auto a = AwaitNet(h, kUp, up_mark, NetworkFrame::kDeliverAck);
    ASSERT_TRUE(a) << "DeliverAck not forwarded to the head";
    EXPECT_EQ(a->msg.deliver_ack().seq(), round);
  }
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& f : FreesIn(h.physics_log()))
    EXPECT_FALSE(swapped_slots.count(f.msg)) << "Free of slot " << f.msg << " emptied by the BSM";
  EXPECT_EQ(NetFramesIn(h.peer_log(kUp), NetworkFrame::kSwap).size(), 2u);
}

// NET-C-40 "A teardown MUST be forwarded from where it starts towards both
// ends"; NET-C-41 "Every node MUST free the circuit's held pairs and its
// reservation when the circuit goes down". Circuit 1: the node holds L2's pair
// of round 1 when the head tears down -> forwarded to peer2 (not back), Free
// of that slot. Circuit 2: the tail tears down -> forwarded to the head.
TEST(Net, NET_C_40_TeardownIsForwardedAndHeldPairsAreFreed) {
  Intermediate m(4);
  QNET_START_MID(m);
  Harness& h = m.h();
  auto s1 = m.Establish(1);
  ASSERT_TRUE(s1) << h.NodeLog();
  auto s2 = m.Establish(2);
  ASSERT_TRUE(s2);
  const size_t phys_mark = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(RoundFrame(Key("peer", 1), 1), kUp));
  auto gd = AwaitGenerate(h, phys_mark, "L2");
  ASSERT_TRUE(gd) << "no Generate on L2 for circuit 1's round 1";
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gd->msg, OUTCOME_SUCCESS, 1)));
  Watch(h, Ms(200));
  size_t down_mark = h.peer_log(kDown).size();
  const NetworkFrame td1 = TeardownFrame(Key("peer", 1), network::v1::CIRCUIT_ERROR_CLOSED);
  ASSERT_TRUE(h.SendNet(td1, kUp));
  auto t = AwaitNet(h, kDown, down_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(t) << "the head's Teardown not forwarded to the tail";
  EXPECT_TRUE(SameKey(t->msg.teardown().circuit(), Key("peer", 1)));
  EXPECT_EQ(t->msg.teardown().code(), network::v1::CIRCUIT_ERROR_CLOSED);
  auto freed = AwaitPhysics(h, phys_mark, [&](const NodeToWorld& n) {
    return n.has_free() && n.free().slot() == gd->msg.slot();
  });
  EXPECT_TRUE(freed) << "the held L2 pair (slot " << gd->msg.slot() << ") not freed on teardown";
  const size_t up_mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(TeardownFrame(Key("peer", 2), network::v1::CIRCUIT_ERROR_CLOSED), kDown));
  t = AwaitNet(h, kUp, up_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(t) << "the tail's Teardown not forwarded to the head";
  EXPECT_TRUE(SameKey(t->msg.teardown().circuit(), Key("peer", 2)));
  // A Round of a torn-down circuit is not forwarded and issues no CREATE.
  down_mark = h.peer_log(kDown).size();
  ASSERT_TRUE(h.SendNet(RoundFrame(Key("peer", 1), 2), kUp));
  Watch(h, Ms(300));
  QNET_STOP_AND_TRACE(h, trace);
  for (size_t i = down_mark; i < h.peer_log(kDown).size(); ++i) {
    const auto& f = h.peer_log(kDown)[i].msg;
    EXPECT_FALSE(f.has_network() && f.network().has_round()) << "Round of a dead circuit";
    EXPECT_FALSE(f.has_link() && f.link().has_add()) << "CREATE for a dead circuit";
  }
  // Each teardown went one way only.
  int up_teardowns_1 = 0;
  for (const auto& f : NetFramesIn(h.peer_log(kUp), NetworkFrame::kTeardown))
    up_teardowns_1 += f.msg.teardown().circuit().number() == 1;
  EXPECT_EQ(up_teardowns_1, 0) << "the head's Teardown echoed back to it";
}

// NET-C-42 "When a link goes down (router `on_link_change`, [...]) both of its
// ends MUST tear down every circuit using it with LINK_FAILURE and the failed
// link named." peer2 falls silent (NET-R-2): the head hears the teardown.
TEST(Net, NET_C_42_LinkFailureTearsCircuitsDownTowardsTheHead) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  ASSERT_TRUE(m.Establish(1)) << h.NodeLog();
  const size_t up_mark = h.peer_log(kUp).size();
  h.StopHellos(kDown);
  auto t = AwaitNet(h, kUp, up_mark, NetworkFrame::kTeardown, Ms(5000));
  ASSERT_TRUE(t) << "no Teardown after L2 went down";
  EXPECT_TRUE(SameKey(t->msg.teardown().circuit(), Key("peer", 1)));
  EXPECT_EQ(t->msg.teardown().code(), network::v1::CIRCUIT_ERROR_LINK_FAILURE);
  EXPECT_EQ(t->msg.teardown().failed_link(), "L2");
  QNET_STOP_AND_TRACE(h, trace);
}

// NET-C-60 "[...] circuit frames naming no installed circuit [...] MUST be
// dropped (UNEXPECTED_FRAME [...])"; NET-C-61 "Circuit frames from a neighbour
// that is not the circuit's upstream (Round, Deliver, ReleasePair) or
// downstream (Accept, Refuse, SwapRecord, DeliverAck, DeliverNack) neighbour
// MUST be dropped"; NET-C-62 (a Round out of sequence); NET-C-65 (each a
// traced drop, no state change).
TEST(Net, NET_C_61_CircuitFramesForUnknownCircuitsOrFromTheWrongSideAreDropped) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  ASSERT_TRUE(m.Establish(1)) << h.NodeLog();
  const size_t up_mark = h.peer_log(kUp).size();
  const size_t down_mark = h.peer_log(kDown).size();
  const size_t phys_mark = h.physics_log().size();
  const CircuitKey unknown = Key("peer", 99);
  ASSERT_TRUE(h.SendNet(RoundFrame(unknown, 1), kUp));
  NetworkFrame swap;
  *swap.mutable_swap()->mutable_circuit() = unknown;
  swap.mutable_swap()->set_round(1);
  swap.mutable_swap()->set_node("peer2");
  ASSERT_TRUE(h.SendNet(swap, kDown));
  ASSERT_TRUE(h.SendNet(DeliverFrame(unknown, 1, 1, Pair("iut", "peer2", 1), 1), kUp));
  ASSERT_TRUE(h.SendNet(DeliverAckFrame(unknown, 1), kDown));
  // The known circuit, wrong direction: Round from the tail, SwapRecord from the head.
  ASSERT_TRUE(h.SendNet(RoundFrame(Key("peer", 1), 1), kDown));
  *swap.mutable_swap()->mutable_circuit() = Key("peer", 1);
  swap.mutable_swap()->set_node("peer");
  ASSERT_TRUE(h.SendNet(swap, kUp));
  ASSERT_TRUE(h.SendNet(RoundFrame(Key("peer", 1), 3), kUp));  // NET-C-62: round 1 is next
  Watch(h, Ms(400));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(
      h.peer_log(kUp).size() - up_mark,
      NetFramesIn({h.peer_log(kUp).begin() + up_mark, h.peer_log(kUp).end()}, NetworkFrame::kHello)
              .size() +
          NetFramesIn({h.peer_log(kUp).begin() + up_mark, h.peer_log(kUp).end()},
                      NetworkFrame::kAdvert)
              .size())
      << "the node answered or forwarded a dropped frame to the head";
  for (size_t i = down_mark; i < h.peer_log(kDown).size(); ++i) {
    const auto& f = h.peer_log(kDown)[i].msg;
    EXPECT_TRUE(f.has_network() && (f.network().has_hello() || f.network().has_advert()))
        << "forwarded to the tail: " << f.DebugString();
  }
  for (size_t i = phys_mark; i < h.physics_log().size(); ++i)
    EXPECT_FALSE(h.physics_log()[i].msg.has_generate()) << "a dropped Round started generation";
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 7u) << Dump(trace);
}

// NET-C-12 "A CircuitSetup whose path and links disagree, that visits a node
// twice, that was not sent by this node's predecessor on the path, names
// another link, or carries a label below `kFirstNetworkLabel` [...], or a
// minimum fidelity outside [0, 1], MUST be dropped (MALFORMED_FRAME) and
// refused with MALFORMED." NET-C-13 "A CircuitSetup for a key installed here
// MUST be dropped (UNEXPECTED_FRAME) without an answer; the installed circuit
// is unaffected."
TEST(Net, NET_C_12_MalformedAndDuplicateSetups) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  ASSERT_TRUE(m.Install(1)) << h.NodeLog();
  std::vector<std::pair<NetworkFrame, std::string>> bad;
  bad.push_back({SetupFrame(Key("peer", 10), {"peer", "iut", "peer2"}, {{"L", kLabelL + 10, 0.8}}),
                 "one link for three nodes"});
  bad.push_back({SetupFrame(Key("peer", 11), {"peer", "iut", "peer"},
                            {{"L", kLabelL + 11, 0.8}, {"L", 0, 0.8}}),
                 "visits peer twice"});
  bad.push_back({SetupFrame(Key("peer", 12), {"peer", "peer2", "iut"},
                            {{"L2", kLabelL + 12, 0.8}, {"L2", 0, 0.8}}),
                 "not sent by the predecessor"});
  bad.push_back({SetupFrame(Key("peer", 13), {"peer", "iut", "peer2"},
                            {{"L2", kLabelL + 13, 0.8}, {"L2", 0, 0.8}}),
                 "names another link"});
  bad.push_back(
      {SetupFrame(Key("peer", 14), {"peer", "iut", "peer2"}, {{"L", 5, 0.8}, {"L2", 0, 0.8}}),
       "label below kFirstNetworkLabel"});
  bad.push_back({SetupFrame(Key("peer", 15), {"peer", "iut", "peer2"},
                            {{"L", kLabelL + 1, 0.8}, {"L2", 0, 0.8}}),
                 "label in use (circuit 1's)"});
  bad.push_back({SetupFrame(Key("peer", 16), {"peer", "iut", "peer2"},
                            {{"L", kLabelL + 16, 1.5}, {"L2", 0, 0.8}}),
                 "minimum fidelity 1.5"});
  const size_t up_mark = h.peer_log(kUp).size();
  for (const auto& [f, what] : bad) ASSERT_TRUE(h.SendNet(f, kUp)) << what;
  ASSERT_TRUE(h.SendNet(m.SetupOf(1), kUp));  // NET-C-13: installed already
  Watch(h, Ms(500));
  // The installed circuit still works: the tail's Accept reaches the head.
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 1)), kDown));
  auto acc = AwaitNet(h, kUp, up_mark, NetworkFrame::kAccept);
  EXPECT_TRUE(acc) << "circuit 1 affected by a duplicate setup";
  QNET_STOP_AND_TRACE(h, trace);
  std::map<uint64_t, network::v1::CircuitError> refused;
  for (size_t i = up_mark; i < h.peer_log(kUp).size(); ++i) {
    const auto& f = h.peer_log(kUp)[i].msg;
    if (f.has_network() && f.network().has_refuse())
      refused[f.network().refuse().circuit().number()] = f.network().refuse().code();
  }
  for (uint64_t n = 10; n <= 16; ++n) {
    SCOPED_TRACE(bad[n - 10].second);
    ASSERT_TRUE(refused.count(n)) << "no Refuse";
    EXPECT_EQ(refused[n], network::v1::CIRCUIT_ERROR_MALFORMED);
  }
  EXPECT_FALSE(refused.count(1)) << "a duplicate setup was answered";
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).size(), bad.size())
      << Dump(trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
  EXPECT_EQ(NetFramesIn(h.peer_log(kDown), NetworkFrame::kSetup).size(), 1u)
      << "a malformed or duplicate setup was forwarded";
}

// NET-C-16 "An intermediate whose next link is not up MUST refuse with
// NO_ROUTE." L2 is down (peer2 silent for a dead interval, NET-R-2).
TEST(Net, NET_C_16_NextLinkDownRefusesNoRoute) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  h.StopHellos(kDown);
  std::optional<Timed<NetworkFrame>> down;
  while ((down = ExpectAdvertOf(h, "iut", kWait, kUp)))
    if (!AdvertHasLink(down->msg.advert(), "L2")) break;
  ASSERT_TRUE(down) << "L2 never went down";
  const size_t mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(m.SetupOf(1), kUp));
  auto r = AwaitNet(h, kUp, mark, NetworkFrame::kRefuse);
  ASSERT_TRUE(r) << "no Refuse for a circuit over a down link";
  EXPECT_EQ(r->msg.refuse().code(), network::v1::CIRCUIT_ERROR_NO_ROUTE);
  EXPECT_EQ(r->msg.refuse().at_node(), "iut");
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn(h.peer_log(kDown), NetworkFrame::kSetup).empty());
}

// NET-C-24 "A CREATE refused with NOTIME, UNSUPPORTED or CREATE MUST tear the
// circuit down with LINK_ERROR." The setup asks L2 for fidelity 0.99, above
// the link's 0.9 (LINK-02: UNSUPPORTED at once): at Round 1 the node tears the
// circuit down towards both ends (NET-C-40).
TEST(Net, NET_C_24_UnsupportedCreateTearsTheCircuitDown) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  NetworkFrame setup = m.SetupOf(1);
  setup.mutable_setup()->mutable_links(1)->set_min_fidelity(0.99);
  size_t down_mark = h.peer_log(kDown).size();
  ASSERT_TRUE(h.SendNet(setup, kUp));
  ASSERT_TRUE(AwaitNet(h, kDown, down_mark, NetworkFrame::kSetup)) << h.NodeLog();
  const size_t up_mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 1)), kDown));
  ASSERT_TRUE(AwaitNet(h, kUp, up_mark, NetworkFrame::kAccept));
  down_mark = h.peer_log(kDown).size();
  ASSERT_TRUE(h.SendNet(RoundFrame(Key("peer", 1), 1), kUp));
  auto up = AwaitNet(h, kUp, up_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(up) << "no Teardown to the head after an UNSUPPORTED CREATE";
  EXPECT_EQ(up->msg.teardown().code(), network::v1::CIRCUIT_ERROR_LINK_ERROR);
  auto dn = AwaitNet(h, kDown, down_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(dn) << "no Teardown to the tail after an UNSUPPORTED CREATE";
  EXPECT_EQ(dn->msg.teardown().code(), network::v1::CIRCUIT_ERROR_LINK_ERROR);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(LinkFramesIn(h.peer_log(kDown), LinkFrame::kAdd).empty());
}

// NET-C-23 "A CREATE refused at once or ended by ERR (other than
// NOTIME/UNSUPPORTED/CREATE) MUST be re-issued after `create_retry`, in the
// same round." peer2 (L2's non-master end) rejects the node's QueueAdd
// (LINK-13: ERR REJECTED at the node): a new QueueAdd for the same label.
TEST(Net, NET_C_23_RejectedCreateIsReissuedInTheSameRound) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  const size_t down_mark = h.peer_log(kDown).size();
  const size_t phys_mark = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(RoundFrame(Key("peer", 1), 1), kUp));
  auto add = AwaitLink(h, kDown, down_mark, LinkFrame::kAdd);
  ASSERT_TRUE(add) << "no CREATE on L2";
  ASSERT_TRUE(h.SendPeer(RejectFrame(add->msg.add().queue_id(), add->msg.add().origin_create_id(),
                                     link::v1::ERROR_CODE_REJECTED, "harness says no", "L2"),
                         kDown));
  const size_t after = h.peer_log(kDown).size();
  // If the item is already in a batch, the reject takes effect when the batch
  // ends (LINK-23): end every batch of the rejected item IDLE.
  std::optional<Timed<LinkFrame>> again;
  size_t phys = phys_mark;
  const auto end = std::chrono::steady_clock::now() + kWait;
  while (!again && std::chrono::steady_clock::now() < end) {
    if (auto g = AwaitGenerate(h, phys, "L2", Ms(20))) {
      phys = h.physics_log().size();
      if (g->msg.queue_id() == add->msg.add().queue_id())
        ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, physical::v1::OUTCOME_IDLE, 0)));
    }
    again = AwaitLink(h, kDown, after, LinkFrame::kAdd, Ms(20));
  }
  ASSERT_TRUE(again) << "the rejected CREATE was not re-issued";
  EXPECT_EQ(again->msg.add().create().purpose_id(), setup->links(1).label());
  EXPECT_GT(again->msg.add().queue_id(), add->msg.add().queue_id());
  QNET_STOP_AND_TRACE(h, trace);
  int rounds = 0;
  for (const auto& f : NetFramesIn(h.peer_log(kDown), NetworkFrame::kRound)) rounds += 1;
  EXPECT_EQ(rounds, 1) << "the re-issue must stay in round 1";
}

// NET-C-25 "A link OK whose label belongs to no installed circuit [...] MUST
// be released (physical Free) and counted as a drop (NO_CONSUMER)." The
// harness (L's master) queues a pair with a network label no circuit has.
TEST(Net, NET_C_25_PairForNoCircuitIsFreed) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendPeer(
      CircuitQueueAdd(1, "peer", "iut", kFirstLabel + 999, 0.8, h.NowNs() + 3'000'000), kUp));
  auto g = AwaitGenerate(h, phys, "L");
  ASSERT_TRUE(g && g->msg.has_slot()) << "no Generate for the harness's pair\n" << h.NodeLog();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  auto freed = AwaitPhysics(h, phys, [&](const NodeToWorld& n) {
    return n.has_free() && n.free().slot() == g->msg.slot();
  });
  EXPECT_TRUE(freed) << "pair of no circuit not freed";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_NO_CONSUMER).size(), 1u) << Dump(trace);
}

}  // namespace
}  // namespace qnet::interop
