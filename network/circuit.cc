#include "network/circuit.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace qnet::network {

using physical::v1::BellState;
using physical::v1::GateKind;

int BellIndex(BellState state) {
  switch (state) {
    case physical::v1::BELL_STATE_PHI_PLUS:
      return 0;
    case physical::v1::BELL_STATE_PSI_PLUS:
      return 1;
    case physical::v1::BELL_STATE_PHI_MINUS:
      return 2;
    case physical::v1::BELL_STATE_PSI_MINUS:
      return 3;
    default:
      return -1;
  }
}

BellState BellFromIndex(int index) {
  static constexpr BellState kStates[4] = {
      physical::v1::BELL_STATE_PHI_PLUS, physical::v1::BELL_STATE_PSI_PLUS,
      physical::v1::BELL_STATE_PHI_MINUS, physical::v1::BELL_STATE_PSI_MINUS};
  if (index < 0 || index > 3) return physical::v1::BELL_STATE_UNSPECIFIED;
  return kStates[index];
}

BellState BellXor(BellState a, BellState b) {
  const int ia = BellIndex(a), ib = BellIndex(b);
  if (ia < 0 || ib < 0) return physical::v1::BELL_STATE_UNSPECIFIED;
  return BellFromIndex(ia ^ ib);
}

GateKind CorrectionGate(BellState state) {
  switch (state) {
    case physical::v1::BELL_STATE_PSI_PLUS:
      return physical::v1::GATE_KIND_X;
    case physical::v1::BELL_STATE_PHI_MINUS:
      return physical::v1::GATE_KIND_Z;
    case physical::v1::BELL_STATE_PSI_MINUS:
      return physical::v1::GATE_KIND_Y;
    default:
      return physical::v1::GATE_KIND_UNSPECIFIED;
  }
}

absl::StatusOr<CircuitPlan> PlanCircuit(const std::vector<double>& link_fidelity,
                                        double min_fidelity, std::optional<absl::Duration> cutoff,
                                        double memory_time_s) {
  const size_t n = link_fidelity.size();
  if (n == 0) return CircuitStatus(v1::CIRCUIT_ERROR_MALFORMED, "a path without links");
  if (!(min_fidelity <= 1.0)) {
    return CircuitStatus(v1::CIRCUIT_ERROR_MALFORMED,
                         absl::StrCat("minimum fidelity ", min_fidelity, " above 1"));
  }
  if (cutoff.has_value() && *cutoff <= absl::ZeroDuration()) {
    return CircuitStatus(v1::CIRCUIT_ERROR_MALFORMED, "cutoff must be positive");
  }
  CircuitPlan plan;
  double prod = 1.0;
  std::vector<double> w(n);
  for (size_t i = 0; i < n; ++i) {
    w[i] = std::clamp(WernerOf(link_fidelity[i]), 0.0, 1.0);
    prod *= w[i];
  }
  plan.expected_fidelity = FidelityOfWerner(prod);
  plan.link_min_fidelity.assign(n, 0.0);
  const double w_target = WernerOf(min_fidelity);
  if (w_target <= 0.0) {  // no requirement (NET-C-4)
    plan.cutoff = cutoff.value_or(absl::InfiniteDuration());
    return plan;
  }
  if (prod < w_target * (1.0 - 1e-12)) {  // NET-C-3
    return CircuitStatus(v1::CIRCUIT_ERROR_NOTIME,
                         absl::StrCat("fidelity ", min_fidelity, " unreachable: the path gives ",
                                      plan.expected_fidelity));
  }
  const double slack = std::min(1.0, w_target / prod);
  double link_slack = slack;
  if (cutoff.has_value()) {
    plan.cutoff = *cutoff;
  } else if (memory_time_s > 0.0) {  // NET-C-6: half the log slack for memories
    link_slack = std::sqrt(slack);
    const double seconds = -memory_time_s * std::log(link_slack) / (2.0 * static_cast<double>(n));
    plan.cutoff = absl::Nanoseconds(std::llround(seconds * 1e9));
  } else {
    plan.cutoff = absl::InfiniteDuration();
  }
  // NET-C-5: w_i_min = w_i * slack^(1/n); a hair below, so that a link that
  // offers exactly its advertised fidelity is not refused by rounding.
  const double per_link = std::pow(link_slack, 1.0 / static_cast<double>(n));
  for (size_t i = 0; i < n; ++i) {
    plan.link_min_fidelity[i] = std::max(0.0, FidelityOfWerner(w[i] * per_link) - 1e-9);
  }
  return plan;
}

absl::Status CircuitStatus(v1::CircuitError code, const std::string& detail) {
  const std::string message = absl::StrCat(v1::CircuitError_Name(code), ": ", detail);
  switch (code) {
    case v1::CIRCUIT_ERROR_NO_ROUTE:
      return absl::UnavailableError(message);
    case v1::CIRCUIT_ERROR_NORES:
      return absl::ResourceExhaustedError(message);
    case v1::CIRCUIT_ERROR_NOTIME:
      return absl::FailedPreconditionError(message);
    case v1::CIRCUIT_ERROR_DUPLICATE:
      return absl::AlreadyExistsError(message);
    case v1::CIRCUIT_ERROR_MALFORMED:
      return absl::InvalidArgumentError(message);
    case v1::CIRCUIT_ERROR_REFUSED:
      return absl::PermissionDeniedError(message);
    default:
      return absl::AbortedError(message);
  }
}

v1::CircuitError CircuitErrorOf(const absl::Status& status) {
  absl::string_view message = status.message();
  const size_t colon = message.find(':');
  v1::CircuitError code = v1::CIRCUIT_ERROR_UNSPECIFIED;
  if (colon == absl::string_view::npos ||
      !v1::CircuitError_Parse(std::string(message.substr(0, colon)), &code)) {
    return v1::CIRCUIT_ERROR_UNSPECIFIED;
  }
  return code;
}

}  // namespace qnet::network
