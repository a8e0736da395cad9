// AppSession: the sans-I/O core of the app API (specs/app-api.md). One session
// per app connection: it validates each AppRequest, turns it into a call on the
// node's TransportService (transport/transport.h), answers with exactly one
// Reply, and turns the transport's SocketListener callbacks for the session's
// sockets into AppEvents. No sockets, clocks or threads: events leave through
// the `emit` callback given at construction. The qnode app server
// (app_server.h) puts one on each Unix-socket connection; the sim backend can
// put one behind an in-process AppClient (deliver `emit`ted events on a later
// runtime turn, APP-C2).
//
// Ownership and isolation (APP-10..APP-13): a session only acts on sockets it
// bound, connections of those sockets and qubits delivered to or allocated by
// them; any other id is NOT_FOUND, whoever owns it. Shutdown() (or the
// destructor) releases the qubits the session still owns and unbinds its
// sockets; nothing is emitted after it.
//
// Re-entrancy: listener callbacks that the transport makes while the session
// is inside one of its calls are held back and emitted after the request's
// Reply (APP-4, APP-C3).
#ifndef QNET_EMULATOR_QNODE_APP_SESSION_H_
#define QNET_EMULATOR_QNODE_APP_SESSION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "qnet/app/v1/app.pb.h"
#include "stack/trace.h"
#include "transport/transport.h"

namespace qnet::qnode {

class AppSession {
 public:
  using Emit = std::function<void(app::v1::AppEvent event)>;

  struct Stats {
    uint64_t requests = 0;          // frames handled
    uint64_t ok = 0;                // OK replies
    uint64_t rejected = 0;          // refused by validation (APP-5..APP-13), counted drops
    uint64_t transport_errors = 0;  // the transport refused a valid request
    uint64_t events = 0;            // events emitted (replies included)
  };

  // `transport`, `tracer` must outlive the session.
  AppSession(transport::TransportService* transport, Tracer* tracer, Emit emit);
  ~AppSession();
  AppSession(const AppSession&) = delete;
  AppSession& operator=(const AppSession&) = delete;

  // One frame's payload: parsed as an AppRequest (unparseable -> error Reply
  // with request_id 0, APP-5) and handled.
  void HandleFrame(std::string_view payload);
  void Handle(const app::v1::AppRequest& request);
  // An oversized frame was skipped by the framing (APP-6): error Reply.
  void HandleOversized(uint64_t declared_size);

  // Releases owned qubits, unbinds the sockets (APP-13). Idempotent.
  void Shutdown();

  const Stats& stats() const { return stats_; }
  size_t sockets() const { return sockets_.size(); }
  size_t connections() const { return connections_.size(); }
  size_t owned_qubits() const { return qubits_.size(); }

 private:
  class Listener;
  using QubitKey = std::pair<uint64_t, uint64_t>;  // (connection, id)

  app::v1::Reply Dispatch(const app::v1::AppRequest& request);
  absl::Status Validate(const app::v1::AppRequest& request) const;
  absl::Status CheckSocket(uint64_t socket) const;
  absl::Status CheckConnection(uint64_t connection) const;
  absl::Status CheckQubit(const app::v1::QubitRef& qubit) const;

  // Listener callbacks (from the transport).
  void OnConnected(transport::SocketId socket, const transport::ConnectionInfo& info);
  void OnClosed(transport::ConnectionId connection, transport::CloseReason reason,
                const std::string& detail);
  void OnPair(transport::SocketId socket, const transport::Pair& pair);
  void OnPairExpired(transport::ConnectionId connection, uint64_t pair_id,
                     const std::string& detail);
  void OnData(transport::ConnectionId connection, const std::string& bytes);
  void OnMeasured(uint64_t measurement, uint32_t result);
  void OnBellMeasured(uint64_t measurement, physical::v1::BellState outcome);

  // Runs `fn` now, or after the current request's Reply when inside a call.
  void Later(std::function<void()> fn);
  void Send(uint64_t request_id, app::v1::AppEvent event);
  void Reject(uint64_t request_id, const absl::Status& why, results::v1::DropReason reason);

  transport::TransportService* transport_;
  Tracer* tracer_;
  Emit emit_;
  bool shut_down_ = false;
  int depth_ = 0;
  std::vector<std::function<void()>> deferred_;
  std::map<transport::SocketId, std::unique_ptr<Listener>> sockets_;
  std::vector<std::unique_ptr<Listener>> retired_;  // unbound sockets' listeners
  std::map<transport::ConnectionId, transport::SocketId> connections_;
  std::map<transport::ConnectionId, uint64_t> connect_requests_;  // awaiting Connected
  std::map<QubitKey, transport::SocketId> qubits_;
  std::map<uint64_t, uint64_t> measurements_;  // transport measurement id -> request id
  Stats stats_;
};

}  // namespace qnet::qnode

#endif  // QNET_EMULATOR_QNODE_APP_SESSION_H_
