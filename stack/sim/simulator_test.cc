#include "stack/sim/simulator.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace qnet::sim {
namespace {

TEST(SimulatorTest, RunsByTimeThenInsertionOrder) {
  Simulator sim;
  std::vector<std::string> order;
  sim.Schedule(Time::FromNanos(20), [&] { order.push_back("t20"); });
  sim.Schedule(Time::FromNanos(10), [&] { order.push_back("t10a"); });
  sim.Schedule(Time::FromNanos(10), [&] { order.push_back("t10b"); });
  sim.Run();
  EXPECT_EQ(order, (std::vector<std::string>{"t10a", "t10b", "t20"}));
  EXPECT_EQ(sim.Now(), Time::FromNanos(20));
}

TEST(SimulatorTest, TimersRearmCancelAndDieWithOwner) {
  Simulator sim;
  int fired = 0;
  auto t = sim.CreateTimer([&] { ++fired; });
  t->ArmAt(Time::FromNanos(5));
  t->ArmAt(Time::FromNanos(7));  // replaces the first deadline
  sim.Run();
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(sim.Now(), Time::FromNanos(7));
  EXPECT_FALSE(t->armed());
  t->ArmAt(Time::FromNanos(9));
  t.reset();  // destroying cancels
  sim.Run();
  EXPECT_EQ(fired, 1);
}

TEST(SimulatorTest, RunUntilStopsAtHorizon) {
  Simulator sim;
  int fired = 0;
  sim.Schedule(Time::FromNanos(100), [&] { ++fired; });
  sim.RunUntil(Time::FromNanos(50));
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(sim.Now(), Time::FromNanos(50));
  sim.RunUntil(Time::FromNanos(100));
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace qnet::sim
