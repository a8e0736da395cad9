// TransportLayer: one node's transport (specs/transport.md). Implements
// TransportService for the sockets of the node's owners (the app server, the
// sim backend's apps, the topology's <connection> workload) on top of the
// network layer, whose listener it is.
//
// What it promises (requirement ids in specs/transport.md):
//  - Connections: a handshake over network datagrams (TRN-H*), then the
//    initiator opens a circuit whose `upper` bytes name the connection and the
//    pair id of the circuit's first pair (TRN-P*); the responder accepts only
//    circuits naming a live connection it accepted.
//  - Pair ids 1, 2, 3, ... per connection, the same at both ends and in the
//    same order, continued across circuits when a failed circuit is replaced
//    (reroute, TRN-F*).
//  - A reliable ordered control stream per connection (TRN-R*, ReliableStream)
//    carries Data, Expired, Done and Close.
//  - Expiries reach both ends; each end reports only ids its owner saw
//    (TRN-E*). No pair is handed to the owner after its id expired.
//  - QoS: pairs N (TRN-D*), measure type with a basis choice (TRN-M*), keep
//    type with a window (TRN-W*).
//  - Qubit operations on what the owner holds (TRN-Q*); every bad call is an
//    error status, counted, with no effect (TRN-Q9).
//
// Request ids of the physical Measure / BellMeasure it issues are even
// (OwnsRequestId); the composition routes those results here.
//
// Sans-I/O: time and timers from the injected Runtime, randomness from the
// injected Rng, output through NetworkService, PhysicalService and MemoryPool.
// Single-threaded; listener callbacks run synchronously inside its inputs.
#ifndef QNET_TRANSPORT_TRANSPORT_LAYER_H_
#define QNET_TRANSPORT_TRANSPORT_LAYER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "link/memory_pool.h"
#include "network/network.h"
#include "qnet/transport/v1/transport.pb.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/runtime.h"
#include "stack/trace.h"
#include "transport/reliable_stream.h"
#include "transport/transport.h"

namespace qnet::transport {

struct TransportOptions {
  StreamOptions stream;               // control stream and handshake timers (TRN-R4, TRN-H3)
  uint32_t max_connect_attempts = 8;  // Connect sent this often without answer -> kUnreachable
  absl::Duration reroute_backoff = absl::Milliseconds(20);  // first re-open; doubles (TRN-F2)
  uint32_t max_reroutes = 5;  // consecutive failed (re-)opens before giving up (TRN-F3)
  absl::Duration linger = absl::Seconds(2);  // a closed connection still acks this long
  size_t max_data_bytes = 64 * 1024;         // per Send (TRN-Q9)
};

struct TransportStats {
  uint64_t connections_initiated = 0;
  uint64_t connections_accepted = 0;
  uint64_t connects_refused = 0;  // Refuse sent
  uint64_t circuits_opened = 0;   // OpenCircuit accepted by the network layer
  uint64_t reroutes = 0;          // circuits opened after a failed one
  uint64_t pairs_delivered = 0;   // OnPair to an owner
  uint64_t pairs_discarded = 0;   // pairs freed without reaching an owner
  uint64_t pairs_expired = 0;     // OnPairExpired to an owner
  uint64_t drops = 0;             // refused untrusted datagrams / indications (traced)
  uint64_t bad_calls = 0;         // app calls answered with an error
  uint64_t datagram_send_errors = 0;
};

class TransportLayer : public TransportService, public network::NetworkListener {
 public:
  TransportLayer(std::string node, Runtime* runtime, network::NetworkService* network,
                 PhysicalService* physical, link::MemoryPool* memory, Tracer* tracer,
                 TransportOptions options);
  ~TransportLayer() override;
  TransportLayer(const TransportLayer&) = delete;
  TransportLayer& operator=(const TransportLayer&) = delete;

  // For compositions that must build the network layer (which takes this as
  // its listener) after the transport: sets the service used from then on.
  void set_network(network::NetworkService* network) { network_ = network; }

  // TransportService.
  absl::StatusOr<SocketId> Bind(uint32_t port, SocketListener* listener) override;
  absl::Status Unbind(SocketId socket) override;
  absl::StatusOr<ConnectionId> Connect(SocketId socket, const std::string& remote_node,
                                       uint32_t remote_port, const Qos& qos) override;
  absl::Status Close(ConnectionId connection) override;
  absl::Status Send(ConnectionId connection, std::string bytes) override;
  absl::Status Release(const QubitRef& qubit) override;
  absl::StatusOr<QubitRef> AllocateQubit(SocketId socket) override;
  absl::Status Gate(const QubitRef& qubit, physical::v1::GateKind kind, double angle) override;
  absl::StatusOr<uint64_t> Measure(const QubitRef& qubit, physical::v1::Basis basis,
                                   double angle) override;
  absl::StatusOr<uint64_t> BellMeasure(const QubitRef& a, const QubitRef& b) override;

  // network::NetworkListener.
  absl::Status OnIncomingCircuit(const network::CircuitInfo& info) override;
  void OnCircuitUp(const network::CircuitInfo& info) override;
  void OnCircuitDown(const network::CircuitKey& key, network::v1::CircuitError code,
                     const std::string& detail) override;
  void OnPair(const network::EndPair& pair) override;
  void OnPairExpired(const network::CircuitKey& key, uint64_t seq,
                     const std::string& detail) override;
  void OnDatagram(const std::string& source, const std::string& payload) override;

  // Physical results of the requests this layer issued (even request ids).
  void OnMeasureResult(const physical::v1::MeasureResult& result);
  void OnBellMeasureResult(const physical::v1::BellMeasureResult& result);
  static bool OwnsRequestId(uint64_t id) { return id % 2 == 0 && id != 0; }

  const TransportStats& stats() const { return stats_; }
  // A live (not closed) connection; nullopt otherwise.
  std::optional<ConnectionInfo> connection_info(ConnectionId connection) const;
  const std::string& node() const { return node_; }

 private:
  enum class State { kConnecting, kOpen, kDraining, kClosed };

  struct Connection {
    ConnectionId id = 0;
    SocketId socket = 0;
    uint32_t local_port = 0;
    std::string peer_node;
    uint32_t peer_port = 0;
    ConnectionId peer_connection = 0;
    bool initiator = false;
    Qos qos;
    State state = State::kConnecting;
    bool closing = false;  // inside Shutdown: circuit events do not reroute
    std::unique_ptr<ReliableStream> stream;
    std::unique_ptr<Timer> handshake_timer;  // initiator: Connect retransmission
    uint32_t connect_attempts = 0;
    absl::Duration connect_timeout;
    std::unique_ptr<Timer> circuit_timer;  // initiator: re-open after backoff, finish
    uint32_t failed_opens = 0;             // consecutive
    bool ever_up = false;
    std::optional<network::CircuitKey> circuit;
    std::vector<std::string> path;
    uint64_t last_pair_id = 0;  // highest pair id this end received from a circuit
    uint64_t done_last = 0;     // pairs-N: the last pair id (after Done)
    std::set<uint64_t> seen;    // ids handed to the owner
    std::set<uint64_t> expired;
    std::deque<uint64_t> waiting;  // kept pairs held back by the window (TRN-W2)
    std::map<uint64_t, Pair> waiting_pairs;
    uint32_t held = 0;  // kept pairs the owner has and has not released
    std::unique_ptr<Timer> linger_timer;
  };

  struct Socket {
    SocketId id = 0;
    uint32_t port = 0;
    SocketListener* listener = nullptr;
    std::set<ConnectionId> connections;
  };

  struct Qubit {
    SocketId socket = 0;
    uint32_t slot = 0;
    bool announced = true;  // the owner has been told (kept pairs beyond the window: false)
  };

  struct PendingOp {
    enum class Kind { kOwnerMeasure, kOwnerBell } kind;
    SocketId socket = 0;
    std::vector<uint32_t> slots;
  };

  struct Binding {
    ConnectionId connection = 0;
    uint64_t first_pair_id = 1;
  };

  using QubitKey = std::pair<ConnectionId, uint64_t>;

  // Connections.
  Connection* Find(ConnectionId id);
  Connection& NewConnection(SocketId socket, uint32_t local_port);
  void SendMessage(const Connection& c, v1::TransportMessage message);
  void SendConnect(Connection& c);
  void OnHandshakeTimeout(ConnectionId id);
  void HandleConnect(const std::string& source, const v1::TransportMessage& m);
  void HandleAccept(Connection& c, const v1::TransportMessage& m);
  void HandleSegment(ConnectionId id, const v1::Segment& segment);
  void Refuse(const std::string& source, ConnectionId peer, const std::string& reason);
  void Shutdown(Connection& c, CloseReason reason, v1::CloseReason wire, const std::string& detail,
                bool send_close, bool notify);
  void Forget(ConnectionId id);

  // Circuits.
  void OpenCircuitFor(Connection& c);
  void CircuitFailed(Connection& c, const std::string& detail);
  void MaybeCloseDrainedCircuit(Connection& c);

  // Pairs.
  void HandlePair(Connection& c, uint64_t pair_id, const network::EndPair& pair);
  void Announce(Connection& c, const Pair& pair);
  void PromoteWaiting(Connection& c);
  void Expire(Connection& c, const std::vector<uint64_t>& ids, const std::string& detail);
  // Frees a pair nobody receives (its slot, if kept) and counts it.
  void DiscardPair(const network::EndPair& pair, const std::string& why);
  void DiscardSlot(uint32_t slot, const std::string& why);

  // Qubits.
  absl::Status BadCall(absl::Status status);
  absl::StatusOr<Qubit*> FindQubit(const QubitRef& ref);
  void Consume(const QubitRef& ref);
  uint64_t NextRequestId() { return next_request_id_ += 2; }
  SocketListener* ListenerOf(SocketId socket);

  void Drop(results::v1::DropReason reason, std::string detail);

  std::string node_;
  Runtime* runtime_;
  network::NetworkService* network_;
  PhysicalService* physical_;
  link::MemoryPool* memory_;
  Tracer* tracer_;
  TransportOptions options_;
  TransportStats stats_;

  SocketId next_socket_ = 1;
  ConnectionId next_connection_ = 1;
  uint64_t next_local_qubit_ = 1;
  uint64_t next_request_id_ = 0;
  std::map<SocketId, Socket> sockets_;
  std::map<uint32_t, SocketId> ports_;
  std::map<ConnectionId, std::unique_ptr<Connection>> connections_;
  std::map<std::pair<std::string, ConnectionId>, ConnectionId> accepted_;  // (peer, its id)
  std::map<network::CircuitKey, Binding> circuits_;
  std::map<QubitKey, Qubit> qubits_;
  std::map<uint64_t, PendingOp> pending_;
};

}  // namespace qnet::transport

#endif  // QNET_TRANSPORT_TRANSPORT_LAYER_H_
