// specs/link.md section 5 (memory): LINK-33 .. LINK-35, observed through the
// slots of the node's Generates and its Free requests. Tests with two link ends
// give the node a second neighbour "peer2" on link "L2".
#include <set>

#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using physical::v1::OUTCOME_IDLE;
using physical::v1::OUTCOME_SUCCESS;

// LINK-33 "[...] the pool MUST hand out the lowest-numbered free slot." Four
// slots; one request holds its pairs for 10 s, the other frees each at once.
// A Generate may ask for several slots (LINK-27, LINK-49): they must be the
// lowest ones not held at that moment, in increasing order (held: given to a
// batch until its herald, then, for a pair, until the node's Free). The
// harness heralds one success per batch, in its first slot; the batch's other
// slots go back to the pool at that herald (LINK-30).
TEST(Link, LINK_33_LowestFreeSlot) {
  std::vector<Request> requests = {Request{.pairs = 2, .type = "keep", .purpose = 1, .hold_s = 10},
                                   Request{.pairs = 4, .type = "keep", .purpose = 2}};
  HarnessOptions o = Options(model::LinkParams{}, requests);
  o.memories = 4;
  Harness h(o);
  QNET_START(h);
  std::set<uint32_t> held;
  int multi = 0;
  for (int answered = 0; answered < 6;) {
    auto m = h.NextPhysics(kWait);
    ASSERT_TRUE(m) << "after " << answered << " batches";
    if (m->msg.has_free()) {
      EXPECT_EQ(held.erase(m->msg.free().slot()), 1u) << "Free of a slot not held";
      continue;
    }
    if (!m->msg.has_generate()) continue;
    const Generate& g = m->msg.generate();
    const std::vector<uint32_t> slots = SlotsOf(g);
    ASSERT_FALSE(slots.empty()) << g.DebugString();
    std::vector<uint32_t> lowest;
    for (uint32_t s = 0; s < 4 && lowest.size() < slots.size(); ++s)
      if (!held.count(s)) lowest.push_back(s);
    EXPECT_EQ(slots, lowest) << "held: " << held.size() << " slots; " << g.DebugString();
    multi += slots.size() > 1;
    held.insert(slots.begin(), slots.end());
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g, OUTCOME_SUCCESS, ++answered)));
    for (size_t j = 1; j < slots.size(); ++j) held.erase(slots[j]);  // unused: back to the pool
  }
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 6u);
  ::testing::Test::RecordProperty("multi_slot_generates", std::to_string(multi));
  EXPECT_GE(multi, 1)
      << "no Generate asked for several slots (LINK-49: an item alone takes the free ones)";
}

// LINK-33 "A node's memory slots MUST be one pool shared by all its link ends
// [...]". Two slots, two links: the pair held on L takes slot 0, so the
// Generate on L2 gets slot 1.
TEST(Link, LINK_33_OnePoolForAllLinkEnds) {
  std::vector<Request> requests = {
      Request{.pairs = 1, .type = "keep", .hold_s = 10},
      Request{.to = "peer2", .pairs = 1, .type = "keep", .start_s = 0.2, .hold_s = 10}};
  HarnessOptions o = Options(model::LinkParams{}, requests);
  o.memories = 2;
  o.second_peer = true;
  Harness h(o);
  QNET_START(h);
  auto a = h.NextGenerate(kWait);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->msg.link(), "L");
  EXPECT_EQ(a->msg.slot(), 0u);
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(a->msg, OUTCOME_SUCCESS, 1)));
  auto b = h.NextGenerate(kWait);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->msg.link(), "L2");
  ASSERT_TRUE(b->msg.has_slot());
  EXPECT_EQ(b->msg.slot(), 1u) << "L2 was given the slot that holds L's pair";
  ASSERT_TRUE(h.SendHerald(h.HeraldFor(b->msg, OUTCOME_SUCCESS, 1)));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 2u);
}

// LINK-34 "Freeing a slot that holds a qubit (Release) MUST send the physical
// Free; a slot allocated for a batch that produced no qubit MUST go back
// without Free." The workload releases each pair at once (hold-s 0): every OK
// is followed by one Free of its slot; the IDLE batch by none, and neither are
// the slots of a batch that no success used (two slots asked, one pair).
TEST(Link, LINK_34_ReleaseSendsFree) {
  HarnessOptions o = Options(model::LinkParams{}, {Request{.pairs = 3, .type = "keep"}});
  o.memories = 2;
  Harness h(o);
  QNET_START(h);
  std::vector<uint32_t> ok_slots;
  int unused = 0;
  for (int i = 0; i < 4; ++i) {
    auto g = h.NextGenerate(kWait);
    ASSERT_TRUE(g);
    const std::vector<uint32_t> slots = SlotsOf(g->msg);
    ASSERT_FALSE(slots.empty()) << g->msg.DebugString();
    if (i == 0) {
      ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_IDLE, 0)));
      continue;
    }
    ok_slots.push_back(slots[0]);
    unused += static_cast<int>(slots.size()) - 1;
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g->msg, OUTCOME_SUCCESS, i)));
  }
  std::this_thread::sleep_for(Ms(200));
  QNET_STOP_AND_TRACE(h, trace);
  const auto oks = Oks(trace);
  ASSERT_EQ(oks.size(), 3u);
  std::vector<uint32_t> freed;
  for (const auto& f : FreesIn(h.physics_log())) freed.push_back(f.msg);
  EXPECT_EQ(freed, ok_slots)
      << "one Free per delivered pair, of its slot, and none for the IDLE batch or unused slots";
  for (size_t i = 0; i < oks.size(); ++i) EXPECT_EQ(oks[i].ok().slot(), ok_slots[i]);
  EXPECT_GE(unused, 1) << "expected a batch of two slots (3 pairs, 2 memories, LINK-49)";
}

// LINK-35 "A freed slot MUST be handed to the link end that has waited longest
// for one (first come, first served), before any other Allocate can take it."
// One slot. L's pair holds it for 0.4 s; L waits for it first (its second
// pair), L2 later (its request starts at 0.1 s). The Free goes to L, the next
// one to L2. memory_poll_s is 5 s, so neither end gives up meanwhile.
TEST(Link, LINK_35_FreedSlotGoesToTheLongestWaiter) {
  model::LinkParams link;
  link.memory_poll_us = 5e6;
  std::vector<Request> requests = {
      Request{.pairs = 2, .type = "keep", .hold_s = 0.4},
      Request{.to = "peer2", .pairs = 1, .type = "keep", .start_s = 0.1, .hold_s = 0.4}};
  HarnessOptions o = Options(link, requests);
  o.memories = 1;
  o.second_peer = true;
  Harness h(o);
  QNET_START(h);
  std::vector<std::string> order;
  int frees = 0;
  while (order.size() < 3) {
    auto m = h.NextPhysics(Ms(3000));
    ASSERT_TRUE(m) << "stalled after " << order.size() << " Generates";
    if (m->msg.has_free()) {
      ++frees;
      continue;
    }
    if (!m->msg.has_generate()) continue;
    const Generate& g = m->msg.generate();
    ASSERT_TRUE(g.has_slot()) << g.DebugString();
    EXPECT_EQ(static_cast<int>(order.size()), frees) << "a second slot out of one memory";
    order.push_back(g.link());
    ASSERT_TRUE(h.SendHerald(h.HeraldFor(g, OUTCOME_SUCCESS, order.size())));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"L", "L", "L2"}));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Oks(trace).size(), 3u);
}

}  // namespace
}  // namespace qnet::interop
