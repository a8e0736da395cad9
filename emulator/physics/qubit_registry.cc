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
  const GroupId ga = where_.at(a), gb = where_.at(b);
  // The fast path gives what the general one would, so it also keeps its
  // limit (PHYS-Q5: the general path joins the two pairs into 4 qubits).
  if (ga != gb && max_group_qubits_ >= 4 && groups_.at(ga).members.size() == 2 &&
      groups_.at(gb).members.size() == 2) {
    return SwapTwoPairs(a, b, now, rng);
  }
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

// The entanglement swap of two pairs, each its own group: the same outcome
// distribution, random draws and post-measurement state as the general path
// (tensor into a 4-qubit group, CNOT(a -> b), H(a), measure a then b), with
// 4 x 4 matrices instead of 16 x 16. With |beta_zx> = (|0 x> + (-1)^z |1 x'>)
// / sqrt 2 on (a, b) (x' = 1 - x), the partners' state after outcome (z, x)
// is <beta_zx| rho_(pa a) (x) rho_(b pb) |beta_zx> over a and b.
absl::StatusOr<int> QubitRegistry::SwapTwoPairs(QubitId a, QubitId b, Time now, Rng& rng) {
  const GroupId ida = where_.at(a), idb = where_.at(b);
  Group& ga = groups_.at(ida);
  Group& gb = groups_.at(idb);
  const int ia = IndexIn(ga, a), ib = IndexIn(gb, b);
  BringUpToDate(ga, ia, now);
  BringUpToDate(gb, ib, now);
  const Matrix& m1 = ga.state.matrix();
  const Matrix& m2 = gb.state.matrix();
  // rho1(p, a1; p2, a2) with p the partner of a; rho2(b1, q; b2, q2).
  auto r1 = [&](int p, int x, int p2, int x2) {
    return ia == 1 ? m1((p << 1) | x, (p2 << 1) | x2) : m1((x << 1) | p, (x2 << 1) | p2);
  };
  auto r2 = [&](int x, int q, int x2, int q2) {
    return ib == 0 ? m2((x << 1) | q, (x2 << 1) | q2) : m2((q << 1) | x, (q2 << 1) | x2);
  };
  // Coefficient of |a1 b1> in |beta_zx>, times sqrt 2.
  auto beta = [](int z, int x, int a1, int b1) -> double {
    if (b1 != (a1 ^ x)) return 0.0;
    return (a1 == 1 && z == 1) ? -1.0 : 1.0;
  };
  Matrix4 sigma[4];
  double prob[4];
  for (int m = 0; m < 4; ++m) {
    const int x = m & 1, z = m >> 1;
    Matrix4& out = sigma[m];
    out.setZero();
    for (int a1 = 0; a1 < 2; ++a1) {
      const int b1 = a1 ^ x;
      const double c1 = beta(z, x, a1, b1);
      for (int a2 = 0; a2 < 2; ++a2) {
        const int b2 = a2 ^ x;
        const double c = c1 * beta(z, x, a2, b2) * 0.5;
        for (int p = 0; p < 2; ++p)
          for (int q = 0; q < 2; ++q)
            for (int p2 = 0; p2 < 2; ++p2)
              for (int q2 = 0; q2 < 2; ++q2)
                out((p << 1) | q, (p2 << 1) | q2) += c * r1(p, a1, p2, a2) * r2(b1, q, b2, q2);
      }
    }
    prob[m] = out.trace().real();
  }
  // The general path's draws: z from P(z = 1), then x from P(x = 1 | z).
  const double total = prob[0] + prob[1] + prob[2] + prob[3];
  const double pz1 = total > 0 ? (prob[2] + prob[3]) / total : 0.0;
  int z = rng.Uniform() < pz1 ? 1 : 0;
  if ((z == 1 && pz1 <= 0) || (z == 0 && pz1 >= 1)) z ^= 1;
  const double pz = prob[z << 1] + prob[(z << 1) | 1];
  const double px1 = pz > 0 ? prob[(z << 1) | 1] / pz : 0.0;
  int x = rng.Uniform() < px1 ? 1 : 0;
  if ((x == 1 && px1 <= 0) || (x == 0 && px1 >= 1)) x ^= 1;
  const int m = x | (z << 1);
  Matrix4 rho = sigma[m];
  if (prob[m] > 0) rho /= prob[m];
  const QubitId pa = ga.members[1 - ia], pb = gb.members[1 - ib];
  const Time pa_updated = ga.updated[1 - ia], pb_updated = gb.updated[1 - ib];
  for (QubitId q : {a, b, pa, pb}) where_.erase(q);
  groups_.erase(ida);
  groups_.erase(idb);
  NewGroup(Group{DensityMatrix(rho), {pa, pb}, {pa_updated, pb_updated}});
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
