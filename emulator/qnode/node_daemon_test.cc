// NodeDaemon in-process against a scripted qworld and a scripted neighbour:
// the neighbour session (Hello first, refusal of strangers), classical delay
// (LINK-W6), bad frames (LINK-W4) and the end of a run.
#include "emulator/qnode/node_daemon.h"

#include <functional>
#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/json_lines.h"
#include "stack/testing/loop.h"

namespace qnet::qnode {
namespace {

using physical::v1::NodeToWorld;
using physical::v1::WorldToNode;
using results::v1::DropReason;

Topology AliceAndBob() {
  Topology t;
  t.name = "pair";
  t.duration_s = 0.2;
  HardwareSpec hw;
  hw.name = "hw";
  t.hardware.push_back(hw);
  t.nodes.push_back(NodeSpec{"alice", "hw", 0});
  t.nodes.push_back(NodeSpec{"bob", "hw", 0});
  t.nodes.push_back(NodeSpec{"mallory", "hw", 0});
  LinkSpec l;
  l.name = "L";
  l.a = "alice";
  l.b = "bob";
  l.length_km = 1;
  l.classical_delay_s = 0.05;
  l.scheme = HeraldingScheme::kWerner;
  l.p_success = 0.5;
  t.links.push_back(l);
  RequestSpec r;
  r.from = "alice";
  r.to = "bob";
  r.pairs = 3;
  r.kind = RequestKind::kMeasure;
  r.basis = BasisSet::kZ;
  t.requests.push_back(r);
  return t;
}

// A framed connection played by the test, recording what it receives.
struct Scripted {
  std::unique_ptr<FramedStream> stream;
  std::vector<std::string> frames;
  std::vector<Time> arrived;
  std::optional<absl::Status> closed;
  void Start(EventRuntime* rt) {
    stream->Start({.on_frame =
                       [this, rt](std::string p) {
                         frames.push_back(std::move(p));
                         arrived.push_back(rt->Now());
                       },
                   .on_closed = [this](absl::Status why) { closed = why; }});
  }
  template <typename M>
  M Parse(size_t i) const {
    M m;
    EXPECT_TRUE(m.ParseFromString(frames.at(i))) << i;
    return m;
  }
};

class NodeDaemonTest : public testing::EventLoopTest {
 protected:
  NodeDaemonTest() : EventLoopTest("qnet-qnode-test") {}

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EventLoopTest::SetUp());
    auto world = StreamListener::Listen(runtime_.get(), "unix:" + dir_ + "/qworld.sock",
                                        [this](std::unique_ptr<FramedStream> s) {
                                          world_.stream = std::move(s);
                                          world_.Start(runtime_.get());
                                        });
    ASSERT_TRUE(world.ok());
    world_listener_ = std::move(*world);
    auto bob = StreamListener::Listen(runtime_.get(), "127.0.0.1:0",
                                      [this](std::unique_ptr<FramedStream> s) {
                                        ++bob_accepted_;
                                        bob_ = Scripted();
                                        bob_.stream = std::move(s);
                                        bob_.Start(runtime_.get());
                                      });
    ASSERT_TRUE(bob.ok());
    bob_listener_ = std::move(*bob);
  }
  void TearDown() override {
    daemon_.reset();
    EventLoopTest::TearDown();
  }

  // Runs node `node` of AliceAndBob: alice dials bob (the test's listener),
  // bob waits for alice.
  void StartDaemon(const std::string& node = "alice") {
    NodeDaemonOptions options;
    options.node = node;
    options.qworld_address = world_listener_->address();
    options.listen_address = "127.0.0.1:0";
    if (node == "alice") options.peers["bob"] = bob_listener_->address();
    options.out_dir = dir_ + "/out";
    options.connect_timeout = absl::Seconds(5);
    options.hello_timeout = hello_timeout_;
    options.log = [this](const std::string& line) { log_.push_back(line); };
    auto daemon = NodeDaemon::Create(runtime_.get(), AliceAndBob(), options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(*daemon);
    daemon_->set_on_finished([this](int code) { exit_code_ = code; });
  }

  // Answers the node's Hello and starts the run 20 ms from now.
  void AckAndStart(const std::string& node = "alice") {
    ASSERT_TRUE(RunUntil([&] { return !world_.frames.empty(); }));
    const NodeToWorld hello = world_.Parse<NodeToWorld>(0);
    ASSERT_EQ(hello.hello().node(), node);
    WorldToNode ack;
    ack.set_version(1);
    ack.mutable_hello_ack()->set_node(node);
    ack.mutable_hello_ack()->set_memories(4);
    ASSERT_TRUE(world_.stream->Send(ack).ok());
    WorldToNode start;
    start.set_version(1);
    start_epoch_ = MonotonicNanos() + 20'000'000;
    start.mutable_start()->set_epoch_monotonic_ns(start_epoch_);
    start.mutable_start()->set_time_dilation(1.0);
    ASSERT_TRUE(world_.stream->Send(start).ok());
  }

  void SendFromBob(const wire::v1::Frame& f) { ASSERT_TRUE(bob_.stream->Send(f).ok()); }
  static wire::v1::Frame Hello(const std::string& node) {
    wire::v1::Frame f;
    f.set_version(1);
    f.set_from_node(node);
    f.mutable_hello()->set_node(node);
    return f;
  }

  // Ends the run with qworld's Stop, so that the trace is complete.
  void StopRun() {
    WorldToNode stop;
    stop.set_version(1);
    stop.mutable_stop()->set_reason("end");
    ASSERT_TRUE(world_.stream->Send(stop).ok());
    ASSERT_TRUE(RunUntil([&] { return exit_code_.has_value(); }));
  }

  // A connection to the daemon's listener played by the test.
  Scripted* Call(std::function<void(Scripted*)> then) {
    callers_.push_back(std::make_unique<Scripted>());
    Scripted* c = callers_.back().get();
    dialers_.push_back(Dialer::Dial(runtime_.get(), daemon_->listen_address(), absl::Seconds(5),
                                    [this, c, then](absl::StatusOr<std::unique_ptr<FramedStream>> s) {
                                      ASSERT_TRUE(s.ok());
                                      c->stream = std::move(*s);
                                      c->Start(runtime_.get());
                                      then(c);
                                    }));
    return c;
  }

  std::vector<results::v1::TraceRecord> Trace(const std::string& node = "alice") {
    auto trace = ReadTraceFile(dir_ + "/out/nodes/" + node + ".jsonl");
    EXPECT_TRUE(trace.ok()) << trace.status();
    return trace.ok() ? *trace : std::vector<results::v1::TraceRecord>{};
  }

  int Drops(DropReason reason) {
    auto trace = ReadTraceFile(dir_ + "/out/nodes/alice.jsonl");
    EXPECT_TRUE(trace.ok()) << trace.status();
    int n = 0;
    if (trace.ok()) {
      for (const auto& r : *trace) n += r.has_drop() && r.drop().reason() == reason;
    }
    return n;
  }

  std::unique_ptr<StreamListener> world_listener_, bob_listener_;
  Scripted world_, bob_;
  std::unique_ptr<NodeDaemon> daemon_;
  std::optional<int> exit_code_;
  int64_t start_epoch_ = 0;
  int bob_accepted_ = 0;
  absl::Duration hello_timeout_ = absl::Seconds(10);
  std::vector<std::string> log_;
  std::vector<std::unique_ptr<Scripted>> callers_;
  std::vector<std::unique_ptr<Dialer>> dialers_;
};

bool Logged(const std::vector<std::string>& log, const std::string& text) {
  for (const std::string& line : log) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(ParsePeersTest, AcceptsRepeatsAndListsAndRejectsBadValues) {
  auto peers = ParsePeers({"bob=127.0.0.1:5000", "carol=10.0.0.3:6000,dave=[::1]:7"});
  ASSERT_TRUE(peers.ok()) << peers.status();
  EXPECT_EQ(peers->size(), 3u);
  EXPECT_EQ(peers->at("carol"), "10.0.0.3:6000");
  EXPECT_FALSE(ParsePeers({"bob"}).ok());
  EXPECT_FALSE(ParsePeers({"=1.2.3.4:5"}).ok());
  EXPECT_FALSE(ParsePeers({"bob=nowhere"}).ok());
  EXPECT_FALSE(ParsePeers({"bob=1.2.3.4:5", "bob=1.2.3.4:6"}).ok());
}

TEST_F(NodeDaemonTest, RefusesBadOptions) {
  NodeDaemonOptions options;
  options.node = "zed";
  options.qworld_address = world_listener_->address();
  options.out_dir = dir_;
  EXPECT_FALSE(NodeDaemon::Create(runtime_.get(), AliceAndBob(), options).ok())
      << "not in the topology";
  options.node = "alice";
  EXPECT_FALSE(NodeDaemon::Create(runtime_.get(), AliceAndBob(), options).ok())
      << "no --peer for bob";
  options.peers["mallory"] = "127.0.0.1:1";
  EXPECT_FALSE(NodeDaemon::Create(runtime_.get(), AliceAndBob(), options).ok())
      << "mallory is no neighbour";
}

TEST_F(NodeDaemonTest, LINK_W6_HelloFirstThenLinkFramesHeldForTheClassicalDelay) {
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !bob_.frames.empty(); }));
  const auto hello = bob_.Parse<wire::v1::Frame>(0);
  ASSERT_TRUE(hello.has_hello());
  EXPECT_EQ(hello.hello().node(), "alice");
  EXPECT_EQ(hello.from_node(), "alice");
  EXPECT_EQ(hello.version(), 1u);
  SendFromBob(Hello("bob"));
  AckAndStart();
  // The CREATE is issued at emulated time 0; its first frame to bob must not
  // arrive before the link's 50 ms delay. (The network layer's hellos and
  // adverts, also sent from time 0, are held alike.)
  size_t first_link = 0;
  ASSERT_TRUE(RunUntil([&] {
    for (size_t i = 1; i < bob_.frames.size(); ++i) {
      if (bob_.Parse<wire::v1::Frame>(i).has_link()) {
        first_link = i;
        return true;
      }
    }
    return false;
  }));
  const auto first = bob_.Parse<wire::v1::Frame>(first_link);
  EXPECT_EQ(first.link().link(), "L");
  for (size_t i = 1; i <= first_link; ++i) {
    EXPECT_GE(bob_.arrived[i], Time::FromNanos(50'000'000)) << "frame " << i;
  }
  EXPECT_EQ(runtime_->epoch_monotonic_ns(), start_epoch_);
}

TEST_F(NodeDaemonTest, LINK_W4_BadFramesFromANeighbourAreCountedAndTheConnectionStays) {
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !bob_.frames.empty(); }));
  SendFromBob(Hello("bob"));
  AckAndStart();
  ASSERT_TRUE(bob_.stream->SendBytes(std::string("\x02\xff\xff", 3)).ok());  // does not parse
  std::string big = "\x81\x80\x80\x01";                                      // 2 MiB + 1
  big.append((1u << 21) + 1, 'x');
  ASSERT_TRUE(bob_.stream->SendBytes(big).ok());
  wire::v1::Frame wrong_version = Hello("bob");
  wrong_version.set_version(3);
  SendFromBob(wrong_version);
  WorldToNode stop;
  stop.set_version(1);
  stop.mutable_stop()->set_reason("end");
  // Let the frames arrive, then end the run so the trace is flushed.
  auto later = runtime_->CreateWallTimer([&] { ASSERT_TRUE(world_.stream->Send(stop).ok()); });
  later->ArmAfter(absl::Milliseconds(100));
  ASSERT_TRUE(RunUntil([&] { return exit_code_.has_value(); }));
  EXPECT_EQ(*exit_code_, 0);
  EXPECT_EQ(Drops(DropReason::DROP_REASON_MALFORMED_FRAME), 1);
  EXPECT_EQ(Drops(DropReason::DROP_REASON_OVERSIZED_FRAME), 1);
  EXPECT_EQ(Drops(DropReason::DROP_REASON_VERSION_MISMATCH), 1);
  EXPECT_FALSE(bob_.closed.has_value() && !bob_.closed->ok())
      << "closed in error: " << *bob_.closed;
}

TEST_F(NodeDaemonTest, StrangersAndDuplicatesAreRefusedWithAFrameError) {
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !bob_.frames.empty(); }));
  SendFromBob(Hello("bob"));
  std::vector<std::unique_ptr<Scripted>> callers;
  std::vector<std::unique_ptr<Dialer>> dialers;
  for (const std::string& who : {std::string("mallory"), std::string("bob")}) {
    auto caller = std::make_unique<Scripted>();
    Scripted* c = caller.get();
    callers.push_back(std::move(caller));
    dialers.push_back(Dialer::Dial(runtime_.get(), daemon_->listen_address(), absl::Seconds(5),
                                   [this, c, who](absl::StatusOr<std::unique_ptr<FramedStream>> s) {
                                     ASSERT_TRUE(s.ok());
                                     c->stream = std::move(*s);
                                     c->Start(runtime_.get());
                                     ASSERT_TRUE(c->stream->Send(Hello(who)).ok());
                                   }));
  }
  ASSERT_TRUE(
      RunUntil([&] { return callers[0]->closed.has_value() && callers[1]->closed.has_value(); }));
  for (const auto& c : callers) {
    ASSERT_EQ(c->frames.size(), 1u);
    const auto error = c->Parse<wire::v1::Frame>(0);
    ASSERT_TRUE(error.has_error());
    EXPECT_EQ(error.error().code(), wire::v1::FRAME_ERROR_CODE_UNEXPECTED);
  }
  EXPECT_FALSE(bob_.closed.has_value()) << "the real neighbour keeps its connection";
}

// LINK-W9, NET-R-3: when the connection to bob closes, alice takes the link
// down at once (traced as reported), dials again, says Hello first on the new
// connection, and its frames flow on it.
TEST_F(NodeDaemonTest, LINK_W9_ALostNeighbourIsDialledAgainAndTheLinkComesBack) {
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !bob_.frames.empty(); }));
  SendFromBob(Hello("bob"));
  AckAndStart();
  ASSERT_TRUE(RunUntil([&] { return runtime_->Now() > Time::FromNanos(100'000'000); }));
  bob_.stream->Close();  // the test's end of the connection goes away
  ASSERT_TRUE(RunUntil([&] { return bob_accepted_ == 2 && !bob_.frames.empty(); }));
  EXPECT_EQ(daemon_->neighbour_losses(), 1u);
  const auto hello = bob_.Parse<wire::v1::Frame>(0);
  ASSERT_TRUE(hello.has_hello());
  EXPECT_EQ(hello.hello().node(), "alice");
  SendFromBob(Hello("bob"));
  // The router's hellos resume on the new connection (NET-R-1: a down link
  // keeps sending them); the first says alice does not hear bob yet.
  ASSERT_TRUE(RunUntil([&] {
    for (size_t i = 1; i < bob_.frames.size(); ++i) {
      if (bob_.Parse<wire::v1::Frame>(i).network().has_hello()) return true;
    }
    return false;
  }));
  EXPECT_TRUE(Logged(log_, "neighbour bob disconnected"));
  EXPECT_TRUE(Logged(log_, "neighbour bob reconnected"));
  StopRun();
  EXPECT_EQ(*exit_code_, 0);
  int down = 0;
  for (const auto& r : Trace()) {
    if (r.has_link_liveness() && !r.link_liveness().up()) {
      ++down;
      EXPECT_EQ(r.link_liveness().reason(), "reported");
      EXPECT_EQ(r.link_liveness().link(), "L");
    }
  }
  EXPECT_EQ(down, 1);
}

// LINK-W9: at the end that is dialled, a new Hello from the neighbour replaces
// the connection it holds (the neighbour lost its end of it), and that counts
// as a loss of the link.
TEST_F(NodeDaemonTest, LINK_W9_ANewHelloReplacesTheOldConnection) {
  StartDaemon("bob");
  Scripted* first = Call([this](Scripted* c) { ASSERT_TRUE(c->stream->Send(Hello("alice")).ok()); });
  ASSERT_TRUE(RunUntil([&] { return !first->frames.empty(); }));
  EXPECT_EQ(first->Parse<wire::v1::Frame>(0).hello().node(), "bob");
  Scripted* second =
      Call([this](Scripted* c) { ASSERT_TRUE(c->stream->Send(Hello("alice")).ok()); });
  ASSERT_TRUE(RunUntil([&] { return !second->frames.empty() && first->closed.has_value(); }));
  EXPECT_EQ(second->Parse<wire::v1::Frame>(0).hello().node(), "bob");
  EXPECT_FALSE(second->closed.has_value());
  EXPECT_EQ(daemon_->neighbour_losses(), 1u);
  EXPECT_EQ(daemon_->connections_refused(), 0u);
  EXPECT_TRUE(Logged(log_, "neighbour alice disconnected: it connected again"));
}

// LINK-W10, LINK-W8: a peer that says nothing, or half a frame and nothing
// more, is closed after the Hello timeout with a FrameError, counted and
// traced; the real neighbour's connection stays.
TEST_F(NodeDaemonTest, LINK_W10_SilentAndHalfFramePeersAreClosed) {
  hello_timeout_ = absl::Milliseconds(300);
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !bob_.frames.empty(); }));
  SendFromBob(Hello("bob"));
  AckAndStart();
  Scripted* silent = Call([](Scripted*) {});
  Scripted* half = Call([](Scripted* c) {
    ASSERT_TRUE(c->stream->SendBytes(std::string("\x20\x08\x01", 3)).ok());
  });
  ASSERT_TRUE(RunUntil([&] { return silent->closed.has_value() && half->closed.has_value(); }));
  for (Scripted* c : {silent, half}) {
    ASSERT_EQ(c->frames.size(), 1u);
    const auto error = c->Parse<wire::v1::Frame>(0);
    ASSERT_TRUE(error.has_error());
    EXPECT_EQ(error.error().code(), wire::v1::FRAME_ERROR_CODE_UNEXPECTED);
    EXPECT_NE(error.error().detail().find("no Hello within"), std::string::npos);
  }
  EXPECT_EQ(daemon_->connections_refused(), 2u);
  EXPECT_EQ(daemon_->neighbour_losses(), 0u);
  StopRun();
  EXPECT_EQ(Drops(DropReason::DROP_REASON_UNEXPECTED_FRAME), 2);
  EXPECT_FALSE(bob_.closed.has_value() && !bob_.closed->ok());
}

TEST_F(NodeDaemonTest, RefusedHelloOrLostQworldEndsWithExitCode1) {
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !world_.frames.empty(); }));
  WorldToNode error;
  error.set_version(1);
  error.mutable_error()->set_code(physical::v1::ERROR_CODE_UNKNOWN_NODE);
  ASSERT_TRUE(world_.stream->Send(error).ok());
  ASSERT_TRUE(RunUntil([&] { return exit_code_.has_value(); }));
  EXPECT_EQ(*exit_code_, 1);

  daemon_.reset();
  exit_code_.reset();
  world_ = Scripted();
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !world_.frames.empty(); }));
  world_.stream->Close();
  ASSERT_TRUE(RunUntil([&] { return exit_code_.has_value(); }));
  EXPECT_EQ(*exit_code_, 1);
}

TEST_F(NodeDaemonTest, QworldStopEndsTheRunWithByeAndExitCode0) {
  StartDaemon();
  ASSERT_TRUE(RunUntil([&] { return !bob_.frames.empty(); }));
  SendFromBob(Hello("bob"));
  AckAndStart();
  ASSERT_TRUE(RunUntil([&] { return runtime_->Now() > Time::FromNanos(1'000'000); }));
  WorldToNode stop;
  stop.set_version(1);
  stop.mutable_stop()->set_reason("the run's duration is over");
  ASSERT_TRUE(world_.stream->Send(stop).ok());
  ASSERT_TRUE(RunUntil([&] { return exit_code_.has_value() && world_.closed.has_value(); }));
  EXPECT_EQ(*exit_code_, 0);
  const auto last = world_.Parse<NodeToWorld>(world_.frames.size() - 1);
  ASSERT_TRUE(last.has_bye());
  EXPECT_NE(last.bye().reason().find("duration is over"), std::string::npos);
  auto trace = ReadTraceFile(dir_ + "/out/nodes/alice.jsonl");
  ASSERT_TRUE(trace.ok()) << trace.status();
  bool created = false;
  for (const auto& r : *trace) created |= r.has_create();
  EXPECT_TRUE(created) << "the workload started at emulated time 0";
}

}  // namespace
}  // namespace qnet::qnode
