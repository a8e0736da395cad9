#include "stack/testing/loop.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace qnet::testing {

std::unique_ptr<EventRuntime> NewEventRuntime() {
  absl::StatusOr<std::unique_ptr<EventRuntime>> runtime = EventRuntime::Create();
  EXPECT_TRUE(runtime.ok()) << runtime.status();
  if (!runtime.ok()) return nullptr;
  return std::move(*runtime);
}

std::unique_ptr<WallTimer> Watchdog(EventRuntime* runtime, bool* expired, absl::Duration limit) {
  auto timer = runtime->CreateWallTimer([runtime, expired] {
    *expired = true;
    runtime->Stop();
  });
  timer->ArmAfter(limit);
  return timer;
}

bool RunUntil(EventRuntime* runtime, const std::function<bool()>& done, absl::Duration limit) {
  bool expired = false;
  auto watchdog = Watchdog(runtime, &expired, limit);
  std::unique_ptr<WallTimer> poll;
  poll = runtime->CreateWallTimer([&] {
    if (done()) {
      runtime->Stop();
    } else {
      poll->ArmAfter(absl::Milliseconds(1));
    }
  });
  poll->ArmAfter(absl::ZeroDuration());
  EXPECT_TRUE(runtime->Run().ok());
  return !expired;
}

absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix) {
  std::string pattern = absl::StrCat("/tmp/", prefix, "-XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
  }
  return std::string(buffer.data());
}

void RemoveTempDir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void EventLoopTest::SetUp() {
  runtime_ = NewEventRuntime();
  ASSERT_NE(runtime_, nullptr);
  auto dir = MakeTempDir(dir_prefix_);
  ASSERT_TRUE(dir.ok()) << dir.status();
  dir_ = *dir;
}

void EventLoopTest::TearDown() { RemoveTempDir(dir_); }

bool EventLoopTest::RunUntil(const std::function<bool()>& done, absl::Duration limit) {
  return testing::RunUntil(runtime_.get(), done, limit);
}

}  // namespace qnet::testing
