// specs/link.md section 9 (streaming requests): LINK-45 .. LINK-49, and the
// parts of LINK-10, LINK-30, LINK-37 and PHYS-B17 .. B18 about batches of
// several pairs. The topology's <request>s cannot stand (pairs >= 1, TOPO-26),
// so standing requests, windows, partner types and cancels come from the
// harness as the other end: as the peer (QueueAddRequest, QueueCancel
// {origin_create_id}) with the node as master, or as the master (QueueAdd,
// QueueCancel{queue_id, deadline}) with the node as peer.
#include <cmath>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using link::v1::Create;
using physical::v1::OUTCOME_DEADLINE;
using physical::v1::OUTCOME_SUCCESS;
using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_PAIR_EXPIRED;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;

constexpr uint64_t kMs = 1'000'000;

HarnessOptions AsPeer(HarnessOptions o) {
  o.iut_is_master = false;
  return o;
}

Create Standing(link::v1::RequestType type = link::v1::REQUEST_TYPE_MEASURE,
                link::v1::BasisChoice basis = link::v1::BASIS_CHOICE_Z) {
  return MakeCreate("iut", 0, type, basis);
}

int ErrsOf(const Trace& trace, const std::string& origin, uint64_t create_id) {
  int n = 0;
  for (const auto& r : trace)
    n += r.has_err() && r.err().origin() == origin && r.err().create_id() == create_id;
  return n;
}

// LINK-45 "A CREATE with pairs 0 MUST be accepted as a standing request: it is
// served like any other item but never completes (LINK-32) [...]". The harness
// (peer) asks for a standing MEASURE request; the node (master) queues it
// (QueueAdd with pairs 0) and serves it batch after batch: 192 pairs heralded,
// and a fourth Generate still comes. LINK-49: alone and standing, every batch
// asks for max_batch_pairs (64) pairs; the harness heralds them all (PHYS-B18:
// index 1..64, more but on the last), and the node delivers one OK per pair,
// numbered 1..192 (LINK-08) with the origin's create id (LINK-07).
TEST(Link, LINK_45_StandingRequestOfThePeerIsServedWithoutEnd) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(7, Standing(), h.NowNs())));
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add) << "a zero-pair CREATE was not queued";
  EXPECT_EQ(add->msg.add().origin(), "peer");
  EXPECT_EQ(add->msg.add().origin_create_id(), 7u);
  EXPECT_EQ(add->msg.add().create().pairs(), 0u);
  uint64_t seq = 0;
  std::vector<Herald> sent;
  for (int batch = 1; batch <= 3; ++batch) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "batch " << batch << ": the standing item was not served";
    EXPECT_EQ(g->msg.queue_id(), add->msg.add().queue_id());
    ASSERT_EQ(PairsOf(g->msg), 64u) << "LINK-49: max_batch_pairs for a lone standing item\n"
                                    << g->msg.DebugString();
    EXPECT_EQ(g->msg.pairs(), 64u);
    ASSERT_EQ(g->msg.measure_bases_size(), 64);
    for (int b : g->msg.measure_bases()) EXPECT_EQ(b, physical::v1::BASIS_Z);
    const auto heralds = h.HeraldsFor(g->msg, 64, seq + 1);
    ASSERT_TRUE(h.SendHeralds(heralds));
    sent.insert(sent.end(), heralds.begin(), heralds.end());
    seq += 64;
  }
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g) << "LINK-45: a standing item never completes";
  EXPECT_EQ(g->msg.queue_id(), add->msg.add().queue_id());
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 192u) << Dump(trace);
  for (size_t i = 0; i < oks.size(); ++i) {
    const auto& ok = oks[i].ok();
    EXPECT_EQ(ok.create_id(), 7u);
    EXPECT_EQ(ok.pair().origin(), "peer");
    EXPECT_EQ(ok.pair().sequence(), i + 1);
    EXPECT_EQ(ok.herald_seq(), sent[i].pair_seq());
    EXPECT_EQ(ok.time_ns(), sent[i].time_ns());
    EXPECT_EQ(ok.basis(), physical::v1::BASIS_Z);
  }
  EXPECT_EQ(ErrsOf(trace, "peer", 7), 0) << Dump(trace);
}

// LINK-45 "[...] and leaves only by its deadline (max_time), a refusal or a
// cancel." The harness (master) queues a standing KEEP item with a deadline;
// the node (peer) serves it with batches of the slots it can have (LINK-49: 4
// memories), each Generate carrying the deadline (LINK-27), until the batch
// that runs at the deadline ends DEADLINE: then TIMEOUT with the origin's
// create id (LINK-12) and no further Generate.
TEST(Link, LINK_45_StandingRequestLeavesAtItsDeadline) {
  Harness h(AsPeer(Options(model::LinkParams{})));
  QNET_START(h);
  const uint64_t deadline = h.NowNs() + 400 * kMs;
  ASSERT_TRUE(h.SendPeer(AddFrame({.queue_id = 1,
                                   .origin_create_id = 31,
                                   .create = Standing(link::v1::REQUEST_TYPE_KEEP),
                                   .eligible_ns = h.NowNs() + 10 * kMs,
                                   .deadline_ns = deadline})));
  uint64_t seq = 0;
  for (;;) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "after " << seq << " pairs";
    EXPECT_EQ(g->msg.queue_id(), 1u);
    EXPECT_EQ(g->msg.deadline_ns(), deadline);
    if (h.NowNs() + 100 * kMs < deadline) {
      const uint32_t k = PairsOf(g->msg);
      EXPECT_EQ(k, 4u) << "LINK-49: a lone standing keep item takes the free slots\n"
                       << g->msg.DebugString();
      EXPECT_EQ(SlotsOf(g->msg), (std::vector<uint32_t>{0, 1, 2, 3}));
      ASSERT_TRUE(h.SendHeralds(h.HeraldsFor(g->msg, k, seq + 1)));
      seq += k;
      std::this_thread::sleep_for(Ms(20));
      continue;
    }
    h.SleepUntilNs(deadline);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_DEADLINE, 0, deadline)));
    break;
  }
  EXPECT_FALSE(h.NextGenerate(Ms(500))) << "a standing item was served after its deadline";
  QNET_STOP_AND_TRACE(h, trace);
  const auto timeouts = Errs(trace, link::v1::ERROR_CODE_TIMEOUT);
  ASSERT_EQ(timeouts.size(), 1u) << Dump(trace);
  EXPECT_EQ(timeouts[0].err().create_id(), 31u);
  EXPECT_EQ(timeouts[0].err().origin(), "peer");
  EXPECT_GE(timeouts[0].err().time_ns(), deadline);
  EXPECT_EQ(Oks(trace).size(), seq);
  EXPECT_GE(seq, 8u);
}

// LINK-48 "[...] The peer MUST take the deadline of a QueueCancel for an item
// it holds. A cancelled item leaves both queues at the first decision at or
// after its deadline (LINK-25 step 1) with no ERR at either end; pairs
// heralded before are delivered as usual, and no attempt starts after the
// deadline (it is in every Generate, PHYS-B10)." The harness (master) cancels
// its standing item while a batch runs; the node's next Generate carries the
// cancel's deadline, the batch at the deadline ends DEADLINE, and the item
// is gone without an ERR. LINK-36: a QueueCancel without a deadline at the
// peer is MALFORMED_FRAME, one for an item never known UNEXPECTED_FRAME, one
// for an item already gone is ignored.
TEST(Link, LINK_48_PeerTakesTheDeadlineOfTheMastersCancel) {
  Harness h(AsPeer(Options(model::LinkParams{})));
  QNET_START(h);
  ASSERT_TRUE(h.SendPeer(AddFrame(
      {.queue_id = 1, .origin_create_id = 9, .create = Standing(), .eligible_ns = h.NowNs()})));
  uint64_t seq = 0;
  for (int batch = 0; batch < 2; ++batch) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.deadline_ns(), 0u);
    ASSERT_TRUE(h.SendHeralds(h.HeraldsFor(g->msg, 2, seq + 1)));  // the other end took two
    seq += 2;
  }
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_TRUE(h.SendPeer(CancelFrame(1, 9, 0)));  // no deadline: malformed at the peer
  ASSERT_TRUE(h.SendPeer(CancelFrame(55, 9, h.NowNs() + kMs)));  // never known
  const uint64_t deadline = h.NowNs() + 300 * kMs;
  ASSERT_TRUE(h.SendPeer(CancelFrame(1, 9, deadline)));
  std::this_thread::sleep_for(Ms(50));
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, ++seq)));  // before the deadline
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g) << "the item left before its deadline";
  EXPECT_EQ(g->msg.deadline_ns(), deadline) << "the cancel's deadline is not in the Generate";
  h.SleepUntilNs(deadline);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_DEADLINE, 0, deadline)));
  EXPECT_FALSE(h.NextGenerate(Ms(500))) << "a cancelled item was served after its deadline";
  ASSERT_TRUE(h.SendPeer(CancelFrame(1, 9, h.NowNs())));  // already gone: ignored
  Watch(h, Ms(100), 1);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), seq) << "pairs heralded before the cancel are delivered";
  EXPECT_EQ(ErrsOf(trace, "peer", 9), 0) << "LINK-48: no ERR for a cancelled item\n" << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_MALFORMED_FRAME).size(), 1u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
}

// LINK-48 "[...] the peer, for its own request, sends QueueCancel
// {origin_create_id}, and the master then does the same as for its own item"
// -- "the master sets the item's deadline to now + d + m (if earlier), marks it
// cancelled and sends QueueCancel{queue_id, origin_create_id, deadline_ns}".
// The harness (peer) cancels its standing request; the node (master) answers
// with the item's queue id and a deadline within [sent + d + m, arrival + m]
// (its now lies between the harness's send and the answer's arrival minus d,
// LINK-W6; m measured from the node's own CREATE, LINK-18); its next Generate
// carries that deadline; the item leaves at the deadline with no ERR at the
// master either. LINK-36: a QueueCancel for a request the master never knew
// is UNEXPECTED_FRAME; for one already gone it is ignored.
TEST(Link, LINK_48_MasterCancelsAtThePeersRequest) {
  model::LinkParams link;
  link.classical_delay_us = 20000;
  Harness h(Options(link, {Request{.pairs = 1, .basis = "z", .max_time_s = 10}}));
  QNET_START(h);
  auto own = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(own);
  const uint64_t d = model::DelayNs(link);
  const int64_t m = MarginOf(own->msg.add(), 10'000'000'000ull, link);
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(4, Standing(), h.NowNs())));
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add);
  const uint64_t qid = add->msg.add().queue_id();
  ASSERT_EQ(add->msg.add().origin_create_id(), 4u);
  uint64_t seq = 0;
  int standing_batches = 0;
  std::optional<Timed<Generate>> g;
  for (;;) {
    g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    if (g->msg.queue_id() == qid && ++standing_batches == 3) break;
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, ++seq)));
  }
  const uint64_t sent = h.NowNs();
  ASSERT_TRUE(h.SendPeer(CancelFrame(0, 4, 0)));
  ASSERT_TRUE(h.SendPeer(CancelFrame(0, 77, 0)));  // never known
  std::this_thread::sleep_for(Ms(5));
  const size_t phys_mark = h.physics_log().size();
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, ++seq)));  // before the deadline
  auto cancel = h.ExpectLink(LinkFrame::kCancel, kWait);
  ASSERT_TRUE(cancel) << "the master did not announce the cancel";
  const auto& c = cancel->msg.cancel();
  EXPECT_EQ(c.queue_id(), qid);
  EXPECT_EQ(c.origin_create_id(), 4u);
  ::testing::Test::RecordProperty("cancel_deadline_minus_sent_ns",
                                  std::to_string(static_cast<int64_t>(c.deadline_ns() - sent)));
  EXPECT_GE(c.deadline_ns() + 2, sent + d + m) << "deadline before now + d + m";
  EXPECT_LE(c.deadline_ns(), cancel->at_ns + m + 2) << "deadline after now + d + m";
  auto after = AwaitGenerate(h, phys_mark, "L");
  ASSERT_TRUE(after) << "the item left before its deadline";
  EXPECT_EQ(after->msg.queue_id(), qid);
  EXPECT_EQ(after->msg.deadline_ns(), c.deadline_ns()) << "the new deadline is not in the Generate";
  h.SleepUntilNs(std::max(c.deadline_ns(), after->msg.start_ns() + 1));
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(after->msg, OUTCOME_DEADLINE, 0, c.deadline_ns())));
  EXPECT_FALSE(h.NextGenerate(Ms(500))) << "a cancelled item was served after its deadline";
  ASSERT_TRUE(h.SendPeer(CancelFrame(0, 4, 0)));  // gone: ignored
  Watch(h, Ms(100), 1);
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(ErrsOf(trace, "peer", 4), 0) << "LINK-48: no ERR for a cancelled item\n" << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
  EXPECT_EQ(LinkFramesIn(h.peer_log(), LinkFrame::kCancel).size(), 1u);
}

// LINK-49 / PHYS-B17 / PHYS-B18 / LINK-30: a keep request of 7 pairs on a node
// of 4 memories. Batch 1 asks for 4 pairs in slots 0..3 (`slots`, LINK-27,
// LINK-33); the harness heralds 4 successes (index 1..4, more but on the
// last): the node traces one OK per pair, in its slot, at the herald's time,
// and sends no Generate before the herald without `more`. Batch 2 asks for the
// 3 pairs still needed; the harness heralds 2 (the other end could take 2): the
// unused slot goes back without a Free (LINK-30, LINK-34). Batch 3 asks for the
// last pair with `slot`.
TEST(Link, LINK_49_BatchOfSeveralPairsIsActedOnPairByPair) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 7, .type = "keep"}}));
  QNET_START(h);
  std::vector<Herald> sent;
  // Batch 1.
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_FALSE(g->msg.has_slot()) << g->msg.DebugString();
  ASSERT_EQ(SlotsOf(g->msg), (std::vector<uint32_t>{0, 1, 2, 3}));
  ASSERT_EQ(PairsOf(g->msg), 4u);
  auto heralds = h.HeraldsFor(g->msg, 4, 1);
  ASSERT_TRUE(h.SendHeralds({heralds.begin(), heralds.begin() + 3}));
  EXPECT_FALSE(h.NextGenerate(Ms(300))) << "a Generate before the batch's last herald";
  heralds[3].set_time_ns(h.NowNs());
  ASSERT_TRUE(h.SendHerald(heralds[3]));
  sent.insert(sent.end(), heralds.begin(), heralds.end());
  // Batch 2.
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_GE(g->at_ns, heralds[3].time_ns()) << "the next batch before the last herald's time";
  EXPECT_EQ(g->msg.start_ns(), heralds[3].time_ns()) << "LINK-30: decide at the last herald";
  ASSERT_EQ(PairsOf(g->msg), 3u) << g->msg.DebugString();
  const std::vector<uint32_t> slots2 = SlotsOf(g->msg);
  ASSERT_EQ(slots2.size(), 3u);
  heralds = h.HeraldsFor(g->msg, 2, 5);
  ASSERT_TRUE(h.SendHeralds(heralds));
  sent.insert(sent.end(), heralds.begin(), heralds.end());
  // Batch 3.
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->msg.start_ns(), heralds[1].time_ns());
  ASSERT_EQ(PairsOf(g->msg), 1u);
  EXPECT_TRUE(g->msg.has_slot()) << "LINK-27: `slot` for one pair";
  EXPECT_EQ(g->msg.slots_size(), 0);
  const Herald last = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 7);
  ASSERT_TRUE(h.SendHerald(last));
  sent.push_back(last);
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "LINK-32: 7 pairs heralded";
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 7u) << Dump(trace);
  std::multiset<uint32_t> ok_slots;
  for (size_t i = 0; i < 7; ++i) {
    SCOPED_TRACE("pair " + std::to_string(i + 1));
    const auto& ok = oks[i].ok();
    EXPECT_EQ(ok.pair().sequence(), i + 1);
    EXPECT_EQ(ok.herald_seq(), sent[i].pair_seq());
    EXPECT_EQ(ok.time_ns(), sent[i].time_ns());
    EXPECT_GE(oks[i].time_ns(), sent[i].time_ns()) << "OK traced before its herald's time";
    ASSERT_TRUE(ok.has_slot());
    EXPECT_EQ(ok.slot(), sent[i].slot());
    ok_slots.insert(ok.slot());
  }
  std::multiset<uint32_t> freed;
  for (const auto& f : FreesIn(h.physics_log())) freed.insert(f.msg);
  EXPECT_EQ(freed, ok_slots) << "one Free per pair (hold-s 0), none for the unused slot "
                             << slots2[2];
}

// LINK-47 "partner_type, when set, MUST be what the partner end does with its
// qubit (KEEP or MEASURE) [...]; an end that measures uses no memory for the
// item and draws its bases by LINK-10 from the CREATE's basis choice."
// LINK-10 "[...] or, when the CREATE carries z_probability z, Z if
// Bernoulli(z) else X (a biased choice [...])". The harness (master) keeps,
// the node (partner) measures a standing XZ item with z_probability 0.9:
// Generates without slot, 64 bases each (LINK-49: the measuring end's batch is
// not bounded by memory, of which the node has one slot), Z in 0.9 of them
// within 3 standard errors. The harness heralds 3 successes per batch (its own
// end could take 3).
TEST(Link, LINK_47_PartnerMeasuresWithBiasedBases) {
  HarnessOptions o = AsPeer(Options(model::LinkParams{}));
  o.memories = 1;
  Harness h(o);
  QNET_START(h);
  Create c = Standing(link::v1::REQUEST_TYPE_KEEP, link::v1::BASIS_CHOICE_XZ);
  c.set_partner_type(link::v1::REQUEST_TYPE_MEASURE);
  c.set_z_probability(0.9);
  ASSERT_TRUE(h.SendPeer(
      AddFrame({.queue_id = 1, .origin_create_id = 3, .create = c, .eligible_ns = h.NowNs()})));
  std::map<physical::v1::Basis, int> bases;
  uint64_t seq = 0;
  for (int batch = 0; batch < 12; ++batch) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "batch " << batch + 1;
    EXPECT_EQ(g->msg.queue_id(), 1u);
    EXPECT_FALSE(g->msg.has_slot());
    EXPECT_EQ(g->msg.slots_size(), 0);
    ASSERT_NE(g->msg.measure_basis(), physical::v1::BASIS_UNSPECIFIED) << "the partner keeps";
    ASSERT_EQ(PairsOf(g->msg), 64u) << g->msg.DebugString();
    ASSERT_EQ(g->msg.measure_bases_size(), 64);
    EXPECT_EQ(g->msg.measure_basis(), g->msg.measure_bases(0));
    for (int b : g->msg.measure_bases()) ++bases[static_cast<physical::v1::Basis>(b)];
    ASSERT_TRUE(h.SendHeralds(h.HeraldsFor(g->msg, 3, seq + 1)));
    seq += 3;
  }
  QNET_STOP_AND_TRACE(h, trace);
  const int n = 12 * 64;
  ::testing::Test::RecordProperty("z_x", std::to_string(bases[physical::v1::BASIS_Z]) + " " +
                                             std::to_string(bases[physical::v1::BASIS_X]));
  EXPECT_EQ(bases[physical::v1::BASIS_Z] + bases[physical::v1::BASIS_X], n)
      << "XZ drew another basis";
  EXPECT_NEAR(bases[physical::v1::BASIS_Z] / double(n), 0.9, 3 * std::sqrt(0.09 / n));
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), seq);
  for (const auto& r : oks) {
    EXPECT_FALSE(r.ok().has_slot());
    EXPECT_EQ(r.ok().create_id(), 3u);
  }
  EXPECT_TRUE(FreesIn(h.physics_log()).empty());
}

// LINK-37 "[...] or after the batch's last herald" (dropped, UNEXPECTED_FRAME);
// "a SUCCESS herald of the running batch that names [...] another index than
// the number of successes so far plus one, or that comes after as many
// successes as the end asked for MUST be counted as a heralded success of the
// batch's item, and the pair expired (LINK-14, drop reason PAIR_EXPIRED) with
// its slot freed." A keep request of 10 pairs on 2 memories: batch 1 asks for
// 2 pairs; the harness heralds index 1 (delivered, sequence 1), index 3
// (expired, sequence 2), then a third success (expired, sequence 3: beyond
// what the node asked for), then a stray herald of batch 1 after its last
// (dropped); batch 2 goes on with sequence 4.
TEST(Link, LINK_37_BatchHeraldsWithTheWrongIndexOrBeyondTheBatch) {
  HarnessOptions o = Options(model::LinkParams{}, {Request{.pairs = 10, .type = "keep"}});
  o.memories = 2;
  Harness h(o);
  QNET_START(h);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_EQ(PairsOf(g->msg), 2u) << g->msg.DebugString();
  auto heralds = h.HeraldsFor(g->msg, 4, 1);
  heralds[1].set_index(3);  // second success named as the third
  heralds[2].set_index(3);  // the third success of a batch of two
  heralds[2].clear_slot();
  heralds[2].set_more(false);
  heralds.resize(3);
  ASSERT_TRUE(h.SendHeralds(heralds));
  for (int i = 0; i < 2; ++i) {
    auto e = h.ExpectLink(LinkFrame::kExpire, kWait);
    ASSERT_TRUE(e) << "no Expire for pair " << i + 2;
    EXPECT_EQ(e->msg.expire().sequence_from(), static_cast<uint64_t>(i + 2));
    EXPECT_EQ(e->msg.expire().sequence_to(), static_cast<uint64_t>(i + 2));
  }
  Herald stray = heralds[2];
  stray.set_index(4);
  stray.set_pair_seq(4);
  stray.set_time_ns(h.NowNs());
  ASSERT_TRUE(h.SendHerald(stray));  // batch 1 is over
  auto g2 = h.NextGenerate(kWait);
  ASSERT_TRUE(g2) << "the link stopped";
  EXPECT_EQ(g2->msg.batch(), g->msg.batch() + 1);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g2->msg, OUTCOME_SUCCESS, 5)));
  ASSERT_TRUE(h.NextGenerate(kWait));
  QNET_STOP_AND_TRACE(h, trace);
  std::vector<uint64_t> ok_seqs;
  for (const auto& r : Oks(trace)) ok_seqs.push_back(r.ok().pair().sequence());
  EXPECT_EQ(ok_seqs, (std::vector<uint64_t>{1, 4})) << Dump(trace);
  std::vector<uint64_t> expired;
  for (const auto& e : Errs(trace, link::v1::ERROR_CODE_EXPIRED))
    for (uint64_t s = e.err().expired_from(); s <= e.err().expired_to(); ++s) expired.push_back(s);
  EXPECT_EQ(expired, (std::vector<uint64_t>{2, 3})) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_PAIR_EXPIRED).size(), 2u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
}

}  // namespace
}  // namespace qnet::interop
