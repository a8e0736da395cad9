#include "stack/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace qnet {
namespace {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

absl::StatusOr<SockAddr> Resolve(const StreamAddress& address) {
  SockAddr out;
  if (address.kind == StreamAddress::Kind::kUnix) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (address.path.size() >= sizeof(un.sun_path)) {
      return absl::InvalidArgumentError(absl::StrCat("unix socket path too long (",
                                                     address.path.size(), " bytes, at most ",
                                                     sizeof(un.sun_path) - 1, "): ", address.path));
    }
    std::memcpy(un.sun_path, address.path.data(), address.path.size());
    std::memcpy(&out.storage, &un, sizeof(un));
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.path.size() + 1);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(address.port);
  const int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve '", address.host, "': ", gai_strerror(rc)));
  }
  std::memcpy(&out.storage, result->ai_addr, result->ai_addrlen);
  out.len = result->ai_addrlen;
  freeaddrinfo(result);
  return out;
}

std::string FormatSockAddr(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return absl::StrCat("tcp:", text, ":", ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return absl::StrCat("tcp:[", text, "]:", ntohs(in6->sin6_port));
  }
  return "unix";
}

std::string SocketError() { return evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()); }

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails harmlessly on Unix sockets
}

}  // namespace

// ---------------------------------------------------------------- addresses

std::string StreamAddress::ToString() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  if (host.find(':') != std::string::npos) return absl::StrCat("tcp:[", host, "]:", port);
  return absl::StrCat("tcp:", host, ":", port);
}

absl::StatusOr<StreamAddress> ParseStreamAddress(std::string_view address_view) {
  // absl::string_view is not std::string_view in this Abseil build.
  const std::string address(address_view);
  StreamAddress out;
  if (address.substr(0, 5) == "unix:") {
    out.kind = StreamAddress::Kind::kUnix;
    out.path = address.substr(5);
    if (out.path.empty()) return absl::InvalidArgumentError("address 'unix:' names no socket path");
    return out;
  }
  std::string_view rest =
      address_view.substr(0, 4) == "tcp:" ? address_view.substr(4) : address_view;
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address '", address, "': expected [HOST]:PORT"));
    }
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address '", address, "': expected tcp:HOST:PORT, HOST:PORT or unix:/path"));
    }
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  uint32_t port_number = 0;
  if (host.empty() || !absl::SimpleAtoi(std::string(port), &port_number) || port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", address, "': expected HOST:PORT with a port 0..65535"));
  }
  out.host = std::string(host);
  out.port = static_cast<uint16_t>(port_number);
  return out;
}

// ---------------------------------------------------------------- FramedStream

FramedStream::FramedStream(EventRuntime* runtime, std::string peer, Options options)
    : runtime_(runtime),
      peer_(std::move(peer)),
      options_(options),
      decoder_(options.max_frame_bytes) {}

FramedStream::~FramedStream() {
  *alive_ = false;
  StopReading();
  if (read_event_ != nullptr) event_free(read_event_);
  if (bev_ != nullptr) bufferevent_free(bev_);
  if (flush_event_ != nullptr) event_free(flush_event_);
}

void FramedStream::StopReading() {
  if (read_event_ != nullptr) event_del(read_event_);
}

std::unique_ptr<FramedStream> FramedStream::Adopt(EventRuntime* runtime, int fd, std::string peer,
                                                  Options options) {
  evutil_make_socket_nonblocking(fd);
  evutil_make_socket_closeonexec(fd);
  SetNoDelay(fd);
  bufferevent* bev = bufferevent_socket_new(runtime->base(), fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    close(fd);
    return nullptr;
  }
  return Wrap(runtime, bev, std::move(peer), options);
}

std::unique_ptr<FramedStream> FramedStream::Wrap(EventRuntime* runtime, bufferevent* bev,
                                                 std::string peer, Options options) {
  std::unique_ptr<FramedStream> stream(new FramedStream(runtime, std::move(peer), options));
  stream->bev_ = bev;
  stream->flush_event_ = event_new(runtime->base(), -1, 0, &FramedStream::FlushCb, stream.get());
  // Reads bypass the bufferevent (one recv per wake-up instead of an ioctl
  // and a readv); it only writes what the socket did not take at once.
  stream->read_event_ = event_new(runtime->base(), bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                                  &FramedStream::ReadableCb, stream.get());
  // Nothing is read until Start(); output may be queued already.
  bufferevent_setcb(bev, nullptr, &FramedStream::WriteCb, &FramedStream::EventCb, stream.get());
  bufferevent_disable(bev, EV_READ);
  bufferevent_enable(bev, EV_WRITE);
  return stream;
}

void FramedStream::Start(Callbacks callbacks) {
  callbacks_ = std::move(callbacks);
  started_ = true;
  if (bev_ == nullptr && unreported_close_.has_value()) {
    absl::Status why = std::move(*unreported_close_);
    unreported_close_.reset();
    std::weak_ptr<bool> alive = alive_;
    runtime_->Post([this, alive, why = std::move(why)]() mutable {
      if (!alive.expired()) Finish(std::move(why));
    });
    return;
  }
  if (bev_ == nullptr || closing_) return;
  bufferevent_setcb(bev_, nullptr, &FramedStream::WriteCb, &FramedStream::EventCb, this);
  bufferevent_enable(bev_, EV_WRITE);
  // Bytes that arrived before Start wait in the socket.
  if (read_event_ != nullptr) event_add(read_event_, nullptr);
}

size_t FramedStream::output_bytes() const {
  return bev_ == nullptr ? 0
                         : evbuffer_get_length(bufferevent_get_output(bev_)) + pending_out_.size();
}

absl::Status FramedStream::Send(const google::protobuf::MessageLite& message) {
  return SendBytes(EncodeFrame(message));
}

absl::Status FramedStream::SendBytes(std::string_view bytes) {
  if (bev_ == nullptr || closing_) {
    return absl::FailedPreconditionError(absl::StrCat("stream to ", peer_, " is closed"));
  }
  if (output_bytes() + bytes.size() > options_.max_output_bytes) {
    const absl::Status why = absl::ResourceExhaustedError(absl::StrCat(
        "more than ", options_.max_output_bytes, " bytes unsent to ", peer_, ": closing"));
    FailSoon(why);
    return why;
  }
  if (pending_out_.empty() && flush_event_ != nullptr) event_active(flush_event_, EV_TIMEOUT, 0);
  pending_out_.append(bytes.data(), bytes.size());
  return absl::OkStatus();
}

void FramedStream::FlushCb(int, short, void* arg) { static_cast<FramedStream*>(arg)->Flush(); }

void FramedStream::Flush() {
  if (bev_ == nullptr || pending_out_.empty()) return;
  size_t done = 0;
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    // Nothing queued before: straight to the socket, no write event needed
    // unless the socket does not take it all.
    const ssize_t n = ::send(bufferevent_getfd(bev_), pending_out_.data(), pending_out_.size(),
                             MSG_NOSIGNAL);
    if (n > 0) {
      done = static_cast<size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      pending_out_.clear();
      FailSoon(absl::UnavailableError(absl::StrCat("stream to ", peer_, ": ", SocketError())));
      return;
    }
  }
  if (done < pending_out_.size() &&
      bufferevent_write(bev_, pending_out_.data() + done, pending_out_.size() - done) != 0) {
    pending_out_.clear();
    FailSoon(absl::InternalError(absl::StrCat("cannot queue output to ", peer_)));
    return;
  }
  pending_out_.clear();
}

void FramedStream::Close() {
  StopReading();
  if (bev_ != nullptr) bufferevent_free(bev_);
  bev_ = nullptr;
  pending_out_.clear();
  closing_ = false;
  on_flushed_ = nullptr;
}

void FramedStream::CloseWhenFlushed(std::function<void()> on_done) {
  on_flushed_ = std::move(on_done);
  if (bev_ == nullptr) {
    if (on_flushed_) runtime_->Post(std::move(on_flushed_));
    on_flushed_ = nullptr;
    return;
  }
  closing_ = true;
  StopReading();
  Flush();
  if (bev_ != nullptr && output_bytes() == 0) {
    std::weak_ptr<bool> alive = alive_;
    runtime_->Post([this, alive] {
      if (alive.expired()) return;
      OnWritten();
    });
  }
}

void FramedStream::ReadableCb(int, short, void* arg) {
  static_cast<FramedStream*>(arg)->OnRead();
}
void FramedStream::WriteCb(bufferevent*, void* arg) {
  static_cast<FramedStream*>(arg)->OnWritten();
}
void FramedStream::EventCb(bufferevent*, short what, void* arg) {
  static_cast<FramedStream*>(arg)->OnEvent(what);
}

void FramedStream::OnRead() {
  if (bev_ == nullptr || closing_) return;
  char buffer[64 << 10];
  bool eof = false;
  for (;;) {
    const ssize_t n = ::recv(bufferevent_getfd(bev_), buffer, sizeof buffer, 0);
    if (n > 0) {
      decoder_.Append(std::string_view(buffer, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) < sizeof buffer) break;
      continue;  // there may be more
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Finish(absl::UnavailableError(absl::StrCat("stream to ", peer_, ": ", SocketError())));
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  while (bev_ != nullptr && !closing_) {
    absl::StatusOr<std::optional<FrameDecoder::Frame>> next = decoder_.Next();
    if (!next.ok()) {
      Finish(absl::DataLossError(absl::StrCat("from ", peer_, ": ", next.status().message())));
      return;
    }
    if (!next->has_value()) break;
    FrameDecoder::Frame& frame = **next;
    if (frame.oversized) {
      ++oversized_frames_;
      if (callbacks_.on_oversized) callbacks_.on_oversized(frame.declared_size);
    } else {
      ++frames_received_;
      if (callbacks_.on_frame) callbacks_.on_frame(std::move(frame.payload));
    }
    if (alive.expired()) return;
  }
  if (eof && bev_ != nullptr && !closing_) OnEvent(BEV_EVENT_EOF);
}

void FramedStream::OnWritten() {
  if (!closing_ || bev_ == nullptr || output_bytes() > 0) return;
  bufferevent_free(bev_);
  bev_ = nullptr;
  closing_ = false;
  if (on_flushed_) {
    std::function<void()> done = std::move(on_flushed_);
    on_flushed_ = nullptr;
    done();
  }
}

void FramedStream::OnEvent(short what) {
  if (closing_) {
    // The peer went away while we were flushing: nothing more can be written.
    bufferevent_free(bev_);
    bev_ = nullptr;
    closing_ = false;
    if (on_flushed_) {
      std::function<void()> done = std::move(on_flushed_);
      on_flushed_ = nullptr;
      done();
    }
    return;
  }
  if (what & BEV_EVENT_EOF) {
    if (decoder_.buffered_bytes() > 0) {
      Finish(
          absl::DataLossError(absl::StrCat(peer_, " closed the stream in the middle of a frame (",
                                           decoder_.buffered_bytes(), " bytes)")));
    } else {
      Finish(absl::OkStatus());
    }
  } else if (what & BEV_EVENT_ERROR) {
    Finish(absl::UnavailableError(absl::StrCat("stream to ", peer_, ": ", SocketError())));
  }
}

void FramedStream::Finish(absl::Status why) {
  StopReading();
  if (bev_ != nullptr) bufferevent_free(bev_);
  bev_ = nullptr;
  pending_out_.clear();
  if (callbacks_.on_closed) {
    std::function<void(absl::Status)> on_closed = std::move(callbacks_.on_closed);
    callbacks_.on_closed = nullptr;
    on_closed(std::move(why));
  } else if (!started_) {
    unreported_close_ = std::move(why);
  }
}

void FramedStream::FailSoon(absl::Status why) {
  StopReading();
  if (bev_ != nullptr) bufferevent_free(bev_);
  bev_ = nullptr;
  pending_out_.clear();
  std::weak_ptr<bool> alive = alive_;
  runtime_->Post([this, alive, why = std::move(why)]() mutable {
    if (alive.expired()) return;
    Finish(std::move(why));
  });
}

// ---------------------------------------------------------------- StreamListener

absl::StatusOr<std::unique_ptr<StreamListener>> StreamListener::Listen(
    EventRuntime* runtime, std::string_view address, OnAccept on_accept,
    FramedStream::Options options) {
  absl::StatusOr<StreamAddress> parsed = ParseStreamAddress(address);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<SockAddr> sa = Resolve(*parsed);
  if (!sa.ok()) return sa.status();
  std::unique_ptr<StreamListener> listener(new StreamListener());
  listener->runtime_ = runtime;
  listener->on_accept_ = std::move(on_accept);
  listener->options_ = options;
  unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
  if (parsed->kind == StreamAddress::Kind::kUnix) {
    const std::string& path = parsed->path;
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a socket"));
      }
      const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const bool live = probe >= 0 && connect(probe, sa->get(), sa->len) == 0;
      if (probe >= 0) close(probe);
      if (live)
        return absl::FailedPreconditionError(absl::StrCat(path, " is in use by another process"));
      if (unlink(path.c_str()) != 0) {
        return absl::PermissionDeniedError(
            absl::StrCat("cannot remove stale socket ", path, ": ", strerror(errno)));
      }
    }
  } else {
    flags |= LEV_OPT_REUSEABLE;
  }
  listener->listener_ =
      evconnlistener_new_bind(runtime->base(), &StreamListener::AcceptCb, listener.get(), flags,
                              128, sa->get(), static_cast<int>(sa->len));
  if (listener->listener_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", parsed->ToString(), ": ", strerror(errno)));
  }
  if (parsed->kind == StreamAddress::Kind::kUnix) {
    listener->unix_path_ = parsed->path;
    listener->bound_ = parsed->ToString();
  } else {
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    getsockname(evconnlistener_get_fd(listener->listener_), reinterpret_cast<sockaddr*>(&bound),
                &len);
    listener->bound_ = FormatSockAddr(reinterpret_cast<sockaddr*>(&bound));
  }
  return listener;
}

StreamListener::~StreamListener() {
  if (listener_ != nullptr) evconnlistener_free(listener_);
  if (!unix_path_.empty()) unlink(unix_path_.c_str());
}

void StreamListener::AcceptCb(evconnlistener*, int fd, sockaddr* addr, int, void* arg) {
  auto* self = static_cast<StreamListener*>(arg);
  std::string peer = addr != nullptr && addr->sa_family != AF_UNIX
                         ? FormatSockAddr(addr)
                         : absl::StrCat("unix:", self->unix_path_);
  std::unique_ptr<FramedStream> stream =
      FramedStream::Adopt(self->runtime_, fd, std::move(peer), self->options_);
  if (stream != nullptr) self->on_accept_(std::move(stream));
}

// ---------------------------------------------------------------- Dialer

std::unique_ptr<Dialer> Dialer::Dial(EventRuntime* runtime, std::string_view address,
                                     absl::Duration timeout, OnDone on_done,
                                     FramedStream::Options options) {
  std::unique_ptr<Dialer> dialer(new Dialer());
  Dialer* d = dialer.get();
  d->runtime_ = runtime;
  d->text_ = std::string(address);
  d->address_ = ParseStreamAddress(address);
  d->deadline_ns_ = MonotonicNanos() + absl::ToInt64Nanoseconds(timeout);
  d->on_done_ = std::move(on_done);
  d->options_ = options;
  d->last_error_ = absl::DeadlineExceededError("no attempt made");
  d->retry_timer_ = runtime->CreateWallTimer([d] { d->Attempt(); });
  d->deadline_timer_ = runtime->CreateWallTimer([d] {
    d->Fail(absl::DeadlineExceededError(absl::StrCat(
        "cannot connect to ", d->text_, " within the time allowed: ", d->last_error_.message())));
  });
  d->retry_timer_->ArmAfter(absl::ZeroDuration());  // never call on_done before Dial returns
  d->deadline_timer_->ArmAfter(std::max(timeout, absl::ZeroDuration()) + absl::Milliseconds(1));
  return dialer;
}

Dialer::~Dialer() {
  if (pending_ != nullptr) bufferevent_free(pending_);
}

void Dialer::Attempt() {
  if (done_) return;
  if (!address_.ok()) return Fail(address_.status());
  absl::StatusOr<SockAddr> sa = Resolve(*address_);
  if (!sa.ok()) return Fail(sa.status());
  ++attempts_;
  pending_ = bufferevent_socket_new(runtime_->base(), -1, BEV_OPT_CLOSE_ON_FREE);
  if (pending_ == nullptr) return Fail(absl::InternalError("bufferevent_socket_new failed"));
  bufferevent_setcb(pending_, nullptr, nullptr, &Dialer::EventCb, this);
  if (bufferevent_socket_connect(pending_, sa->get(), static_cast<int>(sa->len)) != 0) {
    last_error_ = absl::UnavailableError(SocketError());
    bufferevent_free(pending_);
    pending_ = nullptr;
    const int64_t left = deadline_ns_ - MonotonicNanos();
    if (left <= 0) return;  // the deadline timer reports it
    retry_timer_->ArmAfter(std::min(backoff_, absl::Nanoseconds(left)));
    backoff_ = std::min(backoff_ * 2, absl::Milliseconds(200));
  }
}

void Dialer::EventCb(bufferevent*, short what, void* arg) {
  static_cast<Dialer*>(arg)->OnConnectEvent(what);
}

void Dialer::OnConnectEvent(short what) {
  if (what & BEV_EVENT_CONNECTED) {
    bufferevent* bev = pending_;
    pending_ = nullptr;
    SetNoDelay(bufferevent_getfd(bev));
    evutil_make_socket_closeonexec(bufferevent_getfd(bev));
    done_ = true;
    retry_timer_->Cancel();
    deadline_timer_->Cancel();
    OnDone done = std::move(on_done_);
    done(FramedStream::Wrap(runtime_, bev, address_->ToString(), options_));  // may destroy this
    return;
  }
  last_error_ = absl::UnavailableError(SocketError());
  bufferevent_free(pending_);
  pending_ = nullptr;
  const int64_t left = deadline_ns_ - MonotonicNanos();
  if (left <= 0) return;
  retry_timer_->ArmAfter(std::min(backoff_, absl::Nanoseconds(left)));
  backoff_ = std::min(backoff_ * 2, absl::Milliseconds(200));
}

void Dialer::Fail(absl::Status why) {
  if (done_) return;
  done_ = true;
  if (pending_ != nullptr) bufferevent_free(pending_);
  pending_ = nullptr;
  retry_timer_->Cancel();
  deadline_timer_->Cancel();
  OnDone done = std::move(on_done_);
  done(std::move(why));  // may destroy this
}

// ---------------------------------------------------------------- DelayedSender

DelayedSender::DelayedSender(Runtime* runtime, absl::Duration delay,
                             std::function<void(std::string)> release)
    : runtime_(runtime),
      delay_(std::max(delay, absl::ZeroDuration())),
      release_(std::move(release)) {
  timer_ = runtime_->CreateTimer([this] { ReleaseDue(); });
}

DelayedSender::~DelayedSender() = default;

void DelayedSender::Send(std::string bytes) {
  if (delay_ == absl::ZeroDuration() && held_.empty()) {
    release_(std::move(bytes));
    return;
  }
  held_.emplace_back(runtime_->Now() + delay_, std::move(bytes));
  if (!timer_->armed()) timer_->ArmAt(held_.front().first);
}

void DelayedSender::ReleaseDue() {
  const Time now = runtime_->Now();
  while (!held_.empty() && held_.front().first <= now) {
    std::string bytes = std::move(held_.front().second);
    held_.pop_front();
    release_(std::move(bytes));
  }
  if (!held_.empty()) timer_->ArmAt(held_.front().first);
}

void DelayedSender::Flush() {
  timer_->Cancel();
  while (!held_.empty()) {
    std::string bytes = std::move(held_.front().second);
    held_.pop_front();
    release_(std::move(bytes));
  }
}

}  // namespace qnet
