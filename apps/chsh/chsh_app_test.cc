// ChshApp against the exact two-node model of apps/testing/fake_network.h
// (specs/app-api.md APP-H1..APP-H6).
#include "apps/chsh/chsh_app.h"

#include <cmath>
#include <numbers>

#include "apps/lib/requests.h"
#include "apps/testing/fake_network.h"
#include "gtest/gtest.h"

namespace qnet::apps {
namespace {

struct AppPair {
  testing::FakeNetwork network;
  Rng a_rng{21}, b_rng{22};
  ChshApp a, b;
  AppPair(double fidelity, uint32_t pairs, uint64_t seed, uint64_t expire_every = 0)
      : network(fidelity, seed),
        a(network.Client("a"), &a_rng, ChshOptions{ChshOptions::Role::kA, 8, "b", 9, pairs, 0, 1}),
        b(network.Client("b"), &b_rng, ChshOptions{ChshOptions::Role::kB, 9, "", 0, pairs, 0, 1}) {
    network.set_expire_every(expire_every);
    b.Start();
    network.Run();
    a.Start();
    network.Run();
  }
};

// APP-H3, APP-H4: S = 2 sqrt2 w within its reported standard error.
TEST(ChshAppTest, APP_H4_SIsTwoSqrtTwoTimesW) {
  for (double f : {1.0, 0.85}) {
    const uint32_t n = 8000;
    AppPair run(f, n, static_cast<uint64_t>(f * 1000));
    ASSERT_TRUE(run.a.done());
    ASSERT_TRUE(run.a.status().ok()) << run.a.status();
    ASSERT_TRUE(run.b.done());
    EXPECT_TRUE(run.b.status().ok()) << run.b.status();
    const ChshResult& r = run.a.result();
    const double w = (4 * f - 1) / 3;
    const double s = 2 * std::numbers::sqrt2 * w;
    // Each correlator is w/sqrt2 in size; its binomial variance (1 - E^2)/n_ij.
    const double e2 = w * w / 2;
    const double sigma = std::sqrt(4 * (1 - e2) / (n / 4.0));
    EXPECT_EQ(r.pairs, n);
    EXPECT_NEAR(r.s, s, 4 * sigma) << "F " << f;
    EXPECT_NEAR(r.stderr_, sigma, 0.1 * sigma);
    EXPECT_NEAR(r.expected_s, s, 1e-12);
    EXPECT_GT(r.s, 2.0);  // a violation for both fidelities
    // Settings drawn uniformly: every (i, j) about n/4.
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        EXPECT_NEAR(static_cast<double>(r.n[i][j]), n / 4.0, 4 * std::sqrt(n * 3.0 / 16));
        EXPECT_NEAR(r.correlator[i][j], (i && j ? -1 : 1) * w / std::numbers::sqrt2, 0.1);
      }
    }
    // At most b's record of one surplus pair races with a's Close (a Send refused).
    EXPECT_LE(run.network.errors(), 1u) << run.network.last_error();
  }
}

// APP-H2: the measurement angles.
TEST(ChshAppTest, APP_H2_Angles) {
  EXPECT_DOUBLE_EQ(ChshApp::AngleA(0), 0.0);
  EXPECT_DOUBLE_EQ(ChshApp::AngleA(1), std::numbers::pi / 2);
  EXPECT_DOUBLE_EQ(ChshApp::AngleB(0), std::numbers::pi / 4);
  EXPECT_DOUBLE_EQ(ChshApp::AngleB(1), -std::numbers::pi / 4);
}

// APP-H6: expired pairs are dropped at both ends; the count stays exact.
TEST(ChshAppTest, APP_H6_ExpiredPairsAreNotCounted) {
  AppPair run(1.0, 2000, 5, /*expire_every=*/3);
  ASSERT_TRUE(run.a.done());
  ASSERT_TRUE(run.a.status().ok()) << run.a.status();
  EXPECT_EQ(run.a.result().pairs, 2000u);
  EXPECT_GE(run.a.result().expired, 2000u / 3);
  EXPECT_NEAR(run.a.result().s, 2 * std::numbers::sqrt2, 4 * run.a.result().stderr_);
}

// APP-P3
TEST(ChshAppTest, APP_P3_ResultJsonHasSAndStderr) {
  AppPair run(1.0, 400, 9);
  const std::string json = run.a.ResultJson();
  EXPECT_NE(json.find("\"S\": 2.8"), std::string::npos) << json;
  EXPECT_NE(json.find("\"stderr\": "), std::string::npos) << json;
  EXPECT_NE(json.find("\"n_11\": "), std::string::npos) << json;
}

}  // namespace
}  // namespace qnet::apps

namespace qnet::apps {
namespace {

// APP-H5: a record that does not parse is ignored and counted.
TEST(ChshAppTest, APP_H5_MalformedRecordsAreIgnoredAndCounted) {
  testing::FakeNetwork network(1.0, 1);
  // A hand-driven b: binds port 9 and, once connected, sends junk to a.
  AppClient* b = network.Client("b");
  uint64_t connection = 0;
  b->SetHandlers({.on_event = [&](const app::v1::AppEvent& e) {
    if (e.has_connected()) connection = e.connected().connection();
  }});
  b->Send(BindRequest(9));
  network.Run();
  Rng ra(1);
  ChshApp a(network.Client("a"), &ra, ChshOptions{ChshOptions::Role::kA, 8, "b", 9, 5, 0, 1});
  a.Start();
  network.Run();
  ASSERT_NE(connection, 0u);
  for (const char* junk : {"C 1 2 0", "C 1 0", "nonsense", "C 1 0 7"}) {
    b->Send(SendRequest(connection, junk));
  }
  network.Run();
  EXPECT_EQ(a.malformed_records(), 4u);
  EXPECT_EQ(a.result().pairs, 0u);
  EXPECT_FALSE(a.done());
}

}  // namespace
}  // namespace qnet::apps
