// Test support for code that runs on an EventRuntime (stack/event_runtime.h):
// creating a runtime, a wall-clock watchdog, running the loop until a
// condition holds, and temporary directories for Unix sockets and output
// files. Linked by tests only (CMake target qnet_event_testing).
#ifndef QNET_STACK_TESTING_LOOP_H_
#define QNET_STACK_TESTING_LOOP_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "stack/event_runtime.h"

namespace qnet::testing {

// A new EventRuntime; records a test failure and returns null if it cannot be created.
std::unique_ptr<EventRuntime> NewEventRuntime();

// Stops the loop after `limit` of wall time and sets `*expired`, so that a
// broken test fails instead of hanging. Disarmed when the timer is destroyed.
std::unique_ptr<WallTimer> Watchdog(EventRuntime* runtime, bool* expired,
                                    absl::Duration limit = absl::Seconds(10));

// Runs the loop until `done()` holds (checked at once, then every millisecond)
// or `limit` of wall time passes. Expects Run() to succeed; returns false on
// the timeout.
bool RunUntil(EventRuntime* runtime, const std::function<bool()>& done,
              absl::Duration limit = absl::Seconds(10));

// Creates a fresh directory /tmp/<prefix>-XXXXXX and returns its path.
absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix);

// Removes `dir` and everything below it; errors are ignored.
void RemoveTempDir(const std::string& dir);

// A fixture with a fresh EventRuntime (`runtime_`) and a temporary directory
// (`dir_`, /tmp/<dir_prefix>-XXXXXX) per test; the directory is removed in
// TearDown. A subclass that overrides SetUp calls
// ASSERT_NO_FATAL_FAILURE(EventLoopTest::SetUp()) first; one that overrides
// TearDown calls EventLoopTest::TearDown() last.
class EventLoopTest : public ::testing::Test {
 protected:
  explicit EventLoopTest(std::string dir_prefix) : dir_prefix_(std::move(dir_prefix)) {}

  void SetUp() override;
  void TearDown() override;

  // RunUntil (above) on `runtime_`.
  bool RunUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(10));

  std::unique_ptr<EventRuntime> runtime_;
  std::string dir_;

 private:
  std::string dir_prefix_;
};

}  // namespace qnet::testing

#endif  // QNET_STACK_TESTING_LOOP_H_
