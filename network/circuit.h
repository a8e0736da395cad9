// Circuit arithmetic shared by the network layer and its tests
// (specs/network.md section 2): Bell-state (Pauli index) tracking, the
// fidelity budget split over a path's links and the cutoff derived from it,
// and the CircuitError <-> absl::Status convention of NetworkService.
#ifndef QNET_NETWORK_CIRCUIT_H_
#define QNET_NETWORK_CIRCUIT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "qnet/network/v1/network.pb.h"
#include "qnet/physical/v1/physical.pb.h"

namespace qnet::network {

// Pauli index of a Bell state (x bit | z bit << 1, REFERENCE.md "Swapping"):
// PHI_PLUS 0 (I), PSI_PLUS 1 (X), PHI_MINUS 2 (Z), PSI_MINUS 3 (Y); -1 when
// the value is not a Bell state.
int BellIndex(physical::v1::BellState state);
physical::v1::BellState BellFromIndex(int index);
// Combines Bell states by the xor of their Pauli indices (NET-C-31).
physical::v1::BellState BellXor(physical::v1::BellState a, physical::v1::BellState b);
// The single-qubit Pauli gate that turns a pair in `state` into PHI_PLUS when
// applied to either qubit (NET-C-35); GATE_KIND_UNSPECIFIED for PHI_PLUS.
physical::v1::GateKind CorrectionGate(physical::v1::BellState state);

// Werner parameter w = (4F - 1) / 3 and its inverse.
inline double WernerOf(double fidelity) { return (4.0 * fidelity - 1.0) / 3.0; }
inline double FidelityOfWerner(double w) { return (1.0 + 3.0 * w) / 4.0; }

struct CircuitPlan {
  std::vector<double> link_min_fidelity;  // per link, path order
  absl::Duration cutoff = absl::InfiniteDuration();
  double expected_fidelity = 1.0;  // (1 + 3 prod w_i) / 4, no memory noise
};

// Splits an end-to-end fidelity target over links with advertised best
// fidelities `link_fidelity` (NET-C-3 .. NET-C-6). `memory_time_s` is the
// shortest advertised memory time on the path (0: infinite). Errors carry
// CIRCUIT_ERROR_NOTIME (target above what the links reach) or
// CIRCUIT_ERROR_MALFORMED (no links, target above 1, negative cutoff).
absl::StatusOr<CircuitPlan> PlanCircuit(const std::vector<double>& link_fidelity,
                                        double min_fidelity, std::optional<absl::Duration> cutoff,
                                        double memory_time_s);

// Error statuses of NetworkService name the CircuitError first:
// "CIRCUIT_ERROR_NORES: detail".
absl::Status CircuitStatus(v1::CircuitError code, const std::string& detail);
// The CircuitError a status names; CIRCUIT_ERROR_UNSPECIFIED if none.
v1::CircuitError CircuitErrorOf(const absl::Status& status);

}  // namespace qnet::network

#endif  // QNET_NETWORK_CIRCUIT_H_
