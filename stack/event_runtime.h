// The libevent runtime: the Runtime (runtime.h) of the real daemons (qworld,
// qnode), one event loop on one thread, in the style of Envoy's Dispatcher
// (only stack/ includes <event2/...>; the C types are held by RAII wrappers).
//
// Emulated time (specs/physical.md PHYS-S4). All processes of a run share the
// host's CLOCK_MONOTONIC. When qworld's Start arrives the owner calls
// SetEpoch(epoch_monotonic_ns, dilation) and from then on
//     Now() = (CLOCK_MONOTONIC_ns - epoch_monotonic_ns) / time_dilation,
// clamped at zero. Before SetEpoch, and until the epoch has passed, Now() is
// Time::Zero(): emulated time starts at 0 and never runs backwards.
//
// Timers (Runtime::CreateTimer) take emulated deadlines. A timer armed at t
// fires when CLOCK_MONOTONIC >= epoch + t * dilation, never earlier (it is
// re-armed if libevent wakes up early), so Now() >= t inside its callback.
// Timers armed before SetEpoch wait for it. Due timers run in (deadline, arm
// order) order, like the simulator runtime, with at most a bounded number of
// callbacks per loop iteration so that I/O is never starved.
//
// Wall timers (CreateWallTimer) count real time and work before SetEpoch (dial
// retries, shutdown timeouts).
#ifndef QNET_STACK_EVENT_RUNTIME_H_
#define QNET_STACK_EVENT_RUNTIME_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stack/runtime.h"

struct event_base;
struct event;

namespace qnet {

// RAII holders for libevent's C types (Envoy's CSmartPtr idea).
struct EventBaseDeleter {
  void operator()(event_base* base) const;
};
struct EventDeleter {
  void operator()(event* ev) const;
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;

// CLOCK_MONOTONIC in nanoseconds: the clock every process of a run shares.
int64_t MonotonicNanos();

// A one-shot timer on wall (monotonic) time. Destroying it cancels it.
class WallTimer {
 public:
  virtual ~WallTimer() = default;
  virtual void ArmAfter(absl::Duration delay) = 0;
  virtual void Cancel() = 0;
  virtual bool armed() const = 0;
};

class EventRuntime : public Runtime {
 public:
  // Creates the event loop. Also ignores SIGPIPE process-wide, so that writing
  // to a closed socket is an error on that stream, not the end of the process,
  // and sets the calling thread's timer slack to 1 ns (PR_SET_TIMERSLACK) so
  // that timers are not rounded by the kernel's default 50 us.
  static absl::StatusOr<std::unique_ptr<EventRuntime>> Create();
  ~EventRuntime() override;
  EventRuntime(const EventRuntime&) = delete;
  EventRuntime& operator=(const EventRuntime&) = delete;

  // Runtime.
  Time Now() const override;
  std::unique_ptr<Timer> CreateTimer(std::function<void()> on_fire) override;

  // Fixes the emulated clock (see the file comment). `time_dilation` is wall
  // seconds per emulated second and must be > 0. May be called once.
  absl::Status SetEpoch(int64_t epoch_monotonic_ns, double time_dilation);
  bool epoch_set() const { return epoch_set_; }
  int64_t epoch_monotonic_ns() const { return epoch_ns_; }
  double time_dilation() const { return dilation_; }
  // The monotonic reading at which emulated time `t` is reached (needs SetEpoch).
  int64_t WallDeadline(Time t) const;

  std::unique_ptr<WallTimer> CreateWallTimer(std::function<void()> on_fire);

  // Runs `fn` on the loop's next iteration (after the current callback returns).
  void Post(std::function<void()> fn);

  // Calls `on_signal(signo)` on the loop thread when SIGINT or SIGTERM arrives.
  // Replaces a previous hook.
  absl::Status HandleTerminationSignals(std::function<void(int signo)> on_signal);

  // Runs the loop until Stop() is called (or nothing is left to wait for).
  absl::Status Run();
  // Makes Run() return after the current callback.
  void Stop();

  // For the stream classes (stack/stream.h).
  event_base* base() const { return base_.get(); }

  uint64_t timers_fired() const { return timers_fired_; }

 private:
  class TimerImpl;
  class WallTimerImpl;
  using Key = std::pair<int64_t, uint64_t>;  // (emulated deadline ns, arm sequence)

  EventRuntime() = default;
  void Schedule(TimerImpl* timer, Time at);
  void Unschedule(TimerImpl* timer);
  void ArmDispatch();
  void Dispatch();
  static void OnDispatch(int fd, short what, void* arg);
  static void OnPosted(int fd, short what, void* arg);
  static void OnSignal(int fd, short what, void* arg);

  EventBasePtr base_;
  EventPtr dispatch_event_;
  EventPtr posted_event_;
  std::vector<EventPtr> signal_events_;
  std::function<void(int)> on_signal_;
  std::vector<std::function<void()>> posted_;
  std::map<Key, TimerImpl*> armed_;
  uint64_t next_seq_ = 1;
  bool stop_requested_ = false;
  bool epoch_set_ = false;
  int64_t epoch_ns_ = 0;
  double dilation_ = 1.0;
  uint64_t timers_fired_ = 0;
};

}  // namespace qnet

#endif  // QNET_STACK_EVENT_RUNTIME_H_
