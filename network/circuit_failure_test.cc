// Network-layer circuits when things go wrong (specs/network.md section 2):
// lost Delivers, link failures, cutoffs, admission, refusals, link errors and
// expiries, malformed frames, and datagrams.
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "network/circuit.h"
#include "network/testing/circuit_world.h"

namespace qnet::network {
namespace {

using testing::CircuitWorld;
using testing::RecordingNetListener;

CircuitKey Open(CircuitWorld& w, const std::string& head, const std::string& tail,
                std::optional<absl::Duration> cutoff = std::nullopt) {
  CircuitRequest req;
  req.remote_node = tail;
  req.cutoff = cutoff;
  absl::StatusOr<CircuitKey> key = w.layer(head).OpenCircuit(req);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.value_or(CircuitKey{});
}

// Every seq the head delivered reached the tail or was reported expired at
// the head; the tail delivered nothing the head did not.
void ExpectConsistent(const RecordingNetListener& head, const RecordingNetListener& tail,
                      const CircuitKey& key) {
  std::set<uint64_t> head_seqs, covered;
  for (uint64_t s : head.Seqs(key)) head_seqs.insert(s);
  for (uint64_t s : tail.Seqs(key)) {
    EXPECT_TRUE(head_seqs.contains(s)) << "seq " << s << " delivered at the tail only";
    covered.insert(s);
  }
  for (const auto& e : head.expired)
    if (e.key == key) covered.insert(e.seq);
  EXPECT_EQ(covered, head_seqs);
}

void ExpectMemoriesFree(CircuitWorld& w) {
  for (const auto& n : w.node_names()) {
    EXPECT_EQ(w.pool(n).free_count(), w.pool(n).capacity()) << n;
  }
}

void ExpectTrueBellStates(CircuitWorld& w, const std::string& head) {
  for (const auto& p : w.device(head).probes()) EXPECT_EQ(p.believed, p.truth) << p.label;
}

// NET-C-39: with depth 2 the tail can hold the pair of a lost Deliver and the
// next one; the next Deliver reveals the gap, the lost seq is expired at the
// head and its pair released at the tail. (Frames between neighbours are
// reliable, so a Deliver is lost only with the connection, which takes the
// link and the circuit down, NET-C-42.)
TEST(CircuitFailure, NET_C_39_LostDeliverIsExpiredAtTheHead) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(2);
  CircuitWorld w(config);
  w.drop_filter = [](const std::string&, const std::string& to, const v1::NetworkFrame& f) {
    return to == "n2" && f.has_deliver() && f.deliver().seq() == 3;
  };
  w.Start();
  CircuitRequest req;
  req.remote_node = "n2";
  req.depth = 2;
  absl::StatusOr<CircuitKey> opened = w.layer("n0").OpenCircuit(req);
  ASSERT_TRUE(opened.ok());
  const CircuitKey key = *opened;
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 10; }, absl::Seconds(1)));
  const auto& head = w.listener("n0");
  ASSERT_EQ(head.expired.size(), 1u);
  EXPECT_EQ(head.expired[0].seq, 3u);
  EXPECT_EQ(head.expired[0].detail, "Deliver lost");
  EXPECT_EQ(w.layer("n0").stats().pairs_expired, 1u);
  const std::vector<uint64_t> tail = w.listener("n2").Seqs(key);
  EXPECT_EQ(std::vector<uint64_t>(tail.begin(), tail.begin() + 4),
            (std::vector<uint64_t>{1, 2, 4, 5}));
  ExpectConsistent(head, w.listener("n2"), key);
  w.layer("n2").CloseCircuit(key, "done");  // from the tail this time
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(5));
  ASSERT_EQ(head.downs.size(), 1u);
  EXPECT_EQ(head.downs[0].code, v1::CIRCUIT_ERROR_CLOSED);
  ExpectConsistent(head, w.listener("n2"), key);
  ExpectMemoriesFree(w);  // the held pair of seq 3 was released
}

class LinkDownTest : public ::testing::TestWithParam<bool> {};

// NET-C-42/NET-C-43/NET-C-44: a link of the path fails (reported by the
// composition, or noticed by missing hellos): both ends hear LINK_FAILURE,
// every node frees the circuit's pairs and memory.
TEST_P(LinkDownTest, NET_C_42_TeardownReachesBothEnds) {
  const bool reported = GetParam();
  CircuitWorld::Config config = CircuitWorld::Chain(3, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(2);
  CircuitWorld w(config);
  w.Start();
  const CircuitKey key = Open(w, "n0", "n3");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n3").pairs.size() >= 20; }, absl::Seconds(1)));
  w.CutLink("l1", reported);
  ASSERT_TRUE(
      w.RunUntil([&] { return !w.listener("n0").downs.empty() && !w.listener("n3").downs.empty(); },
                 absl::Seconds(1)));
  for (const std::string n : {"n0", "n3"}) {
    ASSERT_EQ(w.listener(n).downs.size(), 1u) << n;
    EXPECT_EQ(w.listener(n).downs[0].code, v1::CIRCUIT_ERROR_LINK_FAILURE) << n;
    EXPECT_EQ(w.listener(n).downs[0].key, key);
  }
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(5));
  ExpectConsistent(w.listener("n0"), w.listener("n3"), key);
  ExpectTrueBellStates(w, "n0");
  ExpectMemoriesFree(w);
  // No route any more: a new circuit is refused at once.
  CircuitRequest req;
  req.remote_node = "n3";
  EXPECT_EQ(CircuitErrorOf(w.layer("n0").OpenCircuit(req).status()), v1::CIRCUIT_ERROR_NO_ROUTE);
}

INSTANTIATE_TEST_SUITE_P(ReportedOrByHellos, LinkDownTest, ::testing::Values(true, false));

// NET-C-36: with an explicit cutoff, exactly the end-to-end pairs whose
// oldest link pair is older than the cutoff at completion are discarded; the
// others are delivered at both ends with consecutive seqs. With one pair per
// side (depth 1) the k-th pairs of the two links are swapped together.
TEST(CircuitCutoff, NET_C_36_DiscardsExactlyThePairsOlderThanTheCutoff) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.1, absl::Microseconds(10));
  config.links[1].p = 0.05;
  CircuitWorld w(config);  // zero delays: completion is at the later herald
  w.Start();
  const absl::Duration cutoff = absl::Microseconds(150);
  const CircuitKey key = Open(w, "n0", "n2", cutoff);
  ASSERT_TRUE(
      w.RunUntil([&] { return w.layer("n0").stats().pairs_completed >= 300; }, absl::Seconds(5)));
  const auto& h0 = w.link("l0").heralds();
  const auto& h1 = w.link("l1").heralds();
  const uint64_t pairs =
      w.layer("n0").stats().pairs_completed + w.layer("n0").stats().pairs_discarded;
  ASSERT_GE(h0.size(), pairs);
  ASSERT_GE(h1.size(), pairs);
  std::set<uint64_t> expected, discarded;  // by the head's link pair sequence
  for (uint64_t r = 0; r < pairs; ++r) {
    const absl::Duration age = h0[r].at > h1[r].at ? h0[r].at - h1[r].at : h1[r].at - h0[r].at;
    if (age > cutoff) expected.insert(h0[r].id.sequence());
  }
  for (const auto& rec : w.tracer("n0").records) {
    if (rec.has_pair_discarded()) {
      discarded.insert(rec.pair_discarded().link_pair().sequence());
      EXPECT_EQ(rec.pair_discarded().reason(), "cutoff");
      EXPECT_GT(rec.pair_discarded().age_s(), absl::ToDoubleSeconds(cutoff));
    }
  }
  EXPECT_GT(expected.size(), 20u);  // the test means something
  EXPECT_LT(expected.size(), pairs - 20);
  EXPECT_EQ(discarded, expected);
  EXPECT_EQ(w.layer("n0").stats().pairs_discarded, expected.size());
  const std::vector<uint64_t> seqs = w.listener("n0").Seqs(key);
  ASSERT_EQ(seqs.size(), pairs - expected.size());
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
  w.sim().RunUntil(w.sim().Now() + absl::Microseconds(1));
  ExpectConsistent(w.listener("n0"), w.listener("n2"), key);
  EXPECT_TRUE(w.listener("n0").expired.empty());
  // The tail released the discarded pairs: at most the current one is held.
  EXPECT_GE(w.pool("n2").free_count() + 1, w.pool("n2").capacity());
}

// NET-C-10/NET-C-11/NET-C-14/NET-C-8: circuits in both directions share both
// links (labels collide in value but not per upstream end) and the middle
// node's memories; a third circuit finds no memory there.
TEST(CircuitSharing, NET_C_10_TwoCircuitsShareLinksAndBothProgress) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(1);
  CircuitWorld w(config);
  w.Start();
  const CircuitKey a = Open(w, "n0", "n2");
  const CircuitKey b = Open(w, "n2", "n0");
  ASSERT_TRUE(w.RunUntil(
      [&] {
        return w.listener("n0").Seqs(b).size() >= 100 && w.listener("n2").Seqs(a).size() >= 100;
      },
      absl::Seconds(2)));
  for (const CircuitKey& k : {a, b}) {
    const std::vector<uint64_t> tail = w.listener(k == a ? "n2" : "n0").Seqs(k);
    for (size_t i = 0; i < tail.size(); ++i) ASSERT_EQ(tail[i], i + 1);
  }
  ExpectTrueBellStates(w, "n0");
  ExpectTrueBellStates(w, "n2");
  // n1 has 4 memories, both reserved twice over: a third circuit is refused
  // there with NORES and the head hears it.
  const CircuitKey c = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return !w.listener("n0").downs.empty(); }, absl::Seconds(1)));
  EXPECT_EQ(w.listener("n0").downs[0].key, c);
  EXPECT_EQ(w.listener("n0").downs[0].code, v1::CIRCUIT_ERROR_NORES);
  EXPECT_NE(w.listener("n0").downs[0].detail.find("n1"), std::string::npos);
  for (const auto& n : w.node_names()) EXPECT_EQ(w.layer(n).stats().drops, 0u) << n;
}

TEST(CircuitAdmission, NET_C_8_HeadWithoutMemoryRefusesAtOnce) {
  CircuitWorld::Config config = CircuitWorld::Chain(1, 0.2, absl::Microseconds(10));
  config.nodes[0].memories = 1;
  CircuitWorld w(config);
  w.Start();
  Open(w, "n0", "n1");
  CircuitRequest req;
  req.remote_node = "n1";
  EXPECT_EQ(CircuitErrorOf(w.layer("n0").OpenCircuit(req).status()), v1::CIRCUIT_ERROR_NORES);
  req.remote_node = "nowhere";
  EXPECT_EQ(CircuitErrorOf(w.layer("n0").OpenCircuit(req).status()), v1::CIRCUIT_ERROR_NO_ROUTE);
  req.remote_node = "n1";
  req.min_rate_hz = 1e9;  // NET-C-7
  EXPECT_EQ(CircuitErrorOf(w.layer("n0").OpenCircuit(req).status()), v1::CIRCUIT_ERROR_NOTIME);
}

// NET-C-3/NET-C-6: the fidelity target is checked and split before any
// signalling; the derived cutoff reaches the tail in the setup.
TEST(CircuitAdmission, NET_C_6_DerivedCutoffAndFidelityAdmission) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10), 0.95);
  for (auto& n : config.nodes) n.memory_time_s = 0.1;
  config.nodes[1].memory_time_s = 0.05;  // the shortest on the path counts
  CircuitWorld w(config);
  w.Start();
  CircuitRequest req;
  req.remote_node = "n2";
  req.min_fidelity = 0.95;  // above (1 + 3 w^2) / 4
  const uint64_t frames = w.frames_sent();
  EXPECT_EQ(CircuitErrorOf(w.layer("n0").OpenCircuit(req).status()), v1::CIRCUIT_ERROR_NOTIME);
  EXPECT_EQ(w.frames_sent(), frames);  // refused before any signalling
  req.min_fidelity = 0.85;
  ASSERT_TRUE(w.layer("n0").OpenCircuit(req).ok());
  ASSERT_TRUE(w.RunUntil([&] { return !w.listener("n2").incoming.empty(); }, absl::Seconds(1)));
  absl::StatusOr<CircuitPlan> plan = PlanCircuit({0.95, 0.95}, 0.85, std::nullopt, 0.05);
  ASSERT_TRUE(plan.ok());
  const CircuitInfo& info = w.listener("n2").incoming[0];
  EXPECT_NEAR(absl::ToDoubleSeconds(info.cutoff), absl::ToDoubleSeconds(plan->cutoff), 1e-9);
  EXPECT_NEAR(info.expected_fidelity, plan->expected_fidelity, 1e-12);
}

TEST(CircuitSetup, NET_C_15_NET_C_17_TailRefusesAndEveryHopReleases) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10));
  config.nodes[1].memories = 2;  // one circuit's worth
  CircuitWorld w(config);
  w.Start();
  w.listener("n2").accept = absl::PermissionDeniedError("port closed");
  const CircuitKey k1 = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return !w.listener("n0").downs.empty(); }, absl::Seconds(1)));
  EXPECT_EQ(w.listener("n0").downs[0].key, k1);
  EXPECT_EQ(w.listener("n0").downs[0].code, v1::CIRCUIT_ERROR_REFUSED);
  EXPECT_EQ(w.listener("n0").downs[0].detail, "n2: port closed");
  EXPECT_TRUE(w.listener("n2").ups.empty());
  // n1's reservation is back: the next circuit is installed and delivers.
  w.listener("n2").accept = absl::OkStatus();
  const CircuitKey k2 = Open(w, "n0", "n2");
  EXPECT_EQ(k2.number, 2u);
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 5; }, absl::Seconds(1)));
}

TEST(CircuitSetup, NET_C_18_SetupTimeoutTearsDownEveryHop) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10));
  config.options.setup_timeout = absl::Milliseconds(50);
  CircuitWorld w(config);
  bool lose_accepts = true;
  w.drop_filter = [&](const std::string&, const std::string& to, const v1::NetworkFrame& f) {
    return lose_accepts && to == "n0" && f.has_accept();
  };
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return !w.listener("n2").downs.empty(); }, absl::Seconds(1)));
  ASSERT_EQ(w.listener("n0").downs.size(), 1u);
  EXPECT_EQ(w.listener("n0").downs[0].key, key);
  EXPECT_TRUE(w.listener("n0").ups.empty());
  EXPECT_EQ(w.listener("n2").ups.size(), 1u);  // it had accepted
  lose_accepts = false;
  Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 5; }, absl::Seconds(1)));
}

// NET-C-23/NET-C-24: a CREATE refused at once or ended by an ERR is issued
// again; one that ends with NOTIME tears the circuit down.
TEST(CircuitLinkErrors, NET_C_23_FailedCreatesAreReissued) {
  CircuitWorld w(CircuitWorld::Chain(2, 0.2, absl::Microseconds(10)));
  w.link("l0").FailNextCreates(link::v1::ERROR_CODE_TIMEOUT, 3);
  w.link("l1").RefuseNextCreates(link::v1::ERROR_CODE_NORES, 2);
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 20; }, absl::Seconds(1)));
  ExpectTrueBellStates(w, "n0");
  ExpectConsistent(w.listener("n0"), w.listener("n2"), key);
  EXPECT_TRUE(w.listener("n0").downs.empty());
  EXPECT_EQ(w.link("l0").requests(), 1u);  // the fourth CREATE stands
  EXPECT_EQ(w.link("l1").requests(), 1u);  // the third
  w.link("l1").FailNextCreates(link::v1::ERROR_CODE_NOTIME, 1);
  ASSERT_TRUE(w.RunUntil([&] { return !w.listener("n2").downs.empty(); }, absl::Seconds(1)));
  ASSERT_EQ(w.listener("n0").downs.size(), 1u);
  EXPECT_EQ(w.listener("n0").downs[0].code, v1::CIRCUIT_ERROR_LINK_ERROR);
  EXPECT_EQ(w.listener("n2").downs[0].code, v1::CIRCUIT_ERROR_LINK_ERROR);
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(1));
  ExpectMemoriesFree(w);
}

// NET-C-26: a link pair reported EXPIRED before any swap is freed and costs
// no end-to-end pair: the Track of a pair the tail saw is answered with
// ReleasePair at n1, which never had it; a pair the head saw is freed there.
TEST(CircuitLinkErrors, NET_C_26_ExpiredLinkPairsBeforeTheSwapAreFreed) {
  CircuitWorld w(CircuitWorld::Chain(2, 0.2, absl::Microseconds(10)));
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 5; }, absl::Seconds(1)));
  w.link("l1").ExpireNextPairs(3, /*ok_side=*/1);  // only the tail saw the OKs
  w.link("l0").ExpireNextPairs(2, /*ok_side=*/0);  // only the head saw the OKs
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 30; }, absl::Seconds(1)));
  ExpectTrueBellStates(w, "n0");
  ExpectConsistent(w.listener("n0"), w.listener("n2"), key);
  EXPECT_TRUE(w.listener("n0").expired.empty());
  const auto& seqs = w.listener("n2").Seqs(key);
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i + 1);
  for (const auto& n : w.node_names()) {
    EXPECT_EQ(w.device(n).violations(), 0u) << n;
    EXPECT_EQ(w.layer(n).stats().drops, 0u) << n;
  }
}

// NET-C-26 with one link: the head completed on its OK, the tail never had
// the pair: the Deliver is answered with a Nack and the head expires the seq.
TEST(CircuitLinkErrors, NET_C_38_PairTheTailNeverHadIsExpiredAtTheHead) {
  CircuitWorld w(CircuitWorld::Chain(1, 0.2, absl::Microseconds(10)));
  w.Start();
  const CircuitKey key = Open(w, "n0", "n1");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n1").pairs.size() >= 3; }, absl::Seconds(1)));
  w.link("l0").ExpireNextPairs(1, /*ok_side=*/0);
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n1").pairs.size() >= 10; }, absl::Seconds(1)));
  ASSERT_EQ(w.listener("n0").expired.size(), 1u);
  const uint64_t lost = w.listener("n0").expired[0].seq;
  for (uint64_t s : w.listener("n1").Seqs(key)) EXPECT_NE(s, lost);
  ExpectConsistent(w.listener("n0"), w.listener("n1"), key);
}

// Mid-run consistency: the tail's seqs increase, each was delivered at the
// head, and every head seq up to the tail's latest is at the tail or expired.
void ExpectConsistentSoFar(const RecordingNetListener& head, const RecordingNetListener& tail,
                           const CircuitKey& key) {
  std::set<uint64_t> head_seqs, covered;
  for (uint64_t s : head.Seqs(key)) head_seqs.insert(s);
  uint64_t last = 0;
  for (uint64_t s : tail.Seqs(key)) {
    EXPECT_GT(s, last) << "tail order";
    last = s;
    EXPECT_TRUE(head_seqs.contains(s)) << "seq " << s << " delivered at the tail only";
    covered.insert(s);
  }
  for (const auto& e : head.expired) {
    if (e.key == key) covered.insert(e.seq);
  }
  for (uint64_t s : head_seqs) {
    if (s <= last) {
      EXPECT_TRUE(covered.contains(s)) << "seq " << s << " lost at the tail";
    }
  }
}

// NET-C-38a: on one link the head completes on its own OK; a Deliver that
// overtakes the pair's OK at the tail waits for it (no expiry, order kept);
// one whose OK comes later than deliver_wait is refused and expired at the
// head only.
TEST(CircuitLinkErrors, NET_C_38a_DeliverWaitsForALateOkThenRefuses) {
  CircuitWorld w(CircuitWorld::Chain(1, 0.2, absl::Microseconds(10)));
  w.Start();
  const CircuitKey key = Open(w, "n0", "n1");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n1").pairs.size() >= 3; }, absl::Seconds(1)));
  // The tail's next 5 OKs come 10 ms late: within the 50 ms wait.
  w.link("l0").DelayNextOks(/*side=*/1, 5, absl::Milliseconds(10));
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n1").pairs.size() >= 12; }, absl::Seconds(2)));
  EXPECT_TRUE(w.listener("n0").expired.empty());
  for (const auto& e : w.listener("n0").expired) ADD_FAILURE() << e.seq << ": " << e.detail;
  ExpectConsistentSoFar(w.listener("n0"), w.listener("n1"), key);
  // One OK 80 ms late: beyond the wait, so that seq is refused.
  const size_t before = w.listener("n1").pairs.size();
  w.link("l0").DelayNextOks(/*side=*/1, 1, absl::Milliseconds(80));
  ASSERT_TRUE(
      w.RunUntil([&] { return w.listener("n1").pairs.size() >= before + 10; }, absl::Seconds(2)));
  ASSERT_EQ(w.listener("n0").expired.size(), 1u);
  const uint64_t lost = w.listener("n0").expired[0].seq;
  for (uint64_t s : w.listener("n1").Seqs(key)) EXPECT_NE(s, lost);
  ExpectConsistentSoFar(w.listener("n0"), w.listener("n1"), key);
}

// NET-C-30a, NET-C-30b: a Track that reaches an intermediate before the OK
// of the pair it names waits for it (nothing lost); one whose OK comes later
// than deliver_wait is given up: the tail's half is released, the late pair
// is freed when it comes, and no pair is delivered at one end only.
TEST(CircuitLinkErrors, NET_C_30a_TrackWaitsForALateOkThenGivesUp) {
  CircuitWorld w(CircuitWorld::Chain(2, 0.2, absl::Microseconds(10)));
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 3; }, absl::Seconds(1)));
  // n1 (side 0 of l1) hears its next 3 OKs 10 ms late: the tail's Tracks wait.
  w.link("l1").DelayNextOks(/*side=*/0, 3, absl::Milliseconds(10));
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 12; }, absl::Seconds(2)));
  EXPECT_TRUE(w.listener("n0").expired.empty());
  EXPECT_EQ(w.layer("n0").stats().pairs_discarded, 0u);
  // 80 ms late: the Track is given up.
  const size_t before = w.listener("n2").pairs.size();
  const uint64_t drops = w.layer("n1").stats().drops;
  w.link("l1").DelayNextOks(/*side=*/0, 1, absl::Milliseconds(80));
  ASSERT_TRUE(
      w.RunUntil([&] { return w.listener("n2").pairs.size() >= before + 20; }, absl::Seconds(2)));
  EXPECT_EQ(w.layer("n1").stats().drops, drops + 1);  // the late OK, freed on arrival
  EXPECT_TRUE(w.listener("n0").expired.empty());
  ExpectConsistentSoFar(w.listener("n0"), w.listener("n2"), key);
  const std::vector<uint64_t> seqs = w.listener("n2").Seqs(key);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
  w.layer("n0").CloseCircuit(key, "done");
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(1));
  ExpectMemoriesFree(w);
}

// NET-C-30a: a Track that reaches an intermediate while the Bell measurement
// of the pair it names is still running (its result later than deliver_wait)
// waits for the result instead of giving the pair up: nothing is lost.
TEST(CircuitLinkErrors, NET_C_30a_TrackWaitsForASlowBellMeasurement) {
  CircuitWorld w(CircuitWorld::Chain(2, 0.2, absl::Microseconds(10)));
  w.device("n1").set_bsm_delay(absl::Milliseconds(80));  // deliver_wait is 50 ms
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 10; }, absl::Seconds(3)));
  EXPECT_TRUE(w.listener("n0").expired.empty());
  EXPECT_EQ(w.layer("n1").stats().drops, 0u);
  ExpectConsistentSoFar(w.listener("n0"), w.listener("n2"), key);
  const std::vector<uint64_t> seqs = w.listener("n2").Seqs(key);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
}

// NET-C-26, NET-C-38b: a discarding Track that reaches the head before the OK
// of the pair it names makes that OK free its pair when it comes; the head's
// side is not held for ever, so the depth-1 circuit goes on delivering.
TEST(CircuitLinkErrors, NET_C_38b_DiscardBeforeTheHeadsOkFreesThePairLater) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(50);
  CircuitWorld w(config);
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 5; }, absl::Seconds(1)));
  const uint64_t drops = w.layer("n0").stats().drops;
  // n0 hears its next 30 l0 pairs 20 ms late; of the next 4 l1 pairs, those
  // n1 swapped before they expired send a discarding Track that overtakes
  // n0's OK (those n1 still held unswapped are just freed there).
  w.link("l0").DelayNextOks(/*side=*/0, 30, absl::Milliseconds(20));
  w.link("l1").ExpireNextPairs(4, /*ok_side=*/0);
  const size_t before = w.listener("n2").pairs.size();
  ASSERT_TRUE(
      w.RunUntil([&] { return w.listener("n2").pairs.size() >= before + 40; }, absl::Seconds(2)))
      << "the head's side stayed held";
  // Each late OK whose pair was discarded before it came is freed on arrival.
  EXPECT_GE(w.layer("n0").stats().drops, drops + 1);
  EXPECT_TRUE(w.listener("n0").expired.empty());
  ExpectConsistentSoFar(w.listener("n0"), w.listener("n2"), key);
  w.layer("n0").CloseCircuit(key, "done");
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(1));
  ExpectMemoriesFree(w);
}

// NET-C-26: a link pair that expires after the intermediate swapped it loses
// the end-to-end pair it went into: a discarding Track frees the head's half
// (PairDiscarded "expired"), a ReleasePair the tail's; nothing leaks and the
// circuit goes on.
TEST(CircuitLinkErrors, NET_C_26_ExpiredAfterTheSwapDiscardsTheEndToEndPair) {
  for (int ok_side : {0, 1}) {
    SCOPED_TRACE(ok_side);
    CircuitWorld::Config config = CircuitWorld::Chain(3, 0.2, absl::Microseconds(10));
    config.frame_delay = absl::Microseconds(50);  // the swaps come before the expiry
    CircuitWorld w(config);
    w.Start();
    const CircuitKey key = Open(w, "n0", "n3");
    ASSERT_TRUE(w.RunUntil([&] { return w.listener("n3").pairs.size() >= 5; }, absl::Seconds(1)));
    // l1 pairs delivered at one of its ends (n1 or n2) only, then expired.
    w.link("l1").ExpireNextPairs(2, ok_side);
    ASSERT_TRUE(w.RunUntil([&] { return w.listener("n3").pairs.size() >= 40; }, absl::Seconds(2)));
    ExpectTrueBellStates(w, "n0");
    ExpectConsistentSoFar(w.listener("n0"), w.listener("n3"), key);
    EXPECT_TRUE(w.listener("n0").expired.empty());
    w.layer("n0").CloseCircuit(key, "done");
    w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(1));
    ExpectMemoriesFree(w);
  }
}

// NET-C-60..NET-C-65: untrusted frames are counted, traced drops and change
// nothing: the circuit goes on delivering consistent pairs.
TEST(CircuitFrames, NET_C_65_MalformedFramesAreCountedDrops) {
  CircuitWorld::Config config = CircuitWorld::Chain(2, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(1);
  CircuitWorld w(config);
  v1::CircuitSetup setup_copy;
  w.drop_filter = [&](const std::string&, const std::string&, const v1::NetworkFrame& f) {
    if (f.has_setup()) setup_copy = f.setup();
    return false;
  };
  w.Start();
  const CircuitKey key = Open(w, "n0", "n2");
  ASSERT_TRUE(w.RunUntil([&] { return w.listener("n2").pairs.size() >= 5; }, absl::Seconds(1)));
  NetworkLayer& n1 = w.layer("n1");
  const uint64_t before = n1.stats().drops;
  v1::NetworkFrame f;
  n1.OnFrame("n0", f);  // no body
  f.mutable_track()->mutable_circuit()->set_head("n0");
  f.mutable_track()->mutable_circuit()->set_number(1);
  f.mutable_track()->mutable_pair()->set_origin("n1");
  f.mutable_track()->mutable_pair()->set_sequence(1);
  f.mutable_track()->mutable_tail_pair()->set_origin("n1");
  f.mutable_track()->mutable_tail_pair()->set_sequence(1);
  f.mutable_track()->set_bell(physical::v1::BELL_STATE_PHI_PLUS);
  f.mutable_track()->set_fidelity_product(1.0);
  n1.OnFrame("n0", f);                                   // a Track from the upstream side
  n1.OnFrame("zz", f);                                   // not a neighbour
  f.mutable_track()->mutable_circuit()->set_number(42);  // unknown circuit
  n1.OnFrame("n2", f);
  v1::NetworkFrame d;
  d.mutable_deliver()->mutable_circuit()->set_head("n0");
  d.mutable_deliver()->mutable_circuit()->set_number(1);
  n1.OnFrame("n2", d);  // Deliver from the downstream side
  v1::NetworkFrame s;
  *s.mutable_setup() = setup_copy;
  n1.OnFrame("n0", s);  // duplicate key: dropped, no answer
  v1::NetworkFrame bad = s;
  bad.mutable_setup()->mutable_circuit()->set_number(77);
  bad.mutable_setup()->add_path("n1");  // visits n1 twice
  n1.OnFrame("n0", bad);
  EXPECT_EQ(n1.stats().drops - before, 7u);
  uint64_t traced = 0;
  for (const auto& r : w.tracer("n1").records) traced += r.has_drop();
  EXPECT_EQ(traced, n1.stats().drops);
  // n0 gets the Refuse for circuit n0/77 it never opened: one counted drop.
  const uint64_t head_drops = w.layer("n0").stats().drops;
  const size_t pairs = w.listener("n2").pairs.size();
  ASSERT_TRUE(
      w.RunUntil([&] { return w.listener("n2").pairs.size() >= pairs + 20; }, absl::Seconds(1)));
  EXPECT_EQ(w.layer("n0").stats().drops, head_drops + 1);
  // At the head: a Track with a product above 1, one without a Bell state.
  v1::NetworkFrame tr;
  tr.mutable_track()->mutable_circuit()->set_head("n0");
  tr.mutable_track()->mutable_circuit()->set_number(1);
  tr.mutable_track()->mutable_pair()->set_origin("n0");
  tr.mutable_track()->mutable_pair()->set_sequence(999999);
  *tr.mutable_track()->mutable_tail_pair() = tr.track().pair();
  tr.mutable_track()->set_bell(physical::v1::BELL_STATE_PHI_PLUS);
  tr.mutable_track()->set_fidelity_product(1.5);
  w.layer("n0").OnFrame("n1", tr);
  tr.mutable_track()->set_fidelity_product(1.0);
  tr.mutable_track()->clear_bell();
  w.layer("n0").OnFrame("n1", tr);
  EXPECT_EQ(w.layer("n0").stats().drops, head_drops + 3);
  ASSERT_TRUE(
      w.RunUntil([&] { return w.listener("n2").pairs.size() >= pairs + 40; }, absl::Seconds(1)));
  EXPECT_TRUE(w.listener("n0").downs.empty());
  EXPECT_TRUE(w.listener("n0").expired.empty());
  ExpectTrueBellStates(w, "n0");
  ExpectConsistent(w.listener("n0"), w.listener("n2"), key);
}

TEST(CircuitDatagrams, NET_C_70_DatagramsAreRoutedHopByHop) {
  CircuitWorld::Config config = CircuitWorld::Chain(4, 0.2, absl::Microseconds(10));
  config.frame_delay = absl::Microseconds(1);
  CircuitWorld w(config);
  w.Start();
  ASSERT_TRUE(w.layer("n0").SendDatagram("n4", "hello").ok());
  EXPECT_FALSE(w.layer("n0").SendDatagram("nowhere", "x").ok());  // NET-C-71
  EXPECT_FALSE(w.layer("n0").SendDatagram("n0", "x").ok());
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(1));
  ASSERT_EQ(w.listener("n4").datagrams.size(), 1u);
  EXPECT_EQ(w.listener("n4").datagrams[0], std::make_pair(std::string("n0"), std::string("hello")));
  // NET-C-72: a datagram whose TTL runs out is dropped on the way.
  v1::NetworkFrame f;
  f.mutable_datagram()->set_source("n0");
  f.mutable_datagram()->set_destination("n4");
  f.mutable_datagram()->set_ttl(1);
  f.mutable_datagram()->set_payload("late");
  w.layer("n2").OnFrame("n1", f);
  w.sim().RunUntil(w.sim().Now() + absl::Milliseconds(1));
  EXPECT_EQ(w.listener("n4").datagrams.size(), 1u);
  EXPECT_EQ(w.layer("n2").stats().drops, 1u);
}

}  // namespace
}  // namespace qnet::network
