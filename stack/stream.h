// Framed byte streams on the libevent runtime: every connection in qnet (a
// node's neighbours, the qworld socket) carries varint-length-prefixed frames
// (stack/frame_codec.h; specs/link.md LINK-W1, specs/physical.md PHYS-1).
// Oversized frames are skipped and the stream goes on; an invalid length prefix
// closes it (LINK-W4, PHYS-3, PHYS-5). DelayedSender implements the hold of
// LINK-W6.
//
// Addresses are "tcp:HOST:PORT" or "HOST:PORT" (IPv4, [IPv6] or a host name)
// and "unix:/path".
//
// Ownership: streams, listeners and dials hold a raw EventRuntime* and must be
// destroyed before it. Callbacks run on the runtime's thread; a callback may
// destroy the object that called it.
#ifndef QNET_STACK_STREAM_H_
#define QNET_STACK_STREAM_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message_lite.h"
#include "stack/event_runtime.h"
#include "stack/frame_codec.h"
#include "stack/runtime.h"

struct bufferevent;
struct event;
struct evconnlistener;
struct sockaddr;

namespace qnet {

// A parsed stream address.
struct StreamAddress {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;   // tcp
  uint16_t port = 0;  // tcp
  std::string path;   // unix
  std::string ToString() const;
};
absl::StatusOr<StreamAddress> ParseStreamAddress(std::string_view address);

// One connected stream socket, framed.
//
// Incoming bytes are split by a FrameDecoder: each complete frame goes to
// on_frame; a frame declared larger than the limit is skipped without being
// buffered and reported to on_oversized (the stream goes on); a length prefix
// that is not a valid varint closes the stream (on_closed with DataLoss and the
// reason), because the stream cannot be resynchronised.
//
// on_closed is called once, when the stream ends by itself: OK when the peer
// closed it in an orderly way, an error status otherwise (socket error, bad
// length prefix, too much unsent output). Close() by the owner calls nothing.
//
// Output is coalesced: the frames sent while the runtime handles one batch
// of events go out together, in one write to the socket, after the events
// that were ready; only what the socket does not take at once waits in the
// bufferevent for the socket to become writable. (A process that handles
// many frames per wake-up then pays one system call per peer, not three per
// frame.)
class FramedStream {
 public:
  struct Callbacks {
    std::function<void(std::string payload)> on_frame = nullptr;
    std::function<void(uint64_t declared_size)> on_oversized = nullptr;
    std::function<void(absl::Status why)> on_closed = nullptr;
  };
  struct Options {
    size_t max_frame_bytes = kDefaultMaxFrameBytes;
    // Unsent output above this closes the stream (a peer that stopped reading
    // must not make this process grow without bound).
    size_t max_output_bytes = 64u << 20;
  };

  // Takes ownership of the connected socket `fd` (made non-blocking here).
  static std::unique_ptr<FramedStream> Adopt(EventRuntime* runtime, int fd, std::string peer,
                                             Options options);
  static std::unique_ptr<FramedStream> Adopt(EventRuntime* runtime, int fd, std::string peer) {
    return Adopt(runtime, fd, std::move(peer), Options());
  }
  ~FramedStream();
  FramedStream(const FramedStream&) = delete;
  FramedStream& operator=(const FramedStream&) = delete;

  // Installs the callbacks and starts reading.
  void Start(Callbacks callbacks);

  // Queues one frame. Fails if the stream is closed.
  absl::Status Send(const google::protobuf::MessageLite& message);
  // Queues raw bytes (already framed, or deliberately not: tests).
  absl::Status SendBytes(std::string_view bytes);

  // Closes at once; unsent output is lost.
  void Close();
  // Stops reading and closes once every queued byte has been written; then
  // `on_done` (if set) runs.
  void CloseWhenFlushed(std::function<void()> on_done = nullptr);

  bool open() const { return bev_ != nullptr; }
  const std::string& peer() const { return peer_; }
  size_t output_bytes() const;
  uint64_t frames_received() const { return frames_received_; }
  uint64_t oversized_frames() const { return oversized_frames_; }

 private:
  friend class Dialer;
  FramedStream(EventRuntime* runtime, std::string peer, Options options);
  // Takes ownership of a connected bufferevent.
  static std::unique_ptr<FramedStream> Wrap(EventRuntime* runtime, bufferevent* bev,
                                            std::string peer, Options options);
  void FailSoon(absl::Status why);
  // Writes the coalesced output (SendBytes) to the socket.
  void Flush();
  static void FlushCb(int fd, short what, void* arg);
  void OnRead();
  void OnWritten();
  void OnEvent(short what);
  void Finish(absl::Status why);
  static void ReadableCb(int fd, short what, void* arg);
  void StopReading();
  static void WriteCb(bufferevent* bev, void* arg);
  static void EventCb(bufferevent* bev, short what, void* arg);

  EventRuntime* runtime_;
  std::string peer_;
  Options options_;
  bufferevent* bev_ = nullptr;
  std::string pending_out_;         // sent, not yet handed to the socket
  struct event* flush_event_ = nullptr;  // runs Flush() after the ready events
  struct event* read_event_ = nullptr;   // the socket is readable (added by Start)
  FrameDecoder decoder_;
  Callbacks callbacks_;
  std::function<void()> on_flushed_;
  std::optional<absl::Status> unreported_close_;  // ended before Start()
  bool closing_ = false;
  bool started_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uint64_t frames_received_ = 0;
  uint64_t oversized_frames_ = 0;
};

// Accepts connections on a TCP or Unix address. For a Unix address a stale
// socket file (nobody accepts on it) is removed first; a live one or a file
// that is not a socket is an error. The socket file is removed on destruction.
class StreamListener {
 public:
  using OnAccept = std::function<void(std::unique_ptr<FramedStream> stream)>;
  static absl::StatusOr<std::unique_ptr<StreamListener>> Listen(EventRuntime* runtime,
                                                                std::string_view address,
                                                                OnAccept on_accept,
                                                                FramedStream::Options options = {});
  ~StreamListener();
  StreamListener(const StreamListener&) = delete;
  StreamListener& operator=(const StreamListener&) = delete;

  // The bound address ("tcp:127.0.0.1:PORT" with the real port, "unix:/path").
  const std::string& address() const { return bound_; }

 private:
  StreamListener() = default;
  static void AcceptCb(evconnlistener* listener, int fd, ::sockaddr* addr, int len, void* arg);

  EventRuntime* runtime_ = nullptr;
  evconnlistener* listener_ = nullptr;
  OnAccept on_accept_;
  FramedStream::Options options_;
  std::string bound_;
  std::string unix_path_;
};

// Connects to `address`, retrying (refused, no such socket file yet, ...) with
// a short back-off until the wall-clock `timeout` has passed. `on_done` gets the
// stream, or the last error once the time is up. Destroying the Dialer cancels.
class Dialer {
 public:
  using OnDone = std::function<void(absl::StatusOr<std::unique_ptr<FramedStream>>)>;
  static std::unique_ptr<Dialer> Dial(EventRuntime* runtime, std::string_view address,
                                      absl::Duration timeout, OnDone on_done,
                                      FramedStream::Options options = {});
  ~Dialer();
  Dialer(const Dialer&) = delete;
  Dialer& operator=(const Dialer&) = delete;

  int attempts() const { return attempts_; }

 private:
  Dialer() = default;
  void Attempt();
  void OnConnectEvent(short what);
  void Fail(absl::Status why);
  static void EventCb(bufferevent* bev, short what, void* arg);

  EventRuntime* runtime_ = nullptr;
  std::string text_;
  absl::StatusOr<StreamAddress> address_;
  int64_t deadline_ns_ = 0;
  OnDone on_done_;
  FramedStream::Options options_;
  bufferevent* pending_ = nullptr;
  std::unique_ptr<WallTimer> retry_timer_;
  std::unique_ptr<WallTimer> deadline_timer_;
  absl::Duration backoff_ = absl::Milliseconds(10);
  absl::Status last_error_;
  int attempts_ = 0;
  bool done_ = false;
};

// Holds outgoing frames for a fixed emulated delay (a link's classical
// propagation delay, LinkSpec::delay_s()) and then releases them, in the order
// they were sent. It uses the runtime's own timers, so the time dilation
// applies: DESIGN.md, "Classical delays": qnode holds frames itself where the
// kernel has no netem. No frame is released before Now() >= sent + delay.
class DelayedSender {
 public:
  DelayedSender(Runtime* runtime, absl::Duration delay,
                std::function<void(std::string bytes)> release);
  ~DelayedSender();

  void Send(std::string bytes);
  void SendFrame(const google::protobuf::MessageLite& message) { Send(EncodeFrame(message)); }
  // Releases everything held now (shutdown).
  void Flush();

  absl::Duration delay() const { return delay_; }
  size_t held() const { return held_.size(); }

 private:
  void ReleaseDue();

  Runtime* runtime_;
  absl::Duration delay_;
  std::function<void(std::string)> release_;
  std::deque<std::pair<Time, std::string>> held_;
  std::unique_ptr<Timer> timer_;
};

}  // namespace qnet

#endif  // QNET_STACK_STREAM_H_
