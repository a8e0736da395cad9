// LinkHarness: two Egps (the ends a and b of one link) on the simulator, with
// FakeLinkPhysics as their device and peer frames carried with the link's
// one-way classical delay (serialized and parsed again, as on the wire). For
// the link layer's sim tests.
#ifndef QNET_LINK_TESTING_LINK_HARNESS_H_
#define QNET_LINK_TESTING_LINK_HARNESS_H_

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stack/sim/simulator.h"
#include "link/egp.h"
#include "link/memory_pool.h"
#include "link/testing/fake_physical.h"
#include "qnet/link/v1/link.pb.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/trace.h"

namespace qnet::link::testing {

class RecordingListener : public LinkListener {
 public:
  void OnOk(const v1::Ok& ok) override {
    oks.push_back(ok);
    if (on_ok) on_ok(ok);
  }
  void OnErr(const v1::Err& err) override {
    errs.push_back(err);
    if (on_err) on_err(err);
  }
  std::vector<v1::Err> ErrsWithCode(v1::ErrorCode code) const {
    std::vector<v1::Err> out;
    for (const auto& e : errs)
      if (e.code() == code) out.push_back(e);
    return out;
  }
  std::vector<v1::Ok> oks;
  std::vector<v1::Err> errs;
  std::function<void(const v1::Ok&)> on_ok;
  std::function<void(const v1::Err&)> on_err;
};

class RecordingTracer : public Tracer {
 public:
  RecordingTracer(const Clock* clock, std::string node) : clock_(clock), node_(std::move(node)) {}
  void Record(results::v1::TraceRecord record) override {
    if (record.time_ns() == 0) record.set_time_ns(clock_->Now().nanos());
    if (record.node().empty()) record.set_node(node_);
    if (record.has_drop()) ++drops[record.drop().reason()];
    records.push_back(std::move(record));
  }
  uint64_t DropCount(results::v1::DropReason reason) const {
    auto it = drops.find(reason);
    return it == drops.end() ? 0 : it->second;
  }
  std::vector<results::v1::TraceRecord> records;
  std::map<results::v1::DropReason, uint64_t> drops;

 private:
  const Clock* clock_;
  std::string node_;
};

class LinkHarness {
 public:
  struct Config {
    LinkSpec link;
    uint32_t memories_a = 2, memories_b = 2;
    uint64_t seed = 1;
    EgpOptions options;
  };

  explicit LinkHarness(Config config)
      : config_(std::move(config)),
        physics_(&sim_, config_.link, Rng(config_.seed).Fork("physics")),
        pool_a_(config_.memories_a, physics_.service(true)),
        pool_b_(config_.memories_b, physics_.service(false)),
        tracer_a_(&sim_, config_.link.a),
        tracer_b_(&sim_, config_.link.b) {
    const double d = config_.link.delay_s();
    delay_ = SecondsToDuration(d);
    a_ = std::make_unique<Egp>(
        config_.link, config_.link.a, &sim_, physics_.service(true), &pool_a_,
        [this](const v1::LinkFrame& f) { Carry(f, /*to_a=*/false); }, &listener_a_, &tracer_a_,
        Rng(config_.seed).Fork("egp/a"), config_.options);
    b_ = std::make_unique<Egp>(
        config_.link, config_.link.b, &sim_, physics_.service(false), &pool_b_,
        [this](const v1::LinkFrame& f) { Carry(f, /*to_a=*/true); }, &listener_b_, &tracer_b_,
        Rng(config_.seed).Fork("egp/b"), config_.options);
    physics_.SetHeraldSink(true, [this](const physical::v1::Herald& h) { a_->OnHerald(h); });
    physics_.SetHeraldSink(false, [this](const physical::v1::Herald& h) { b_->OnHerald(h); });
    physics_.SetErrorSink(true, [this](const physical::v1::Error& e) { a_->OnPhysicalError(e); });
    physics_.SetErrorSink(false, [this](const physical::v1::Error& e) { b_->OnPhysicalError(e); });
  }

  sim::Simulator& sim() { return sim_; }
  FakeLinkPhysics& physics() { return physics_; }
  Egp& end(bool a) { return a ? *a_ : *b_; }
  Egp& a() { return *a_; }
  Egp& b() { return *b_; }
  MemoryPool& pool(bool a) { return a ? pool_a_ : pool_b_; }
  RecordingListener& listener(bool a) { return a ? listener_a_ : listener_b_; }
  RecordingTracer& tracer(bool a) { return a ? tracer_a_ : tracer_b_; }
  absl::Duration delay() const { return delay_; }
  const LinkSpec& link() const { return config_.link; }

  // Frames in flight can be inspected, changed or dropped (return false).
  std::function<bool(bool to_a, v1::LinkFrame& frame)> frame_filter;
  uint64_t frames_carried = 0;

  // Delivers a frame to an end now, as if it came from the other end.
  void Inject(bool to_a, const v1::LinkFrame& frame) { end(to_a).OnPeerFrame(frame); }

  void RunFor(absl::Duration d) { sim_.RunUntil(sim_.Now() + d); }
  void RunUntil(Time t) { sim_.RunUntil(t); }

 private:
  void Carry(const v1::LinkFrame& frame, bool to_a) {
    v1::LinkFrame copy;
    copy.ParseFromString(frame.SerializeAsString());
    if (frame_filter && !frame_filter(to_a, copy)) return;
    ++frames_carried;
    const std::string bytes = copy.SerializeAsString();
    sim_.Schedule(sim_.Now() + delay_, [this, to_a, bytes] {
      v1::LinkFrame f;
      f.ParseFromString(bytes);
      end(to_a).OnPeerFrame(f);
    });
  }

  Config config_;
  sim::Simulator sim_;
  FakeLinkPhysics physics_;
  MemoryPool pool_a_, pool_b_;
  RecordingListener listener_a_, listener_b_;
  RecordingTracer tracer_a_, tracer_b_;
  absl::Duration delay_;
  std::unique_ptr<Egp> a_, b_;
};

}  // namespace qnet::link::testing

#endif  // QNET_LINK_TESTING_LINK_HARNESS_H_
