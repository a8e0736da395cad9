// The network-layer service (specs/network.md): end-to-end pairs between any
// two nodes over circuits, plus an end-to-end datagram service for the layer
// above's control messages. One NetworkLayer per node (network/network_layer.h)
// implements NetworkService; the transport implements NetworkListener.
//
// The contract in brief (the spec has the requirement ids):
//  - OpenCircuit computes a path from the node's link-state database, signals
//    it hop by hop and reports the outcome through OnCircuitUp or
//    OnCircuitDown; the tail's upper layer is asked with OnIncomingCircuit.
//  - Links generate for a circuit while it has room (its depth, per side of
//    each node), swaps happen as soon as both pairs exist, and several
//    end-to-end pairs are in flight (specs/network.md section 2).
//  - Both ends receive every end-to-end pair of a circuit through OnPair with
//    the same seq (1, 2, 3, ... per circuit, in that order), the pair already
//    corrected to PHI_PLUS (a measure circuit: the head's result corrected,
//    as if it had been). The head hears first; the tail when the head's
//    Deliver reaches it. A pair the head delivered but the tail could not is
//    reported at the head with OnPairExpired.
//  - The qubit of a delivered kept pair belongs to the upper layer, which
//    gives its slot back through the node's link::MemoryPool (Release, or
//    Return after a measurement that emptied it).
#ifndef QNET_NETWORK_NETWORK_H_
#define QNET_NETWORK_NETWORK_H_

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "qnet/link/v1/link.pb.h"
#include "qnet/network/v1/network.pb.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/time.h"

namespace qnet::network {

// Identifies a circuit network-wide: the head node and its number there.
struct CircuitKey {
  std::string head;
  uint64_t number = 0;

  friend auto operator<=>(const CircuitKey&, const CircuitKey&) = default;
  friend bool operator==(const CircuitKey&, const CircuitKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const CircuitKey& k) {
    return H::combine(std::move(h), k.head, k.number);
  }
  std::string ToString() const { return head + "/" + std::to_string(number); }
};

// A measure circuit's ends measure each pair's qubit directly (NET-C-2a).
struct EndMeasure {
  link::v1::BasisChoice basis = link::v1::BASIS_CHOICE_XZ;
  std::optional<double> z_probability;  // XZ: probability of Z; absent: 1/2
};

struct CircuitRequest {
  std::string remote_node;
  double min_fidelity = 0.0;  // end to end; 0: no requirement
  // Cutoff on the age of an end-to-end pair's oldest link pair at
  // completion; absent: derived from the fidelity budget and the advertised
  // memory times.
  std::optional<absl::Duration> cutoff;
  double min_rate_hz = 0.0;   // admission: refused if the path's expected rate is lower
  std::string upper;          // opaque bytes handed to the tail's upper layer
  uint32_t depth = 1;         // link pairs per side of each node (NET-C-11a); 0 counts as 1
  std::optional<EndMeasure> measure;
};

// What both ends know about a circuit once it is up (and the tail when asked).
struct CircuitInfo {
  CircuitKey key;
  std::vector<std::string> path;  // head first
  std::vector<std::string> links; // path.size() - 1 link names
  bool is_head = false;
  std::string remote_node;        // the other end
  double expected_fidelity = 0.0; // from advertised link fidelities, no memory noise
  double expected_pair_time_s = 0.0;
  absl::Duration cutoff = absl::InfiniteDuration();
  std::string upper;
  uint32_t depth = 1;
  std::optional<EndMeasure> measure;
};

// One end-to-end pair at one end.
struct EndPair {
  CircuitKey circuit;
  uint64_t seq = 0;      // per circuit, the same at both ends
  uint32_t slot = 0;     // this node's qubit (kept pairs)
  // Measure circuits: the basis and result (at the head corrected, NET-C-35).
  bool measured = false;
  physical::v1::Basis basis = physical::v1::BASIS_UNSPECIFIED;
  uint32_t result = 0;
  double estimated_fidelity = 0.0;
  Time completed;        // when the head completed it
  Time delivered;        // when this end handed it up
  std::string remote_node;
  link::v1::PairId link_pair;  // this end's link pair
};

class NetworkListener {
 public:
  virtual ~NetworkListener() = default;
  // Tail only: accept (OK) or refuse (the status message goes back to the head).
  virtual absl::Status OnIncomingCircuit(const CircuitInfo& info) = 0;
  virtual void OnCircuitUp(const CircuitInfo& info) = 0;
  virtual void OnCircuitDown(const CircuitKey& key, v1::CircuitError code,
                             const std::string& detail) = 0;
  virtual void OnPair(const EndPair& pair) = 0;
  // Head only: a pair it delivered is not held at the tail (Nack, or the
  // circuit went down before the tail acknowledged it).
  virtual void OnPairExpired(const CircuitKey& key, uint64_t seq, const std::string& detail) = 0;
  virtual void OnDatagram(const std::string& source, const std::string& payload) = 0;
};

// A route as the head computes it (also used for admission and summaries).
struct Route {
  std::vector<std::string> path;   // this node first
  std::vector<std::string> links;
  double cost = 0.0;
  double expected_fidelity = 1.0;  // (1 + 3 prod w) / 4 of the advertised fidelities
  double expected_pair_time_s = 0.0;
};

class NetworkService {
 public:
  virtual ~NetworkService() = default;
  // Refused at once (no route, fidelity or rate unreachable, no local memory)
  // with an error status naming the CircuitError; otherwise the outcome comes
  // through OnCircuitUp / OnCircuitDown.
  virtual absl::StatusOr<CircuitKey> OpenCircuit(const CircuitRequest& request) = 0;
  // Either end. Both ends hear OnCircuitDown(CLOSED) (this one at once).
  virtual void CloseCircuit(const CircuitKey& key, const std::string& detail) = 0;
  // Best effort, routed hop by hop; an error if there is no route now.
  virtual absl::Status SendDatagram(const std::string& destination, std::string payload) = 0;
  virtual std::optional<Route> RouteTo(const std::string& destination) const = 0;
};

}  // namespace qnet::network

#endif  // QNET_NETWORK_NETWORK_H_
