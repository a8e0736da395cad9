#include "emulator/physics/qubit_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::physics {
namespace {

std::string Name(QubitId q) { return absl::StrCat("qubit (node ", q.node, ", slot ", q.slot, ")"); }

Matrix2 GateMatrix(Gate1 gate, double angle) {
  switch (gate) {
    case Gate1::kX:
      return PauliX();
    case Gate1::kY:
      return PauliY();
    case Gate1::kZ:
      return PauliZ();
    case Gate1::kH:
      return Hadamard();
    case Gate1::kS:
      return PhaseS();
    case Gate1::kRX:
      return RotationX(angle);
    case Gate1::kRY:
      return RotationY(angle);
    case Gate1::kRZ:
      return RotationZ(angle);
  }
  return Matrix2::Identity();
}

}  // namespace

QubitRegistry::QubitRegistry(std::vector<HardwareSpec> hardware, int max_group_qubits)
    : hardware_(std::move(hardware)), max_group_qubits_(max_group_qubits) {
  noise_.reserve(hardware_.size());
  for (const HardwareSpec& h : hardware_) noise_.emplace_back(h);
}

QubitRegistry::~QubitRegistry() = default;

const HardwareSpec& QubitRegistry::hardware(QubitId q) const { return hardware_[q.node]; }

absl::Status QubitRegistry::CheckNew(QubitId q) const {
  if (q.node >= hardware_.size())
    return absl::InvalidArgumentError(absl::StrCat("no node ", q.node));
  if (Holds(q)) return absl::FailedPreconditionError(absl::StrCat(Name(q), " is already live"));
  return absl::OkStatus();
}

absl::Status QubitRegistry::CheckLive(QubitId q) const {
  if (!Holds(q)) return absl::NotFoundError(absl::StrCat(Name(q), " holds no qubit"));
  return absl::OkStatus();
}

int QubitRegistry::IndexIn(const Group& g, QubitId q) const {
  for (size_t i = 0; i < g.members.size(); ++i)
    if (g.members[i] == q) return static_cast<int>(i);
  return -1;
}

void QubitRegistry::BringUpToDate(Group& g, int index, Time now) const {
  const MemoryNoise& noise = noise_[g.members[index].node];
  if (now <= g.updated[index]) return;
  if (!noise.noiseless()) {
    g.state.ApplyChannel(index, noise.Channel(absl::ToDoubleSeconds(now - g.updated[index])));
  }
  g.updated[index] = now;
}

QubitRegistry::GroupId QubitRegistry::NewGroup(Group g) {
  const GroupId id = next_group_++;
  for (QubitId q : g.members) where_[q] = id;
  groups_.emplace(id, std::move(g));
  return id;
}

absl::Status QubitRegistry::AddPair(QubitId a, QubitId b, const Matrix4& rho, Time at) {
  if (a == b) return absl::InvalidArgumentError("a pair needs two distinct qubits");
  if (absl::Status s = CheckNew(a); !s.ok()) return s;
  if (absl::Status s = CheckNew(b); !s.ok()) return s;
  NewGroup(Group{DensityMatrix(rho), {a, b}, {at, at}});
  return absl::OkStatus();
}

absl::Status QubitRegistry::AddQubit(QubitId q, const Matrix2& rho, Time at) {
  if (absl::Status s = CheckNew(q); !s.ok()) return s;
  NewGroup(Group{DensityMatrix(rho), {q}, {at}});
  return absl::OkStatus();
}

absl::Status QubitRegistry::Apply(Gate1 gate, QubitId q, double angle, Time now) {
  if (absl::Status s = CheckLive(q); !s.ok()) return s;
  Group& g = groups_.at(where_.at(q));
  const int i = IndexIn(g, q);
  BringUpToDate(g, i, now);
  g.state.ApplyUnitary(i, GateMatrix(gate, angle));
  return absl::OkStatus();
}

absl::StatusOr<QubitRegistry::GroupId> QubitRegistry::Join(QubitId a, QubitId b) {
  const GroupId ia = where_.at(a), ib = where_.at(b);
  if (ia == ib) return ia;
  Group& ga = groups_.at(ia);
  Group& gb = groups_.at(ib);
  const size_t size = ga.members.size() + gb.members.size();
  if (size > static_cast<size_t>(max_group_qubits_)) {
    return absl::ResourceExhaustedError(absl::StrCat("joining ", Name(a), " and ", Name(b),
                                                     " would make an entangled group of ", size,
                                                     " qubits; the limit is ", max_group_qubits_));
  }
  ga.state = DensityMatrix::Tensor(ga.state, gb.state);
  for (size_t i = 0; i < gb.members.size(); ++i) {
    ga.members.push_back(gb.members[i]);
    ga.updated.push_back(gb.updated[i]);
    where_[gb.members[i]] = ia;
  }
  groups_.erase(ib);
  return ia;
}

absl::Status QubitRegistry::Apply(Gate2 gate, QubitId control, QubitId target, Time now) {
  if (control == target) return absl::InvalidArgumentError("control and target are the same qubit");
  if (absl::Status s = CheckLive(control); !s.ok()) return s;
  if (absl::Status s = CheckLive(target); !s.ok()) return s;
  absl::StatusOr<GroupId> id = Join(control, target);
  if (!id.ok()) return id.status();
  Group& g = groups_.at(*id);
  const int c = IndexIn(g, control), t = IndexIn(g, target);
  BringUpToDate(g, c, now);
  BringUpToDate(g, t, now);
  g.state.ApplyUnitary(c, t, gate == Gate2::kCnot ? Cnot() : Cz());
  return absl::OkStatus();
}

void QubitRegistry::Detach(GroupId id, int index) {
  Group& g = groups_.at(id);
  where_.erase(g.members[index]);
  g.members.erase(g.members.begin() + index);
  g.updated.erase(g.updated.begin() + index);
  if (g.members.empty()) groups_.erase(id);
}

absl::StatusOr<int> QubitRegistry::Measure(QubitId q, Basis basis, bool keep, Time now, Rng& rng) {
  if (absl::Status s = CheckLive(q); !s.ok()) return s;
  const GroupId id = where_.at(q);
  Group& g = groups_.at(id);
  const int i = IndexIn(g, q);
  BringUpToDate(g, i, now);
  const int outcome = g.state.MeasureAndRemove(i, basis, rng);
  Detach(id, i);
  if (keep) NewGroup(Group{DensityMatrix(BasisState(basis, outcome)), {q}, {now}});
  return ApplyReadoutError(outcome, hardware(q).readout_error, rng);
}

absl::StatusOr<int> QubitRegistry::BellMeasure(QubitId a, QubitId b, Time now, Rng& rng) {
  if (a == b) return absl::InvalidArgumentError("a Bell-state measurement needs two qubits");
  if (absl::Status s = CheckLive(a); !s.ok()) return s;
  if (absl::Status s = CheckLive(b); !s.ok()) return s;
  absl::StatusOr<GroupId> id = Join(a, b);
  if (!id.ok()) return id.status();
  Group& g = groups_.at(*id);
  int ia = IndexIn(g, a);
  int ib = IndexIn(g, b);
  BringUpToDate(g, ia, now);
  BringUpToDate(g, ib, now);
  g.state.ApplyUnitary(ia, ib, Cnot());
  g.state.ApplyUnitary(ia, Hadamard());
  const int z = g.state.MeasureAndRemove(ia, Basis::kZ, rng);
  Detach(*id, ia);
  Group& rest = groups_.at(*id);  // still holds b
  ib = IndexIn(rest, b);
  const int x = rest.state.MeasureAndRemove(ib, Basis::kZ, rng);
  Detach(*id, ib);
  const int zr = ApplyReadoutError(z, hardware(a).readout_error, rng);
  const int xr = ApplyReadoutError(x, hardware(b).readout_error, rng);
  return xr | (zr << 1);
}

absl::Status QubitRegistry::Free(QubitId q) {
  if (absl::Status s = CheckLive(q); !s.ok()) return s;
  const GroupId id = where_.at(q);
  Group& g = groups_.at(id);
  const int i = IndexIn(g, q);
  if (g.members.size() > 1) g.state.Remove(i);
  Detach(id, i);
  return absl::OkStatus();
}

absl::StatusOr<DensityMatrix> QubitRegistry::ReducedState(absl::Span<const QubitId> qubits,
                                                          Time at) const {
  for (size_t i = 0; i < qubits.size(); ++i) {
    if (absl::Status s = CheckLive(qubits[i]); !s.ok()) return s;
    for (size_t j = 0; j < i; ++j)
      if (qubits[i] == qubits[j]) return absl::InvalidArgumentError("a qubit is listed twice");
  }
  // Per group (in order of first appearance): its listed members, reduced.
  std::vector<GroupId> seen;
  std::vector<QubitId> order;  // qubit order of `joint`
  DensityMatrix joint;
  for (QubitId q : qubits) {
    const GroupId id = where_.at(q);
    bool done = false;
    for (GroupId s : seen) done |= (s == id);
    if (done) continue;
    seen.push_back(id);
    Group copy = groups_.at(id);
    std::vector<int> listed;
    for (QubitId r : qubits) {
      const int i = IndexIn(copy, r);
      if (i < 0) continue;
      BringUpToDate(copy, i, at);
      listed.push_back(i);
      order.push_back(r);
    }
    joint = DensityMatrix::Tensor(joint, copy.state.Reduced(listed));
  }
  std::vector<int> permutation;
  for (QubitId q : qubits)
    for (size_t i = 0; i < order.size(); ++i)
      if (order[i] == q) permutation.push_back(static_cast<int>(i));
  return joint.Reduced(permutation);
}

std::vector<QubitId> QubitRegistry::GroupOf(QubitId q) const {
  auto it = where_.find(q);
  if (it == where_.end()) return {};
  return groups_.at(it->second).members;
}

absl::StatusOr<double> QubitRegistry::BellFidelity(QubitId a, QubitId b, int pauli_index,
                                                   Time at) const {
  const QubitId pair[2] = {a, b};
  absl::StatusOr<DensityMatrix> rho = ReducedState(pair, at);
  if (!rho.ok()) return rho.status();
  return rho->FidelityTo(BellVector(pauli_index));
}

}  // namespace qnet::physics
