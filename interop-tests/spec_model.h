// The formulas of the specs, written out for the conformance suite (it links no
// qnet code, so expected values are computed here from the spec text):
//   - specs/physical.md PHYS-B5 (attempt cycle), PHYS-G1 (arm efficiency),
//     PHYS-G2 (single-click P_succ and heralded fidelity), PHYS-G4 (Werner);
//   - specs/link.md LINK-04 (expected completion time), LINK-21 (alpha),
//     LINK-26 (weighted fair queueing), LINK-49 (pairs per batch), section 1
//     (d = the classical delay);
//   - specs/topology.md TOPO-22..25 (what the <link> attributes mean).
// A LinkParams renders the <link> attributes of the topology the harness
// writes, so that the topology and the expected values cannot drift apart.
#ifndef QNET_INTEROP_TESTS_SPEC_MODEL_H_
#define QNET_INTEROP_TESTS_SPEC_MODEL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace qnet::interop::model {

// PHYS-B5: v = c / 1.45 in fibre.
inline constexpr double kFibreKmPerSecond = 206753;

struct LinkParams {
  std::string scheme = "werner";  // werner | single-click
  double length_km = 1;
  double attempt_us = 100;
  double midpoint = 0.5;
  std::optional<double> classical_delay_us{};
  std::optional<double> memory_poll_us{};
  // werner
  double p_success = 0.5;
  double fidelity = 0.9;
  // single-click
  double loss_db_km = 0.2;
  double efficiency = 1;
  double visibility = 1;
  std::optional<double> alpha{};

  // The attributes of <link> (TOPO-9: only those of the scheme).
  std::string Attributes() const {
    std::ostringstream out;
    out.precision(17);
    out << "scheme=\"" << scheme << "\" length-km=\"" << length_km << "\" attempt-us=\""
        << attempt_us << "\" midpoint=\"" << midpoint << "\"";
    if (classical_delay_us) out << " classical-delay-us=\"" << *classical_delay_us << "\"";
    if (memory_poll_us) out << " memory-poll-us=\"" << *memory_poll_us << "\"";
    if (scheme == "werner") {
      out << " p-success=\"" << p_success << "\" fidelity=\"" << fidelity << "\"";
    } else {
      out << " loss-db-km=\"" << loss_db_km << "\" efficiency=\"" << efficiency
          << "\" visibility=\"" << visibility << "\"";
      if (alpha) out << " alpha=\"" << *alpha << "\"";
    }
    return out.str();
  }
};

inline double ArmKm(const LinkParams& l, bool side_a) {
  return side_a ? l.length_km * l.midpoint : l.length_km * (1 - l.midpoint);
}

// PHYS-B5 / TOPO-23: max(attempt time, round trip from the farther node to the
// station), rounded to the nanosecond.
inline int64_t CycleNs(const LinkParams& l) {
  const double far_s = std::max(ArmKm(l, true), ArmKm(l, false)) / kFibreKmPerSecond;
  return std::llround(std::max(l.attempt_us * 1e-6, 2 * far_s) * 1e9);
}

// d of specs/link.md section 1 (TOPO-25: classical-delay-us, else the fibre).
inline double DelaySeconds(const LinkParams& l) {
  return l.classical_delay_us ? *l.classical_delay_us * 1e-6 : l.length_km / kFibreKmPerSecond;
}
inline int64_t DelayNs(const LinkParams& l) { return std::llround(DelaySeconds(l) * 1e9); }

// PHYS-G1 / TOPO-22.
inline double Eta(const LinkParams& l, bool side_a) {
  return l.efficiency * std::pow(10.0, -l.loss_db_km * ArmKm(l, side_a) / 10.0);
}

// PHYS-G2 without dark counts (the suite's single-click links have none):
// p_uu = aA aB (eA(1-eB) + eB(1-eA) + eA eB), p_ud = aA (1-aB) eA, p_du = aB (1-aA) eB.
struct SingleClickTerms {
  double p_uu, p_ud, p_du;
  double total() const { return p_uu + p_ud + p_du; }
};
inline SingleClickTerms SingleClick(const LinkParams& l, double alpha_a, double alpha_b) {
  const double ea = Eta(l, true), eb = Eta(l, false);
  return {alpha_a * alpha_b * (ea * (1 - eb) + eb * (1 - ea) + ea * eb),
          alpha_a * (1 - alpha_b) * ea, alpha_b * (1 - alpha_a) * eb};
}

// P_succ per attempt (PHYS-B8) with both ends at the same alpha.
inline double SuccessProbability(const LinkParams& l, double alpha) {
  if (l.scheme == "werner") return l.p_success;
  return SingleClick(l, alpha, alpha).total();
}

// Heralded fidelity (PHYS-G2: F = (p_ud + p_du + 2 sqrt(V p_ud p_du)) / (2 P_succ);
// PHYS-G4: the Werner link's fidelity).
inline double HeraldedFidelity(const LinkParams& l, double alpha) {
  if (l.scheme == "werner") return l.fidelity;
  const SingleClickTerms t = SingleClick(l, alpha, alpha);
  return (t.p_ud + t.p_du + 2 * std::sqrt(l.visibility * t.p_ud * t.p_du)) / (2 * t.total());
}

// LINK-21 / TOPO-24 for a symmetric single-click link without dark counts:
// F(a) = (1 - a)(1 + sqrt V) / (2 - a eta) falls with a, so the largest alpha in
// (0, 0.5] with F(a) >= F_min solves F(a) = F_min:
//   a = (1 + sqrt V - 2 F_min) / (1 + sqrt V - F_min eta), capped at 0.5.
// nullopt if even a -> 0 (F = (1 + sqrt V) / 2) cannot reach F_min.
inline std::optional<double> ChooseAlpha(const LinkParams& l, double min_fidelity) {
  if (l.scheme == "werner") {
    if (l.fidelity + 1e-12 < min_fidelity) return std::nullopt;
    return 0.0;
  }
  if (l.alpha) {
    if (HeraldedFidelity(l, *l.alpha) + 1e-12 < min_fidelity) return std::nullopt;
    return *l.alpha;
  }
  const double eta = Eta(l, true);
  const double s = 1 + std::sqrt(l.visibility);
  const double a = (s - 2 * min_fidelity) / (s - min_fidelity * eta);
  if (!(a > 0)) return std::nullopt;
  return std::min(a, 0.5);
}

// LINK-04: E = 2 d + m + pairs x cycle / p.
inline double ExpectedSeconds(const LinkParams& l, double margin_s, uint32_t pairs, double p) {
  return 2 * DelaySeconds(l) + margin_s + pairs * (CycleNs(l) * 1e-9) / p;
}

// LINK-26: weighted fair queueing with integer tags, as both ends run it.
// stride s_i = 2^min(priority, 3); F_i = V_i + (c_i + 1) s_i; the smallest
// (F_i, queue id) among the eligible items is served; at each charge of i (a
// heralded success, or a batch that ended IDLE): V = max(V, F_i), then c_i += 1.
// LINK-49 bounds a batch's pairs by what fair queueing would give the item.
class Wfq {
 public:
  void Add(uint64_t queue_id, uint32_t priority, uint64_t virtual_start, uint64_t eligible_ns) {
    items_[queue_id] =
        Item{uint64_t{1} << std::min<uint32_t>(priority, 3), virtual_start, 0, eligible_ns};
  }
  void Remove(uint64_t queue_id) { items_.erase(queue_id); }
  // The item served at reference time r, or 0 if none is eligible.
  uint64_t Select(uint64_t r) const {
    uint64_t best = 0, best_tag = 0;
    for (const auto& [id, it] : items_) {
      if (it.eligible_ns > r) continue;
      const uint64_t tag = Tag(it);
      if (best == 0 || tag < best_tag) best = id, best_tag = tag;
    }
    return best;
  }
  // LINK-49: the most pairs a batch of `queue_id` decided at reference time r
  // may ask for so that fair queueing would not have given one of them to
  // another item: 1 + the number of charges m >= 1 after which
  // (F_i + m s_i, queue id i) is still below (F_j, queue id j) for every other
  // item j eligible at r; UINT64_MAX when no other item is eligible.
  uint64_t FairBatch(uint64_t queue_id, uint64_t r) const {
    const Item& mine = items_.at(queue_id);
    const uint64_t f = Tag(mine);
    uint64_t bound = UINT64_MAX;
    for (const auto& [id, other] : items_) {
      if (id == queue_id || other.eligible_ns > r) continue;
      const uint64_t fo = Tag(other);
      uint64_t charges = 0;
      if (fo > f) {
        // f + m s <= fo for m <= (fo - f) / s; at equality the queue ids decide.
        charges = (fo - f) / mine.stride;
        if ((fo - f) % mine.stride == 0 && queue_id > id) --charges;
      }
      bound = std::min(bound, 1 + charges);
    }
    return bound;
  }
  // One charge of `queue_id` (LINK-26): a heralded success, or a batch that ended IDLE.
  void Charge(uint64_t queue_id) {
    Item& it = items_.at(queue_id);
    v_ = std::max(v_, Tag(it));
    ++it.served;
  }
  uint64_t virtual_time() const { return v_; }

 private:
  struct Item {
    uint64_t stride, virtual_start, served, eligible_ns;
  };
  static uint64_t Tag(const Item& it) { return it.virtual_start + (it.served + 1) * it.stride; }
  std::map<uint64_t, Item> items_;
  uint64_t v_ = 0;
};

}  // namespace qnet::interop::model

#endif  // QNET_INTEROP_TESTS_SPEC_MODEL_H_
