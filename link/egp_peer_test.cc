// Robustness of the link layer against untrusted peer frames and heralds, and
// expiry (specs/link.md LINK-09, LINK-14, LINK-22, LINK-31, LINK-36 .. LINK-38,
// LINK-43, LINK-44).
#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "link/egp.h"
#include "link/testing/link_harness.h"
#include "link/testing/requests.h"
#include "stack/heralding_model.h"

namespace qnet::link {
namespace {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_PAIR_EXPIRED;
using results::v1::DROP_REASON_QUEUE_MISMATCH;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;
using results::v1::DROP_REASON_UNKNOWN_LINK;
using testing::KeepRequest;
using testing::LinkHarness;
using testing::MeasureRequest;
using testing::SymmetricLink;

LinkHarness::Config Config(uint32_t memories_a = 2, uint32_t memories_b = 2) {
  LinkHarness::Config c;
  c.link = SymmetricLink();
  c.memories_a = memories_a;
  c.memories_b = memories_b;
  c.seed = 11;
  return c;
}

void ReleaseOnOk(LinkHarness& h) {
  for (bool a : {true, false}) {
    h.listener(a).on_ok = [&h, a](const v1::Ok& ok) {
      if (ok.has_slot()) h.end(a).Release(ok.slot());
    };
  }
}

v1::LinkFrame Frame(const std::string& link = "ab") {
  v1::LinkFrame f;
  f.set_link(link);
  return f;
}

v1::QueueAdd WellFormedAdd(uint64_t queue_id, Time eligible) {
  v1::QueueAdd add;
  add.set_queue_id(queue_id);
  add.set_origin("a");
  add.set_origin_create_id(queue_id);
  *add.mutable_create() = MeasureRequest("b", 3);
  add.set_eligible_ns(static_cast<uint64_t>(eligible.nanos()));
  add.set_alpha(0.5);
  add.set_estimated_fidelity(0.5);
  return add;
}

void ExpectSamePairs(LinkHarness& h) {
  const auto& x = h.listener(true).oks;
  const auto& y = h.listener(false).oks;
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].pair().SerializeAsString(), y[i].pair().SerializeAsString()) << i;
    EXPECT_EQ(x[i].bell_state(), y[i].bell_state()) << i;
  }
}

TEST(EgpPeerTest, LINK_36_MalformedAndUnexpectedFramesAreDropped) {
  LinkHarness h(Config());
  // To the master.
  h.Inject(true, Frame("xy"));  // another link
  h.Inject(true, Frame());      // no body
  v1::LinkFrame f = Frame();
  *f.mutable_add() = WellFormedAdd(1, Time::Zero());  // QueueAdd at the master
  h.Inject(true, f);
  f = Frame();
  f.mutable_reject()->set_origin_create_id(3);  // QueueReject without queue id at the master
  h.Inject(true, f);
  f = Frame();
  f.mutable_reject()->set_queue_id(77);  // for an item never queued
  h.Inject(true, f);
  f = Frame();
  f.mutable_add_request()->set_origin_create_id(1000);
  *f.mutable_add_request()->mutable_create() = MeasureRequest("a", 2);
  f.mutable_add_request()->mutable_create()->set_min_fidelity(std::nan(""));
  h.Inject(true, f);  // nonsense value: refused, answered
  h.Inject(true, f);  // the same request again
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_UNKNOWN_LINK), 1u);
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_MALFORMED_FRAME), 2u);
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_UNEXPECTED_FRAME), 4u);
  EXPECT_TRUE(h.a().queue().empty());

  // To the peer, as if from the master.
  f = Frame();
  f.mutable_add_request()->set_origin_create_id(1);  // QueueAddRequest at the peer
  *f.mutable_add_request()->mutable_create() = MeasureRequest("a", 1);
  h.Inject(false, f);
  v1::QueueAdd add = WellFormedAdd(1001, Time::Zero());
  add.mutable_create()->set_partner_type(static_cast<v1::RequestType>(7));
  f = Frame();
  *f.mutable_add() = add;
  h.Inject(false, f);  // unknown partner type
  h.Inject(false, f);  // duplicate queue id
  add = WellFormedAdd(1002, Time::Zero());
  add.set_alpha(std::numeric_limits<double>::quiet_NaN());
  *f.mutable_add() = add;
  h.Inject(false, f);  // NaN alpha
  add = WellFormedAdd(1003, Time::Zero());
  add.set_estimated_fidelity(-1);
  *f.mutable_add() = add;
  h.Inject(false, f);  // negative fidelity
  add = WellFormedAdd(1004, Time::Zero());
  add.set_origin("zz");
  *f.mutable_add() = add;
  h.Inject(false, f);  // origin not an end
  add = WellFormedAdd(1005, Time::Zero());
  add.set_origin("b");
  *f.mutable_add() = add;
  h.Inject(false, f);  // for a CREATE b never made
  f = Frame();
  f.mutable_reject()->set_origin_create_id(9);
  h.Inject(false, f);  // QueueReject for no pending request
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_MALFORMED_FRAME), 4u);
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_UNEXPECTED_FRAME), 4u);
  EXPECT_TRUE(h.b().queue().empty());

  // The refusals were answered (QueueReject) and those answers are dropped
  // as unexpected at the other end; nothing else changed.
  h.RunFor(absl::Milliseconds(1));
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_UNEXPECTED_FRAME), 5u);  // reject of create 1000
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_UNEXPECTED_FRAME),
            4u + 5u);  // rejects of 1001 .. 1005

  // The link still serves requests from both ends.
  ReleaseOnOk(h);
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 10)).ok());
  ASSERT_TRUE(h.b().Create(MeasureRequest("a", 10)).ok());
  h.RunFor(absl::Seconds(1));
  EXPECT_EQ(h.listener(true).oks.size(), 20u);
  ExpectSamePairs(h);
  EXPECT_TRUE(h.listener(true).errs.empty());
  EXPECT_TRUE(h.listener(false).errs.empty());
  EXPECT_EQ(h.physics().violations().total(), 0u);
}

TEST(EgpPeerTest, LINK_22_LateQueueAddIsServed) {
  LinkHarness h(Config());
  // Hold the first QueueAdd and deliver it five cycles after its eligible time.
  h.frame_filter = [&h](bool to_a, v1::LinkFrame& frame) {
    if (to_a || !frame.has_add() || frame.add().queue_id() != 1) return true;
    const Time late = Time::FromNanos(static_cast<int64_t>(frame.add().eligible_ns())) +
                      5 * AttemptCycle(h.link());
    h.sim().Schedule(late, [&h, frame] { h.Inject(false, frame); });
    return false;
  };
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 50)).ok());
  h.RunFor(absl::Seconds(1));
  EXPECT_EQ(h.b().stats().late_adds, 1u);
  EXPECT_EQ(h.listener(true).oks.size(), 50u);
  ExpectSamePairs(h);
  EXPECT_EQ(h.a().stats().mismatches, 0u);
  EXPECT_EQ(h.physics().unpaired(), 0u);
}

TEST(EgpPeerTest, LINK_31_QueueMismatchIsCountedAndLinkRecovers) {
  LinkHarness h(Config());
  // A queue item that only the peer believes in (a master bug): it is served
  // at b, the master serves its real item, the batch ends QUEUE_MISMATCH.
  v1::LinkFrame f = Frame();
  *f.mutable_add() = WellFormedAdd(500, Time::FromNanos(1000));
  h.Inject(false, f);
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 30)).ok());
  h.RunFor(absl::Seconds(1));
  EXPECT_GE(h.a().stats().mismatches, 1u);
  EXPECT_LE(h.a().stats().mismatches, 3u);
  EXPECT_EQ(h.a().stats().mismatches, h.b().stats().mismatches);
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_QUEUE_MISMATCH), h.a().stats().mismatches);
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_QUEUE_MISMATCH), h.b().stats().mismatches);
  // The QueueCheck exchange removed the phantom item at the peer.
  EXPECT_TRUE(h.b().queue().empty());
  EXPECT_EQ(h.listener(true).oks.size(), 30u);
  ExpectSamePairs(h);
  EXPECT_EQ(h.physics().unpaired(), 0u);
}

TEST(EgpPeerTest, LINK_14_ExpiryReportedAtBothEnds) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  // The first success reaches b without its slot: b cannot deliver it.
  h.physics().MutateNextSuccess(false, [](physical::v1::Herald& herald) { herald.clear_slot(); });
  auto id = h.a().Create(KeepRequest("b", 5));
  ASSERT_TRUE(id.ok());
  h.RunFor(absl::Seconds(1));
  const auto& oks_a = h.listener(true).oks;
  const auto& oks_b = h.listener(false).oks;
  ASSERT_EQ(oks_a.size(), 5u);  // a delivered seq 1 before it heard of the expiry
  ASSERT_EQ(oks_b.size(), 4u);
  EXPECT_EQ(oks_b[0].pair().sequence(), 2u);
  for (bool a : {true, false}) {
    auto expired = h.listener(a).ErrsWithCode(v1::ERROR_CODE_EXPIRED);
    ASSERT_EQ(expired.size(), 1u) << a;
    EXPECT_EQ(expired[0].create_id(), *id);
    EXPECT_EQ(expired[0].origin(), "a");
    EXPECT_EQ(expired[0].expired_from(), 1u);
    EXPECT_EQ(expired[0].expired_to(), 1u);
    EXPECT_EQ(h.listener(a).errs.size(), 1u);
  }
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_PAIR_EXPIRED), 1u);
  // The undeliverable qubit was freed; nothing leaked; the item completed.
  EXPECT_TRUE(h.physics().occupied(false).empty());
  EXPECT_EQ(h.pool(false).free_count(), 2u);
  EXPECT_EQ(h.physics().violations().total(), 0u);
  EXPECT_TRUE(h.a().queue().empty());
  EXPECT_TRUE(h.b().queue().empty());
}

TEST(EgpPeerTest, LINK_14_UndeliverableMeasureResultExpires) {
  LinkHarness h(Config());
  h.physics().MutateNextSuccess(true, [](physical::v1::Herald& herald) { herald.set_result(7); });
  auto id = h.b().Create(MeasureRequest("a", 4));
  ASSERT_TRUE(id.ok());
  h.RunFor(absl::Seconds(1));
  EXPECT_EQ(h.listener(true).oks.size(), 3u);
  EXPECT_EQ(h.listener(false).oks.size(), 4u);
  for (bool a : {true, false}) {
    auto expired = h.listener(a).ErrsWithCode(v1::ERROR_CODE_EXPIRED);
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_EQ(expired[0].origin(), "b");
    EXPECT_EQ(expired[0].create_id(), *id);
    EXPECT_EQ(expired[0].expired_from(), 1u);
  }
}

TEST(EgpPeerTest, LINK_37_UnexpectedHeraldsAreDropped) {
  LinkHarness h(Config());
  physical::v1::Herald herald;
  herald.set_link("ab");
  herald.set_batch(1);
  herald.set_outcome(physical::v1::OUTCOME_SUCCESS);
  h.a().OnHerald(herald);  // no batch runs
  herald.set_link("zz");
  h.a().OnHerald(herald);  // another link
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_UNEXPECTED_FRAME), 1u);
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_UNKNOWN_LINK), 1u);
  ASSERT_TRUE(h.a().Create(MeasureRequest("b", 20)).ok());
  // Once the first batch runs, a herald for another batch number.
  h.RunUntil(Time::Zero() + 2 * h.delay() + AttemptCycle(h.link()));
  ASSERT_EQ(h.a().stats().batches, 1u);
  herald.set_link("ab");
  herald.set_batch(99);
  h.a().OnHerald(herald);
  EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_UNEXPECTED_FRAME), 2u);
  h.RunFor(absl::Seconds(1));
  EXPECT_EQ(h.listener(true).oks.size(), 20u);
  ExpectSamePairs(h);
}

TEST(EgpPeerTest, LINK_38_BadExpireFramesAreDropped) {
  LinkHarness h(Config());
  auto id = h.a().Create(MeasureRequest("b", 3));
  ASSERT_TRUE(id.ok());
  h.RunFor(absl::Seconds(1));
  ASSERT_EQ(h.listener(false).oks.size(), 3u);
  auto expire = [&](const std::string& origin, uint64_t queue_id, uint64_t from, uint64_t to) {
    v1::LinkFrame f = Frame();
    f.mutable_expire()->set_origin(origin);
    f.mutable_expire()->set_queue_id(queue_id);
    f.mutable_expire()->set_sequence_from(from);
    f.mutable_expire()->set_sequence_to(to);
    f.mutable_expire()->set_origin_create_id(12345);  // ignored: the item's own create id is used
    h.Inject(false, f);
  };
  expire("zz", 1, 1, 1);
  expire("a", 1, 0, 1);
  expire("a", 1, 2, 1);
  expire("a", 1, 1, 4);  // only 3 assigned
  expire("a", 9, 1, 1);  // unknown queue id
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_MALFORMED_FRAME), 4u);
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_UNEXPECTED_FRAME), 1u);
  EXPECT_TRUE(h.listener(false).errs.empty());
  expire("a", 1, 2, 2);
  ASSERT_EQ(h.listener(false).errs.size(), 1u);
  EXPECT_EQ(h.listener(false).errs[0].create_id(), *id);
  expire("a", 1, 2, 2);  // again: not reported twice
  EXPECT_EQ(h.listener(false).errs.size(), 1u);
  EXPECT_EQ(h.tracer(false).DropCount(DROP_REASON_UNEXPECTED_FRAME), 2u);
  expire("a", 1, 1, 3);  // reports the runs 1..1 and 3..3
  ASSERT_EQ(h.listener(false).errs.size(), 3u);
  EXPECT_EQ(h.listener(false).errs[1].expired_from(), 1u);
  EXPECT_EQ(h.listener(false).errs[1].expired_to(), 1u);
  EXPECT_EQ(h.listener(false).errs[2].expired_from(), 3u);
  EXPECT_EQ(h.listener(false).errs[2].expired_to(), 3u);
}

TEST(EgpPeerTest, LINK_09_ReleaseOfUnknownSlotIsDropped) {
  LinkHarness h(Config());
  h.a().Release(0);  // holds nothing yet
  EXPECT_EQ(h.a().stats().drops, 1u);
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 1)).ok());
  h.RunFor(absl::Seconds(1));
  ASSERT_EQ(h.listener(true).oks.size(), 1u);
  const uint32_t slot = h.listener(true).oks[0].slot();
  EXPECT_TRUE(h.pool(true).allocated(slot));  // held until Release
  h.a().Release(slot);
  h.a().Release(slot);  // twice
  EXPECT_EQ(h.a().stats().drops, 2u);
  EXPECT_EQ(h.pool(true).frees_sent(), 1u);
  EXPECT_FALSE(h.pool(true).allocated(slot));
  EXPECT_EQ(h.physics().violations().total(), 0u);
}

// LINK-43: a physical Error for the running batch ends it as failed (slot back
// without a Free, PHYSICS_ERROR drop) and the end decides again at once; a
// refusal that recurs at the same time is retried one cycle later. Either way
// every pair is delivered at both ends and no slot leaks.
struct RefusalCase {
  physical::v1::ErrorCode code;
  int refusals;
  int expected_delay_cycles;  // of the first paired batch after the eligible time
  uint64_t errors_a, errors_b;
};

class EgpPhysicalErrorTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(EgpPhysicalErrorTest, LINK_43_RefusedGenerateEndsBatchAndLinkGoesOn) {
  const RefusalCase& c = GetParam();
  LinkHarness h(Config());
  ReleaseOnOk(h);
  h.physics().RefuseNextGenerates(true, c.code, c.refusals);
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 20)).ok());
  h.RunFor(absl::Seconds(1));

  ASSERT_EQ(h.listener(true).oks.size(), 20u);
  ExpectSamePairs(h);
  EXPECT_EQ(h.tracer(true).DropCount(results::v1::DROP_REASON_PHYSICS_ERROR), c.errors_a);
  EXPECT_EQ(h.tracer(false).DropCount(results::v1::DROP_REASON_PHYSICS_ERROR), c.errors_b);
  EXPECT_EQ(h.a().stats().physical_errors, c.errors_a);
  EXPECT_EQ(h.b().stats().physical_errors, c.errors_b);
  EXPECT_EQ(h.physics().errors_sent(), c.errors_a + c.errors_b);
  ASSERT_FALSE(h.physics().batches().empty());
  const Time eligible = Time::Zero() + 2 * h.a().delay() + h.a().margin();
  EXPECT_EQ(h.physics().batches()[0].start,
            eligible + AttemptCycle(h.link()) * c.expected_delay_cycles);
  EXPECT_EQ(h.physics().violations().total(), 0u);
  EXPECT_EQ(h.physics().unpaired(), 0u);
  for (bool a : {true, false}) {
    EXPECT_EQ(h.pool(a).free_count(), h.pool(a).capacity()) << a;
    EXPECT_TRUE(h.end(a).queue().empty()) << a;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Refusals, EgpPhysicalErrorTest,
    ::testing::Values(
        // Refused once: the same batch number again at once, the peer sees nothing.
        RefusalCase{physical::v1::ERROR_CODE_SLOT_BUSY, 1, 0, 1, 0},
        // BAD_BATCH: the next number supersedes the peer's waiting batch, which
        // ends there too (PHYS-B3); both decide again at the same time.
        RefusalCase{physical::v1::ERROR_CODE_BAD_BATCH, 1, 0, 1, 1},
        // Refused 5 times: two tries per cycle, paired two cycles later.
        RefusalCase{physical::v1::ERROR_CODE_SLOT_BUSY, 5, 2, 5, 0}));

TEST(EgpPeerTest, LINK_43_ErrorsForNoRunningBatchAreOnlyCounted) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  physical::v1::Error e;
  e.set_code(physical::v1::ERROR_CODE_SLOT_BUSY);
  e.set_link("ab");
  e.set_batch(1);
  h.a().OnPhysicalError(e);  // no batch runs
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 5)).ok());
  h.RunUntil(Time::Zero() + 2 * h.a().delay() + h.a().margin());  // batch 1 runs now
  e.set_batch(7);
  h.a().OnPhysicalError(e);  // another batch
  e.set_batch(1);
  e.set_link("xy");
  h.a().OnPhysicalError(e);  // another link
  h.RunFor(absl::Seconds(1));
  EXPECT_EQ(h.tracer(true).DropCount(results::v1::DROP_REASON_PHYSICS_ERROR), 3u);
  EXPECT_EQ(h.listener(true).oks.size(), 5u);
  ExpectSamePairs(h);
  EXPECT_EQ(h.physics().violations().total(), 0u);
  EXPECT_EQ(h.pool(true).free_count(), h.pool(true).capacity());
}

// LINK-44: a herald whose time_ns lies beyond its arrival plus one cycle (no
// physical layer can send that; time_ns may not even be representable) must
// not stall the end until then: it acts at arrival and expires the pair at
// both ends.
TEST(EgpPeerTest, LINK_44_HeraldTimeBeyondOneCycleDoesNotStallTheLink) {
  for (const uint64_t shift : {std::numeric_limits<uint64_t>::max(), uint64_t{10'000'000'000}}) {
    SCOPED_TRACE(shift);
    LinkHarness h(Config());
    ReleaseOnOk(h);
    h.physics().MutateNextSuccess(true, [shift](physical::v1::Herald& herald) {
      herald.set_time_ns(shift == std::numeric_limits<uint64_t>::max() ? shift
                                                                       : herald.time_ns() + shift);
    });
    ASSERT_TRUE(h.a().Create(KeepRequest("b", 10)).ok());
    h.RunFor(absl::Seconds(1));
    EXPECT_EQ(h.tracer(true).DropCount(DROP_REASON_PAIR_EXPIRED), 1u);
    EXPECT_EQ(h.listener(true).oks.size(), 9u);
    EXPECT_EQ(h.listener(false).oks.size(), 10u);
    for (bool a : {true, false}) {
      const auto expired = h.listener(a).ErrsWithCode(v1::ERROR_CODE_EXPIRED);
      ASSERT_EQ(expired.size(), 1u) << a;
      EXPECT_EQ(expired[0].expired_from(), 1u) << a;
      EXPECT_EQ(expired[0].expired_to(), 1u) << a;
      EXPECT_TRUE(h.end(a).queue().empty()) << a;
      EXPECT_EQ(h.pool(a).free_count(), h.pool(a).capacity()) << a;
    }
    EXPECT_EQ(h.physics().violations().total(), 0u);
  }
}

// LINK-43: when Errors arrive a little after the request (a real-time
// round trip), a refusal that recurs still costs at most two Generates per
// cycle, not one per round trip.
TEST(EgpPeerTest, LINK_43_RecurringRefusalWithDelayedErrorsIsPaced) {
  LinkHarness h(Config());
  ReleaseOnOk(h);
  h.physics().set_error_delay(absl::Nanoseconds(1));
  h.physics().RefuseNextGenerates(true, physical::v1::ERROR_CODE_SLOT_BUSY, 5);
  ASSERT_TRUE(h.a().Create(KeepRequest("b", 5)).ok());
  h.RunFor(absl::Seconds(1));
  EXPECT_EQ(h.a().stats().physical_errors, 5u);
  ASSERT_EQ(h.listener(true).oks.size(), 5u);
  ExpectSamePairs(h);
  const Time eligible = Time::Zero() + 2 * h.a().delay() + h.a().margin();
  ASSERT_FALSE(h.physics().batches().empty());
  EXPECT_GE(h.physics().batches()[0].start, eligible + 2 * AttemptCycle(h.link()));
  EXPECT_LT(h.physics().batches()[0].start, eligible + 3 * AttemptCycle(h.link()));
}

}  // namespace
}  // namespace qnet::link
