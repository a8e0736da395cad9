// TransportLayer qubit operations and bad calls (specs/transport.md TRN-Q*,
// TRN-S1, TRN-S2, TRN-W3), on the FakeNetwork / FakeWorld.
#include <cmath>
#include <memory>

#include "gtest/gtest.h"
#include "stack/sim/simulator.h"
#include "transport/testing/fake_network.h"
#include "transport/testing/recorder.h"
#include "transport/transport_layer.h"

namespace qnet::transport {
namespace {

using testing::FakeNetwork;
using testing::FakeWorld;
using testing::Recorder;

class TransportQubitsTest : public ::testing::Test {
 protected:
  TransportQubitsTest() {
    net_ = std::make_unique<FakeNetwork>(&sim_, 5);
    a_ = &net_->AddNode("a");
    b_ = &net_->AddNode("b");
    ra_ = std::make_unique<Recorder>(a_);
    rb_ = std::make_unique<Recorder>(b_);
    sa_ = *a_->Bind(10, ra_.get());
    sb_ = *b_->Bind(20, rb_.get());
  }
  void RunFor(double s) { sim_.RunUntil(sim_.Now() + SecondsToDuration(s)); }
  std::vector<FakeWorld::Request> RequestsAt(const std::string& node) {
    std::vector<FakeWorld::Request> v;
    for (const auto& r : net_->world().requests()) {
      if (r.node == node) v.push_back(r);
    }
    return v;
  }

  sim::Simulator sim_;
  std::unique_ptr<FakeNetwork> net_;
  TransportLayer* a_ = nullptr;
  TransportLayer* b_ = nullptr;
  std::unique_ptr<Recorder> ra_, rb_;
  SocketId sa_ = 0, sb_ = 0;
};

// TRN-Q1, TRN-Q2, TRN-Q4: a local qubit is the lowest free slot with Init; a Z
// measurement of a fresh |0> gives 0 through OnMeasured with an even request
// id; the slot is back in the pool once the result arrived.
TEST_F(TransportQubitsTest, TRN_Q2_AllocateMeasureRelease) {
  link::MemoryPool& pool = net_->pool("a");
  absl::StatusOr<QubitRef> q = a_->AllocateQubit(sa_);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->connection, 0u);
  EXPECT_TRUE(pool.allocated(0));
  ASSERT_EQ(RequestsAt("a").size(), 1u);
  EXPECT_EQ(RequestsAt("a")[0].kind, "init");
  EXPECT_EQ(RequestsAt("a")[0].slot, 0u);
  absl::StatusOr<uint64_t> req = a_->Measure(*q, physical::v1::BASIS_Z, 0);
  ASSERT_TRUE(req.ok());
  EXPECT_TRUE(TransportLayer::OwnsRequestId(*req));
  RunFor(0.001);
  ASSERT_EQ(ra_->measured.count(*req), 1u);
  EXPECT_EQ(ra_->measured[*req], 0u);
  EXPECT_EQ(pool.free_count(), pool.capacity());
  EXPECT_EQ(pool.frees_sent(), 0u);  // measured away: Return, not Free
  // Release sends the physical Free.
  absl::StatusOr<QubitRef> q2 = a_->AllocateQubit(sa_);
  ASSERT_TRUE(q2.ok());
  ASSERT_TRUE(a_->Release(*q2).ok());
  EXPECT_EQ(pool.frees_sent(), 1u);
  EXPECT_EQ(pool.free_count(), pool.capacity());
}

// TRN-Q5: the angle measurement applies RY(-angle) before a Z measurement;
// with RY(t) = exp(-i t Y/2) that maps the +1 eigenvector (cos a/2, sin a/2)
// of cos(a) Z + sin(a) X onto |0>, i.e. outcome 0 means +1.
TEST_F(TransportQubitsTest, TRN_Q5_AngleMeasurementRotatesByMinusAngle) {
  const double angle = 0.7;
  QubitRef q = *a_->AllocateQubit(sa_);
  ASSERT_TRUE(a_->Measure(q, physical::v1::BASIS_UNSPECIFIED, angle).ok());
  const auto reqs = RequestsAt("a");
  ASSERT_EQ(reqs.size(), 3u);
  ASSERT_EQ(reqs[1].kind, "gate");
  EXPECT_EQ(reqs[1].gate, physical::v1::GATE_KIND_RY);
  EXPECT_EQ(reqs[2].kind, "measure");
  EXPECT_EQ(reqs[2].basis, physical::v1::BASIS_Z);
  const double t = reqs[1].angle;  // RY(t) = [[cos t/2, -sin t/2], [sin t/2, cos t/2]]
  const double v0 = std::cos(angle / 2), v1 = std::sin(angle / 2);
  const double out0 = std::cos(t / 2) * v0 - std::sin(t / 2) * v1;
  const double out1 = std::sin(t / 2) * v0 + std::cos(t / 2) * v1;
  EXPECT_NEAR(out0, 1.0, 1e-12);
  EXPECT_NEAR(out1, 0.0, 1e-12);
}

// TRN-Q6: BellMeasure of two owned qubits consumes both and reports the outcome.
TEST_F(TransportQubitsTest, TRN_Q6_BellMeasureConsumesBoth) {
  QubitRef q1 = *a_->AllocateQubit(sa_);
  QubitRef q2 = *a_->AllocateQubit(sa_);
  absl::StatusOr<uint64_t> req = a_->BellMeasure(q1, q2);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(a_->Release(q1).code(), absl::StatusCode::kNotFound);
  RunFor(0.001);
  ASSERT_EQ(ra_->bell.count(*req), 1u);
  EXPECT_NE(ra_->bell[*req], physical::v1::BELL_STATE_UNSPECIFIED);
  EXPECT_EQ(net_->pool("a").free_count(), net_->pool("a").capacity());
}

// TRN-Q3, TRN-Q9, TRN-S1: bad calls are errors, counted, and change nothing
// (no physical request, no slot taken, the qubit still usable).
TEST_F(TransportQubitsTest, TRN_Q9_BadCallsAreErrorsAndChangeNothing) {
  Recorder other(a_);
  const SocketId s2 = *a_->Bind(11, &other);
  QubitRef mine = *a_->AllocateQubit(sa_);
  QubitRef theirs = *a_->AllocateQubit(s2);
  const size_t requests = net_->world().requests().size();
  const uint32_t free_before = net_->pool("a").free_count();
  int bad = 0;
  auto expect_error = [&](absl::Status s, absl::StatusCode code) {
    EXPECT_EQ(s.code(), code) << s;
    ++bad;
  };
  expect_error(a_->Bind(0, &other).status(), absl::StatusCode::kInvalidArgument);
  expect_error(a_->Bind(10, &other).status(), absl::StatusCode::kAlreadyExists);
  expect_error(a_->Unbind(99), absl::StatusCode::kNotFound);
  expect_error(a_->Connect(99, "b", 20, Qos{}).status(), absl::StatusCode::kNotFound);
  expect_error(a_->Connect(sa_, "a", 20, Qos{}).status(), absl::StatusCode::kInvalidArgument);
  expect_error(a_->Connect(sa_, "b", 0, Qos{}).status(), absl::StatusCode::kInvalidArgument);
  Qos bad_fidelity;
  bad_fidelity.min_fidelity = 1.5;
  expect_error(a_->Connect(sa_, "b", 20, bad_fidelity).status(),
               absl::StatusCode::kInvalidArgument);
  expect_error(a_->Close(42), absl::StatusCode::kNotFound);
  expect_error(a_->Send(42, "x"), absl::StatusCode::kNotFound);
  expect_error(a_->Release({42, 1}), absl::StatusCode::kNotFound);
  expect_error(a_->Release({0, 999}), absl::StatusCode::kNotFound);
  expect_error(a_->Gate(mine, physical::v1::GATE_KIND_CNOT, 0), absl::StatusCode::kInvalidArgument);
  expect_error(a_->Gate(mine, physical::v1::GATE_KIND_RX, NAN), absl::StatusCode::kInvalidArgument);
  expect_error(a_->Gate({0, 999}, physical::v1::GATE_KIND_X, 0), absl::StatusCode::kNotFound);
  expect_error(a_->Measure(mine, static_cast<physical::v1::Basis>(9), 0).status(),
               absl::StatusCode::kInvalidArgument);
  expect_error(a_->Measure(mine, physical::v1::BASIS_UNSPECIFIED, INFINITY).status(),
               absl::StatusCode::kInvalidArgument);
  expect_error(a_->BellMeasure(mine, mine).status(), absl::StatusCode::kInvalidArgument);
  expect_error(a_->BellMeasure(mine, theirs).status(), absl::StatusCode::kPermissionDenied);
  expect_error(a_->AllocateQubit(99).status(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a_->stats().bad_calls, static_cast<uint64_t>(bad));
  EXPECT_EQ(net_->world().requests().size(), requests);
  EXPECT_EQ(net_->pool("a").free_count(), free_before);
  // Both qubits are still there; a second Release of one is an error.
  ASSERT_TRUE(a_->Release(mine).ok());
  EXPECT_EQ(a_->Release(mine).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(a_->Release(theirs).ok());
  EXPECT_EQ(a_->stats().bad_calls, static_cast<uint64_t>(bad + 1));
}

// TRN-Q7: results for requests the transport did not issue are counted drops.
TEST_F(TransportQubitsTest, TRN_Q7_UnknownResultsAreDropped) {
  physical::v1::MeasureResult m;
  m.set_request_id(1234);
  a_->OnMeasureResult(m);
  physical::v1::BellMeasureResult b;
  b.set_request_id(1236);
  a_->OnBellMeasureResult(b);
  EXPECT_EQ(a_->stats().drops, 2u);
  EXPECT_FALSE(TransportLayer::OwnsRequestId(0));
  EXPECT_FALSE(TransportLayer::OwnsRequestId(3));
}

// TRN-S2: Unbind frees the socket's qubits (kept pairs and local ones) and
// closes its connections; the peer hears kPeer.
TEST_F(TransportQubitsTest, TRN_S2_UnbindFreesQubitsAndClosesConnections) {
  ra_->auto_release = rb_->auto_release = false;
  ASSERT_TRUE(a_->AllocateQubit(sa_).ok());
  ASSERT_TRUE(a_->Connect(sa_, "b", 20, Qos{}).ok());
  RunFor(0.05);
  ASSERT_EQ(ra_->pairs.size(), 1u);             // window 1
  EXPECT_EQ(net_->pool("a").free_count(), 0u);  // the rest held back, generation waits
  ASSERT_TRUE(a_->Unbind(sa_).ok());
  EXPECT_TRUE(ra_->closed.empty());  // no callbacks after Unbind
  RunFor(0.05);
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kPeer);
  EXPECT_EQ(net_->pool("a").free_count(), net_->pool("a").capacity());
  // The port is free again.
  EXPECT_TRUE(a_->Bind(10, ra_.get()).ok());
}

// TRN-W3: pairs held back by the window are freed when the connection
// closes; the pair the owner holds stays usable until it releases it.
TEST_F(TransportQubitsTest, TRN_W3_HeldBackPairsFreedOnClose) {
  ra_->auto_release = rb_->auto_release = false;
  const ConnectionId c = *a_->Connect(sa_, "b", 20, Qos{});
  RunFor(0.1);
  ASSERT_EQ(ra_->pairs.size(), 1u);
  ASSERT_TRUE(a_->Close(c).ok());
  RunFor(0.1);
  EXPECT_EQ(net_->pool("a").free_count(), net_->pool("a").capacity() - 1);
  ASSERT_TRUE(a_->Release({c, 1}).ok());
  EXPECT_EQ(net_->pool("a").free_count(), net_->pool("a").capacity());
}

}  // namespace
}  // namespace qnet::transport
