// WorldServer in-process: real node connections (QworldClient over a Unix
// socket) on one EventRuntime, against the real World and against a scripted
// core where exact delivery times matter.
#include "emulator/qworld/world_server.h"

#include <deque>
#include <optional>
#include <vector>

#include "emulator/node/qworld_client.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"
#include "stack/json_lines.h"
#include "stack/testing/loop.h"

namespace qnet::qworld {
namespace {

using physical::v1::NodeToWorld;
using physical::v1::WorldToNode;

Topology TwoNodes(double duration_s) {
  Topology t;
  t.name = "pair";
  t.seed = 11;
  t.duration_s = duration_s;
  HardwareSpec hw;
  hw.name = "hw";
  hw.memories = 2;
  t.hardware.push_back(hw);
  t.nodes.push_back(NodeSpec{"a", "hw", 0});
  t.nodes.push_back(NodeSpec{"b", "hw", 0});
  LinkSpec l;
  l.name = "L";
  l.a = "a";
  l.b = "b";
  l.length_km = 1;
  l.scheme = HeraldingScheme::kWerner;
  l.p_success = 0.5;
  l.fidelity = 0.9;
  l.attempt_s = 100e-6;
  t.links.push_back(l);
  return t;
}

// A node's side of the session, recording what qworld sent and when (emulated).
struct TestNode : PhysicalListener {
  TestNode(EventRuntime* rt, std::string name) : runtime(rt) {
    node::QworldClient::Callbacks cb;
    cb.on_hello_ack = [this](const physical::v1::HelloAck&) { acked = true; };
    cb.on_rejected = [this](const physical::v1::Error& e) { rejected = e; };
    cb.on_start = [this](const physical::v1::Start& s) { start = s; };
    cb.on_stop = [this](const physical::v1::Stop& s) {
      stop = s;
      stop_at = runtime->Now();
    };
    cb.on_closed = [this](absl::Status why) { closed = why; };
    client = std::make_unique<node::QworldClient>(std::move(name), &tracer, std::move(cb));
    client->set_listener(this);
  }
  void Connect(const std::string& address) {
    dialer = Dialer::Dial(runtime, address, absl::Seconds(5),
                          [this](absl::StatusOr<std::unique_ptr<FramedStream>> s) {
                            ASSERT_TRUE(s.ok()) << s.status();
                            client->Attach(std::move(*s));
                          });
  }
  void OnHerald(const physical::v1::Herald& h) override {
    heralds.push_back(h);
    herald_at.push_back(runtime->Now());
  }
  void OnMeasureResult(const physical::v1::MeasureResult& r) override {
    results.push_back(r);
    result_at.push_back(runtime->Now());
  }
  void OnBellMeasureResult(const physical::v1::BellMeasureResult&) override {}
  void OnPhysicalError(const physical::v1::Error& e) override { errors.push_back(e); }

  EventRuntime* runtime;
  NullTracer tracer;
  std::unique_ptr<node::QworldClient> client;
  std::unique_ptr<Dialer> dialer;
  bool acked = false;
  std::optional<physical::v1::Error> rejected;
  std::optional<physical::v1::Start> start;
  std::optional<physical::v1::Stop> stop;
  Time stop_at;
  std::optional<absl::Status> closed;
  std::vector<physical::v1::Herald> heralds;
  std::vector<Time> herald_at;
  std::vector<physical::v1::MeasureResult> results;
  std::vector<Time> result_at;
  std::vector<physical::v1::Error> errors;
};

// Answers Hello like World and, for each Measure, replays a script of results
// at fixed offsets from the request's arrival.
class ScriptedCore : public PhysicsCore {
 public:
  explicit ScriptedCore(world::World::Output* out) : out_(out) {}
  void Handle(const std::string& node, const NodeToWorld& request, Time now) override {
    if (request.has_hello()) {
      WorldToNode ack;
      ack.mutable_hello_ack()->set_node(request.hello().node());
      out_->Deliver(node, ack, now);
      return;
    }
    if (!request.has_measure()) return;
    for (const auto& [id, offset] : script) {
      WorldToNode m;
      m.mutable_measure_result()->set_request_id(id);
      m.mutable_measure_result()->set_time_ns((now + offset).nanos());
      out_->Deliver(node, m, now + offset);
    }
  }
  std::vector<std::pair<uint64_t, absl::Duration>> script;

 private:
  world::World::Output* out_;
};

class WorldServerTest : public testing::EventLoopTest {
 protected:
  WorldServerTest() : EventLoopTest("qnet-qworld-test") {}

  void TearDown() override {
    nodes_.clear();
    server_.reset();
    EventLoopTest::TearDown();
  }

  void StartServer(Topology topology, PhysicsCoreFactory core = nullptr, double grace_s = 0.25) {
    WorldServerOptions options;
    options.socket_path = dir_ + "/qworld.sock";
    options.out_dir = dir_ + "/out";
    options.start_delay = absl::Milliseconds(20);
    options.grace_s = grace_s;
    options.stop_timeout = absl::Seconds(3);
    options.hello_timeout = hello_timeout_;
    options.log = [this](const std::string& line) { log_.push_back(line); };
    auto server =
        WorldServer::Create(runtime_.get(), std::move(topology), options, std::move(core));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->set_on_finished([this](absl::Status why) { finished_ = why; });
  }

  TestNode* AddNode(const std::string& name) {
    nodes_.push_back(std::make_unique<TestNode>(runtime_.get(), name));
    nodes_.back()->Connect(server_->unix_address());
    return nodes_.back().get();
  }

  // A bare framed connection to the server, for frames no QworldClient sends.
  FramedStream* RawConnection(std::vector<WorldToNode>* received) {
    std::unique_ptr<FramedStream>* slot = &raw_.emplace_back();
    raw_dialers_.push_back(
        Dialer::Dial(runtime_.get(), server_->unix_address(), absl::Seconds(5),
                     [slot, received](absl::StatusOr<std::unique_ptr<FramedStream>> s) {
                       ASSERT_TRUE(s.ok());
                       *slot = std::move(*s);
                       (*slot)->Start({.on_frame = [received](std::string p) {
                         WorldToNode m;
                         ASSERT_TRUE(m.ParseFromString(p));
                         received->push_back(m);
                       }});
                     }));
    EXPECT_TRUE(RunUntil([slot] { return *slot != nullptr; }));
    return slot->get();
  }

  std::unique_ptr<WorldServer> server_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::deque<std::unique_ptr<FramedStream>> raw_;
  std::vector<std::unique_ptr<Dialer>> raw_dialers_;
  std::vector<std::string> log_;
  std::optional<absl::Status> finished_;
  absl::Duration hello_timeout_ = absl::Seconds(10);
};

TEST_F(WorldServerTest, PHYS_S4_StartComesOnlyOnceEveryNodeSaidHello) {
  StartServer(TwoNodes(5));
  TestNode* a = AddNode("a");
  ASSERT_TRUE(RunUntil([&] { return a->acked; }));
  // Give a Start time to (wrongly) arrive.
  auto wait = runtime_->CreateWallTimer([] {});
  wait->ArmAfter(absl::Milliseconds(50));
  ASSERT_TRUE(RunUntil([&] { return !wait->armed(); }));
  EXPECT_FALSE(a->start.has_value());
  EXPECT_FALSE(server_->started());
  const int64_t before_b = MonotonicNanos();
  TestNode* b = AddNode("b");
  ASSERT_TRUE(RunUntil([&] { return a->start.has_value() && b->start.has_value(); }));
  EXPECT_EQ(a->start->epoch_monotonic_ns(), b->start->epoch_monotonic_ns());
  EXPECT_GE(static_cast<int64_t>(a->start->epoch_monotonic_ns()), before_b + 20'000'000);
  EXPECT_EQ(a->start->time_dilation(), 1.0);
  EXPECT_EQ(runtime_->epoch_monotonic_ns(), static_cast<int64_t>(a->start->epoch_monotonic_ns()));
  EXPECT_EQ(server_->nodes_said_hello(), 2u);
}

TEST_F(WorldServerTest, PHYS_S4_ANodeThatSaysHelloAgainLaterGetsTheSameStart) {
  StartServer(TwoNodes(5));
  TestNode* a = AddNode("a");
  TestNode* b = AddNode("b");
  ASSERT_TRUE(RunUntil([&] { return a->start.has_value() && b->start.has_value(); }));
  bool left = false;
  a->client->Bye("restarting", [&] { left = true; });
  ASSERT_TRUE(RunUntil([&] { return left && server_->nodes_connected() == 1; }));
  EXPECT_FALSE(finished_.has_value()) << "b is still there";
  TestNode* again = AddNode("a");
  ASSERT_TRUE(RunUntil([&] { return again->start.has_value(); }));
  EXPECT_TRUE(again->acked);
  EXPECT_EQ(again->start->epoch_monotonic_ns(), a->start->epoch_monotonic_ns());
  EXPECT_EQ(server_->nodes_connected(), 2u);
  // A node whose connection just closes (a crash) may come back as well.
  nodes_.erase(nodes_.begin() + 2);
  ASSERT_TRUE(RunUntil([&] { return server_->nodes_connected() == 1; }));
  TestNode* third = AddNode("a");
  ASSERT_TRUE(RunUntil([&] { return third->start.has_value() || third->rejected.has_value(); }));
  EXPECT_TRUE(third->acked);
  EXPECT_FALSE(third->rejected.has_value());
}

TEST_F(WorldServerTest, PHYS_S5_GenerateAtBothEndsHeraldsTheSamePairToBoth) {
  const Topology topology = TwoNodes(5);
  const LinkSpec& link = topology.links[0];
  StartServer(topology);
  TestNode* a = AddNode("a");
  TestNode* b = AddNode("b");
  ASSERT_TRUE(RunUntil([&] { return a->start.has_value() && b->start.has_value(); }));
  for (int round = 1; round <= 5; ++round) {
    for (TestNode* n : {a, b}) {
      physical::v1::Generate g;
      g.set_link("L");
      g.set_batch(round);
      g.set_queue_id(1);
      g.set_slot(0);
      g.set_measure_basis(physical::v1::BASIS_Z);
      n->client->Generate(g);
    }
    ASSERT_TRUE(RunUntil([&] {
      return a->heralds.size() == static_cast<size_t>(round) &&
             b->heralds.size() == static_cast<size_t>(round);
    }));
  }
  const absl::Duration cycle = AttemptCycle(link);
  for (size_t i = 0; i < 5; ++i) {
    const auto& ha = a->heralds[i];
    const auto& hb = b->heralds[i];
    EXPECT_EQ(ha.outcome(), physical::v1::OUTCOME_SUCCESS);
    EXPECT_EQ(ha.time_ns(), hb.time_ns());
    EXPECT_EQ(ha.pair_seq(), i + 1);
    EXPECT_EQ(hb.pair_seq(), i + 1);
    // The herald reaches side i at t_N + HeraldDelay(i), t_N = time_ns - cycle: never before.
    EXPECT_GE(a->herald_at[i], Time::FromNanos(ha.time_ns()) - cycle + HeraldDelay(link, true));
    EXPECT_GE(b->herald_at[i], Time::FromNanos(hb.time_ns()) - cycle + HeraldDelay(link, false));
  }
  EXPECT_GT(server_->deliveries_sent(), 10u);
}

TEST_F(WorldServerTest, PHYS_S6_DeliveriesWaitForTheirTimeAndKeepEmissionOrderAtEqualTimes) {
  ScriptedCore* core = nullptr;
  StartServer(TwoNodes(5), [&core](const Topology&, Rng, world::World::Output* out) {
    auto c = std::make_unique<ScriptedCore>(out);
    core = c.get();
    return c;
  });
  ASSERT_NE(core, nullptr);
  core->script = {{1, absl::Milliseconds(30)},
                  {2, absl::Milliseconds(10)},
                  {3, absl::Milliseconds(30)},
                  {4, absl::ZeroDuration()},
                  {5, absl::Milliseconds(30)}};
  TestNode* a = AddNode("a");
  TestNode* b = AddNode("b");
  ASSERT_TRUE(RunUntil([&] { return a->start.has_value() && b->start.has_value(); }));
  ASSERT_TRUE(RunUntil([&] { return runtime_->Now() > Time::Zero(); }));
  a->client->Measure(physical::v1::Measure());
  ASSERT_TRUE(RunUntil([&] { return a->results.size() == 5; }));
  std::vector<uint64_t> order;
  for (size_t i = 0; i < a->results.size(); ++i) {
    order.push_back(a->results[i].request_id());
    EXPECT_GE(a->result_at[i].nanos(), static_cast<int64_t>(a->results[i].time_ns()))
        << "delivered early";
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{4, 2, 1, 3, 5}));
  EXPECT_TRUE(b->results.empty());
}

TEST_F(WorldServerTest, PHYS_3_PHYS_5_PHYS_S2_BadFramesAreAnsweredCountedAndTheConnectionGoesOn) {
  StartServer(TwoNodes(5));
  std::vector<WorldToNode> got;
  FramedStream* raw = RawConnection(&got);
  // Not a NodeToWorld at all.
  ASSERT_TRUE(raw->SendBytes(std::string("\x02\xff\xff", 3)).ok());
  // A valid frame, but not Hello, as the first frame.
  NodeToWorld gen;
  gen.set_version(1);
  gen.mutable_generate()->set_link("L");
  ASSERT_TRUE(raw->Send(gen).ok());
  // Oversized: counted, no answer.
  std::string big = "\x81\x80\x80\x01";  // varint 2^21 + 1
  big.append((1u << 21) + 1, 'x');
  ASSERT_TRUE(raw->SendBytes(big).ok());
  NodeToWorld hello;
  hello.set_version(1);
  hello.mutable_hello()->set_node("a");
  ASSERT_TRUE(raw->Send(hello).ok());
  ASSERT_TRUE(RunUntil([&] { return got.size() == 3; }));
  EXPECT_EQ(got[0].error().code(), physical::v1::ERROR_CODE_MALFORMED);
  EXPECT_EQ(got[1].error().code(), physical::v1::ERROR_CODE_UNEXPECTED);
  ASSERT_TRUE(got[2].has_hello_ack());
  EXPECT_EQ(got[2].hello_ack().node(), "a");
  EXPECT_EQ(got[2].hello_ack().memories(), 2u);
  EXPECT_EQ(server_->malformed_frames(), 1u);
  EXPECT_EQ(server_->oversized_frames(), 1u);
  EXPECT_EQ(server_->unexpected_frames(), 1u);
  // A repeated Hello on the same connection.
  ASSERT_TRUE(raw->Send(hello).ok());
  ASSERT_TRUE(RunUntil([&] { return got.size() == 4; }));
  EXPECT_EQ(got[3].error().code(), physical::v1::ERROR_CODE_UNEXPECTED);
  EXPECT_EQ(server_->nodes_said_hello(), 1u);
  EXPECT_TRUE(raw->open());
}

// PHYS-S8: a peer that says nothing, or half a frame and nothing more, is
// answered, counted and closed after the Hello timeout; a node that said Hello
// keeps its connection.
TEST_F(WorldServerTest, PHYS_S8_SilentAndHalfFramePeersAreClosed) {
  hello_timeout_ = absl::Milliseconds(300);
  StartServer(TwoNodes(5));
  TestNode* a = AddNode("a");
  std::vector<WorldToNode> silent_got, half_got;
  FramedStream* silent = RawConnection(&silent_got);
  FramedStream* half = RawConnection(&half_got);
  ASSERT_TRUE(half->SendBytes(std::string("\x10\x08\x01", 3)).ok());  // 3 of 17 bytes
  ASSERT_TRUE(RunUntil([&] { return a->acked; }));
  ASSERT_TRUE(RunUntil([&] { return !silent->open() && !half->open(); }));
  ASSERT_EQ(silent_got.size(), 1u);
  ASSERT_EQ(half_got.size(), 1u);
  EXPECT_EQ(silent_got[0].error().code(), physical::v1::ERROR_CODE_UNEXPECTED);
  EXPECT_NE(half_got[0].error().detail().find("no Hello within"), std::string::npos);
  EXPECT_EQ(server_->unexpected_frames(), 2u);
  EXPECT_FALSE(a->rejected.has_value());
  EXPECT_EQ(server_->nodes_said_hello(), 1u);
}

TEST_F(WorldServerTest, PHYS_S1_SecondConnectionForANodeAndUnknownNodesAreRefused) {
  StartServer(TwoNodes(5));
  TestNode* a = AddNode("a");
  ASSERT_TRUE(RunUntil([&] { return a->acked; }));
  TestNode* again = AddNode("a");
  TestNode* stranger = AddNode("zed");
  ASSERT_TRUE(
      RunUntil([&] { return again->rejected.has_value() && stranger->rejected.has_value(); }));
  EXPECT_EQ(again->rejected->code(), physical::v1::ERROR_CODE_UNEXPECTED);
  EXPECT_EQ(stranger->rejected->code(), physical::v1::ERROR_CODE_UNKNOWN_NODE);
  EXPECT_EQ(server_->nodes_said_hello(), 1u);
  EXPECT_FALSE(server_->started());
}

TEST_F(WorldServerTest, PHYS_S7_StopComesAfterDurationPlusGraceAndTheRunEndsWhenNodesLeave) {
  StartServer(TwoNodes(0.05), nullptr, /*grace_s=*/0.03);
  TestNode* a = AddNode("a");
  TestNode* b = AddNode("b");
  ASSERT_TRUE(RunUntil([&] { return a->stop.has_value() && b->stop.has_value(); }));
  EXPECT_GE(a->stop_at, Time::FromSeconds(0.08));
  EXPECT_GE(b->stop_at, Time::FromSeconds(0.08));
  EXPECT_TRUE(server_->stopped());
  EXPECT_FALSE(finished_.has_value()) << "waits for the nodes to leave";
  a->client->Bye("done", nullptr);
  b->client->Bye("done", nullptr);
  ASSERT_TRUE(RunUntil([&] { return finished_.has_value(); }));
  EXPECT_TRUE(finished_->ok()) << *finished_;
  auto trace = ReadTraceFile(dir_ + "/out/qworld.jsonl");
  ASSERT_TRUE(trace.ok()) << trace.status();
}

TEST_F(WorldServerTest, PHYS_S7_AbortStopsEveryNodeAndEndsWithTheReason) {
  StartServer(TwoNodes(5));
  TestNode* a = AddNode("a");
  ASSERT_TRUE(RunUntil([&] { return a->acked; }));
  server_->Abort(absl::CancelledError("interrupted by signal 15"));
  ASSERT_TRUE(RunUntil([&] { return a->stop.has_value() && finished_.has_value(); }));
  EXPECT_EQ(finished_->code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(a->stop->reason(), "interrupted by signal 15");
}

TEST_F(WorldServerTest, EveryNodeDisconnectingBeforeTheEndIsAnError) {
  StartServer(TwoNodes(5));
  TestNode* a = AddNode("a");
  TestNode* b = AddNode("b");
  ASSERT_TRUE(RunUntil([&] { return a->start.has_value() && b->start.has_value(); }));
  nodes_.clear();  // both processes "crash"
  ASSERT_TRUE(RunUntil([&] { return finished_.has_value(); }));
  EXPECT_EQ(finished_->code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace qnet::qworld
