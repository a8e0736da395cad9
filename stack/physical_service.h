// The physical service a node's link layer (and later the network layer) uses:
// its emulated quantum device. Requests and indications are the messages of
// specs/proto/qnet/physical/v1/physical.proto (specs/physical.md), so that the
// in-process simulator and the qworld client carry exactly the same content.
// Layers above see heralds and measurement outcomes, never a quantum state.
#ifndef QNET_STACK_PHYSICAL_SERVICE_H_
#define QNET_STACK_PHYSICAL_SERVICE_H_

#include "qnet/physical/v1/physical.pb.h"

namespace qnet {

class PhysicalService {
 public:
  virtual ~PhysicalService() = default;
  virtual void Generate(const physical::v1::Generate& request) = 0;
  virtual void Free(const physical::v1::Free& request) = 0;
  virtual void Measure(const physical::v1::Measure& request) = 0;
  virtual void ApplyGate(const physical::v1::Gate& request) = 0;
  virtual void BellMeasure(const physical::v1::BellMeasure& request) = 0;
  // A fresh |0> qubit in an empty slot (PHYS-M9).
  virtual void Init(const physical::v1::Init& request) = 0;
  // Emulation instrumentation (PHYS-T4): asks qworld to record the true state
  // of a pair for the results. No answer ever reaches the caller.
  virtual void Probe(const physical::v1::Probe& request) = 0;
};

// Indications from the device, delivered on the runtime's thread at the emulated
// time they happen.
class PhysicalListener {
 public:
  virtual ~PhysicalListener() = default;
  virtual void OnHerald(const physical::v1::Herald& herald) = 0;
  virtual void OnMeasureResult(const physical::v1::MeasureResult& result) = 0;
  virtual void OnBellMeasureResult(const physical::v1::BellMeasureResult& result) = 0;
  virtual void OnPhysicalError(const physical::v1::Error& error) = 0;
};

}  // namespace qnet

#endif  // QNET_STACK_PHYSICAL_SERVICE_H_
