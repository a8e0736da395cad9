// Emulated time. Every layer reads time only through qnet::Clock (runtime.h);
// values are nanoseconds since the run's epoch, identical in meaning under the
// sim, local and mininet backends.
#ifndef QNET_STACK_TIME_H_
#define QNET_STACK_TIME_H_

#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>

#include "absl/time/time.h"

namespace qnet {

// A point in emulated time (ns since the epoch). Distinct from absl::Duration so
// that points and spans cannot be mixed up.
class Time {
 public:
  constexpr Time() = default;
  static constexpr Time FromNanos(int64_t ns) { return Time(ns); }
  static Time FromSeconds(double s) { return Time(static_cast<int64_t>(s * 1e9 + 0.5)); }
  static constexpr Time Zero() { return Time(0); }
  static constexpr Time Infinite() { return Time(std::numeric_limits<int64_t>::max()); }

  constexpr int64_t nanos() const { return ns_; }
  constexpr double seconds() const { return static_cast<double>(ns_) * 1e-9; }
  constexpr bool is_infinite() const { return ns_ == std::numeric_limits<int64_t>::max(); }

  friend constexpr auto operator<=>(Time, Time) = default;
  friend Time operator+(Time t, absl::Duration d) {
    if (t.is_infinite() || d == absl::InfiniteDuration()) return Infinite();
    return Time(t.ns_ + absl::ToInt64Nanoseconds(d));
  }
  friend Time operator-(Time t, absl::Duration d) { return Time(t.ns_ - absl::ToInt64Nanoseconds(d)); }
  friend absl::Duration operator-(Time a, Time b) { return absl::Nanoseconds(a.ns_ - b.ns_); }

 private:
  constexpr explicit Time(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};

// Seconds (as topology files give them) to a duration, rounded to the nearest
// nanosecond; zero for non-positive or NaN input. Every layer and backend
// converts with this one function so that, e.g., the classical delay the link
// layer plans with is the delay the channel applies, to the nanosecond.
inline absl::Duration SecondsToDuration(double s) {
  if (!(s > 0)) return absl::ZeroDuration();
  return absl::Nanoseconds(std::llround(s * 1e9));
}

}  // namespace qnet

#endif  // QNET_STACK_TIME_H_
