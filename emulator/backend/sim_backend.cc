#include "emulator/backend/sim_backend.h"

#include <filesystem>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "emulator/node/node.h"
#include "emulator/world/world.h"
#include "stack/json_lines.h"
#include "stack/sim/simulator.h"

namespace qnet::backend {
namespace {

using physical::v1::NodeToWorld;
using physical::v1::WorldToNode;

// The device of one node in the sim backend: requests go straight to World at
// the current virtual time (physics is out of band: no classical delay).
class SimPhysical : public PhysicalService {
 public:
  SimPhysical(std::string node, world::World* world, const sim::Simulator* sim)
      : node_(std::move(node)), world_(world), sim_(sim) {}

  void Generate(const physical::v1::Generate& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_generate() = r; });
  }
  void Free(const physical::v1::Free& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_free() = r; });
  }
  void Measure(const physical::v1::Measure& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_measure() = r; });
  }
  void ApplyGate(const physical::v1::Gate& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_gate() = r; });
  }
  void BellMeasure(const physical::v1::BellMeasure& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_bell_measure() = r; });
  }
  void Init(const physical::v1::Init& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_init() = r; });
  }
  void Probe(const physical::v1::Probe& r) override {
    Send([&](NodeToWorld& m) { *m.mutable_probe() = r; });
  }
  void Hello() {
    Send([&](NodeToWorld& m) { m.mutable_hello()->set_node(node_); });
  }

 private:
  template <typename Fill>
  void Send(Fill fill) {
    NodeToWorld m;
    m.set_version(1);
    fill(m);
    world_->Handle(node_, m, sim_->Now());
  }
  std::string node_;
  world::World* world_;
  const sim::Simulator* sim_;
};

class Run : public world::World::Output {
 public:
  Run(const Topology& topology, const std::string& out_dir)
      : topology_(topology), out_dir_(out_dir) {}

  absl::Status Init() {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(out_dir_) / "nodes", ec);
    if (ec)
      return absl::InternalError(
          absl::StrCat("cannot create ", out_dir_, "/nodes: ", ec.message()));
    qworld_trace_ = std::make_unique<JsonLinesTracer>(out_dir_ + "/qworld.jsonl", "qworld", &sim_);
    if (!qworld_trace_->ok())
      return absl::InternalError(absl::StrCat("cannot write ", out_dir_, "/qworld.jsonl"));
    const Rng root(topology_.seed);
    world_ = std::make_unique<world::World>(topology_, root.Fork("qworld"), this);
    for (const NodeSpec& spec : topology_.nodes) {
      auto& n = nodes_[spec.name];
      n.tracer = std::make_unique<JsonLinesTracer>(out_dir_ + "/nodes/" + spec.name + ".jsonl",
                                                   spec.name, &sim_);
      if (!n.tracer->ok())
        return absl::InternalError(absl::StrCat("cannot write trace of ", spec.name));
      n.physical = std::make_unique<SimPhysical>(spec.name, world_.get(), &sim_);
      node::Node::Env env;
      env.runtime = &sim_;
      env.physical = n.physical.get();
      env.tracer = n.tracer.get();
      const std::string from = spec.name;
      env.send = [this, from](const std::string& neighbour, const wire::v1::Frame& frame) {
        SendClassical(from, neighbour, frame);
      };
      n.node = std::make_unique<node::Node>(topology_, spec.name, std::move(env),
                                            root.Fork("node/" + spec.name));
    }
    for (auto& [name, n] : nodes_) n.physical->Hello();
    return absl::OkStatus();
  }

  void Deliver(const std::string& node, WorldToNode message, Time at) override {
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return;
    node::Node* target = it->second.node.get();
    sim_.Schedule(at, [target, m = std::move(message)] {
      switch (m.body_case()) {
        case WorldToNode::kHerald:
          target->OnHerald(m.herald());
          break;
        case WorldToNode::kMeasureResult:
          target->OnMeasureResult(m.measure_result());
          break;
        case WorldToNode::kBellMeasureResult:
          target->OnBellMeasureResult(m.bell_measure_result());
          break;
        case WorldToNode::kError:
          target->OnPhysicalError(m.error());
          break;
        default:
          break;  // HelloAck, Start, Stop: session messages the sim does not need
      }
    });
  }

  void Record(results::v1::TraceRecord record) override {
    qworld_trace_->Record(std::move(record));
  }

  absl::Status Execute(const std::function<void(const SimProgress&)>& progress) {
    for (auto& [name, n] : nodes_) n.node->Start();
    const Time end = Time::FromSeconds(topology_.duration_s);
    constexpr int kSteps = 20;
    for (int i = 1; i <= kSteps; ++i) {
      sim_.RunUntil(i == kSteps ? end : Time::FromNanos(end.nanos() / kSteps * i));
      if (progress) {
        SimProgress p;
        p.emulated_s = sim_.Now().seconds();
        p.events = sim_.events_run();
        for (auto& [name, n] : nodes_) p.oks += n.node->oks();
        progress(p);
      }
    }
    for (auto& [name, n] : nodes_) n.node->Stop();
    for (auto& [name, n] : nodes_) n.tracer->Flush();
    qworld_trace_->Flush();
    return absl::OkStatus();
  }

 private:
  void SendClassical(const std::string& from, const std::string& to, const wire::v1::Frame& frame) {
    const LinkSpec* link = topology_.LinkBetween(from, to);
    auto it = nodes_.find(to);
    if (link == nullptr || it == nodes_.end()) return;
    node::Node* target = it->second.node.get();
    const Time at = sim_.Now() + SecondsToDuration(link->delay_s());
    sim_.Schedule(at, [target, from, frame] { target->OnFrame(from, frame); });
  }

  struct SimNode {
    std::unique_ptr<JsonLinesTracer> tracer;
    std::unique_ptr<SimPhysical> physical;
    std::unique_ptr<node::Node> node;
  };

  const Topology& topology_;
  std::string out_dir_;
  sim::Simulator sim_;
  std::unique_ptr<JsonLinesTracer> qworld_trace_;
  std::unique_ptr<world::World> world_;
  std::map<std::string, SimNode> nodes_;  // ordered: deterministic iteration
};

}  // namespace

absl::Status RunSimulation(const Topology& topology, const std::string& out_dir,
                           const std::function<void(const SimProgress&)>& progress) {
  Run run(topology, out_dir);
  if (absl::Status s = run.Init(); !s.ok()) return s;
  return run.Execute(progress);
}

}  // namespace qnet::backend
