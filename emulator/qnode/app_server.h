// AppServer: qnode's app API endpoint (specs/app-api.md). Listens on a Unix
// stream socket and gives every app connection its own AppSession
// (app_session.h) over the node's TransportService: frames in are
// AppRequests, frames out AppEvents (stack/frame_codec.h, APP-1). An oversized
// request frame gets an error Reply and the stream goes on (APP-6); a broken
// length prefix or a closed socket ends the session, which releases its
// qubits and unbinds its sockets (APP-13).
#ifndef QNET_EMULATOR_QNODE_APP_SERVER_H_
#define QNET_EMULATOR_QNODE_APP_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "emulator/qnode/app_session.h"
#include "stack/event_runtime.h"
#include "stack/stream.h"
#include "stack/trace.h"
#include "transport/transport.h"

namespace qnet::qnode {

class AppServer {
 public:
  // `path`: the socket file ("unix:" prefix optional). `runtime`, `transport`
  // and `tracer` must outlive the server.
  static absl::StatusOr<std::unique_ptr<AppServer>> Start(EventRuntime* runtime,
                                                          std::string_view path,
                                                          transport::TransportService* transport,
                                                          Tracer* tracer);
  ~AppServer();
  AppServer(const AppServer&) = delete;
  AppServer& operator=(const AppServer&) = delete;

  const std::string& address() const { return listener_->address(); }
  size_t sessions() const { return sessions_.size(); }
  uint64_t sessions_accepted() const { return accepted_; }
  // Totals over all sessions, ended ones included.
  AppSession::Stats totals() const;

 private:
  struct Session {
    std::unique_ptr<FramedStream> stream;
    std::unique_ptr<AppSession> core;
  };
  AppServer(EventRuntime* runtime, transport::TransportService* transport, Tracer* tracer)
      : runtime_(runtime), transport_(transport), tracer_(tracer) {}
  void Accept(std::unique_ptr<FramedStream> stream);
  void End(uint64_t id);

  EventRuntime* runtime_;
  transport::TransportService* transport_;
  Tracer* tracer_;
  std::unique_ptr<StreamListener> listener_;
  std::map<uint64_t, Session> sessions_;
  uint64_t accepted_ = 0;
  AppSession::Stats ended_;
};

}  // namespace qnet::qnode

#endif  // QNET_EMULATOR_QNODE_APP_SERVER_H_
