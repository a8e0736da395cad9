// Unit tests of the node composition's pure parts: advertised link metrics,
// port assignment, and the <connection> workload against a fake transport.
#include <cmath>
#include <map>
#include <vector>

#include "absl/time/time.h"
#include "emulator/node/connection_workload.h"
#include "emulator/node/link_metrics.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"
#include "stack/sim/simulator.h"

namespace qnet::node {
namespace {

LinkSpec WernerLink() {
  LinkSpec l;
  l.name = "ab";
  l.a = "a";
  l.b = "b";
  l.scheme = HeraldingScheme::kWerner;
  l.attempt_s = 10e-6;
  l.p_success = 0.01;
  l.fidelity = 0.95;
  return l;
}

// Werner links advertise 1/p cycles per pair and their fidelity F.
TEST(LinkMetricsTest, WernerLinkAdvertisesCyclesOverPAndItsFidelity) {
  const network::LocalLink l = LinkMetricsFor(WernerLink(), "b");
  EXPECT_EQ(l.link, "ab");
  EXPECT_EQ(l.neighbour, "a");
  EXPECT_NEAR(l.pair_time_s, 10e-6 / 0.01, 1e-12);
  EXPECT_DOUBLE_EQ(l.fidelity, 0.95);
}

// Long werner links: the cycle is the round trip to the midpoint, not attempt-s.
TEST(LinkMetricsTest, LongLinkUsesTheAttemptCycle) {
  LinkSpec link = WernerLink();
  link.length_km = 20;
  const network::LocalLink l = LinkMetricsFor(link, "a");
  EXPECT_NEAR(l.pair_time_s, absl::ToDoubleSeconds(AttemptCycle(link)) / 0.01, 1e-12);
  EXPECT_GT(l.pair_time_s, 10e-6 / 0.01 * 4);
}

// Single-click without a fixed alpha: figures at the alpha chosen for the
// reference fidelity; with a fixed alpha, at that alpha.
TEST(LinkMetricsTest, SingleClickUsesTheReferenceOrFixedAlpha) {
  LinkSpec link;
  link.name = "ab";
  link.a = "a";
  link.b = "b";
  link.length_km = 2;
  link.efficiency = 0.4;
  link.dark_count_prob = 1e-4;
  link.visibility = 0.95;
  const network::LocalLink free = LinkMetricsFor(link, "a");
  EXPECT_NEAR(free.fidelity, kReferenceLinkFidelity, 1e-6);
  const double alpha = ReferenceAlpha(link);
  EXPECT_NEAR(free.pair_time_s,
              absl::ToDoubleSeconds(AttemptCycle(link)) / SuccessProbability(link, alpha), 1e-12);
  link.alpha = 0.2;
  const network::LocalLink fixed = LinkMetricsFor(link, "a");
  EXPECT_NEAR(fixed.fidelity, HeraldedFidelity(link, 0.2), 1e-12);
  EXPECT_LT(fixed.pair_time_s, free.pair_time_s);  // brighter: faster
}

TEST(LinkMetricsTest, MemoryTimeIsTheShortestOrZeroForInfinite) {
  HardwareSpec hw;
  EXPECT_EQ(MemoryTimeOf(hw), 0.0);
  hw.t1_s = 2;
  hw.t2_s = 0.5;
  hw.depolar_s = 1;
  EXPECT_EQ(MemoryTimeOf(hw), 0.5);
}

Topology TwoConnections() {
  Topology t;
  t.nodes = {{"a", "hw", 0}, {"b", "hw", 0}, {"c", "hw", 0}};
  ConnectionSpec c1;
  c1.name = "c1";
  c1.from = "a";
  c1.to = "c";
  c1.pairs = 3;
  c1.start_s = 0.5;
  c1.hold_s = 0.1;
  ConnectionSpec c2 = c1;
  c2.name = "c2";
  c2.from = "b";
  c2.kind = RequestKind::kMeasure;
  c2.basis = BasisSet::kZ;
  ConnectionSpec c3 = c1;
  c3.name = "c3";
  c3.port = 1000;  // explicit: the assigned ones skip it
  t.connections = {c1, c2, c3};
  AppSpec app;
  app.node = "a";
  app.peer = "c";
  t.apps = {app};
  return t;
}

TEST(AssignPortsTest, ZeroPortsGetTheFirstFreeFrom1000AtTheListeningNode) {
  const AssignedPorts p = AssignPorts(TwoConnections());
  EXPECT_EQ(p.connections, (std::vector<uint32_t>{1001, 1002, 1000}));
  EXPECT_EQ(p.apps, (std::vector<uint32_t>{1003}));
}

TEST(QosTest, ConnectionAttributesBecomeTheQos) {
  ConnectionSpec c;
  c.min_fidelity = 0.8;
  c.pairs = 7;
  c.kind = RequestKind::kMeasure;
  c.basis = BasisSet::kXYZ;
  c.min_rate_hz = 3;
  c.cutoff_s = 0.01;
  c.window = 2;
  const transport::Qos q = QosOf(c);
  EXPECT_EQ(q.min_fidelity, 0.8);
  EXPECT_EQ(q.pairs, 7u);
  EXPECT_EQ(q.type, transport::PairType::kMeasure);
  EXPECT_EQ(q.basis, link::v1::BASIS_CHOICE_XYZ);
  EXPECT_EQ(q.min_rate_hz, 3);
  EXPECT_EQ(q.window, 2u);
  ASSERT_TRUE(q.cutoff.has_value());
  EXPECT_EQ(*q.cutoff, absl::Milliseconds(10));
}

// Records calls; tests drive the listener directly.
class FakeTransport : public transport::TransportService {
 public:
  struct ConnectCall {
    transport::SocketId socket;
    std::string node;
    uint32_t port;
    transport::Qos qos;
    Time at;
  };
  explicit FakeTransport(const Runtime* rt) : rt_(rt) {}
  absl::StatusOr<transport::SocketId> Bind(uint32_t port, transport::SocketListener*) override {
    if (port == 0 || bound.contains(port)) return absl::AlreadyExistsError("taken");
    bound[port] = next_++;
    return bound[port];
  }
  absl::Status Unbind(transport::SocketId) override { return absl::OkStatus(); }
  absl::StatusOr<transport::ConnectionId> Connect(transport::SocketId socket,
                                                  const std::string& node, uint32_t port,
                                                  const transport::Qos& qos) override {
    connects.push_back({socket, node, port, qos, rt_->Now()});
    return next_++;
  }
  absl::Status Close(transport::ConnectionId) override { return absl::OkStatus(); }
  absl::Status Send(transport::ConnectionId, std::string) override { return absl::OkStatus(); }
  absl::Status Release(const transport::QubitRef& q) override {
    releases.push_back({q.id, rt_->Now()});
    return absl::OkStatus();
  }
  absl::StatusOr<transport::QubitRef> AllocateQubit(transport::SocketId) override {
    return absl::UnimplementedError("");
  }
  absl::Status Gate(const transport::QubitRef&, physical::v1::GateKind, double) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<uint64_t> Measure(const transport::QubitRef&, physical::v1::Basis,
                                   double) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<uint64_t> BellMeasure(const transport::QubitRef&,
                                       const transport::QubitRef&) override {
    return absl::UnimplementedError("");
  }

  std::map<uint32_t, transport::SocketId> bound;
  std::vector<ConnectCall> connects;
  std::vector<std::pair<uint64_t, Time>> releases;

 private:
  const Runtime* rt_;
  uint64_t next_ = 100;
};

TEST(ConnectionWorkloadTest, ResponderBindsAtStartInitiatorConnectsAtStartTime) {
  const Topology t = TwoConnections();
  sim::Simulator sim;
  NullTracer tracer;
  FakeTransport at_c(&sim), at_a(&sim);
  ConnectionWorkload c(t, "c", &sim, &at_c, &tracer);
  ConnectionWorkload a(t, "a", &sim, &at_a, &tracer);
  c.Start();
  a.Start();
  // c listens on each connection port once.
  EXPECT_EQ(at_c.bound.size(), 3u);
  EXPECT_TRUE(at_c.bound.contains(1000) && at_c.bound.contains(1001) && at_c.bound.contains(1002));
  EXPECT_TRUE(at_a.connects.empty());
  sim.RunUntil(Time::FromSeconds(1));
  ASSERT_EQ(at_a.connects.size(), 2u);  // c1 and c3 start at a
  EXPECT_EQ(at_a.connects[0].at, Time::FromSeconds(0.5));
  EXPECT_EQ(at_a.connects[0].node, "c");
  EXPECT_EQ(at_a.connects[0].port, 1001u);
  EXPECT_EQ(at_a.connects[0].qos.pairs, 3u);
  EXPECT_EQ(at_a.connects[1].port, 1000u);
}

// Kept pairs are released hold-s after delivery; measured pairs are counted.
TEST(ConnectionWorkloadTest, KeptPairsAreReleasedAfterTheirHold) {
  const Topology t = TwoConnections();
  sim::Simulator sim;
  NullTracer tracer;
  FakeTransport at_a(&sim);
  ConnectionWorkload a(t, "a", &sim, &at_a, &tracer);
  a.Start();
  sim.RunUntil(Time::FromSeconds(0.5));
  ASSERT_FALSE(at_a.connects.empty());
  const transport::ConnectionId conn = 101;  // c1's id from the fake (socket 100)
  transport::Pair pair;
  pair.connection = conn;
  pair.pair_id = 1;
  a.OnPair(pair);
  pair.pair_id = 2;
  sim.RunUntil(Time::FromSeconds(0.55));
  a.OnPair(pair);
  sim.RunUntil(Time::FromSeconds(2));
  ASSERT_EQ(at_a.releases.size(), 2u);
  EXPECT_EQ(at_a.releases[0].first, 1u);
  EXPECT_EQ(at_a.releases[0].second, Time::FromSeconds(0.6));
  EXPECT_EQ(at_a.releases[1].second, Time::FromSeconds(0.65));
  const ConnectionCounts* counts = a.counts("c1");
  ASSERT_NE(counts, nullptr);
  EXPECT_EQ(counts->pairs, 2u);
  EXPECT_EQ(counts->released, 2u);
  EXPECT_EQ(counts->pair_ids, (std::vector<uint64_t>{1, 2}));
}

TEST(ConnectionWorkloadTest, ResponderMatchesTheConnectionByPeerAndCountsMeasurements) {
  const Topology t = TwoConnections();
  sim::Simulator sim;
  NullTracer tracer;
  FakeTransport at_c(&sim);
  ConnectionWorkload c(t, "c", &sim, &at_c, &tracer);
  c.Start();
  transport::ConnectionInfo info;
  info.connection = 7;
  info.socket = at_c.bound[1002];
  info.peer_node = "b";
  c.OnConnected(info);
  transport::Pair pair;
  pair.connection = 7;
  pair.pair_id = 1;
  pair.kept = false;
  pair.result = 1;
  c.OnPair(pair);
  c.OnPairExpired(7, 1, "gone");
  c.OnClosed(7, transport::CloseReason::kDone, "");
  const ConnectionCounts* counts = c.counts("c2");
  ASSERT_NE(counts, nullptr);
  EXPECT_TRUE(counts->connected);
  EXPECT_EQ(counts->measured, 1u);
  EXPECT_EQ(counts->ones, 1u);
  EXPECT_EQ(counts->expired, 1u);
  EXPECT_EQ(counts->closed, transport::CloseReason::kDone);
  EXPECT_TRUE(at_c.releases.empty());
  EXPECT_EQ(c.counts("c1")->pairs, 0u);
}

}  // namespace
}  // namespace qnet::node
