// specs/link.md section 4 (scheduling): LINK-24 .. LINK-32, LINK-41, LINK-42,
// observed through the Generates the node sends to the scripted qworld, the
// heralds the harness answers with, and the node's trace.
#include <algorithm>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using physical::v1::OUTCOME_DEADLINE;
using physical::v1::OUTCOME_IDLE;
using physical::v1::OUTCOME_QUEUE_MISMATCH;
using physical::v1::OUTCOME_SUCCESS;

constexpr uint64_t kMs = 1'000'000;

// A link whose heralding station sits at the node under test (midpoint 0,
// 4000 km): cycle = 2 x 4000 km / v = 38.7 ms, while the herald reaches the
// node HeraldDelay(a) = 4000 km / v = 19.3 ms after an attempt starts, i.e.
// ~19 ms before the batch's time_ns (PHYS-B12, PHYS-G5).
model::LinkParams AsymmetricLink() {
  model::LinkParams link;
  link.length_km = 4000;
  link.midpoint = 0;
  link.attempt_us = 10;
  return link;
}
int64_t HeraldDelayAtANs(const model::LinkParams& link) {
  return std::llround(std::max(link.attempt_us * 1e-6, link.length_km / model::kFibreKmPerSecond) *
                      1e9);
}

// LINK-24 "An end MUST take scheduling decisions only at reference times: the
// time_ns of the herald of its last batch [...], or, when no batch runs and no
// decision is due, the earliest eligible time or deadline of a queued item
// after the last reference time (a timer)." No Generate before an item is
// eligible, none while a batch runs, and the idle end wakes for the next item.
TEST(Link, LINK_24_DecisionsOnlyAtReferenceTimes) {
  // Item 2 starts late enough for item 1 to be done first on a loaded machine.
  std::vector<Request> requests = {Request{.pairs = 2, .basis = "z"},
                                   Request{.pairs = 1, .basis = "z", .start_s = 0.8}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  auto add1 = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add1);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  EXPECT_GE(g->at_ns, add1->msg.add().eligible_ns()) << "Generate before the item was eligible";
  EXPECT_FALSE(h.NextGenerate(Ms(200))) << "a second Generate while the batch runs";
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 2)));
  auto add2 = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add2);
  g = h.NextGenerate(kWait);
  ASSERT_TRUE(g) << "the idle end did not wake at the next eligible time";
  EXPECT_EQ(g->msg.queue_id(), 2u);
  EXPECT_GE(g->at_ns, add2->msg.add().eligible_ns());
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 3)));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 3u);
}

// LINK-25 "A decision at reference time r MUST, in this order: (1) remove, in
// queue id order, every item whose deadline is <= r (TIMEOUT, LINK-12) [...];
// (3) select among the items [...]". The batch that ends exactly at item A's
// deadline is followed by a Generate for B, never A.
TEST(Link, LINK_25_TimedOutItemIsRemovedBeforeSelection) {
  std::vector<Request> requests = {Request{.pairs = 1000, .basis = "z", .max_time_s = 0.4},
                                   Request{.pairs = 100000, .basis = "z"}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  auto a = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(a);
  ASSERT_TRUE(h.ExpectLink(LinkFrame::kAdd, kWait));
  const uint64_t deadline = a->msg.add().deadline_ns();
  ASSERT_GT(deadline, 0u);
  for (int seq = 1;; ++seq) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    if (h.NowNs() + 3 * kMs < deadline) {
      std::this_thread::sleep_for(Ms(1));
      // No success after the deadline (PHYS-B10), however late this thread runs.
      const uint64_t at = std::min(h.NowNs(), deadline - kMs);
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, seq, at)));
      continue;
    }
    h.SleepUntilNs(deadline);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, seq, deadline)));
    break;
  }
  for (int i = 0; i < 5; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.queue_id(), 2u) << "the timed-out item was selected at or after its deadline";
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1000 + i)));
  }
  QNET_STOP_AND_TRACE(h, trace);
  const auto timeouts = Errs(trace, link::v1::ERROR_CODE_TIMEOUT);
  ASSERT_EQ(timeouts.size(), 1u) << Dump(trace);
  EXPECT_EQ(timeouts[0].err().create_id(), 1u);
}

// LINK-25 "(1) remove, in queue id order, every item whose deadline is <= r".
// Two items of the peer with the same deadline leave with TIMEOUT in queue id
// order (the node reports them with the origin's create ids 50, then 40).
TEST(Link, LINK_25_DueItemsLeaveInQueueIdOrder) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  link::v1::Create c = MakeCreate("iut", 1000);
  c.mutable_max_time()->set_nanos(200'000'000);
  const uint64_t created = h.NowNs();
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(50, c, created)));
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(40, c, created)));
  auto x = h.ExpectLink(LinkFrame::kAdd, kWait);
  auto y = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(x && y);
  ASSERT_EQ(x->msg.add().origin_create_id(), 50u);
  ASSERT_EQ(x->msg.add().deadline_ns(), y->msg.add().deadline_ns());
  const uint64_t deadline = x->msg.add().deadline_ns();
  for (int seq = 1;; ++seq) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    if (h.NowNs() + 3 * kMs < deadline) {
      std::this_thread::sleep_for(Ms(1));
      // No success after the deadline (PHYS-B10), however late this thread runs.
      const uint64_t at = std::min(h.NowNs(), deadline - kMs);
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, seq, at)));
      continue;
    }
    h.SleepUntilNs(deadline);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_DEADLINE, 0, deadline)));
    break;
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  const auto timeouts = Errs(trace, link::v1::ERROR_CODE_TIMEOUT);
  ASSERT_EQ(timeouts.size(), 2u) << Dump(trace);
  EXPECT_EQ(timeouts[0].err().create_id(), 50u);
  EXPECT_EQ(timeouts[1].err().create_id(), 40u);
  EXPECT_EQ(timeouts[0].err().origin(), "peer");
}

// LINK-26 "Selection MUST be weighted fair queueing with integer tags: item i
// has stride s_i = 2^min(priority_i, 3) [...] and finish tag F_i = V_i + (c_i +
// 1) s_i [...]; the item with the smallest (F_i, queue id) is selected. When a
// batch of i ends in SUCCESS or IDLE, the end sets its virtual time V = max(V,
// F_i) and then increments c_i; the master stamps each new item with
// virtual_start = its current V." Every selection of ~400 batches over items
// of priorities 0, 1, 3 and a later priority-0 item must be the one the
// formula picks, and the later item's virtual_start must be V at its CREATE.
// LINK-49 "A batch of item i at an end MUST ask for k pairs, k the smallest of:
// max_batch_pairs (default 64); the pairs i still needs [...]; and 1 + the
// number of charges m >= 1 after which (F_i + m s_i, queue id of i) is still
// smaller than (F_j, queue id of j) for every other item j eligible at the
// reference time": every batch's size is the model's. The harness heralds one
// success per batch (PHYS-B17: the other end took one pair), so each batch is
// one charge.
TEST(Link, LINK_26_WeightedFairQueueingSelection) {
  std::vector<Request> requests = {
      Request{.pairs = 100000, .basis = "z", .priority = 0},
      Request{.pairs = 100000, .basis = "z", .priority = 1},
      Request{.pairs = 100000, .basis = "z", .priority = 3},
      Request{.pairs = 100000, .basis = "z", .priority = 0, .start_s = 0.4}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  model::Wfq wfq;
  uint64_t max_eligible = 0;
  for (int i = 0; i < 3; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    const auto& a = add->msg.add();
    EXPECT_EQ(a.virtual_start(), 0u);
    wfq.Add(a.queue_id(), a.create().priority(), a.virtual_start(), a.eligible_ns());
    max_eligible = std::max(max_eligible, a.eligible_ns());
  }
  std::map<uint64_t, int> served;
  std::map<uint32_t, int> pairs_asked;              // batch size -> batches
  std::vector<std::pair<uint64_t, uint64_t>> v_at;  // (reference time of a charge, V after it)
  uint64_t r = 0;
  std::optional<link::v1::QueueAdd> late;
  uint64_t v_when_read = 0;  // V of the model when the late QueueAdd was read
  int after_late = 0;
  for (int batch = 1; after_late < 100; ++batch) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "batch " << batch;
    uint64_t herald_time = batch == 1 ? max_eligible + kMs : 0;
    // The late item's QueueAdd: the CREATE comes at 0.4 s on the shared clock,
    // and the QueueAdd leaves d later, before the item can be eligible at any
    // decision (2 d + m), so it is read before this batch's checks.
    if (!late) {
      const bool due = h.NowNs() >= 400 * kMs;
      auto add = h.ExpectLink(LinkFrame::kAdd, due ? kWait : Ms(0));
      ASSERT_TRUE(add || !due) << "no QueueAdd for the CREATE at 0.4 s; node alive: "
                               << h.NodeAlive() << "\n"
                               << h.NodeLog();
      if (add) {
        v_when_read = wfq.virtual_time();
        late = add->msg.add();
        wfq.Add(late->queue_id(), late->create().priority(), late->virtual_start(),
                late->eligible_ns());
        herald_time = std::max(h.NowNs(), late->eligible_ns() + kMs);
      }
    }
    const uint64_t qid = g->msg.queue_id();
    if (batch == 1) {
      EXPECT_EQ(qid, 1u) << "the priority-0 item has the smallest tag";
      r = g->msg.start_ns();  // the first decision's reference time (LINK-27)
    } else {
      ASSERT_EQ(qid, wfq.Select(r)) << "batch " << batch << " at reference time " << r;
      EXPECT_EQ(g->msg.start_ns(), r) << "LINK-27: start_ns is the reference time";
    }
    // LINK-49: no more pairs than fair queueing would give the item before another.
    ASSERT_EQ(PairsOf(g->msg), std::min<uint64_t>(64, wfq.FairBatch(qid, r)))
        << "batch " << batch << " at reference time " << r;
    pairs_asked[PairsOf(g->msg)] += 1;
    after_late += late.has_value();
    if (herald_time != 0) {
      h.SleepUntilNs(herald_time);
    } else {
      std::this_thread::sleep_for(Ms(1));
      herald_time = h.NowNs();
    }
    wfq.Charge(qid);
    ++served[qid];
    v_at.push_back({herald_time, wfq.virtual_time()});
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, batch, herald_time)));
    r = herald_time;
  }
  QNET_STOP_AND_TRACE(h, trace);
  ::testing::Test::RecordProperty(
      "served_p0_p1_p3_late", std::to_string(served[1]) + " " + std::to_string(served[2]) + " " +
                                  std::to_string(served[3]) + " " + std::to_string(served[4]));
  EXPECT_GT(served[1], 3 * served[2] / 2) << "priority 0 vs 1 should share 2 : 1";
  EXPECT_GT(served[2], 2 * served[3]) << "priority 1 vs 3 should share 4 : 1";
  EXPECT_GT(served[4], 0);
  EXPECT_GT(pairs_asked.rbegin()->first, 1u) << "no batch of several pairs";
  // "the master stamps each new item with virtual_start = its current V": V
  // after the charges of the heralds acted on before the CREATE (its trace
  // record carries the CREATE's time, RES-4). A herald whose time is just
  // before the CREATE may be acted on just after it on a loaded machine, so V
  // is one the model reached between 50 ms before the CREATE and the reading
  // of its QueueAdd.
  const auto creates = Creates(trace);
  ASSERT_EQ(creates.size(), 4u);
  const uint64_t t_create = creates[3].time_ns();
  std::set<uint64_t> allowed = {0};
  uint64_t v_lo = 0;
  for (const auto& [at, v_after] : v_at) {
    if (at + 50 * kMs < t_create) v_lo = v_after;
    if (v_after <= v_when_read) allowed.insert(v_after);
  }
  ::testing::Test::RecordProperty("late_virtual_start", std::to_string(late->virtual_start()));
  EXPECT_TRUE(allowed.count(late->virtual_start()) && late->virtual_start() >= v_lo &&
              late->virtual_start() <= v_when_read)
      << "virtual_start " << late->virtual_start() << " is not V at the CREATE: expected in ["
      << v_lo << ", " << v_when_read << "]";
}

// LINK-27 "For each selected item an end MUST send exactly one Generate with the
// next batch number (1, 2, 3, ... per link end), the item's queue id, alpha and
// deadline (deadline_ns, 0 for none), start_ns = the decision's reference time
// [...], and, for k pairs (LINK-49): an end that measures: pairs k (k > 1), the
// drawn bases (LINK-10: measure_basis the first, measure_bases all of them
// when k > 1), no slot; an end that keeps: basis UNSPECIFIED and k slots from
// the node's memory pool (slot for one, slots for several), idle_cycles 0."
// k itself follows LINK-49 (max_batch_pairs 64, the pairs still needed, the
// free slots of a keeping end, and the fair-queueing bound of the model); the
// slots are the lowest free ones (LINK-33). The harness heralds up to two
// successes per batch (PHYS-B18), so items are charged per pair (LINK-26).
TEST(Link, LINK_27_GenerateCarriesTheItemsFields) {
  model::LinkParams link{.scheme = "single-click",
                         .length_km = 2,
                         .loss_db_km = 0.2,
                         .efficiency = 0.5,
                         .visibility = 0.9};
  std::vector<Request> requests = {
      Request{.pairs = 5, .type = "keep", .min_fidelity = 0.8, .max_time_s = 5},
      Request{.pairs = 5, .min_fidelity = 0.7, .basis = "y", .priority = 1}};
  Harness h(Options(link, requests));
  QNET_START(h);
  std::map<uint64_t, link::v1::QueueAdd> item;
  model::Wfq wfq;
  for (int i = 0; i < 2; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    const auto& a = add->msg.add();
    item[a.queue_id()] = a;
    wfq.Add(a.queue_id(), a.create().priority(), a.virtual_start(), a.eligible_ns());
  }
  std::map<uint64_t, uint32_t> successes;
  std::set<uint32_t> held;  // slots of delivered pairs not freed yet (hold-s 0)
  uint64_t batch = 0, seq = 0;
  std::optional<uint64_t> reference;  // the time of the last herald
  int multi = 0;
  while (successes[1] + successes[2] < 10) {
    auto m = h.NextPhysics(kWait);
    ASSERT_TRUE(m) << "after batch " << batch;
    if (m->msg.has_free()) {
      EXPECT_EQ(held.erase(m->msg.free().slot()), 1u);
      continue;
    }
    if (!m->msg.has_generate()) continue;
    const Generate& gen = m->msg.generate();
    SCOPED_TRACE(gen.DebugString());
    EXPECT_EQ(gen.batch(), ++batch);
    EXPECT_EQ(gen.link(), "L");
    ASSERT_TRUE(item.count(gen.queue_id()));
    const auto& add = item[gen.queue_id()];
    EXPECT_EQ(gen.alpha(), add.alpha());
    EXPECT_EQ(gen.deadline_ns(), add.deadline_ns());
    EXPECT_EQ(gen.idle_cycles(), 0u);
    if (reference) {
      EXPECT_EQ(gen.start_ns(), *reference) << "start_ns is not the herald's time";
    } else {
      EXPECT_GE(gen.start_ns(), add.eligible_ns());
      EXPECT_LE(gen.start_ns(), m->at_ns);
    }
    const uint64_t r = reference.value_or(gen.start_ns());
    EXPECT_EQ(gen.queue_id(), wfq.Select(r));
    const bool keep = add.create().type() == link::v1::REQUEST_TYPE_KEEP;
    uint64_t k =
        std::min<uint64_t>({64, 5 - successes[gen.queue_id()], wfq.FairBatch(gen.queue_id(), r)});
    if (keep) k = std::min<uint64_t>(k, 4 - held.size());
    ASSERT_EQ(PairsOf(gen), k) << "LINK-49 pairs of the batch";
    multi += k > 1;
    if (keep) {
      EXPECT_EQ(gen.measure_basis(), physical::v1::BASIS_UNSPECIFIED);
      EXPECT_EQ(gen.measure_bases_size(), 0);
      EXPECT_GT(gen.deadline_ns(), 0u);
      EXPECT_EQ(gen.has_slot(), k == 1) << "slot for one pair, slots for several";
      const std::vector<uint32_t> slots = SlotsOf(gen);
      std::vector<uint32_t> lowest;
      for (uint32_t s = 0; s < 4 && lowest.size() < k; ++s)
        if (!held.count(s)) lowest.push_back(s);
      EXPECT_EQ(slots, lowest) << "LINK-33: the lowest free slots, in order";
    } else {
      EXPECT_EQ(gen.measure_basis(), physical::v1::BASIS_Y);
      EXPECT_FALSE(gen.has_slot());
      EXPECT_EQ(gen.slots_size(), 0);
      EXPECT_EQ(gen.deadline_ns(), 0u);
      if (k > 1) {
        EXPECT_EQ(gen.pairs(), k);
        ASSERT_EQ(gen.measure_bases_size(), static_cast<int>(k));
        for (int b : gen.measure_bases()) EXPECT_EQ(b, physical::v1::BASIS_Y);
      } else {
        EXPECT_LE(gen.pairs(), 1u);
      }
    }
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(k, 2));
    const std::vector<Herald> heralds = h.HeraldsFor(gen, n, seq + 1);
    seq += n;
    ASSERT_TRUE(h.SendHeralds(heralds));
    for (const Herald& herald : heralds) {
      wfq.Charge(gen.queue_id());
      ++successes[gen.queue_id()];
      if (keep) held.insert(herald.slot());
    }
    if (successes[gen.queue_id()] == 5) wfq.Remove(gen.queue_id());  // LINK-32
    reference = heralds.back().time_ns();
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "LINK-32: both items had all their pairs";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 10u);
  EXPECT_GE(multi, 1) << "no batch of several pairs";
}

// LINK-28 "An end with no eligible item MUST NOT send a Generate; it arms a
// timer for the next reference time of LINK-24." No Generate precedes its
// item's eligible time, none follows the last pair.
TEST(Link, LINK_28_NoGenerateWithoutAnEligibleItem) {
  std::vector<Request> requests = {Request{.pairs = 2, .basis = "z"},
                                   Request{.pairs = 1, .basis = "z", .start_s = 0.4}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  std::map<uint64_t, uint64_t> eligible;
  for (int i = 0; i < 3; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  EXPECT_FALSE(h.NextGenerate(Ms(400))) << "Generate after the last pair";
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& add : LinkFramesIn(h.peer_log(), LinkFrame::kAdd))
    eligible[add.msg.add().queue_id()] = add.msg.add().eligible_ns();
  ASSERT_EQ(eligible.size(), 2u);
  const auto gens = GeneratesIn(h.physics_log());
  ASSERT_EQ(gens.size(), 3u);
  for (const auto& g : gens) EXPECT_GE(g.at_ns, eligible[g.msg.queue_id()]) << g.msg.DebugString();
}

// LINK-29 "An end that selected a KEEP item and has no free slot MUST, if
// another item is eligible at the reference time, send the Generate at once
// without slot and with idle_cycles = 1 (the batch ends IDLE after one cycle
// and the item steps aside, LINK-25 step 2)." LINK-25 "(2) if the batch that
// ended at r ended IDLE and its item is still queued and another item is
// eligible at r, set that item's eligible time to r + memory_poll_s". One
// memory slot, held by the keep item's first pair; a measure item shares the link.
TEST(Link, LINK_29_KeepItemWithoutMemoryStepsAside) {
  model::LinkParams link;
  link.memory_poll_us = 200000;
  std::vector<Request> requests = {Request{.pairs = 3, .type = "keep", .hold_s = 10},
                                   Request{.pairs = 100000, .basis = "z"}};
  HarnessOptions o = Options(link, requests);
  o.memories = 1;
  Harness h(o);
  QNET_START(h);
  uint64_t keep_qid = 0;
  for (int i = 0; i < 2; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    if (add->msg.add().create().type() == link::v1::REQUEST_TYPE_KEEP)
      keep_qid = add->msg.add().queue_id();
  }
  int kept = 0, idle = 0, measured_since_idle = 0;
  std::optional<uint64_t> last_idle_end;
  while (h.NowNs() < 900 * kMs) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    if (g->msg.queue_id() != keep_qid) {
      ++measured_since_idle;
      std::this_thread::sleep_for(Ms(1));
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 100 + idle)));
      continue;
    }
    if (g->msg.has_slot()) {
      EXPECT_EQ(kept, 0) << "a second slot out of one memory";
      ++kept;
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1)));
      continue;
    }
    EXPECT_EQ(g->msg.idle_cycles(), 1u) << "LINK-29: no slot, another item eligible";
    if (last_idle_end) {
      EXPECT_GE(g->at_ns, *last_idle_end + 200 * kMs)
          << "the keep item did not step aside for memory_poll_s";
      EXPECT_GT(measured_since_idle, 0) << "the other item was not served meanwhile";
    }
    ++idle;
    measured_since_idle = 0;
    const uint64_t end = g->at_ns + model::CycleNs(link);
    h.SleepUntilNs(end);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_IDLE, 0, end)));
    last_idle_end = end;
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(kept, 1);
  EXPECT_GE(idle, 2);
  EXPECT_LE(idle, 5) << "more IDLE batches than one per memory_poll_s";
}

// LINK-41 "If no other item is eligible, such an end MUST hold its Generate
// until the first of: the memory pool hands it a slot (it sends the Generate
// with that slot); another item becomes eligible or memory_poll_s passes [...]".
// memory_poll_s (5 s) outlasts the hold (0.3 s): nothing is sent until the
// Free, then the Generate with the freed slot follows at once.
TEST(Link, LINK_41_HeldGenerateGoesOutWhenTheSlotIsFreed) {
  model::LinkParams link;
  link.memory_poll_us = 5e6;
  HarnessOptions o = Options(link, {Request{.pairs = 2, .type = "keep", .hold_s = 0.3}});
  o.memories = 1;
  Harness h(o);
  QNET_START(h);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->msg.slot(), 0u);
  const Herald first = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
  ASSERT_TRUE(h.SendHerald(first));
  std::optional<uint64_t> freed_at;
  for (;;) {
    auto m = h.NextPhysics(Ms(2000));
    ASSERT_TRUE(m) << "nothing after the hold";
    if (m->msg.has_free()) {
      EXPECT_EQ(m->msg.free().slot(), 0u);
      EXPECT_GE(m->at_ns, first.time_ns() + 300 * kMs);
      freed_at = m->at_ns;
      continue;
    }
    if (!m->msg.has_generate()) continue;
    ASSERT_TRUE(freed_at) << "a Generate while the only slot was held: " << m->msg.DebugString();
    EXPECT_TRUE(m->msg.generate().has_slot());
    EXPECT_EQ(m->msg.generate().slot(), 0u);
    EXPECT_EQ(m->msg.generate().idle_cycles(), 0u);
    EXPECT_LT(m->at_ns - *freed_at, 100 * kMs) << "the Generate did not follow the Free at once";
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(m->msg.generate(), OUTCOME_SUCCESS, 2)));
    break;
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-41, memory_poll_s (0.1 s) shorter than the hold (0.65 s): while the slot
// is held the node sends a Generate without slot and idle_cycles = 1 no more
// than once per memory_poll_s, and resumes with the slot once it is freed.
TEST(Link, LINK_41_MemoryPollWithoutBusyLooping) {
  model::LinkParams link;
  link.memory_poll_us = 100000;
  HarnessOptions o = Options(link, {Request{.pairs = 2, .type = "keep", .hold_s = 0.65}});
  o.memories = 1;
  Harness h(o);
  QNET_START(h);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  const Herald first = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 1);
  ASSERT_TRUE(h.SendHerald(first));
  uint64_t last_reference = first.time_ns();
  int polls = 0;
  std::optional<uint64_t> freed_at;
  for (;;) {
    auto m = h.NextPhysics(Ms(2000));
    ASSERT_TRUE(m);
    if (m->msg.has_free()) {
      freed_at = m->at_ns;
      continue;
    }
    if (!m->msg.has_generate()) continue;
    const Generate& gen = m->msg.generate();
    if (gen.has_slot()) {
      ASSERT_TRUE(freed_at) << "a slot out of a memory that was never freed";
      EXPECT_LT(m->at_ns - *freed_at, 100 * kMs);
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(gen, OUTCOME_SUCCESS, 2)));
      break;
    }
    ++polls;
    EXPECT_EQ(gen.idle_cycles(), 1u);
    EXPECT_GE(m->at_ns, last_reference + 100 * kMs)
        << "poll " << polls << " came before memory_poll_s";
    const uint64_t end = m->at_ns + model::CycleNs(link);
    h.SleepUntilNs(end);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(gen, OUTCOME_IDLE, 0, end)));
    last_reference = end;
  }
  EXPECT_GE(polls, 2) << "the end did not poll again after memory_poll_s";
  EXPECT_LE(polls, 7) << "more polls than one per memory_poll_s in 0.65 s";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-30 "An end MUST act on a herald at its time_ns (or on arrival, if
// later) [...] An end that hears a herald before time_ns (the nearer node on an
// asymmetric link) waits, so both ends change state at the same reference
// time". The harness delivers each herald HeraldDelay(a) after the batch
// starts, ~19 ms before its time_ns: the OK is traced no earlier than time_ns,
// carries time_ns, and the next Generate leaves no earlier.
TEST(Link, LINK_30_ActsOnAnEarlyHeraldAtItsTime) {
  const model::LinkParams link = AsymmetricLink();
  Harness h(Options(link, {Request{.pairs = 3, .basis = "z"}}));
  QNET_START(h);
  std::vector<Herald> sent;
  for (int i = 0; i < 3; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    if (i > 0) {
      EXPECT_GE(g->at_ns, sent.back().time_ns()) << "acted on herald " << i << " before its time";
    }
    const uint64_t start = g->at_ns;
    h.SleepUntilNs(start + HeraldDelayAtANs(link));
    sent.push_back(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1, start + model::CycleNs(link)));
    ASSERT_TRUE(h.SendHerald(sent.back()));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_GE(oks[i].time_ns(), sent[i].time_ns())
        << "OK " << i + 1 << " traced before the batch end";
    EXPECT_EQ(oks[i].ok().time_ns(), sent[i].time_ns());
  }
}

// LINK-30 "[...] IDLE, DEADLINE, QUEUE_MISMATCH: give the batch's unused slot
// back to the pool without a physical Free". LINK-34 "[...] a slot allocated
// for a batch that produced no qubit MUST go back without Free." One slot: each
// of these outcomes is followed by a Generate with slot 0 again and no Free;
// only the successes are followed by Free (hold-s 0).
TEST(Link, LINK_30_UnusedSlotGoesBackWithoutFree) {
  HarnessOptions o =
      Options(model::LinkParams{}, {Request{.pairs = 2, .type = "keep", .max_time_s = 10}});
  o.memories = 1;
  Harness h(o);
  QNET_START(h);
  const physical::v1::Outcome script[] = {OUTCOME_IDLE, OUTCOME_DEADLINE, OUTCOME_QUEUE_MISMATCH,
                                          OUTCOME_SUCCESS, OUTCOME_SUCCESS};
  int frees_before_success = 0;
  for (int i = 0; i < 5; ++i) {
    auto g = h.NextGenerate(kWait);
    const std::string after = i > 0 ? physical::v1::Outcome_Name(script[i - 1]) : "(start)";
    ASSERT_TRUE(g) << "no Generate after " << after;
    ASSERT_TRUE(g->msg.has_slot()) << "the slot did not come back after " << after;
    EXPECT_EQ(g->msg.slot(), 0u);
    if (i == 3) frees_before_success = static_cast<int>(FreesIn(h.physics_log()).size());
    const uint64_t end = g->at_ns + model::CycleNs(model::LinkParams{});
    h.SleepUntilNs(end);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, script[i], i + 1, end)));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(frees_before_success, 0) << "Free for a slot that held no qubit";
  EXPECT_EQ(FreesIn(h.physics_log()).size(), 2u);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-31 "A QUEUE_MISMATCH herald MUST be counted and traced as a drop with
// reason QUEUE_MISMATCH, and both ends carry on from the next decision."
TEST(Link, LINK_31_QueueMismatchIsDroppedAndTheLinkCarriesOn) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 2, .basis = "z"}}));
  QNET_START(h);
  const physical::v1::Outcome script[] = {OUTCOME_QUEUE_MISMATCH, OUTCOME_QUEUE_MISMATCH,
                                          OUTCOME_SUCCESS, OUTCOME_SUCCESS};
  for (int i = 0; i < 4; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g) << "batch " << i + 1;
    EXPECT_EQ(g->msg.queue_id(), 1u);
    const uint64_t end = g->at_ns + model::CycleNs(model::LinkParams{});
    h.SleepUntilNs(end);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, script[i], i + 1, end)));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  const auto drops = Drops(trace, results::v1::DROP_REASON_QUEUE_MISMATCH);
  ASSERT_EQ(drops.size(), 2u) << Dump(trace);
  for (const auto& d : drops) EXPECT_EQ(d.drop().link(), "L");
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-42 "After a QUEUE_MISMATCH herald each end MUST send QueueCheck{queue_id
// it served, batch}; an end receiving a QueueCheck for an item it does not hold
// MUST answer QueueReject{queue_id} (LINK-23) [...]". The harness, not holding
// item 1, answers the node's QueueCheck with QueueReject: the item leaves
// (REJECTED at its origin); a QueueCheck for an unknown item is answered, one
// for a held item is not.
TEST(Link, LINK_42_QueueCheckAfterMismatchAndItsAnswers) {
  std::vector<Request> requests = {Request{.pairs = 100, .basis = "z"},
                                   Request{.pairs = 3, .basis = "z", .start_s = 0.05},
                                   Request{.pairs = 100000, .basis = "z", .start_s = 0.4}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  auto g = h.NextGenerate(kWait);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->msg.queue_id(), 1u);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_QUEUE_MISMATCH, 0)));
  auto check = h.ExpectLink(LinkFrame::kCheck, kWait);
  ASSERT_TRUE(check) << "no QueueCheck after QUEUE_MISMATCH";
  EXPECT_EQ(check->msg.check().queue_id(), 1u);
  EXPECT_EQ(check->msg.check().batch(), g->msg.batch());
  ASSERT_TRUE(
      h.SendPeer(RejectFrame(1, 0, link::v1::ERROR_CODE_REJECTED, "not held by the harness")));
  std::this_thread::sleep_for(Ms(50));
  int item1_after_reject = 0, item2 = 0;
  while (item2 < 3) {
    g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    if (g->msg.queue_id() == 1) {
      ++item1_after_reject;
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_IDLE, 0)));
    } else {
      ASSERT_EQ(g->msg.queue_id(), 2u);
      ++item2;
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, item2)));
    }
  }
  EXPECT_LE(item1_after_reject, 1) << "the refused item stayed in the queue";
  ASSERT_TRUE(h.SendPeer(CheckFrame(99, 7)));
  auto answer = h.ExpectLink(LinkFrame::kReject, kWait);
  ASSERT_TRUE(answer) << "no QueueReject for a QueueCheck of an unknown item";
  EXPECT_EQ(answer->msg.reject().queue_id(), 99u);
  auto add3 = h.ExpectLink(LinkFrame::kAdd, kWait);  // item 3
  ASSERT_TRUE(add3);
  ASSERT_TRUE(h.SendPeer(CheckFrame(add3->msg.add().queue_id(), 1)));
  for (int i = 0; i < 20; ++i) {
    g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    std::this_thread::sleep_for(Ms(5));
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, 10 + i)));
  }
  QNET_STOP_AND_TRACE(h, trace);
  for (const auto& r : LinkFramesIn(h.peer_log(), LinkFrame::kReject))
    EXPECT_NE(r.msg.reject().queue_id(), add3->msg.add().queue_id())
        << "QueueReject for an item it holds";
  const auto rejected = Errs(trace, link::v1::ERROR_CODE_REJECTED);
  ASSERT_EQ(rejected.size(), 1u) << Dump(trace);
  EXPECT_EQ(rejected[0].err().create_id(), 1u);
}

// LINK-32 "An item MUST leave the queue at both ends when it has pairs heralded
// successes (delivered or expired)."
TEST(Link, LINK_32_ItemLeavesAfterItsPairs) {
  std::vector<Request> requests = {Request{.pairs = 3, .basis = "z"},
                                   Request{.pairs = 2, .basis = "z", .start_s = 0.6}};
  Harness h(Options(model::LinkParams{}, requests));
  QNET_START(h);
  for (int i = 0; i < 3; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.queue_id(), 1u);
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i + 1)));
  }
  for (int i = 0; i < 2; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->msg.queue_id(), 2u) << "item 1 was served after its 3 pairs";
    Herald herald = h.HeraldFor(g->msg, OUTCOME_SUCCESS, 4 + i);
    if (i == 0) herald.clear_bell_state();  // expired, but heralded
    ASSERT_TRUE(h.SendHerald(herald));
  }
  EXPECT_FALSE(h.NextGenerate(kQuiet)) << "item 2 was served after 2 heralded successes";
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 4u);
  EXPECT_EQ(Errs(trace, link::v1::ERROR_CODE_EXPIRED).size(), 1u);
}

}  // namespace
}  // namespace qnet::interop
