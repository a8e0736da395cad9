// PairStream: what happens to the link pairs of one node's circuits
// (specs/network.md sections 2.3 .. 2.5): the standing CREATE each circuit
// link gets from its upstream end, swapping at intermediates as soon as a
// pair exists on each side, Tracks from the tail to the head that collect
// the swap outcomes, completion, correction, cutoff and numbering at the
// head, Delivers to the tail and their acknowledgements, and what an expired
// link pair costs. Private to network/; see circuit_state.h.
#ifndef QNET_NETWORK_PAIR_STREAM_H_
#define QNET_NETWORK_PAIR_STREAM_H_

#include <cstdint>
#include <map>
#include <string>

#include "network/circuit_state.h"

namespace qnet::network {

class CircuitTable;

class PairStream {
 public:
  PairStream(NetworkContext* ctx, CircuitTable* table) : ctx_(ctx), table_(table) {}

  // The circuit is up at this node: the upstream end of a circuit link issues
  // that link's standing CREATE (NET-C-20). May tear the circuit down
  // (NET-C-24).
  void Start(Circuit& c);
  // The circuit leaves this node: its CREATE is cancelled, every pair it
  // holds freed (NET-C-21, NET-C-41).
  void Stop(Circuit& c);

  void OnLinkOk(const link::v1::Ok& ok);
  void OnLinkErr(const link::v1::Err& err);
  void OnBellMeasureResult(const physical::v1::BellMeasureResult& result);
  void HandleTrack(const std::string& neighbour, const v1::Track& track);
  void HandleDeliver(const std::string& neighbour, const v1::Deliver& deliver);
  void HandleDeliverAck(const std::string& neighbour, const v1::DeliverAck& ack);
  void HandleDeliverNack(const std::string& neighbour, const v1::DeliverNack& nack);
  void HandleRelease(const std::string& neighbour, const v1::ReleasePair& release);
  // Head: the tail does not hold pair `seq` (NET-C-38, NET-C-44).
  void ReportExpired(CircuitKey key, uint64_t seq, const std::string& detail);

 private:
  // A BellMeasure this node asked for and whose result is outstanding.
  struct PendingSwap {
    CircuitKey key;
    LinkPair up, down;
    bool up_lost = false, down_lost = false;  // expired while it ran
  };

  void IssueCreate(CircuitKey key);
  void RetryCreate(Circuit& c);
  void TrySwap(Circuit& c);
  // Acts on a Track at this node (an intermediate or the head), now or once
  // its pair is swapped or heard of (NET-C-30a, NET-C-31).
  void ProcessTrack(Circuit& c, v1::Track track);
  void Park(Circuit& c, v1::Track track, bool known);
  // The downstream pair `p` is held here, or in a Bell measurement whose
  // result has not come yet (NET-C-30a).
  bool HoldsUnswapped(const Circuit& c, const PairKey& p) const;
  void ServeParked(const CircuitKey& key);
  void ArmParkTimer(Circuit& c);
  // The Track's pair is not here: free the tail's half (NET-C-30b).
  void ReleaseDownstream(Circuit& c, const v1::Track& track, const std::string& why);
  void SendTrack(Circuit& c, v1::Track track);
  // Head: completes, or discards, the end-to-end pair of h (NET-C-31 .. NET-C-36).
  void Complete(Circuit& c, LinkPair h, const v1::Track* track);
  void Discard(Circuit& c, const LinkPair& h, const std::string& reason, double age_s);
  // Tail: hands up the pair a Deliver names if held; false if not (yet).
  // With pop_first, the Deliver is the front of c.pending_delivers and is
  // popped before the pair is handed up (which may close the circuit).
  bool DeliverHeld(Circuit& c, const std::string& neighbour, const v1::Deliver& deliver,
                   bool pop_first);
  void ServePendingDelivers(const CircuitKey& key);
  void SendDeliverNack(const std::string& neighbour, const v1::CircuitKey& circuit, uint64_t seq,
                       const std::string& detail);
  // Tail: the cumulative DeliverAck of the Delivers handed up so far (NET-C-37).
  void SendAck(const CircuitKey& key);
  void MarkLost(Circuit& c, const link::v1::PairId& id);

  NetworkContext* ctx_;
  CircuitTable* table_;
  std::map<uint64_t, PendingSwap> swaps_;  // by BellMeasure request id
  uint64_t next_request_ = 1;              // odd ids (NetworkLayer::OwnsRequestId)
};

}  // namespace qnet::network

#endif  // QNET_NETWORK_PAIR_STREAM_H_
