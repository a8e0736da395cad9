// TransportLayer connections, pairs, reliability, expiry, reroute and close
// (specs/transport.md), two transports joined by the FakeNetwork in virtual
// time. Requirement ids in the test names.
#include "transport/transport_layer.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <set>

#include "gtest/gtest.h"
#include "stack/sim/simulator.h"
#include "transport/testing/fake_network.h"
#include "transport/testing/recorder.h"

namespace qnet::transport {
namespace {

using testing::FakeNetwork;
using testing::Recorder;

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v(to - from + 1);
  std::iota(v.begin(), v.end(), from);
  return v;
}

class TransportTest : public ::testing::Test {
 protected:
  void Build(TransportOptions options = {}, uint32_t b_memories = 0) {
    net_ = std::make_unique<FakeNetwork>(&sim_, 11);
    a_ = &net_->AddNode("a", options);
    b_ = &net_->AddNode("b", options, b_memories);
    ra_ = std::make_unique<Recorder>(a_);
    rb_ = std::make_unique<Recorder>(b_);
    sa_ = *a_->Bind(10, ra_.get());
    sb_ = *b_->Bind(20, rb_.get());
  }
  void SetUp() override { Build(); }
  ConnectionId Connect(const Qos& qos) {
    absl::StatusOr<ConnectionId> c = a_->Connect(sa_, "b", 20, qos);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.value_or(0);
  }
  void RunFor(double s) { sim_.RunUntil(sim_.Now() + SecondsToDuration(s)); }
  void ExpectPoolsFull() {
    EXPECT_EQ(net_->pool("a").free_count(), net_->pool("a").capacity());
    EXPECT_EQ(net_->pool("b").free_count(), net_->pool("b").capacity());
  }

  sim::Simulator sim_;
  std::unique_ptr<FakeNetwork> net_;
  TransportLayer* a_ = nullptr;
  TransportLayer* b_ = nullptr;
  std::unique_ptr<Recorder> ra_, rb_;
  SocketId sa_ = 0, sb_ = 0;
};

// TRN-H1, TRN-P1, TRN-P2: both ends are told of the connection, and get the
// same pair ids 1, 2, 3, ... in the same order; the responder at most one
// pair behind (one delay, pairs every two delays).
TEST_F(TransportTest, TRN_P2_SameIdsInTheSameOrderAtBothEnds) {
  const ConnectionId c = Connect(Qos{});
  RunFor(1.0);
  ASSERT_EQ(ra_->connected.size(), 1u);
  ASSERT_EQ(rb_->connected.size(), 1u);
  EXPECT_EQ(ra_->connected[0].peer_node, "b");
  EXPECT_EQ(rb_->connected[0].peer_node, "a");
  EXPECT_EQ(rb_->connected[0].peer_port, 10u);
  EXPECT_TRUE(ra_->connected[0].initiator);
  EXPECT_FALSE(rb_->connected[0].initiator);
  const std::vector<uint64_t> at_a = ra_->ids(), at_b = rb_->ids();
  ASSERT_GT(at_a.size(), 400u);  // 2 ms per pair for ~1 s
  EXPECT_EQ(at_a, Range(1, at_a.size()));
  EXPECT_EQ(at_b, Range(1, at_b.size()));
  EXPECT_LE(at_a.size() - at_b.size(), 1u);
  EXPECT_EQ(ra_->release_errors + rb_->release_errors, 0);
  EXPECT_EQ(a_->connection_info(c)->path, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(a_->Close(c).ok());
  RunFor(1.0);
  ExpectPoolsFull();
  EXPECT_EQ(a_->stats().drops + b_->stats().drops, 0u);
}

// TRN-R1 .. TRN-R3 through the layer: with 20 % of all datagrams lost, the
// handshake completes and 50 messages each way arrive once, in order.
TEST_F(TransportTest, TRN_R3_DataReliableAndOrderedUnderLoss) {
  net_->set_loss(0.2);
  const ConnectionId c = Connect(Qos{});
  std::vector<std::string> want_at_a, want_at_b;
  for (int i = 0; i < 50; ++i) {
    want_at_b.push_back("a" + std::to_string(i));
    ASSERT_TRUE(a_->Send(c, want_at_b.back()).ok());  // queued before the handshake
  }
  RunFor(0.5);
  ASSERT_EQ(rb_->connected.size(), 1u);
  const ConnectionId cb = rb_->connected[0].connection;
  for (int i = 0; i < 50; ++i) {
    want_at_a.push_back("b" + std::to_string(i));
    ASSERT_TRUE(b_->Send(cb, want_at_a.back()).ok());
  }
  RunFor(20);
  EXPECT_EQ(rb_->data, want_at_b);
  EXPECT_EQ(ra_->data, want_at_a);
  EXPECT_TRUE(ra_->closed.empty());
  EXPECT_TRUE(rb_->closed.empty());
  EXPECT_GT(net_->stats().datagrams_lost, 0u);
}

// TRN-E1, TRN-E2: a pair the head delivered but the tail did not get (Nack)
// is reported expired at the head only; the tail never hands it out.
TEST_F(TransportTest, TRN_E1_NackedPairExpiresAtTheHeadOnly) {
  net_->NackSeqs({3});
  Connect(Qos{});
  RunFor(0.1);
  EXPECT_EQ(ra_->expired, (std::vector<uint64_t>{3}));
  EXPECT_TRUE(rb_->expired.empty());
  const std::vector<uint64_t> at_b = rb_->ids();
  ASSERT_GT(at_b.size(), 10u);
  EXPECT_EQ(std::count(at_b.begin(), at_b.end(), 3u), 0);
  EXPECT_EQ(std::vector<uint64_t>(at_b.begin(), at_b.begin() + 3),
            (std::vector<uint64_t>{1, 2, 4}));
}

// TRN-E1 .. TRN-E4, TRN-F1, TRN-F2: the circuit fails after the tail got pair
// 5 but before its ack reached the head: both ends report 5 expired; the head
// opens a new circuit and ids go on from 6 at both ends.
TEST_F(TransportTest, TRN_F2_RerouteAfterFailureKeepsNumberingAndExpiresAtBothEnds) {
  rb_->on_pair = [&](const Pair& p) {
    if (p.pair_id == 5) {
      sim_.Schedule(sim_.Now() + absl::Microseconds(500),
                    [&] { net_->FailCircuits(network::v1::CIRCUIT_ERROR_LINK_FAILURE); });
    }
  };
  const ConnectionId c = Connect(Qos{});
  RunFor(0.3);
  EXPECT_EQ(ra_->expired, (std::vector<uint64_t>{5}));
  EXPECT_EQ(rb_->expired, (std::vector<uint64_t>{5}));
  ASSERT_EQ(net_->circuits().size(), 2u);
  EXPECT_EQ(a_->stats().reroutes, 1u);
  const std::vector<uint64_t> at_a = ra_->ids(), at_b = rb_->ids();
  ASSERT_GT(at_b.size(), 20u);
  EXPECT_EQ(at_a, Range(1, at_a.size()));  // no id twice, none skipped
  EXPECT_EQ(at_b, Range(1, at_b.size()));
  EXPECT_TRUE(ra_->closed.empty());
  EXPECT_EQ(a_->connection_info(c)->path, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(net_->circuit_live(net_->circuits()[1]));
}

// TRN-F3: when no new circuit can be opened, the head gives up after
// max_reroutes attempts with backoff, and both ends close with kFailed.
TEST_F(TransportTest, TRN_F3_GivesUpAfterBoundedReroutes) {
  Connect(Qos{});
  RunFor(0.05);
  ASSERT_FALSE(ra_->pairs.empty());
  net_->RefuseOpens(1000);
  net_->FailCircuits(network::v1::CIRCUIT_ERROR_LINK_FAILURE);
  RunFor(0.6);  // backoffs 20+40+80+160+320 ms: not yet given up
  EXPECT_TRUE(ra_->closed.empty());
  RunFor(0.2);
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kFailed);
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kFailed);
  EXPECT_EQ(net_->circuits().size(), 1u);
  RunFor(3);
  ExpectPoolsFull();
}

// TRN-F3: no circuit ever came up -> kUnreachable at both ends.
TEST_F(TransportTest, TRN_F3_UnreachableWhenNoCircuitComesUp) {
  net_->RefuseOpens(1000);
  Connect(Qos{});
  RunFor(2);
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kUnreachable);
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kUnreachable);
}

// TRN-F3: an OpenCircuit refusal a retry cannot change (NOTIME:
// FAILED_PRECONDITION) ends the connection at once, without reroutes.
TEST_F(TransportTest, TRN_F3_InfeasibleCircuitIsUnreachableAtOnce) {
  net_->RefuseOpens(1000, absl::StatusCode::kFailedPrecondition);
  Qos qos;
  qos.min_fidelity = 0.99;
  Connect(qos);
  RunFor(0.01);  // handshake 2 ms, no backoff
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kUnreachable);
  RunFor(0.01);
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kUnreachable);
}

// TRN-H2: no socket at the remote port -> kRefused, nothing left open.
TEST_F(TransportTest, TRN_H2_RefusedWithoutSocket) {
  ASSERT_TRUE(a_->Connect(sa_, "b", 99, Qos{}).ok());
  RunFor(0.1);
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kRefused);
  EXPECT_TRUE(rb_->connected.empty());
  EXPECT_EQ(b_->stats().connects_refused, 1u);
  EXPECT_TRUE(net_->circuits().empty());
}

// TRN-H5: a window above the memories of either end is refused: at Connect
// (this end) or by the responder (its end).
TEST_F(TransportTest, TRN_H5_WindowAboveMemoriesRefused) {
  Build({}, /*b_memories=*/2);
  Qos qos;
  qos.window = 9;
  EXPECT_EQ(a_->Connect(sa_, "b", 20, qos).status().code(), absl::StatusCode::kInvalidArgument);
  qos.window = 3;
  ASSERT_TRUE(a_->Connect(sa_, "b", 20, qos).ok());
  RunFor(0.1);
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kRefused);
  EXPECT_NE(ra_->closed[0].detail.find("memories"), std::string::npos);
}

// TRN-H3: a Connect never answered ends with kUnreachable after the bounded
// retransmissions.
TEST_F(TransportTest, TRN_H3_UnansweredConnectIsUnreachable) {
  net_->set_drop([](const std::string&, const std::string&, const std::string&) { return true; });
  Connect(Qos{});
  RunFor(30);
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kUnreachable);
  EXPECT_EQ(net_->stats().datagrams, TransportOptions().max_connect_attempts);
}

// TRN-S3, TRN-S4: the responder closes: its owner hears kLocal, the
// initiator's kPeer; the circuit is gone, later calls on the id fail.
TEST_F(TransportTest, TRN_S4_CloseByResponderReachesInitiator) {
  const ConnectionId c = Connect(Qos{});
  RunFor(0.05);
  ASSERT_EQ(rb_->connected.size(), 1u);
  const ConnectionId cb = rb_->connected[0].connection;
  ASSERT_TRUE(b_->Close(cb).ok());
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kLocal);
  RunFor(0.05);
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kPeer);
  EXPECT_FALSE(net_->circuit_live(net_->circuits()[0]));
  EXPECT_EQ(a_->Send(c, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b_->Close(cb).code(), absl::StatusCode::kNotFound);
  // Every id one end had is at the other or reported expired there.
  const std::vector<uint64_t> at_a = ra_->ids(), at_b = rb_->ids();
  std::set<uint64_t> a_ok(at_a.begin(), at_a.end());
  for (uint64_t e : ra_->expired) a_ok.erase(e);
  std::set<uint64_t> b_ok(at_b.begin(), at_b.end());
  for (uint64_t e : rb_->expired) b_ok.erase(e);
  EXPECT_EQ(a_ok, b_ok);
  RunFor(3);
  ExpectPoolsFull();
}

// TRN-D1 .. TRN-D3: pairs N: both ends get exactly ids 1..N, then kDone.
TEST_F(TransportTest, TRN_D3_PairsNThenDoneAtBothEnds) {
  Qos qos;
  qos.pairs = 20;
  Connect(qos);
  RunFor(1);
  EXPECT_EQ(ra_->ids(), Range(1, 20));
  EXPECT_EQ(rb_->ids(), Range(1, 20));
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kDone);
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kDone);
  EXPECT_TRUE(ra_->expired.empty());
  EXPECT_FALSE(net_->circuit_live(net_->circuits()[0]));
  RunFor(3);
  ExpectPoolsFull();
}

// TRN-W1, TRN-W2: with window 2 and an owner that does not release, each
// end hands out 2 pairs; generation stops when memory runs out; a Release
// hands out the next pair at once.
TEST_F(TransportTest, TRN_W2_WindowHoldsBackPairsUntilRelease) {
  ra_->auto_release = rb_->auto_release = false;
  Qos qos;
  qos.window = 2;
  const ConnectionId c = Connect(qos);
  RunFor(0.2);
  EXPECT_EQ(ra_->ids(), Range(1, 2));
  EXPECT_EQ(rb_->ids(), Range(1, 2));
  EXPECT_EQ(net_->stats().pairs, 8u);  // 8 memories per node
  ASSERT_TRUE(a_->Release({c, 1}).ok());
  EXPECT_EQ(ra_->ids(), Range(1, 3));
  EXPECT_EQ(a_->Release({c, 4}).code(), absl::StatusCode::kNotFound);  // not handed out yet
}

// TRN-W4, TRN-M1: the circuit's depth is the connection's window, for kept
// and for measured pairs; only a measure connection opens a measure circuit.
TEST_F(TransportTest, TRN_W4_CircuitDepthIsTheWindow) {
  Qos keep;
  keep.window = 3;
  Connect(keep);
  Qos measure;
  measure.type = PairType::kMeasure;
  measure.window = 5;
  Connect(measure);
  RunFor(0.1);
  const std::vector<network::CircuitKey> keys = net_->circuits();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(net_->circuit_depth(keys[0]), 3u);
  EXPECT_FALSE(net_->circuit_measures(keys[0]));
  EXPECT_EQ(net_->circuit_depth(keys[1]), 5u);
  EXPECT_TRUE(net_->circuit_measures(keys[1]));
}

// TRN-M1 .. TRN-M3: measure type with XYZ: each end measures at once in its
// own random basis; same basis -> equal outcomes in Z and X, opposite in Y;
// every slot goes back to the pool.
TEST_F(TransportTest, TRN_M3_MeasuredPairsReportRawOutcomesPerBasis) {
  Qos qos;
  qos.type = PairType::kMeasure;
  qos.basis = link::v1::BASIS_CHOICE_XYZ;
  qos.pairs = 300;
  Connect(qos);
  RunFor(3);
  ASSERT_EQ(ra_->pairs.size(), 300u);
  ASSERT_EQ(rb_->pairs.size(), 300u);
  std::map<physical::v1::Basis, int> bases;
  int same = 0;
  for (size_t i = 0; i < 300; ++i) {
    const Pair& pa = ra_->pairs[i];
    const Pair& pb = rb_->pairs[i];
    ASSERT_EQ(pa.pair_id, pb.pair_id);
    EXPECT_FALSE(pa.kept);
    ++bases[pa.basis];
    if (pa.basis != pb.basis) continue;
    ++same;
    if (pa.basis == physical::v1::BASIS_Y) {
      EXPECT_NE(pa.result, pb.result) << pa.pair_id;
    } else {
      EXPECT_EQ(pa.result, pb.result) << pa.pair_id;
    }
  }
  EXPECT_NEAR(same, 100, 30);  // 1/3 of 300, +-3.5 sigma
  for (auto basis : {physical::v1::BASIS_X, physical::v1::BASIS_Y, physical::v1::BASIS_Z}) {
    EXPECT_NEAR(bases[basis], 100, 30);
  }
  RunFor(3);
  ExpectPoolsFull();
}

// TRN-M2a: a biased XZ choice draws Z with the initiator's z_probability at
// both ends (the responder learns it in the handshake); matching-Z outcomes agree.
TEST_F(TransportTest, TRN_M2a_BiasedBasisChoiceAtBothEnds) {
  Qos qos;
  qos.type = PairType::kMeasure;
  qos.basis = link::v1::BASIS_CHOICE_XZ;
  qos.z_probability = 0.9;
  qos.pairs = 400;
  Connect(qos);
  RunFor(4);
  ASSERT_EQ(ra_->pairs.size(), 400u);
  ASSERT_EQ(rb_->pairs.size(), 400u);
  int z_a = 0, z_b = 0;
  for (size_t i = 0; i < 400; ++i) {
    const Pair& pa = ra_->pairs[i];
    const Pair& pb = rb_->pairs[i];
    z_a += pa.basis == physical::v1::BASIS_Z;
    z_b += pb.basis == physical::v1::BASIS_Z;
    if (pa.basis == pb.basis) EXPECT_EQ(pa.result, pb.result) << pa.pair_id;
  }
  // 360 expected, sigma = sqrt(400 * 0.9 * 0.1) = 6: +-4 sigma.
  EXPECT_NEAR(z_a, 360, 24);
  EXPECT_NEAR(z_b, 360, 24);
}

// TRN-M2: a fixed basis is used at both ends for every pair.
TEST_F(TransportTest, TRN_M2_FixedBasisZGivesEqualOutcomes) {
  Qos qos;
  qos.type = PairType::kMeasure;
  qos.basis = link::v1::BASIS_CHOICE_Z;
  qos.pairs = 50;
  Connect(qos);
  RunFor(1);
  ASSERT_EQ(rb_->pairs.size(), 50u);
  int ones = 0;
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(ra_->pairs[i].basis, physical::v1::BASIS_Z);
    EXPECT_EQ(rb_->pairs[i].basis, physical::v1::BASIS_Z);
    EXPECT_EQ(ra_->pairs[i].result, rb_->pairs[i].result);
    ones += ra_->pairs[i].result;
  }
  EXPECT_GT(ones, 10);
  EXPECT_LT(ones, 40);
}

// TRN-H6: undecodable datagrams and messages naming no connection of the
// sender are dropped and counted, with no effect.
TEST_F(TransportTest, TRN_H6_BadDatagramsAreCountedDrops) {
  a_->OnDatagram("b", std::string("\xff\xff\xff", 3));
  v1::TransportMessage m;
  m.set_dst_connection(77);
  m.set_src_connection(1);
  m.mutable_segment()->set_seq(1);
  m.mutable_segment()->mutable_data()->set_bytes("x");
  a_->OnDatagram("b", m.SerializeAsString());
  EXPECT_EQ(a_->stats().drops, 2u);
  const ConnectionId c = Connect(Qos{});
  RunFor(0.05);
  m.set_dst_connection(c);  // right id, wrong sender node
  a_->OnDatagram("c", m.SerializeAsString());
  EXPECT_EQ(a_->stats().drops, 3u);
  EXPECT_TRUE(ra_->data.empty());
}

// TRN-P3: a circuit naming no live connection is refused at the tail.
TEST_F(TransportTest, TRN_P3_CircuitForUnknownConnectionRefused) {
  network::CircuitInfo info;
  info.key = {"a", 99};
  info.remote_node = "a";
  v1::CircuitUpper upper;
  upper.set_connection(5);
  upper.set_first_pair_id(1);
  info.upper = upper.SerializeAsString();
  EXPECT_FALSE(b_->OnIncomingCircuit(info).ok());
  info.upper = "garbage";
  EXPECT_FALSE(b_->OnIncomingCircuit(info).ok());
  EXPECT_EQ(b_->stats().drops, 2u);
}

// TRN-S6: Close before the Accept arrives; the responder's end closes too.
TEST_F(TransportTest, TRN_S6_CloseWhileConnectingClosesTheResponder) {
  const ConnectionId c = Connect(Qos{});
  ASSERT_TRUE(a_->Close(c).ok());
  ASSERT_EQ(ra_->closed.size(), 1u);
  EXPECT_EQ(ra_->closed[0].reason, CloseReason::kLocal);
  RunFor(0.1);
  ASSERT_EQ(rb_->connected.size(), 1u);
  ASSERT_EQ(rb_->closed.size(), 1u);
  EXPECT_EQ(rb_->closed[0].reason, CloseReason::kPeer);
  EXPECT_TRUE(net_->circuits().empty());
  EXPECT_EQ(a_->stats().drops + b_->stats().drops, 0u);
}

// TRN-P2: two connections between the same sockets share memory but number
// their pairs independently, each the same at both ends.
TEST_F(TransportTest, TRN_P2_TwoConnectionsNumberIndependently) {
  const ConnectionId c1 = Connect(Qos{});
  const ConnectionId c2 = Connect(Qos{});
  RunFor(0.5);
  ASSERT_EQ(rb_->connected.size(), 2u);
  std::map<ConnectionId, ConnectionId> peer_of;  // responder id -> initiator id
  for (const ConnectionInfo& info : rb_->connected) {
    peer_of[info.connection] = info.connection == rb_->connected[0].connection ? c1 : c2;
  }
  std::map<ConnectionId, std::vector<uint64_t>> at_a, at_b;
  for (const Pair& p : ra_->pairs) at_a[p.connection].push_back(p.pair_id);
  for (const Pair& p : rb_->pairs) at_b[peer_of[p.connection]].push_back(p.pair_id);
  for (ConnectionId c : {c1, c2}) {
    ASSERT_GT(at_b[c].size(), 100u);
    EXPECT_EQ(at_a[c], Range(1, at_a[c].size()));
    EXPECT_EQ(at_b[c], Range(1, at_b[c].size()));
    EXPECT_LE(at_a[c].size() - at_b[c].size(), 1u);
  }
}

}  // namespace
}  // namespace qnet::transport
