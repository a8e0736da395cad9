#include "emulator/physics/heralded_state.h"

#include <algorithm>
#include <cmath>

namespace qnet::physics {

Matrix4 SingleClickState(const SingleClickTerms& t, double visibility, bool psi_minus) {
  Matrix4 rho = Matrix4::Zero();
  const double total = t.total();
  if (!(total > 0)) {
    rho(0, 0) = 1;  // never heralded; a defined state all the same
    return rho;
  }
  const double v = std::clamp(visibility, 0.0, 1.0);
  const double coherence = (psi_minus ? -1.0 : 1.0) * std::sqrt(v * t.p_ud * t.p_du);
  rho(0, 0) = t.p_dd;  // |00>
  rho(1, 1) = t.p_du;  // |01>: b bright
  rho(2, 2) = t.p_ud;  // |10>: a bright
  rho(3, 3) = t.p_uu;  // |11>
  rho(2, 1) = coherence;
  rho(1, 2) = coherence;
  return rho / total;
}

Matrix4 DoubleClickState(DoubleClickClass herald_class, double visibility, bool psi_minus) {
  Matrix4 rho = Matrix4::Zero();
  switch (herald_class) {
    case DoubleClickClass::kTrue: {
      const double v = std::clamp(visibility, 0.0, 1.0);
      rho = v * BellProjector(psi_minus ? kPsiMinus : kPsiPlus);
      rho(1, 1) += (1 - v) / 2;
      rho(2, 2) += (1 - v) / 2;
      break;
    }
    case DoubleClickClass::kFalseMixed:
      rho(1, 1) = rho(2, 2) = 0.5;
      break;
    case DoubleClickClass::kFalseSame:
      rho(0, 0) = rho(3, 3) = 0.5;
      break;
  }
  return rho;
}

Matrix4 WernerState(double fidelity, int pauli_index) {
  const Matrix4 b = BellProjector(pauli_index);
  return fidelity * b + (1 - fidelity) / 3 * (Matrix4::Identity() - b);
}

HeraldedState SampleHeraldedState(const LinkSpec& link, double alpha_a, double alpha_b, Rng& rng) {
  HeraldedState out;
  const bool psi_minus = rng.Bernoulli(0.5);
  out.bell_index = psi_minus ? kPsiMinus : kPsiPlus;
  switch (link.scheme) {
    case HeraldingScheme::kSingleClick:
      out.rho = SingleClickState(SingleClick(link, alpha_a, alpha_b), link.visibility, psi_minus);
      break;
    case HeraldingScheme::kDoubleClick: {
      const DoubleClickTerms t = DoubleClick(link);
      const double u = rng.Uniform() * t.total();
      DoubleClickClass c = DoubleClickClass::kFalseSame;
      if (u < t.p_true) {
        c = DoubleClickClass::kTrue;
      } else if (u < t.p_true + t.p_false_mixed) {
        c = DoubleClickClass::kFalseMixed;
      }
      out.rho = DoubleClickState(c, link.visibility, psi_minus);
      break;
    }
    case HeraldingScheme::kWerner:
      out.rho = WernerState(link.fidelity, out.bell_index);
      break;
  }
  return out;
}

double AttemptSuccessProbability(const LinkSpec& link, double alpha_a, double alpha_b) {
  switch (link.scheme) {
    case HeraldingScheme::kSingleClick:
      return SingleClick(link, alpha_a, alpha_b).total();
    case HeraldingScheme::kDoubleClick:
      return DoubleClick(link).total();
    case HeraldingScheme::kWerner:
      return link.p_success;
  }
  return 0;
}

}  // namespace qnet::physics
