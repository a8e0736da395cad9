#include "emulator/qnode/app_server.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace qnet::qnode {
namespace {

void Add(const AppSession::Stats& s, AppSession::Stats* total) {
  total->requests += s.requests;
  total->ok += s.ok;
  total->rejected += s.rejected;
  total->transport_errors += s.transport_errors;
  total->events += s.events;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AppServer>> AppServer::Start(EventRuntime* runtime,
                                                            std::string_view path,
                                                            transport::TransportService* transport,
                                                            Tracer* tracer) {
  std::unique_ptr<AppServer> server(new AppServer(runtime, transport, tracer));
  const std::string address =
      path.starts_with("unix:") ? std::string(path) : "unix:" + std::string(path);
  AppServer* raw = server.get();
  auto listener = StreamListener::Listen(
      runtime, address, [raw](std::unique_ptr<FramedStream> s) { raw->Accept(std::move(s)); });
  if (!listener.ok()) return listener.status();
  server->listener_ = std::move(*listener);
  return server;
}

AppServer::~AppServer() {
  // Sessions release what they hold in the transport before the streams go.
  for (auto& [id, session] : sessions_) session.core->Shutdown();
  sessions_.clear();
}

AppSession::Stats AppServer::totals() const {
  AppSession::Stats total = ended_;
  for (const auto& [id, session] : sessions_) Add(session.core->stats(), &total);
  return total;
}

void AppServer::Accept(std::unique_ptr<FramedStream> stream) {
  const uint64_t id = ++accepted_;
  Session& session = sessions_[id];
  session.stream = std::move(stream);
  FramedStream* raw = session.stream.get();
  session.core = std::make_unique<AppSession>(transport_, tracer_, [raw](app::v1::AppEvent e) {
    // A full or closed stream ends the session through on_closed.
    (void)raw->Send(e);
  });
  AppSession* core = session.core.get();
  raw->Start(FramedStream::Callbacks{
      .on_frame = [core](std::string payload) { core->HandleFrame(payload); },
      .on_oversized = [core](uint64_t size) { core->HandleOversized(size); },
      .on_closed = [this, id](absl::Status) { End(id); },
  });
}

void AppServer::End(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  it->second.core->Shutdown();
  Add(it->second.core->stats(), &ended_);
  // Destroyed on the next loop turn: we may be inside the stream's callback.
  auto session = std::make_shared<Session>(std::move(it->second));
  sessions_.erase(it);
  runtime_->Post([session] {});
}

}  // namespace qnet::qnode
