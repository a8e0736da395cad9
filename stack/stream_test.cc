// Framed streams over loopback TCP and Unix sockets, the listener, the dialer
// and the DelayedSender (stack/stream.h).
#include "stack/stream.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/random.h"
#include "stack/testing/loop.h"

namespace qnet {
namespace {

using physical::v1::NodeToWorld;

class StreamTest : public testing::EventLoopTest {
 protected:
  StreamTest() : EventLoopTest("qnet-stream-test") {}

  // Listens on `address`, dials it; the accepted and dialled streams land in server_ and client_.
  void Connect(const std::string& address, FramedStream::Options server_options = {}) {
    auto listener = StreamListener::Listen(
        runtime_.get(), address,
        [this](std::unique_ptr<FramedStream> s) { server_ = std::move(s); }, server_options);
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = std::move(*listener);
    auto dialer = Dialer::Dial(runtime_.get(), listener_->address(), absl::Seconds(5),
                               [this](absl::StatusOr<std::unique_ptr<FramedStream>> s) {
                                 ASSERT_TRUE(s.ok()) << s.status();
                                 client_ = std::move(*s);
                               });
    ASSERT_TRUE(RunUntil([&] { return server_ != nullptr && client_ != nullptr; }));
  }

  static NodeToWorld HelloOf(const std::string& name) {
    NodeToWorld m;
    m.set_version(1);
    m.mutable_hello()->set_node(name);
    return m;
  }

  // Frames of many sizes (1- and 2-byte length prefixes, empty messages).
  static std::vector<NodeToWorld> SampleMessages(Rng& rng, int n) {
    std::vector<NodeToWorld> out;
    for (int i = 0; i < n; ++i) {
      if (i % 7 == 3) {
        out.emplace_back();  // empty message: a zero-length frame
        continue;
      }
      out.push_back(HelloOf(std::string(rng.Below(600), static_cast<char>('a' + i % 26))));
    }
    return out;
  }

  // Sends `bytes` in chunks cut at random points, one chunk per millisecond, so
  // that the receiver sees frames split across reads.
  void SendInPieces(FramedStream* stream, const std::string& bytes, Rng& rng) {
    auto pieces = std::make_shared<std::vector<std::string>>();
    for (size_t at = 0; at < bytes.size();) {
      const size_t len =
          std::min<size_t>(bytes.size() - at, 1 + rng.Below(rng.Bernoulli(0.3) ? 3 : 900));
      pieces->push_back(bytes.substr(at, len));
      at += len;
    }
    auto next = std::make_shared<size_t>(0);
    sender_ = runtime_->CreateWallTimer([this, stream, pieces, next] {
      if (*next >= pieces->size()) return;
      ASSERT_TRUE(stream->SendBytes((*pieces)[(*next)++]).ok());
      sender_->ArmAfter(absl::Microseconds(200));
    });
    sender_->ArmAfter(absl::ZeroDuration());
  }

  void RoundTrip(const std::string& address) {
    Connect(address);
    Rng rng(42);
    const std::vector<NodeToWorld> messages = SampleMessages(rng, 120);
    std::string bytes;
    for (const auto& m : messages) AppendFrame(m, &bytes);
    std::vector<std::string> at_server, at_client;
    server_->Start({.on_frame =
                        [&](std::string p) {
                          at_server.push_back(p);
                          ASSERT_TRUE(server_->SendBytes(EncodeFrame(HelloOf("echo"))).ok());
                        },
                    .on_oversized = [&](uint64_t) { ADD_FAILURE() << "oversized"; },
                    .on_closed = [&](absl::Status s) { ADD_FAILURE() << "closed: " << s; }});
    client_->Start({.on_frame = [&](std::string p) { at_client.push_back(p); }});
    SendInPieces(client_.get(), bytes, rng);
    ASSERT_TRUE(RunUntil([&] { return at_client.size() == messages.size(); }));
    ASSERT_EQ(at_server.size(), messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
      NodeToWorld parsed;
      ASSERT_TRUE(parsed.ParseFromString(at_server[i])) << i;
      EXPECT_EQ(parsed.hello().node(), messages[i].hello().node()) << i;
      EXPECT_EQ(at_server[i], messages[i].SerializeAsString()) << i;
    }
    EXPECT_EQ(server_->frames_received(), messages.size());
  }

  std::unique_ptr<StreamListener> listener_;
  std::unique_ptr<FramedStream> server_, client_;
  std::unique_ptr<WallTimer> sender_;
};

TEST(StreamAddressTest, ParsesTcpAndUnixForms) {
  auto a = ParseStreamAddress("tcp:127.0.0.1:80");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, StreamAddress::Kind::kTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 80);
  auto b = ParseStreamAddress("10.0.0.2:6000");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ToString(), "tcp:10.0.0.2:6000");
  auto c = ParseStreamAddress("[::1]:7");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->ToString(), "tcp:[::1]:7");
  auto d = ParseStreamAddress("unix:/tmp/x.sock");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, StreamAddress::Kind::kUnix);
  EXPECT_EQ(d->path, "/tmp/x.sock");
  for (const char* bad :
       {"", "unix:", "localhost", "host:", ":80", "h:65536", "h:port", "[::1]7", "tcp:"}) {
    EXPECT_FALSE(ParseStreamAddress(bad).ok()) << bad;
  }
}

TEST_F(StreamTest, LINK_W1_FramesRoundTripOverLoopbackTcpSplitAnywhere) {
  RoundTrip("tcp:127.0.0.1:0");
}

TEST_F(StreamTest, PHYS_1_FramesRoundTripOverUnixSocketSplitAnywhere) {
  RoundTrip("unix:" + dir_ + "/s.sock");
}

TEST_F(StreamTest, LINK_W4_PHYS_3_OversizedFrameIsCountedAndTheStreamGoesOn) {
  FramedStream::Options small;
  small.max_frame_bytes = 100;
  Connect("tcp:127.0.0.1:0", small);
  std::vector<std::string> frames;
  std::vector<uint64_t> oversized;
  bool closed = false;
  server_->Start({.on_frame = [&](std::string p) { frames.push_back(p); },
                  .on_oversized = [&](uint64_t n) { oversized.push_back(n); },
                  .on_closed = [&](absl::Status) { closed = true; }});
  client_->Start({});
  const NodeToWorld big = HelloOf(std::string(5000, 'x'));
  Rng rng(3);
  SendInPieces(client_.get(),
               EncodeFrame(HelloOf("before")) + EncodeFrame(big) + EncodeFrame(HelloOf("after")),
               rng);
  ASSERT_TRUE(RunUntil([&] { return frames.size() == 2; }));
  ASSERT_EQ(oversized.size(), 1u);
  EXPECT_EQ(oversized[0], big.ByteSizeLong());
  EXPECT_EQ(server_->oversized_frames(), 1u);
  NodeToWorld first, second;
  ASSERT_TRUE(first.ParseFromString(frames[0]));
  ASSERT_TRUE(second.ParseFromString(frames[1]));
  EXPECT_EQ(first.hello().node(), "before");
  EXPECT_EQ(second.hello().node(), "after");
  EXPECT_FALSE(closed);
  EXPECT_TRUE(server_->open());
}

TEST_F(StreamTest, LINK_W4_PHYS_5_GarbageLengthPrefixClosesWithAReason) {
  Connect("unix:" + dir_ + "/g.sock");
  std::optional<absl::Status> why;
  int frames = 0;
  server_->Start(
      {.on_frame = [&](std::string) { ++frames; }, .on_closed = [&](absl::Status s) { why = s; }});
  client_->Start({});
  ASSERT_TRUE(client_->Send(HelloOf("ok")).ok());
  ASSERT_TRUE(client_->SendBytes(std::string(12, '\xff')).ok());
  ASSERT_TRUE(RunUntil([&] { return why.has_value(); }));
  EXPECT_EQ(frames, 1);
  EXPECT_EQ(why->code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(why->message().find("varint"), std::string_view::npos) << *why;
  EXPECT_FALSE(server_->open());
  EXPECT_FALSE(server_->Send(HelloOf("late")).ok());
}

TEST_F(StreamTest, OrderlyCloseIsReportedOkAndMidFrameCloseAsDataLoss) {
  Connect("tcp:127.0.0.1:0");
  std::optional<absl::Status> why;
  server_->Start({.on_closed = [&](absl::Status s) { why = s; }});
  client_->Start({});
  ASSERT_TRUE(client_->Send(HelloOf("x")).ok());
  client_->CloseWhenFlushed();
  ASSERT_TRUE(RunUntil([&] { return why.has_value(); }));
  EXPECT_TRUE(why->ok()) << *why;

  server_.reset();
  client_.reset();
  Connect("tcp:127.0.0.1:0");
  why.reset();
  server_->Start({.on_closed = [&](absl::Status s) { why = s; }});
  client_->Start({});
  std::string partial = EncodeFrame(HelloOf("cut short"));
  partial.resize(partial.size() - 2);
  ASSERT_TRUE(client_->SendBytes(partial).ok());
  client_->CloseWhenFlushed();
  ASSERT_TRUE(RunUntil([&] { return why.has_value(); }));
  EXPECT_EQ(why->code(), absl::StatusCode::kDataLoss) << *why;
}

TEST_F(StreamTest, CloseWhenFlushedDeliversEverythingFirst) {
  Connect("unix:" + dir_ + "/f.sock");
  int frames = 0;
  std::optional<absl::Status> why;
  server_->Start(
      {.on_frame = [&](std::string) { ++frames; }, .on_closed = [&](absl::Status s) { why = s; }});
  client_->Start({});
  constexpr int kFrames = 2000;  // about 2 MB: more than one socket buffer
  for (int i = 0; i < kFrames; ++i)
    ASSERT_TRUE(client_->Send(HelloOf(std::string(1000, 'q'))).ok());
  bool flushed = false;
  client_->CloseWhenFlushed([&] { flushed = true; });
  ASSERT_TRUE(RunUntil([&] { return why.has_value(); }));
  EXPECT_TRUE(flushed);
  EXPECT_EQ(frames, kFrames);
  EXPECT_TRUE(why->ok());
}

TEST_F(StreamTest, TooMuchUnsentOutputClosesTheStream) {
  FramedStream::Options tiny;
  std::optional<absl::Status> why;
  // A stream over a socket pair with a 1 kB output limit.
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  tiny.max_output_bytes = 1000;
  auto stream = FramedStream::Adopt(runtime_.get(), fds[0], "pair", tiny);
  stream->Start({.on_closed = [&](absl::Status s) { why = s; }});
  EXPECT_TRUE(stream->SendBytes(std::string(600, 'a')).ok());
  const absl::Status second = stream->SendBytes(std::string(600, 'b'));
  EXPECT_EQ(second.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(RunUntil([&] { return why.has_value(); }));
  EXPECT_EQ(why->code(), absl::StatusCode::kResourceExhausted);
  close(fds[1]);
}

TEST_F(StreamTest, DialRetriesUntilTheListenerAppears) {
  const std::string address = "unix:" + dir_ + "/late.sock";
  std::optional<absl::StatusOr<std::unique_ptr<FramedStream>>> result;
  auto dialer =
      Dialer::Dial(runtime_.get(), address, absl::Seconds(5),
                   [&](absl::StatusOr<std::unique_ptr<FramedStream>> s) { result = std::move(s); });
  auto late = runtime_->CreateWallTimer([&] {
    auto l =
        StreamListener::Listen(runtime_.get(), address,
                               [this](std::unique_ptr<FramedStream> s) { server_ = std::move(s); });
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
  });
  late->ArmAfter(absl::Milliseconds(80));
  ASSERT_TRUE(RunUntil([&] { return result.has_value() && server_ != nullptr; }));
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_GT(dialer->attempts(), 1);
}

TEST_F(StreamTest, DialGivesUpAtItsDeadline) {
  std::optional<absl::StatusOr<std::unique_ptr<FramedStream>>> result;
  const int64_t start = MonotonicNanos();
  auto dialer =
      Dialer::Dial(runtime_.get(), "unix:" + dir_ + "/nobody.sock", absl::Milliseconds(60),
                   [&](absl::StatusOr<std::unique_ptr<FramedStream>> s) { result = std::move(s); });
  ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
  EXPECT_EQ(result->status().code(), absl::StatusCode::kDeadlineExceeded) << result->status();
  EXPECT_GE(MonotonicNanos() - start, 60'000'000);
  auto bad =
      Dialer::Dial(runtime_.get(), "no-port", absl::Seconds(1),
                   [&](absl::StatusOr<std::unique_ptr<FramedStream>> s) { result = std::move(s); });
  result.reset();
  ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
  EXPECT_EQ(result->status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StreamTest, UnixListenerReplacesAStaleSocketButNotALiveOneOrAFile) {
  const std::string path = dir_ + "/stale.sock";
  {  // a socket file nobody listens on, as a crashed qworld leaves it
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", path.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0);
    close(fd);
  }
  auto first =
      StreamListener::Listen(runtime_.get(), "unix:" + path, [](std::unique_ptr<FramedStream>) {});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      StreamListener::Listen(runtime_.get(), "unix:" + path, [](std::unique_ptr<FramedStream>) {});
  EXPECT_FALSE(second.ok());
  first->reset();
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0) << "the listener removes its socket file";
  const std::string file = dir_ + "/plain";
  std::ofstream(file) << "not a socket";
  auto third =
      StreamListener::Listen(runtime_.get(), "unix:" + file, [](std::unique_ptr<FramedStream>) {});
  EXPECT_FALSE(third.ok());
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST_F(StreamTest, LINK_W6_DelayedSenderReleasesNothingEarlyAndKeepsOrder) {
  ASSERT_TRUE(runtime_->SetEpoch(MonotonicNanos(), 2.0).ok());
  const absl::Duration delay = absl::Milliseconds(5);
  struct Released {
    int id;
    Time at;
  };
  std::vector<Released> released;
  std::vector<Time> sent_at;
  DelayedSender sender(runtime_.get(), delay, [&](std::string bytes) {
    released.push_back({std::stoi(bytes), runtime_->Now()});
  });
  constexpr int kFrames = 40;
  std::vector<std::unique_ptr<Timer>> timers;
  Rng rng(5);
  int next_id = 0;
  for (int i = 0; i < kFrames / 2; ++i) {
    timers.push_back(runtime_->CreateTimer([&] {
      for (int k = 0; k < 2; ++k) {  // two frames at the same instant
        sent_at.push_back(runtime_->Now());
        sender.Send(std::to_string(next_id++));
      }
    }));
    timers.back()->ArmAt(Time::FromNanos(static_cast<int64_t>(i) * 700'000 +
                                         static_cast<int64_t>(rng.Below(300'000))));
  }
  const int64_t start_wall = MonotonicNanos();
  ASSERT_TRUE(RunUntil([&] { return released.size() == kFrames; }));
  EXPECT_EQ(sender.held(), 0u);
  for (int i = 0; i < kFrames; ++i) {
    EXPECT_EQ(released[i].id, i) << "released out of order";
    EXPECT_GE(released[i].at, sent_at[i] + delay) << "frame " << i << " released early";
  }
  // 5 ms emulated at dilation 2 is at least 10 ms of wall time.
  EXPECT_GE(MonotonicNanos() - start_wall, 10'000'000);
}

TEST_F(StreamTest, DelayedSenderWithZeroDelaySendsAtOnceAndFlushReleasesAll) {
  std::vector<std::string> out;
  DelayedSender now(runtime_.get(), absl::ZeroDuration(), [&](std::string b) { out.push_back(b); });
  now.Send("a");
  EXPECT_EQ(out, (std::vector<std::string>{"a"}));
  DelayedSender later(runtime_.get(), absl::Seconds(1), [&](std::string b) { out.push_back(b); });
  later.Send("b");
  later.Send("c");
  EXPECT_EQ(later.held(), 2u);
  later.Flush();
  EXPECT_EQ(out, (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace qnet
