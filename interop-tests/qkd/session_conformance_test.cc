// Conformance of qnet-qkd's classical protocol (specs/qkd.md sections 1-8,
// qkd.proto): the program under test runs one end of a session through the
// fake node, the reference peer the other. A good peer must give identical
// keys (the key file equals the peer's key stream byte for byte); each bug
// switch of the peer must make the program abort with the reason the spec
// names, hand out no key, and say so in its result.
#include <cmath>
#include <ostream>
#include <string>

#include "apps/qkd/postproc/bits.h"
#include "gtest/gtest.h"
#include "interop-tests/qkd/qkd_iut.h"

namespace qnet::interop::qkd {
namespace {

// 200000 pairs with unbiased bases give about 50000 Z-sifted bits: two blocks
// of 20000 (DefaultParams).
constexpr uint64_t kGoodPairs = 200000;
// 30000 pairs: about 7500 Z-sifted bits, one block of 4000 for the abort tests.
constexpr uint64_t kShortPairs = 30000;

v1::SessionParams ShortParams() {
  v1::SessionParams p = DefaultParams();
  p.set_block_bits(4000);
  return p;
}

// Blocks of 60000 Z-sifted bits with Z at 0.8: each block leaves key after
// the pad refills (smaller blocks can give all their key to the pads).
v1::SessionParams LargeBlocks() {
  v1::SessionParams p = DefaultParams();
  p.set_block_bits(60000);
  p.set_z_probability(0.8);
  return p;
}

IutOptions ProgramAs(int end, std::vector<ScriptedPair> pairs, v1::SessionParams params,
                     Bug bug = Bug::kNone, uint64_t bug_seq = 3) {
  IutOptions o;
  o.program[0] = end == 0;
  o.program[1] = end == 1;
  o.pairs = std::move(pairs);
  o.params = params;
  o.peer.bug = bug;
  o.peer.bug_seq = bug_seq;
  o.peer.seed = 5;
  return o;
}

#define START_RUN(run)                                     \
  do {                                                     \
    const std::string why = (run).Start();                 \
    ASSERT_EQ(why, "") << (run).Describe();                \
    ASSERT_TRUE((run).RunToResults()) << (run).Describe(); \
  } while (0)

std::string LastRequests(IutRun& run, int end) {
  std::string out;
  const auto& r = run.net().requests(end);
  for (size_t i = r.size() > 5 ? r.size() - 5 : 0; i < r.size(); ++i) {
    out += std::to_string(r[i].body_case()) + " ";
  }
  return out + "(" + std::to_string(r.size()) + " requests; 6 Close, 7 Send)";
}

// The program's verdict on an aborted session: aborted with `reason` in its
// reason, no key (the key file absent or empty), ok false.
void ExpectAborted(IutRun& run, int end, const std::string& reason) {
  const auto r = run.Result(end);
  EXPECT_EQ(r.count("aborted") ? r.at("aborted") : "", "true") << run.Describe();
  EXPECT_EQ(r.count("ok") ? r.at("ok") : "", "false");
  const std::string why = r.count("abort_reason") ? r.at("abort_reason") : "";
  EXPECT_NE(why.find(reason), std::string::npos) << "abort_reason: " << why;
  EXPECT_EQ(run.Key(end), "") << "a key after an abort";
  // QKD-R5: the key file is written also when empty; an aborted session exits 3.
  EXPECT_TRUE(ReadFile(run.KeyPath(end)).has_value()) << "no key file";
  EXPECT_EQ(run.process(end)->Wait(Ms(5000)), 3) << run.Log(end);
  EXPECT_EQ(JsonNumber(r, "stored_key_bits"), 0);
  // The program closed the connection (or the peer did after its Abort)
  // itself, not by exiting (QKD-S8).
  EXPECT_TRUE(run.net().closed());
  EXPECT_FALSE(run.net().app_left(end))
      << "the program exited without closing its connection (QKD-S8); its last requests: "
      << LastRequests(run, end);
}

// ---- good sessions: both roles (QKD-K1, QKD-W2, QKD-U10) ----

TEST(QkdSession, QKD_K1_ProgramAsAliceAndReferenceBobHoldTheSameKey) {
  IutRun run(ProgramAs(0, MakePairs(kGoodPairs, 0.5, 0.02, 0.02, 21), DefaultParams()));
  START_RUN(run);
  const auto r = run.Result(0);
  ASSERT_EQ(r.at("aborted"), "false") << run.Describe();
  EXPECT_EQ(r.at("ok"), "true");
  ASSERT_TRUE(run.peer()->result().violations.empty()) << run.Describe();
  EXPECT_FALSE(run.peer()->result().aborted) << run.Describe();
  // Two blocks at both ends; the key file is the reference peer's stream.
  EXPECT_EQ(JsonNumber(r, "blocks"), 2);
  EXPECT_EQ(run.peer()->result().blocks, 2u);
  ASSERT_GT(run.peer()->key_stream_bits(), 0u);
  EXPECT_EQ(run.Key(0), run.peer()->KeyStreamBytes());
  EXPECT_EQ(JsonNumber(r, "stored_key_bits"), static_cast<double>(run.peer()->key_stream_bits()));
  // QBER: 2 % on 2 x 2000 sampled Z bits, sigma = sqrt(0.02 * 0.98 / 4000) = 0.0022; 5 sigma.
  EXPECT_NEAR(JsonNumber(r, "qber_z"), 0.02, 0.011);
  EXPECT_NEAR(JsonNumber(r, "qber_x"), 0.02, 0.006);  // ~ 50000 X bits: sigma 0.0006
  EXPECT_EQ(JsonNumber(r, "sifted_bits"), 40000);
  // QKD-S1: Alice asked for measure pairs, XZ, with the session's bias.
  ASSERT_TRUE(run.net().connect_request().has_value());
  const auto& qos = run.net().connect_request()->qos();
  EXPECT_EQ(qos.type(), app::v1::PAIR_TYPE_MEASURE);
  EXPECT_TRUE(qos.basis() == link::v1::BASIS_CHOICE_XZ ||
              qos.basis() == link::v1::BASIS_CHOICE_UNSPECIFIED);
  EXPECT_EQ(qos.z_probability(), 0.5);
  EXPECT_EQ(run.net().connect_request()->remote_port(), kPortB);
  // QKD-S12: Sift ranges of consecutive ids from 1, at most 16384 each, up to
  // `pairs` exactly. QKD-E1/E3: each Estimate samples exactly
  // round(0.1 x 20000) = 2000 positions and carries the X bits it announces.
  uint64_t next = 1;
  int estimates = 0;
  for (const v1::QkdMessage& m : run.peer()->received()) {
    if (m.has_sift()) {
      EXPECT_EQ(m.sift().first_pair_id(), next);
      EXPECT_GE(m.sift().count(), 1u);
      EXPECT_LE(m.sift().count(), 16384u);
      next = m.sift().first_pair_id() + m.sift().count();
    }
    if (m.has_estimate()) {
      ++estimates;
      EXPECT_EQ(m.estimate().block(), static_cast<uint64_t>(estimates));  // QKD-S20
      qnet::qkd::BitVector mask;
      ASSERT_TRUE(qnet::qkd::BitVector::FromBytes(m.estimate().sample(), 20000, &mask));
      EXPECT_EQ(mask.Count(), 2000u);
      EXPECT_GE(m.estimate().x_bits().size(), (m.estimate().x_count() + 7) / 8);
    }
  }
  EXPECT_EQ(next, kGoodPairs + 1);
  EXPECT_EQ(estimates, 2);
  // QKD-S25: every Amplify's length was the one the reference Bob computed.
  EXPECT_EQ(run.peer()->result().secure_length_mismatches, 0u);
  EXPECT_EQ(run.Stop(0), 0) << run.Log(0);
}

TEST(QkdSession, QKD_K1_ProgramAsBobAndReferenceAliceHoldTheSameKey) {
  // A biased basis choice (QKD-S1, TRN-M2a): Z with 0.7 at each end gives
  // 0.49 x 200000 = 98000 +- 224 Z-sifted bits (4 blocks of 20000) and 9 % of
  // the pairs as X test bits.
  v1::SessionParams p = DefaultParams();
  p.set_z_probability(0.7);
  IutRun run(ProgramAs(1, MakePairs(kGoodPairs, 0.7, 0.01, 0.01, 22), p));
  START_RUN(run);
  const auto r = run.Result(1);
  ASSERT_EQ(r.at("aborted"), "false") << run.Describe();
  EXPECT_EQ(r.at("ok"), "true");
  ASSERT_TRUE(run.peer()->result().violations.empty()) << run.Describe();
  EXPECT_EQ(run.peer()->result().blocks, 4u);
  EXPECT_EQ(JsonNumber(r, "blocks"), 4);
  ASSERT_GT(run.peer()->key_stream_bits(), 0u);
  EXPECT_EQ(run.Key(1), run.peer()->KeyStreamBytes());
  EXPECT_EQ(run.Stop(1), 0) << run.Log(1);
}

// ---- sifting with expired pairs (QKD-S10, S11, S13, S14) ----

class QkdExpiry : public ::testing::TestWithParam<int> {};

TEST_P(QkdExpiry, QKD_S13_ExpiredPairsLeaveTheKeysEqual) {
  // 5 % of the ids are held at one end only (Pair then PairExpired there).
  const int end = GetParam();
  // 300000 pairs, Z with 0.8 (LargeBlocks): 3 blocks of 60000.
  const auto pairs = MakePairs(300000, 0.8, 0.02, 0.02, 33, 0.05);
  uint64_t both_held = 0;
  for (const ScriptedPair& p : pairs) both_held += p.held[0] && p.held[1];
  IutRun run(ProgramAs(end, pairs, LargeBlocks()));
  START_RUN(run);
  const auto r = run.Result(end);
  ASSERT_EQ(r.at("aborted"), "false") << run.Describe();
  EXPECT_EQ(r.at("ok"), "true");
  ASSERT_TRUE(run.peer()->result().violations.empty()) << run.Describe();
  // QKD-R1 `pairs`: ids both ends held in sifted ranges, exactly.
  EXPECT_EQ(JsonNumber(r, "pairs"), static_cast<double>(both_held));
  EXPECT_EQ(JsonNumber(r, "blocks"), static_cast<double>(run.peer()->result().blocks));
  ASSERT_GT(run.peer()->key_stream_bits(), 0u);
  EXPECT_EQ(run.Key(end), run.peer()->KeyStreamBytes());
}

INSTANTIATE_TEST_SUITE_P(QkdSession, QkdExpiry, ::testing::Values(0, 1),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == 0 ? "ProgramAsAlice" : "ProgramAsBob");
                         });

// ---- parameter estimation (QKD-E6): above the threshold, no key ----

TEST(QkdSession, QKD_E6_ProgramAsBobAbortsWhenQberZIsAboveTheThreshold) {
  IutRun run(ProgramAs(1, MakePairs(kShortPairs, 0.5, 0.20, 0.02, 23), ShortParams()));
  START_RUN(run);
  ExpectAborted(run, 1, "QBER Z");
  // QBER 20 % on 400 sampled bits: sigma 0.02; the reported value within 5 sigma.
  EXPECT_NEAR(JsonNumber(run.Result(1), "qber_z"), 0.20, 0.10);
  EXPECT_EQ(run.peer()->key_stream_bits(), 0u);
}

TEST(QkdSession, QKD_E6_ProgramAsAliceAbortsWhenQberXIsAboveTheThreshold) {
  IutRun run(ProgramAs(0, MakePairs(kShortPairs, 0.5, 0.02, 0.25, 24), ShortParams()));
  START_RUN(run);
  ExpectAborted(run, 0, "QBER X");
}

// ---- Hello (QKD-S2) ----

TEST(QkdSession, QKD_S2_ProgramAsBobAbortsOnAHelloWithOtherParameters) {
  IutRun run(ProgramAs(1, MakePairs(kShortPairs, 0.5, 0.02, 0.02, 25), ShortParams(),
                       Bug::kHelloParamsDiffer));
  START_RUN(run);
  ExpectAborted(run, 1, "block_bits");
  // Bob tells Alice why (QKD-S8: an Abort with the reason).
  EXPECT_TRUE(run.peer()->result().got_abort);
  EXPECT_NE(run.peer()->result().peer_abort_reason.find("block_bits"), std::string::npos);
}

// ---- authentication (QKD-U7, QKD-U8): the frame is refused, the session aborts ----

struct AuthCase {
  const char* name;
  int program_end;
  Bug bug;
  const char* reason;
};

void PrintTo(const AuthCase& c, std::ostream* os) { *os << c.name; }

class QkdAuth : public ::testing::TestWithParam<AuthCase> {};

TEST_P(QkdAuth, RefusedFrameAbortsWithNoKey) {
  const AuthCase& c = GetParam();
  IutRun run(ProgramAs(c.program_end, MakePairs(kShortPairs, 0.5, 0.02, 0.02, 26), ShortParams(),
                       c.bug, 3));
  START_RUN(run);
  ExpectAborted(run, c.program_end, c.reason);
  EXPECT_GE(JsonNumber(run.Result(c.program_end), "bad_frames"), 1);
  EXPECT_EQ(run.peer()->key_stream_bits(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    QkdSession, QkdAuth,
    ::testing::Values(
        AuthCase{"QKD_U7_S6_BadTagToBob", 1, Bug::kBadTag, "authentication failed"},
        AuthCase{"QKD_U7_S6_BadTagToAlice", 0, Bug::kBadTag, "authentication failed"},
        AuthCase{"QKD_U8_ReplayedSeqToBob", 1, Bug::kReplaySeq, "authentication failed"},
        AuthCase{"QKD_U8_ReplayedSeqToAlice", 0, Bug::kReplaySeq, "authentication failed"},
        AuthCase{"QKD_U8_SkippedSeqToBob", 1, Bug::kSkipSeq, "authentication failed"},
        AuthCase{"QKD_U8_WrongVersionToBob", 1, Bug::kWrongVersion, "authentication failed"},
        AuthCase{"QKD_U8_WrongVersionToAlice", 0, Bug::kWrongVersion, "authentication failed"},
        AuthCase{"QKD_S6_NotAnAuthenticatedFrameToBob", 1, Bug::kGarbageFrame, "malformed"},
        AuthCase{"QKD_S6_NotAnAuthenticatedFrameToAlice", 0, Bug::kGarbageFrame, "malformed"},
        AuthCase{"QKD_S9_GarbageMessageToBob", 1, Bug::kGarbageMessage, "protocol error"},
        AuthCase{"QKD_S9_UnknownMessageToBob", 1, Bug::kUnknownOneof, "protocol error"},
        AuthCase{"QKD_S9_UnknownMessageToAlice", 0, Bug::kUnknownOneof, "protocol error"},
        AuthCase{"QKD_S4_S9_WrongDirectionToBob", 1, Bug::kWrongDirection, "protocol error"},
        AuthCase{"QKD_S4_S9_WrongDirectionToAlice", 0, Bug::kWrongDirection, "protocol error"}),
    [](const ::testing::TestParamInfo<AuthCase>& info) { return std::string(info.param.name); });

// ---- Cascade (QKD-S21): parity traffic the Cascade objects refuse ----

TEST(QkdSession, QKD_S21_ProgramAsBobAbortsOnAParityReplyWithTheWrongCount) {
  IutRun run(ProgramAs(1, MakePairs(kShortPairs, 0.5, 0.02, 0.02, 27), ShortParams(),
                       Bug::kWrongParityCount));
  START_RUN(run);
  ExpectAborted(run, 1, "ParityReply");
  EXPECT_TRUE(run.peer()->result().got_abort);
}

TEST(QkdSession, QKD_S21_ProgramAsAliceAbortsOnAParityRequestPastTheKey) {
  IutRun run(ProgramAs(0, MakePairs(kShortPairs, 0.5, 0.02, 0.02, 28), ShortParams(),
                       Bug::kParityOutOfRange));
  START_RUN(run);
  ExpectAborted(run, 0, "ParityRequest");
  EXPECT_TRUE(run.peer()->result().got_abort);
  // Nothing of the key was disclosed for the refused request.
  EXPECT_EQ(run.peer()->key_stream_bits(), 0u);
}

// ---- Abort from the peer (QKD-S8) ----

TEST(QkdSession, QKD_S8_ProgramAsBobTakesThePeersAbortAndSendsNothingBack) {
  IutRun run(
      ProgramAs(1, MakePairs(kShortPairs, 0.5, 0.02, 0.02, 29), ShortParams(), Bug::kAbort, 3));
  START_RUN(run);
  ExpectAborted(run, 1, "peer aborted: scripted abort");
  // The peer's Abort was its frame 3: no Abort came back, no frame was refused.
  EXPECT_EQ(run.peer()->result().abort_replies, 0u) << run.Describe();
  EXPECT_EQ(JsonNumber(run.Result(1), "bad_frames"), 0);
}

TEST(QkdSession, QKD_S8_ProgramAsAliceTakesThePeersAbort) {
  IutRun run(
      ProgramAs(0, MakePairs(kShortPairs, 0.5, 0.02, 0.02, 30), ShortParams(), Bug::kAbort, 4));
  START_RUN(run);
  ExpectAborted(run, 0, "peer aborted: scripted abort");
}

// ---- Verification (QKD-V3, QKD-V4): a block whose hashes differ is dropped ----

TEST(QkdSession, QKD_V4_ProgramAsBobDropsABlockThatFailsVerificationAndGoesOn) {
  // 300000 pairs, Z with 0.8: 192000 Z-sifted bits, 3 blocks of 60000 (each
  // leaves key after the pad refills); block 1's Verify carries a wrong hash.
  IutRun run(ProgramAs(1, MakePairs(300000, 0.8, 0.02, 0.02, 32), LargeBlocks(), Bug::kBadVerify));
  START_RUN(run);
  const auto r = run.Result(1);
  ASSERT_EQ(r.at("aborted"), "false") << run.Describe();
  EXPECT_EQ(r.at("ok"), "true");
  EXPECT_EQ(JsonNumber(r, "blocks_failed_verification"), 1);
  EXPECT_EQ(run.peer()->result().blocks_failed_verification, 1u);
  // Blocks 2 and 3 still give the same key at both ends; block 1 gave none.
  EXPECT_EQ(run.peer()->result().blocks, 2u);
  EXPECT_EQ(JsonNumber(r, "blocks"), 2);
  ASSERT_GT(run.peer()->key_stream_bits(), 0u);
  EXPECT_EQ(run.Key(1), run.peer()->KeyStreamBytes());
}

}  // namespace
}  // namespace qnet::interop::qkd
