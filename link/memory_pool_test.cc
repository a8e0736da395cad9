#include "link/memory_pool.h"

#include <vector>

#include "gtest/gtest.h"

namespace qnet::link {
namespace {

class RecordingDevice : public PhysicalService {
 public:
  void Generate(const physical::v1::Generate&) override {}
  void Free(const physical::v1::Free& request) override { freed.push_back(request.slot()); }
  void Measure(const physical::v1::Measure&) override {}
  void ApplyGate(const physical::v1::Gate&) override {}
  void BellMeasure(const physical::v1::BellMeasure&) override {}
  void Init(const physical::v1::Init&) override {}
  void Probe(const physical::v1::Probe&) override {}
  std::vector<uint32_t> freed;
};

TEST(MemoryPoolTest, LINK_33_LowestFreeSlot) {
  RecordingDevice device;
  MemoryPool pool(3, &device);
  EXPECT_EQ(pool.capacity(), 3u);
  EXPECT_EQ(pool.Allocate(), 0u);
  EXPECT_EQ(pool.Allocate(), 1u);
  EXPECT_EQ(pool.Allocate(), 2u);
  EXPECT_EQ(pool.Allocate(), std::nullopt);
  EXPECT_EQ(pool.free_count(), 0u);
  ASSERT_TRUE(pool.Return(1).ok());
  ASSERT_TRUE(pool.Return(0).ok());
  EXPECT_EQ(pool.Allocate(), 0u);
  EXPECT_EQ(pool.Allocate(), 1u);
}

TEST(MemoryPoolTest, LINK_34_ReleaseSendsFreeReturnDoesNot) {
  RecordingDevice device;
  MemoryPool pool(2, &device);
  const uint32_t s0 = *pool.Allocate();
  const uint32_t s1 = *pool.Allocate();
  ASSERT_TRUE(pool.Return(s0).ok());
  EXPECT_TRUE(device.freed.empty());
  ASSERT_TRUE(pool.Release(s1).ok());
  EXPECT_EQ(device.freed, std::vector<uint32_t>{s1});
  EXPECT_EQ(pool.frees_sent(), 1u);
  EXPECT_EQ(pool.free_count(), 2u);
  // A slot that is not allocated cannot be freed twice.
  EXPECT_FALSE(pool.Release(s1).ok());
  EXPECT_FALSE(pool.Return(7).ok());
  EXPECT_EQ(device.freed.size(), 1u);
}

TEST(MemoryPoolTest, LINK_35_WaitersServedFirstComeFirstServed) {
  RecordingDevice device;
  MemoryPool pool(1, &device);
  const uint32_t s = *pool.Allocate();
  std::vector<int> served;
  pool.WaitForSlot([&](uint32_t slot) {
    EXPECT_EQ(slot, s);
    served.push_back(1);
  });
  const MemoryPool::WaitId cancelled = pool.WaitForSlot([&](uint32_t) { served.push_back(2); });
  pool.WaitForSlot([&](uint32_t) { served.push_back(3); });
  pool.CancelWait(cancelled);
  EXPECT_EQ(pool.waiters(), 2u);
  ASSERT_TRUE(pool.Release(s).ok());
  EXPECT_EQ(served, std::vector<int>{1});
  // The slot went straight to the waiter: nobody else can take it.
  EXPECT_TRUE(pool.allocated(s));
  EXPECT_EQ(pool.Allocate(), std::nullopt);
  ASSERT_TRUE(pool.Return(s).ok());
  EXPECT_EQ(served, (std::vector<int>{1, 3}));
  ASSERT_TRUE(pool.Return(s).ok());
  EXPECT_FALSE(pool.allocated(s));
  EXPECT_EQ(pool.free_count(), 1u);
}

TEST(MemoryPoolTest, ZeroSlots) {
  MemoryPool pool(0, nullptr);
  EXPECT_EQ(pool.capacity(), 0u);
  EXPECT_EQ(pool.Allocate(), std::nullopt);
  EXPECT_FALSE(pool.Release(0).ok());
}

}  // namespace
}  // namespace qnet::link
