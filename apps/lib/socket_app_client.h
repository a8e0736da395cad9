// SocketAppClient: AppClient over a Unix stream socket to qnode's app server
// (emulator/qnode/app_server.h), with the framing of stack/frame_codec.h
// (specs/app-api.md APP-1). Runs on the libevent runtime of the app process.
//
// Requests sent before the connection is up are queued and go out, in order,
// once it is. Events are delivered from the runtime's read callbacks, never
// from inside Send (APP-C2). If the dial fails within `dial_timeout`, or the
// node closes the socket, on_disconnected runs once (APP-C4) and later
// requests are dropped.
#ifndef QNET_APPS_LIB_SOCKET_APP_CLIENT_H_
#define QNET_APPS_LIB_SOCKET_APP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "apps/lib/app_client.h"
#include "stack/event_runtime.h"
#include "stack/stream.h"

namespace qnet::apps {

class SocketAppClient : public AppClient {
 public:
  // `path`: a Unix socket path ("unix:" prefix optional). Dials at once.
  SocketAppClient(EventRuntime* runtime, std::string path,
                  absl::Duration dial_timeout = absl::Seconds(5));
  ~SocketAppClient() override;

  void SetHandlers(Handlers handlers) override { handlers_ = std::move(handlers); }
  uint64_t Send(app::v1::AppRequest request) override;
  // Writes every request already sent, then closes the socket and runs
  // `on_done` (at once if not connected): a program that is done calls this
  // before it stops its loop, so that its last requests (an Abort's Send, a
  // Close) are not lost. Later requests are dropped.
  void CloseWhenFlushed(std::function<void()> on_done);

  bool connected() const { return stream_ != nullptr && stream_->open(); }
  // Event frames from the node that did not parse (ignored).
  uint64_t malformed_events() const { return malformed_events_; }

 private:
  void OnDialed(absl::StatusOr<std::unique_ptr<FramedStream>> stream);
  void OnFrame(const std::string& payload);
  void Disconnect(absl::Status why);

  EventRuntime* runtime_;
  Handlers handlers_;
  std::unique_ptr<Dialer> dialer_;
  std::unique_ptr<FramedStream> stream_;
  std::vector<app::v1::AppRequest> queued_;
  uint64_t next_request_ = 1;
  uint64_t malformed_events_ = 0;
  bool gone_ = false;
};

}  // namespace qnet::apps

#endif  // QNET_APPS_LIB_SOCKET_APP_CLIENT_H_
