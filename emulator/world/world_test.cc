#include "emulator/world/world.h"

#include <cmath>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "emulator/world/batch_plan.h"
#include "emulator/world/testing/recording_output.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"

namespace qnet::world {
namespace {

namespace pv = physical::v1;
namespace rv = results::v1;
using testing::Delivery;
using testing::GenerateArgs;
using testing::RecordingOutput;

LinkSpec WernerLink(double p, double f = 0.9) {
  LinkSpec l;
  l.scheme = HeraldingScheme::kWerner;
  l.p_success = p;
  l.fidelity = f;
  l.attempt_s = 10e-6;
  return l;
}

class WorldTest : public ::testing::Test {
 protected:
  void Init(const LinkSpec& link, bool three = false, uint64_t seed = 1) {
    topology_ = testing::TwoNodes(link, 4, three);
    world_ = std::make_unique<World>(topology_, Rng(seed), &out_);
    for (const NodeSpec& n : topology_.nodes)
      world_->Handle(n.name, testing::Hello(n.name), Time::Zero());
  }
  void Send(const std::string& node, const pv::NodeToWorld& m, Time now) {
    world_->Handle(node, m, now);
  }
  // The last herald delivered to `node`.
  Delivery LastHerald(const std::string& node) {
    auto h = out_.To(node, pv::WorldToNode::kHerald);
    EXPECT_FALSE(h.empty());
    return h.empty() ? Delivery{} : h.back();
  }
  // The Error codes delivered since `from`, to `node`.
  std::vector<pv::ErrorCode> Errors(const std::string& node, size_t from) {
    std::vector<pv::ErrorCode> codes;
    for (const Delivery& d : out_.To(node, pv::WorldToNode::kError, from))
      codes.push_back(d.message.error().code());
    return codes;
  }

  Topology topology_;
  RecordingOutput out_;
  std::unique_ptr<World> world_;
};

// PHYS-S1: Hello is answered with the node's memories; an unknown node, a
// request before Hello, a wrong version and a second Hello are errors.
TEST_F(WorldTest, HelloSession) {
  Init(WernerLink(0.5));
  auto acks = out_.To("a", pv::WorldToNode::kHelloAck);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].message.hello_ack().memories(), 4u);
  EXPECT_EQ(acks[0].message.version(), 1u);
  Send("zed", testing::Hello("zed"), Time::Zero());
  EXPECT_EQ(Errors("zed", 0), std::vector<pv::ErrorCode>{pv::ERROR_CODE_UNKNOWN_NODE});
  Send("a", testing::Hello("a"), Time::Zero());
  EXPECT_EQ(Errors("a", 0), std::vector<pv::ErrorCode>{pv::ERROR_CODE_UNEXPECTED});
  pv::NodeToWorld v2 = testing::Free(0);
  v2.set_version(2);
  Send("a", v2, Time::Zero());
  EXPECT_EQ(Errors("a", 0).back(), pv::ERROR_CODE_VERSION);
  Send("a", testing::Bye(), Time::Zero());
  Send("a", testing::Free(0), Time::Zero());  // PHYS-S2: a said Bye
  EXPECT_EQ(Errors("a", 0).back(), pv::ERROR_CODE_UNEXPECTED);
  Send("a", testing::Hello("a"), Time::Zero());
  EXPECT_EQ(out_.To("a", pv::WorldToNode::kHelloAck).size(), 2u);
  EXPECT_EQ(world_->errors(), 4u);
  EXPECT_EQ(world_->operations(), 8u);  // 2 Hellos in Init + 6 here
}

// PHYS-B4, PHYS-B12: both ends get the same time_ns; on an asymmetric link
// each herald arrives at t_N + HeraldDelay(side), the nearer node first; a
// batch requested at the herald starts at once.
TEST_F(WorldTest, HeraldTimesOnAnAsymmetricLink) {
  LinkSpec link = WernerLink(0.2);
  link.length_km = 30;
  link.midpoint_fraction = 0.25;
  Init(link);
  const absl::Duration cycle = AttemptCycle(link);
  Time now = Time::FromNanos(12345);
  for (uint64_t batch = 1; batch <= 200; ++batch) {
    GenerateArgs g;
    g.batch = batch;
    g.queue_id = 7;
    Send("a", testing::Generate(g), now);
    Send("b", testing::Generate(g), now);
    const Delivery ha = LastHerald("a"), hb = LastHerald("b");
    ASSERT_EQ(ha.message.herald().batch(), batch);
    ASSERT_EQ(ha.message.herald().outcome(), pv::OUTCOME_SUCCESS);
    EXPECT_EQ(ha.message.herald().time_ns(), hb.message.herald().time_ns());
    EXPECT_EQ(ha.message.herald().pair_seq(), batch);
    EXPECT_EQ(ha.message.herald().queue_id(), 7u);
    EXPECT_EQ(ha.message.herald().slot(), 0u);
    EXPECT_EQ(ha.message.herald().bell_state(), hb.message.herald().bell_state());
    const Time end = Time::FromNanos(static_cast<int64_t>(ha.message.herald().time_ns()));
    const Time t_n = end - cycle;
    EXPECT_EQ(t_n, now + cycle * static_cast<int64_t>(ha.message.herald().attempts() - 1));
    EXPECT_EQ(ha.at, t_n + HeraldDelay(link, true));
    EXPECT_EQ(hb.at, t_n + HeraldDelay(link, false));
    EXPECT_LT(ha.at, hb.at);
    const size_t errors_before = out_.deliveries.size();
    Send("a", testing::Free(0), ha.at);
    Send("b", testing::Free(0), hb.at);
    EXPECT_TRUE(Errors("a", errors_before).empty());
    EXPECT_TRUE(Errors("b", errors_before).empty());
    now = hb.at;
  }
  const auto batches = out_.Records(rv::TraceRecord::kBatch);
  ASSERT_EQ(batches.size(), 200u);
  EXPECT_EQ(out_.Records(rv::TraceRecord::kHeraldTruth).size(), 200u);
}

// PHYS-B6, PHYS-B7, PHYS-B11 through the World.
TEST_F(WorldTest, MismatchIdleAndDeadlineHeralds) {
  Init(WernerLink(1e-9));
  const Time s = Time::FromNanos(1'000'000);
  GenerateArgs a, b;
  b.queue_id = 2;
  Send("a", testing::Generate(a), s);
  Send("b", testing::Generate(b), s);
  EXPECT_EQ(LastHerald("a").message.herald().outcome(), pv::OUTCOME_QUEUE_MISMATCH);
  EXPECT_EQ(LastHerald("b").message.herald().queue_id(), 2u);
  EXPECT_EQ(LastHerald("b").at, s + absl::Microseconds(10));

  Time now = LastHerald("b").at;
  a.batch = b.batch = 2;
  b.queue_id = 1;
  a.idle_cycles = 4;
  Send("b", testing::Generate(b), now);
  Send("a", testing::Generate(a), now);
  EXPECT_EQ(LastHerald("a").message.herald().outcome(), pv::OUTCOME_IDLE);
  EXPECT_EQ(LastHerald("a").at, now + absl::Microseconds(40));
  EXPECT_EQ(LastHerald("b").message.herald().time_ns(),
            static_cast<uint64_t>((now + absl::Microseconds(40)).nanos()));

  now = LastHerald("a").at;
  a.batch = b.batch = 3;
  a.idle_cycles = 0;
  a.deadline_ns = static_cast<uint64_t>((now + absl::Microseconds(35)).nanos());
  Send("a", testing::Generate(a), now);
  Send("b", testing::Generate(b), now);
  const pv::Herald& h = LastHerald("b").message.herald();
  EXPECT_EQ(h.outcome(), pv::OUTCOME_DEADLINE);
  EXPECT_EQ(h.attempts(), 4u);
  EXPECT_EQ(LastHerald("b").at, now + absl::Microseconds(40));
  EXPECT_FALSE(h.has_slot());
  // The slots are free again after the herald: a new keep batch is accepted.
  now = LastHerald("b").at;
  a.batch = b.batch = 4;
  a.deadline_ns = 0;
  const size_t mark = out_.deliveries.size();
  Send("a", testing::Generate(a), now);
  EXPECT_TRUE(Errors("a", mark).empty());
}

// PHYS-E*: every bad request gets one Error with its code and changes
// nothing: a world that also received them produces exactly the same heralds,
// results and truth records for the good requests as one that did not.
TEST_F(WorldTest, BadRequestsAreAnsweredAndChangeNothing) {
  LinkSpec link = WernerLink(0.3, 0.8);
  RecordingOutput clean_out, dirty_out;
  Topology topology = testing::TwoNodes(link, 4, /*three=*/true);
  World clean(topology, Rng(99), &clean_out), dirty(topology, Rng(99), &dirty_out);
  std::vector<pv::ErrorCode> expected;
  auto good = [&](const std::string& node, const pv::NodeToWorld& m, Time now) {
    clean.Handle(node, m, now);
    dirty.Handle(node, m, now);
  };
  auto bad = [&](const std::string& node, const pv::NodeToWorld& m, Time now, pv::ErrorCode code) {
    const size_t before = dirty_out.deliveries.size();
    dirty.Handle(node, m, now);
    ASSERT_EQ(dirty_out.deliveries.size(), before + 1) << pv::ErrorCode_Name(code);
    const Delivery& d = dirty_out.deliveries.back();
    EXPECT_EQ(d.node, node);
    EXPECT_EQ(d.at, now);
    EXPECT_EQ(d.message.error().code(), code) << d.message.error().detail();
    expected.push_back(code);
  };
  Time now = Time::Zero();
  bad("a", testing::Free(0), now, pv::ERROR_CODE_UNEXPECTED);  // before Hello
  for (const char* n : {"a", "b", "c"}) good(n, testing::Hello(n), now);
  GenerateArgs g;
  auto gen = [&](auto change) {
    GenerateArgs x = g;
    change(x);
    return testing::Generate(x);
  };
  pv::NodeToWorld v0 = testing::Generate(g);
  v0.set_version(0);
  bad("a", v0, now, pv::ERROR_CODE_VERSION);
  pv::NodeToWorld empty;
  empty.set_version(1);
  bad("a", empty, now, pv::ERROR_CODE_MALFORMED);
  bad("a", gen([](GenerateArgs& x) { x.link = "zz"; }), now, pv::ERROR_CODE_UNKNOWN_LINK);
  bad("c", testing::Generate(g), now, pv::ERROR_CODE_NOT_LINK_END);
  bad("a", gen([](GenerateArgs& x) { x.slot = 4; }), now, pv::ERROR_CODE_BAD_SLOT);
  bad("a", gen([](GenerateArgs& x) { x.alpha = std::nan(""); }), now, pv::ERROR_CODE_MALFORMED);
  bad("a", gen([](GenerateArgs& x) { x.alpha = -0.1; }), now, pv::ERROR_CODE_MALFORMED);
  bad("a", gen([](GenerateArgs& x) { x.batch = 0; }), now, pv::ERROR_CODE_MALFORMED);
  bad("a", gen([](GenerateArgs& x) { x.basis = static_cast<pv::Basis>(9); }), now,
      pv::ERROR_CODE_MALFORMED);

  good("a", testing::Generate(g), now);                           // batch 1 waits for b
  bad("a", testing::Generate(g), now, pv::ERROR_CODE_BAD_BATCH);  // same batch again
  bad("a", gen([](GenerateArgs& x) {
        x.batch = 2;
        x.slot = 1;
      }),
      now, pv::ERROR_CODE_BAD_BATCH);
  bad("a", gen([](GenerateArgs& x) {
        x.batch = 5;
        x.slot = 2;
      }),
      now, pv::ERROR_CODE_BAD_BATCH);
  // A slot reserved by a batch that waits for the peer cannot serve another batch.
  good("b", gen([](GenerateArgs& x) {
         x.link = "bc";
         x.slot = 3;
       }),
       now);
  bad("b", gen([](GenerateArgs& x) { x.slot = 3; }), now, pv::ERROR_CODE_SLOT_BUSY);
  good("b", testing::Generate(g), now);
  const Delivery ha = clean_out.To("a", pv::WorldToNode::kHerald).back();
  const Delivery hb = clean_out.To("b", pv::WorldToNode::kHerald).back();
  ASSERT_EQ(ha.message.herald().outcome(), pv::OUTCOME_SUCCESS);
  if (ha.at > now) {
    bad("a", testing::Free(0), ha.at - absl::Nanoseconds(1), pv::ERROR_CODE_SLOT_BUSY);
    bad("a", testing::Measure(1, 0, pv::BASIS_Z), ha.at - absl::Nanoseconds(1),
        pv::ERROR_CODE_SLOT_BUSY);
  }
  now = std::max(ha.at, hb.at);
  bad("a", gen([](GenerateArgs& x) { x.batch = 2; }), now, pv::ERROR_CODE_SLOT_BUSY);  // live qubit
  bad("a", testing::Free(3), now, pv::ERROR_CODE_EMPTY_SLOT);
  bad("a", testing::Measure(2, 3, pv::BASIS_X), now, pv::ERROR_CODE_EMPTY_SLOT);
  bad("a", testing::Gate(pv::GATE_KIND_X, 3), now, pv::ERROR_CODE_EMPTY_SLOT);
  bad("a", testing::Gate(pv::GATE_KIND_CNOT, 0, 3), now, pv::ERROR_CODE_EMPTY_SLOT);
  bad("a", testing::BellMeasure(3, 0, 3), now, pv::ERROR_CODE_EMPTY_SLOT);
  bad("a", testing::BellMeasure(4, 0, 0), now, pv::ERROR_CODE_MALFORMED);
  bad("a", testing::Gate(pv::GATE_KIND_CNOT, 0), now, pv::ERROR_CODE_MALFORMED);
  bad("a", testing::Gate(pv::GATE_KIND_UNSPECIFIED, 0), now, pv::ERROR_CODE_MALFORMED);
  bad("a", testing::Gate(pv::GATE_KIND_RX, 0, std::nullopt, std::nan("")), now,
      pv::ERROR_CODE_MALFORMED);
  bad("a", testing::Measure(5, 0, pv::BASIS_UNSPECIFIED), now, pv::ERROR_CODE_MALFORMED);
  bad("a", testing::Measure(6, 9, pv::BASIS_Z), now, pv::ERROR_CODE_BAD_SLOT);

  good("a", testing::Gate(pv::GATE_KIND_H, 0), now);
  good("a", testing::Measure(7, 0, pv::BASIS_X, /*keep=*/true), now);
  good("b", testing::Measure(8, 0, pv::BASIS_Z), now);
  // b skips to batch 3; a's batch 2 is then behind the peer.
  g.batch = 3;
  g.slot = 1;
  good("b", testing::Generate(g), now);
  bad("a", gen([](GenerateArgs& x) { x.batch = 2; }), now, pv::ERROR_CODE_BAD_BATCH);
  good("a", testing::Generate(g), now);
  now = now + absl::Seconds(1);
  good("a", testing::Measure(9, 1, pv::BASIS_Y), now);
  good("b", testing::Measure(10, 1, pv::BASIS_Y), now);
  good("a", testing::Measure(11, 0, pv::BASIS_X), now);

  EXPECT_EQ(dirty.errors(), expected.size());
  EXPECT_EQ(clean.errors(), 0u);
  auto without_errors = [](const RecordingOutput& o) {
    std::vector<std::string> out;
    for (const Delivery& d : o.deliveries) {
      if (d.message.has_error()) continue;
      out.push_back(absl::StrCat(d.node, "@", d.at.nanos(), ":", d.message.ShortDebugString()));
    }
    for (const rv::TraceRecord& r : o.records)
      if (!r.has_drop()) out.push_back(r.ShortDebugString());
    return out;
  };
  EXPECT_EQ(without_errors(clean_out), without_errors(dirty_out));
  EXPECT_EQ(dirty_out.Records(rv::TraceRecord::kDrop).size(), expected.size());
  EXPECT_EQ(clean_out.To("a", pv::WorldToNode::kMeasureResult).size(), 3u);
}

// PHYS-B3: a waiting batch is superseded when the peer sends a higher one;
// its owner gets BAD_BATCH naming it and its slot is free again.
TEST_F(WorldTest, SupersededBatchIsReportedAndReleased) {
  Init(WernerLink(1.0));
  GenerateArgs g;
  Send("a", testing::Generate(g), Time::Zero());
  g.batch = 2;
  Send("b", testing::Generate(g), Time::Zero());
  const auto errors = out_.To("a", pv::WorldToNode::kError);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message.error().code(), pv::ERROR_CODE_BAD_BATCH);
  EXPECT_EQ(errors[0].message.error().batch(), 1u);
  EXPECT_EQ(errors[0].message.error().link(), "ab");
  Send("a", testing::Generate(g), Time::Zero());
  EXPECT_EQ(LastHerald("a").message.herald().outcome(), pv::OUTCOME_SUCCESS);
  EXPECT_EQ(LastHerald("a").message.herald().batch(), 2u);
  EXPECT_EQ(world_->errors(), 1u);
}

// PHYS-M4, PHYS-M7: results arrive at the request's time; a gate has no
// reply; a Bell-state measurement frees both slots.
TEST_F(WorldTest, LocalOperationsReplyAtNow) {
  Init(WernerLink(1.0, 1.0), /*three=*/true);
  const Time t = Time::FromNanos(500);
  GenerateArgs g;
  Send("a", testing::Generate(g), t);
  Send("b", testing::Generate(g), t);
  g.link = "bc";
  g.slot = 1;
  Send("b", testing::Generate(g), t);
  g.slot = 0;
  Send("c", testing::Generate(g), t);
  const Time later = t + absl::Milliseconds(1);
  const size_t mark = out_.deliveries.size();
  Send("b", testing::Gate(pv::GATE_KIND_X, 1), later);
  EXPECT_EQ(out_.deliveries.size(), mark);
  Send("b", testing::BellMeasure(42, 0, 1), later);
  auto r = out_.To("b", pv::WorldToNode::kBellMeasureResult);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at, later);
  EXPECT_EQ(r[0].message.bell_measure_result().request_id(), 42u);
  EXPECT_EQ(r[0].message.bell_measure_result().time_ns(), static_cast<uint64_t>(later.nanos()));
  Send("b", testing::Free(0), later);
  Send("b", testing::Free(1), later);
  EXPECT_EQ(Errors("b", mark),
            (std::vector<pv::ErrorCode>{pv::ERROR_CODE_EMPTY_SLOT, pv::ERROR_CODE_EMPTY_SLOT}));
  Send("a", testing::Measure(43, 0, pv::BASIS_Z), later);
  auto m = out_.To("a", pv::WorldToNode::kMeasureResult);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].at, later);
  EXPECT_EQ(m[0].message.measure_result().request_id(), 43u);
}

// Swapping through the World (REFERENCE.md swap rule, PHYS-M7): the end
// nodes' Z results disagree exactly when the x bit of
// bell(ab) xor bell(bc) xor bsm is set; X results when the z bit is set.
TEST_F(WorldTest, EntanglementSwapFollowsTheHeraldsAndTheBsmOutcome) {
  Init(WernerLink(0.5, 1.0), /*three=*/true);
  Time now = Time::Zero();
  int checked[2] = {0, 0};
  for (uint64_t batch = 1; batch <= 200; ++batch) {
    GenerateArgs g;
    g.batch = batch;
    Send("a", testing::Generate(g), now);
    Send("b", testing::Generate(g), now);
    g.link = "bc";
    g.slot = 1;
    Send("b", testing::Generate(g), now);
    g.slot = 0;
    Send("c", testing::Generate(g), now);
    const auto ab = out_.To("a", pv::WorldToNode::kHerald).back();
    const auto bc = out_.To("c", pv::WorldToNode::kHerald).back();
    now = std::max(Time::FromNanos(static_cast<int64_t>(ab.message.herald().time_ns())),
                   Time::FromNanos(static_cast<int64_t>(bc.message.herald().time_ns())));
    Send("b", testing::BellMeasure(batch, 0, 1), now);
    const int m = out_.To("b", pv::WorldToNode::kBellMeasureResult)
                      .back()
                      .message.bell_measure_result()
                      .bell_state() -
                  1;
    const int index =
        (ab.message.herald().bell_state() - 1) ^ (bc.message.herald().bell_state() - 1) ^ m;
    const bool z_basis = batch % 2 == 0;
    const pv::Basis basis = z_basis ? pv::BASIS_Z : pv::BASIS_X;
    Send("a", testing::Measure(batch, 0, basis), now);
    Send("c", testing::Measure(batch, 0, basis), now);
    const uint32_t ra =
        out_.To("a", pv::WorldToNode::kMeasureResult).back().message.measure_result().result();
    const uint32_t rc =
        out_.To("c", pv::WorldToNode::kMeasureResult).back().message.measure_result().result();
    const bool expect_differ = z_basis ? (index & 1) : (index & 2);
    EXPECT_EQ(ra != rc, expect_differ) << "batch " << batch << " index " << index;
    ++checked[z_basis];
  }
  EXPECT_EQ(world_->errors(), 0u);
  EXPECT_EQ(checked[0] + checked[1], 200);
}

// PHYS-S3: Bye discards the node's qubits; its partner keeps its own.
TEST_F(WorldTest, ByeFreesTheNodesQubits) {
  Init(WernerLink(1.0));
  GenerateArgs g;
  Send("a", testing::Generate(g), Time::Zero());
  Send("b", testing::Generate(g), Time::Zero());
  const Time t = Time::FromNanos(1'000'000);
  Send("a", testing::Bye(), t);
  Send("a", testing::Hello("a"), t);
  const size_t mark = out_.deliveries.size();
  Send("a", testing::Measure(1, 0, pv::BASIS_Z), t);
  Send("b", testing::Measure(2, 0, pv::BASIS_Z), t);
  EXPECT_EQ(Errors("a", mark), std::vector<pv::ErrorCode>{pv::ERROR_CODE_EMPTY_SLOT});
  EXPECT_EQ(out_.To("b", pv::WorldToNode::kMeasureResult, mark).size(), 1u);
}

}  // namespace
}  // namespace qnet::world
