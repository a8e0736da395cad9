// AppClient: the app-side view of a node's transport service
// (transport/transport.h), in the messages of specs/proto/qnet/app/v1/app.proto
// (specs/app-api.md). Apps (apps/teleport, apps/chsh) are written against this
// interface only, so the same app class runs
//   - in its own process, talking to qnode's app server over a Unix socket
//     (SocketAppClient, apps/lib/socket_app_client.h), and
//   - inside the simulator (the sim backend's in-process implementation, which
//     drives an AppSession-like adapter over the node's TransportService).
//
// Contract for implementations (APP-C1 .. APP-C6 in specs/app-api.md):
//   APP-C1 Send() stamps `version` (1) and, when `request_id` is 0, a fresh
//          non-zero request id (increasing from 1), and returns the id used.
//   APP-C2 Every event, including the Reply to a request, is delivered to the
//          handler later, never from within Send() or SetHandlers(): an app may
//          send requests from inside its event handler and after Send()
//          returns its own bookkeeping is in place before any answer arrives.
//   APP-C3 Events are delivered in the order the node produced them; each
//          request gets exactly one Reply, and a Measure/BellMeasure's
//          Measured/BellMeasured event (same request_id) comes after its Reply.
//   APP-C4 on_disconnected is called at most once, when the client can no
//          longer reach the node (socket closed, dial failed); no events
//          follow it and later Send() calls are dropped. In-process clients
//          never call it.
//   APP-C5 A handler may call Send() and SetHandlers() (effective from the
//          next event) but must not destroy the client; stop the runtime and
//          destroy it afterwards.
//   APP-C6 The client is single-threaded: all calls and callbacks happen on
//          the thread of the runtime that drives it.
#ifndef QNET_APPS_LIB_APP_CLIENT_H_
#define QNET_APPS_LIB_APP_CLIENT_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "qnet/app/v1/app.pb.h"

namespace qnet::apps {

class AppClient {
 public:
  struct Handlers {
    // Every AppEvent from the node (replies and unsolicited events).
    std::function<void(const app::v1::AppEvent& event)> on_event = nullptr;
    // The node is gone (APP-C4). OK status never happens; the status says why.
    std::function<void(absl::Status why)> on_disconnected = nullptr;
  };

  virtual ~AppClient() = default;

  // Installs the handlers (replacing earlier ones). Call before the first Send.
  virtual void SetHandlers(Handlers handlers) = 0;

  // Sends one request (APP-C1, APP-C2); returns its request id.
  virtual uint64_t Send(app::v1::AppRequest request) = 0;
};

// Converts a Reply's code and message into a Status (OK for code 0).
inline absl::Status ReplyStatus(const app::v1::Reply& reply) {
  return absl::Status(static_cast<absl::StatusCode>(reply.code()), reply.message());
}

}  // namespace qnet::apps

#endif  // QNET_APPS_LIB_APP_CLIENT_H_
