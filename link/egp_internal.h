// Helpers shared by the Egp's source files (egp.cc, egp_peer.cc); not an API.
#ifndef QNET_LINK_EGP_INTERNAL_H_
#define QNET_LINK_EGP_INTERNAL_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "absl/time/time.h"
#include "stack/time.h"

namespace qnet::link::internal {

using ::qnet::SecondsToDuration;

inline Time TimeFromWire(uint64_t ns) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return ns >= kMax ? Time::Infinite() : Time::FromNanos(static_cast<int64_t>(ns));
}

inline uint64_t TimeToWire(Time t) {
  return t.is_infinite() ? 0 : static_cast<uint64_t>(t.nanos());
}

inline bool InUnitInterval(double x) { return std::isfinite(x) && x >= 0 && x <= 1; }

inline constexpr size_t kHistoryLimit = 1 << 16;
inline constexpr uint64_t kMaxExpireRange = 1 << 16;

}  // namespace qnet::link::internal

#endif  // QNET_LINK_EGP_INTERNAL_H_
