#include "stack/event_runtime.h"

#include <event2/event.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qnet {
namespace {

// Upper bound of timer callbacks run per loop iteration before I/O gets a turn.
constexpr int kMaxTimersPerDispatch = 256;

timeval ToTimeval(int64_t ns) {
  if (ns < 0) ns = 0;
  const int64_t us = (ns + 999) / 1000;  // round up: never wake before the deadline
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}

}  // namespace

void EventBaseDeleter::operator()(event_base* base) const { event_base_free(base); }
void EventDeleter::operator()(event* ev) const { event_free(ev); }

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

class EventRuntime::TimerImpl : public Timer {
 public:
  TimerImpl(EventRuntime* runtime, std::function<void()> on_fire)
      : runtime_(runtime), on_fire_(std::make_shared<std::function<void()>>(std::move(on_fire))) {}
  ~TimerImpl() override { Cancel(); }

  void ArmAt(Time at) override { runtime_->Schedule(this, at); }
  void Cancel() override {
    if (armed_) runtime_->Unschedule(this);
  }
  bool armed() const override { return armed_; }

 private:
  friend class EventRuntime;
  EventRuntime* runtime_;
  std::shared_ptr<std::function<void()>> on_fire_;
  bool armed_ = false;
  Key key_{0, 0};
};

class EventRuntime::WallTimerImpl : public WallTimer {
 public:
  WallTimerImpl(event_base* base, std::function<void()> on_fire)
      : on_fire_(std::make_shared<std::function<void()>>(std::move(on_fire))) {
    event_.reset(evtimer_new(base, &WallTimerImpl::OnFire, this));
  }
  void ArmAfter(absl::Duration delay) override {
    const timeval tv = ToTimeval(absl::ToInt64Nanoseconds(delay));
    evtimer_add(event_.get(), &tv);
  }
  void Cancel() override { evtimer_del(event_.get()); }
  bool armed() const override { return evtimer_pending(event_.get(), nullptr) != 0; }

 private:
  static void OnFire(int, short, void* arg) {
    // Copy: the callback may destroy this timer.
    std::shared_ptr<std::function<void()>> fn = static_cast<WallTimerImpl*>(arg)->on_fire_;
    (*fn)();
  }
  std::shared_ptr<std::function<void()>> on_fire_;
  EventPtr event_;
};

absl::StatusOr<std::unique_ptr<EventRuntime>> EventRuntime::Create() {
  signal(SIGPIPE, SIG_IGN);
  // The kernel may delay a timer wake-up by the thread's timer slack (50 us by
  // default), half an attempt cycle of a fast link: ask for 1 ns.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  event_config* config = event_config_new();
  if (config == nullptr) return absl::InternalError("event_config_new failed");
  // Precise timers: the default coarse monotonic clock has a resolution of
  // milliseconds, far above a link's attempt cycle. No cached time: timers are
  // computed from the clock's reading when they are armed.
  event_config_set_flag(config, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_PRECISE_TIMER |
                                    EVENT_BASE_FLAG_NO_CACHE_TIME);
  std::unique_ptr<EventRuntime> runtime(new EventRuntime());
  runtime->base_.reset(event_base_new_with_config(config));
  event_config_free(config);
  if (runtime->base_ == nullptr) return absl::InternalError("event_base_new_with_config failed");
  runtime->dispatch_event_.reset(
      evtimer_new(runtime->base(), &EventRuntime::OnDispatch, runtime.get()));
  runtime->posted_event_.reset(
      event_new(runtime->base(), -1, 0, &EventRuntime::OnPosted, runtime.get()));
  if (runtime->dispatch_event_ == nullptr || runtime->posted_event_ == nullptr) {
    return absl::InternalError("event_new failed");
  }
  return runtime;
}

EventRuntime::~EventRuntime() {
  for (auto& [key, timer] : armed_) timer->armed_ = false;
}

Time EventRuntime::Now() const {
  if (!epoch_set_) return Time::Zero();
  const int64_t elapsed = MonotonicNanos() - epoch_ns_;
  if (elapsed <= 0) return Time::Zero();
  if (dilation_ == 1.0) return Time::FromNanos(elapsed);
  return Time::FromNanos(
      static_cast<int64_t>(std::floor(static_cast<long double>(elapsed) / dilation_)));
}

int64_t EventRuntime::WallDeadline(Time t) const {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (t.is_infinite()) return kMax;
  const long double wall = static_cast<long double>(epoch_ns_) +
                           std::ceil(static_cast<long double>(t.nanos()) * dilation_);
  if (wall >= static_cast<long double>(kMax)) return kMax;
  return static_cast<int64_t>(wall);
}

absl::Status EventRuntime::SetEpoch(int64_t epoch_monotonic_ns, double time_dilation) {
  if (epoch_set_) return absl::FailedPreconditionError("the epoch is already set");
  if (!(time_dilation > 0) || !std::isfinite(time_dilation)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time dilation must be > 0, got ", time_dilation));
  }
  epoch_ns_ = epoch_monotonic_ns;
  dilation_ = time_dilation;
  epoch_set_ = true;
  ArmDispatch();
  return absl::OkStatus();
}

std::unique_ptr<Timer> EventRuntime::CreateTimer(std::function<void()> on_fire) {
  return std::make_unique<TimerImpl>(this, std::move(on_fire));
}

std::unique_ptr<WallTimer> EventRuntime::CreateWallTimer(std::function<void()> on_fire) {
  return std::make_unique<WallTimerImpl>(base(), std::move(on_fire));
}

void EventRuntime::Schedule(TimerImpl* timer, Time at) {
  if (timer->armed_) armed_.erase(timer->key_);
  timer->key_ = Key{at.nanos(), next_seq_++};
  timer->armed_ = true;
  auto [it, inserted] = armed_.emplace(timer->key_, timer);
  if (it == armed_.begin()) ArmDispatch();
}

void EventRuntime::Unschedule(TimerImpl* timer) {
  armed_.erase(timer->key_);
  timer->armed_ = false;
  // The dispatch event may now wake up early; Dispatch() re-arms it then.
}

void EventRuntime::ArmDispatch() {
  if (!epoch_set_ || armed_.empty()) {
    evtimer_del(dispatch_event_.get());
    return;
  }
  const int64_t deadline = WallDeadline(Time::FromNanos(armed_.begin()->first.first));
  if (deadline == std::numeric_limits<int64_t>::max()) {
    evtimer_del(dispatch_event_.get());
    return;
  }
  const timeval tv = ToTimeval(deadline - MonotonicNanos());
  evtimer_add(dispatch_event_.get(), &tv);
}

void EventRuntime::Dispatch() {
  if (!epoch_set_) return;
  int64_t now = MonotonicNanos();
  for (int fired = 0; fired < kMaxTimersPerDispatch && !armed_.empty(); ++fired) {
    auto it = armed_.begin();
    const int64_t deadline = WallDeadline(Time::FromNanos(it->first.first));
    if (deadline > now) {
      now = MonotonicNanos();
      if (deadline > now) break;
    }
    TimerImpl* timer = it->second;
    armed_.erase(it);
    timer->armed_ = false;
    ++timers_fired_;
    // Copy: the callback may destroy its own timer.
    std::shared_ptr<std::function<void()>> fn = timer->on_fire_;
    (*fn)();
  }
  ArmDispatch();
}

void EventRuntime::OnDispatch(int, short, void* arg) {
  static_cast<EventRuntime*>(arg)->Dispatch();
}

void EventRuntime::Post(std::function<void()> fn) {
  posted_.push_back(std::move(fn));
  event_active(posted_event_.get(), EV_TIMEOUT, 0);
}

void EventRuntime::OnPosted(int, short, void* arg) {
  auto* self = static_cast<EventRuntime*>(arg);
  std::vector<std::function<void()>> batch;
  batch.swap(self->posted_);
  for (auto& fn : batch) fn();
}

absl::Status EventRuntime::HandleTerminationSignals(std::function<void(int)> on_signal) {
  on_signal_ = std::move(on_signal);
  if (!signal_events_.empty()) return absl::OkStatus();
  for (int signo : {SIGINT, SIGTERM}) {
    EventPtr ev(evsignal_new(base(), signo, &EventRuntime::OnSignal, this));
    if (ev == nullptr || evsignal_add(ev.get(), nullptr) != 0) {
      return absl::InternalError(absl::StrCat("cannot handle signal ", signo));
    }
    signal_events_.push_back(std::move(ev));
  }
  return absl::OkStatus();
}

void EventRuntime::OnSignal(int signo, short, void* arg) {
  auto* self = static_cast<EventRuntime*>(arg);
  if (self->on_signal_) self->on_signal_(signo);
}

absl::Status EventRuntime::Run() {
  if (stop_requested_) {
    stop_requested_ = false;
    return absl::OkStatus();
  }
  const int rc = event_base_loop(base(), EVLOOP_NO_EXIT_ON_EMPTY);
  stop_requested_ = false;
  if (rc < 0) return absl::InternalError("the event loop failed");
  return absl::OkStatus();
}

void EventRuntime::Stop() {
  stop_requested_ = true;
  event_base_loopbreak(base());
}

}  // namespace qnet
