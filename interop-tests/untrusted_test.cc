// specs/link.md section 6 (untrusted input): LINK-36 .. LINK-38. Bad peer
// frames, heralds and Expire frames must be dropped with the stated reason,
// counted in the trace, and change nothing; the node keeps serving.
#include <cmath>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using link::v1::Create;
using physical::v1::OUTCOME_SUCCESS;
using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_PAIR_EXPIRED;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;
using results::v1::DROP_REASON_UNKNOWN_LINK;

// LINK-36 "An end MUST refuse, with a counted drop traced with a DropReason and
// without changing its queue, a peer frame that: names another link
// (UNKNOWN_LINK); has no known body (MALFORMED_FRAME); is a QueueAdd at the
// master, [...] or a QueueReject without queue id at the master
// (UNEXPECTED_FRAME); is [...] a QueueAddRequest whose create id [...] was used
// before [...] (UNEXPECTED_FRAME); [...] is a QueueReject for an item or request
// that does not await one (UNEXPECTED_FRAME)." At the master.
TEST(Link, LINK_36_BadPeerFramesAtTheMasterAreDropped) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  LinkFrame other_link = AddRequestFrame(1, MakeCreate("iut", 1), h.NowNs(), "X");
  ASSERT_TRUE(h.SendPeer(other_link));
  LinkFrame no_body;
  no_body.set_link("L");
  ASSERT_TRUE(h.SendPeer(no_body));
  ASSERT_TRUE(h.SendPeer(
      AddFrame({.queue_id = 1, .create = MakeCreate("iut", 1), .eligible_ns = h.NowNs()})));
  ASSERT_TRUE(h.SendPeer(RejectFrame(0, 1, link::v1::ERROR_CODE_NORES, "no queue id")));
  ASSERT_TRUE(h.SendPeer(RejectFrame(77, 1, link::v1::ERROR_CODE_NORES, "queue id never used")));
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(5, MakeCreate("iut", 1), h.NowNs())));
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  EXPECT_EQ(add->msg.add().queue_id(), 1u) << "a bad frame changed the queue";
  EXPECT_EQ(add->msg.add().origin_create_id(), 5u);
  ASSERT_TRUE(
      h.SendPeer(AddRequestFrame(5, MakeCreate("iut", 2), h.NowNs())));  // create id used before
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(6, MakeCreate("iut", 1), h.NowNs())));
  add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  EXPECT_EQ(add->msg.add().queue_id(), 2u);
  EXPECT_EQ(add->msg.add().origin_create_id(), 6u);
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_LE(g->msg.queue_id(), 2u);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNKNOWN_LINK).size(), 1u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_MALFORMED_FRAME).size(), 1u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 4u) << Dump(trace);
  EXPECT_EQ(LinkFramesIn(h.peer_log(), LinkFrame::kAdd).size(), 2u);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-36, at the peer: "[...] a QueueAddRequest at the peer [...]
// (UNEXPECTED_FRAME); is a QueueAdd whose queue id [...] was used before
// (UNEXPECTED_FRAME); is a QueueAdd with an origin that is not an end, a
// malformed CREATE, alpha or estimated fidelity not a number in [0, 1]
// (MALFORMED_FRAME, answered per LINK-40); is a QueueReject for an item or
// request that does not await one (UNEXPECTED_FRAME)." (Zero pairs is no
// longer malformed: a standing request, LINK-45.)
TEST(Link, LINK_36_BadPeerFramesAtThePeerAreDropped) {
  HarnessOptions o = Options(model::LinkParams{});
  o.iut_is_master = false;
  Harness h(o);
  QNET_START(h);
  const uint64_t eligible = h.NowNs() + 20'000'000;
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(1, MakeCreate("peer", 1), h.NowNs())));
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .origin_create_id = 1,
                                   .create = MakeCreate("iut", 2),
                                   .eligible_ns = eligible})));
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .origin_create_id = 2,
                                   .create = MakeCreate("iut", 5),
                                   .eligible_ns = eligible})));  // queue id used before
  std::map<uint64_t, std::string> malformed;
  auto send_bad = [&](AddFields a, const std::string& what) {
    malformed[a.queue_id] = what;
    ASSERT_TRUE(h.SendPeer(AddFrame(a)));
  };
  send_bad(
      {.queue_id = 2, .origin = "mallory", .create = MakeCreate("iut", 1), .eligible_ns = eligible},
      "origin mallory");
  Create untyped = MakeCreate("iut", 1);
  untyped.set_type(link::v1::REQUEST_TYPE_UNSPECIFIED);
  send_bad({.queue_id = 3, .create = untyped, .eligible_ns = eligible}, "malformed CREATE");
  Create nan_fidelity = MakeCreate("iut", 1);
  nan_fidelity.set_min_fidelity(std::nan(""));
  send_bad({.queue_id = 4, .create = nan_fidelity, .eligible_ns = eligible},
           "malformed CREATE: min_fidelity NaN");
  send_bad({.queue_id = 5,
            .create = MakeCreate("iut", 1),
            .eligible_ns = eligible,
            .alpha = std::nan("")},
           "alpha NaN");
  send_bad({.queue_id = 6,
            .create = MakeCreate("iut", 1),
            .eligible_ns = eligible,
            .estimated_fidelity = 1.5},
           "estimated fidelity 1.5");
  ASSERT_TRUE(h.SendPeer(RejectFrame(0, 99, link::v1::ERROR_CODE_NORES, "awaits nothing")));
  for (size_t i = 0; i < malformed.size(); ++i) {
    auto r = h.ExpectLink(LinkFrame::kReject, kWait);
    ASSERT_TRUE(r) << "LINK-40: a malformed QueueAdd must be answered with QueueReject";
    EXPECT_TRUE(malformed.count(r->msg.reject().queue_id())) << r->msg.reject().DebugString();
  }
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.queue_id(), 1u) << "a refused item was served";
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "the item was queued twice (2 pairs, not 2 + 5)";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_MALFORMED_FRAME).size(), malformed.size()) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 3u) << Dump(trace);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-37 "An end MUST drop (UNEXPECTED_FRAME, UNKNOWN_LINK) a herald for
// another link, for another batch than the one running, or while no batch
// runs; a SUCCESS herald of the running batch that names another queue id, no
// Bell state, no or another slot (KEEP), or another basis or a result above 1
// (MEASURE) MUST be counted as a heralded success of the batch's item, and the
// pair expired (LINK-14, drop reason PAIR_EXPIRED) with its slot freed."
TEST(Link, LINK_37_UnexpectedAndUndeliverableHeralds) {
  std::vector<Request> requests = {Request{.pairs = 4, .basis = "z", .start_s = 0.2},
                                   Request{.pairs = 2, .type = "keep", .start_s = 0.25}};
  HarnessOptions o = Options(model::LinkParams{}, requests);
  o.memories = 1;
  Harness h(o);
  QNET_START(h);
  // While no batch runs.
  Herald stray;
  stray.set_link("L");
  stray.set_batch(1);
  stray.set_outcome(OUTCOME_SUCCESS);
  stray.set_time_ns(h.NowNs());
  stray.set_queue_id(1);
  stray.set_bell_state(physical::v1::BELL_STATE_PSI_PLUS);
  ASSERT_TRUE(h.SendHerald(stray));
  int measure_n = 0, keep_n = 0;
  std::set<uint64_t> expire_seqs;
  for (int i = 0; i < 6; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "batch " << i + 1;
    if (i == 0) {
      Herald other_link = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
      other_link.set_link("X");
      ASSERT_TRUE(h.SendHerald(other_link));
      Herald other_batch = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
      other_batch.set_batch(g->msg.batch() + 5);
      ASSERT_TRUE(h.SendHerald(other_batch));
      std::this_thread::sleep_for(Ms(20));
    }
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1);
    if (g->msg.measure_basis() != physical::v1::BASIS_UNSPECIFIED) {
      switch (measure_n++) {
        case 0:
          herald.set_queue_id(g->msg.queue_id() + 10);
          break;
        case 1:
          herald.clear_bell_state();
          break;
        case 2:
          herald.set_basis(physical::v1::BASIS_X);
          break;
        default:
          herald.set_result(2);
          break;
      }
    } else {
      ASSERT_TRUE(g->msg.has_slot()) << "the slot of an expired pair was not freed";
      if (keep_n++ == 0) {
        herald.clear_slot();
      } else {
        herald.set_slot(g->msg.slot() + 1);
      }
    }
    ASSERT_TRUE(h.SendHerald(herald));
    auto expire = h.ExpectLink(LinkFrame::kExpire, kWait);
    ASSERT_TRUE(expire) << "no Expire for an undeliverable pair (batch " << i + 1 << ")";
    EXPECT_EQ(expire->msg.expire().queue_id(), g->msg.queue_id());
    EXPECT_EQ(expire->msg.expire().origin(), "iut");
    EXPECT_EQ(expire->msg.expire().sequence_from(), expire->msg.expire().sequence_to());
    expire_seqs.insert(expire->msg.expire().sequence_from());
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "the items had all their (expired) pairs";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(expire_seqs, (std::set<uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(Oks(trace).size(), 0u);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_EXPIRED).size(), 6u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_PAIR_EXPIRED).size(), 6u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNKNOWN_LINK).size(), 1u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 2u) << Dump(trace);
}

// LINK-38 "An end MUST drop an Expire whose origin is not an end, whose range is
// empty, starts at 0, exceeds the sequence numbers assigned or spans more than
// 65536 (MALFORMED_FRAME), or whose queue id is unknown for that origin
// (UNEXPECTED_FRAME); it MUST NOT report a pair EXPIRED twice." Two pairs were
// delivered (sequence numbers 1, 2 of origin iut).
TEST(Link, LINK_38_BadExpireFramesAreDropped) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 3, .basis = "z"}}));
  QNET_START(h);
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  ASSERT_TRUE(h.NextGenerate(kWait));  // batch 3 stays running
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "mallory", 1, 1)));
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 2, 1)));      // empty range
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 0, 1)));      // starts at 0
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 1, 3)));      // beyond the numbers assigned
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 1, 70000)));  // too long (and beyond)
  ASSERT_TRUE(h.SendPeer(ExpireFrame(42, "iut", 1, 1)));     // unknown queue id
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "peer", 1, 1)));     // no pair of origin peer
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 1, 1)));      // valid
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 1, 2)));      // 1 again, 2 new
  ASSERT_TRUE(h.SendPeer(ExpireFrame(1, "iut", 1, 2)));      // nothing new
  std::this_thread::sleep_for(kQuiet);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_MALFORMED_FRAME).size(), 6u) << Dump(trace);
  EXPECT_GE(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
  std::multiset<uint64_t> expired;
  for (const auto& e : Errs(trace, link::v1::ERROR_CODE_EXPIRED)) {
    EXPECT_EQ(e.err().origin(), "iut");
    EXPECT_EQ(e.err().create_id(), 1u);
    for (uint64_t s = e.err().expired_from(); s <= e.err().expired_to(); ++s) expired.insert(s);
  }
  EXPECT_EQ(expired, (std::multiset<uint64_t>{1, 2})) << Dump(trace);
}

}  // namespace
}  // namespace qnet::interop
