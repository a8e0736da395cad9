#include "link/queue.h"

#include <map>

#include "gtest/gtest.h"

namespace qnet::link {
namespace {

QueueItem Item(uint64_t id, uint32_t priority, Time eligible = Time::Zero(),
               Time deadline = Time::Infinite(), uint64_t virtual_start = 0) {
  QueueItem item;
  item.queue_id = id;
  item.origin = "a";
  item.create.set_pairs(1000000);
  item.create.set_priority(priority);
  item.eligible = eligible;
  item.deadline = deadline;
  item.virtual_start = virtual_start;
  return item;
}

// Serves `n` decisions (each charged as a success) and counts per queue id.
std::map<uint64_t, int> Serve(LinkQueue& q, int n, Time t = Time::Zero()) {
  std::map<uint64_t, int> count;
  for (int i = 0; i < n; ++i) {
    QueueItem* item = q.Select(t);
    if (item == nullptr) break;
    ++count[item->queue_id];
    q.Charge(item->queue_id);
  }
  return count;
}

TEST(QueueTest, LINK_26_StridesArePowersOfTwoCapped) {
  EXPECT_EQ(Item(1, 0).stride(), 1u);
  EXPECT_EQ(Item(1, 1).stride(), 2u);
  EXPECT_EQ(Item(1, 2).stride(), 4u);
  EXPECT_EQ(Item(1, 3).stride(), 8u);
  EXPECT_EQ(Item(1, 200).stride(), 8u);
}

TEST(QueueTest, LINK_26_SharesFollowWeightsExactly) {
  LinkQueue q;
  ASSERT_TRUE(q.Add(Item(1, 0)).ok());
  ASSERT_TRUE(q.Add(Item(2, 1)).ok());
  ASSERT_TRUE(q.Add(Item(3, 3)).ok());
  // Weights 8 : 4 : 1 over 1300 decisions.
  auto count = Serve(q, 1300);
  EXPECT_NEAR(count[1], 800, 2);
  EXPECT_NEAR(count[2], 400, 2);
  EXPECT_NEAR(count[3], 100, 2);
}

TEST(QueueTest, LINK_26_EqualPrioritiesAlternateTiesByQueueId) {
  LinkQueue q;
  ASSERT_TRUE(q.Add(Item(5, 2)).ok());
  ASSERT_TRUE(q.Add(Item(3, 2)).ok());
  std::vector<uint64_t> order;
  for (int i = 0; i < 4; ++i) {
    QueueItem* item = q.Select(Time::Zero());
    order.push_back(item->queue_id);
    q.Charge(item->queue_id);
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{3, 5, 3, 5}));
}

TEST(QueueTest, LINK_26_NewItemStartsAtVirtualTimeNotZero) {
  LinkQueue q;
  ASSERT_TRUE(q.Add(Item(1, 0)).ok());
  Serve(q, 100);
  EXPECT_EQ(q.virtual_time(), 100u);
  // An item stamped with the current virtual time shares from now on instead
  // of catching up on 100 pairs.
  ASSERT_TRUE(q.Add(Item(2, 0, Time::Zero(), Time::Infinite(), q.virtual_time())).ok());
  auto count = Serve(q, 20);
  EXPECT_EQ(count[1], 10);
  EXPECT_EQ(count[2], 10);
}

TEST(QueueTest, LINK_25_OnlyEligibleItemsAreSelected) {
  LinkQueue q;
  ASSERT_TRUE(q.Add(Item(1, 3, Time::FromNanos(100))).ok());
  ASSERT_TRUE(q.Add(Item(2, 3, Time::FromNanos(50))).ok());
  EXPECT_EQ(q.Select(Time::FromNanos(49)), nullptr);
  EXPECT_FALSE(q.AnyEligible(Time::FromNanos(49)));
  EXPECT_EQ(q.Select(Time::FromNanos(50))->queue_id, 2u);
  EXPECT_EQ(q.Select(Time::FromNanos(100))->queue_id, 1u);
  EXPECT_EQ(q.NextChangeAfter(Time::FromNanos(50)), Time::FromNanos(100));
  EXPECT_EQ(q.NextChangeAfter(Time::FromNanos(100)), std::nullopt);
}

TEST(QueueTest, LINK_25_RemoveDueInQueueIdOrder) {
  LinkQueue q;
  ASSERT_TRUE(q.Add(Item(3, 0, Time::Zero(), Time::FromNanos(10))).ok());
  ASSERT_TRUE(q.Add(Item(1, 0, Time::Zero(), Time::FromNanos(10))).ok());
  ASSERT_TRUE(q.Add(Item(2, 0, Time::Zero(), Time::FromNanos(11))).ok());
  ASSERT_TRUE(q.Add(Item(4, 0)).ok());
  q.Find(4)->refused = true;
  EXPECT_EQ(q.NextChangeAfter(Time::Zero()), Time::FromNanos(10));
  auto due = q.RemoveDue(Time::FromNanos(10));
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(due[0].queue_id, 1u);
  EXPECT_EQ(due[1].queue_id, 3u);
  EXPECT_EQ(due[2].queue_id, 4u);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_FALSE(q.Add(Item(2, 0)).ok());  // duplicate queue id
}

TEST(QueueTest, SameOperationsGiveSameDecisions) {
  // Two copies fed the same operations select the same items (LINK-17/26).
  LinkQueue x, y;
  for (uint64_t id = 1; id <= 6; ++id) {
    ASSERT_TRUE(x.Add(Item(id, static_cast<uint32_t>(id % 4),
                           Time::FromNanos(static_cast<int64_t>(id) * 10)))
                    .ok());
    ASSERT_TRUE(y.Add(Item(id, static_cast<uint32_t>(id % 4),
                           Time::FromNanos(static_cast<int64_t>(id) * 10)))
                    .ok());
  }
  for (int t = 0; t < 500; ++t) {
    QueueItem* a = x.Select(Time::FromNanos(t));
    QueueItem* b = y.Select(Time::FromNanos(t));
    ASSERT_EQ(a == nullptr, b == nullptr);
    if (a == nullptr) continue;
    ASSERT_EQ(a->queue_id, b->queue_id);
    x.Charge(a->queue_id);
    y.Charge(b->queue_id);
  }
  EXPECT_EQ(x.virtual_time(), y.virtual_time());
}

}  // namespace
}  // namespace qnet::link
