// The QKD conformance suite's fake network (interop-tests/README.md, "QKD"):
// two fake nodes, each serving the app API (specs/app-api.md APP-1..APP-17,
// specs/proto/qnet/app/v1/app.proto) on a Unix socket, with one transport
// connection between them. Each node's app is either a process under test
// (qnet-qkd dialling the node's socket) or a ScriptedApp in this process (the
// reference peer, qkd_peer.h). Nothing of the qnet stack is linked: requests
// and events are the app protos, framed by interop-tests/harness.h's Channel.
//
// What the fake nodes do, like a qnode's transport would:
//   Bind{port}      -> Reply{socket}
//   Connect{...}    -> Reply{connection}; once the other end is bound at the
//                      remote port (a ScriptedApp is always bound) Connected to
//                      both ends (initiator: the Connect's request_id; the
//                      other: 0), then every scripted pair to each end (Pair,
//                      measured, basis and raw result, pair ids 1..N, time_ns
//                      = id * pair_interval_ns), followed by PairExpired at
//                      an end that does not hold it.
//   Send{data}      -> Reply OK; Data at the other end (relayed, in order).
//   Close           -> Reply OK; Closed{LOCAL} here, Closed{PEER} there.
//   (app socket closed while connected) -> Closed{PEER} there (APP-13).
//   anything else   -> Reply UNIMPLEMENTED.
// With `close_after_pairs` the connection closes with DONE at both ends after
// the last pair, as a pairs-N transport connection does (TRN-D3).
//
// The network is driven from the test's thread: Pump() handles what arrived.
#ifndef QNET_INTEROP_TESTS_QKD_FAKE_NODE_H_
#define QNET_INTEROP_TESTS_QKD_FAKE_NODE_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "interop-tests/harness.h"
#include "qnet/app/v1/app.pb.h"

namespace qnet::interop::qkd {

// One pair as both ends see it (index 0: node a, the initiator's end; 1: b).
struct ScriptedPair {
  uint64_t id = 0;
  bool held[2] = {true, true};
  bool basis_x[2] = {false, false};  // measured in X (else Z)
  uint8_t result[2] = {0, 0};
};

// N pairs as a measure-directly XZ connection with basis bias `z_probability`
// (TRN-M2a) over a binary symmetric channel: equal bases give equal bits
// except with probability qber_z (both Z) or qber_x (both X); `lost_fraction`
// of ids are held at one end only (expired at the other). Seeded.
std::vector<ScriptedPair> MakePairs(uint64_t n, double z_probability, double qber_z, double qber_x,
                                    uint64_t seed, double lost_fraction = 0.0);

// The reference peer, as seen by the network.
class ScriptedApp {
 public:
  virtual ~ScriptedApp() = default;
  // The connection is up (after the pairs were handed to the other end).
  // Returns the Send payloads to deliver to the other end.
  virtual std::vector<std::string> OnConnected() = 0;
  virtual std::vector<std::string> OnData(const std::string& data) = 0;
  virtual void OnClosed() = 0;
  // Polled after every input: the peer closes the connection.
  virtual bool WantsClose() const = 0;
};

struct FakeNetworkOptions {
  std::string dir;  // holds the sockets a.sock, b.sock
  std::string node[2] = {"alice", "bob"};
  std::vector<ScriptedPair> pairs;
  uint64_t pair_interval_ns = 1000;
  double estimated_fidelity = 0.95;
  bool close_after_pairs = false;
};

class FakeNetwork {
 public:
  explicit FakeNetwork(FakeNetworkOptions options);
  ~FakeNetwork();

  // Listens on both nodes' sockets. False (with a reason) on failure.
  bool Listen(std::string* why);
  std::string SocketPath(int end) const;
  // The scripted app at `end` (not owned); it is bound at any port.
  void SetScripted(int end, ScriptedApp* app) { scripted_[end] = app; }
  // The scripted app at `end` connects to port `port` of the other end with
  // `qos` (the connection comes up once that end is bound).
  void ScriptedConnect(int end, uint32_t port, const app::v1::Qos& qos);
  // Waits for the process at `end` to dial its node's socket.
  bool Accept(int end, Ms timeout);

  // Handles inputs until `done()` returns true or `timeout` passes. Returns
  // done()'s last value.
  bool RunUntil(const std::function<bool()>& done, Ms timeout);

  // Observations.
  const std::vector<app::v1::AppRequest>& requests(int end) const { return requests_[end]; }
  std::optional<app::v1::Connect> connect_request() const { return connect_; }
  bool connected() const { return connected_; }
  bool closed() const { return closed_; }
  // Payloads of the Sends of `end`, in order.
  const std::vector<std::string>& sent(int end) const { return sent_[end]; }
  // True if the connection closed because the app at `end` went away
  // without closing it (APP-13).
  bool app_left(int end) const { return app_left_[end]; }
  // True once the process at `end` closed its app socket.
  bool app_gone(int end);
  // A request the fake node could not handle (not expected of a good app).
  const std::vector<std::string>& problems() const { return problems_; }

  // Closes the connection from the network's side (Closed{reason} to both).
  void CloseConnection(app::v1::CloseReason reason);

 private:
  void Handle(int end, const app::v1::AppRequest& request);
  void Reply(int end, uint64_t request_id, int code, const std::string& message = "",
             uint64_t socket = 0, uint64_t connection = 0);
  void Emit(int end, app::v1::AppEvent event);
  void Establish();
  void Deliver(int to, const std::string& data);
  void DeliverFromScripted(int from, std::vector<std::string> payloads);
  void Closed(int end, app::v1::CloseReason reason);
  void FlushPending();

  FakeNetworkOptions options_;
  int listen_fd_[2] = {-1, -1};
  std::unique_ptr<Channel> chan_[2];
  ScriptedApp* scripted_[2] = {nullptr, nullptr};
  uint32_t bound_port_[2] = {0, 0};
  uint64_t socket_[2] = {0, 0};
  uint64_t connection_[2] = {0, 0};
  std::optional<app::v1::Connect> connect_;
  int initiator_ = -1;
  uint64_t connect_request_id_ = 0;
  bool connected_ = false, closed_ = false;
  bool end_closed_[2] = {false, false};
  bool app_left_[2] = {false, false};
  std::vector<app::v1::AppRequest> requests_[2];
  std::vector<std::string> sent_[2];
  std::vector<std::string> problems_;
  std::deque<std::pair<int, std::string>> pending_;  // payloads for scripted apps
};

}  // namespace qnet::interop::qkd

#endif  // QNET_INTEROP_TESTS_QKD_FAKE_NODE_H_
