#include "stack/heralding_model.h"

#include <algorithm>
#include <cmath>

namespace qnet {

double ArmEfficiency(const LinkSpec& link, bool side_a) {
  const double transmission = std::pow(10.0, -link.loss_db_km * link.arm_km(side_a) / 10.0);
  return link.efficiency * transmission;
}

SingleClickTerms SingleClick(const LinkSpec& link, double alpha_a, double alpha_b) {
  const double ea = ArmEfficiency(link, true);
  const double eb = ArmEfficiency(link, false);
  const double no_dark = (1 - link.dark_count_prob) * (1 - link.dark_count_prob);
  const double dark = 1 - no_dark;
  SingleClickTerms t;
  t.p_uu = alpha_a * alpha_b *
           (no_dark * (ea * (1 - eb) + eb * (1 - ea) + ea * eb) + dark * (1 - ea) * (1 - eb));
  t.p_ud = alpha_a * (1 - alpha_b) * (no_dark * ea + dark * (1 - ea));
  t.p_du = alpha_b * (1 - alpha_a) * (no_dark * eb + dark * (1 - eb));
  t.p_dd = (1 - alpha_a) * (1 - alpha_b) * dark;
  return t;
}

DoubleClickTerms DoubleClick(const LinkSpec& link) {
  const double ea = ArmEfficiency(link, true);
  const double eb = ArmEfficiency(link, false);
  const double dark_one = 2 * link.dark_count_prob;  // a dark click in one of two detectors
  DoubleClickTerms t;
  // Branches |ud>, |du> (probability 1/2 together): one photon per round.
  t.p_true = 0.5 * ea * eb;
  t.p_false_mixed = 0.5 * (ea * (1 - eb) + eb * (1 - ea)) * dark_one;
  // Branches |uu>, |dd> (1/2 together): both photons in one round, none in the other.
  t.p_false_same = 0.5 * (1 - (1 - ea) * (1 - eb)) * dark_one;
  return t;
}

double SuccessProbability(const LinkSpec& link, double alpha) {
  switch (link.scheme) {
    case HeraldingScheme::kSingleClick:
      return SingleClick(link, alpha, alpha).total();
    case HeraldingScheme::kDoubleClick:
      return DoubleClick(link).total();
    case HeraldingScheme::kWerner:
      return link.p_success;
  }
  return 0;
}

double HeraldedFidelity(const LinkSpec& link, double alpha) {
  switch (link.scheme) {
    case HeraldingScheme::kSingleClick: {
      const SingleClickTerms t = SingleClick(link, alpha, alpha);
      if (t.total() <= 0) return 0;
      return (t.p_ud + t.p_du + 2 * std::sqrt(link.visibility * t.p_ud * t.p_du)) / (2 * t.total());
    }
    case HeraldingScheme::kDoubleClick: {
      const DoubleClickTerms t = DoubleClick(link);
      if (t.total() <= 0) return 0;
      return (t.p_true * (1 + link.visibility) / 2 + t.p_false_mixed * 0.5) / t.total();
    }
    case HeraldingScheme::kWerner:
      return link.fidelity;
  }
  return 0;
}

absl::Duration AttemptCycle(const LinkSpec& link) {
  const double far_arm_s = std::max(link.arm_km(true), link.arm_km(false)) / kFibreKmPerSecond;
  return absl::Nanoseconds(std::llround(std::max(link.attempt_s, 2 * far_arm_s) * 1e9));
}

absl::Duration HeraldDelay(const LinkSpec& link, bool side_a) {
  const double far_arm_s = std::max(link.arm_km(true), link.arm_km(false)) / kFibreKmPerSecond;
  const double own_arm_s = link.arm_km(side_a) / kFibreKmPerSecond;
  return absl::Nanoseconds(std::llround(std::max(link.attempt_s, far_arm_s + own_arm_s) * 1e9));
}

std::optional<double> ChooseAlpha(const LinkSpec& link, double min_fidelity) {
  if (link.scheme != HeraldingScheme::kSingleClick) {
    if (HeraldedFidelity(link, 0) + 1e-12 < min_fidelity) return std::nullopt;
    return 0.0;
  }
  if (link.alpha) {
    if (HeraldedFidelity(link, *link.alpha) + 1e-12 < min_fidelity) return std::nullopt;
    return *link.alpha;
  }
  constexpr double kMax = 0.5;
  if (HeraldedFidelity(link, kMax) >= min_fidelity) return kMax;
  // Fidelity falls as alpha grows (for alpha above the dark-count regime): find
  // the best attainable fidelity first, then bisect on the falling side.
  double best_alpha = kMax, best_f = -1;
  for (int i = 1; i <= 200; ++i) {
    const double a = kMax * i / 200.0;
    const double f = HeraldedFidelity(link, a);
    if (f > best_f) best_f = f, best_alpha = a;
  }
  if (best_f + 1e-12 < min_fidelity) {
    // Refine near the optimum before giving up (the grid may miss a narrow peak).
    double lo = std::max(1e-9, best_alpha - kMax / 200), hi = std::min(kMax, best_alpha + kMax / 200);
    for (int i = 0; i < 100; ++i) {
      const double m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
      if (HeraldedFidelity(link, m1) < HeraldedFidelity(link, m2)) lo = m1; else hi = m2;
    }
    best_alpha = (lo + hi) / 2;
    best_f = HeraldedFidelity(link, best_alpha);
    if (best_f + 1e-12 < min_fidelity) return std::nullopt;
  }
  double lo = best_alpha, hi = kMax;  // f(lo) >= min, f(hi) < min
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    if (HeraldedFidelity(link, mid) >= min_fidelity) lo = mid; else hi = mid;
  }
  return lo;
}

}  // namespace qnet
