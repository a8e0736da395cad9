// Qubit operations of the TransportLayer (TRN-Q*) and the physical results of
// the measurements it issued. Connections and pairs: transport_layer.cc.
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "transport/transport_layer.h"

namespace qnet::transport {

absl::StatusOr<TransportLayer::Qubit*> TransportLayer::FindQubit(const QubitRef& ref) {
  auto it = qubits_.find({ref.connection, ref.id});
  if (it == qubits_.end() || !it->second.announced) {  // TRN-Q9
    return BadCall(absl::NotFoundError(
        absl::StrCat("no qubit ", ref.id, " of connection ", ref.connection, " held here")));
  }
  return &it->second;
}

// The owner no longer holds the qubit: a kept pair frees its window place.
void TransportLayer::Consume(const QubitRef& ref) {
  qubits_.erase({ref.connection, ref.id});
  if (ref.connection == 0) return;
  if (Connection* c = Find(ref.connection)) {
    if (c->held > 0) --c->held;
    PromoteWaiting(*c);  // TRN-W2
  }
}

absl::Status TransportLayer::Release(const QubitRef& qubit) {
  absl::StatusOr<Qubit*> q = FindQubit(qubit);
  if (!q.ok()) return q.status();
  (void)memory_->Release((*q)->slot);  // TRN-Q1: physical Free
  Consume(qubit);
  return absl::OkStatus();
}

absl::StatusOr<QubitRef> TransportLayer::AllocateQubit(SocketId socket) {
  if (!sockets_.contains(socket)) {
    return BadCall(absl::NotFoundError("AllocateQubit: unknown socket"));
  }
  std::optional<uint32_t> slot = memory_->Allocate();
  if (!slot) return BadCall(absl::ResourceExhaustedError("AllocateQubit: no free memory"));
  physical::v1::Init init;  // TRN-Q2
  init.set_slot(*slot);
  physical_->Init(init);
  const QubitRef ref{0, next_local_qubit_++};
  qubits_[{0, ref.id}] = Qubit{socket, *slot, true};
  return ref;
}

absl::Status TransportLayer::Gate(const QubitRef& qubit, physical::v1::GateKind kind,
                                  double angle) {
  // TRN-Q3: single-qubit gates only (two-qubit gates need two refs).
  if (kind < physical::v1::GATE_KIND_X || kind > physical::v1::GATE_KIND_RZ ||
      !std::isfinite(angle)) {
    return BadCall(absl::InvalidArgumentError("Gate: not a single-qubit gate, or bad angle"));
  }
  absl::StatusOr<Qubit*> q = FindQubit(qubit);
  if (!q.ok()) return q.status();
  physical::v1::Gate gate;
  gate.set_kind(kind);
  gate.set_slot((*q)->slot);
  gate.set_angle(angle);
  physical_->ApplyGate(gate);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TransportLayer::Measure(const QubitRef& qubit, physical::v1::Basis basis,
                                                 double angle) {
  if (!physical::v1::Basis_IsValid(basis) ||
      (basis == physical::v1::BASIS_UNSPECIFIED && !std::isfinite(angle))) {
    return BadCall(absl::InvalidArgumentError("Measure: bad basis or angle"));
  }
  absl::StatusOr<Qubit*> q = FindQubit(qubit);
  if (!q.ok()) return q.status();
  const uint32_t slot = (*q)->slot;
  const SocketId socket = (*q)->socket;
  if (basis == physical::v1::BASIS_UNSPECIFIED) {
    // TRN-Q5: RY(t) = exp(-i t Y/2) (PHYS-M5) turns |0> towards +X by t, so
    // RY(-angle) maps the +1 eigenstate of cos(angle) Z + sin(angle) X onto |0>.
    physical::v1::Gate gate;
    gate.set_kind(physical::v1::GATE_KIND_RY);
    gate.set_slot(slot);
    gate.set_angle(-angle);
    physical_->ApplyGate(gate);
    basis = physical::v1::BASIS_Z;
  }
  const uint64_t request = NextRequestId();
  pending_.emplace(request, PendingOp{PendingOp::Kind::kOwnerMeasure, socket, {slot}});
  Consume(qubit);
  physical::v1::Measure m;  // TRN-Q4
  m.set_request_id(request);
  m.set_slot(slot);
  m.set_basis(basis);
  m.set_keep(false);
  physical_->Measure(m);
  return request;
}

absl::StatusOr<uint64_t> TransportLayer::BellMeasure(const QubitRef& a, const QubitRef& b) {
  if (a.connection == b.connection && a.id == b.id) {
    return BadCall(absl::InvalidArgumentError("BellMeasure: the same qubit twice"));
  }
  absl::StatusOr<Qubit*> qa = FindQubit(a);
  if (!qa.ok()) return qa.status();
  absl::StatusOr<Qubit*> qb = FindQubit(b);
  if (!qb.ok()) return qb.status();
  if ((*qa)->socket != (*qb)->socket) {  // TRN-Q9: both must belong to one owner
    return BadCall(absl::PermissionDeniedError("BellMeasure: qubits of two sockets"));
  }
  const uint32_t slot_a = (*qa)->slot, slot_b = (*qb)->slot;
  const SocketId socket = (*qa)->socket;
  const uint64_t request = NextRequestId();
  pending_.emplace(request,
                   PendingOp{PendingOp::Kind::kOwnerBell, socket, {slot_a, slot_b}});
  Consume(a);
  Consume(b);
  physical::v1::BellMeasure m;  // TRN-Q6
  m.set_request_id(request);
  m.set_slot_a(slot_a);
  m.set_slot_b(slot_b);
  physical_->BellMeasure(m);
  return request;
}

void TransportLayer::OnMeasureResult(const physical::v1::MeasureResult& result) {
  auto it = pending_.find(result.request_id());
  if (it == pending_.end() || it->second.kind == PendingOp::Kind::kOwnerBell) {
    Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("MeasureResult for unknown request ", result.request_id()));
    return;
  }
  PendingOp op = std::move(it->second);
  pending_.erase(it);
  for (uint32_t slot : op.slots) (void)memory_->Return(slot);  // emptied by the measurement
  if (SocketListener* l = ListenerOf(op.socket)) l->OnMeasured(result.request_id(), result.result());
}

void TransportLayer::OnBellMeasureResult(const physical::v1::BellMeasureResult& result) {
  auto it = pending_.find(result.request_id());
  if (it == pending_.end() || it->second.kind != PendingOp::Kind::kOwnerBell) {
    Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("BellMeasureResult for unknown request ", result.request_id()));
    return;
  }
  PendingOp op = std::move(it->second);
  pending_.erase(it);
  for (uint32_t slot : op.slots) (void)memory_->Return(slot);
  if (SocketListener* l = ListenerOf(op.socket)) {
    l->OnBellMeasured(result.request_id(), result.bell_state());
  }
}

}  // namespace qnet::transport
