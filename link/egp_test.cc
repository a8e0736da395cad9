// Scenario tests of the link layer: two Egps on the simulator with the fake
// physical layer (link/testing). Test names start with the specs/link.md
// requirement id they check.
#include "link/egp.h"

#include <cmath>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "link/create_check.h"
#include "link/testing/link_harness.h"
#include "link/testing/requests.h"
#include "stack/heralding_model.h"

namespace qnet::link {
namespace {

using testing::KeepRequest;
using testing::LinkHarness;
using testing::MeasureRequest;
using testing::SetMaxTime;
using testing::SymmetricLink;

LinkHarness::Config Config(LinkSpec link = SymmetricLink(), uint32_t memories_a = 2,
                           uint32_t memories_b = 2, uint64_t seed = 7) {
  LinkHarness::Config c;
  c.link = std::move(link);
  c.memories_a = memories_a;
  c.memories_b = memories_b;
  c.seed = seed;
  return c;
}

// Releases every kept pair as soon as it is delivered, at both ends.
void ReleaseOnOk(LinkHarness& h) {
  for (bool a : {true, false}) {
    h.listener(a).on_ok = [&h, a](const v1::Ok& ok) {
      if (ok.has_slot()) h.end(a).Release(ok.slot());
    };
  }
}

void ExpectNoDeviceViolations(LinkHarness& h) {
  const auto& v = h.physics().violations();
  EXPECT_EQ(v.generate_slot_in_use, 0u);
  EXPECT_EQ(v.free_empty_slot, 0u);
  EXPECT_EQ(v.repeated_batch, 0u);
  EXPECT_EQ(v.other_requests, 0u);
}

void ExpectSameOks(const std::vector<v1::Ok>& x, const std::vector<v1::Ok>& y) {
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(x[i].pair().origin(), y[i].pair().origin());
    EXPECT_EQ(x[i].pair().partner(), y[i].pair().partner());
    EXPECT_EQ(x[i].pair().sequence(), y[i].pair().sequence());
    EXPECT_EQ(x[i].bell_state(), y[i].bell_state());
    EXPECT_EQ(x[i].herald_seq(), y[i].herald_seq());
    EXPECT_EQ(x[i].time_ns(), y[i].time_ns());
    EXPECT_EQ(x[i].create_id(), y[i].create_id());
    EXPECT_EQ(x[i].purpose_id(), y[i].purpose_id());
    EXPECT_DOUBLE_EQ(x[i].estimated_fidelity(), y[i].estimated_fidelity());
    EXPECT_EQ(x[i].link(), y[i].link());
  }
}

TEST(EgpTest, LINK_07_BothEndsDeliverSamePairIds) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  v1::Create c = KeepRequest("b", 20, 0, 0.7);
  c.set_purpose_id(42);
  auto id = h.a().Create(c);
  ASSERT_TRUE(id.ok()) << id.status();
  h.RunFor(absl::Seconds(1));
  const auto& oks_a = h.listener(true).oks;
  const auto& oks_b = h.listener(false).oks;
  ASSERT_EQ(oks_a.size(), 20u);
  ExpectSameOks(oks_a, oks_b);
  const double alpha = *ChooseAlpha(h.link(), 0.7);
  for (size_t i = 0; i < oks_a.size(); ++i) {
    EXPECT_EQ(oks_a[i].pair().origin(), "a");
    EXPECT_EQ(oks_a[i].pair().partner(), "b");
    EXPECT_EQ(oks_a[i].pair().sequence(), i + 1);  // LINK-08
    EXPECT_EQ(oks_a[i].create_id(), *id);
    EXPECT_EQ(oks_a[i].purpose_id(), 42u);
    EXPECT_EQ(oks_a[i].remote_node(), "b");
    EXPECT_EQ(oks_b[i].remote_node(), "a");
    EXPECT_TRUE(oks_a[i].has_slot());
    EXPECT_TRUE(oks_b[i].has_slot());
    EXPECT_TRUE(oks_a[i].bell_state() == physical::v1::BELL_STATE_PSI_PLUS ||
                oks_a[i].bell_state() == physical::v1::BELL_STATE_PSI_MINUS);
    EXPECT_EQ(oks_a[i].herald_seq(), i + 1);
    // LINK-11: the calibration value at the request's alpha, at least min_fidelity.
    EXPECT_DOUBLE_EQ(oks_a[i].estimated_fidelity(), HeraldedFidelity(h.link(), alpha));
    EXPECT_GE(oks_a[i].estimated_fidelity(), 0.7 - 1e-9);
  }
  // LINK-32: the item left both queues; nothing else happened.
  EXPECT_TRUE(h.a().queue().empty());
  EXPECT_TRUE(h.b().queue().empty());
  EXPECT_TRUE(h.listener(true).errs.empty());
  EXPECT_TRUE(h.listener(false).errs.empty());
  EXPECT_EQ(h.a().stats().drops + h.b().stats().drops, 0u);
  EXPECT_EQ(h.physics().successes(), 20u);
  EXPECT_TRUE(h.physics().occupied(true).empty());
  EXPECT_TRUE(h.physics().occupied(false).empty());
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_07_CreateFromEitherEnd) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  auto from_b = h.b().Create(MeasureRequest("a", 15));
  ASSERT_TRUE(from_b.ok()) << from_b.status();
  auto from_a = h.a().Create(KeepRequest("b", 15));
  ASSERT_TRUE(from_a.ok()) << from_a.status();
  h.RunFor(absl::Seconds(1));
  ExpectSameOks(h.listener(true).oks, h.listener(false).oks);
  std::map<std::string, int> per_origin;
  for (const v1::Ok& ok : h.listener(true).oks) {
    ++per_origin[ok.pair().origin()];
    if (ok.pair().origin() == "b") {
      EXPECT_EQ(ok.create_id(), *from_b);  // the origin's create id at both ends
      EXPECT_FALSE(ok.has_slot());
    } else {
      EXPECT_EQ(ok.create_id(), *from_a);
      EXPECT_TRUE(ok.has_slot());
    }
  }
  EXPECT_EQ(per_origin["a"], 15);
  EXPECT_EQ(per_origin["b"], 15);
  EXPECT_EQ(h.b().pending_requests(), 0u);
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_08_SequencePerOrigin) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 7)).ok());
  ASSERT_TRUE(h.b().Create(MeasureRequest("a", 5)).ok());
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 4)).ok());
  ASSERT_TRUE(h.b().Create(MeasureRequest("a", 6)).ok());
  h.RunFor(absl::Seconds(1));
  std::map<std::string, std::vector<uint64_t>> seqs;
  for (const v1::Ok& ok : h.listener(false).oks)
    seqs[ok.pair().origin()].push_back(ok.pair().sequence());
  ASSERT_EQ(seqs["a"].size(), 11u);
  ASSERT_EQ(seqs["b"].size(), 11u);
  for (const auto& [origin, s] : seqs) {
    for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], i + 1) << origin;
  }
  ExpectSameOks(h.listener(true).oks, h.listener(false).oks);
}

TEST(EgpTest, LINK_30_RateIsPOverCycleWithoutGaps) {
  LinkHarness h(Config());
  constexpr uint32_t kPairs = 4000;
  auto id = h.a().Create(MeasureRequest("b", kPairs));
  ASSERT_TRUE(id.ok());
  h.RunFor(absl::Seconds(10));
  ASSERT_EQ(h.listener(true).oks.size(), kPairs);
  ASSERT_EQ(h.listener(false).oks.size(), kPairs);
  // LINK-27/30/49: batches of up to max_batch_pairs (64) pairs, each
  // starting when the previous one ended.
  const auto& batches = h.physics().batches();
  ASSERT_EQ(batches.size(), (kPairs + 63) / 64);
  uint32_t pairs = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (i > 0) ASSERT_EQ(batches[i].start, batches[i - 1].end) << "gap before batch " << i;
    ASSERT_EQ(batches[i].outcome, physical::v1::OUTCOME_SUCCESS);
    pairs += batches[i].pairs;
  }
  EXPECT_EQ(pairs, kPairs);
  // Busy time from the LinkBusy trace records of end a (LINK-16).
  Time busy_from = Time::Infinite(), busy_to = Time::Zero();
  for (const auto& r : h.tracer(true).records) {
    if (!r.has_link_busy()) continue;
    if (r.link_busy().busy()) busy_from = Time::FromNanos(static_cast<int64_t>(r.time_ns()));
    if (!r.link_busy().busy()) busy_to = Time::FromNanos(static_cast<int64_t>(r.time_ns()));
  }
  ASSERT_LT(busy_from, busy_to);
  EXPECT_EQ(busy_from, batches.front().start);
  EXPECT_EQ(busy_to, batches.back().end);
  const double p = SuccessProbability(h.link(), *ChooseAlpha(h.link(), 0));
  const double cycle_s = absl::ToDoubleSeconds(AttemptCycle(h.link()));
  const double expected = p / cycle_s;
  const double rate = kPairs / absl::ToDoubleSeconds(busy_to - busy_from);
  const double stderr_rate = rate * std::sqrt((1 - p) / kPairs);
  RecordProperty("rate_hz", std::to_string(rate));
  RecordProperty("expected_hz", std::to_string(expected));
  EXPECT_NEAR(rate, expected, 3 * stderr_rate) << "p=" << p << " cycle=" << cycle_s;
}

TEST(EgpTest, LINK_30_KeepRateWithImmediateReleaseHasNoGaps) {
  LinkSpec link = SymmetricLink();
  link.efficiency = 0.1;  // p about 0.09
  LinkHarness h(Config(link, 1, 1));
  ReleaseOnOk(h);
  constexpr uint32_t kPairs = 1500;
  ASSERT_TRUE(h.b().Create(KeepRequest("a", kPairs)).ok());
  h.RunFor(absl::Seconds(10));
  ASSERT_EQ(h.listener(true).oks.size(), kPairs);
  const auto& batches = h.physics().batches();
  ASSERT_EQ(batches.size(), kPairs);
  for (size_t i = 1; i < batches.size(); ++i) ASSERT_EQ(batches[i].start, batches[i - 1].end);
  const double busy_s = absl::ToDoubleSeconds(batches.back().end - batches.front().start);
  const double p = SuccessProbability(link, *ChooseAlpha(link, 0));
  const double expected = p / absl::ToDoubleSeconds(AttemptCycle(link));
  const double rate = kPairs / busy_s;
  RecordProperty("rate_hz", std::to_string(rate));
  RecordProperty("expected_hz", std::to_string(expected));
  EXPECT_NEAR(rate, expected, 3 * rate * std::sqrt((1 - p) / kPairs));
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_24_AsymmetricLinkDecidesAtBatchEnd) {
  LinkSpec link = SymmetricLink();
  link.length_km = 20;
  link.midpoint_fraction = 0.2;  // the station is 4 km from a, 16 km from b
  LinkHarness h(Config(link));
  std::vector<Time> delivered_a, delivered_b;
  h.listener(true).on_ok = [&](const v1::Ok&) { delivered_a.push_back(h.sim().Now()); };
  h.listener(false).on_ok = [&](const v1::Ok&) { delivered_b.push_back(h.sim().Now()); };
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 200)).ok());
  h.RunFor(absl::Seconds(2));
  ASSERT_EQ(h.listener(true).oks.size(), 200u);
  ExpectSameOks(h.listener(true).oks, h.listener(false).oks);
  ASSERT_LT(HeraldDelay(link, true), AttemptCycle(link));  // a hears first
  for (size_t i = 0; i < delivered_a.size(); ++i) {
    // Both ends act at the shared batch end, not when their herald arrives.
    EXPECT_EQ(delivered_a[i], delivered_b[i]);
    EXPECT_EQ(delivered_a[i].nanos(), static_cast<int64_t>(h.listener(true).oks[i].time_ns()));
  }
  const auto& batches = h.physics().batches();
  for (size_t i = 1; i < batches.size(); ++i) ASSERT_EQ(batches[i].start, batches[i - 1].end);
}

TEST(EgpTest, LINK_18_EligibleOneRoundTripAfterCreate) {
  for (bool from_a : {true, false}) {
    SCOPED_TRACE(from_a ? "CREATE at the master" : "CREATE at the peer");
    LinkHarness h(Config());
    h.RunFor(absl::Microseconds(100));
    const Time created = h.sim().Now();
    ASSERT_TRUE(h.end(from_a).Create(MeasureRequest(from_a ? "b" : "a", 1)).ok());
    h.RunFor(absl::Seconds(1));
    ASSERT_EQ(h.physics().batches().size(), 1u);
    // LINK-18/19/20: one round trip plus the margin (one cycle) after the CREATE.
    EXPECT_EQ(h.physics().batches()[0].start, created + 2 * h.delay() + AttemptCycle(h.link()));
    EXPECT_EQ(h.a().margin(), AttemptCycle(h.link()));
    EXPECT_EQ(h.listener(!from_a).oks.size(), 1u);
  }
}

TEST(EgpTest, LINK_26_PrioritiesShareByWeight) {
  LinkHarness h(Config());
  auto high = h.a().Create(MeasureRequest("b", 100000, v1::BASIS_CHOICE_Z, /*priority=*/0));
  auto low = h.a().Create(MeasureRequest("b", 100000, v1::BASIS_CHOICE_Z, /*priority=*/2));
  ASSERT_TRUE(high.ok() && low.ok());
  h.RunFor(absl::Milliseconds(50));
  std::map<uint64_t, int> count;
  for (const v1::Ok& ok : h.listener(false).oks) ++count[ok.create_id()];
  const int n = count[*high] + count[*low];
  ASSERT_GT(n, 1000);
  RecordProperty("pairs_priority0", count[*high]);
  RecordProperty("pairs_priority2", count[*low]);
  // Weights 8 : 2 for priorities 0 and 2, per pair: shares 0.8 and 0.2.
  EXPECT_NEAR(count[*high], 0.8 * n, 2.0);
  EXPECT_NEAR(count[*low], 0.2 * n, 2.0);
  ExpectSameOks(h.listener(true).oks, h.listener(false).oks);
}

TEST(EgpTest, LINK_26_TwoOriginsShareEqually) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  auto from_a = h.a().Create(MeasureRequest("b", 100000, v1::BASIS_CHOICE_XZ, 1));
  auto from_b = h.b().Create(KeepRequest("a", 100000, 1));
  ASSERT_TRUE(from_a.ok() && from_b.ok());
  h.RunFor(absl::Milliseconds(50));
  std::map<std::string, int> count;
  for (const v1::Ok& ok : h.listener(true).oks) ++count[ok.pair().origin()];
  const int n = count["a"] + count["b"];
  ASSERT_GT(n, 1000);
  RecordProperty("pairs_origin_a", count["a"]);
  RecordProperty("pairs_origin_b", count["b"]);
  EXPECT_NEAR(count["a"], 0.5 * n, 2.0);
  EXPECT_NEAR(count["b"], 0.5 * n, 2.0);
  // The time each origin got is also close to half: each pair's duration is
  // geometric, so its share of busy time is within a few standard errors.
  ExpectSameOks(h.listener(true).oks, h.listener(false).oks);
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_12_TimeoutAtBothEnds) {
  // Keep pairs that nobody releases: after two pairs the memories of b are
  // full and the request cannot complete before max_time.
  LinkHarness h(Config(SymmetricLink(), 4, 2));
  v1::Create c = KeepRequest("b", 5);
  SetMaxTime(c, absl::Milliseconds(20));
  auto id = h.a().Create(c);
  ASSERT_TRUE(id.ok()) << id.status();
  h.RunFor(absl::Milliseconds(100));
  EXPECT_EQ(h.listener(true).oks.size(), 2u);
  EXPECT_EQ(h.listener(false).oks.size(), 2u);
  auto ta = h.listener(true).ErrsWithCode(v1::ERROR_CODE_TIMEOUT);
  auto tb = h.listener(false).ErrsWithCode(v1::ERROR_CODE_TIMEOUT);
  ASSERT_EQ(ta.size(), 1u);
  ASSERT_EQ(tb.size(), 1u);
  EXPECT_EQ(ta[0].create_id(), *id);
  EXPECT_EQ(tb[0].create_id(), *id);
  EXPECT_EQ(ta[0].origin(), "a");
  EXPECT_EQ(tb[0].origin(), "a");
  EXPECT_EQ(ta[0].time_ns(), tb[0].time_ns());
  EXPECT_GE(static_cast<int64_t>(ta[0].time_ns()),
            absl::ToInt64Nanoseconds(absl::Milliseconds(20)));
  EXPECT_TRUE(h.a().queue().empty());
  EXPECT_TRUE(h.b().queue().empty());
  // The waiting batches were held or idle, never busy-looping: about one per
  // memory_poll_s (1 ms) over the 18 ms of waiting.
  EXPECT_LE(h.physics().batches().size(), 2u + 20u);
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_04_NoTimeWhenExpectedTimeExceedsMaxTime) {
  LinkHarness h(Config());
  const double p = SuccessProbability(h.link(), 0.5);
  const absl::Duration per_pair = AttemptCycle(h.link()) / p;
  v1::Create c = MeasureRequest("b", 1000);
  SetMaxTime(c, per_pair * 900);
  auto refused = h.a().Create(c);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(ErrorCodeOf(refused.status()), v1::ERROR_CODE_NOTIME);
  SetMaxTime(c, per_pair * 1100);
  EXPECT_TRUE(h.a().Create(c).ok());
  c.set_remote_node("a");
  SetMaxTime(c, per_pair * 900);
  EXPECT_EQ(ErrorCodeOf(h.b().Create(c).status()), v1::ERROR_CODE_NOTIME);
}

TEST(EgpTest, LINK_05_RefusalsAreStatusesWithCodeNames) {
  LinkHarness h(Config());
  v1::Create c = MeasureRequest("b", 1);
  c.set_type(v1::REQUEST_TYPE_UNSPECIFIED);
  auto r = h.a().Create(c);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "ERROR_CODE_CREATE:")) << r.status();
  c = MeasureRequest("zz", 1);
  r = h.a().Create(c);
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "ERROR_CODE_UNSUPPORTED:")) << r.status();
  LinkSpec lossy = SymmetricLink();
  lossy.visibility = 0.8;
  LinkHarness h2(Config(lossy));
  EXPECT_EQ(
      ErrorCodeOf(h2.b().Create(MeasureRequest("a", 1, v1::BASIS_CHOICE_XZ, 0, 0.95)).status()),
      v1::ERROR_CODE_UNSUPPORTED);
  // Malformed beats unsupported (LINK-05 order): another node and a NaN fidelity.
  c = MeasureRequest("zz", 1);
  c.set_min_fidelity(std::nan(""));
  EXPECT_EQ(ErrorCodeOf(h.a().Create(c).status()), v1::ERROR_CODE_CREATE);
  h.RunFor(absl::Milliseconds(10));
  EXPECT_TRUE(h.listener(true).errs.empty());
  EXPECT_TRUE(h.physics().batches().empty());
}

TEST(EgpTest, LINK_03_NoResWithoutMemoryOrWhenQueueFull) {
  LinkHarness::Config config = Config(SymmetricLink(), 0, 2);
  config.options.max_queue = 2;
  LinkHarness h(config);
  EXPECT_EQ(ErrorCodeOf(h.a().Create(KeepRequest("b", 1)).status()), v1::ERROR_CODE_NORES);
  EXPECT_TRUE(h.a().Create(MeasureRequest("b", 1)).ok());  // measure needs no memory
  EXPECT_TRUE(h.a().Create(MeasureRequest("b", 1)).ok());
  auto full = h.a().Create(MeasureRequest("b", 1));
  EXPECT_EQ(ErrorCodeOf(full.status()), v1::ERROR_CODE_NORES) << full.status();
  EXPECT_TRUE(h.b().Create(KeepRequest("a", 1)).ok());
  EXPECT_TRUE(h.b().Create(KeepRequest("a", 1)).ok());
  EXPECT_EQ(ErrorCodeOf(h.b().Create(KeepRequest("a", 1)).status()), v1::ERROR_CODE_NORES);
}

TEST(EgpTest, LINK_13_RejectedWhenPeerHasNoMemory) {
  {
    SCOPED_TRACE("keep CREATE at the master, peer without memory");
    LinkHarness h(Config(SymmetricLink(), 2, 0));
    auto id = h.a().Create(KeepRequest("b", 3));
    ASSERT_TRUE(id.ok());
    h.RunFor(absl::Milliseconds(10));
    auto rej = h.listener(true).ErrsWithCode(v1::ERROR_CODE_REJECTED);
    ASSERT_EQ(rej.size(), 1u);
    EXPECT_EQ(rej[0].create_id(), *id);
    EXPECT_NE(rej[0].detail().find("no memory"), std::string::npos) << rej[0].detail();
    EXPECT_TRUE(h.listener(false).errs.empty());  // the partner reports nothing
    EXPECT_TRUE(h.physics().batches().empty());   // removed before it was eligible
    EXPECT_TRUE(h.a().queue().empty());
    EXPECT_TRUE(h.b().queue().empty());
    EXPECT_EQ(h.a().stats().drops + h.b().stats().drops, 0u);
  }
  {
    SCOPED_TRACE("keep CREATE at the peer, master without memory");
    LinkHarness h(Config(SymmetricLink(), 0, 2));
    auto id = h.b().Create(KeepRequest("a", 3));
    ASSERT_TRUE(id.ok());
    h.RunFor(absl::Milliseconds(10));
    auto rej = h.listener(false).ErrsWithCode(v1::ERROR_CODE_REJECTED);
    ASSERT_EQ(rej.size(), 1u);
    EXPECT_EQ(rej[0].create_id(), *id);
    EXPECT_EQ(h.b().pending_requests(), 0u);
    EXPECT_TRUE(h.physics().batches().empty());
  }
}

TEST(EgpTest, LINK_13_RejectedWhenMasterQueueFull) {
  LinkHarness::Config config = Config();
  config.options.max_queue = 1;
  LinkHarness h(config);
  auto at_master = h.a().Create(MeasureRequest("b", 5));
  auto at_peer = h.b().Create(MeasureRequest("a", 5));  // accepted locally: b's view is empty
  ASSERT_TRUE(at_master.ok());
  ASSERT_TRUE(at_peer.ok());
  h.RunFor(absl::Milliseconds(50));
  auto rej = h.listener(false).ErrsWithCode(v1::ERROR_CODE_REJECTED);
  ASSERT_EQ(rej.size(), 1u);
  EXPECT_EQ(rej[0].create_id(), *at_peer);
  EXPECT_NE(rej[0].detail().find("queue is full"), std::string::npos);
  EXPECT_EQ(h.listener(false).oks.size(), 5u);  // the master's request went on
}

TEST(EgpTest, LINK_29_MemoryExhaustionThenReleaseResumes) {
  LinkHarness h(Config(SymmetricLink(), 2, 1));
  // a releases at once; b holds its one slot until the test releases it.
  h.listener(true).on_ok = [&](const v1::Ok& ok) { h.a().Release(ok.slot()); };
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 3)).ok());
  h.RunFor(absl::Milliseconds(5));
  ASSERT_EQ(h.listener(false).oks.size(), 1u);
  EXPECT_EQ(h.pool(false).free_count(), 0u);
  EXPECT_EQ(h.listener(false).oks[0].slot(), 0u);
  // b waits for memory: its Generate is held, so no batch has started since.
  const size_t batches_before = h.physics().batches().size();
  const Time release_at = Time::FromNanos(absl::ToInt64Nanoseconds(absl::Microseconds(5300)));
  h.RunUntil(release_at);
  EXPECT_GE(h.b().stats().memory_waits, 1u);
  h.b().Release(h.listener(false).oks[0].slot());
  h.RunFor(absl::Microseconds(500));
  // The held Generate went out at the release: the next batch started then.
  const auto& batches = h.physics().batches();
  ASSERT_GT(batches.size(), batches_before);
  bool resumed_at_release = false;
  for (size_t i = batches_before; i < batches.size(); ++i)
    resumed_at_release |= batches[i].start == release_at;
  EXPECT_TRUE(resumed_at_release);
  h.RunFor(absl::Milliseconds(5));
  ASSERT_GE(h.listener(false).oks.size(), 2u);
  for (size_t i = 1; i < 3; ++i) {
    h.b().Release(h.listener(false).oks[i].slot());
    h.RunFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(h.listener(false).oks.size(), 3u);
  ExpectSameOks(h.listener(true).oks, h.listener(false).oks);
  EXPECT_TRUE(h.listener(true).errs.empty());
  EXPECT_EQ(h.pool(false).free_count(), 1u);
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_29_MemoryPollEndsBatchIdle) {
  // b's only memory stays held; a keep request waits for it while a measure
  // request on the same link keeps being served (IDLE is charged, LINK-26).
  LinkHarness h(Config(SymmetricLink(), 2, 1));
  h.listener(true).on_ok = [&](const v1::Ok& ok) {
    if (ok.has_slot()) h.a().Release(ok.slot());
  };
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 2)).ok());
  h.RunFor(absl::Milliseconds(2));
  ASSERT_EQ(h.listener(false).oks.size(), 1u);
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 100000)).ok());
  h.RunFor(absl::Milliseconds(20));
  uint64_t idle = 0;
  for (const auto& b : h.physics().batches()) {
    if (b.outcome != physical::v1::OUTCOME_IDLE) continue;
    ++idle;
    EXPECT_FALSE(b.slot_b);
    EXPECT_EQ(b.end - b.start, AttemptCycle(h.link()));  // idle_cycles = 1
  }
  // At most one IDLE batch per memory_poll_s (1 ms) over the 22 ms: no busy
  // loop; and the waiting item keeps asking (between the measure item's
  // batches, which may be several pairs long, LINK-49).
  RecordProperty("idle_batches", static_cast<int>(idle));
  EXPECT_GE(idle, 12u);
  EXPECT_LE(idle, 23u);
  // Meanwhile the measure request had the link: close to p / cycle over 20 ms.
  size_t measured = 0;
  for (const v1::Ok& ok : h.listener(false).oks) measured += ok.has_slot() ? 0 : 1;
  const double p = SuccessProbability(h.link(), 0.5);
  const double full = 0.020 * p / absl::ToDoubleSeconds(AttemptCycle(h.link()));
  RecordProperty("measured_pairs", static_cast<int>(measured));
  RecordProperty("measured_pairs_full_rate", std::to_string(full));
  EXPECT_GT(static_cast<double>(measured), 0.9 * full) << full;
  ExpectNoDeviceViolations(h);
}

TEST(EgpTest, LINK_10_MeasureDirectlyRandomBasesAtEachEnd) {
  LinkHarness h(Config());
  constexpr uint32_t kPairs = 4000;
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", kPairs, v1::BASIS_CHOICE_XZ)).ok());
  ASSERT_TRUE(h.b().Create(MeasureRequest("a", 3000, v1::BASIS_CHOICE_XYZ)).ok());
  h.RunFor(absl::Seconds(10));
  const auto& oa = h.listener(true).oks;
  const auto& ob = h.listener(false).oks;
  ASSERT_EQ(oa.size(), kPairs + 3000);
  ExpectSameOks(oa, ob);
  std::map<std::string, std::map<physical::v1::Basis, int>> count_a, count_b;
  int same = 0, n_xz = 0, errors_same_basis = 0;
  for (size_t i = 0; i < oa.size(); ++i) {
    const std::string& origin = oa[i].pair().origin();
    ++count_a[origin][oa[i].basis()];
    ++count_b[origin][ob[i].basis()];
    ASSERT_LE(oa[i].result(), 1u);
    if (origin == "a") {
      ++n_xz;
      same += oa[i].basis() == ob[i].basis();
    }
    if (oa[i].basis() == ob[i].basis()) {
      // The fake's pairs are perfect: results follow the heralded Bell state.
      const bool psi_plus = oa[i].bell_state() == physical::v1::BELL_STATE_PSI_PLUS;
      const bool anti = oa[i].basis() == physical::v1::BASIS_Z || !psi_plus;
      errors_same_basis += (oa[i].result() != ob[i].result()) != anti;
    }
  }
  EXPECT_EQ(errors_same_basis, 0);
  RecordProperty("same_basis_xz", same);
  RecordProperty("pairs_xz", n_xz);
  RecordProperty("z_at_a_xz", count_a["a"][physical::v1::BASIS_Z]);
  auto within = [](int k, int n, double q) {
    const double se = std::sqrt(n * q * (1 - q));
    return std::abs(k - n * q) <= 3 * se;
  };
  for (auto* count : {&count_a, &count_b}) {
    EXPECT_TRUE(within((*count)["a"][physical::v1::BASIS_Z], n_xz, 0.5));
    EXPECT_EQ((*count)["a"][physical::v1::BASIS_Y], 0);
    for (auto b : {physical::v1::BASIS_Z, physical::v1::BASIS_X, physical::v1::BASIS_Y})
      EXPECT_TRUE(within((*count)["b"][b], 3000, 1.0 / 3)) << b << " " << (*count)["b"][b];
  }
  // Independent at each end: the bases agree half of the time.
  EXPECT_TRUE(within(same, n_xz, 0.5)) << same;
}

TEST(EgpTest, LINK_10_FixedBasis) {
  LinkHarness h(Config());
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 50, v1::BASIS_CHOICE_Y)).ok());
  h.RunFor(absl::Seconds(1));
  ASSERT_EQ(h.listener(true).oks.size(), 50u);
  for (bool a : {true, false})
    for (const v1::Ok& ok : h.listener(a).oks) EXPECT_EQ(ok.basis(), physical::v1::BASIS_Y);
}

TEST(EgpTest, LINK_21_AlphaFromMinFidelity) {
  LinkHarness h(Config());
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 10, v1::BASIS_CHOICE_Z, 0, 0.9)).ok());
  h.RunFor(absl::Seconds(1));
  ASSERT_TRUE(h.b().Create(MeasureRequest("a", 10, v1::BASIS_CHOICE_Z, 0, 0.6)).ok());
  h.RunFor(absl::Seconds(1));
  const double alpha_hi = *ChooseAlpha(h.link(), 0.9), alpha_lo = *ChooseAlpha(h.link(), 0.6);
  ASSERT_LT(alpha_hi, alpha_lo);
  const auto& batches = h.physics().batches();
  ASSERT_EQ(batches.size(), 2u);  // one batch of 10 pairs per request (LINK-49)
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(batches[i].pairs, 10u);
    EXPECT_DOUBLE_EQ(batches[i].alpha_a, i < 1 ? alpha_hi : alpha_lo);
    EXPECT_DOUBLE_EQ(batches[i].alpha_b, batches[i].alpha_a);
  }
  for (const v1::Ok& ok : h.listener(true).oks)
    EXPECT_GE(ok.estimated_fidelity(), (ok.pair().origin() == "a" ? 0.9 : 0.6) - 1e-9);
  // A link with a fixed alpha uses it whatever the request.
  LinkSpec fixed = SymmetricLink();
  fixed.alpha = 0.05;
  LinkHarness hf(Config(fixed));
  ASSERT_TRUE(hf.a().Create(MeasureRequest("b", 3)).ok());
  hf.RunFor(absl::Seconds(1));
  for (const auto& b : hf.physics().batches()) EXPECT_DOUBLE_EQ(b.alpha_a, 0.05);
}

TEST(EgpTest, LINK_06_CreateIdsAndCreateTraces) {
  LinkHarness h(Config());
  auto first = h.a().Create(MeasureRequest("b", 1));
  auto refused = h.a().Create(MeasureRequest("zz", 1));
  auto second = h.a().Create(MeasureRequest("b", 1));
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(*first, 1u);
  EXPECT_EQ(*second, 2u);
  EXPECT_EQ(*h.b().Create(MeasureRequest("a", 1)), 1u);  // per link end
  std::vector<uint64_t> traced;
  for (const auto& r : h.tracer(true).records)
    if (r.has_create()) traced.push_back(r.create_id());
  EXPECT_EQ(traced, (std::vector<uint64_t>{1, 0, 2}));
}

TEST(EgpTest, LINK_15_TracesCreateOkErr) {
  LinkHarness h(Config(SymmetricLink(), 2, 1));
  v1::Create c = KeepRequest("b", 3);
  SetMaxTime(c, absl::Milliseconds(5));
  ASSERT_TRUE(h.a().Create(c).ok());
  h.RunFor(absl::Milliseconds(20));
  for (bool a : {true, false}) {
    int oks = 0, errs = 0;
    for (const auto& r : h.tracer(a).records) {
      if (r.has_ok()) {
        ++oks;
        EXPECT_EQ(r.attempts(), h.physics().batches()[r.ok().herald_seq() - 1].attempts);
        EXPECT_GT(r.attempts(), 0u);
      }
      errs += r.has_err();
    }
    EXPECT_EQ(oks, static_cast<int>(h.listener(a).oks.size()));
    EXPECT_EQ(errs, static_cast<int>(h.listener(a).errs.size()));
    EXPECT_EQ(errs, 1);  // TIMEOUT: b's single memory is never released
  }
}

TEST(EgpTest, LINK_16_LinkBusyTransitions) {
  LinkSpec link = SymmetricLink();
  link.scheme = HeraldingScheme::kWerner;
  link.p_success = 1.0;  // every batch succeeds at its first attempt
  link.fidelity = 0.9;
  LinkHarness h(Config(link));
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 3)).ok());
  h.RunFor(absl::Milliseconds(1));
  ASSERT_TRUE(h.b().Create(MeasureRequest("a", 2)).ok());
  h.RunFor(absl::Milliseconds(1));
  for (bool a : {true, false}) {
    std::vector<std::pair<int64_t, bool>> busy;
    for (const auto& r : h.tracer(a).records)
      if (r.has_link_busy())
        busy.emplace_back(static_cast<int64_t>(r.time_ns()), r.link_busy().busy());
    ASSERT_EQ(busy.size(), 4u);
    EXPECT_TRUE(busy[0].second);
    EXPECT_FALSE(busy[1].second);
    EXPECT_EQ(busy[1].first - busy[0].first, 3 * absl::ToInt64Nanoseconds(AttemptCycle(link)));
    EXPECT_TRUE(busy[2].second);
    EXPECT_EQ(busy[3].first - busy[2].first, 2 * absl::ToInt64Nanoseconds(AttemptCycle(link)));
  }
  // LINK-28: no Generate while idle: one batch per request (LINK-49).
  EXPECT_EQ(h.physics().batches().size(), 2u);
  EXPECT_EQ(h.physics().unpaired(), 0u);
}

TEST(EgpTest, SameSeedSameRun) {
  auto run = [](uint64_t seed) {
    LinkHarness h(Config(SymmetricLink(), 2, 2, seed));
    ReleaseOnOk(h);
    (void)h.a().Create(MeasureRequest("b", 300, v1::BASIS_CHOICE_XYZ, 1));
    (void)h.b().Create(KeepRequest("a", 300, 2));
    h.RunFor(absl::Seconds(1));
    std::string digest;
    for (const v1::Ok& ok : h.listener(false).oks) digest += ok.SerializeAsString();
    return digest;
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

}  // namespace
}  // namespace qnet::link
