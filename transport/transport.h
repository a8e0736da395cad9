// The transport service (specs/transport.md): sockets bound to (node, port),
// connections with a quality of service, end-to-end pairs numbered alike at
// both ends, a reliable byte-message channel between connected sockets, and
// operations on the qubits a socket owns. One Transport per node
// (transport/transport_layer.h) implements TransportService on top of the
// network layer; the qnode app server, the sim backend's in-process apps and
// the topology's <connection> workload all use this interface.
#ifndef QNET_TRANSPORT_TRANSPORT_H_
#define QNET_TRANSPORT_TRANSPORT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "qnet/link/v1/link.pb.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/time.h"

namespace qnet::transport {

using SocketId = uint64_t;
using ConnectionId = uint64_t;  // local handle, unique per node

enum class PairType { kKeep, kMeasure };

struct Qos {
  double min_fidelity = 0.0;  // end to end
  uint32_t pairs = 0;         // 0: until closed
  double min_rate_hz = 0.0;   // admission against the path's expected rate; 0: none
  PairType type = PairType::kKeep;
  link::v1::BasisChoice basis = link::v1::BASIS_CHOICE_XZ;  // measure: per pair, both ends
  uint32_t window = 1;                   // unreleased kept pairs per end before generation waits
  std::optional<absl::Duration> cutoff;  // absent: the network layer's default
  double z_probability = 0.5;            // XZ measure pairs: P(Z) at each end (TRN-M2a)
};

// A qubit a socket owner can operate on: its half of a delivered kept pair, or
// a local qubit from AllocateQubit.
struct QubitRef {
  ConnectionId connection = 0;  // 0 for a local qubit
  uint64_t id = 0;              // pair id, or local qubit id
};

enum class CloseReason {
  kLocal,        // this end closed
  kPeer,         // the other end closed
  kDone,         // the requested number of pairs was delivered
  kRefused,      // no socket at the remote port, or the peer refused
  kUnreachable,  // no route, or no circuit could be set up (after retries)
  kFailed,       // the circuit failed and could not be re-established
};

struct ConnectionInfo {
  ConnectionId connection = 0;
  SocketId socket = 0;
  std::string peer_node;
  uint32_t peer_port = 0;
  bool initiator = false;
  Qos qos;
  std::vector<std::string> path;  // current circuit path, head first
};

// A pair delivered to a socket owner. Kept pairs are PHI_PLUS; measured pairs
// report their outcome in the PHI_PLUS frame (equal bits in Z and X for a
// perfect pair, opposite in Y).
struct Pair {
  ConnectionId connection = 0;
  uint64_t pair_id = 0;  // 1, 2, 3 ... per connection, the same at both ends
  Time time;
  double estimated_fidelity = 0.0;
  bool kept = true;
  physical::v1::Basis basis = physical::v1::BASIS_UNSPECIFIED;  // measured
  uint32_t result = 0;                                          // measured
};

class SocketListener {
 public:
  virtual ~SocketListener() = default;
  virtual void OnConnected(const ConnectionInfo& info) = 0;
  virtual void OnClosed(ConnectionId connection, CloseReason reason, const std::string& detail) = 0;
  virtual void OnPair(const Pair& pair) = 0;
  // A pair delivered earlier is not held at the other end: do not use it.
  virtual void OnPairExpired(ConnectionId connection, uint64_t pair_id,
                             const std::string& detail) = 0;
  virtual void OnData(ConnectionId connection, const std::string& bytes) = 0;
  // Answers to Measure / BellMeasure (request ids from those calls).
  virtual void OnMeasured(uint64_t request_id, uint32_t result) = 0;
  virtual void OnBellMeasured(uint64_t request_id, physical::v1::BellState outcome) = 0;
};

class TransportService {
 public:
  virtual ~TransportService() = default;
  // Binds a port (listening for connections to it). Error if taken or 0.
  virtual absl::StatusOr<SocketId> Bind(uint32_t port, SocketListener* listener) = 0;
  // Closes every connection of the socket and frees the port.
  virtual absl::Status Unbind(SocketId socket) = 0;
  virtual absl::StatusOr<ConnectionId> Connect(SocketId socket, const std::string& remote_node,
                                               uint32_t remote_port, const Qos& qos) = 0;
  virtual absl::Status Close(ConnectionId connection) = 0;
  // Reliable, ordered message to the other end of the connection.
  virtual absl::Status Send(ConnectionId connection, std::string bytes) = 0;

  // Qubit operations on what the socket owns. Errors for unknown or already
  // consumed qubits; nothing happens then.
  virtual absl::Status Release(const QubitRef& qubit) = 0;
  virtual absl::StatusOr<QubitRef> AllocateQubit(SocketId socket) = 0;  // |0>
  virtual absl::Status Gate(const QubitRef& qubit, physical::v1::GateKind kind, double angle) = 0;
  // Measures and consumes the qubit; the result comes through OnMeasured.
  // `basis` UNSPECIFIED with an angle: the observable cos(angle) Z + sin(angle) X.
  virtual absl::StatusOr<uint64_t> Measure(const QubitRef& qubit, physical::v1::Basis basis,
                                           double angle) = 0;
  // Bell-state measurement of two owned qubits (both consumed); OnBellMeasured.
  virtual absl::StatusOr<uint64_t> BellMeasure(const QubitRef& a, const QubitRef& b) = 0;
};

}  // namespace qnet::transport

#endif  // QNET_TRANSPORT_TRANSPORT_H_
