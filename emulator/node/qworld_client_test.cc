// QworldClient against a scripted qworld on a Unix socket: the session
// (PHYS-1 Hello first, PHYS-2 version), dispatch of indications, and untrusted
// frames from qworld counted and ignored.
#include "emulator/node/qworld_client.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "stack/event_runtime.h"
#include "stack/testing/loop.h"

namespace qnet::node {
namespace {

using physical::v1::NodeToWorld;
using physical::v1::WorldToNode;
using results::v1::DropReason;

class RecordingTracer : public Tracer {
 public:
  void Record(results::v1::TraceRecord record) override { records.push_back(std::move(record)); }
  int Count(DropReason reason) const {
    int n = 0;
    for (const auto& r : records) n += r.has_drop() && r.drop().reason() == reason;
    return n;
  }
  std::vector<results::v1::TraceRecord> records;
};

class RecordingListener : public PhysicalListener {
 public:
  void OnHerald(const physical::v1::Herald& h) override { heralds.push_back(h); }
  void OnMeasureResult(const physical::v1::MeasureResult& r) override { measures.push_back(r); }
  void OnBellMeasureResult(const physical::v1::BellMeasureResult& r) override {
    bells.push_back(r);
  }
  void OnPhysicalError(const physical::v1::Error& e) override { errors.push_back(e); }
  std::vector<physical::v1::Herald> heralds;
  std::vector<physical::v1::MeasureResult> measures;
  std::vector<physical::v1::BellMeasureResult> bells;
  std::vector<physical::v1::Error> errors;
};

class QworldClientTest : public testing::EventLoopTest {
 protected:
  QworldClientTest() : EventLoopTest("qnet-client-test") {}

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EventLoopTest::SetUp());
    auto listener = StreamListener::Listen(
        runtime_.get(), "unix:" + dir_ + "/qworld.sock", [this](std::unique_ptr<FramedStream> s) {
          world_ = std::move(s);
          world_->Start({.on_frame =
                             [this](std::string p) {
                               NodeToWorld m;
                               ASSERT_TRUE(m.ParseFromString(p));
                               received_.push_back(m);
                             },
                         .on_closed = [this](absl::Status) { world_closed_ = true; }});
        });
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = std::move(*listener);
    QworldClient::Callbacks cb;
    cb.on_hello_ack = [this](const physical::v1::HelloAck& a) { acks_.push_back(a); };
    cb.on_rejected = [this](const physical::v1::Error& e) { rejected_ = e; };
    cb.on_start = [this](const physical::v1::Start& s) { starts_.push_back(s); };
    cb.on_stop = [this](const physical::v1::Stop& s) { stops_.push_back(s); };
    cb.on_closed = [this](absl::Status why) { closed_ = why; };
    client_ = std::make_unique<QworldClient>("alice", &tracer_, std::move(cb));
    client_->set_listener(&listener_calls_);
    dialer_ = Dialer::Dial(runtime_.get(), listener_->address(), absl::Seconds(5),
                           [this](absl::StatusOr<std::unique_ptr<FramedStream>> s) {
                             ASSERT_TRUE(s.ok()) << s.status();
                             client_->Attach(std::move(*s));
                           });
    ASSERT_TRUE(RunUntil([&] { return !received_.empty(); }));
  }
  void TearDown() override {
    client_.reset();
    world_.reset();
    listener_.reset();
    EventLoopTest::TearDown();
  }

  void SendFromWorld(WorldToNode m, uint32_t version = 1) {
    m.set_version(version);
    ASSERT_TRUE(world_->Send(m).ok());
  }
  void Ack() {
    WorldToNode m;
    m.mutable_hello_ack()->set_node("alice");
    m.mutable_hello_ack()->set_memories(3);
    SendFromWorld(m);
  }
  void StartRun() {
    WorldToNode m;
    m.mutable_start()->set_epoch_monotonic_ns(12345);
    m.mutable_start()->set_time_dilation(2.0);
    SendFromWorld(m);
  }

  std::unique_ptr<StreamListener> listener_;
  std::unique_ptr<FramedStream> world_;
  std::unique_ptr<Dialer> dialer_;
  std::unique_ptr<QworldClient> client_;
  RecordingTracer tracer_;
  RecordingListener listener_calls_;
  std::vector<NodeToWorld> received_;
  std::vector<physical::v1::HelloAck> acks_;
  std::vector<physical::v1::Start> starts_;
  std::vector<physical::v1::Stop> stops_;
  std::optional<physical::v1::Error> rejected_;
  std::optional<absl::Status> closed_;
  bool world_closed_ = false;
};

TEST_F(QworldClientTest, PHYS_1_SendsHelloFirstThenRequestsWithVersion1) {
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_EQ(received_[0].version(), 1u);
  ASSERT_TRUE(received_[0].has_hello());
  EXPECT_EQ(received_[0].hello().node(), "alice");
  Ack();
  StartRun();
  ASSERT_TRUE(RunUntil([&] { return !starts_.empty(); }));
  EXPECT_EQ(client_->memories(), 3u);
  EXPECT_EQ(starts_[0].epoch_monotonic_ns(), 12345u);
  EXPECT_EQ(starts_[0].time_dilation(), 2.0);
  physical::v1::Generate g;
  g.set_link("L");
  g.set_batch(7);
  client_->Generate(g);
  physical::v1::Free f;
  f.set_slot(2);
  client_->Free(f);
  physical::v1::Measure m;
  m.set_request_id(9);
  client_->Measure(m);
  client_->ApplyGate(physical::v1::Gate());
  client_->BellMeasure(physical::v1::BellMeasure());
  ASSERT_TRUE(RunUntil([&] { return received_.size() == 6; }));
  EXPECT_EQ(received_[1].generate().batch(), 7u);
  EXPECT_EQ(received_[2].free().slot(), 2u);
  EXPECT_EQ(received_[3].measure().request_id(), 9u);
  EXPECT_TRUE(received_[4].has_gate());
  EXPECT_TRUE(received_[5].has_bell_measure());
  for (const auto& r : received_) EXPECT_EQ(r.version(), 1u);
  EXPECT_EQ(client_->requests_sent(), 6u);
}

TEST_F(QworldClientTest, IndicationsReachTheListenerInOrder) {
  Ack();
  StartRun();
  WorldToNode h;
  h.mutable_herald()->set_link("L");
  h.mutable_herald()->set_pair_seq(1);
  SendFromWorld(h);
  WorldToNode mr;
  mr.mutable_measure_result()->set_request_id(4);
  SendFromWorld(mr);
  WorldToNode br;
  br.mutable_bell_measure_result()->set_request_id(5);
  SendFromWorld(br);
  WorldToNode err;
  err.mutable_error()->set_code(physical::v1::ERROR_CODE_BAD_SLOT);
  SendFromWorld(err);
  h.mutable_herald()->set_pair_seq(2);
  SendFromWorld(h);
  ASSERT_TRUE(RunUntil([&] { return listener_calls_.heralds.size() == 2; }));
  EXPECT_EQ(listener_calls_.heralds[0].pair_seq(), 1u);
  EXPECT_EQ(listener_calls_.heralds[1].pair_seq(), 2u);
  ASSERT_EQ(listener_calls_.measures.size(), 1u);
  EXPECT_EQ(listener_calls_.measures[0].request_id(), 4u);
  ASSERT_EQ(listener_calls_.bells.size(), 1u);
  ASSERT_EQ(listener_calls_.errors.size(), 1u);
  EXPECT_EQ(listener_calls_.errors[0].code(), physical::v1::ERROR_CODE_BAD_SLOT);
  EXPECT_EQ(client_->indications(), 5u);
  EXPECT_EQ(client_->dropped_frames(), 0u);
}

TEST_F(QworldClientTest, UntrustedFramesAreCountedByReasonAndIgnored) {
  // Before HelloAck: a Start and a Herald are out of order.
  StartRun();
  WorldToNode h;
  h.mutable_herald()->set_link("L");
  SendFromWorld(h);
  // Garbage that does not parse, a frame of version 2, an empty message.
  ASSERT_TRUE(world_->SendBytes(std::string("\x03\xff\xff\xff", 4)).ok());
  SendFromWorld(h, 2);
  SendFromWorld(WorldToNode());
  // A HelloAck for another node.
  WorldToNode other;
  other.mutable_hello_ack()->set_node("bob");
  SendFromWorld(other);
  // An oversized frame (declared and sent in full: 1 MiB + 1 bytes of payload).
  std::string big;
  uint64_t size = (1u << 20) + 1;
  uint64_t v = size;
  for (; v >= 0x80; v >>= 7) big.push_back(static_cast<char>((v & 0x7f) | 0x80));
  big.push_back(static_cast<char>(v));
  big.append(size, 'z');
  ASSERT_TRUE(world_->SendBytes(big).ok());
  // Then a proper session: all of it still works.
  Ack();
  StartRun();
  StartRun();  // a second Start
  SendFromWorld(h);
  ASSERT_TRUE(RunUntil([&] { return listener_calls_.heralds.size() == 1; }));
  EXPECT_EQ(starts_.size(), 1u);
  EXPECT_EQ(acks_.size(), 1u);
  EXPECT_EQ(tracer_.Count(DropReason::DROP_REASON_MALFORMED_FRAME), 1);
  EXPECT_EQ(tracer_.Count(DropReason::DROP_REASON_VERSION_MISMATCH), 1);
  EXPECT_EQ(tracer_.Count(DropReason::DROP_REASON_OVERSIZED_FRAME), 1);
  // Start before HelloAck, Herald before Start, empty body, HelloAck for bob, second Start.
  EXPECT_EQ(tracer_.Count(DropReason::DROP_REASON_UNEXPECTED_FRAME), 5);
  EXPECT_EQ(client_->dropped_frames(), 8u);
  EXPECT_FALSE(closed_.has_value()) << "bad frames do not end the session";
}

TEST_F(QworldClientTest, ErrorInsteadOfHelloAckRejectsTheSession) {
  WorldToNode err;
  err.mutable_error()->set_code(physical::v1::ERROR_CODE_UNKNOWN_NODE);
  err.mutable_error()->set_detail("no node 'alice'");
  SendFromWorld(err);
  ASSERT_TRUE(RunUntil([&] { return rejected_.has_value(); }));
  EXPECT_EQ(rejected_->code(), physical::v1::ERROR_CODE_UNKNOWN_NODE);
  EXPECT_TRUE(listener_calls_.errors.empty());
  EXPECT_FALSE(client_->acked());
}

TEST_F(QworldClientTest, StopThenByeClosesTheConnection) {
  Ack();
  StartRun();
  WorldToNode stop;
  stop.mutable_stop()->set_reason("duration over");
  SendFromWorld(stop);
  ASSERT_TRUE(RunUntil([&] { return !stops_.empty(); }));
  EXPECT_EQ(stops_[0].reason(), "duration over");
  bool bye_flushed = false;
  client_->Bye("stopped", [&] { bye_flushed = true; });
  client_->Generate(physical::v1::Generate());  // after Bye: not sent
  ASSERT_TRUE(RunUntil([&] { return world_closed_; }));
  EXPECT_TRUE(bye_flushed);
  ASSERT_EQ(received_.size(), 2u);
  ASSERT_TRUE(received_[1].has_bye());
  EXPECT_EQ(received_[1].bye().reason(), "stopped");
  EXPECT_EQ(client_->requests_lost(), 1u);
}

TEST_F(QworldClientTest, QworldGoingAwayIsReported) {
  Ack();
  world_->Close();
  ASSERT_TRUE(RunUntil([&] { return closed_.has_value(); }));
  EXPECT_FALSE(client_->connected());
  client_->Generate(physical::v1::Generate());
  EXPECT_EQ(client_->requests_lost(), 1u);
}

}  // namespace
}  // namespace qnet::node
