// Exact density matrices of small groups of qubits (specs/physical.md PHYS-Q*).
//
// Conventions (PHYS-Q1, PHYS-Q2): qubit 0 of a group is the most significant
// bit of the basis index, so a 2-qubit state of link (a, b) has index
// |a b> = 2 a + b. |0> and |1> are the Z eigenstates with eigenvalues +1 and
// -1; for a heralded link pair |1> is the bright (photon-emitting) state.
// Basis eigenstates reported as bit 0 / 1: Z: |0>, |1>; X: |+>, |->;
// Y: |+i> = (|0> + i|1>)/sqrt2, |-i> (PHYS-M2).
//
// Bell states are numbered by their Pauli index with the x bit in bit 0 and
// the z bit in bit 1: 0 = I = Phi+, 1 = X = Psi+, 2 = Z = Phi-, 3 = Y = Psi-
// (REFERENCE.md "Swapping"); physical.v1.BellState = index + 1.
#ifndef QNET_EMULATOR_PHYSICS_DENSITY_MATRIX_H_
#define QNET_EMULATOR_PHYSICS_DENSITY_MATRIX_H_

#include <complex>
#include <vector>

#include "Eigen/Dense"
#include "stack/random.h"

namespace qnet::physics {

using Complex = std::complex<double>;
using Matrix = Eigen::MatrixXcd;
using Matrix2 = Eigen::Matrix2cd;
using Matrix4 = Eigen::Matrix4cd;
using Vector4 = Eigen::Vector4cd;

enum class Basis { kZ, kX, kY };

// Pauli index of a Bell state (see above).
enum BellIndex : int { kPhiPlus = 0, kPsiPlus = 1, kPhiMinus = 2, kPsiMinus = 3 };

// |B_k> for Pauli index k in the qubit order (first, second).
Vector4 BellVector(int pauli_index);
Matrix4 BellProjector(int pauli_index);

// Single-qubit gates (PHYS-M5). Rotations are exp(-i angle P / 2).
Matrix2 PauliX();
Matrix2 PauliY();
Matrix2 PauliZ();
Matrix2 Hadamard();
Matrix2 PhaseS();
Matrix2 RotationX(double angle);
Matrix2 RotationY(double angle);
Matrix2 RotationZ(double angle);
// Two-qubit gates, first qubit = control (most significant).
Matrix4 Cnot();
Matrix4 Cz();

// The state |b> of a basis (bit 0 or 1) as a density matrix.
Matrix2 BasisState(Basis basis, int bit);

// A linear map on single-qubit operators, as a 4x4 matrix acting on
// (M00, M01, M10, M11). Used for memory noise.
using QubitChannel = Matrix4;

class DensityMatrix {
 public:
  // A 1x1 matrix [1]: zero qubits.
  DensityMatrix();
  // `rho` must be square with a power-of-two size; it is used as given.
  explicit DensityMatrix(Matrix rho);

  int num_qubits() const { return num_qubits_; }
  const Matrix& matrix() const { return rho_; }
  double Trace() const { return rho_.trace().real(); }

  // rho -> U rho U^dagger on qubit q.
  void ApplyUnitary(int q, const Matrix2& u);
  // rho -> U rho U^dagger on qubits (q1, q2), q1 the more significant in `u`.
  void ApplyUnitary(int q1, int q2, const Matrix4& u);
  // Applies a single-qubit linear map to qubit q.
  void ApplyChannel(int q, const QubitChannel& channel);

  // Probability that a Z measurement of qubit q gives 1.
  double ProbabilityOfOne(int q) const;
  // Measures qubit q in `basis`: samples the true outcome, projects and
  // removes the qubit (partial trace). Returns the outcome bit.
  int MeasureAndRemove(int q, Basis basis, Rng& rng);
  // Traces qubit q out.
  void Remove(int q);

  // The state of the listed qubits in that order, the others traced out.
  DensityMatrix Reduced(const std::vector<int>& qubits) const;
  // Fidelity <psi|rho|psi> with a pure state of the same dimension.
  double FidelityTo(const Eigen::VectorXcd& psi) const;

  // A (x) B: the qubits of `a` first.
  static DensityMatrix Tensor(const DensityMatrix& a, const DensityMatrix& b);

 private:
  int bit(int q) const { return num_qubits_ - 1 - q; }
  void LeftMultiply(int q, const Matrix2& m);
  void RightMultiply(int q, const Matrix2& m);

  Matrix rho_;
  int num_qubits_ = 0;
};

// Flips `bit` with probability `readout_error` (PHYS-M3).
int ApplyReadoutError(int bit, double readout_error, Rng& rng);

}  // namespace qnet::physics

#endif  // QNET_EMULATOR_PHYSICS_DENSITY_MATRIX_H_
