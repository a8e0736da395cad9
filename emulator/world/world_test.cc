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

// PHYS-M9: Init puts |0> in an empty slot without a reply; gates and Measure
// then act on it: Z reads 0, X after H reads 0, Z after X reads 1, and after
// RY(theta) Z reads 1 with probability sin^2(theta/2). Init on a live qubit,
// a reserved slot or a slot beyond memories is refused (PHYS-E4, PHYS-E6).
TEST_F(WorldTest, InitGivesZeroAndGatesThenMeasureFollowBorn) {
  Init(WernerLink(1e-9));
  Time now = Time::FromNanos(1000);
  const size_t mark = out_.deliveries.size();
  Send("a", testing::Init(0), now);
  EXPECT_EQ(out_.deliveries.size(), mark);  // no reply
  Send("a", testing::Init(0), now);
  Send("a", testing::Init(4), now);
  GenerateArgs g;
  g.slot = 1;
  Send("a", testing::Generate(g), now);  // slot 1 reserved, waiting for b
  Send("a", testing::Init(1), now);
  EXPECT_EQ(Errors("a", mark),
            (std::vector<pv::ErrorCode>{pv::ERROR_CODE_SLOT_BUSY, pv::ERROR_CODE_BAD_SLOT,
                                        pv::ERROR_CODE_SLOT_BUSY}));
  EXPECT_EQ(out_.To("a", pv::WorldToNode::kError, mark)[1].message.error().slot(), 4u);
  Send("a", testing::Free(0), now);

  constexpr int kTrials = 4000;
  constexpr double kTheta = 1.0;
  int ones[4] = {0, 0, 0, 0};  // Z, H then X, X then Z, RY then Z
  uint64_t id = 0;
  for (int i = 0; i < kTrials; ++i) {
    now = now + absl::Microseconds(1);
    for (int kind = 0; kind < 4; ++kind) {
      Send("b", testing::Init(2), now);
      pv::Basis basis = pv::BASIS_Z;
      if (kind == 1) {
        Send("b", testing::Gate(pv::GATE_KIND_H, 2), now);
        basis = pv::BASIS_X;
      } else if (kind == 2) {
        Send("b", testing::Gate(pv::GATE_KIND_X, 2), now);
      } else if (kind == 3) {
        Send("b", testing::Gate(pv::GATE_KIND_RY, 2, std::nullopt, kTheta), now);
      }
      Send("b", testing::Measure(++id, 2, basis), now);
      ASSERT_EQ(out_.deliveries.back().node, "b");
      ones[kind] += out_.deliveries.back().message.measure_result().result();
    }
  }
  EXPECT_EQ(ones[0], 0);
  EXPECT_EQ(ones[1], 0);
  EXPECT_EQ(ones[2], kTrials);
  const double p = std::pow(std::sin(kTheta / 2), 2);
  const double sigma = std::sqrt(p * (1 - p) / kTrials);
  EXPECT_NEAR(static_cast<double>(ones[3]) / kTrials, p, 4 * sigma);
  EXPECT_EQ(out_.To("b", pv::WorldToNode::kError).size(), 0u);
  EXPECT_EQ(out_.To("b", pv::WorldToNode::kMeasureResult).size(), 4u * kTrials);
  EXPECT_EQ(world_->errors(), 3u);
}

// Runs one batch on `link` between `x` (side a, slot sx) and `y` (side b,
// slot sy) at `now`; returns side a's herald.
Delivery RunBatch(World& world, RecordingOutput& out, const std::string& link, const std::string& x,
                  uint32_t sx, const std::string& y, uint32_t sy, uint64_t batch, Time now) {
  GenerateArgs g;
  g.link = link;
  g.batch = batch;
  g.slot = sx;
  world.Handle(x, testing::Generate(g), now);
  g.slot = sy;
  world.Handle(y, testing::Generate(g), now);
  return out.To(x, pv::WorldToNode::kHerald).back();
}

Time TimeOf(uint64_t ns) { return Time::FromNanos(static_cast<int64_t>(ns)); }

// PHYS-T4, PHYS-T3: after a swap of two Werner pairs, a Probe of the end
// pair with the tracked Bell state (bell(ab) xor bell(bc) xor outcome)
// records true_fidelity = (1 + 3 w1 w2)/4 exactly, with both partners named,
// and no message reaches any node. With depolarising memories (T) the same
// probe a time later records (1 + 3 w1 w2 l)/4, l = exp(-(total storage)/T).
TEST_F(WorldTest, ProbeOfASwappedWernerPairRecordsTheProductFidelity) {
  constexpr double kF1 = 0.9, kF2 = 0.8, kT = 0.01;
  const double w1 = (4 * kF1 - 1) / 3, w2 = (4 * kF2 - 1) / 3;
  for (double depolar_s : {kInfiniteSeconds, kT}) {
    Topology topology = testing::TwoNodes(WernerLink(0.3, kF1), 4, /*three=*/true);
    topology.links[1].fidelity = kF2;
    topology.hardware[0].depolar_s = depolar_s;
    RecordingOutput out;
    World world(topology, Rng(7), &out);
    for (const char* n : {"a", "b", "c"}) world.Handle(n, testing::Hello(n), Time::Zero());
    const absl::Duration cycle = AttemptCycle(topology.links[0]);
    Time now = Time::Zero();
    for (uint64_t round = 1; round <= 50; ++round) {
      const Delivery ab = RunBatch(world, out, "ab", "a", 0, "b", 0, round, now);
      const Delivery bc = RunBatch(world, out, "bc", "b", 1, "c", 0, round, now);
      ASSERT_EQ(ab.message.herald().outcome(), pv::OUTCOME_SUCCESS);
      ASSERT_EQ(bc.message.herald().outcome(), pv::OUTCOME_SUCCESS);
      const Time t_ab = TimeOf(ab.message.herald().time_ns()) - cycle;  // pair times t_N
      const Time t_bc = TimeOf(bc.message.herald().time_ns()) - cycle;
      const Time swap =
          std::max(TimeOf(ab.message.herald().time_ns()), TimeOf(bc.message.herald().time_ns()));
      world.Handle("b", testing::BellMeasure(round, 0, 1), swap);
      const int m = out.To("b", pv::WorldToNode::kBellMeasureResult)
                        .back()
                        .message.bell_measure_result()
                        .bell_state() -
                    1;
      const int bell =
          (ab.message.herald().bell_state() - 1) ^ (bc.message.herald().bell_state() - 1) ^ m;
      const Time probe = swap + absl::Milliseconds(2);
      const size_t deliveries = out.deliveries.size();
      const std::string label = absl::StrCat("a/1/", round);
      world.Handle("a", testing::Probe(0, static_cast<pv::BellState>(bell + 1), label), probe);
      EXPECT_EQ(out.deliveries.size(), deliveries);  // PHYS-T3: never answered
      const rv::TraceRecord r = out.Records(rv::TraceRecord::kPairTruth).back();
      EXPECT_EQ(r.time_ns(), static_cast<uint64_t>(probe.nanos()));
      EXPECT_EQ(r.node(), "qworld");
      const rv::PairTruth& t = r.pair_truth();
      EXPECT_EQ(t.label(), label);
      EXPECT_EQ(t.node(), "a");
      EXPECT_EQ(t.slot(), 0u);
      EXPECT_EQ(t.partner_node(), "c");
      EXPECT_EQ(t.partner_slot(), 0u);
      EXPECT_EQ(t.bell_state(), bell + 1);
      double w = w1 * w2;
      if (!std::isinf(depolar_s)) {
        const double stored =
            absl::ToDoubleSeconds((probe - t_ab) + (swap - t_ab) + (swap - t_bc) + (probe - t_bc));
        w *= std::exp(-stored / depolar_s);
      }
      EXPECT_NEAR(t.true_fidelity(), (1 + 3 * w) / 4, 1e-9) << "round " << round;
      // A probe naming another Bell state sees the rest: (1 - w)/4.
      world.Handle("c", testing::Probe(0, static_cast<pv::BellState>((bell ^ 1) + 1), "x"), probe);
      EXPECT_NEAR(out.Records(rv::TraceRecord::kPairTruth).back().pair_truth().true_fidelity(),
                  (1 - w) / 4, 1e-9);
      world.Handle("a", testing::Free(0), probe);
      world.Handle("c", testing::Free(0), probe);
      now = probe;
    }
    EXPECT_EQ(world.errors(), 0u);
  }
}

// PHYS-T4: a Probe that cannot be answered with a pair's fidelity (slot beyond
// memories, empty slot, a lone qubit, a slot in an unheralded batch, no Bell
// state) is still recorded, with true_fidelity -1 and a detail, and never
// answered.
TEST_F(WorldTest, ProbeWithoutAPairRecordsMinusOneAndIsNeverAnswered) {
  Init(WernerLink(1e-9, 1.0));
  const Time now = Time::FromNanos(5000);
  Send("a", testing::Init(1), now);
  GenerateArgs g;
  g.slot = 2;
  Send("a", testing::Generate(g), now);
  Send("b", testing::Generate(g), now);  // p ~ 0: the batch runs for ages
  const size_t mark = out_.deliveries.size();
  Send("a", testing::Probe(9, pv::BELL_STATE_PHI_PLUS, "bad-slot"), now);
  Send("a", testing::Probe(0, pv::BELL_STATE_PHI_PLUS, "empty"), now);
  Send("a", testing::Probe(1, pv::BELL_STATE_PHI_PLUS, "lone"), now);
  Send("a", testing::Probe(2, pv::BELL_STATE_PHI_PLUS, "reserved"), now);
  Send("b", testing::Init(0), now);
  Send("b", testing::Init(1), now);
  Send("b", testing::Gate(pv::GATE_KIND_CNOT, 0, 1), now);
  Send("b", testing::Probe(0, pv::BELL_STATE_UNSPECIFIED, "no-bell"), now);
  EXPECT_EQ(out_.deliveries.size(), mark);
  const auto records = out_.Records(rv::TraceRecord::kPairTruth);
  ASSERT_EQ(records.size(), 5u);
  const char* labels[] = {"bad-slot", "empty", "lone", "reserved", "no-bell"};
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].pair_truth().label(), labels[i]);
    EXPECT_EQ(records[i].pair_truth().true_fidelity(), -1) << labels[i];
    EXPECT_FALSE(records[i].pair_truth().detail().empty()) << labels[i];
  }
  EXPECT_EQ(records[4].pair_truth().partner_node(), "b");
  EXPECT_EQ(records[4].pair_truth().partner_slot(), 1u);
  EXPECT_EQ(world_->errors(), 0u);
}

// PHYS-L1, PHYS-L2: after SetLinkDown no batch of that link succeeds: a
// batch with a deadline ends DEADLINE with every allowed attempt made, at
// S + allowed x cycle; one without a deadline never heralds. The other link's
// heralds are exactly those of a world without the cut (section 9).
TEST_F(WorldTest, CutLinkNeverSucceedsAndLeavesOtherLinksAlone) {
  const LinkSpec link = WernerLink(0.5, 0.9);
  const Topology topology = testing::TwoNodes(link, 4, /*three=*/true);
  RecordingOutput cut_out, whole_out;
  World cut(topology, Rng(3), &cut_out), whole(topology, Rng(3), &whole_out);
  for (World* w : {&cut, &whole})
    for (const char* n : {"a", "b", "c"}) w->Handle(n, testing::Hello(n), Time::Zero());
  const Time down = Time::FromNanos(1'000'000);
  EXPECT_TRUE(cut.SetLinkDown("ab", down).ok());
  EXPECT_EQ(cut.SetLinkDown("zz", down).code(), absl::StatusCode::kNotFound);
  const absl::Duration cycle = AttemptCycle(link);
  Time now = Time::Zero();
  int before = 0, after = 0;
  for (uint64_t batch = 1; batch <= 400; ++batch) {
    GenerateArgs g;
    g.batch = batch;
    g.deadline_ns = static_cast<uint64_t>((now + cycle * 20).nanos());
    for (World* w : {&cut, &whole}) {
      w->Handle("a", testing::Generate(g), now);
      w->Handle("b", testing::Generate(g), now);
    }
    const pv::Herald h = cut_out.To("a", pv::WorldToNode::kHerald).back().message.herald();
    ASSERT_EQ(h.batch(), batch);
    const Time end = TimeOf(h.time_ns());
    if (h.outcome() == pv::OUTCOME_SUCCESS) {
      EXPECT_LT(end - cycle, down);  // t_N before the cut
      ++before;
    } else {
      EXPECT_EQ(h.outcome(), pv::OUTCOME_DEADLINE);
      EXPECT_EQ(h.attempts(), 20u);
      EXPECT_EQ(end, now + cycle * 20);
      if (now >= down) ++after;
    }
    for (auto [w, o] : {std::pair{&cut, &cut_out}, std::pair{&whole, &whole_out}}) {
      const pv::Herald mine = o->To("a", pv::WorldToNode::kHerald).back().message.herald();
      if (!mine.has_slot()) continue;
      const Time at = TimeOf(mine.time_ns());
      w->Handle("a", testing::Free(0), at);
      w->Handle("b", testing::Free(0), at);
    }
    // Link bc runs in both worlds with the same requests.
    g.link = "bc";
    g.deadline_ns = 0;
    for (World* w : {&cut, &whole}) {
      g.slot = 1;
      w->Handle("b", testing::Generate(g), now);
      g.slot = 0;
      w->Handle("c", testing::Generate(g), now);
      w->Handle("c", testing::Free(0), now + absl::Seconds(1));
      w->Handle("b", testing::Free(1), now + absl::Seconds(1));
    }
    now = std::max(end, now + absl::Seconds(1));
  }
  EXPECT_GT(before, 0);
  EXPECT_GT(after, 300);
  auto bc_heralds = [](const RecordingOutput& o) {
    std::vector<std::string> out;
    for (const Delivery& d : o.To("c", pv::WorldToNode::kHerald))
      out.push_back(d.message.ShortDebugString());
    return out;
  };
  EXPECT_EQ(bc_heralds(cut_out), bc_heralds(whole_out));
  EXPECT_EQ(bc_heralds(cut_out).size(), 400u);
  // Without a deadline a batch on the cut link never heralds (PHYS-B13).
  const size_t heralds = cut_out.To("a", pv::WorldToNode::kHerald).size();
  GenerateArgs g;
  g.batch = 401;
  cut.Handle("a", testing::Generate(g), now);
  cut.Handle("b", testing::Generate(g), now);
  EXPECT_EQ(cut_out.To("a", pv::WorldToNode::kHerald).size(), heralds);
  EXPECT_EQ(cut.errors(), 0u);
  EXPECT_EQ(whole.errors(), 0u);
}

// PHYS-L3: the topology's <event cut-link> and <event fail-node> take effect
// at their time without any call: a fail-node event cuts every link of the
// node; with p = 1 every batch before the event succeeds and none after.
TEST_F(WorldTest, TopologyEventsCutLinksAtTheirTime) {
  for (EventKind kind : {EventKind::kCutLink, EventKind::kFailNode}) {
    Topology topology = testing::TwoNodes(WernerLink(1.0, 0.9), 4, /*three=*/true);
    topology.events.push_back(EventSpec{0.01, kind, kind == EventKind::kCutLink ? "bc" : "c", 0});
    RecordingOutput out;
    World world(topology, Rng(5), &out);
    for (const char* n : {"a", "b", "c"}) world.Handle(n, testing::Hello(n), Time::Zero());
    const absl::Duration cycle = AttemptCycle(topology.links[0]);
    for (uint64_t batch = 1; batch <= 200; ++batch) {
      const Time now = Time::Zero() + absl::Microseconds(100) * static_cast<int64_t>(batch);
      GenerateArgs g;
      g.batch = batch;
      g.deadline_ns = static_cast<uint64_t>((now + cycle * 3).nanos());
      const Delivery ab = RunBatch(world, out, "ab", "a", 0, "b", 0, batch, now);
      g.link = "bc";
      const Delivery bc = [&] {
        g.slot = 1;
        world.Handle("b", testing::Generate(g), now);
        g.slot = 0;
        world.Handle("c", testing::Generate(g), now);
        return out.To("b", pv::WorldToNode::kHerald).back();
      }();
      EXPECT_EQ(ab.message.herald().outcome(), pv::OUTCOME_SUCCESS);
      const bool cut = now >= Time::FromNanos(10'000'000);
      EXPECT_EQ(bc.message.herald().outcome(), cut ? pv::OUTCOME_DEADLINE : pv::OUTCOME_SUCCESS)
          << "batch " << batch;
      const Time later = now + absl::Microseconds(50);
      world.Handle("a", testing::Free(0), later);
      world.Handle("b", testing::Free(0), later);
      if (!cut) {
        world.Handle("b", testing::Free(1), later);
        world.Handle("c", testing::Free(0), later);
      }
    }
    EXPECT_EQ(world.errors(), 0u);
  }
}

}  // namespace
}  // namespace qnet::world
