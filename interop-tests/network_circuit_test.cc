// specs/network.md section 2 (streaming circuits, NET-C-*), checked on the
// wire with the node under test as an INTERMEDIATE node of a circuit
// peer -> iut -> peer2. The harness plays the head "peer" (upstream, link L
// with a="peer": the harness is L's master and issues the circuit's standing
// CREATE there), the tail "peer2" (downstream, link L2 with a="iut": the node
// is L2's master and issues the circuit's standing CREATE there), and qworld
// (heralds, BellMeasure results).
#include <cmath>
#include <map>
#include <set>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "interop-tests/net_util.h"

namespace qnet::interop {
namespace {

using google::protobuf::util::MessageDifferencer;
using network::v1::CircuitKey;
using network::v1::CircuitSetup;
using physical::v1::BellState;
using physical::v1::OUTCOME_SUCCESS;

constexpr uint32_t kLabelL = kFirstLabel + 7;  // the head's label on L (+ circuit number)
constexpr double kMinL = 0.85, kMinL2 = 0.86;  // link minimum fidelities in the setups
constexpr int kUp = 0;                         // "peer", the head side
constexpr int kDown = 1;                       // "peer2", the tail side

constexpr BellState kPhiPlus = physical::v1::BELL_STATE_PHI_PLUS;
constexpr BellState kPsiPlus = physical::v1::BELL_STATE_PSI_PLUS;
constexpr BellState kPhiMinus = physical::v1::BELL_STATE_PHI_MINUS;
constexpr BellState kPsiMinus = physical::v1::BELL_STATE_PSI_MINUS;

bool IsCreateFor(const wire::v1::Frame& f, uint32_t label) {
  return f.has_link() && f.link().has_add() && f.link().add().create().purpose_id() == label;
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
    o.link_attributes = kCircuitLink;
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

  NetworkFrame SetupOf(uint64_t number, uint32_t depth = 1) const {
    return SetupFrame(Key("peer", number), {"peer", "iut", "peer2"},
                      {{"L", kLabelL + static_cast<uint32_t>(number), kMinL}, {"L2", 0, kMinL2}},
                      "", depth);
  }

  // Sends `setup` as the head; returns the setup the node forwards to peer2.
  std::optional<CircuitSetup> Send(const NetworkFrame& setup) {
    const size_t mark = h_.peer_log(kDown).size();
    h_.SendNet(setup, kUp);
    auto f = AwaitPeer(h_, kDown, mark, [&](const wire::v1::Frame& m) {
      return IsNet(m, NetworkFrame::kSetup, setup.setup().circuit());
    });
    if (!f) return std::nullopt;
    return f->msg.network().setup();
  }
  std::optional<CircuitSetup> Install(uint64_t number, uint32_t depth = 1) {
    return Send(SetupOf(number, depth));
  }

  // The tail's Accept with `depth` (0: the depth the node forwarded); true
  // once it reached the head.
  bool Accept(const CircuitSetup& forwarded, uint32_t depth = 0) {
    const size_t mark = h_.peer_log(kUp).size();
    h_.SendNet(AcceptFrame(forwarded.circuit(), depth != 0 ? depth : forwarded.depth()), kDown);
    return AwaitPeer(h_, kUp, mark,
                     [&](const wire::v1::Frame& m) {
                       return IsNet(m, NetworkFrame::kAccept, forwarded.circuit());
                     })
        .has_value();
  }

  // Install + the tail's Accept, forwarded to the head.
  std::optional<CircuitSetup> Establish(uint64_t number, uint32_t depth = 1) {
    auto s = Install(number, depth);
    if (!s || !Accept(*s)) return std::nullopt;
    return s;
  }

  // The node's standing CREATE on L2 for a circuit (its QueueAdd to peer2).
  std::optional<link::v1::QueueAdd> DownstreamCreate(const CircuitSetup& forwarded) {
    auto f = AwaitPeer(h_, kDown, 0, [&](const wire::v1::Frame& m) {
      return IsCreateFor(m, forwarded.links(1).label());
    });
    if (!f) return std::nullopt;
    return f->msg.link().add();
  }

  // The head's standing CREATE on L (the harness is L's master), queue id `qid`.
  bool HeadCreate(uint64_t qid, const CircuitSetup& setup, uint32_t window) {
    return h_.SendPeer(
        CircuitQueueAdd(qid, "peer", "iut", setup.links(0).label(), setup.links(0).min_fidelity(),
                        h_.NowNs() + 2'000'000, window),
        kUp);
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

std::optional<Timed<NodeToWorld>> NextBellMeasure(Harness& h, size_t* cursor, Ms timeout = kWait) {
  return NextPhysicsMatching(
      h, cursor, [](const NodeToWorld& n) { return n.has_bell_measure(); }, timeout);
}

// NET-C-10 "The upstream end of each circuit link MUST choose the link's label
// [...] from kFirstNetworkLabel upwards, never reusing one on that link";
// NET-C-11 (every hop installs the circuit; the setup goes on with every other
// field unchanged); NET-C-11a (the setup carries the depth the hop grants: 1
// asked, 1 granted); NET-C-19 "CircuitAccept MUST travel to the head".
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
    // Everything but the downstream label unchanged (the depth asked, 1, is granted).
    network::v1::CircuitSetup expected = sent.setup();
    expected.mutable_links(1)->set_label(got.links(1).label());
    EXPECT_TRUE(MessageDifferencer::Equals(expected, got))
        << "sent:\n"
        << sent.setup().DebugString() << "forwarded:\n"
        << got.DebugString();
  }
  EXPECT_NE(s1->links(1).label(), s2->links(1).label()) << "two circuits share a label on L2";
  const size_t mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 2), 1), kDown));
  auto acc = AwaitNet(h, kUp, mark, NetworkFrame::kAccept);
  ASSERT_TRUE(acc) << "Accept not forwarded to the head";
  EXPECT_TRUE(SameKey(acc->msg.accept().circuit(), Key("peer", 2)));
  EXPECT_EQ(acc->msg.accept().depth(), 1u);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn(h.peer_log(kDown), NetworkFrame::kAccept).empty())
      << "Accept echoed to the tail";
}

// NET-C-11 "Every hop MUST [...] reserve depth memory slots per side it keeps
// (an intermediate 2 x depth [...])"; NET-C-11a "each hop MUST grant the
// largest depth not above it for which it has the slots of NET-C-11 [...] and
// forward that depth; the tail's grant is the circuit's depth, which
// CircuitAccept carries back, each hop then keeping the reservation of that
// depth only"; NET-C-19 "An Accept whose depth is 0 or above the depth this
// hop granted MUST be dropped (MALFORMED_FRAME)"; NET-C-14 "A hop that cannot
// grant depth 1 MUST refuse with NORES, naming itself in the detail";
// NET-C-20 (window = the circuit's depth). Four memories: circuit 1 asks 5,
// gets 2, the tail grants 1 (2 slots stay reserved); circuit 2 asks 3 and
// gets 1; circuit 3 finds no slot.
TEST(Net, NET_C_11a_EachHopGrantsTheDepthItHasSlotsFor) {
  Intermediate m(4);
  QNET_START_MID(m);
  Harness& h = m.h();
  auto s1 = m.Install(1, 5);
  ASSERT_TRUE(s1) << h.NodeLog();
  EXPECT_EQ(s1->depth(), 2u) << "4 memories, 2 sides: depth 2";
  size_t mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 1), 1), kDown));
  auto acc = AwaitNet(h, kUp, mark, NetworkFrame::kAccept);
  ASSERT_TRUE(acc);
  EXPECT_EQ(acc->msg.accept().depth(), 1u) << "the tail's grant travels to the head";
  auto s2 = m.Install(2, 3);
  ASSERT_TRUE(s2) << "circuit 1 kept the reservation of depth 2 after an Accept of depth 1";
  EXPECT_EQ(s2->depth(), 1u);
  // Accepts of depth 0 and above the grant: dropped, not forwarded; then a good one.
  mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 2), 0), kDown));
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 2), 2), kDown));
  Watch(h, Ms(300));
  for (size_t i = mark; i < h.peer_log(kUp).size(); ++i)
    EXPECT_FALSE(h.peer_log(kUp)[i].msg.has_network() &&
                 h.peer_log(kUp)[i].msg.network().has_accept())
        << "a malformed Accept was forwarded";
  ASSERT_TRUE(m.Accept(*s2, 1)) << "circuit 2 did not survive the malformed Accepts";
  // Circuit 3: no slot left.
  mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(m.SetupOf(3, 1), kUp));
  auto r = AwaitNet(h, kUp, mark, NetworkFrame::kRefuse);
  ASSERT_TRUE(r) << "no Refuse for a circuit the node has no memories for";
  EXPECT_EQ(r->msg.refuse().code(), network::v1::CIRCUIT_ERROR_NORES);
  EXPECT_EQ(r->msg.refuse().at_node(), "iut");
  // The standing CREATEs on L2 ask for the circuits' depths.
  auto c1 = m.DownstreamCreate(*s1);
  auto c2 = m.DownstreamCreate(*s2);
  ASSERT_TRUE(c1 && c2);
  EXPECT_EQ(c1->create().window(), 1u) << "circuit 1's depth is the tail's grant";
  EXPECT_EQ(c2->create().window(), 1u);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).size(), 2u) << Dump(trace);
  for (const auto& f : NetFramesIn(h.peer_log(kDown), NetworkFrame::kSetup))
    EXPECT_NE(f.msg.setup().circuit().number(), 3u) << "refused setup forwarded";
}

// NET-C-14 "A hop that cannot grant depth 1 MUST refuse with NORES, naming
// itself in the detail." NET-C-17 "CircuitRefuse MUST travel to the head,
// every hop uninstalling the circuit and its reservation". With 2 memories
// the first circuit (depth 1, 2 sides) takes both.
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
  EXPECT_TRUE(LinkFramesIn(h.peer_log(kDown), LinkFrame::kAdd).empty())
      << "a CREATE for a circuit that never came up";
}

// NET-C-20 "When the circuit is up at a hop (Accept seen [...]) and the hop is
// the upstream end of a circuit link, it MUST issue one standing CREATE on
// that link (pairs 0): purpose id = the link's label, min_fidelity = the
// link's minimum, priority = NetworkOptions::link_priority, window = the
// circuit's depth, type KEEP [...], partner_type KEEP [...]"; NET-C-21 "It MUST
// keep that request's create id and cancel the request (LinkService::Cancel)
// when the circuit goes down at this hop" -- observed as the master's
// QueueCancel{queue_id, origin_create_id, deadline_ns} (specs/link.md LINK-48:
// deadline now + d + m, m >= one cycle).
TEST(Net, NET_C_20_StandingCreateOnAcceptCancelledAtTeardown) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto s = m.Install(1, 2);
  ASSERT_TRUE(s) << h.NodeLog();
  ASSERT_EQ(s->depth(), 2u);
  Watch(h, Ms(300));
  EXPECT_TRUE(LinkFramesIn(h.peer_log(kDown), LinkFrame::kAdd).empty())
      << "a CREATE before the circuit was accepted";
  ASSERT_TRUE(m.Accept(*s, 2));
  auto add = m.DownstreamCreate(*s);
  ASSERT_TRUE(add) << "no standing CREATE (QueueAdd) on L2 after the Accept\n" << h.NodeLog();
  const auto& c = add->create();
  EXPECT_EQ(add->origin(), "iut");
  EXPECT_EQ(c.remote_node(), "peer2");
  EXPECT_EQ(c.pairs(), 0u) << "not a standing request";
  EXPECT_EQ(c.purpose_id(), s->links(1).label());
  EXPECT_NEAR(c.min_fidelity(), kMinL2, 1e-12);
  EXPECT_EQ(c.priority(), 0u) << "NetworkOptions::link_priority defaults to 0";
  EXPECT_EQ(c.window(), 2u) << "window = the circuit's depth";
  EXPECT_EQ(c.type(), link::v1::REQUEST_TYPE_KEEP);
  EXPECT_EQ(c.partner_type(), link::v1::REQUEST_TYPE_KEEP);
  EXPECT_FALSE(c.has_z_probability());
  Watch(h, Ms(300));
  EXPECT_EQ(LinkFramesIn(h.peer_log(kDown), LinkFrame::kAdd).size(), 1u)
      << "more than one CREATE for one circuit link";
  const size_t down_mark = h.peer_log(kDown).size();
  const uint64_t sent = h.NowNs();
  ASSERT_TRUE(h.SendNet(TeardownFrame(Key("peer", 1), network::v1::CIRCUIT_ERROR_CLOSED), kUp));
  auto cancel = AwaitLink(h, kDown, down_mark, LinkFrame::kCancel);
  ASSERT_TRUE(cancel) << "the standing CREATE was not cancelled at teardown";
  EXPECT_EQ(cancel->msg.link(), "L2");
  EXPECT_EQ(cancel->msg.cancel().queue_id(), add->queue_id());
  EXPECT_EQ(cancel->msg.cancel().origin_create_id(), add->origin_create_id());
  EXPECT_GE(cancel->msg.cancel().deadline_ns(), sent + model::CycleNs(model::LinkParams{}))
      << "LINK-48: deadline now + d + m, m at least one cycle";
  QNET_STOP_AND_TRACE(h, trace);
}

// NET-C-20 "[...] type KEEP (MEASURE if this node measures), partner_type KEEP
// (MEASURE if the downstream node measures), and for a measure circuit its
// basis choice and Z probability." On a measure circuit the intermediate still
// keeps (only the ends measure, section 2 terms) and reserves 2 x depth
// (NET-C-11); the tail peer2 measures.
TEST(Net, NET_C_20_MeasureCircuitAsksTheTailToMeasure) {
  Intermediate m(4);
  QNET_START_MID(m);
  Harness& h = m.h();
  NetworkFrame setup = m.SetupOf(1, 4);
  setup.mutable_setup()->mutable_measure()->set_basis(link::v1::BASIS_CHOICE_XZ);
  setup.mutable_setup()->mutable_measure()->set_z_probability(0.7);
  auto s = m.Send(setup);
  ASSERT_TRUE(s) << h.NodeLog();
  EXPECT_EQ(s->depth(), 2u) << "an intermediate keeps both sides: 4 memories give depth 2";
  EXPECT_TRUE(MessageDifferencer::Equals(s->measure(), setup.setup().measure()));
  ASSERT_TRUE(m.Accept(*s));
  auto add = m.DownstreamCreate(*s);
  ASSERT_TRUE(add) << h.NodeLog();
  const auto& c = add->create();
  EXPECT_EQ(c.pairs(), 0u);
  EXPECT_EQ(c.window(), 2u);
  EXPECT_EQ(c.type(), link::v1::REQUEST_TYPE_KEEP) << "the intermediate keeps its qubit";
  EXPECT_EQ(c.partner_type(), link::v1::REQUEST_TYPE_MEASURE) << "the tail measures";
  EXPECT_EQ(c.basis(), link::v1::BASIS_CHOICE_XZ);
  ASSERT_TRUE(c.has_z_probability());
  EXPECT_DOUBLE_EQ(c.z_probability(), 0.7);
  QNET_STOP_AND_TRACE(h, trace);
}

// NET-C-22 "Each side MUST hold its link pairs in the order the link
// delivered them"; NET-C-27 "An intermediate holding a pair on each side of a
// circuit MUST BellMeasure the oldest of each at once (request ids odd)";
// NET-C-28 "When it sends the BellMeasure it MUST give both slots back with
// MemoryPool::Return: the measurement empties them at once (PHYS-M7) [...], so
// the link ends (which hear it, LINK-46) generate again without waiting for the
// outcome": after the first BellMeasure, before its result, L2 generates again. Depth 2: each link
// end asks for 2 pairs (LINK-49); with both L2 pairs held, the L2 end sends nothing (LINK-46) until
// a swap returns a slot; the L pairs, heralded one at a time, are each
// swapped at once with the oldest L2 pair; no Free of a swapped slot.
TEST(Net, NET_C_27_IntermediateSwapsTheOldestPairsAtOnce) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1, 2);
  ASSERT_TRUE(setup) << h.NodeLog();
  ASSERT_EQ(setup->depth(), 2u);
  ASSERT_TRUE(m.HeadCreate(1, *setup, 2));
  size_t cur_d = 0, cur_u = 0;
  auto gd = NextGenerateOn(h, &cur_d, "L2");
  auto gu = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gd && gu) << "no Generate on " << (gd ? "L" : "L2") << "\n" << h.NodeLog();
  const std::vector<uint32_t> slots_d = SlotsOf(gd->msg), slots_u = SlotsOf(gu->msg);
  ASSERT_EQ(slots_d.size(), 2u) << gd->msg.DebugString();
  ASSERT_EQ(slots_u.size(), 2u) << gu->msg.DebugString();
  // Both L2 pairs: the window of L2 is full.
  auto hd = h.HeraldsFor(gd->msg, 2, 1);
  hd[0].set_bell_state(kPsiPlus);
  hd[1].set_bell_state(kPsiMinus);
  ASSERT_TRUE(h.SendHeralds(hd));
  size_t cur_bsm = h.physics_log().size();
  Watch(h, Ms(300));
  for (size_t i = cur_bsm; i < h.physics_log().size(); ++i) {
    const auto& msg = h.physics_log()[i].msg;
    EXPECT_FALSE(msg.has_generate() && msg.generate().link() == "L2" &&
                 !SlotsOf(msg.generate()).empty())
        << "LINK-46: a Generate on L2 with both of its window's pairs held";
    EXPECT_FALSE(msg.has_bell_measure()) << "a swap without an L pair";
  }
  // The L pairs, one herald at a time: each is swapped with the oldest L2 pair.
  auto hu = h.HeraldsFor(gu->msg, 2, 1);
  const BellState outcome[2] = {kPhiMinus, kPsiPlus};
  std::set<uint64_t> ids;
  std::set<uint32_t> swapped;
  for (int j = 0; j < 2; ++j) {
    SCOPED_TRACE("pair " + std::to_string(j + 1));
    hu[j].set_time_ns(h.NowNs());
    ASSERT_TRUE(h.SendHerald(hu[j]));
    auto bsm = NextBellMeasure(h, &cur_bsm);
    ASSERT_TRUE(bsm) << "no BellMeasure after L pair " << j + 1 << "\n" << h.NodeLog();
    const auto& b = bsm->msg.bell_measure();
    EXPECT_EQ(std::set<uint32_t>({b.slot_a(), b.slot_b()}),
              std::set<uint32_t>({slots_u[j], slots_d[j]}))
        << "not the oldest pair of each side";
    EXPECT_EQ(b.request_id() % 2, 1u) << "network-layer BellMeasure ids are odd";
    EXPECT_TRUE(ids.insert(b.request_id()).second) << "request id reused";
    swapped.insert(b.slot_a());
    swapped.insert(b.slot_b());
    if (j == 0) {
      auto again = NextGenerateOn(h, &cur_d, "L2");
      ASSERT_TRUE(again) << "L2 waits for the swap's outcome to generate again";
      EXPECT_FALSE(SlotsOf(again->msg).empty()) << again->msg.DebugString();
    }
    ASSERT_TRUE(SendBellMeasureResult(h, b.request_id(), outcome[j]));
  }
  // NET-C-28: L generates again too.
  auto gu2 = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gu2) << "L did not generate again after the swaps";
  Watch(h, Ms(100));
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& f : FreesIn(h.physics_log()))
    EXPECT_FALSE(swapped.count(f.msg)) << "Free of slot " << f.msg << " emptied by the BSM";
  // NET-C-51: one SwapEvent per swap.
  std::vector<results::v1::SwapEvent> swaps;
  for (const auto& r : trace)
    if (r.has_swap_event()) swaps.push_back(r.swap_event());
  ASSERT_EQ(swaps.size(), 2u) << Dump(trace);
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(Str(swaps[j].upstream()), Str(Pair("peer", "iut", j + 1)));
    EXPECT_EQ(Str(swaps[j].downstream()), Str(Pair("iut", "peer2", j + 1)));
    EXPECT_EQ(swaps[j].outcome(), outcome[j]);
  }
}

// NET-C-29 (the swap is remembered under the downstream pair's id until a
// Track names it); NET-C-30a "An intermediate MUST, for a Track naming the
// downstream pair d of a swap it made with upstream pair u and outcome m:
// combine bell := bell xor (m xor bell(d)), oldest := the earliest of oldest
// and both herald times, product := product x w(d) with w = (4F - 1)/3 of d's
// estimated fidelity clamped to [0, 1], set pair := u, forward it upstream and
// forget the swap. A Track naming a pair it holds but has not swapped yet
// [...] MUST wait". Four pairs at depth 1: Tracks after the swap, before the
// upstream pair exists, and two carrying a downstream part already (one of
// them sent before the swap). Deliver and ReleasePair pass on to the tail,
// DeliverAck and DeliverNack to the head, unchanged (NET-C-34, -36, -37, -38).
TEST(Net, NET_C_30a_IntermediateFoldsItsSwapIntoTheTrack) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  auto add2 = m.DownstreamCreate(*setup);
  ASSERT_TRUE(add2);
  const double w = WernerOf(add2->estimated_fidelity());
  ASSERT_TRUE(m.HeadCreate(1, *setup, 1));
  const CircuitKey key = Key("peer", 1);
  enum When { kAfterSwap, kBeforeUpstream };
  struct Case {
    BellState u, d, outcome;
    When when;
    BellState in_bell;
    bool in_oldest;  // the Track comes with an older herald time from further down
    double in_product;
  };
  const Case cases[] = {
      {kPhiMinus, kPsiPlus, kPsiMinus, kAfterSwap, kPhiPlus, false, 1.0},
      {kPsiMinus, kPhiPlus, kPhiMinus, kBeforeUpstream, kPhiPlus, false, 1.0},
      {kPhiPlus, kPsiMinus, kPsiPlus, kBeforeUpstream, kPhiMinus, true, 0.25},
      {kPsiPlus, kPhiMinus, kPhiPlus, kAfterSwap, kPsiMinus, true, 0.5},
  };
  size_t cur_d = 0, cur_u = 0, cur_bsm = 0;
  for (uint64_t s = 1; s <= 4; ++s) {
    SCOPED_TRACE("pair " + std::to_string(s));
    const Case& cs = cases[s - 1];
    auto gd = NextGenerateOn(h, &cur_d, "L2");
    auto gu = NextGenerateOn(h, &cur_u, "L");
    ASSERT_TRUE(gd && gu) << "no Generate on " << (gd ? "L" : "L2") << "\n" << h.NodeLog();
    const link::v1::PairId d = Pair("iut", "peer2", s), u = Pair("peer", "iut", s);
    const uint64_t in_oldest = cs.in_oldest ? h.NowNs() - 5'000'000 : 0;
    const NetworkFrame track = TrackFrame(key, d, d, cs.in_bell, in_oldest, cs.in_product);
    const size_t up_mark = h.peer_log(kUp).size();
    Herald hd = h.HeraldFor(gd->msg, OUTCOME_SUCCESS, s);
    hd.set_bell_state(cs.d);
    ASSERT_TRUE(h.SendHerald(hd));
    if (cs.when == kBeforeUpstream) {
      Watch(h, Ms(50));
      ASSERT_TRUE(h.SendNet(track, kDown));
      Watch(h, Ms(200));
    }
    Herald hu = h.HeraldFor(gu->msg, OUTCOME_SUCCESS, s);
    hu.set_bell_state(cs.u);
    ASSERT_TRUE(h.SendHerald(hu));
    auto bsm = NextBellMeasure(h, &cur_bsm);
    ASSERT_TRUE(bsm) << "no BellMeasure\n" << h.NodeLog();
    EXPECT_EQ(
        std::set<uint32_t>({bsm->msg.bell_measure().slot_a(), bsm->msg.bell_measure().slot_b()}),
        std::set<uint32_t>({SlotsOf(gu->msg)[0], SlotsOf(gd->msg)[0]}));
    for (size_t i = up_mark; i < h.peer_log(kUp).size(); ++i)
      EXPECT_FALSE(h.peer_log(kUp)[i].msg.has_network() &&
                   h.peer_log(kUp)[i].msg.network().has_track())
          << "a Track forwarded before the swap's outcome was known";
    ASSERT_TRUE(SendBellMeasureResult(h, bsm->msg.bell_measure().request_id(), cs.outcome));
    if (cs.when == kAfterSwap) {
      Watch(h, Ms(20));
      ASSERT_TRUE(h.SendNet(track, kDown));
    }
    auto fwd = AwaitNet(h, kUp, up_mark, NetworkFrame::kTrack);
    ASSERT_TRUE(fwd) << "the Track was not forwarded to the head\n" << h.NodeLog();
    const auto& t = fwd->msg.track();
    EXPECT_TRUE(SameKey(t.circuit(), key));
    EXPECT_EQ(Str(t.pair()), Str(u)) << "pair := the upstream pair of the swap";
    EXPECT_EQ(Str(t.tail_pair()), Str(d)) << "the tail pair travels unchanged";
    EXPECT_EQ(t.bell(), BellXor(cs.in_bell, BellXor(cs.outcome, cs.d)))
        << "bell xor (outcome xor downstream Bell state)";
    uint64_t oldest = std::min(hu.time_ns(), hd.time_ns());
    if (in_oldest != 0) oldest = std::min(oldest, in_oldest);
    EXPECT_EQ(t.oldest_herald_ns(), oldest);
    EXPECT_NEAR(t.fidelity_product(), cs.in_product * w, 1e-12);
    EXPECT_FALSE(t.discard());
    // Deliver, ReleasePair down; DeliverAck, DeliverNack up: forwarded unchanged.
    const size_t down2 = h.peer_log(kDown).size(), up2 = h.peer_log(kUp).size();
    const NetworkFrame down_frame =
        s == 4 ? ReleaseFrame(key, d) : DeliverFrame(key, s, d, h.NowNs());
    ASSERT_TRUE(h.SendNet(down_frame, kUp));
    auto f = AwaitNet(h, kDown, down2, down_frame.body_case());
    ASSERT_TRUE(f) << "not forwarded to the tail: " << down_frame.DebugString();
    EXPECT_TRUE(MessageDifferencer::Equals(f->msg, down_frame)) << f->msg.DebugString();
    if (s < 4) {
      const NetworkFrame up_frame = s == 3 ? DeliverNackFrame(key, s) : DeliverAckFrame(key, s);
      ASSERT_TRUE(h.SendNet(up_frame, kDown));
      auto a = AwaitNet(h, kUp, up2, up_frame.body_case());
      ASSERT_TRUE(a) << "not forwarded to the head: " << up_frame.DebugString();
      EXPECT_TRUE(MessageDifferencer::Equals(a->msg, up_frame)) << a->msg.DebugString();
    }
  }
  Watch(h, Ms(100));
  const uint64_t end = h.NowNs();
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(NetFramesIn(h.peer_log(kUp), NetworkFrame::kTrack).size(), 4u)
      << "one Track per pair: the swap is forgotten once forwarded";
  EXPECT_EQ(CountDrops(Until(trace, end)), 0) << Dump(trace);
}

// NET-C-30a "[...] A Track naming a pair it holds but has not swapped yet
// (held, or in a Bell measurement whose result has not come back), or has not
// heard of yet, MUST wait (at most deliver_wait for one it has not heard of,
// then NET-C-30b applies)." A pair whose BellMeasure is running is held and
// not swapped yet: its Track must wait for the BellMeasureResult, however long
// that takes (here 300 ms, above the 50 ms deliver_wait), and then be
// forwarded; no ReleasePair.
TEST(Net, NET_C_30a_TrackWaitsWhileTheBellMeasureRuns) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  ASSERT_TRUE(m.HeadCreate(1, *setup, 1));
  const CircuitKey key = Key("peer", 1);
  size_t cur_d = 0, cur_u = 0, cur_bsm = 0;
  auto gd = NextGenerateOn(h, &cur_d, "L2");
  auto gu = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gd && gu) << h.NodeLog();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gd->msg, OUTCOME_SUCCESS, 1)));
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gu->msg, OUTCOME_SUCCESS, 1)));
  auto bsm = NextBellMeasure(h, &cur_bsm);
  ASSERT_TRUE(bsm) << h.NodeLog();
  const link::v1::PairId d = Pair("iut", "peer2", 1);
  const size_t up_mark = h.peer_log(kUp).size(), down_mark = h.peer_log(kDown).size();
  ASSERT_TRUE(h.SendNet(TrackFrame(key, d, d), kDown));
  Watch(h, Ms(300));
  ASSERT_TRUE(SendBellMeasureResult(h, bsm->msg.bell_measure().request_id(), kPhiPlus));
  auto fwd = AwaitNet(h, kUp, up_mark, NetworkFrame::kTrack);
  EXPECT_TRUE(fwd) << "the Track of a pair in a running swap was not forwarded";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(NetFramesIn({h.peer_log(kDown).begin() + down_mark, h.peer_log(kDown).end()},
                          NetworkFrame::kRelease)
                  .empty())
      << "ReleasePair for a pair the node held (its swap was running)";
}

// NET-C-30b "A Track whose pair this node does not have (it expired or was
// never heard of in time) MUST be answered with ReleasePair{tail_pair}
// downstream and dropped"; NET-C-38b "[...] or given up by NET-C-30b, MUST be
// freed at once if its OK comes later, so that it does not hold the side's
// window." The tail tracks L2 pair 1 before its herald; after the wait
// (deliver_wait, NET-C-30a) the node answers ReleasePair and nothing goes to
// the head; the pair, heralded later, is freed at once and never swapped.
TEST(Net, NET_C_30b_TrackForAPairNotHeardOfIsReleased) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  const CircuitKey key = Key("peer", 1);
  size_t cur_d = 0, cur_u = 0;
  auto gd = NextGenerateOn(h, &cur_d, "L2");
  ASSERT_TRUE(gd);
  const link::v1::PairId d1 = Pair("iut", "peer2", 1);
  const size_t down_mark = h.peer_log(kDown).size(), up_mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendNet(TrackFrame(key, d1, d1), kDown));
  auto rel = AwaitNet(h, kDown, down_mark, NetworkFrame::kRelease);
  ASSERT_TRUE(rel) << "no ReleasePair for a Track of a pair never heard of";
  EXPECT_TRUE(SameKey(rel->msg.release().circuit(), key));
  EXPECT_EQ(Str(rel->msg.release().tail_pair()), Str(d1));
  // The pair's herald comes after all: freed at once.
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gd->msg, OUTCOME_SUCCESS, 1)));
  auto freed = AwaitPhysics(h, phys, [&](const NodeToWorld& n) {
    return n.has_free() && n.free().slot() == SlotsOf(gd->msg)[0];
  });
  EXPECT_TRUE(freed) << "a pair given up by its Track was not freed on arrival";
  // An L pair now finds no L2 pair to swap with.
  ASSERT_TRUE(m.HeadCreate(1, *setup, 1));
  auto gu = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gu);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gu->msg, OUTCOME_SUCCESS, 1)));
  Watch(h, Ms(300));
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& msg : h.physics_log())
    EXPECT_FALSE(msg.msg.has_bell_measure()) << "a given-up pair was swapped";
  for (size_t i = up_mark; i < h.peer_log(kUp).size(); ++i)
    EXPECT_FALSE(h.peer_log(kUp)[i].msg.has_network() &&
                 h.peer_log(kUp)[i].msg.network().has_track())
        << "a Track forwarded for a pair the node does not have";
}

// NET-C-26 "A link pair reported EXPIRED [...] that the node still holds
// unswapped MUST be freed. If the node had swapped it already, the end-to-end
// pair it was part of is lost: for an expired downstream pair the node MUST
// send Track{pair = the swap's upstream pair, discard} upstream [...]". The
// tail's link end (peer2) expires a swapped L2 pair; the head's (peer)
// expires an L pair the node holds unswapped (specs/link.md LINK-14: the
// node reports the pairs EXPIRED on a valid Expire).
TEST(Net, NET_C_26_ExpiredLinkPairsAreFreedOrDiscarded) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1, 2);
  ASSERT_TRUE(setup) << h.NodeLog();
  auto add2 = m.DownstreamCreate(*setup);
  ASSERT_TRUE(add2);
  ASSERT_TRUE(m.HeadCreate(1, *setup, 2));
  const CircuitKey key = Key("peer", 1);
  size_t cur_d = 0, cur_u = 0, cur_bsm = 0;
  auto gd = NextGenerateOn(h, &cur_d, "L2");
  auto gu = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gd && gu) << h.NodeLog();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gd->msg, OUTCOME_SUCCESS, 1)));  // d1, one pair only
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gu->msg, OUTCOME_SUCCESS, 1)));  // u1
  auto bsm = NextBellMeasure(h, &cur_bsm);
  ASSERT_TRUE(bsm) << h.NodeLog();
  ASSERT_TRUE(SendBellMeasureResult(h, bsm->msg.bell_measure().request_id(), kPhiPlus));
  Watch(h, Ms(100));
  // The swapped L2 pair d1 expires at peer2.
  size_t up_mark = h.peer_log(kUp).size();
  ASSERT_TRUE(h.SendPeer(ExpireFrame(add2->queue_id(), "iut", 1, 1, "L2"), kDown));
  auto discard = AwaitNet(h, kUp, up_mark, NetworkFrame::kTrack);
  ASSERT_TRUE(discard) << "no discarding Track for a swapped pair that expired\n" << h.NodeLog();
  EXPECT_TRUE(SameKey(discard->msg.track().circuit(), key));
  EXPECT_EQ(Str(discard->msg.track().pair()), Str(Pair("peer", "iut", 1)));
  EXPECT_TRUE(discard->msg.track().discard());
  // An unswapped L pair expires at peer: freed.
  auto gu2 = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gu2) << "L did not generate again";
  const uint32_t u2_slot = SlotsOf(gu2->msg)[0];
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gu2->msg, OUTCOME_SUCCESS, 2)));
  Watch(h, Ms(100));
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "peer", 2, 2, "L"), kUp));
  auto freed = AwaitPhysics(
      h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == u2_slot; });
  EXPECT_TRUE(freed) << "an expired unswapped pair (slot " << u2_slot << ") was not freed";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_EXPIRED).size(), 2u) << Dump(trace);
}

// NET-C-40 "A teardown MUST be forwarded from where it starts towards both
// ends"; NET-C-41 "Every node MUST free the circuit's held pairs and its
// reservation when the circuit goes down, and cancel its CREATE (NET-C-21)".
// Circuit 1: the node holds an L2 pair when the head tears down: forwarded to
// peer2 (not back), Free of that slot, QueueCancel of its L2 CREATE. Circuit
// 2: the tail tears down: forwarded to the head, its CREATE cancelled. Frames
// of a torn-down circuit are dropped (NET-C-60), not forwarded.
TEST(Net, NET_C_40_TeardownIsForwardedAndHeldPairsAreFreed) {
  Intermediate m(4);
  QNET_START_MID(m);
  Harness& h = m.h();
  auto s1 = m.Establish(1);
  ASSERT_TRUE(s1) << h.NodeLog();
  auto s2 = m.Establish(2);
  ASSERT_TRUE(s2);
  auto c1 = m.DownstreamCreate(*s1);
  auto c2 = m.DownstreamCreate(*s2);
  ASSERT_TRUE(c1 && c2);
  // Herald L2 batches until one of circuit 1 has given a pair.
  std::map<uint64_t, std::vector<uint32_t>> held;  // queue id -> slots of held L2 pairs
  size_t cur = 0;
  uint64_t seq = 0;
  while (held[c1->queue_id()].empty()) {
    auto g = NextGenerateOn(h, &cur, "L2");
    ASSERT_TRUE(g) << "no Generate on L2 for circuit 1\n" << h.NodeLog();
    ASSERT_TRUE(g->msg.queue_id() == c1->queue_id() || g->msg.queue_id() == c2->queue_id());
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, ++seq)));
    held[g->msg.queue_id()].push_back(SlotsOf(g->msg)[0]);
  }
  Watch(h, Ms(200));
  size_t down_mark = h.peer_log(kDown).size();
  size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(TeardownFrame(Key("peer", 1), network::v1::CIRCUIT_ERROR_CLOSED), kUp));
  auto t = AwaitNet(h, kDown, down_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(t) << "the head's Teardown not forwarded to the tail";
  EXPECT_TRUE(SameKey(t->msg.teardown().circuit(), Key("peer", 1)));
  EXPECT_EQ(t->msg.teardown().code(), network::v1::CIRCUIT_ERROR_CLOSED);
  for (uint32_t slot : held[c1->queue_id()]) {
    auto freed = AwaitPhysics(
        h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == slot; });
    EXPECT_TRUE(freed) << "the held L2 pair (slot " << slot << ") not freed on teardown";
  }
  auto cancel1 = AwaitLink(h, kDown, down_mark, LinkFrame::kCancel);
  ASSERT_TRUE(cancel1) << "circuit 1's CREATE not cancelled";
  EXPECT_EQ(cancel1->msg.cancel().queue_id(), c1->queue_id());
  // Circuit 2, from the tail.
  const size_t up_mark = h.peer_log(kUp).size();
  down_mark = h.peer_log(kDown).size();
  phys = h.physics_log().size();
  ASSERT_TRUE(h.SendNet(TeardownFrame(Key("peer", 2), network::v1::CIRCUIT_ERROR_CLOSED), kDown));
  t = AwaitNet(h, kUp, up_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(t) << "the tail's Teardown not forwarded to the head";
  EXPECT_TRUE(SameKey(t->msg.teardown().circuit(), Key("peer", 2)));
  for (uint32_t slot : held[c2->queue_id()]) {
    auto freed = AwaitPhysics(
        h, phys, [&](const NodeToWorld& n) { return n.has_free() && n.free().slot() == slot; });
    EXPECT_TRUE(freed) << "circuit 2's held L2 pair (slot " << slot << ") not freed";
  }
  auto cancel2 = AwaitLink(h, kDown, down_mark, LinkFrame::kCancel);
  ASSERT_TRUE(cancel2) << "circuit 2's CREATE not cancelled";
  EXPECT_EQ(cancel2->msg.cancel().queue_id(), c2->queue_id());
  // Frames of the torn-down circuits: nothing forwarded.
  const size_t up_after = h.peer_log(kUp).size(), down_after = h.peer_log(kDown).size();
  const link::v1::PairId d = Pair("iut", "peer2", 1);
  ASSERT_TRUE(h.SendNet(TrackFrame(Key("peer", 1), d, d), kDown));
  ASSERT_TRUE(h.SendNet(DeliverFrame(Key("peer", 2), 1, d, h.NowNs()), kUp));
  Watch(h, Ms(300));
  QNET_STOP_AND_TRACE(h, trace);
  for (size_t i = up_after; i < h.peer_log(kUp).size(); ++i)
    EXPECT_FALSE(h.peer_log(kUp)[i].msg.has_network() &&
                 KeyOf(h.peer_log(kUp)[i].msg.network()) != nullptr)
        << h.peer_log(kUp)[i].msg.DebugString();
  for (size_t i = down_after; i < h.peer_log(kDown).size(); ++i)
    EXPECT_FALSE(h.peer_log(kDown)[i].msg.has_network() &&
                 KeyOf(h.peer_log(kDown)[i].msg.network()) != nullptr)
        << h.peer_log(kDown)[i].msg.DebugString();
  // Each teardown went one way only.
  for (const auto& f : NetFramesIn(h.peer_log(kUp), NetworkFrame::kTeardown))
    EXPECT_NE(f.msg.teardown().circuit().number(), 1u) << "the head's Teardown echoed back";
  for (const auto& f : NetFramesIn(h.peer_log(kDown), NetworkFrame::kTeardown))
    EXPECT_NE(f.msg.teardown().circuit().number(), 2u) << "the tail's Teardown echoed back";
  EXPECT_GE(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 2u) << Dump(trace);
}

// NET-C-42 "When a link goes down (router on_link_change, [...]) both of its
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
  for (const auto& f : NetFramesIn(h.peer_log(kDown), NetworkFrame::kTeardown))
    EXPECT_NE(f.msg.teardown().circuit().number(), 1u) << "Teardown sent over the failed link";
}

// NET-C-60 "[...] circuit frames naming no installed circuit, or without a
// key, MUST be dropped (UNEXPECTED_FRAME / MALFORMED_FRAME)"; NET-C-61
// "Circuit frames from a neighbour that is not the circuit's upstream
// (Deliver, ReleasePair) or downstream (Accept, Refuse, Track, DeliverAck,
// DeliverNack) neighbour MUST be dropped"; NET-C-65 (each a counted drop, no
// state change: nothing is answered or forwarded, and the circuit still
// works).
TEST(Net, NET_C_61_CircuitFramesForUnknownCircuitsOrFromTheWrongSideAreDropped) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  ASSERT_TRUE(m.Establish(1)) << h.NodeLog();
  Watch(h, Ms(100));
  const size_t up_mark = h.peer_log(kUp).size();
  const size_t down_mark = h.peer_log(kDown).size();
  const CircuitKey unknown = Key("peer", 99), known = Key("peer", 1);
  const link::v1::PairId d = Pair("iut", "peer2", 1), u = Pair("peer", "iut", 1);
  // Unknown circuit: 5 UNEXPECTED_FRAME.
  ASSERT_TRUE(h.SendNet(TrackFrame(unknown, d, d), kDown));
  ASSERT_TRUE(h.SendNet(DeliverFrame(unknown, 1, d, 1), kUp));
  ASSERT_TRUE(h.SendNet(DeliverAckFrame(unknown, 1), kDown));
  ASSERT_TRUE(h.SendNet(DeliverNackFrame(unknown, 1), kDown));
  ASSERT_TRUE(h.SendNet(ReleaseFrame(unknown, d), kUp));
  // The known circuit from the wrong side: 5 more.
  ASSERT_TRUE(h.SendNet(TrackFrame(known, u, d), kUp));
  ASSERT_TRUE(h.SendNet(DeliverFrame(known, 1, d, 1), kDown));
  ASSERT_TRUE(h.SendNet(ReleaseFrame(known, d), kDown));
  ASSERT_TRUE(h.SendNet(DeliverAckFrame(known, 1), kUp));
  ASSERT_TRUE(h.SendNet(DeliverNackFrame(known, 1), kUp));
  // Without a key: MALFORMED_FRAME.
  ASSERT_TRUE(h.SendNet(TrackFrame(network::v1::CircuitKey(), d, d), kDown));
  Watch(h, Ms(400));
  auto forwarded = [](const std::vector<Timed<wire::v1::Frame>>& log, size_t from) {
    int n = 0;
    for (size_t i = from; i < log.size(); ++i)
      n += log[i].msg.has_network() && KeyOf(log[i].msg.network()) != nullptr;
    return n;
  };
  EXPECT_EQ(forwarded(h.peer_log(kUp), up_mark), 0) << "answered or forwarded to the head";
  EXPECT_EQ(forwarded(h.peer_log(kDown), down_mark), 0) << "answered or forwarded to the tail";
  // The circuit still works: a Deliver from the head reaches the tail.
  ASSERT_TRUE(h.SendNet(DeliverFrame(known, 1, d, 1), kUp));
  EXPECT_TRUE(AwaitNet(h, kDown, down_mark, NetworkFrame::kDeliver)) << "circuit 1 affected";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 10u) << Dump(trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).size(), 1u) << Dump(trace);
}

// NET-C-62 "A Track without a pair or tail pair, or with a Bell state that is
// not one, a product outside [0, 1] [...] MUST be dropped (MALFORMED_FRAME); a
// Track naming a pair already waiting for a Track MUST be dropped
// (UNEXPECTED_FRAME)". The waiting Track names an L2 pair the node holds
// unswapped (it waits for the swap, NET-C-30a); after the drops the swap
// still forwards exactly one Track.
TEST(Net, NET_C_62_MalformedTracksAreDropped) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  const CircuitKey key = Key("peer", 1);
  size_t cur_d = 0, cur_u = 0, cur_bsm = 0;
  auto gd = NextGenerateOn(h, &cur_d, "L2");
  ASSERT_TRUE(gd);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gd->msg, OUTCOME_SUCCESS, 1)));
  Watch(h, Ms(100));
  const link::v1::PairId d = Pair("iut", "peer2", 1);
  std::vector<std::pair<NetworkFrame, std::string>> bad;
  NetworkFrame f = TrackFrame(key, d, d);
  f.mutable_track()->clear_pair();
  bad.push_back({f, "no pair"});
  f = TrackFrame(key, d, d);
  f.mutable_track()->clear_tail_pair();
  bad.push_back({f, "no tail pair"});
  bad.push_back({TrackFrame(key, d, d, physical::v1::BELL_STATE_UNSPECIFIED), "bell UNSPECIFIED"});
  bad.push_back({TrackFrame(key, d, d, static_cast<BellState>(9)), "bell 9"});
  bad.push_back({TrackFrame(key, d, d, kPhiPlus, 0, 1.5), "product 1.5"});
  bad.push_back({TrackFrame(key, d, d, kPhiPlus, 0, -0.1), "product -0.1"});
  bad.push_back({TrackFrame(key, d, d, kPhiPlus, 0, std::nan("")), "product NaN"});
  const size_t up_mark = h.peer_log(kUp).size();
  for (const auto& [frame, what] : bad) ASSERT_TRUE(h.SendNet(frame, kDown)) << what;
  ASSERT_TRUE(h.SendNet(TrackFrame(key, d, d), kDown));  // waits for the swap
  ASSERT_TRUE(h.SendNet(TrackFrame(key, d, d), kDown));  // already waiting
  Watch(h, Ms(300));
  ASSERT_TRUE(m.HeadCreate(1, *setup, 1));
  auto gu = NextGenerateOn(h, &cur_u, "L");
  ASSERT_TRUE(gu);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(gu->msg, OUTCOME_SUCCESS, 1)));
  auto bsm = NextBellMeasure(h, &cur_bsm);
  ASSERT_TRUE(bsm);
  ASSERT_TRUE(SendBellMeasureResult(h, bsm->msg.bell_measure().request_id(), kPhiPlus));
  auto fwd = AwaitNet(h, kUp, up_mark, NetworkFrame::kTrack);
  ASSERT_TRUE(fwd) << "the waiting Track was lost";
  Watch(h, Ms(200));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(NetFramesIn(h.peer_log(kUp), NetworkFrame::kTrack).size(), 1u);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).size(), bad.size())
      << Dump(trace);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
}

// NET-C-12 "A CircuitSetup whose path and links disagree, that visits a node
// twice, that was not sent by this node's predecessor on the path, names
// another link, or carries a label below kFirstNetworkLabel or in use, or a
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
// the link's 0.9 (LINK-02: UNSUPPORTED at once): at the Accept, when the node
// issues its CREATE (NET-C-20), it tears the circuit down towards both ends
// (NET-C-40).
TEST(Net, NET_C_24_UnsupportedCreateTearsTheCircuitDown) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  NetworkFrame setup = m.SetupOf(1);
  setup.mutable_setup()->mutable_links(1)->set_min_fidelity(0.99);
  auto s = m.Send(setup);
  ASSERT_TRUE(s) << h.NodeLog();
  const size_t up_mark = h.peer_log(kUp).size();
  const size_t down_mark = h.peer_log(kDown).size();
  ASSERT_TRUE(h.SendNet(AcceptFrame(Key("peer", 1)), kDown));
  auto up = AwaitNet(h, kUp, up_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(up) << "no Teardown to the head after an UNSUPPORTED CREATE";
  EXPECT_EQ(up->msg.teardown().code(), network::v1::CIRCUIT_ERROR_LINK_ERROR);
  auto dn = AwaitNet(h, kDown, down_mark, NetworkFrame::kTeardown);
  ASSERT_TRUE(dn) << "no Teardown to the tail after an UNSUPPORTED CREATE";
  EXPECT_EQ(dn->msg.teardown().code(), network::v1::CIRCUIT_ERROR_LINK_ERROR);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_TRUE(LinkFramesIn(h.peer_log(kDown), LinkFrame::kAdd).empty());
}

// NET-C-23 "A CREATE refused at once, or ended by an ERR other than EXPIRED,
// NOTIME, UNSUPPORTED or CREATE, MUST be issued again after create_retry."
// peer2 (L2's non-master end) refuses the node's QueueAdd (LINK-40; the node
// reports REJECTED, LINK-13): a new standing CREATE with the same label and
// window follows.
TEST(Net, NET_C_23_RejectedCreateIsReissued) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  auto setup = m.Establish(1);
  ASSERT_TRUE(setup) << h.NodeLog();
  auto add = m.DownstreamCreate(*setup);
  ASSERT_TRUE(add) << "no CREATE on L2";
  const size_t after = h.peer_log(kDown).size();
  ASSERT_TRUE(h.SendPeer(RejectFrame(add->queue_id(), add->origin_create_id(),
                                     link::v1::ERROR_CODE_REJECTED, "harness says no", "L2"),
                         kDown));
  // If the item is already in a batch, the refusal takes effect when the batch
  // ends (LINK-23): end every batch of the refused item IDLE.
  std::optional<Timed<LinkFrame>> again;
  size_t cur = 0;
  const auto end = std::chrono::steady_clock::now() + kWait;
  while (!again && std::chrono::steady_clock::now() < end) {
    if (auto g = NextGenerateOn(h, &cur, "L2", Ms(20))) {
      if (g->msg.queue_id() == add->queue_id()) {
        ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, physical::v1::OUTCOME_IDLE, 0)));
      }
    }
    again = AwaitLink(h, kDown, after, LinkFrame::kAdd, Ms(20));
  }
  ASSERT_TRUE(again) << "the refused CREATE was not issued again";
  EXPECT_EQ(again->msg.add().create().purpose_id(), setup->links(1).label());
  EXPECT_EQ(again->msg.add().create().pairs(), 0u);
  EXPECT_EQ(again->msg.add().create().window(), setup->depth());
  EXPECT_GT(again->msg.add().queue_id(), add->queue_id());
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_REJECTED).size(), 1u) << Dump(trace);
}

// NET-C-25 "A link OK whose label belongs to no installed circuit MUST be
// released (physical Free for a kept qubit) and counted as a drop
// (NO_CONSUMER)." The harness (L's master) queues a standing request with a
// network label no circuit has.
TEST(Net, NET_C_25_PairForNoCircuitIsFreed) {
  Intermediate m;
  QNET_START_MID(m);
  Harness& h = m.h();
  const size_t phys = h.physics_log().size();
  ASSERT_TRUE(h.SendPeer(
      CircuitQueueAdd(1, "peer", "iut", kFirstLabel + 999, 0.8, h.NowNs() + 3'000'000), kUp));
  auto g = AwaitGenerate(h, phys, "L");
  ASSERT_TRUE(g && !SlotsOf(g->msg).empty()) << "no Generate for the harness's pair\n"
                                             << h.NodeLog();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  auto freed = AwaitPhysics(h, phys, [&](const NodeToWorld& n) {
    return n.has_free() && n.free().slot() == SlotsOf(g->msg)[0];
  });
  EXPECT_TRUE(freed) << "pair of no circuit not freed";
  Watch(h, Ms(100));
  const uint64_t end = h.NowNs();
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(Until(trace, end), results::v1::DROP_REASON_NO_CONSUMER).size(), 1u)
      << Dump(trace);
}

}  // namespace
}  // namespace qnet::interop
