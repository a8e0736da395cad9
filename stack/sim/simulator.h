// The simulator runtime: a small discrete-event engine in virtual time. Events
// run in (time, insertion sequence) order, so a seed fully determines a run
// (CONVENTIONS: same-time events run in insertion order). It knows nothing of
// quantum physics or of any layer; nodes, links and qworld's core are attached
// to it by the sim backend (emulator/backend). It lives in stack/ so that layer
// tests (link/testing) can drive a layer in virtual time without reaching up
// into emulator/.
#ifndef QNET_STACK_SIM_SIMULATOR_H_
#define QNET_STACK_SIM_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "stack/runtime.h"

namespace qnet::sim {

class Simulator : public Runtime {
 public:
  using EventId = uint64_t;

  Time Now() const override { return now_; }
  std::unique_ptr<Timer> CreateTimer(std::function<void()> on_fire) override;

  // Schedules `fn` at `at` (clamped to Now()). Returns an id for Cancel().
  EventId Schedule(Time at, std::function<void()> fn);
  void Cancel(EventId id);

  // Runs the next event; false if none is left.
  bool Step();
  // Runs every event with time <= `until`, then sets the clock to `until`.
  void RunUntil(Time until);
  void Run();

  uint64_t events_run() const { return events_run_; }
  size_t pending() const { return queue_.size() - cancelled_.size(); }

 private:
  struct Event {
    Time at;
    EventId seq;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Event& x, const Event& y) const {
      return x.at != y.at ? x.at > y.at : x.seq > y.seq;
    }
  };
  void DropCancelledTop();

  Time now_ = Time::Zero();
  EventId next_seq_ = 1;
  uint64_t events_run_ = 0;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  absl::flat_hash_set<EventId> cancelled_;
};

}  // namespace qnet::sim

#endif  // QNET_STACK_SIM_SIMULATOR_H_
