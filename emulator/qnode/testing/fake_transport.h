// A scripted TransportService for app-server tests: records every call,
// hands out ids from 1, and lets the test play the transport's callbacks
// through the listener a socket was bound with.
#ifndef QNET_EMULATOR_QNODE_TESTING_FAKE_TRANSPORT_H_
#define QNET_EMULATOR_QNODE_TESTING_FAKE_TRANSPORT_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "transport/transport.h"

namespace qnet::qnode::testing {

class FakeTransport : public transport::TransportService {
 public:
  struct Bound {
    uint32_t port = 0;
    transport::SocketListener* listener = nullptr;
  };
  struct ConnectCall {
    transport::SocketId socket = 0;
    std::string remote_node;
    uint32_t remote_port = 0;
    transport::Qos qos;
  };

  absl::StatusOr<transport::SocketId> Bind(uint32_t port,
                                           transport::SocketListener* listener) override {
    for (const auto& [id, b] : sockets) {
      if (b.port == port) return absl::AlreadyExistsError(absl::StrCat("port ", port, " taken"));
    }
    const transport::SocketId id = next_id++;
    sockets[id] = Bound{port, listener};
    return id;
  }
  absl::Status Unbind(transport::SocketId socket) override {
    unbound.push_back(socket);
    return sockets.erase(socket) ? absl::OkStatus() : absl::NotFoundError("no socket");
  }
  absl::StatusOr<transport::ConnectionId> Connect(transport::SocketId socket,
                                                  const std::string& remote_node,
                                                  uint32_t remote_port,
                                                  const transport::Qos& qos) override {
    if (!sockets.count(socket)) return absl::NotFoundError("no socket");
    connects.push_back(ConnectCall{socket, remote_node, remote_port, qos});
    const transport::ConnectionId id = next_id++;
    connection_socket[id] = socket;
    return id;
  }
  absl::Status Close(transport::ConnectionId connection) override {
    closed.push_back(connection);
    return absl::OkStatus();
  }
  absl::Status Send(transport::ConnectionId connection, std::string bytes) override {
    sent.emplace_back(connection, std::move(bytes));
    return absl::OkStatus();
  }
  absl::Status Release(const transport::QubitRef& qubit) override {
    released.emplace_back(qubit.connection, qubit.id);
    return absl::OkStatus();
  }
  absl::StatusOr<transport::QubitRef> AllocateQubit(transport::SocketId socket) override {
    if (!sockets.count(socket)) return absl::NotFoundError("no socket");
    return transport::QubitRef{0, next_id++};
  }
  absl::Status Gate(const transport::QubitRef& qubit, physical::v1::GateKind kind,
                    double angle) override {
    gates.push_back({qubit.connection, qubit.id, kind, angle});
    return gate_status;
  }
  absl::StatusOr<uint64_t> Measure(const transport::QubitRef& qubit, physical::v1::Basis,
                                   double) override {
    const uint64_t id = next_id++;
    measured.emplace_back(qubit.connection, qubit.id);
    // Like a transport answering at once, from inside the call.
    if (measure_inline_result) Listener(qubit)->OnMeasured(id, *measure_inline_result);
    return id;
  }
  absl::StatusOr<uint64_t> BellMeasure(const transport::QubitRef& a,
                                       const transport::QubitRef& b) override {
    measured.emplace_back(a.connection, a.id);
    measured.emplace_back(b.connection, b.id);
    return next_id++;
  }

  // The listener of the socket behind a qubit (local qubits: the first socket).
  transport::SocketListener* Listener(const transport::QubitRef& q) {
    auto it = connection_socket.find(q.connection);
    const transport::SocketId s =
        it != connection_socket.end() ? it->second : sockets.begin()->first;
    return sockets.at(s).listener;
  }

  struct GateCall {
    uint64_t connection, id;
    physical::v1::GateKind kind;
    double angle;
  };
  uint64_t next_id = 1;
  std::map<transport::SocketId, Bound> sockets;
  std::map<transport::ConnectionId, transport::SocketId> connection_socket;
  std::vector<transport::SocketId> unbound;
  std::vector<ConnectCall> connects;
  std::vector<transport::ConnectionId> closed;
  std::vector<std::pair<transport::ConnectionId, std::string>> sent;
  std::vector<std::pair<uint64_t, uint64_t>> released;
  std::vector<std::pair<uint64_t, uint64_t>> measured;
  std::vector<GateCall> gates;
  absl::Status gate_status;
  std::optional<uint32_t> measure_inline_result;
};

}  // namespace qnet::qnode::testing

#endif  // QNET_EMULATOR_QNODE_TESTING_FAKE_TRANSPORT_H_
