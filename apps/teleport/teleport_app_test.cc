// TeleportApp against the exact two-node model of apps/testing/fake_network.h
// (specs/app-api.md APP-T1..APP-T8).
#include "apps/teleport/teleport_app.h"

#include <cmath>

#include "apps/lib/requests.h"
#include "apps/testing/fake_network.h"
#include "gtest/gtest.h"

namespace qnet::apps {
namespace {

struct AppPair {
  testing::FakeNetwork network;
  Rng sender_rng{11}, receiver_rng{12};
  TeleportApp sender, receiver;
  AppPair(double fidelity, uint32_t pairs, uint64_t seed = 1, uint32_t peer_port = 9)
      : network(fidelity, seed),
        sender(network.Client("a"), &sender_rng,
               TeleportOptions{TeleportOptions::Role::kSender, 8, "b", peer_port, pairs, 0.5, 1}),
        receiver(network.Client("b"), &receiver_rng,
                 TeleportOptions{TeleportOptions::Role::kReceiver, 9, "", 0, pairs, 0.0, 1}) {
    receiver.Start();
    network.Run();
    sender.Start();
    network.Run();
  }
};

// APP-T4, APP-T5: perfect pairs teleport every cardinal state perfectly.
TEST(TeleportAppTest, APP_T4_PerfectPairsGiveFidelityOne) {
  AppPair run(1.0, 600);
  ASSERT_TRUE(run.receiver.done());
  ASSERT_TRUE(run.sender.done());
  EXPECT_TRUE(run.receiver.status().ok()) << run.receiver.status();
  EXPECT_TRUE(run.sender.status().ok()) << run.sender.status();
  EXPECT_EQ(run.receiver.result().pairs, 600u);
  EXPECT_EQ(run.receiver.result().successes, 600u);
  EXPECT_DOUBLE_EQ(run.receiver.result().fidelity, 1.0);
  EXPECT_DOUBLE_EQ(run.receiver.result().stderr_, 0.0);
  EXPECT_EQ(run.network.errors(), 0u) << run.network.last_error();
}

// APP-T5: Werner pairs of fidelity F teleport with fidelity (2F+1)/3.
TEST(TeleportAppTest, APP_T5_WernerPairsGiveTwoFPlusOneOverThree) {
  for (double f : {0.9, 0.75}) {
    const uint32_t n = 4000;
    AppPair run(f, n, /*seed=*/static_cast<uint64_t>(f * 100));
    ASSERT_TRUE(run.receiver.done());
    ASSERT_TRUE(run.receiver.status().ok()) << run.receiver.status();
    const TeleportResult& r = run.receiver.result();
    const double expected = (2 * f + 1) / 3;
    const double sigma = std::sqrt(expected * (1 - expected) / n);
    EXPECT_EQ(r.pairs, n);
    EXPECT_NEAR(r.fidelity, expected, 4 * sigma) << "F " << f;
    EXPECT_NEAR(r.stderr_, sigma, 0.1 * sigma);  // the reported error is the binomial one
    EXPECT_NEAR(r.expected_fidelity, expected, 1e-12);
    EXPECT_EQ(run.network.errors(), 0u) << run.network.last_error();
  }
}

// APP-T3: the six states are drawn uniformly and prepared as the right eigenstates.
TEST(TeleportAppTest, APP_T2_CardinalStatesAreTheBasisEigenstates) {
  EXPECT_EQ(TeleportApp::StateBasis(0), physical::v1::BASIS_Z);
  EXPECT_EQ(TeleportApp::StateBasis(3), physical::v1::BASIS_X);
  EXPECT_EQ(TeleportApp::StateBasis(5), physical::v1::BASIS_Y);
  EXPECT_EQ(TeleportApp::StateOutcome(4), 0u);
  EXPECT_EQ(TeleportApp::StateOutcome(5), 1u);
}

// APP-T6: expired pairs are skipped at both ends and not counted.
TEST(TeleportAppTest, APP_T6_ExpiredPairsAreNotCounted) {
  testing::FakeNetwork network(1.0, 3);
  network.set_expire_every(4);
  Rng rs(1), rr(2);
  TeleportApp sender(network.Client("a"), &rs,
                     TeleportOptions{TeleportOptions::Role::kSender, 8, "b", 9, 200, 0.5, 2});
  TeleportApp receiver(network.Client("b"), &rr,
                       TeleportOptions{TeleportOptions::Role::kReceiver, 9, "", 0, 200, 0.0, 2});
  receiver.Start();
  sender.Start();
  network.Run();
  ASSERT_TRUE(receiver.done());
  EXPECT_TRUE(receiver.status().ok()) << receiver.status();
  EXPECT_EQ(receiver.result().pairs, 200u);
  EXPECT_EQ(receiver.result().successes, 200u);  // no expired pair slipped in
  EXPECT_GE(receiver.result().expired, 200u / 4);
  EXPECT_EQ(network.errors(), 0u);
}

// APP-T8: a refused connection ends the sender with an error in its result.
TEST(TeleportAppTest, APP_T8_RefusedConnectionIsAnError) {
  AppPair run(1.0, 10, 1, /*peer_port=*/77);
  ASSERT_TRUE(run.sender.done());
  EXPECT_FALSE(run.sender.status().ok());
  EXPECT_NE(run.sender.ResultJson().find("\"ok\": false"), std::string::npos);
  EXPECT_FALSE(run.receiver.done());
}

// APP-P3: the result JSON carries the numbers the summary reads.
TEST(TeleportAppTest, APP_P3_ResultJsonHasFidelityAndStderr) {
  AppPair run(1.0, 20);
  const std::string json = run.receiver.ResultJson();
  EXPECT_NE(json.find("\"pairs\": 20"), std::string::npos) << json;
  EXPECT_NE(json.find("\"fidelity\": 1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"stderr\": 0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"ok\": true"), std::string::npos) << json;
}

}  // namespace
}  // namespace qnet::apps

namespace qnet::apps {
namespace {

// APP-T7: a record that does not parse is ignored and counted.
TEST(TeleportAppTest, APP_T7_MalformedRecordsAreIgnoredAndCounted) {
  testing::FakeNetwork network(1.0, 1);
  Rng rr(2);
  TeleportApp receiver(network.Client("b"), &rr,
                       TeleportOptions{TeleportOptions::Role::kReceiver, 9, "", 0, 5, 0.0, 1});
  receiver.Start();
  network.Run();
  // A hand-driven peer: bind, connect, send junk.
  AppClient* peer = network.Client("a");
  uint64_t socket = 0, connection = 0;
  peer->SetHandlers({.on_event = [&](const app::v1::AppEvent& e) {
    if (e.has_reply() && e.reply().socket()) socket = e.reply().socket();
    if (e.has_connected()) connection = e.connected().connection();
  }});
  peer->Send(BindRequest(8));
  network.Run();
  peer->Send(ConnectRequest(socket, "b", 9, app::v1::Qos()));
  network.Run();
  ASSERT_NE(connection, 0u);
  for (const char* junk : {"T 1 9 0 0", "hello", "T x 1 0 0", "T 1 1 2 0"}) {
    peer->Send(SendRequest(connection, junk));
  }
  network.Run();
  EXPECT_EQ(receiver.malformed_records(), 4u);
  EXPECT_EQ(receiver.result().pairs, 0u);
  EXPECT_FALSE(receiver.done());
}

}  // namespace
}  // namespace qnet::apps
