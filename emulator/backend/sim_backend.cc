#include "emulator/backend/sim_backend.h"

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emulator/backend/in_process_apps.h"
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
  Run(const Topology& topology, const std::string& out_dir, bool binary_traces)
      : topology_(topology),
        out_dir_(out_dir),
        format_(binary_traces ? JsonLinesTracer::Format::kBinary
                              : JsonLinesTracer::Format::kJsonLines),
        extension_(binary_traces ? ".pb" : ".jsonl") {}

  absl::Status Init() {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(out_dir_) / "nodes", ec);
    if (ec)
      return absl::InternalError(
          absl::StrCat("cannot create ", out_dir_, "/nodes: ", ec.message()));
    qworld_trace_ = std::make_unique<JsonLinesTracer>(out_dir_ + "/qworld" + extension_, "qworld",
                                                      &sim_, format_);
    if (!qworld_trace_->ok())
      return absl::InternalError(absl::StrCat("cannot write ", out_dir_, "/qworld", extension_));
    const Rng root(topology_.seed);
    world_ = std::make_unique<world::World>(topology_, root.Fork("qworld"), this);
    for (const NodeSpec& spec : topology_.nodes) {
      auto& n = nodes_[spec.name];
      n.tracer = std::make_unique<JsonLinesTracer>(
          out_dir_ + "/nodes/" + spec.name + extension_, spec.name, &sim_, format_);
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
    // Failure events: qworld's core applies them itself (PHYS-L3); the
    // channels and the nodes learn them at the event's time (Execute).
    apps_ = std::make_unique<InProcessApps>(
        topology_, &sim_, root.Fork("apps"),
        [this](const std::string& node) -> transport::TransportService* {
          auto it = nodes_.find(node);
          return it == nodes_.end() ? nullptr : it->second.node->transport();
        },
        [this](const std::string& node) -> Tracer* {
          auto it = nodes_.find(node);
          return it == nodes_.end() ? nullptr : it->second.tracer.get();
        });
    return apps_->Init();
  }

  ~Run() override {
    apps_.reset();  // app sessions unbind their sockets from the nodes' transports
  }

  void Report(SimReport* report) const {
    for (const ConnectionSpec& c : topology_.connections) {
      if (const node::ConnectionCounts* n = nodes_.at(c.from).node->connection_counts(c.name))
        report->initiator[c.name] = *n;
      if (const node::ConnectionCounts* n = nodes_.at(c.to).node->connection_counts(c.name))
        report->responder[c.name] = *n;
    }
    for (const AppSpec& a : topology_.apps) report->apps[a.name] = apps_->ResultJson(a.name);
    report->frames_cut = frames_cut_;
  }

  // The links an event cuts: its link, or every link of its node.
  std::vector<std::string> LinksOf(const EventSpec& e) const {
    std::vector<std::string> links;
    for (const LinkSpec& l : topology_.links) {
      if (e.kind == EventKind::kCutLink ? l.name == e.target : (l.a == e.target || l.b == e.target))
        links.push_back(l.name);
    }
    return links;
  }

  void CutLinks(const EventSpec& e) {
    for (const std::string& name : LinksOf(e)) {
      if (!cut_.insert(name).second) continue;
      const LinkSpec* link = topology_.FindLink(name);
      for (const std::string& end : {link->a, link->b}) {
        auto it = nodes_.find(end);
        if (it != nodes_.end()) it->second.node->OnLinkDown(name);
      }
    }
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
    std::vector<std::unique_ptr<Timer>> event_timers;
    for (const EventSpec& e : topology_.events) {
      auto timer = sim_.CreateTimer([this, &e] { CutLinks(e); });
      timer->ArmAt(Time::FromSeconds(e.at_s));
      event_timers.push_back(std::move(timer));
    }
    apps_->Start();
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
    return apps_->WriteResults(out_dir_);
  }

 private:
  void SendClassical(const std::string& from, const std::string& to, const wire::v1::Frame& frame) {
    const LinkSpec* link = topology_.LinkBetween(from, to);
    auto it = nodes_.find(to);
    if (link == nullptr || it == nodes_.end()) return;
    // A cut link's classical channel loses every frame sent or arriving
    // after the cut (counted at the sender or the receiver).
    if (cut_.contains(link->name)) return DropCut(from, to, *link);
    node::Node* target = it->second.node.get();
    const Time at = sim_.Now() + SecondsToDuration(link->delay_s());
    sim_.Schedule(at, [this, target, from, to, link, frame] {
      if (cut_.contains(link->name)) return DropCut(to, from, *link);
      target->OnFrame(from, frame);
    });
  }

  void DropCut(const std::string& at, const std::string& other, const LinkSpec& link) {
    ++frames_cut_;
    nodes_[at].tracer->Drop(
        results::v1::DROP_REASON_NO_CONSUMER,
        absl::StrCat("frame between ", at, " and ", other, " lost: link ", link.name, " is cut"),
        link.name);
  }

  struct SimNode {
    std::unique_ptr<JsonLinesTracer> tracer;
    std::unique_ptr<SimPhysical> physical;
    std::unique_ptr<node::Node> node;
  };

  const Topology& topology_;
  std::string out_dir_;
  JsonLinesTracer::Format format_;
  std::string extension_;  // of the trace files
  sim::Simulator sim_;
  std::unique_ptr<JsonLinesTracer> qworld_trace_;
  std::unique_ptr<world::World> world_;
  std::map<std::string, SimNode> nodes_;  // ordered: deterministic iteration
  std::set<std::string> cut_;             // links cut by events so far
  uint64_t frames_cut_ = 0;
  std::unique_ptr<InProcessApps> apps_;  // declared last: destroyed first
};

}  // namespace

absl::Status RunSimulation(const Topology& topology, const std::string& out_dir,
                           const std::function<void(const SimProgress&)>& progress,
                           SimReport* report, bool binary_traces) {
  Run run(topology, out_dir, binary_traces);
  if (absl::Status s = run.Init(); !s.ok()) return s;
  absl::Status status = run.Execute(progress);
  if (report != nullptr) run.Report(report);
  return status;
}

}  // namespace qnet::backend
