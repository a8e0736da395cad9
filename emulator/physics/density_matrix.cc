#include "emulator/physics/density_matrix.h"

#include <cmath>

namespace qnet::physics {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;

int Log2Size(Eigen::Index n) {
  int q = 0;
  while ((Eigen::Index{1} << q) < n) ++q;
  return q;
}

}  // namespace

Vector4 BellVector(int pauli_index) {
  Vector4 v = Vector4::Zero();
  switch (pauli_index & 3) {
    case kPhiPlus:
      v(0) = kInvSqrt2, v(3) = kInvSqrt2;
      break;
    case kPsiPlus:
      v(1) = kInvSqrt2, v(2) = kInvSqrt2;
      break;
    case kPhiMinus:
      v(0) = kInvSqrt2, v(3) = -kInvSqrt2;
      break;
    case kPsiMinus:
      v(1) = kInvSqrt2, v(2) = -kInvSqrt2;
      break;
  }
  return v;
}

Matrix4 BellProjector(int pauli_index) {
  const Vector4 v = BellVector(pauli_index);
  return v * v.adjoint();
}

Matrix2 PauliX() { return (Matrix2() << 0, 1, 1, 0).finished(); }
Matrix2 PauliY() { return (Matrix2() << 0, Complex(0, -1), Complex(0, 1), 0).finished(); }
Matrix2 PauliZ() { return (Matrix2() << 1, 0, 0, -1).finished(); }
Matrix2 Hadamard() { return (Matrix2() << kInvSqrt2, kInvSqrt2, kInvSqrt2, -kInvSqrt2).finished(); }
Matrix2 PhaseS() { return (Matrix2() << 1, 0, 0, Complex(0, 1)).finished(); }

Matrix2 RotationX(double angle) {
  const double c = std::cos(angle / 2), s = std::sin(angle / 2);
  return (Matrix2() << c, Complex(0, -s), Complex(0, -s), c).finished();
}
Matrix2 RotationY(double angle) {
  const double c = std::cos(angle / 2), s = std::sin(angle / 2);
  return (Matrix2() << c, -s, s, c).finished();
}
Matrix2 RotationZ(double angle) {
  return (Matrix2() << std::polar(1.0, -angle / 2), 0, 0, std::polar(1.0, angle / 2)).finished();
}

Matrix4 Cnot() {
  Matrix4 m = Matrix4::Zero();
  m(0, 0) = m(1, 1) = m(2, 3) = m(3, 2) = 1;
  return m;
}
Matrix4 Cz() {
  Matrix4 m = Matrix4::Identity();
  m(3, 3) = -1;
  return m;
}

Matrix2 BasisState(Basis basis, int bit) {
  Eigen::Vector2cd v;
  const double sign = bit ? -1.0 : 1.0;
  switch (basis) {
    case Basis::kZ:
      v << (bit ? 0 : 1), (bit ? 1 : 0);
      break;
    case Basis::kX:
      v << kInvSqrt2, sign * kInvSqrt2;
      break;
    case Basis::kY:
      v << kInvSqrt2, Complex(0, sign * kInvSqrt2);
      break;
  }
  return v * v.adjoint();
}

DensityMatrix::DensityMatrix() : rho_(Matrix::Ones(1, 1)), num_qubits_(0) {}

DensityMatrix::DensityMatrix(Matrix rho)
    : rho_(std::move(rho)), num_qubits_(Log2Size(rho_.rows())) {}

void DensityMatrix::LeftMultiply(int q, const Matrix2& m) {
  const Eigen::Index mask = Eigen::Index{1} << bit(q);
  const Eigen::Index dim = rho_.rows();
  for (Eigen::Index i = 0; i < dim; ++i) {
    if (i & mask) continue;
    const Eigen::Index i1 = i | mask;
    for (Eigen::Index c = 0; c < dim; ++c) {
      const Complex a = rho_(i, c), b = rho_(i1, c);
      rho_(i, c) = m(0, 0) * a + m(0, 1) * b;
      rho_(i1, c) = m(1, 0) * a + m(1, 1) * b;
    }
  }
}

void DensityMatrix::RightMultiply(int q, const Matrix2& m) {
  const Eigen::Index mask = Eigen::Index{1} << bit(q);
  const Eigen::Index dim = rho_.rows();
  for (Eigen::Index j = 0; j < dim; ++j) {
    if (j & mask) continue;
    const Eigen::Index j1 = j | mask;
    for (Eigen::Index r = 0; r < dim; ++r) {
      const Complex a = rho_(r, j), b = rho_(r, j1);
      rho_(r, j) = a * m(0, 0) + b * m(1, 0);
      rho_(r, j1) = a * m(0, 1) + b * m(1, 1);
    }
  }
}

void DensityMatrix::ApplyUnitary(int q, const Matrix2& u) {
  LeftMultiply(q, u);
  RightMultiply(q, u.adjoint());
}

void DensityMatrix::ApplyUnitary(int q1, int q2, const Matrix4& u) {
  const Eigen::Index m1 = Eigen::Index{1} << bit(q1), m2 = Eigen::Index{1} << bit(q2);
  const Eigen::Index dim = rho_.rows();
  const Matrix4 ud = u.adjoint();
  for (Eigen::Index i = 0; i < dim; ++i) {
    if (i & (m1 | m2)) continue;
    const Eigen::Index idx[4] = {i, i | m2, i | m1, i | m1 | m2};
    for (Eigen::Index c = 0; c < dim; ++c) {
      Vector4 v;
      for (int k = 0; k < 4; ++k) v(k) = rho_(idx[k], c);
      const Vector4 w = u * v;
      for (int k = 0; k < 4; ++k) rho_(idx[k], c) = w(k);
    }
  }
  for (Eigen::Index j = 0; j < dim; ++j) {
    if (j & (m1 | m2)) continue;
    const Eigen::Index idx[4] = {j, j | m2, j | m1, j | m1 | m2};
    for (Eigen::Index r = 0; r < dim; ++r) {
      Eigen::RowVector4cd v;
      for (int k = 0; k < 4; ++k) v(k) = rho_(r, idx[k]);
      const Eigen::RowVector4cd w = v * ud;
      for (int k = 0; k < 4; ++k) rho_(r, idx[k]) = w(k);
    }
  }
}

void DensityMatrix::ApplyChannel(int q, const QubitChannel& channel) {
  const Eigen::Index mask = Eigen::Index{1} << bit(q);
  const Eigen::Index dim = rho_.rows();
  for (Eigen::Index i = 0; i < dim; ++i) {
    if (i & mask) continue;
    for (Eigen::Index j = 0; j < dim; ++j) {
      if (j & mask) continue;
      Vector4 v(rho_(i, j), rho_(i, j | mask), rho_(i | mask, j), rho_(i | mask, j | mask));
      const Vector4 w = channel * v;
      rho_(i, j) = w(0);
      rho_(i, j | mask) = w(1);
      rho_(i | mask, j) = w(2);
      rho_(i | mask, j | mask) = w(3);
    }
  }
}

double DensityMatrix::ProbabilityOfOne(int q) const {
  const Eigen::Index mask = Eigen::Index{1} << bit(q);
  double p = 0, total = 0;
  for (Eigen::Index i = 0; i < rho_.rows(); ++i) {
    const double d = rho_(i, i).real();
    total += d;
    if (i & mask) p += d;
  }
  return total > 0 ? p / total : 0.0;
}

int DensityMatrix::MeasureAndRemove(int q, Basis basis, Rng& rng) {
  switch (basis) {
    case Basis::kZ:
      break;
    case Basis::kX:
      ApplyUnitary(q, Hadamard());
      break;
    case Basis::kY:
      ApplyUnitary(q, Hadamard() * PhaseS().adjoint());
      break;
  }
  const double p1 = ProbabilityOfOne(q);
  int outcome = rng.Uniform() < p1 ? 1 : 0;
  if ((outcome == 1 && p1 <= 0) || (outcome == 0 && p1 >= 1)) outcome ^= 1;
  const Eigen::Index mask = Eigen::Index{1} << bit(q);
  const Eigen::Index keep = outcome ? mask : 0;
  for (Eigen::Index i = 0; i < rho_.rows(); ++i) {
    for (Eigen::Index j = 0; j < rho_.cols(); ++j) {
      if ((i & mask) != keep || (j & mask) != keep) rho_(i, j) = 0;
    }
  }
  const double norm = rho_.trace().real();
  if (norm > 0) rho_ /= norm;
  Remove(q);
  return outcome;
}

void DensityMatrix::Remove(int q) {
  std::vector<int> rest;
  for (int k = 0; k < num_qubits_; ++k)
    if (k != q) rest.push_back(k);
  *this = Reduced(rest);
}

DensityMatrix DensityMatrix::Reduced(const std::vector<int>& qubits) const {
  const int k = static_cast<int>(qubits.size());
  std::vector<int> traced;
  for (int q = 0; q < num_qubits_; ++q) {
    bool listed = false;
    for (int l : qubits) listed |= (l == q);
    if (!listed) traced.push_back(q);
  }
  // Old-index bit masks of the kept qubits (new qubit order) and traced qubits.
  std::vector<Eigen::Index> keep_mask(k), trace_mask(traced.size());
  for (int i = 0; i < k; ++i) keep_mask[i] = Eigen::Index{1} << bit(qubits[i]);
  for (size_t i = 0; i < traced.size(); ++i) trace_mask[i] = Eigen::Index{1} << bit(traced[i]);
  auto spread = [](Eigen::Index value, const std::vector<Eigen::Index>& masks) {
    Eigen::Index out = 0;
    const size_t n = masks.size();
    for (size_t i = 0; i < n; ++i)
      if (value & (Eigen::Index{1} << (n - 1 - i))) out |= masks[i];
    return out;
  };
  const Eigen::Index new_dim = Eigen::Index{1} << k;
  const Eigen::Index traced_dim = Eigen::Index{1} << traced.size();
  std::vector<Eigen::Index> row_base(new_dim), trace_base(traced_dim);
  for (Eigen::Index r = 0; r < new_dim; ++r) row_base[r] = spread(r, keep_mask);
  for (Eigen::Index t = 0; t < traced_dim; ++t) trace_base[t] = spread(t, trace_mask);
  Matrix out = Matrix::Zero(new_dim, new_dim);
  for (Eigen::Index r = 0; r < new_dim; ++r) {
    for (Eigen::Index c = 0; c < new_dim; ++c) {
      Complex sum = 0;
      for (Eigen::Index t = 0; t < traced_dim; ++t)
        sum += rho_(row_base[r] | trace_base[t], row_base[c] | trace_base[t]);
      out(r, c) = sum;
    }
  }
  return DensityMatrix(std::move(out));
}

double DensityMatrix::FidelityTo(const Eigen::VectorXcd& psi) const {
  return (psi.adjoint() * rho_ * psi)(0, 0).real();
}

DensityMatrix DensityMatrix::Tensor(const DensityMatrix& a, const DensityMatrix& b) {
  const Eigen::Index da = a.rho_.rows(), db = b.rho_.rows();
  Matrix out(da * db, da * db);
  for (Eigen::Index i = 0; i < da; ++i)
    for (Eigen::Index j = 0; j < da; ++j) out.block(i * db, j * db, db, db) = a.rho_(i, j) * b.rho_;
  return DensityMatrix(std::move(out));
}

int ApplyReadoutError(int bit, double readout_error, Rng& rng) {
  if (readout_error <= 0) return bit;
  return rng.Bernoulli(readout_error) ? bit ^ 1 : bit;
}

}  // namespace qnet::physics
