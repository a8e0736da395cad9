#include "apps/lib/socket_app_client.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace qnet::apps {

SocketAppClient::SocketAppClient(EventRuntime* runtime, std::string path,
                                 absl::Duration dial_timeout)
    : runtime_(runtime) {
  std::string address = absl::StartsWith(path, "unix:") ? path : absl::StrCat("unix:", path);
  dialer_ = Dialer::Dial(runtime_, address, dial_timeout,
                         [this](absl::StatusOr<std::unique_ptr<FramedStream>> stream) {
                           OnDialed(std::move(stream));
                         });
}

SocketAppClient::~SocketAppClient() {
  if (stream_) stream_->Close();
}

uint64_t SocketAppClient::Send(app::v1::AppRequest request) {
  request.set_version(1);
  if (request.request_id() == 0) request.set_request_id(next_request_++);
  const uint64_t id = request.request_id();
  if (gone_) return id;  // APP-C4: dropped
  if (!connected()) {
    queued_.push_back(std::move(request));
    return id;
  }
  if (absl::Status s = stream_->Send(request); !s.ok()) {
    // Report from the loop, not from inside Send (APP-C2).
    runtime_->Post([this, s] { Disconnect(s); });
  }
  return id;
}

void SocketAppClient::OnDialed(absl::StatusOr<std::unique_ptr<FramedStream>> stream) {
  if (!stream.ok()) {
    Disconnect(absl::UnavailableError(
        absl::StrCat("cannot reach the app socket: ", stream.status().message())));
    return;
  }
  stream_ = std::move(*stream);
  stream_->Start(FramedStream::Callbacks{
      .on_frame = [this](std::string payload) { OnFrame(payload); },
      .on_oversized = [this](uint64_t) { ++malformed_events_; },
      .on_closed =
          [this](absl::Status why) {
            Disconnect(why.ok() ? absl::UnavailableError("the node closed the app socket") : why);
          },
  });
  std::vector<app::v1::AppRequest> queued;
  queued.swap(queued_);
  for (auto& request : queued) {
    if (absl::Status s = stream_->Send(request); !s.ok()) return Disconnect(s);
  }
}

void SocketAppClient::OnFrame(const std::string& payload) {
  app::v1::AppEvent event;
  if (!event.ParseFromString(payload)) {
    ++malformed_events_;
    return;
  }
  if (handlers_.on_event) handlers_.on_event(event);
}

void SocketAppClient::CloseWhenFlushed(std::function<void()> on_done) {
  gone_ = true;  // later requests are dropped, on_disconnected is not called
  if (stream_ != nullptr && stream_->open()) {
    stream_->CloseWhenFlushed(std::move(on_done));
  } else if (on_done) {
    on_done();
  }
}

void SocketAppClient::Disconnect(absl::Status why) {
  if (gone_) return;
  gone_ = true;
  queued_.clear();
  if (stream_) stream_->Close();
  if (handlers_.on_disconnected) handlers_.on_disconnected(std::move(why));
}

}  // namespace qnet::apps
