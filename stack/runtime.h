// The runtime interface every sans-I/O layer is driven through: a clock and
// timers. Two implementations: the simulator runtime (emulator/sim, virtual
// time) and the libevent runtime (stack/event_runtime.h, wall time scaled by the
// time-dilation factor). Layers never read a clock or arm a timer any other way.
#ifndef QNET_STACK_RUNTIME_H_
#define QNET_STACK_RUNTIME_H_

#include <functional>
#include <memory>

#include "stack/time.h"

namespace qnet {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Time Now() const = 0;
};

// A one-shot timer owned by the layer that created it. Destroying it cancels it.
class Timer {
 public:
  virtual ~Timer() = default;
  // Fire at `at` (or as soon as possible if `at` is not after Now()). Re-arming
  // replaces the previous deadline.
  virtual void ArmAt(Time at) = 0;
  virtual void Cancel() = 0;
  virtual bool armed() const = 0;
};

class Runtime : public Clock {
 public:
  // The callback runs on the runtime's single thread when the timer fires.
  virtual std::unique_ptr<Timer> CreateTimer(std::function<void()> on_fire) = 0;
};

}  // namespace qnet

#endif  // QNET_STACK_RUNTIME_H_
