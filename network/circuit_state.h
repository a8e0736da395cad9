// NetworkLayer::Impl: the per-node state of the network layer (private to
// network/; specs/network.md section 2). network_layer.cc holds the frame
// dispatch, circuit setup and teardown, and datagrams; circuit_rounds.cc the
// rounds, link pairs, swaps, completion and delivery.
//
// Re-entrancy: listener callbacks may call back into the NetworkService (the
// transport opens a new circuit from OnCircuitDown, closes one from OnPair).
// Every callback is therefore made after this layer's state for the event is
// final, and code after a callback looks circuits up again by key.
#ifndef QNET_NETWORK_CIRCUIT_STATE_H_
#define QNET_NETWORK_CIRCUIT_STATE_H_

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

// One link pair held by this node for a circuit.
struct LinkPair {
  link::v1::PairId id;
  uint32_t slot = 0;
  physical::v1::BellState bell = physical::v1::BELL_STATE_UNSPECIFIED;
  Time herald;
  double estimated_fidelity = 0.0;
};

// One adjacent link of a circuit at this node.
struct CircuitSide {
  bool present = false;
  std::string neighbour;
  std::string link;
  uint32_t label = 0;  // purpose id of the circuit's CREATEs on this link
  double min_fidelity = 0.0;
};

struct Circuit {
  CircuitKey key;
  CircuitInfo info;  // path, links, cutoff, upper; is_head
  size_t index = 0;  // this node's position in info.path
  bool head = false, tail = false;
  bool up = false;  // accepted
  CircuitSide upstream, downstream;
  uint32_t reserved = 0;  // memory slots reserved here
  uint64_t round = 0;     // the latest round started (head) or seen

  // Generation on the downstream link (this node is its upstream end).
  std::optional<uint64_t> create_id;
  std::unique_ptr<Timer> retry_timer;
  std::optional<LinkPair> up_pair, down_pair;

  // Head.
  std::map<std::string, v1::SwapRecord> swaps;  // this round's, by node
  uint64_t delivered = 0;                       // seq of the latest delivered pair
  std::map<uint64_t, std::string> unacked;      // seq -> probe label
  std::unique_ptr<Timer> setup_timer;

  // Tail: last-link pairs awaiting Deliver or ReleasePair, oldest first.
  std::deque<LinkPair> held;
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

  const char* role() const { return head ? "head" : tail ? "tail" : "intermediate"; }
};

class NetworkLayer::Impl {
 public:
  Impl(std::string node, std::vector<NetworkLink> links, Runtime* runtime,
       PhysicalService* physical, link::MemoryPool* memory, SendFn send, NetworkListener* listener,
       Tracer* tracer, Rng rng, NetworkOptions options);

  void Start() { router_->Start(); }
  void OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame);
  void OnLinkOk(const link::v1::Ok& ok);
  void OnLinkErr(const link::v1::Err& err);
  void OnBellMeasureResult(const physical::v1::BellMeasureResult& result);
  void OnNeighbourDown(const std::string& neighbour);

  absl::StatusOr<CircuitKey> OpenCircuit(const CircuitRequest& request);
  void CloseCircuit(const CircuitKey& key, const std::string& detail);
  absl::Status SendDatagram(const std::string& destination, std::string payload);
  std::optional<Route> RouteTo(const std::string& destination) const {
    return router_->RouteTo(destination);
  }

  const NetworkStats& stats() const { return stats_; }
  const LinkStateRouter& router() const { return *router_; }

 private:
  // A BellMeasure this node asked for and whose result is outstanding.
  struct PendingSwap {
    CircuitKey key;
    uint64_t round = 0;
    LinkPair up, down;
  };
  // (link, origin of the CREATEs, label) -> circuit.
  using LabelKey = std::tuple<std::string, std::string, uint32_t>;

  // ---- network_layer.cc ----
  void Drop(results::v1::DropReason reason, std::string detail, std::string link = "");
  void Send(const std::string& neighbour, const v1::NetworkFrame& frame) {
    send_(neighbour, frame);
  }
  Circuit* Find(const CircuitKey& key);
  // The circuit a frame names, if it is installed and `neighbour` is its
  // upstream (from_downstream false) or downstream neighbour; else a counted drop.
  Circuit* FindFrom(const std::string& neighbour, const v1::CircuitKey& key, bool from_downstream,
                    const char* what);
  uint32_t Unreserved() const;
  link::LinkService* ServiceOf(const std::string& link) const;
  std::string LinkTo(const std::string& neighbour) const;
  void HandleDatagram(const std::string& neighbour, const v1::NetDatagram& datagram);
  void HandleSetup(const std::string& neighbour, const v1::CircuitSetup& setup);
  void HandleAccept(const std::string& neighbour, const v1::CircuitAccept& accept);
  void HandleRefuse(const std::string& neighbour, const v1::CircuitRefuse& refuse);
  void HandleTeardown(const std::string& neighbour, const v1::CircuitTeardown& teardown);
  void Refuse(const std::string& neighbour, const v1::CircuitKey& key, v1::CircuitError code,
              const std::string& detail);
  void Install(Circuit circuit);
  // Removes the circuit here: frees its pairs and reservation, forwards
  // CircuitTeardown to its neighbours other than `except`, and tells the
  // upper layer if this node is an end (NET-C-40 .. NET-C-43).
  void TearDown(CircuitKey key, v1::CircuitError code, const std::string& detail,
                const std::string& failed_link, const std::string& except);
  // Removes the state without messages or callbacks; returns the circuit.
  Circuit Uninstall(CircuitKey key);
  void OnLinkChange(const std::string& link, bool up);
  void TraceCircuit(const Circuit& c, bool up, v1::CircuitError code, const std::string& detail);
  void OnSetupTimeout(const CircuitKey& key);

  // ---- circuit_rounds.cc ----
  void StartRound(Circuit& c, uint64_t round);
  void HandleRound(const std::string& neighbour, const v1::Round& round);
  void IssueCreate(CircuitKey key);
  void RetryCreate(Circuit& c);
  void HandleSwap(const std::string& neighbour, const v1::SwapRecord& swap);
  void TrySwap(Circuit& c);
  void TryComplete(CircuitKey key);
  void HandleDeliver(const std::string& neighbour, const v1::Deliver& deliver);
  // Tail: hands up the pair a Deliver names if held; false if not (yet).
  // With pop_first, the Deliver is the front of c.pending_delivers and is
  // popped before the pair is handed up (which may close the circuit).
  bool DeliverHeld(Circuit& c, const std::string& neighbour, const v1::Deliver& deliver,
                   bool pop_first);
  // Tail: retries parked Delivers and refuses those whose wait is over.
  void ServePendingDelivers(const CircuitKey& key);
  void SendDeliverNack(const std::string& neighbour, const v1::CircuitKey& circuit, uint64_t seq,
                       const std::string& detail);
  void HandleDeliverAck(const std::string& neighbour, const v1::DeliverAck& ack);
  void HandleDeliverNack(const std::string& neighbour, const v1::DeliverNack& nack);
  void HandleRelease(const std::string& neighbour, const v1::ReleasePair& release);
  // Frees a held link pair through its link's service (physical Free).
  void ReleasePair(const std::string& link, const LinkPair& pair);
  void ReportExpired(CircuitKey key, uint64_t seq, const std::string& detail);

  const std::string node_;
  std::map<std::string, NetworkLink> links_;  // by link name
  std::map<std::string, std::string> neighbour_link_;
  Runtime* runtime_;
  PhysicalService* physical_;
  link::MemoryPool* memory_;
  SendFn send_;
  NetworkListener* listener_;
  Tracer* tracer_;
  Rng rng_;
  const NetworkOptions options_;
  std::unique_ptr<LinkStateRouter> router_;

  std::map<CircuitKey, Circuit> circuits_;
  std::map<LabelKey, CircuitKey> labels_;
  std::map<std::string, uint32_t> next_label_;  // per link, as its upstream end
  std::map<uint64_t, PendingSwap> swaps_;       // by BellMeasure request id
  uint64_t next_number_ = 1;
  uint64_t next_request_ = 1;  // odd ids (OwnsRequestId)
  uint32_t reserved_ = 0;
  NetworkStats stats_;
};

}  // namespace qnet::network

#endif  // QNET_NETWORK_CIRCUIT_STATE_H_
