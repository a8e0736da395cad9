#include "stack/sim/simulator.h"

#include <utility>

namespace qnet::sim {
namespace {

class SimTimer : public Timer {
 public:
  SimTimer(Simulator* sim, std::function<void()> on_fire)
      : sim_(sim), on_fire_(std::make_shared<std::function<void()>>(std::move(on_fire))) {}
  ~SimTimer() override { Cancel(); }

  void ArmAt(Time at) override {
    Cancel();
    std::weak_ptr<std::function<void()>> fn = on_fire_;
    id_ = sim_->Schedule(at, [this, fn] {
      if (auto f = fn.lock()) {
        id_ = 0;
        (*f)();
      }
    });
  }
  void Cancel() override {
    if (id_ != 0) sim_->Cancel(id_);
    id_ = 0;
  }
  bool armed() const override { return id_ != 0; }

 private:
  Simulator* sim_;
  std::shared_ptr<std::function<void()>> on_fire_;
  Simulator::EventId id_ = 0;
};

}  // namespace

std::unique_ptr<Timer> Simulator::CreateTimer(std::function<void()> on_fire) {
  return std::make_unique<SimTimer>(this, std::move(on_fire));
}

Simulator::EventId Simulator::Schedule(Time at, std::function<void()> fn) {
  const EventId id = next_seq_++;
  queue_.push(Event{std::max(at, now_), id, std::move(fn)});
  return id;
}

void Simulator::Cancel(EventId id) { cancelled_.insert(id); }

void Simulator::DropCancelledTop() {
  while (!queue_.empty()) {
    auto it = cancelled_.find(queue_.top().seq);
    if (it == cancelled_.end()) return;
    cancelled_.erase(it);
    queue_.pop();
  }
}

bool Simulator::Step() {
  DropCancelledTop();
  if (queue_.empty()) return false;
  // Move the callback out before popping: it may schedule more events.
  Event ev = std::move(const_cast<Event&>(queue_.top()));
  queue_.pop();
  now_ = ev.at;
  ++events_run_;
  ev.fn();
  return true;
}

void Simulator::RunUntil(Time until) {
  for (;;) {
    DropCancelledTop();
    if (queue_.empty() || queue_.top().at > until) break;
    Step();
  }
  if (until > now_ && !until.is_infinite()) now_ = until;
}

void Simulator::Run() {
  while (Step()) {
  }
}

}  // namespace qnet::sim
