// specs/link.md section 2 (service: CREATE, OK, ERR, tracing), LINK-01 .. LINK-16,
// checked on the wire and in the trace of the node under test.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using google::protobuf::util::MessageDifferencer;
using link::v1::Create;
using physical::v1::OUTCOME_SUCCESS;

// LINK-01 "An end MUST refuse with code CREATE a CREATE whose type is neither
// KEEP nor MEASURE, whose min_fidelity is not a number in [0, 1], whose max_time
// is not a valid non-negative duration, or whose basis is not a known
// BasisChoice." Observed at the master, which checks a QueueAddRequest "as in
// LINK-01" (LINK-39) and answers QueueReject{queue_id 0, code}.
TEST(Link, LINK_01_MalformedCreateIsRefusedWithCodeCreate) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  std::map<uint64_t, std::string> bad;  // create id -> what is wrong
  auto send = [&](uint64_t id, const Create& c, const std::string& what) {
    bad[id] = what;
    ASSERT_TRUE(h.SendPeer(AddRequestFrame(id, c, h.NowNs())));
  };
  Create c = MakeCreate("iut", 1);
  c.set_type(link::v1::REQUEST_TYPE_UNSPECIFIED);
  send(11, c, "type UNSPECIFIED");
  c = MakeCreate("iut", 1);
  c.set_type(static_cast<link::v1::RequestType>(9));
  send(12, c, "type 9");
  c = MakeCreate("iut", 1);
  c.set_min_fidelity(std::nan(""));
  send(13, c, "min_fidelity NaN");
  c.set_min_fidelity(-0.1);
  send(14, c, "min_fidelity -0.1");
  c.set_min_fidelity(1.5);
  send(15, c, "min_fidelity 1.5");
  c = MakeCreate("iut", 1);
  c.mutable_max_time()->set_seconds(-1);
  send(16, c, "max_time -1 s");
  c = MakeCreate("iut", 1);
  c.mutable_max_time()->set_nanos(1'500'000'000);
  send(17, c, "max_time nanos 1.5e9");
  c = MakeCreate("iut", 1);
  c.set_basis(static_cast<link::v1::BasisChoice>(42));
  send(18, c, "basis 42");
  for (size_t i = 0; i < bad.size(); ++i) {
    auto r = h.ExpectLink(LinkFrame::kReject, kWait);
    ASSERT_TRUE(r) << "no QueueReject for a malformed CREATE (" << i << " answered)";
    const auto& rej = r->msg.reject();
    ASSERT_TRUE(bad.count(rej.origin_create_id())) << rej.DebugString();
    EXPECT_EQ(rej.queue_id(), 0u) << bad[rej.origin_create_id()];
    EXPECT_EQ(rej.code(), link::v1::ERROR_CODE_CREATE) << bad[rej.origin_create_id()];
  }
  // The refusals used no queue id: a well-formed request gets queue id 1.
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(20, MakeCreate("iut", 1), h.NowNs())));
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  EXPECT_EQ(add->msg.add().queue_id(), 1u);
  EXPECT_EQ(add->msg.add().origin_create_id(), 20u);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(LinkFramesIn(h.peer_log(), LinkFrame::kAdd).size(), 1u);
}

// LINK-02 "An end MUST refuse with code UNSUPPORTED a CREATE whose remote node
// is not the other end of the link, whose min_fidelity is above the best
// fidelity the link reaches (ChooseAlpha returns none) [...]. (Zero pairs is a
// standing request, LINK-45.)" Observed for the node's own CREATE (the trace:
// CREATE with create id 0 and an ERR UNSUPPORTED) and at the master for a
// QueueAddRequest; a zero-pair request among them is queued, not refused.
TEST(Link, LINK_02_UnsupportedCreateIsRefused) {
  model::LinkParams link;  // werner, fidelity 0.9
  Request too_good{.min_fidelity = 0.95};
  Harness h(Options(link, {too_good}));
  QNET_START(h);
  std::map<uint64_t, std::string> bad;
  auto send = [&](uint64_t id, const Create& c, const std::string& what) {
    bad[id] = what;
    ASSERT_TRUE(h.SendPeer(AddRequestFrame(id, c, h.NowNs())));
  };
  send(1, MakeCreate("mallory", 1), "remote node mallory");
  send(2, MakeCreate("peer", 1), "remote node = the requesting end itself");
  Create c = MakeCreate("iut", 1);
  c.set_min_fidelity(0.95);
  send(4, c, "min_fidelity 0.95 on a link of fidelity 0.9");
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(3, MakeCreate("iut", 0), h.NowNs())));  // standing
  for (size_t i = 0; i < bad.size(); ++i) {
    auto r = h.ExpectLink(LinkFrame::kReject, kWait);
    ASSERT_TRUE(r) << "missing QueueReject";
    const auto& rej = r->msg.reject();
    ASSERT_TRUE(bad.count(rej.origin_create_id())) << rej.DebugString();
    EXPECT_EQ(rej.queue_id(), 0u);
    EXPECT_EQ(rej.code(), link::v1::ERROR_CODE_UNSUPPORTED) << bad[rej.origin_create_id()];
  }
  Watch(h, kQuiet);
  QNET_STOP_AND_TRACE(h, trace);
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 1u) << Dump(trace);
  EXPECT_EQ(creates[0].create_id(), 0u);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_UNSUPPORTED).size(), 1u) << Dump(trace);
  const auto adds = LinkFramesIn(h.peer_log(), LinkFrame::kAdd);
  ASSERT_EQ(adds.size(), 1u) << "only the zero-pair request is queued";
  EXPECT_EQ(adds[0].msg.add().origin_create_id(), 3u);
  EXPECT_EQ(adds[0].msg.add().create().pairs(), 0u);
  for (const auto& r : LinkFramesIn(h.peer_log(), LinkFrame::kReject))
    EXPECT_NE(r.msg.reject().origin_create_id(), 3u) << "a zero-pair request was refused";
  for (const auto& g : GeneratesIn(h.physics_log()))
    EXPECT_EQ(g.msg.queue_id(), adds[0].msg.add().queue_id()) << "a refused request was served";
}

// LINK-03 "An end MUST refuse with code NORES [...] any CREATE while its queue
// holds the queue limit (default 256) of items (at the master: items of the
// link's queue [...])". 257 CREATEs that the harness never serves.
TEST(Link, LINK_03_QueueLimitAtTheMaster) {
  std::vector<Request> requests(257, Request{.pairs = 1});
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  int adds = 0;
  while (h.ExpectLink(LinkFrame::kAdd, Ms(1500))) ++adds;
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(adds, 256);
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 257u);
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(creates[i].create_id(), i + 1);
  EXPECT_EQ(creates[256].create_id(), 0u);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_NORES).size(), 1u) << Dump(trace);
}

// LINK-03 "[...] (at the peer: its view of the queue plus its CREATEs awaiting
// an answer)". The harness (master) never answers the QueueAddRequests.
TEST(Link, LINK_03_QueueLimitAtThePeerCountsPendingCreates) {
  std::vector<Request> requests(257, Request{.pairs = 1});
  HarnessOptions o = Options(model::LinkParams{}, requests);
  o.iut_is_master = false;
  Harness h(o);
  QNET_START(h);
  int requests_seen = 0;
  while (h.ExpectLink(LinkFrame::kAddRequest, Ms(1500))) ++requests_seen;
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(requests_seen, 256);
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 257u);
  EXPECT_EQ(creates[256].create_id(), 0u);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_NORES).size(), 1u) << Dump(trace);
}

// LINK-04 "An end MUST refuse with code NOTIME a CREATE with max_time > 0 whose
// expected completion time E = 2 d + m + pairs x cycle / p exceeds max_time
// [...]. E ignores the other items of the queue." m is measured from the
// QueueAdd of a first CREATE (its deadline is now + max_time and its eligible
// time now + 2 d + m, LINK-18); each further CREATE's outcome must follow the
// formula.
TEST(Link, LINK_04_NoTimeWhenExpectedTimeExceedsMaxTime) {
  model::LinkParams link;
  link.classical_delay_us = 1000;
  std::vector<Request> requests = {Request{.pairs = 1, .max_time_s = 10}};
  const std::vector<double> max_times = {0.15, 0.2015, 0.2022, 0.2035, 0.207, 0.25, 1.0};
  for (size_t i = 0; i < max_times.size(); ++i)
    requests.push_back(
        Request{.pairs = 1000, .max_time_s = max_times[i], .start_s = 0.01 * (i + 1)});
  Harness h(Options(link, requests));
  QNET_START(h);
  auto first = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(first);
  h.SleepUntilNs(200'000'000);
  QNET_STOP_AND_TRACE(h, trace);
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), requests.size());
  const double m_s = MarginOf(first->msg.add(), 10'000'000'000ull, link) * 1e-9;
  ASSERT_GE(m_s * 1e9, model::CycleNs(link) - 1) << "LINK-20: m must be at least one cycle";
  const double e = model::ExpectedSeconds(link, m_s, 1000, model::SuccessProbability(link, 0));
  int expected_refusals = 0, checked = 0;
  for (size_t i = 1; i < creates.size(); ++i) {
    const auto& mt = creates[i].create().max_time();
    const double max_time = mt.seconds() + mt.nanos() * 1e-9;
    if (std::abs(max_time - e) < 20e-6) continue;  // too close to call
    ++checked;
    const bool refuse = e > max_time;
    expected_refusals += refuse;
    EXPECT_EQ(creates[i].create_id() == 0, refuse)
        << "max_time " << max_time << " s, E = " << e << " s (m = " << m_s * 1e6 << " us)";
  }
  EXPECT_GE(checked, 5);
  EXPECT_EQ(static_cast<int>(Errs(trace, link::v1::ERROR_CODE_NOTIME).size()), expected_refusals)
      << Dump(trace);
}

// LINK-05 "The checks MUST be applied in the order of LINK-01 .. LINK-04 and the
// first failing one decides the code; a refused CREATE MUST be returned as an
// error status [...], and no Err is delivered for it." A CREATE failing both
// LINK-02 and LINK-04 is UNSUPPORTED, with exactly one ERR in the trace (the
// caller's record of the refusal); a QueueAddRequest failing LINK-01 and
// LINK-02 is refused with CREATE.
TEST(Link, LINK_05_FirstFailingCheckDecidesTheCode) {
  Request both{.pairs = 1000, .min_fidelity = 0.95, .max_time_s = 1e-6};
  Harness h(Options(model::LinkParams{}, {both}));
  QNET_START(h);
  Create c = MakeCreate("mallory", 0);
  c.set_type(link::v1::REQUEST_TYPE_UNSPECIFIED);
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(3, c, h.NowNs())));
  auto r = h.ExpectLink(LinkFrame::kReject, kWait);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->msg.reject().code(), link::v1::ERROR_CODE_CREATE);
  QNET_STOP_AND_TRACE(h, trace);
  ASSERT_EQ(Creates(trace).size(), 1u);
  EXPECT_EQ(Creates(trace)[0].create_id(), 0u);
  int errs = 0;
  for (const auto& rec : trace) errs += rec.has_err();
  EXPECT_EQ(errs, 1) << Dump(trace);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_UNSUPPORTED).size(), 1u) << Dump(trace);
}

// LINK-06 "An accepted CREATE MUST return a create id, unique per link end and
// counting 1, 2, 3, ...; every CREATE, accepted or refused, MUST be traced as
// TraceRecord.create with create_id (0 for a refused one)."
TEST(Link, LINK_06_CreateIdsCountAndEveryCreateIsTraced) {
  std::vector<Request> requests = {
      Request{.pairs = 2, .purpose = 1, .start_s = 0},
      Request{.pairs = 3, .min_fidelity = 0.95, .purpose = 2, .start_s = 0.05},
      Request{.pairs = 4, .purpose = 3, .start_s = 0.1},
      Request{.pairs = 5, .purpose = 4, .start_s = 0.15}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  std::vector<uint64_t> origin_ids;
  for (int i = 0; i < 3; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    origin_ids.push_back(add->msg.add().origin_create_id());
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(origin_ids, (std::vector<uint64_t>{1, 2, 3}));
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 4u) << Dump(trace);
  const std::vector<uint64_t> ids = {1, 0, 2, 3};
  for (size_t i = 0; i < creates.size(); ++i) {
    EXPECT_EQ(creates[i].create_id(), ids[i]);
    EXPECT_EQ(creates[i].create().pairs(), requests[i].pairs);
    EXPECT_EQ(creates[i].create().purpose_id(), requests[i].purpose);
    EXPECT_EQ(creates[i].create().remote_node(), "peer");
  }
}

// specs/topology.md RES-4 "timeNs MUST be the emulated time of the event".
// The suite reads the CREATE's time from the trace (RES-12 latencies do too),
// so the CREATE record must carry the time at which the link layer took the
// CREATE: the master's now (its QueueAdd's deadline minus max_time, LINK-18)
// and the peer's create time (its QueueAddRequest, LINK-19).
TEST(Trace, RES_4_CreateRecordCarriesTheCreateTime) {
  Request r{.pairs = 1, .max_time_s = 5, .start_s = 0.05};
  {
    Harness h(Options(model::LinkParams{}, {r}));
    QNET_START(h);
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    QNET_STOP_AND_TRACE(h, trace);
    ASSERT_EQ(Creates(trace).size(), 1u);
    ::testing::Test::RecordProperty(
        "master_record_minus_create_ns",
        std::to_string(static_cast<int64_t>(Creates(trace)[0].time_ns() -
                                            CreateTimeOf(add->msg.add(), 5'000'000'000ull))));
    EXPECT_EQ(Creates(trace)[0].time_ns(), CreateTimeOf(add->msg.add(), 5'000'000'000ull))
        << "the master's CREATE record is stamped at another time than its CREATE";
  }
  HarnessOptions o = Options(model::LinkParams{}, {r});
  o.iut_is_master = false;
  Harness h(o);
  QNET_START(h);
  auto req = h.ExpectLink(LinkFrame::kAddRequest, kWait);
  ASSERT_TRUE(req);
  QNET_STOP_AND_TRACE(h, trace);
  ASSERT_EQ(Creates(trace).size(), 1u);
  ::testing::Test::RecordProperty(
      "peer_record_minus_create_ns",
      std::to_string(static_cast<int64_t>(Creates(trace)[0].time_ns() -
                                          req->msg.add_request().create_time_ns())));
  EXPECT_EQ(Creates(trace)[0].time_ns(), req->msg.add_request().create_time_ns())
      << "the peer's CREATE record is stamped at another time than its CREATE";
}

// LINK-07 "For every heralded pair that both ends can deliver, each end MUST
// deliver exactly one OK, and the two OKs MUST carry the same pair id (origin,
// partner, sequence), Bell state (as heralded), herald_seq (the herald's
// pair_seq), time_ns, purpose id, estimated fidelity and create_id. [...]
// time_ns is the batch end time of the herald, which both ends share;
// remote_node is the other end." The node is the origin; what its OK must
// carry follows from the heralds the harness sends.
TEST(Link, LINK_07_OkCarriesTheHeraldedPairAtTheOrigin) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 3, .basis = "z", .purpose = 7}}));
  QNET_START(h);
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  const physical::v1::BellState bells[] = {physical::v1::BELL_STATE_PSI_MINUS,
                                           physical::v1::BELL_STATE_PSI_PLUS,
                                           physical::v1::BELL_STATE_PSI_MINUS};
  std::vector<Herald> sent;
  for (int i = 0; i < 3; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "Generate " << i + 1 << " missing";
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 41 + i);
    herald.set_bell_state(bells[i]);
    herald.set_result(i % 2);
    ASSERT_TRUE(h.SendHerald(herald));
    sent.push_back(herald);
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "LINK-32: the item had all its pairs";
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 3u) << Dump(trace);
  for (int i = 0; i < 3; ++i) {
    const auto& ok = oks[i].ok();
    SCOPED_TRACE("OK " + std::to_string(i + 1));
    EXPECT_EQ(ok.create_id(), 1u);
    EXPECT_EQ(ok.pair().origin(), "iut");
    EXPECT_EQ(ok.pair().partner(), "peer");
    EXPECT_EQ(ok.pair().sequence(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(ok.bell_state(), bells[i]);
    EXPECT_EQ(ok.herald_seq(), static_cast<uint64_t>(41 + i));
    EXPECT_EQ(ok.time_ns(), sent[i].time_ns()) << "the herald's batch end time";
    EXPECT_EQ(ok.purpose_id(), 7u);
    EXPECT_EQ(ok.estimated_fidelity(), add->msg.add().estimated_fidelity());
    EXPECT_EQ(ok.remote_node(), "peer");
    EXPECT_EQ(ok.link(), "L");
    EXPECT_EQ(ok.basis(), physical::v1::BASIS_Z);
    EXPECT_EQ(ok.result(), static_cast<uint32_t>(i % 2));
  }
}

// LINK-07 "[...] The create_id at both ends is the origin's create id (the
// partner recognises a request it did not make by pair.origin)." The node is the
// partner (link a="peer" b="iut") of a request the harness queues.
TEST(Link, LINK_07_PartnerOkCarriesTheOriginsCreateId) {
  HarnessOptions o = Options(model::LinkParams{});
  o.iut_is_master = false;
  Harness h(o);
  QNET_START(h);
  AddFields a{.queue_id = 1,
              .origin = "peer",
              .origin_create_id = 77,
              .create = MakeCreate("iut", 2),
              .eligible_ns = h.NowNs() + 20'000'000,
              .estimated_fidelity = 0.9};
  a.create.set_purpose_id(5);
  ASSERT_TRUE(h.SendPeer(AddFrame(a)));
  std::vector<Herald> sent;
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.queue_id(), 1u);
    sent.push_back(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 5 + i));
    ASSERT_TRUE(h.SendHerald(sent.back()));
  }
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 2u) << Dump(trace);
  for (int i = 0; i < 2; ++i) {
    const auto& ok = oks[i].ok();
    EXPECT_EQ(ok.create_id(), 77u);
    EXPECT_EQ(ok.pair().origin(), "peer");
    EXPECT_EQ(ok.pair().partner(), "iut");
    EXPECT_EQ(ok.pair().sequence(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(ok.herald_seq(), static_cast<uint64_t>(5 + i));
    EXPECT_EQ(ok.time_ns(), sent[i].time_ns());
    EXPECT_EQ(ok.remote_node(), "peer");
    EXPECT_EQ(ok.purpose_id(), 5u);
    EXPECT_DOUBLE_EQ(ok.estimated_fidelity(), 0.9);
  }
}

// LINK-08 "Sequence numbers MUST be counted per link and origin, starting at 1
// and increasing by 1 with every heralded success of an item of that origin,
// delivered or expired." Items of both origins are served alternately; one
// success of each origin cannot be delivered (no Bell state, LINK-37) and is
// expired, but still takes its number.
TEST(Link, LINK_08_SequenceNumbersPerOriginCountExpiredPairs) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 3, .basis = "z"}}));
  QNET_START(h);
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(9, MakeCreate("iut", 3), h.NowNs())));
  std::map<uint64_t, std::string> origin_of;  // queue id -> origin
  for (int i = 0; i < 2; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    origin_of[add->msg.add().queue_id()] = add->msg.add().origin();
  }
  std::map<std::string, int> served;
  for (int i = 0; i < 6; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "batch " << i + 1;
    ASSERT_TRUE(origin_of.count(g->msg.queue_id()));
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 100 + i);
    if (++served[origin_of[g->msg.queue_id()]] == 2) herald.clear_bell_state();  // undeliverable
    ASSERT_TRUE(h.SendHerald(herald));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  std::map<std::string, std::multiset<uint64_t>> seqs;
  for (const auto& r : Oks(trace)) seqs[r.ok().pair().origin()].insert(r.ok().pair().sequence());
  for (const auto& r : Errs(trace, link::v1::ERROR_CODE_EXPIRED))
    for (uint64_t s = r.err().expired_from(); s <= r.err().expired_to(); ++s)
      seqs[r.err().origin()].insert(s);
  EXPECT_EQ(seqs["iut"], (std::multiset<uint64_t>{1, 2, 3})) << Dump(trace);
  EXPECT_EQ(seqs["peer"], (std::multiset<uint64_t>{1, 2, 3})) << Dump(trace);
  EXPECT_EQ(Oks(trace).size(), 4u);
}

// LINK-09 "A KEEP OK MUST carry the memory slot that holds the pair's qubit;
// the slot MUST stay allocated until the layer above calls Release(slot) [...]".
// The workload holds each pair for hold-s = 0.3 s (TOPO-26). The first
// Generate may ask for both pairs (LINK-49); the harness heralds one success
// per batch, in the batch's first slot (PHYS-B17, the other end taking one
// pair). The OK names that slot, no later batch gets it meanwhile, and its
// Free comes no earlier than 0.3 s after the herald.
TEST(Link, LINK_09_KeepOkCarriesTheSlotWhichStaysAllocated) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 2, .type = "keep", .hold_s = 0.3}}));
  QNET_START(h);
  std::vector<uint32_t> ok_slot;
  std::vector<Herald> heralds;
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    const std::vector<uint32_t> slots = SlotsOf(g->msg);
    ASSERT_FALSE(slots.empty()) << g->msg.DebugString();
    if (i == 1) {
      for (uint32_t s : slots)
        EXPECT_NE(s, ok_slot[0]) << "the first pair's slot was handed out while held";
    }
    ok_slot.push_back(slots[0]);
    heralds.push_back(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1));
    ASSERT_TRUE(h.SendHerald(heralds.back()));
  }
  h.SleepUntilNs(heralds[1].time_ns() + 500'000'000);
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 2u) << Dump(trace);
  const auto frees = FreesIn(h.physics_log());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(oks[i].ok().has_slot());
    EXPECT_EQ(oks[i].ok().slot(), ok_slot[i]);
    int freed = 0;
    for (const auto& f : frees) {
      if (f.msg != ok_slot[i]) continue;
      ++freed;
      EXPECT_GE(f.at_ns, heralds[i].time_ns() + 300'000'000) << "Free before hold-s";
    }
    EXPECT_EQ(freed, 1) << "slot " << ok_slot[i];
  }
}

// LINK-10 "A MEASURE OK MUST carry the basis and the result; the basis MUST be
// drawn at each end [...] once per pair [...]: Z, X, Y fixed; [...]". Fixed
// choices give that basis for every pair of every Generate, and the OK reports
// what the herald said.
TEST(Link, LINK_10_FixedBasesAndOkCarriesBasisAndResult) {
  std::vector<Request> requests = {Request{.pairs = 3, .basis = "z"},
                                   Request{.pairs = 3, .basis = "x"},
                                   Request{.pairs = 3, .basis = "y"}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  std::map<uint64_t, physical::v1::Basis> want, want_of_create;  // by queue id, by create id
  for (int i = 0; i < 3; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    const physical::v1::Basis b = BasisOf(add->msg.add().create().basis());
    want[add->msg.add().queue_id()] = b;
    want_of_create[add->msg.add().origin_create_id()] = b;
  }
  EXPECT_EQ(want.size(), 3u);
  std::map<uint64_t, uint32_t> result_of_seq;
  for (int i = 0; i < 9; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.measure_basis(), want[g->msg.queue_id()]) << "queue id " << g->msg.queue_id();
    for (int b : g->msg.measure_bases())
      EXPECT_EQ(b, want[g->msg.queue_id()]) << "queue id " << g->msg.queue_id();
    EXPECT_FALSE(g->msg.has_slot());
    EXPECT_EQ(g->msg.slots_size(), 0);
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1);
    herald.set_result((i * 7 + 1) % 3 == 0 ? 1 : 0);
    result_of_seq[i + 1] = herald.result();
    ASSERT_TRUE(h.SendHerald(herald));
  }
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 9u);
  for (const auto& r : oks) {
    EXPECT_EQ(r.ok().basis(), want_of_create[r.ok().create_id()]);
    EXPECT_EQ(r.ok().result(), result_of_seq[r.ok().herald_seq()]);
    EXPECT_FALSE(r.ok().has_slot());
  }
}

// LINK-10 "[...] the basis MUST be drawn at each end independently [...], once
// per pair, when the end starts the batch: [...] XZ (and UNSPECIFIED) Z if
// Below(2) is 0 else X [...]; XYZ {Z, X, Y}[Below(3)]." Every pair of every
// Generate has its own basis (measure_bases, LINK-27, measure_basis its first):
// over at least 240 pairs per request each basis of the choice appears with
// its share within 3 standard errors, and no other; the bases of one batch are
// not all equal whenever a batch has enough pairs to tell (LINK-49 lets a lone
// item's batch take up to 64 pairs). The harness heralds every pair asked for.
TEST(Link, LINK_10_RandomBasesAreDrawnPerPair) {
  constexpr int kN = 240;
  std::vector<Request> requests = {Request{.pairs = kN, .basis = "xz"},
                                   Request{.pairs = kN, .basis = "xyz", .start_s = 0.3}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  std::map<uint64_t, link::v1::BasisChoice> choice_of;  // queue id -> the request's choice
  std::map<link::v1::BasisChoice, std::map<physical::v1::Basis, int>> counts;
  std::map<link::v1::BasisChoice, int> pairs;
  int mixed = 0, large = 0;
  uint64_t seq = 0;
  while (pairs[link::v1::BASIS_CHOICE_XZ] < kN || pairs[link::v1::BASIS_CHOICE_XYZ] < kN) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "after " << seq << " pairs";
    if (!choice_of.count(g->msg.queue_id())) {
      for (const auto& f : LinkFramesIn(h.peer_log(), LinkFrame::kAdd))
        choice_of[f.msg.add().queue_id()] = f.msg.add().create().basis();
      while (!choice_of.count(g->msg.queue_id())) {
        auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
        ASSERT_TRUE(add) << "a Generate for an item never announced";
        choice_of[add->msg.add().queue_id()] = add->msg.add().create().basis();
      }
    }
    const link::v1::BasisChoice choice = choice_of[g->msg.queue_id()];
    const uint32_t k = PairsOf(g->msg);
    if (k > 1) {
      ASSERT_EQ(g->msg.measure_bases_size(), static_cast<int>(k)) << g->msg.DebugString();
      EXPECT_EQ(g->msg.measure_basis(), g->msg.measure_bases(0));
    }
    std::set<physical::v1::Basis> in_batch;
    for (uint32_t j = 0; j < k; ++j) {
      ++counts[choice][BasisOfPair(g->msg, j)];
      in_batch.insert(BasisOfPair(g->msg, j));
    }
    pairs[choice] += k;
    if (k >= 16) {
      ++large;
      mixed += in_batch.size() > 1;
    }
    ASSERT_TRUE(h.SendHeralds(h.HeraldsFor(g->msg, k, seq + 1, 0, 10'000)));
    seq += k;
  }
  QNET_STOP_AND_TRACE(h, trace);
  auto& xz = counts[link::v1::BASIS_CHOICE_XZ];
  auto& xyz = counts[link::v1::BASIS_CHOICE_XYZ];
  ::testing::Test::RecordProperty("xz_z_x", std::to_string(xz[physical::v1::BASIS_Z]) + " " +
                                                std::to_string(xz[physical::v1::BASIS_X]));
  ::testing::Test::RecordProperty("xyz_z_x_y", std::to_string(xyz[physical::v1::BASIS_Z]) + " " +
                                                   std::to_string(xyz[physical::v1::BASIS_X]) +
                                                   " " +
                                                   std::to_string(xyz[physical::v1::BASIS_Y]));
  const int n2 = pairs[link::v1::BASIS_CHOICE_XZ], n3 = pairs[link::v1::BASIS_CHOICE_XYZ];
  EXPECT_EQ(xz[physical::v1::BASIS_Z] + xz[physical::v1::BASIS_X], n2) << "XZ drew another basis";
  EXPECT_NEAR(xz[physical::v1::BASIS_X] / double(n2), 0.5, 3 * std::sqrt(0.25 / n2));
  EXPECT_EQ(xyz[physical::v1::BASIS_Z] + xyz[physical::v1::BASIS_X] + xyz[physical::v1::BASIS_Y],
            n3);
  for (auto b : {physical::v1::BASIS_Z, physical::v1::BASIS_X, physical::v1::BASIS_Y})
    EXPECT_NEAR(xyz[b] / double(n3), 1.0 / 3, 3 * std::sqrt(2.0 / 9 / n3))
        << physical::v1::Basis_Name(b);
  EXPECT_GE(large, 2) << "no batch of 16 pairs or more";
  EXPECT_EQ(mixed, large) << "a batch of 16 or more pairs drew a single basis: once per batch?";
  EXPECT_EQ(Oks(trace).size(), static_cast<size_t>(2 * kN));
}

// LINK-11 "The estimated fidelity MUST be HeraldedFidelity(link, alpha) of the
// request's alpha, the link's calibration value". Single-click (PHYS-G2):
// F = (p_ud + p_du + 2 sqrt(V p_ud p_du)) / (2 P_succ) at the QueueAdd's alpha.
TEST(Link, LINK_11_EstimatedFidelityIsTheModelsAtTheChosenAlpha) {
  model::LinkParams link{.scheme = "single-click",
                         .length_km = 2,
                         .loss_db_km = 0.2,
                         .efficiency = 0.5,
                         .visibility = 0.9};
  Harness h(Options(link, {Request{.pairs = 2, .min_fidelity = 0.8, .basis = "z"}}));
  QNET_START(h);
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  const double alpha = add->msg.add().alpha();
  const double f = model::HeraldedFidelity(link, alpha);
  EXPECT_NEAR(add->msg.add().estimated_fidelity(), f, 1e-9);
  EXPECT_GE(f, 0.8 - 1e-9);
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 2u);
  for (const auto& r : oks) EXPECT_NEAR(r.ok().estimated_fidelity(), f, 1e-9);
}

// LINK-12 "When max_time passes before all pairs of an item were heralded, both
// ends MUST report TIMEOUT for it (with the origin's create id) at the first
// decision whose reference time is at or after the item's deadline." The node
// is the origin; the batch running at the deadline ends DEADLINE at time D.
TEST(Link, LINK_12_TimeoutAtTheOrigin) {
  Harness h(
      Options(model::LinkParams{}, {Request{.pairs = 100, .basis = "z", .max_time_s = 0.25}}));
  QNET_START(h);
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  const uint64_t deadline = add->msg.add().deadline_ns();
  ASSERT_GT(deadline, 0u);
  for (int i = 0; i < 3; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->msg.deadline_ns(), deadline);
  h.SleepUntilNs(deadline);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, physical::v1::OUTCOME_DEADLINE, 0, deadline)));
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "a timed-out item was served";
  QNET_STOP_AND_TRACE(h, trace);
  const auto timeouts = Errs(trace, link::v1::ERROR_CODE_TIMEOUT);
  ASSERT_EQ(timeouts.size(), 1u) << Dump(trace);
  EXPECT_EQ(timeouts[0].err().create_id(), 1u);
  EXPECT_EQ(timeouts[0].err().origin(), "iut");
  EXPECT_GE(timeouts[0].err().time_ns(), deadline);
  EXPECT_EQ(Oks(trace).size(), 3u);
}

// LINK-12, at the partner: TIMEOUT with the origin's create id, both when a
// batch runs at the deadline and when the item is never eligible before it
// (the decision then comes from the deadline timer, LINK-24).
TEST(Link, LINK_12_TimeoutAtThePartnerWithTheOriginsCreateId) {
  HarnessOptions o = Options(model::LinkParams{});
  o.iut_is_master = false;
  Harness h(o);
  QNET_START(h);
  const uint64_t t0 = h.NowNs();
  const uint64_t d1 = t0 + 150'000'000;
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .origin_create_id = 77,
                                   .create = MakeCreate("iut", 100000),
                                   .eligible_ns = t0 + 20'000'000,
                                   .deadline_ns = d1})));
  const uint64_t d2 = t0 + 400'000'000;
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 2,
                                   .origin_create_id = 78,
                                   .create = MakeCreate("iut", 1),
                                   .eligible_ns = t0 + 600'000'000,
                                   .deadline_ns = d2})));
  for (;;) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    ASSERT_EQ(g->msg.queue_id(), 1u);
    if (h.NowNs() + 30'000'000 < d1) {
      std::this_thread::sleep_for(Ms(1));
      // No success after the deadline (PHYS-B10), however late this thread runs.
      const uint64_t at = std::min(h.NowNs(), d1 - 1'000'000);
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1, at)));
      continue;
    }
    h.SleepUntilNs(d1);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, physical::v1::OUTCOME_DEADLINE, 0, d1)));
    break;
  }
  EXPECT_FALSE(h.NextGenerate(Ms(700))) << "a timed-out item was served";
  QNET_STOP_AND_TRACE(h, trace);
  const auto timeouts = Errs(trace, link::v1::ERROR_CODE_TIMEOUT);
  ASSERT_EQ(timeouts.size(), 2u) << Dump(trace);
  EXPECT_EQ(timeouts[0].err().create_id(), 77u);
  EXPECT_EQ(timeouts[0].err().origin(), "peer");
  EXPECT_GE(timeouts[0].err().time_ns(), d1);
  EXPECT_EQ(timeouts[1].err().create_id(), 78u);
  EXPECT_GE(timeouts[1].err().time_ns(), d2);
}

// LINK-13 "When the other end refuses a request (LINK-39, LINK-40), the origin
// MUST report REJECTED with the refusing end's reason in the detail; the
// partner reports nothing for it." The node as master (its QueueAdd refused)
// and as peer (its QueueAddRequest refused); then as partner it refuses a
// malformed QueueAdd and reports nothing.
TEST(Link, LINK_13_RejectedAtTheOriginNothingAtThePartner) {
  model::LinkParams link;
  link.classical_delay_us = 100000;  // the refusal reaches the master well before eligibility
  {
    Harness h(Options(link, {Request{.pairs = 1}}));
    QNET_START(h);
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    ASSERT_TRUE(h.SendPeer(RejectFrame(add->msg.add().queue_id(), add->msg.add().origin_create_id(),
                                       link::v1::ERROR_CODE_NORES, "harness-master-says-no")));
    QNET_STOP_AND_TRACE(h, trace);
    const auto rejected = Errs(trace, link::v1::ERROR_CODE_REJECTED);
    ASSERT_EQ(rejected.size(), 1u) << Dump(trace);
    EXPECT_EQ(rejected[0].err().create_id(), 1u);
    EXPECT_NE(rejected[0].err().detail().find("harness-master-says-no"), std::string::npos)
        << rejected[0].err().detail();
  }
  HarnessOptions o = Options(link, {Request{.pairs = 1}});
  o.iut_is_master = false;
  Harness h(o);
  QNET_START(h);
  auto req = h.ExpectLink(LinkFrame::kAddRequest, kWait);
  ASSERT_TRUE(req);
  ASSERT_TRUE(h.SendPeer(RejectFrame(0, req->msg.add_request().origin_create_id(),
                                     link::v1::ERROR_CODE_NORES, "harness-peer-says-no")));
  AddFields bad{.queue_id = 1,
                .origin_create_id = 5,
                .create = MakeCreate("iut", 1),
                .eligible_ns = h.NowNs() + 50'000'000,
                .alpha = 2.0};
  ASSERT_TRUE(h.SendPeer(AddFrame(bad)));
  ASSERT_TRUE(h.ExpectLink(LinkFrame::kReject, kWait))
      << "LINK-40: the malformed QueueAdd is refused";
  QNET_STOP_AND_TRACE(h, trace);
  const auto rejected = Errs(trace, link::v1::ERROR_CODE_REJECTED);
  ASSERT_EQ(rejected.size(), 1u) << Dump(trace);
  EXPECT_EQ(rejected[0].err().create_id(), 1u);
  EXPECT_EQ(rejected[0].err().origin(), "iut");
  EXPECT_NE(rejected[0].err().detail().find("harness-peer-says-no"), std::string::npos);
  for (const auto& r : trace)
    EXPECT_FALSE(r.has_err() && r.err().origin() == "peer") << Dump(trace);
}

// LINK-14 "An end that cannot deliver a heralded pair MUST report it EXPIRED
// (with expired_from..expired_to its sequence numbers) and MUST send an Expire
// frame for it; the end receiving a valid Expire MUST report the same pairs
// EXPIRED." Pair 1 is undeliverable at the node (no Bell state); pair 2 is
// delivered, then the harness expires it, twice.
TEST(Link, LINK_14_ExpiryIsReportedAndSentAndReceived) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 3, .basis = "z"}}));
  QNET_START(h);
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
  herald.clear_bell_state();
  ASSERT_TRUE(h.SendHerald(herald));
  auto expire = h.ExpectLink(LinkFrame::kExpire, kWait);
  ASSERT_TRUE(expire) << "no Expire frame for an undeliverable pair";
  EXPECT_EQ(expire->msg.expire().origin(), "iut");
  EXPECT_EQ(expire->msg.expire().queue_id(), add->msg.add().queue_id());
  EXPECT_EQ(expire->msg.expire().sequence_from(), 1u);
  EXPECT_EQ(expire->msg.expire().sequence_to(), 1u);
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 2)));
  g = h.NextGenerate(kWait);  // third batch: left running
  ASSERT_TRUE(g);
  ASSERT_TRUE(h.SendPeer(ExpireFrame(add->msg.add().queue_id(), "iut", 2, 2)));
  ASSERT_TRUE(h.SendPeer(ExpireFrame(add->msg.add().queue_id(), "iut", 2, 2)));
  std::this_thread::sleep_for(kQuiet);
  QNET_STOP_AND_TRACE(h, trace);
  const auto expired = Errs(trace, link::v1::ERROR_CODE_EXPIRED);
  ASSERT_EQ(expired.size(), 2u) << "one EXPIRED per pair, never twice\n" << Dump(trace);
  EXPECT_EQ(expired[0].err().expired_from(), 1u);
  EXPECT_EQ(expired[0].err().expired_to(), 1u);
  EXPECT_EQ(expired[1].err().expired_from(), 2u);
  EXPECT_EQ(expired[1].err().expired_to(), 2u);
  for (const auto& e : expired) {
    EXPECT_EQ(e.err().create_id(), 1u);
    EXPECT_EQ(e.err().origin(), "iut");
  }
  ASSERT_EQ(Oks(trace).size(), 1u);
  EXPECT_EQ(Oks(trace)[0].ok().pair().sequence(), 2u);
}

// LINK-15 "Every CREATE, OK, ERR and refused input MUST go through the injected
// Tracer (TraceRecord.create / ok / err / drop), and the OK record MUST carry
// the herald's attempts."
TEST(Link, LINK_15_CreateOkErrAndDropsAreTracedWithAttempts) {
  std::vector<Request> requests = {Request{.pairs = 2, .basis = "z"},
                                   Request{.pairs = 1, .min_fidelity = 0.99, .start_s = 0.05}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  const uint64_t attempts[] = {17, 3};
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1);
    herald.set_attempts(attempts[i]);
    ASSERT_TRUE(h.SendHerald(herald));
  }
  LinkFrame no_body;
  no_body.set_link("L");
  ASSERT_TRUE(h.SendPeer(no_body));
  std::this_thread::sleep_for(Ms(100));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Creates(trace).size(), 2u);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 2u);
  EXPECT_EQ(oks[0].attempts(), 17u);
  EXPECT_EQ(oks[1].attempts(), 3u);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_UNSUPPORTED).size(), 1u);
  EXPECT_EQ(Drops(trace, results::v1::DROP_REASON_MALFORMED_FRAME).size(), 1u) << Dump(trace);
}

// LINK-16 "An end MUST trace LinkBusy{link, busy: true} at the decision at which
// the link goes from having no eligible item to having one, and busy: false at
// the decision at which it goes back." Two requests, one after the other.
TEST(Link, LINK_16_LinkBusyAtEligibilityAndAfterTheLastBatch) {
  std::vector<Request> requests = {Request{.pairs = 2, .basis = "z"},
                                   Request{.pairs = 1, .basis = "z", .start_s = 0.3}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  std::vector<uint64_t> eligible, first_generate, last_herald;
  for (int item = 0; item < 2; ++item) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    eligible.push_back(add->msg.add().eligible_ns());
    for (uint32_t i = 0; i < requests[item].pairs; ++i) {
      auto g = h.NextGenerate(kWait);
      ASSERT_TRUE(g);
      if (i == 0) first_generate.push_back(g->at_ns);
      Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1);
      ASSERT_TRUE(h.SendHerald(herald));
      if (i + 1 == requests[item].pairs) last_herald.push_back(herald.time_ns());
    }
  }
  std::this_thread::sleep_for(Ms(100));
  QNET_STOP_AND_TRACE(h, trace);
  const auto busy = Busy(trace);
  ASSERT_EQ(busy.size(), 4u) << Dump(trace);
  for (int item = 0; item < 2; ++item) {
    const auto& on = busy[2 * item];
    const auto& off = busy[2 * item + 1];
    EXPECT_EQ(on.link_busy().link(), "L");
    EXPECT_TRUE(on.link_busy().busy());
    EXPECT_GE(on.time_ns(), eligible[item]);
    EXPECT_LE(on.time_ns(), first_generate[item]);
    EXPECT_FALSE(off.link_busy().busy());
    EXPECT_GE(off.time_ns(), last_herald[item]);
  }
}

}  // namespace
}  // namespace qnet::interop
