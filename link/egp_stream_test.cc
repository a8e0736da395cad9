// Streaming generation in the link layer (specs/link.md section 10): standing
// requests, windows of held pairs, a type per end, cancel and batches of
// several pairs; and the biased basis choice of LINK-10. Two Egps on the
// simulator with the fake physical layer.
#include <cmath>
#include <map>

#include "gtest/gtest.h"
#include "link/create_check.h"
#include "link/egp.h"
#include "link/testing/link_harness.h"
#include "link/testing/requests.h"
#include "stack/heralding_model.h"

namespace qnet::link {
namespace {

using testing::KeepRequest;
using testing::LinkHarness;
using testing::MeasureRequest;
using testing::SymmetricLink;

LinkHarness::Config Config(uint32_t memories_a = 4, uint32_t memories_b = 4, uint64_t seed = 3) {
  LinkHarness::Config c;
  c.link = SymmetricLink();
  c.memories_a = memories_a;
  c.memories_b = memories_b;
  c.seed = seed;
  return c;
}

size_t Busy(LinkHarness& h) { return h.physics().batches().size(); }

// LINK-45, LINK-48: a standing request (pairs 0) keeps delivering until its
// origin cancels it; the cancel takes effect at both ends one delay plus the
// margin later, nothing is generated after it, and no ERR is reported. Both
// ends delivered the same pairs. Either end may be the origin.
TEST(EgpStreamTest, LINK_45_48_StandingRequestUntilCancelled) {
  for (bool from_a : {true, false}) {
    SCOPED_TRACE(from_a ? "origin a (master)" : "origin b");
    LinkHarness h(Config());
    auto id = h.end(from_a).Create(MeasureRequest(from_a ? "b" : "a", 0));
    ASSERT_TRUE(id.ok()) << id.status();
    h.RunFor(absl::Milliseconds(5));
    const size_t before = h.listener(true).oks.size();
    EXPECT_GT(before, 100u);
    const Time cancelled = h.sim().Now();
    ASSERT_TRUE(h.end(from_a).Cancel(*id).ok());
    EXPECT_EQ(h.end(from_a).Cancel(*id).code(), absl::StatusCode::kNotFound);  // once
    h.RunFor(absl::Milliseconds(5));
    // Gone from both queues; nothing generated after the cancel took effect
    // (master: now + d + m; peer-origin: one more delay to reach the master).
    EXPECT_TRUE(h.a().queue().empty());
    EXPECT_TRUE(h.b().queue().empty());
    const Time effective = cancelled + (from_a ? 1 : 2) * h.delay() + h.a().margin();
    for (const auto& b : h.physics().batches()) EXPECT_LE(b.start, effective);
    const size_t after = h.listener(true).oks.size();
    EXPECT_LT(after - before, 80u);  // at most the pairs of about one delay + margin
    EXPECT_EQ(h.listener(false).oks.size(), after);
    EXPECT_TRUE(h.listener(true).errs.empty());
    EXPECT_TRUE(h.listener(false).errs.empty());
    EXPECT_EQ(h.a().stats().cancels, 1u);
    EXPECT_EQ(h.b().stats().cancels, 1u);
    h.RunFor(absl::Milliseconds(5));
    EXPECT_EQ(h.listener(true).oks.size(), after);
  }
}

// LINK-46: a keep request with window 2 holds at most 2 of its pairs at each
// end; every pair freed (by Release, or given back to the pool by another
// layer after a measurement) lets one more be generated, and the rest of the
// memory stays free for others.
TEST(EgpStreamTest, LINK_46_WindowBoundsThePairsHeldAtEachEnd) {
  LinkHarness h(Config(4, 4));
  v1::Create c = KeepRequest("b", 0);
  c.set_window(2);
  auto id = h.a().Create(c);
  ASSERT_TRUE(id.ok());
  h.RunFor(absl::Milliseconds(5));
  ASSERT_EQ(h.listener(true).oks.size(), 2u);
  ASSERT_EQ(h.listener(false).oks.size(), 2u);
  EXPECT_EQ(h.pool(true).free_count(), 2u);
  EXPECT_EQ(h.pool(false).free_count(), 2u);
  const uint64_t qid = h.a().queue().items().begin()->first;
  EXPECT_EQ(h.a().held(qid), 2u);
  // Free one pair at each end: a by Release, b through the pool directly (as
  // another layer above does, e.g. the transport).
  h.a().Release(h.listener(true).oks[0].slot());
  ASSERT_TRUE(h.pool(false).Release(h.listener(false).oks[0].slot()).ok());
  h.RunFor(absl::Milliseconds(5));
  EXPECT_EQ(h.listener(true).oks.size(), 3u);
  EXPECT_EQ(h.listener(false).oks.size(), 3u);
  EXPECT_EQ(h.a().held(qid), 2u);
  EXPECT_EQ(h.b().held(qid), 2u);
  // Freed at one end only: the other end's window is still full, nothing new.
  h.a().Release(h.listener(true).oks[1].slot());
  h.RunFor(absl::Milliseconds(5));
  EXPECT_EQ(h.listener(true).oks.size(), 3u);
  EXPECT_EQ(h.physics().violations().total(), 0u);
}

// LINK-47: keep at the origin, measure directly at the partner: the origin's
// OKs carry a slot, the partner's a basis and result and no slot; the
// partner uses no memory.
TEST(EgpStreamTest, LINK_47_KeepAtOneEndMeasureAtTheOther) {
  LinkHarness h(Config(4, 0));
  v1::Create c = KeepRequest("a", 6);
  c.set_partner_type(v1::REQUEST_TYPE_MEASURE);
  c.set_basis(v1::BASIS_CHOICE_X);
  h.listener(false).on_ok = [&](const v1::Ok& ok) {
    if (ok.has_slot()) h.b().Release(ok.slot());
  };
  // b has no memory: as origin it would keep, refused; as partner it measures.
  auto refused = h.b().Create(c);  // origin b would keep without memory
  EXPECT_EQ(ErrorCodeOf(refused.status()), v1::ERROR_CODE_NORES);
  c.set_remote_node("b");
  h.listener(true).on_ok = [&](const v1::Ok& ok) {
    if (ok.has_slot()) h.a().Release(ok.slot());
  };
  ASSERT_TRUE(h.a().Create(c).ok());
  h.RunFor(absl::Milliseconds(10));
  ASSERT_EQ(h.listener(true).oks.size(), 6u);
  ASSERT_EQ(h.listener(false).oks.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(h.listener(true).oks[i].has_slot());
    EXPECT_FALSE(h.listener(false).oks[i].has_slot());
    EXPECT_EQ(h.listener(false).oks[i].basis(), physical::v1::BASIS_X);
  }
  EXPECT_EQ(h.physics().violations().total(), 0u);
}

// LINK-49: a request alone on the link is served in batches of
// max_batch_pairs; a keep request in batches of the slots it can have; two
// requests of equal weight alternate pair by pair, as with one pair per batch.
TEST(EgpStreamTest, LINK_49_BatchSizes) {
  {
    LinkHarness h(Config());
    ASSERT_TRUE(h.a().Create(MeasureRequest("b", 200)).ok());
    h.RunFor(absl::Milliseconds(20));
    ASSERT_EQ(h.listener(true).oks.size(), 200u);
    std::vector<uint32_t> sizes;
    for (const auto& b : h.physics().batches()) sizes.push_back(b.pairs);
    EXPECT_EQ(sizes, (std::vector<uint32_t>{64, 64, 64, 8}));
  }
  {
    LinkHarness h(Config(3, 4));
    testing::RecordingListener& la = h.listener(true);
    la.on_ok = [&](const v1::Ok& ok) {
      // Released a little later, after the batch is over.
      h.sim().Schedule(h.sim().Now() + absl::Microseconds(200),
                       [&h, slot = ok.slot()] { h.a().Release(slot); });
    };
    h.listener(false).on_ok = [&](const v1::Ok& ok) { h.b().Release(ok.slot()); };
    v1::Create c = KeepRequest("b", 30);
    c.set_window(8);
    ASSERT_TRUE(h.a().Create(c).ok());
    h.RunFor(absl::Milliseconds(50));
    ASSERT_EQ(la.oks.size(), 30u);
    for (const auto& b : h.physics().batches()) {
      EXPECT_GE(b.pairs, 1u);
      EXPECT_LE(b.pairs, 3u);  // a has 3 memories
    }
    EXPECT_EQ(h.physics().batches().front().pairs, 3u);
  }
  {
    LinkHarness h(Config());
    auto x = h.a().Create(MeasureRequest("b", 0));
    auto y = h.b().Create(MeasureRequest("a", 0));
    ASSERT_TRUE(x.ok() && y.ok());
    h.RunFor(absl::Milliseconds(20));
    size_t pairs = 0;
    for (const auto& b : h.physics().batches()) {
      EXPECT_EQ(b.pairs, 1u);
      pairs += b.pairs;
    }
    EXPECT_GT(pairs, 500u);
    std::map<std::string, int> count;
    for (const v1::Ok& ok : h.listener(true).oks) ++count[ok.pair().origin()];
    EXPECT_NEAR(count["a"], count["b"], 2);
  }
}

// LINK-10: with z_probability each end draws Z with that probability, per
// pair, independently of the other end.
TEST(EgpStreamTest, LINK_10_BiasedBasisChoice) {
  LinkHarness h(Config());
  v1::Create c = MeasureRequest("b", 4000, v1::BASIS_CHOICE_XZ);
  c.set_z_probability(0.8);
  ASSERT_TRUE(h.a().Create(c).ok());
  h.RunFor(absl::Seconds(1));
  for (bool a : {true, false}) {
    const auto& oks = h.listener(a).oks;
    ASSERT_EQ(oks.size(), 4000u);
    int z = 0;
    for (const v1::Ok& ok : oks) {
      ASSERT_TRUE(ok.basis() == physical::v1::BASIS_Z || ok.basis() == physical::v1::BASIS_X);
      z += ok.basis() == physical::v1::BASIS_Z;
    }
    EXPECT_NEAR(z / 4000.0, 0.8, 3 * std::sqrt(0.8 * 0.2 / 4000));
  }
  int both_z = 0;
  for (size_t i = 0; i < 4000; ++i) {
    both_z += h.listener(true).oks[i].basis() == physical::v1::BASIS_Z &&
              h.listener(false).oks[i].basis() == physical::v1::BASIS_Z;
  }
  EXPECT_NEAR(both_z / 4000.0, 0.64, 3 * std::sqrt(0.64 * 0.36 / 4000));
}

// LINK-37: a success herald whose index is not the next one of its batch is
// a heralded success whose pair expires at both ends; the batch goes on.
// (Index 0, the proto3 default of a herald that does not say its index, is
// a wrong index too: PHYS-B18 numbers successes from 1.)
TEST(EgpStreamTest, LINK_37_SuccessWithTheWrongIndexExpires) {
  for (uint32_t wrong : {5u, 0u}) {
    SCOPED_TRACE(wrong);
    LinkHarness h(Config());
    h.physics().MutateNextSuccess(true,
                                  [wrong](physical::v1::Herald& herald) { herald.set_index(wrong); });
    ASSERT_TRUE(h.a().Create(MeasureRequest("b", 10)).ok());
    h.RunFor(absl::Milliseconds(5));
    EXPECT_EQ(h.listener(true).oks.size(), 9u);
    EXPECT_EQ(h.listener(false).oks.size(), 10u);  // delivered, then expired (LINK-14)
    ASSERT_EQ(h.listener(true).ErrsWithCode(v1::ERROR_CODE_EXPIRED).size(), 1u);
    ASSERT_EQ(h.listener(false).ErrsWithCode(v1::ERROR_CODE_EXPIRED).size(), 1u);
    EXPECT_EQ(h.listener(false).ErrsWithCode(v1::ERROR_CODE_EXPIRED)[0].expired_from(), 1u);
    EXPECT_TRUE(h.a().queue().empty());
  }
}

}  // namespace
}  // namespace qnet::link
