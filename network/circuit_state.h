// The per-node state of the network layer's circuits and what its parts share
// (private to network/; specs/network.md section 2). NetworkLayer::Impl
// (network_layer.cc) owns a NetworkContext, the router, a CircuitTable
// (circuit_table.cc: setup, accept, refuse, teardown, reservations) and a
// PairStream (pair_stream.cc: link pairs, swaps, tracking, completion,
// delivery).
//
// Re-entrancy: listener callbacks may call back into the NetworkService (the
// transport opens a new circuit from OnCircuitDown, closes one from OnPair).
// Every callback is therefore made after this layer's state for the event is
// final, and code after a callback looks circuits up again by key.
#ifndef QNET_NETWORK_CIRCUIT_STATE_H_
#define QNET_NETWORK_CIRCUIT_STATE_H_

#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "network/network_layer.h"

namespace qnet::network {

// A link pair's identity on its link: (origin of the CREATE, sequence).
struct PairKey {
  std::string origin;
  uint64_t sequence = 0;
  friend auto operator<=>(const PairKey&, const PairKey&) = default;
  friend bool operator==(const PairKey&, const PairKey&) = default;
};
inline PairKey KeyOf(const link::v1::PairId& id) { return PairKey{id.origin(), id.sequence()}; }

// One link pair held by this node for a circuit.
struct LinkPair {
  link::v1::PairId id;
  uint32_t slot = 0;  // kept pairs
  physical::v1::BellState bell = physical::v1::BELL_STATE_UNSPECIFIED;
  Time herald;
  double estimated_fidelity = 0.0;
  bool measured = false;  // measured directly: basis and result instead of a slot
  physical::v1::Basis basis = physical::v1::BASIS_UNSPECIFIED;
  uint32_t result = 0;
};

// One adjacent link of a circuit at this node.
struct CircuitSide {
  bool present = false;
  std::string neighbour;
  std::string link;
  uint32_t label = 0;  // purpose id of the circuit's CREATEs on this link
  double min_fidelity = 0.0;
  bool keeps = true;   // this node keeps its qubits on this side (not a measuring end)
};

// A swap this intermediate made, remembered under its downstream pair until
// a Track names it (NET-C-29).
struct SwapMemo {
  link::v1::PairId upstream;
  physical::v1::BellState outcome = physical::v1::BELL_STATE_UNSPECIFIED;
  physical::v1::BellState downstream_bell = physical::v1::BELL_STATE_UNSPECIFIED;
  Time upstream_herald, downstream_herald;
  double downstream_fidelity = 0.0;
  bool upstream_lost = false;  // the upstream pair expired after the swap (NET-C-26)
};

// A Track waiting here for its pair's swap or OK (NET-C-30a).
struct ParkedTrack {
  v1::Track track;
  Time give_up;  // for a pair not heard of yet: then NET-C-30b
};

struct Circuit {
  CircuitKey key;
  CircuitInfo info;  // path, links, cutoff, upper, depth, measure; is_head
  size_t index = 0;  // this node's position in info.path
  bool head = false, tail = false;
  bool up = false;  // accepted
  CircuitSide upstream, downstream;
  uint32_t granted = 0;   // depth granted here (NET-C-11a)
  uint32_t reserved = 0;  // memory slots reserved here

  // Generation on the downstream link (this node is its upstream end).
  std::optional<uint64_t> create_id;
  std::unique_ptr<Timer> retry_timer;
  // Link pairs held, oldest first: at an intermediate the unswapped ones of
  // each side; at the head its downstream pairs awaiting their Track; at the
  // tail its upstream pairs awaiting Deliver or ReleasePair.
  std::deque<LinkPair> up_pairs, down_pairs;
  std::map<PairKey, SwapMemo> swaps;      // intermediate, by downstream pair
  std::map<PairKey, ParkedTrack> parked;  // Tracks waiting, by the pair they name
  std::unique_ptr<Timer> park_timer;
  std::map<PairKey, Time> lost;  // recently expired pairs of this node, for NET-C-30b

  // Head.
  uint64_t delivered = 0;                   // seq of the latest delivered pair
  std::map<uint64_t, std::string> unacked;  // seq -> probe label
  std::unique_ptr<Timer> setup_timer;

  // Tail.
  uint64_t last_seq = 0;
  // Delivers that arrived before their pair's OK (NET-C-38a), in seq order,
  // each with the time after which it is refused.
  struct PendingDeliver {
    std::string neighbour;
    v1::Deliver deliver;
    Time refuse_at;
  };
  std::deque<PendingDeliver> pending_delivers;
  std::unique_ptr<Timer> deliver_timer;
  uint64_t ack_seq = 0;    // the latest seq handed up
  uint64_t acked_seq = 0;  // the latest seq a DeliverAck was sent for
  std::unique_ptr<Timer> ack_timer;

  bool measures() const { return info.measure.has_value(); }
  size_t links() const { return info.links.size(); }
  const char* role() const { return head ? "head" : tail ? "tail" : "intermediate"; }
};

// What the parts of one node's network layer share.
struct NetworkContext {
  std::string node;
  Runtime* runtime = nullptr;
  PhysicalService* physical = nullptr;
  link::MemoryPool* memory = nullptr;
  NetworkLayer::SendFn send;
  NetworkListener* listener = nullptr;
  Tracer* tracer = nullptr;
  NetworkOptions options;
  NetworkStats stats;
  std::map<std::string, NetworkLink> links;          // by link name
  std::map<std::string, std::string> neighbour_link;  // neighbour -> link

  void Drop(results::v1::DropReason reason, std::string detail, std::string link = "");
  void Send(const std::string& neighbour, const v1::NetworkFrame& frame) { send(neighbour, frame); }
  link::LinkService* ServiceOf(const std::string& link) const;
  std::string LinkTo(const std::string& neighbour) const;
  // Frees a held link pair: a kept qubit through its link's service (physical Free).
  void ReleasePair(const std::string& link, const LinkPair& pair);
};

v1::CircuitKey ToProto(const CircuitKey& key);
CircuitKey FromProto(const v1::CircuitKey& key);
std::string PairName(const link::v1::PairId& p);

}  // namespace qnet::network

#endif  // QNET_NETWORK_CIRCUIT_STATE_H_
