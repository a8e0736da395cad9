#include "emulator/physics/memory_noise.h"

#include <algorithm>
#include <cmath>

namespace qnet::physics {
namespace {

// 1/T for a time constant; 0 for infinite, non-positive or NaN constants.
double Rate(double time_constant_s) {
  if (!(time_constant_s > 0) || std::isinf(time_constant_s)) return 0.0;
  return 1.0 / time_constant_s;
}

}  // namespace

MemoryNoise::MemoryNoise(double t1_s, double t2_s, double depolar_s)
    : t1_s_(t1_s), t2_s_(t2_s), depolar_s_(depolar_s) {
  if (Rate(t1_s_) > 0 && Rate(t2_s_) < Rate(t1_s_) / 2) t2_s_ = 2 * t1_s_;  // PHYS-N4
  noiseless_ = Rate(t1_s_) == 0 && Rate(t2_s_) == 0 && Rate(depolar_s_) == 0;
}

QubitChannel MemoryNoise::Channel(double seconds) const {
  if (noiseless_ || !(seconds > 0)) return QubitChannel::Identity();
  const double r1 = Rate(t1_s_), r2 = Rate(t2_s_), rd = Rate(depolar_s_);
  const double coherence = std::exp(-seconds * (r2 + rd));
  const double k = r1 + rd;
  const double e = std::exp(-seconds * k);
  const double z_inf = k > 0 ? r1 / k : 0.0;
  // Populations: rho00' = A rho00 + B rho11, rho11' = (1-A) rho00 + (1-B) rho11.
  const double a = (1 + z_inf + (1 - z_inf) * e) / 2;
  const double b = (1 + z_inf - (1 + z_inf) * e) / 2;
  QubitChannel ch = QubitChannel::Zero();
  ch(0, 0) = a;
  ch(0, 3) = b;
  ch(3, 0) = 1 - a;
  ch(3, 3) = 1 - b;
  ch(1, 1) = coherence;
  ch(2, 2) = coherence;
  return ch;
}

}  // namespace qnet::physics
