// EventRuntime: emulated time from the shared monotonic clock, scaled by the
// time dilation; timers in deadline order. Timing assertions are lower bounds
// and orderings only, so a loaded machine cannot make them flake.
#include "stack/event_runtime.h"

#include <signal.h>

#include <vector>

#include "gtest/gtest.h"
#include "stack/random.h"
#include "stack/testing/loop.h"

namespace qnet {
namespace {

using testing::Watchdog;

std::unique_ptr<EventRuntime> NewRuntime() { return testing::NewEventRuntime(); }

TEST(EventRuntimeTest, NowIsZeroBeforeTheEpoch) {
  auto rt = NewRuntime();
  EXPECT_EQ(rt->Now(), Time::Zero());
  EXPECT_FALSE(rt->epoch_set());
  // An epoch in the future: still zero until it passes.
  ASSERT_TRUE(rt->SetEpoch(MonotonicNanos() + absl::ToInt64Nanoseconds(absl::Hours(1)), 1.0).ok());
  EXPECT_EQ(rt->Now(), Time::Zero());
  EXPECT_FALSE(rt->SetEpoch(0, 1.0).ok()) << "the epoch can be set once";
}

TEST(EventRuntimeTest, RejectsNonPositiveDilation) {
  auto rt = NewRuntime();
  EXPECT_FALSE(rt->SetEpoch(MonotonicNanos(), 0.0).ok());
  EXPECT_FALSE(rt->SetEpoch(MonotonicNanos(), -2.0).ok());
  EXPECT_TRUE(rt->SetEpoch(MonotonicNanos(), 2.0).ok());
}

TEST(EventRuntimeTest, PHYS_S4_NowFollowsTheMonotonicClockScaledByDilation) {
  auto rt = NewRuntime();
  const int64_t start = MonotonicNanos();
  ASSERT_TRUE(rt->SetEpoch(start - 4'000'000'000, 4.0).ok());  // 4 wall seconds ago, 4x slower
  const Time now = rt->Now();
  const int64_t after = MonotonicNanos();
  EXPECT_GE(now.nanos(), 1'000'000'000);
  EXPECT_LE(now.nanos(), 1'000'000'000 + (after - start) / 4 + 1);
}

TEST(EventRuntimeTest, TimersFireInDeadlineOrderThenArmOrder) {
  auto rt = NewRuntime();
  ASSERT_TRUE(rt->SetEpoch(MonotonicNanos(), 1.0).ok());
  std::vector<int> order;
  std::vector<Time> fired_at;
  std::vector<std::unique_ptr<Timer>> timers;
  const int64_t ms = 1'000'000;
  const std::vector<std::pair<int, int64_t>> plan = {{3, 30 * ms},  {1, 10 * ms}, {2, 20 * ms},
                                                     {11, 10 * ms}, {4, 40 * ms}, {0, 0}};
  for (const auto& [id, at] : plan) {
    timers.push_back(rt->CreateTimer([&, id = id] {
      order.push_back(id);
      fired_at.push_back(rt->Now());
      if (order.size() == plan.size()) rt->Stop();
    }));
    timers.back()->ArmAt(Time::FromNanos(at));
  }
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  ASSERT_FALSE(expired);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 11, 2, 3, 4}));
  const std::vector<int64_t> deadline = {0, 10 * ms, 10 * ms, 20 * ms, 30 * ms, 40 * ms};
  for (size_t i = 0; i < order.size(); ++i)
    EXPECT_GE(fired_at[i].nanos(), deadline[i]) << "timer " << order[i];
}

TEST(EventRuntimeTest, ManyRandomTimersRunInNonDecreasingDeadlineOrder) {
  auto rt = NewRuntime();
  ASSERT_TRUE(rt->SetEpoch(MonotonicNanos(), 1.0).ok());
  Rng rng(7);
  constexpr int kTimers = 3000;
  std::vector<std::unique_ptr<Timer>> timers;
  std::vector<int64_t> deadlines;
  std::vector<int64_t> seen;
  for (int i = 0; i < kTimers; ++i) {
    const int64_t at = static_cast<int64_t>(rng.Below(30'000'000));  // within 30 ms
    deadlines.push_back(at);
    timers.push_back(rt->CreateTimer([&, at] {
      EXPECT_GE(rt->Now().nanos(), at);
      seen.push_back(at);
      if (seen.size() == kTimers) rt->Stop();
    }));
    timers.back()->ArmAt(Time::FromNanos(at));
  }
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  ASSERT_FALSE(expired);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kTimers));
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(rt->timers_fired(), static_cast<uint64_t>(kTimers));
}

TEST(EventRuntimeTest, PHYS_S4_DilationStretchesWallTime) {
  auto rt = NewRuntime();
  const int64_t start = MonotonicNanos();
  ASSERT_TRUE(rt->SetEpoch(start, 5.0).ok());
  int64_t fired_wall = 0;
  Time fired_emulated;
  auto timer = rt->CreateTimer([&] {
    fired_wall = MonotonicNanos();
    fired_emulated = rt->Now();
    rt->Stop();
  });
  timer->ArmAt(Time::FromNanos(20'000'000));  // 20 ms emulated = 100 ms wall
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  ASSERT_FALSE(expired);
  EXPECT_GE(fired_wall - start, 100'000'000);
  EXPECT_GE(fired_emulated.nanos(), 20'000'000);
  EXPECT_EQ(rt->WallDeadline(Time::FromNanos(20'000'000)), start + 100'000'000);
}

TEST(EventRuntimeTest, TimersArmedBeforeTheEpochWaitForIt) {
  auto rt = NewRuntime();
  int64_t fired_wall = 0;
  auto timer = rt->CreateTimer([&] {
    fired_wall = MonotonicNanos();
    rt->Stop();
  });
  timer->ArmAt(Time::Zero());
  int64_t epoch = 0;
  auto set_epoch = rt->CreateWallTimer([&] {
    EXPECT_EQ(fired_wall, 0) << "fired before the epoch was known";
    epoch = MonotonicNanos() + 30'000'000;
    ASSERT_TRUE(rt->SetEpoch(epoch, 1.0).ok());
  });
  set_epoch->ArmAfter(absl::Milliseconds(20));
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  ASSERT_FALSE(expired);
  EXPECT_GE(fired_wall, epoch);
}

TEST(EventRuntimeTest, CancelRearmAndSelfDestruction) {
  auto rt = NewRuntime();
  ASSERT_TRUE(rt->SetEpoch(MonotonicNanos(), 1.0).ok());
  int cancelled_fired = 0, rearmed_fired = 0;
  Time rearmed_at;
  auto cancelled = rt->CreateTimer([&] { ++cancelled_fired; });
  cancelled->ArmAt(Time::FromNanos(1'000'000));
  EXPECT_TRUE(cancelled->armed());
  cancelled->Cancel();
  EXPECT_FALSE(cancelled->armed());
  auto rearmed = rt->CreateTimer([&] {
    ++rearmed_fired;
    rearmed_at = rt->Now();
  });
  rearmed->ArmAt(Time::FromNanos(1'000'000));
  rearmed->ArmAt(Time::FromNanos(15'000'000));  // replaces the first deadline
  std::unique_ptr<Timer> self;
  self = rt->CreateTimer([&] { self.reset(); });
  self->ArmAt(Time::FromNanos(2'000'000));
  auto destroyed = rt->CreateTimer([&] { ADD_FAILURE() << "a destroyed timer fired"; });
  destroyed->ArmAt(Time::FromNanos(3'000'000));
  destroyed.reset();
  auto end = rt->CreateTimer([&] { rt->Stop(); });
  end->ArmAt(Time::FromNanos(25'000'000));
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  ASSERT_FALSE(expired);
  EXPECT_EQ(cancelled_fired, 0);
  EXPECT_EQ(rearmed_fired, 1);
  EXPECT_GE(rearmed_at.nanos(), 15'000'000);
  EXPECT_EQ(self, nullptr);
}

TEST(EventRuntimeTest, InfiniteDeadlineNeverFires) {
  auto rt = NewRuntime();
  ASSERT_TRUE(rt->SetEpoch(MonotonicNanos(), 1.0).ok());
  auto never = rt->CreateTimer([&] { ADD_FAILURE() << "fired at infinity"; });
  never->ArmAt(Time::Infinite());
  auto end = rt->CreateTimer([&] { rt->Stop(); });
  end->ArmAt(Time::FromNanos(5'000'000));
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  EXPECT_FALSE(expired);
  EXPECT_TRUE(never->armed());
}

TEST(EventRuntimeTest, PostRunsAfterTheCurrentCallback) {
  auto rt = NewRuntime();
  std::vector<int> order;
  auto start = rt->CreateWallTimer([&] {
    rt->Post([&] {
      order.push_back(2);
      rt->Stop();
    });
    order.push_back(1);
  });
  start->ArmAfter(absl::ZeroDuration());
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventRuntimeTest, StopBeforeRunReturnsAtOnce) {
  auto rt = NewRuntime();
  rt->Stop();
  EXPECT_TRUE(rt->Run().ok());
}

TEST(EventRuntimeTest, TerminationSignalsReachTheHook) {
  auto rt = NewRuntime();
  std::vector<int> signals;
  ASSERT_TRUE(rt->HandleTerminationSignals([&](int signo) {
                  signals.push_back(signo);
                  if (signals.size() == 2) rt->Stop();
                }).ok());
  auto raise_both = rt->CreateWallTimer([] {
    raise(SIGTERM);
    raise(SIGINT);
  });
  raise_both->ArmAfter(absl::Milliseconds(1));
  bool expired = false;
  auto watchdog = Watchdog(rt.get(), &expired);
  ASSERT_TRUE(rt->Run().ok());
  ASSERT_FALSE(expired);
  ASSERT_EQ(signals.size(), 2u);
  EXPECT_NE(std::find(signals.begin(), signals.end(), SIGTERM), signals.end());
  EXPECT_NE(std::find(signals.begin(), signals.end(), SIGINT), signals.end());
}

}  // namespace
}  // namespace qnet
