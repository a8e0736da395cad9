// The emulated qubits of a whole network (specs/physical.md PHYS-Q*, PHYS-M*,
// PHYS-N*): every live qubit is keyed by (node, slot) and belongs to exactly
// one group, a set of qubits whose joint state is one exact density matrix.
// Groups merge by tensor product when a two-qubit gate or a Bell-state
// measurement joins them; a measured or freed qubit leaves its group by
// partial trace, so groups stay as small as the entanglement allows.
//
// Memory noise is applied lazily (PHYS-N5): each qubit remembers when its
// state was last brought up to date, and the noise of its node's hardware for
// the time since then is applied when it is next touched. Noise is local, so
// the other qubits of the group need not be touched.
//
// Every operation validates all its inputs before changing anything: a call
// that returns an error leaves the state unchanged. Randomness comes only from
// the Rng passed in. No I/O, no clock.
#ifndef QNET_EMULATOR_PHYSICS_QUBIT_REGISTRY_H_
#define QNET_EMULATOR_PHYSICS_QUBIT_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "emulator/physics/density_matrix.h"
#include "emulator/physics/memory_noise.h"
#include "stack/random.h"
#include "stack/time.h"
#include "stack/topology.h"

namespace qnet::physics {

struct QubitId {
  uint32_t node = 0;  // index into the hardware list given to the registry
  uint32_t slot = 0;
  friend bool operator==(QubitId x, QubitId y) { return x.node == y.node && x.slot == y.slot; }
  template <typename H>
  friend H AbslHashValue(H h, QubitId q) {
    return H::combine(std::move(h), q.node, q.slot);
  }
};

enum class Gate1 { kX, kY, kZ, kH, kS, kRX, kRY, kRZ };
enum class Gate2 { kCnot, kCz };

class QubitRegistry {
 public:
  // Largest group the registry will build (a 2^n x 2^n matrix): PHYS-Q5.
  static constexpr int kDefaultMaxGroupQubits = 10;

  // `hardware[i]` describes node i: memory noise and readout error.
  explicit QubitRegistry(std::vector<HardwareSpec> hardware,
                         int max_group_qubits = kDefaultMaxGroupQubits);
  ~QubitRegistry();
  QubitRegistry(const QubitRegistry&) = delete;
  QubitRegistry& operator=(const QubitRegistry&) = delete;

  bool Holds(QubitId q) const { return where_.contains(q); }
  size_t qubits() const { return where_.size(); }
  size_t groups() const { return groups_.size(); }
  // The members of q's group, q included, in the group's order; empty if q
  // holds no qubit (PHYS-T4 asks for the partner of a probed qubit).
  std::vector<QubitId> GroupOf(QubitId q) const;

  // A new group of two qubits in state `rho` (order (a, b)), up to date at `at`.
  absl::Status AddPair(QubitId a, QubitId b, const Matrix4& rho, Time at);
  // A new single-qubit group.
  absl::Status AddQubit(QubitId q, const Matrix2& rho, Time at);

  // Ideal gates at `now` (PHYS-M5, PHYS-M6).
  absl::Status Apply(Gate1 gate, QubitId q, double angle, Time now);
  absl::Status Apply(Gate2 gate, QubitId control, QubitId target, Time now);

  // Measures q in `basis` at `now` (PHYS-M1..M4): returns the reported bit
  // (the true outcome flipped with the node's readout error). With keep the
  // qubit stays, in the basis eigenstate of the true outcome; otherwise it is
  // gone.
  absl::StatusOr<int> Measure(QubitId q, Basis basis, bool keep, Time now, Rng& rng);

  // Bell-state measurement of two qubits of one node (PHYS-M7): CNOT(a -> b),
  // H(a), Z-measurement of both with readout error; returns the Pauli index
  // (x bit from b, z bit from a). Both qubits are gone afterwards.
  absl::StatusOr<int> BellMeasure(QubitId a, QubitId b, Time now, Rng& rng);

  // The qubit is discarded (partial trace) (PHYS-M8).
  absl::Status Free(QubitId q);

  // The joint state of `qubits` (in that order) as it is at `at`, with memory
  // noise applied to a copy; the registry is not changed.
  absl::StatusOr<DensityMatrix> ReducedState(absl::Span<const QubitId> qubits, Time at) const;
  // <B_k| rho_ab |B_k> at `at` (PHYS-T2).
  absl::StatusOr<double> BellFidelity(QubitId a, QubitId b, int pauli_index, Time at) const;

 private:
  struct Group {
    DensityMatrix state;
    std::vector<QubitId> members;  // members[i] is qubit i of `state`
    std::vector<Time> updated;     // when member i's noise was last applied
  };
  using GroupId = uint64_t;

  absl::Status CheckNew(QubitId q) const;
  absl::Status CheckLive(QubitId q) const;
  const HardwareSpec& hardware(QubitId q) const;
  int IndexIn(const Group& g, QubitId q) const;
  // Applies q's pending memory noise up to `now`.
  void BringUpToDate(Group& g, int index, Time now) const;
  // Merges the groups of a and b (if different); returns the group.
  absl::StatusOr<GroupId> Join(QubitId a, QubitId b);
  // Removes qubit `index` of group `id` from the registry (state already reduced).
  void Detach(GroupId id, int index);
  // BellMeasure of a and b when each is one of a pair that is its own group.
  absl::StatusOr<int> SwapTwoPairs(QubitId a, QubitId b, Time now, Rng& rng);
  GroupId NewGroup(Group g);

  std::vector<HardwareSpec> hardware_;
  std::vector<MemoryNoise> noise_;
  int max_group_qubits_;
  GroupId next_group_ = 1;
  absl::flat_hash_map<GroupId, Group> groups_;
  absl::flat_hash_map<QubitId, GroupId> where_;
};

}  // namespace qnet::physics

#endif  // QNET_EMULATOR_PHYSICS_QUBIT_REGISTRY_H_
