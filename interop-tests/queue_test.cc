// specs/link.md section 3 (distributed queue): LINK-17 .. LINK-23, LINK-39,
// LINK-40, with the node under test as master (link a="iut") or as peer
// (a="peer" b="iut") and the harness as the other end.
#include <cmath>
#include <map>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using google::protobuf::util::MessageDifferencer;
using link::v1::Create;
using physical::v1::OUTCOME_SUCCESS;

HarnessOptions AsPeer(HarnessOptions o) {
  o.iut_is_master = false;
  return o;
}

// LINK-17 "The master MUST assign queue ids, 1, 2, 3, ... per link, in the order
// it queues items [...]". Its own CREATEs and the peer's request interleave.
TEST(Link, LINK_17_MasterNumbersItemsInQueueingOrder) {
  std::vector<Request> requests = {Request{.pairs = 1, .start_s = 0},
                                   Request{.pairs = 1, .start_s = 0.2}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  auto a = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(a);
  h.SleepUntilNs(100'000'000);
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(31, MakeCreate("iut", 1), h.NowNs())));
  auto b = h.ExpectLink(LinkFrame::kAdd, kWait);
  auto c = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(b && c);
  EXPECT_EQ(a->msg.add().queue_id(), 1u);
  EXPECT_EQ(a->msg.add().origin(), "iut");
  EXPECT_EQ(b->msg.add().queue_id(), 2u);
  EXPECT_EQ(b->msg.add().origin(), "peer");
  EXPECT_EQ(b->msg.add().origin_create_id(), 31u);
  EXPECT_EQ(c->msg.add().queue_id(), 3u);
  EXPECT_EQ(c->msg.add().origin(), "iut");
  EXPECT_EQ(c->msg.add().origin_create_id(), 2u);
  QNET_STOP_AND_TRACE(h, trace);
}

// LINK-17 "[...] the peer MUST NOT queue an item the master has not announced."
// The node (peer) asks; until the harness announces the item, nothing is served.
TEST(Link, LINK_17_PeerServesNothingUnannounced) {
  Harness h(AsPeer(Options(model::LinkParams{}, {Request{.pairs = 1, .basis = "z"}})));
  QNET_START(h);
  auto req = h.ExpectLink(LinkFrame::kAddRequest, kWait);
  ASSERT_TRUE(req);
  EXPECT_FALSE(h.NextGenerate(Ms(500))) << "the peer served an item the master never announced";
  const auto& r = req->msg.add_request();
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .origin = "iut",
                                   .origin_create_id = r.origin_create_id(),
                                   .create = r.create(),
                                   .eligible_ns = h.NowNs() + 10'000'000})));
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g) << "the announced item was not served";
  EXPECT_EQ(g->msg.queue_id(), 1u);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 1u);
}

// LINK-18 "On a CREATE at the master, the master MUST queue an item with
// eligible time now + 2 d + m and deadline now + max_time (none if max_time is
// 0), and send QueueAdd with every field of the item." d = 2 ms here; m is not
// fixed by the spec beyond LINK-20 (>= one cycle) but is one value per link
// end, so items 1 and 3 (both with max_time) must show the same eligible -
// deadline offset. The node's "now" lies between the request's start-s
// (TOPO-26) and its CREATE record.
TEST(Link, LINK_18_QueueAddCarriesTheItemEligibleOneRoundTripAhead) {
  model::LinkParams link;
  link.classical_delay_us = 2000;
  const int64_t d = model::DelayNs(link);
  std::vector<Request> requests = {
      Request{.pairs = 5, .basis = "x", .max_time_s = 2, .purpose = 4},
      Request{.pairs = 1, .type = "keep", .priority = 2, .purpose = 3, .start_s = 0.1},
      Request{.pairs = 2, .max_time_s = 2, .purpose = 5, .start_s = 0.2}};
  Harness h(Options(link, requests));
  QNET_START(h);
  std::vector<link::v1::QueueAdd> adds;
  for (int i = 0; i < 3; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    adds.push_back(add->msg.add());
  }
  QNET_STOP_AND_TRACE(h, trace);
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 3u);
  const int64_t m = MarginOf(adds[0], 2'000'000'000, link);
  ::testing::Test::RecordProperty("margin_ns", std::to_string(m));
  EXPECT_GE(m, model::CycleNs(link) - 1) << "m below one cycle (LINK-20)";
  EXPECT_EQ(MarginOf(adds[2], 2'000'000'000, link), m)
      << "m differs between two CREATEs of one link end";
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("item " + std::to_string(i + 1));
    const auto& add = adds[i];
    EXPECT_EQ(add.queue_id(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(add.origin(), "iut");
    EXPECT_EQ(add.origin_create_id(), creates[i].create_id());
    EXPECT_TRUE(MessageDifferencer::Equals(add.create(), creates[i].create()))
        << add.create().DebugString() << " vs " << creates[i].create().DebugString();
    const uint64_t now = add.eligible_ns() - 2 * d - m;
    EXPECT_GE(now, static_cast<uint64_t>(requests[i].start_s * 1e9))
        << "CREATE before its start time";
    EXPECT_LE(now, creates[i].time_ns()) << "CREATE after it was traced";
    EXPECT_EQ(add.deadline_ns(), requests[i].max_time_s > 0 ? now + 2'000'000'000 : 0);
    EXPECT_EQ(add.alpha(), 0.0) << "werner: ChooseAlpha gives 0";
    EXPECT_DOUBLE_EQ(add.estimated_fidelity(), link.fidelity);
    EXPECT_EQ(add.virtual_start(), 0u) << "nothing was served yet";
  }
}

// LINK-19 "On a CREATE at the peer, the peer MUST send QueueAddRequest (create
// id, CREATE, create time)." The create time lies between the request's start-s
// and the CREATE record, and the frame left no earlier (LINK-W6).
TEST(Link, LINK_19_PeerSendsQueueAddRequest) {
  Request r{
      .pairs = 4, .basis = "x", .max_time_s = 3, .priority = 1, .purpose = 9, .start_s = 0.05};
  Harness h(AsPeer(Options(model::LinkParams{}, {r})));
  QNET_START(h);
  auto req = h.ExpectLink(LinkFrame::kAddRequest, kWait);
  ASSERT_TRUE(req);
  QNET_STOP_AND_TRACE(h, trace);
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 1u);
  const auto& q = req->msg.add_request();
  EXPECT_EQ(req->msg.link(), "L");
  EXPECT_EQ(q.origin_create_id(), creates[0].create_id());
  EXPECT_EQ(q.origin_create_id(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(q.create(), creates[0].create()))
      << q.create().DebugString();
  EXPECT_EQ(q.create().pairs(), 4u);
  EXPECT_EQ(q.create().priority(), 1u);
  EXPECT_EQ(q.create().purpose_id(), 9u);
  EXPECT_EQ(q.create().remote_node(), "peer");
  EXPECT_EQ(q.create().max_time().seconds(), 3);
  EXPECT_GE(q.create_time_ns(), 50'000'000u);
  EXPECT_LE(q.create_time_ns(), creates[0].time_ns());
  EXPECT_LE(q.create_time_ns() + model::DelayNs(model::LinkParams{}), req->at_ns);
}

// LINK-39 "[...] otherwise it MUST queue it with eligible time now + d + m and
// deadline create time + max_time (create time capped at the master's now) and
// answer QueueAdd." The master's now lies between the harness's send time and
// the QueueAdd's arrival minus d (LINK-W6); m is measured from the master's own
// CREATE in the same run.
TEST(Link, LINK_39_PeerRequestIsQueuedOneWayPlusMarginAhead) {
  model::LinkParams link;
  link.classical_delay_us = 5000;
  Harness h(Options(link, {Request{.pairs = 1, .max_time_s = 10}}));
  QNET_START(h);
  auto own = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(own);
  const uint64_t d = model::DelayNs(link);
  Create c = MakeCreate("iut", 3);
  c.mutable_max_time()->set_seconds(1);
  const uint64_t sent1 = h.NowNs();
  const uint64_t created1 = sent1 - d;  // as if it had travelled d
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(5, c, created1)));
  auto add1 = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add1);
  const uint64_t sent2 = h.NowNs();
  ASSERT_TRUE(
      h.SendPeer(AddRequestFrame(6, c, sent2 + 10'000'000'000ull)));  // create time in the future
  auto add2 = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add2);
  QNET_STOP_AND_TRACE(h, trace);
  const uint64_t m = MarginOf(own->msg.add(), 10'000'000'000ull, link);
  const auto& a1 = add1->msg.add();
  EXPECT_EQ(a1.queue_id(), 2u);
  EXPECT_EQ(a1.origin(), "peer");
  EXPECT_EQ(a1.origin_create_id(), 5u);
  EXPECT_TRUE(MessageDifferencer::Equals(a1.create(), c));
  EXPECT_GE(a1.eligible_ns() + 2, sent1 + d + m);
  EXPECT_LE(a1.eligible_ns(), add1->at_ns + m + 2);  // master's now <= arrival - d
  EXPECT_EQ(a1.deadline_ns(), created1 + 1'000'000'000);
  const auto& a2 = add2->msg.add();
  EXPECT_EQ(a2.queue_id(), 3u);
  EXPECT_GE(a2.deadline_ns(), sent2 + 1'000'000'000)
      << "create time must be capped at the master's now";
  EXPECT_LE(a2.deadline_ns(), add2->at_ns - d + 1'000'000'000);
}

// LINK-39 "The master MUST [...] refuse it with QueueReject{origin_create_id,
// code, detail, queue_id = 0} [...] if the queue is full". 256 own CREATEs fill
// the queue (LINK-03); a QueueAddRequest is then refused, and none is queued.
TEST(Link, LINK_39_FullQueueRefusesPeerRequests) {
  std::vector<Request> requests(256, Request{.pairs = 1});
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  for (int i = 0; i < 256; ++i) ASSERT_TRUE(h.ExpectLink(LinkFrame::kAdd, kWait)) << i;
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(8, MakeCreate("iut", 1), h.NowNs())));
  auto r = h.ExpectLink(LinkFrame::kReject, kWait);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->msg.reject().queue_id(), 0u);
  EXPECT_EQ(r->msg.reject().origin_create_id(), 8u);
  EXPECT_NE(r->msg.reject().code(), link::v1::ERROR_CODE_UNSPECIFIED);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(LinkFramesIn(h.peer_log(), LinkFrame::kAdd).size(), 256u);
}

// LINK-20 "m MUST be at least one cycle [...]". A link with a 20 ms attempt
// cycle: the QueueAdd's eligible time is at least 2 d + one cycle after the
// CREATE (now = deadline - max_time), and the first Generate comes no earlier.
TEST(Link, LINK_20_MarginIsAtLeastOneCycle) {
  model::LinkParams link;
  link.attempt_us = 20000;
  link.classical_delay_us = 1000;
  Harness h(Options(link, {Request{.pairs = 1, .max_time_s = 10}}));
  QNET_START(h);
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_GE(g->at_ns, add->msg.add().eligible_ns());
  QNET_STOP_AND_TRACE(h, trace);
  ::testing::Test::RecordProperty(
      "margin_ns", std::to_string(MarginOf(add->msg.add(), 10'000'000'000ull, link)));
  EXPECT_GE(MarginOf(add->msg.add(), 10'000'000'000ull, link), model::CycleNs(link) - 1)
      << "cycle " << model::CycleNs(link) << " ns";
}

// LINK-21 "The master MUST choose the heralding parameter alpha with
// ChooseAlpha(link, min_fidelity) (the link's fixed alpha if it has one; else
// the largest alpha in (0, 0.5] meeting min_fidelity: the fastest rate) and
// carry it in QueueAdd; both ends MUST use it in every Generate of the item."
// Single-click without dark counts: alpha = (1 + sqrt V - 2 F) / (1 + sqrt V - F eta).
TEST(Link, LINK_21_AlphaIsTheLargestMeetingMinFidelity) {
  model::LinkParams link{.scheme = "single-click",
                         .length_km = 2,
                         .loss_db_km = 0.2,
                         .efficiency = 0.5,
                         .visibility = 0.9};
  const std::vector<double> fmin = {0.0, 0.7, 0.85, 0.95};
  std::vector<Request> requests;
  for (size_t i = 0; i < fmin.size(); ++i)
    requests.push_back(Request{
        .pairs = 2, .min_fidelity = fmin[i], .basis = "z", .purpose = static_cast<uint32_t>(i)});
  Harness h(Options(link, requests));
  QNET_START(h);
  std::map<uint64_t, double> alpha_of;
  for (size_t i = 0; i < fmin.size(); ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    const auto& a = add->msg.add();
    const std::optional<double> want = model::ChooseAlpha(link, a.create().min_fidelity());
    ASSERT_TRUE(want);
    EXPECT_NEAR(a.alpha(), *want, 1e-9) << "min fidelity " << a.create().min_fidelity();
    alpha_of[a.queue_id()] = a.alpha();
  }
  for (int i = 0; i < 8; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.alpha(), alpha_of[g->msg.queue_id()]) << "Generate " << g->msg.batch();
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(alpha_of.size(), fmin.size());
}

// LINK-21, a link with a fixed alpha (TOPO-24): every request gets it; one whose
// min_fidelity that alpha cannot reach is UNSUPPORTED (LINK-02).
TEST(Link, LINK_21_FixedAlphaOfTheLink) {
  model::LinkParams link{.scheme = "single-click",
                         .length_km = 2,
                         .loss_db_km = 0.2,
                         .efficiency = 0.5,
                         .visibility = 0.9,
                         .alpha = 0.3};
  const double f = model::HeraldedFidelity(link, 0.3);
  std::vector<Request> requests = {Request{.pairs = 1, .min_fidelity = 0, .basis = "z"},
                                   Request{.pairs = 1, .min_fidelity = f - 0.01, .basis = "z"},
                                   Request{.pairs = 1, .min_fidelity = f + 0.01, .basis = "z"}};
  Harness h(Options(link, requests));
  QNET_START(h);
  for (int i = 0; i < 2; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    EXPECT_EQ(add->msg.add().alpha(), 0.3);
    EXPECT_NEAR(add->msg.add().estimated_fidelity(), f, 1e-9);
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_UNSUPPORTED).size(), 1u) << Dump(trace);
}

// LINK-21 "[...] both ends MUST use it in every Generate of the item." The node
// as peer uses the alpha of the harness's QueueAdd, whatever its own table says.
TEST(Link, LINK_21_PeerUsesTheMastersAlpha) {
  model::LinkParams link{.scheme = "single-click",
                         .length_km = 2,
                         .loss_db_km = 0.2,
                         .efficiency = 0.5,
                         .visibility = 0.9};
  Harness h(AsPeer(Options(link)));
  QNET_START(h);
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .create = MakeCreate("iut", 3),
                                   .eligible_ns = h.NowNs() + 10'000'000,
                                   .alpha = 0.123,
                                   .estimated_fidelity = 0.8})));
  for (int i = 0; i < 3; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.alpha(), 0.123);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  QNET_STOP_AND_TRACE(h, trace);
  ASSERT_EQ(Oks(trace).size(), 3u);
  EXPECT_EQ(Oks(trace)[0].ok().estimated_fidelity(), 0.8)
      << "the item's estimate, from the QueueAdd";
}

// LINK-22 "The peer MUST add every well-formed QueueAdd to its queue, also one
// that arrives after its eligible time (counted as late; an idle peer then
// decides at once, LINK-24)." A late item is served at once; an early one not
// before its eligible time.
TEST(Link, LINK_22_PeerQueuesLateAndTimelyQueueAdds) {
  Harness h(AsPeer(Options(model::LinkParams{})));
  QNET_START(h);
  h.SleepUntilNs(100'000'000);
  const uint64_t sent = h.NowNs();
  ASSERT_TRUE(h.SendPeer(
      AddFrame({.queue_id = 1, .create = MakeCreate("iut", 1), .eligible_ns = sent - 50'000'000})));
  auto g = h.NextGenerate(Ms(1000));
  ASSERT_TRUE(g) << "a late QueueAdd was not served at once";
  EXPECT_EQ(g->msg.queue_id(), 1u);
  EXPECT_LT(g->at_ns, sent + 500'000'000);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  const uint64_t eligible = h.NowNs() + 150'000'000;
  ASSERT_TRUE(h.SendPeer(
      AddFrame({.queue_id = 2, .create = MakeCreate("iut", 1), .eligible_ns = eligible})));
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->msg.queue_id(), 2u);
  EXPECT_GE(g->at_ns, eligible);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 2)));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-40 "The peer MUST refuse with QueueReject{queue_id, origin_create_id,
// code, detail} a QueueAdd that is malformed (LINK-36), that names itself as
// origin for a create id that awaits no answer or with other pairs / type /
// priority / purpose / basis than its CREATE (it then reports REJECTED for
// that CREATE) [...]". None of the refused items is served; a good one is.
TEST(Link, LINK_40_PeerRefusesBadQueueAdds) {
  Harness h(AsPeer(Options(model::LinkParams{}, {Request{.pairs = 2, .basis = "z"}})));
  QNET_START(h);
  auto req = h.ExpectLink(LinkFrame::kAddRequest, kWait);
  ASSERT_TRUE(req);
  const uint64_t later = h.NowNs() + 30'000'000;
  std::map<uint64_t, uint64_t> refused;  // queue id -> origin create id
  auto send = [&](const AddFields& a) {
    refused[a.queue_id] = a.origin_create_id;
    ASSERT_TRUE(h.SendPeer(AddFrame(a)));
  };
  send({.queue_id = 1,
        .origin_create_id = 11,
        .create = MakeCreate("iut", 1),
        .eligible_ns = later,
        .alpha = 1.5});
  send({.queue_id = 2,
        .origin = "mallory",
        .origin_create_id = 12,
        .create = MakeCreate("iut", 1),
        .eligible_ns = later});
  send({.queue_id = 3,
        .origin = "iut",
        .origin_create_id = 7,
        .create = MakeCreate("peer", 1),
        .eligible_ns = later});
  Create mismatched = req->msg.add_request().create();
  mismatched.set_pairs(3);
  send({.queue_id = 4,
        .origin = "iut",
        .origin_create_id = req->msg.add_request().origin_create_id(),
        .create = mismatched,
        .eligible_ns = later});
  for (size_t i = 0; i < refused.size(); ++i) {
    auto r = h.ExpectLink(LinkFrame::kReject, kWait);
    ASSERT_TRUE(r) << "missing QueueReject";
    const auto& rej = r->msg.reject();
    ASSERT_TRUE(refused.count(rej.queue_id())) << rej.DebugString();
    EXPECT_EQ(rej.origin_create_id(), refused[rej.queue_id()]) << rej.DebugString();
  }
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 5,
                                   .origin_create_id = 13,
                                   .create = MakeCreate("iut", 1),
                                   .eligible_ns = h.NowNs() + 10'000'000})));
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->msg.queue_id(), 5u);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "a refused item was served";
  QNET_STOP_AND_TRACE(h, trace);
  const auto rejected = Errs(trace, link::v1::ERROR_CODE_REJECTED);
  ASSERT_EQ(rejected.size(), 1u) << Dump(trace);
  EXPECT_EQ(rejected[0].err().create_id(), req->msg.add_request().origin_create_id());
}

// LINK-23 "On a QueueReject with a non-zero queue id for an item it holds, an
// end [...] MUST remove the item at once if its eligible time has not come, else
// mark it refused so that the next decision removes it (LINK-25); if the end is
// the item's origin it reports REJECTED (LINK-13). A QueueReject for an item
// the end held before and no longer holds is ignored."
TEST(Link, LINK_23_RejectedItemLeavesTheQueue) {
  model::LinkParams link;
  link.classical_delay_us = 100000;  // the first refusal arrives well before eligibility
  std::vector<Request> requests = {Request{.pairs = 5, .basis = "z"},
                                   Request{.pairs = 5, .basis = "z", .start_s = 0.3}};
  Harness h(Options(link, requests));
  QNET_START(h);
  // Item 1: refused before it is eligible.
  auto add1 = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add1);
  ASSERT_TRUE(h.SendPeer(RejectFrame(1, 1, link::v1::ERROR_CODE_NORES, "before eligibility")));
  EXPECT_FALSE(h.NextGenerate(Ms(250))) << "an item refused before its eligible time was served";
  // Item 2: refused while its batch runs; the batch ends IDLE, the next decision removes it.
  auto add2 = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add2);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->msg.queue_id(), 2u);
  ASSERT_TRUE(h.SendPeer(RejectFrame(2, 2, link::v1::ERROR_CODE_NORES, "while served")));
  std::this_thread::sleep_for(Ms(100));
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, physical::v1::OUTCOME_IDLE, 0)));
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "a refused item was served after the next decision";
  ASSERT_TRUE(h.SendPeer(RejectFrame(2, 2, link::v1::ERROR_CODE_NORES, "again")));
  std::this_thread::sleep_for(Ms(100));
  QNET_STOP_AND_TRACE(h, trace);
  const auto rejected = Errs(trace, link::v1::ERROR_CODE_REJECTED);
  ASSERT_EQ(rejected.size(), 2u) << Dump(trace);
  EXPECT_EQ(rejected[0].err().create_id(), 1u);
  EXPECT_EQ(rejected[1].err().create_id(), 2u);
  EXPECT_EQ(GeneratesIn(h.physics_log()).size(), 1u);
}

}  // namespace
}  // namespace qnet::interop
