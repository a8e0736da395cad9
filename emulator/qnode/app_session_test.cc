// AppSession against a scripted transport (specs/app-api.md APP-2..APP-18).
#include "emulator/qnode/app_session.h"

#include <vector>

#include "emulator/qnode/testing/fake_transport.h"
#include "gtest/gtest.h"

namespace qnet::qnode {
namespace {

using app::v1::AppEvent;
using app::v1::AppRequest;

class CountingTracer : public Tracer {
 public:
  void Record(results::v1::TraceRecord record) override {
    if (record.has_drop()) drops.push_back(record.drop().reason());
  }
  std::vector<results::v1::DropReason> drops;
};

class AppSessionTest : public ::testing::Test {
 protected:
  AppSessionTest()
      : session_(&transport_, &tracer_, [this](AppEvent e) { events_.push_back(std::move(e)); }) {}

  AppRequest Request(uint64_t id) {
    AppRequest r;
    r.set_version(1);
    r.set_request_id(id);
    return r;
  }
  // Sends a request and returns its (single) reply, which must be the first new event.
  app::v1::Reply Call(const AppRequest& r) {
    const size_t before = events_.size();
    session_.Handle(r);
    EXPECT_GT(events_.size(), before);
    if (events_.size() <= before) return {};
    EXPECT_TRUE(events_[before].has_reply());
    EXPECT_EQ(events_[before].request_id(), r.request_id());
    return events_[before].reply();
  }
  uint64_t Bind(uint32_t port, uint64_t id = 100) {
    AppRequest r = Request(id);
    r.mutable_bind()->set_port(port);
    app::v1::Reply reply = Call(r);
    EXPECT_EQ(reply.code(), 0) << reply.message();
    return reply.socket();
  }
  uint64_t Connect(uint64_t socket, uint64_t id = 101) {
    AppRequest r = Request(id);
    r.mutable_connect()->set_socket(socket);
    r.mutable_connect()->set_remote_node("b");
    r.mutable_connect()->set_remote_port(7);
    r.mutable_connect()->mutable_qos()->set_min_fidelity(0.9);
    app::v1::Reply reply = Call(r);
    EXPECT_EQ(reply.code(), 0) << reply.message();
    return reply.connection();
  }
  transport::SocketListener* ListenerOf(uint64_t socket) {
    return transport_.sockets.at(socket).listener;
  }

  testing::FakeTransport transport_;
  CountingTracer tracer_;
  std::vector<AppEvent> events_;
  AppSession session_;
};

// APP-2, APP-18
TEST_F(AppSessionTest, APP_2_WrongVersionIsRefusedAndCounted) {
  AppRequest r = Request(5);
  r.set_version(2);
  r.mutable_bind()->set_port(1);
  app::v1::Reply reply = Call(r);
  EXPECT_EQ(reply.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(transport_.sockets.empty());
  ASSERT_EQ(tracer_.drops.size(), 1u);
  EXPECT_EQ(tracer_.drops[0], results::v1::DROP_REASON_VERSION_MISMATCH);
  EXPECT_EQ(session_.stats().rejected, 1u);
}

// APP-3, APP-5, APP-18
TEST_F(AppSessionTest, APP_5_GarbageZeroIdAndEmptyBodyGetErrorReplies) {
  session_.HandleFrame(std::string("\xff\xff\xff", 3));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].request_id(), 0u);
  EXPECT_EQ(events_[0].reply().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  AppRequest zero = Request(0);
  zero.mutable_bind()->set_port(3);
  EXPECT_EQ(Call(zero).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Call(Request(9)).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(transport_.sockets.empty());
  EXPECT_EQ(tracer_.drops.size(), 3u);
  EXPECT_EQ(tracer_.drops[0], results::v1::DROP_REASON_MALFORMED_FRAME);
  EXPECT_EQ(session_.stats().rejected, 3u);
}

// APP-6
TEST_F(AppSessionTest, APP_6_OversizedFrameGetsAnErrorReply) {
  session_.HandleOversized(5u << 20);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].reply().code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(tracer_.drops.at(0), results::v1::DROP_REASON_OVERSIZED_FRAME);
}

// APP-7, APP-8, APP-14, APP-17
TEST_F(AppSessionTest, APP_14_ConnectRepliesThenConnectedEchoesTheRequest) {
  const uint64_t socket = Bind(4000);
  AppRequest taken = Request(7);
  taken.mutable_bind()->set_port(4000);
  EXPECT_EQ(Call(taken).code(), static_cast<int>(absl::StatusCode::kAlreadyExists));  // APP-17
  const uint64_t connection = Connect(socket, 42);
  ASSERT_EQ(transport_.connects.size(), 1u);
  EXPECT_EQ(transport_.connects[0].remote_node, "b");
  EXPECT_EQ(transport_.connects[0].remote_port, 7u);
  EXPECT_DOUBLE_EQ(transport_.connects[0].qos.min_fidelity, 0.9);
  EXPECT_EQ(transport_.connects[0].qos.window, 1u);  // 0 in the request means 1
  transport::ConnectionInfo info;
  info.connection = connection;
  info.socket = socket;
  info.peer_node = "b";
  info.peer_port = 7;
  info.initiator = true;
  info.path = {"a", "r", "b"};
  ListenerOf(socket)->OnConnected(info);
  ASSERT_TRUE(events_.back().has_connected());
  EXPECT_EQ(events_.back().request_id(), 42u);
  EXPECT_EQ(events_.back().connected().path_size(), 3);
  // An incoming connection on the same socket is unsolicited.
  info.connection = 77;
  info.initiator = false;
  ListenerOf(socket)->OnConnected(info);
  EXPECT_EQ(events_.back().request_id(), 0u);
  EXPECT_EQ(session_.connections(), 2u);
}

// APP-8
TEST_F(AppSessionTest, APP_8_BadQosIsRefusedBeforeTheTransport) {
  const uint64_t socket = Bind(4000);
  for (double f : {-0.1, 1.5, std::nan("")}) {
    AppRequest r = Request(8);
    r.mutable_connect()->set_socket(socket);
    r.mutable_connect()->set_remote_node("b");
    r.mutable_connect()->set_remote_port(7);
    r.mutable_connect()->mutable_qos()->set_min_fidelity(f);
    EXPECT_EQ(Call(r).code(), static_cast<int>(absl::StatusCode::kInvalidArgument)) << f;
  }
  AppRequest cutoff = Request(9);
  cutoff.mutable_connect()->set_socket(socket);
  cutoff.mutable_connect()->set_remote_node("b");
  cutoff.mutable_connect()->set_remote_port(7);
  cutoff.mutable_connect()->mutable_qos()->set_cutoff_s(-1);
  EXPECT_EQ(Call(cutoff).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(transport_.connects.empty());
}

// APP-10, APP-11, APP-12: another session's (or nobody's) ids are NOT_FOUND.
TEST_F(AppSessionTest, APP_10_OtherSessionsIdsAreNotFound) {
  AppSession other(&transport_, &tracer_, [](AppEvent) {});
  AppRequest bind = Request(1);
  bind.mutable_bind()->set_port(5000);
  other.Handle(bind);
  ASSERT_EQ(transport_.sockets.size(), 1u);
  const uint64_t foreign = transport_.sockets.begin()->first;

  AppRequest unbind = Request(2);
  unbind.mutable_unbind()->set_socket(foreign);
  EXPECT_EQ(Call(unbind).code(), static_cast<int>(absl::StatusCode::kNotFound));
  AppRequest alloc = Request(3);
  alloc.mutable_allocate_qubit()->set_socket(foreign);
  EXPECT_EQ(Call(alloc).code(), static_cast<int>(absl::StatusCode::kNotFound));
  AppRequest send = Request(4);
  send.mutable_send()->set_connection(12345);
  EXPECT_EQ(Call(send).code(), static_cast<int>(absl::StatusCode::kNotFound));
  AppRequest measure = Request(5);
  measure.mutable_measure()->mutable_qubit()->set_connection(0);
  measure.mutable_measure()->mutable_qubit()->set_id(1);
  EXPECT_EQ(Call(measure).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_TRUE(transport_.unbound.empty());
  EXPECT_TRUE(transport_.measured.empty());
  EXPECT_TRUE(transport_.sent.empty());
  EXPECT_EQ(session_.stats().rejected, 4u);
}

// APP-9, APP-12, APP-16: owned qubits only, results echo the Measure request.
TEST_F(AppSessionTest, APP_16_MeasuredEchoesTheMeasureRequestAfterItsReply) {
  const uint64_t socket = Bind(4000);
  AppRequest alloc = Request(20);
  alloc.mutable_allocate_qubit()->set_socket(socket);
  app::v1::Reply q = Call(alloc);
  ASSERT_EQ(q.code(), 0);
  EXPECT_EQ(session_.owned_qubits(), 1u);

  AppRequest cnot = Request(21);
  *cnot.mutable_gate()->mutable_qubit() = q.qubit();
  cnot.mutable_gate()->set_kind(physical::v1::GATE_KIND_CNOT);
  EXPECT_EQ(Call(cnot).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));  // APP-9
  EXPECT_TRUE(transport_.gates.empty());

  transport_.measure_inline_result = 1;  // the transport answers from inside Measure
  AppRequest m = Request(22);
  *m.mutable_measure()->mutable_qubit() = q.qubit();
  m.mutable_measure()->set_basis(physical::v1::BASIS_X);
  const size_t before = events_.size();
  app::v1::Reply reply = Call(m);
  ASSERT_EQ(reply.code(), 0);
  ASSERT_EQ(events_.size(), before + 2);
  ASSERT_TRUE(events_.back().has_measured());
  EXPECT_EQ(events_.back().request_id(), 22u);
  EXPECT_EQ(events_.back().measured().measurement(), reply.measurement());
  EXPECT_EQ(events_.back().measured().result(), 1u);
  // Consumed: a second Measure is refused without reaching the transport.
  EXPECT_EQ(Call(m).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(transport_.measured.size(), 1u);
  EXPECT_EQ(session_.owned_qubits(), 0u);
}

// APP-12, APP-15: delivered pairs are owned; an expired one is released by the node.
TEST_F(AppSessionTest, APP_15_ExpiredPairIsReleasedAndReported) {
  const uint64_t socket = Bind(4000);
  const uint64_t connection = Connect(socket);
  transport::Pair pair;
  pair.connection = connection;
  pair.pair_id = 1;
  pair.kept = true;
  pair.estimated_fidelity = 0.93;
  ListenerOf(socket)->OnPair(pair);
  ASSERT_TRUE(events_.back().has_pair());
  EXPECT_EQ(events_.back().request_id(), 0u);
  EXPECT_DOUBLE_EQ(events_.back().pair().estimated_fidelity(), 0.93);
  EXPECT_EQ(session_.owned_qubits(), 1u);
  ListenerOf(socket)->OnPairExpired(connection, 1, "circuit down");
  ASSERT_TRUE(events_.back().has_pair_expired());
  EXPECT_EQ(events_.back().pair_expired().pair_id(), 1u);
  ASSERT_EQ(transport_.released.size(), 1u);
  EXPECT_EQ(transport_.released[0], std::make_pair(connection, uint64_t{1}));
  EXPECT_EQ(session_.owned_qubits(), 0u);
}

// APP-13: shutting the session down releases its qubits and unbinds its sockets.
TEST_F(AppSessionTest, APP_13_ShutdownReleasesQubitsAndUnbinds) {
  const uint64_t s1 = Bind(4000, 1);
  const uint64_t s2 = Bind(4001, 2);
  const uint64_t connection = Connect(s1);
  transport::Pair pair;
  pair.connection = connection;
  pair.pair_id = 3;
  ListenerOf(s1)->OnPair(pair);
  AppRequest alloc = Request(9);
  alloc.mutable_allocate_qubit()->set_socket(s2);
  ASSERT_EQ(Call(alloc).code(), 0);
  const size_t events = events_.size();
  session_.Shutdown();
  EXPECT_EQ(transport_.released.size(), 2u);
  EXPECT_EQ(transport_.unbound, (std::vector<uint64_t>{s1, s2}));
  EXPECT_TRUE(transport_.sockets.empty());
  // Nothing more leaves the session.
  AppRequest late = Request(10);
  late.mutable_bind()->set_port(9);
  session_.Handle(late);
  EXPECT_EQ(events_.size(), events);
}

// APP-11: data and close only on the session's connections; Closed ends them.
TEST_F(AppSessionTest, APP_11_ClosedConnectionNoLongerAcceptsSend) {
  const uint64_t socket = Bind(4000);
  const uint64_t connection = Connect(socket, 50);
  AppRequest send = Request(51);
  send.mutable_send()->set_connection(connection);
  send.mutable_send()->set_data("hello");
  EXPECT_EQ(Call(send).code(), 0);
  ASSERT_EQ(transport_.sent.size(), 1u);
  EXPECT_EQ(transport_.sent[0].second, "hello");
  ListenerOf(socket)->OnClosed(connection, transport::CloseReason::kRefused, "no socket");
  ASSERT_TRUE(events_.back().has_closed());
  EXPECT_EQ(events_.back().closed().reason(), app::v1::CLOSE_REASON_REFUSED);
  EXPECT_EQ(events_.back().request_id(), 50u);  // the Connect that never came up
  send.set_request_id(52);
  EXPECT_EQ(Call(send).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(transport_.sent.size(), 1u);
}

}  // namespace
}  // namespace qnet::qnode
