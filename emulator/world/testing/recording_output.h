// Test helpers for World: an Output that records every delivery and trace
// record, and builders for requests.
#ifndef QNET_EMULATOR_WORLD_TESTING_RECORDING_OUTPUT_H_
#define QNET_EMULATOR_WORLD_TESTING_RECORDING_OUTPUT_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "emulator/world/world.h"

namespace qnet::world::testing {

struct Delivery {
  std::string node;
  physical::v1::WorldToNode message;
  Time at;
};

class RecordingOutput : public World::Output {
 public:
  void Deliver(const std::string& node, physical::v1::WorldToNode message, Time at) override {
    deliveries.push_back({node, std::move(message), at});
  }
  void Record(results::v1::TraceRecord record) override { records.push_back(std::move(record)); }

  // Deliveries of one kind to `node` since index `from`.
  std::vector<Delivery> To(const std::string& node, physical::v1::WorldToNode::BodyCase body,
                           size_t from = 0) const {
    std::vector<Delivery> out;
    for (size_t i = from; i < deliveries.size(); ++i)
      if (deliveries[i].node == node && deliveries[i].message.body_case() == body)
        out.push_back(deliveries[i]);
    return out;
  }
  std::vector<results::v1::TraceRecord> Records(results::v1::TraceRecord::EventCase event) const {
    std::vector<results::v1::TraceRecord> out;
    for (const auto& r : records)
      if (r.event_case() == event) out.push_back(r);
    return out;
  }
  void Clear() {
    deliveries.clear();
    records.clear();
  }

  std::vector<Delivery> deliveries;
  std::vector<results::v1::TraceRecord> records;
};

inline physical::v1::NodeToWorld Hello(const std::string& node) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_hello()->set_node(node);
  return m;
}

struct GenerateArgs {
  std::string link = "ab";
  uint64_t batch = 1;
  uint64_t queue_id = 1;
  std::optional<uint32_t> slot = 0;
  double alpha = 0.1;
  physical::v1::Basis basis = physical::v1::BASIS_UNSPECIFIED;
  uint64_t deadline_ns = 0;
  uint32_t idle_cycles = 0;
  // Batches of several pairs (PHYS-B17): `slots` instead of `slot`.
  uint32_t pairs = 0;
  std::vector<uint32_t> slots;
  std::vector<physical::v1::Basis> bases;
  uint64_t start_ns = 0;
};

inline physical::v1::NodeToWorld Generate(const GenerateArgs& a) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  auto* g = m.mutable_generate();
  g->set_link(a.link);
  g->set_batch(a.batch);
  g->set_queue_id(a.queue_id);
  if (a.slot) g->set_slot(*a.slot);
  g->set_alpha(a.alpha);
  g->set_measure_basis(a.basis);
  g->set_deadline_ns(a.deadline_ns);
  g->set_idle_cycles(a.idle_cycles);
  g->set_pairs(a.pairs);
  for (uint32_t s : a.slots) g->add_slots(s);
  for (physical::v1::Basis b : a.bases) g->add_measure_bases(b);
  g->set_start_ns(a.start_ns);
  return m;
}

inline physical::v1::NodeToWorld Free(uint32_t slot) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_free()->set_slot(slot);
  return m;
}

inline physical::v1::NodeToWorld Measure(uint64_t id, uint32_t slot, physical::v1::Basis basis,
                                         bool keep = false) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_measure()->set_request_id(id);
  m.mutable_measure()->set_slot(slot);
  m.mutable_measure()->set_basis(basis);
  m.mutable_measure()->set_keep(keep);
  return m;
}

inline physical::v1::NodeToWorld Gate(physical::v1::GateKind kind, uint32_t slot,
                                      std::optional<uint32_t> target = std::nullopt,
                                      double angle = 0) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_gate()->set_kind(kind);
  m.mutable_gate()->set_slot(slot);
  if (target) m.mutable_gate()->set_target(*target);
  m.mutable_gate()->set_angle(angle);
  return m;
}

inline physical::v1::NodeToWorld BellMeasure(uint64_t id, uint32_t a, uint32_t b) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_bell_measure()->set_request_id(id);
  m.mutable_bell_measure()->set_slot_a(a);
  m.mutable_bell_measure()->set_slot_b(b);
  return m;
}

inline physical::v1::NodeToWorld Init(uint32_t slot) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_init()->set_slot(slot);
  return m;
}

inline physical::v1::NodeToWorld Probe(uint32_t slot, physical::v1::BellState bell,
                                       const std::string& label) {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_probe()->set_slot(slot);
  m.mutable_probe()->set_bell_state(bell);
  m.mutable_probe()->set_label(label);
  return m;
}

inline physical::v1::NodeToWorld Bye() {
  physical::v1::NodeToWorld m;
  m.set_version(1);
  m.mutable_bye()->set_reason("done");
  return m;
}

// A topology of nodes "a", "b" (and "c" when `three`), hardware "hw" with
// `memories` slots, and links "ab" (and "bc").
inline Topology TwoNodes(const LinkSpec& ab, int memories = 4, bool three = false) {
  Topology t;
  HardwareSpec hw;
  hw.name = "hw";
  hw.memories = memories;
  t.hardware.push_back(hw);
  for (const char* n : {"a", "b", "c"}) {
    if (!three && std::string(n) == "c") break;
    t.nodes.push_back(NodeSpec{n, "hw", 0});
  }
  LinkSpec l = ab;
  l.name = "ab";
  l.a = "a";
  l.b = "b";
  t.links.push_back(l);
  if (three) {
    l.name = "bc";
    l.a = "b";
    l.b = "c";
    t.links.push_back(l);
  }
  return t;
}

}  // namespace qnet::world::testing

#endif  // QNET_EMULATOR_WORLD_TESTING_RECORDING_OUTPUT_H_
