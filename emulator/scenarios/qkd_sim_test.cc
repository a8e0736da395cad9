// Whole QKD sessions (apps/qkd QkdSession at both ends, in process) over
// Werner chains in the sim backend: the keys at both ends, the QBERs against
// the analytic end-to-end value, the secure length against its formula, the
// secret fraction against the asymptotic one, and an intercept-resend attacker
// (specs/qkd.md, specs/topology.md RES-34..RES-38, issue 4 done-means).
//
// Analytic reference (REFERENCE.md "QKD"): a Werner link of fidelity F has
// w = (4F - 1) / 3; swapping composes the Pauli errors of the links, so the
// end-to-end pair is Werner with w_e2e = prod w_i and QBER (1 - w_e2e) / 2 in
// Z and in X. An intercept-resend attacker on a link (fraction 1) measures one
// qubit in Z or X at random and re-prepares the eigenstate: the basis it
// picked keeps its correlation (factor w), the other loses it, so that link's
// correlation is w / 2 per basis and the end-to-end QBER (1 - w_e2e / 2) / 2.
// Statistical checks use 4 standard errors of a binomial proportion,
// sqrt(Q (1 - Q) / n) with n the bits the QBER was measured on.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "apps/qkd/postproc/privacy.h"
#include "emulator/scenarios/scenario_runner.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "stack/topology_loader.h"

namespace qnet::scenarios {
namespace {

using ::testing::HasSubstr;

struct QkdGen {
  std::string name = "qkd";
  uint64_t seed = 1;
  double duration_s = 5;
  std::vector<double> link_fidelity = {0.97};  // one Werner link per entry
  double p_success = 0.2;
  double attempt_us = 10;
  std::string eavesdropper_link;  // "" none; else "l<i>" gets intercept-resend
  uint32_t pairs = 20000;
  std::string params = R"(block-bits="4000")";  // the <app>'s session parameters
};

std::string Xml(const QkdGen& g) {
  const int n = static_cast<int>(g.link_fidelity.size());
  std::string xml = absl::StrFormat(
      "<network name=\"%s\" seed=\"%d\" duration-s=\"%g\">\n"
      "  <hardware name=\"hw\" memories=\"8\"/>\n",
      g.name, g.seed, g.duration_s);
  for (int i = 0; i <= n; ++i)
    absl::StrAppendFormat(&xml, "  <node name=\"n%d\" hardware=\"hw\"/>\n", i);
  for (int i = 0; i < n; ++i) {
    const std::string link = absl::StrCat("l", i);
    absl::StrAppendFormat(
        &xml,
        "  <link name=\"%s\" a=\"n%d\" b=\"n%d\" length-km=\"0\" scheme=\"werner\" "
        "attempt-us=\"%g\" p-success=\"%.9g\" fidelity=\"%.9g\" classical-delay-us=\"1\"%s/>\n",
        link, i, i + 1, g.attempt_us, g.p_success, g.link_fidelity[i],
        link == g.eavesdropper_link ? " eavesdropper=\"intercept-resend\"" : "");
  }
  absl::StrAppendFormat(&xml,
                        "  <app name=\"key\" kind=\"qkd\" node=\"n0\" peer=\"n%d\" pairs=\"%d\" "
                        "start-s=\"0.2\" %s/>\n</network>\n",
                        n, g.pairs, g.params);
  return xml;
}

double W(double fidelity) { return (4 * fidelity - 1) / 3; }

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One end's result file (QkdSession::ResultJson).
struct EndResult {
  google::protobuf::Struct json;
  double Num(const std::string& key) const {
    auto it = json.fields().find(key);
    return it == json.fields().end() ? -1 : it->second.number_value();
  }
  bool Bool(const std::string& key) const {
    auto it = json.fields().find(key);
    return it != json.fields().end() && it->second.bool_value();
  }
  std::string Text(const std::string& key) const {
    auto it = json.fields().find(key);
    return it == json.fields().end() ? "" : it->second.string_value();
  }
};

struct QkdRun {
  ScenarioRun run;
  results::v1::QkdSummary summary;
  EndResult alice, bob;
  std::string key_a, key_b;
  bool key_files_exist = false;
};

// Runs the topology; nullopt (with a failure recorded) if it does not run.
std::optional<QkdRun> RunQkd(const QkdGen& g) {
  absl::StatusOr<ScenarioRun> run = RunScenario(Xml(g), g.name);
  if (!run.ok()) {
    ADD_FAILURE() << run.status();
    return std::nullopt;
  }
  QkdRun r;
  r.run = *std::move(run);
  if (r.run.summary.qkd_size() != 1) {
    ADD_FAILURE() << "qkd[] has " << r.run.summary.qkd_size() << " entries";
    return std::nullopt;
  }
  r.summary = r.run.summary.qkd(0);
  for (auto [file, end] : {std::pair{"key.json", &r.alice}, std::pair{"key.b.json", &r.bob}}) {
    const std::string text = ReadBytes(absl::StrCat(r.run.out_dir, "/apps/", file));
    if (!google::protobuf::util::JsonStringToMessage(text, &end->json).ok()) {
      ADD_FAILURE() << file << " is not JSON: " << text;
      return std::nullopt;
    }
  }
  const std::string a = r.run.out_dir + "/qkd/key.a.key", b = r.run.out_dir + "/qkd/key.b.key";
  r.key_files_exist = std::filesystem::exists(a) && std::filesystem::exists(b);
  r.key_a = ReadBytes(a);
  r.key_b = ReadBytes(b);
  std::printf(
      "%s: %g s wall; qkd[]: qber_z %.4f (%g/%g) qber_x %.4f (%g/%g) sifted %u secret %u "
      "stored %u blocks %u f %.3f rate %.1f bit/s aborted %d (%s) keys_match %d; auth consumed %g "
      "refilled %g, sift ranges %g, cascade rounds %g, emulated %g..%g s\n",
      g.name.c_str(), r.run.wall_s, r.summary.qber_z(), r.alice.Num("z_errors"),
      r.alice.Num("z_sampled"), r.summary.qber_x(), r.alice.Num("x_errors"),
      r.alice.Num("x_test_bits"), r.summary.sifted_bits(), r.summary.secret_bits(),
      r.summary.stored_key_bits(), r.summary.blocks(), r.summary.ec_efficiency(),
      r.summary.key_rate_bps(), r.summary.aborted(), r.summary.abort_reason().c_str(),
      r.summary.keys_match(), r.alice.Num("auth_bits_consumed"), r.alice.Num("auth_bits_refilled"),
      r.alice.Num("sift_ranges"), r.alice.Num("cascade_rounds"), r.alice.Num("first_pair_s"),
      r.alice.Num("last_block_s"));
  return r;
}

// |measured - expected| <= 4 standard errors of a proportion over n bits.
void ExpectQberNear(const char* what, double errors, double n, double expected) {
  ASSERT_GT(n, 0) << what;
  const double sigma = std::sqrt(expected * (1 - expected) / n);
  EXPECT_NEAR(errors / n, expected, 4 * sigma) << what << ": " << errors << "/" << n;
}

// A session whose every step succeeded: identical non-empty keys at both
// ends (from the files), the summary agreeing with the files.
void ExpectKeysAgree(const QkdRun& r) {
  EXPECT_FALSE(r.summary.aborted()) << r.summary.abort_reason();
  EXPECT_EQ(r.summary.error(), "");
  EXPECT_TRUE(r.alice.Bool("ok")) << r.alice.Text("error");
  EXPECT_TRUE(r.bob.Bool("ok")) << r.bob.Text("error");
  ASSERT_TRUE(r.key_files_exist);
  EXPECT_FALSE(r.key_a.empty());
  EXPECT_TRUE(r.key_a == r.key_b) << "key files differ: " << r.key_a.size() << " and "
                                  << r.key_b.size() << " bytes";
  EXPECT_TRUE(r.summary.keys_match());  // RES-37
  EXPECT_EQ(r.summary.key_bits(), r.key_a.size() * 8);
  EXPECT_EQ(r.summary.stored_key_bits(), r.key_a.size() * 8);  // the whole stored stream
  EXPECT_EQ(r.alice.Text("key_sha256"), r.bob.Text("key_sha256"));
  EXPECT_EQ(r.alice.Num("blocks_failed_verification"), 0);
  EXPECT_EQ(r.alice.Num("bad_frames"), 0);
  EXPECT_EQ(r.bob.Num("bad_frames"), 0);
}

// One block of 10^4 bits on one link (F = 0.97, w = 0.96, Q = 2 %): the keys
// agree, both QBERs are the analytic one, the secret length is exactly the
// finite-size formula (QKD-L*) of the block's measured inputs, and the secret
// fraction is below the asymptotic one by the gap that formula predicts.
TEST(QkdSimTest, OneLinkOneBlockKeysAgreeAndSecretLengthIsTheFormula) {
  QkdGen g;
  g.name = "qkd_one_block";
  g.pairs = 46000;  // about 11500 Z-sifted bits at z-probability 0.5: one block of 10000
  g.params = R"(block-bits="10000" sample-fraction="0.1")";
  std::optional<QkdRun> r = RunQkd(g);
  ASSERT_TRUE(r);
  ExpectKeysAgree(*r);
  ASSERT_EQ(r->summary.blocks(), 1u);
  EXPECT_EQ(r->summary.sifted_bits(), 10000u);
  const double q = (1 - W(0.97)) / 2;
  ExpectQberNear("Q_Z", r->alice.Num("z_errors"), r->alice.Num("z_sampled"), q);
  ExpectQberNear("Q_X", r->alice.Num("x_errors"), r->alice.Num("x_test_bits"), q);
  EXPECT_EQ(r->alice.Num("z_sampled"), 1000);  // sample-fraction of the block
  EXPECT_EQ(r->alice.Num("corrected_bits"), 9000);

  qkd::SecureLengthInput in;
  in.n = static_cast<uint64_t>(r->alice.Num("corrected_bits"));
  in.k = static_cast<uint64_t>(r->alice.Num("x_test_bits"));
  in.qber_x = r->alice.Num("x_errors") / r->alice.Num("x_test_bits");
  in.leak_ec = static_cast<uint64_t>(r->alice.Num("disclosed_bits"));
  in.leak_verify = 64;
  const qkd::SecureLength length = qkd::ComputeSecureLength(in);
  const uint64_t expected = length.bits;
  EXPECT_GT(expected, 0u);
  EXPECT_EQ(r->summary.secret_bits(), expected);
  EXPECT_EQ(r->bob.Num("secret_bits"), static_cast<double>(expected));
  // The key store gets the secret bits less the pads' refill, in 16-bit units.
  const double refilled = r->alice.Num("auth_bits_refilled");
  EXPECT_EQ(r->summary.stored_key_bits(),
            (static_cast<uint64_t>(expected) - static_cast<uint64_t>(refilled)) / 16 * 16);

  // Secret fraction against the asymptotic 1 - f h(Q_Z) - h(Q_X) (measured f,
  // Q_Z of the corrected bits, Q_X). With one block the finite-size gap is,
  // from the formula (N = 10000 sifted bits, sf = 0.1):
  //   sf (1 - f h(Q_Z) - h(Q_X))           the disclosed sample,
  // + (1 - sf) (h(Q_X + mu) - h(Q_X))      the phase error's statistical bound,
  // + (64 + log2(2 / (eps_sec^2 eps_cor))) / N   verification and epsilons,
  // about 0.07 + 0.24 + 0.017 here (mu = 0.068 over k = 11500 X bits): at this
  // block size the gap is mostly mu; it shrinks as 1/sqrt(k) (privacy tests
  // show 10^6-bit blocks within 10 %).
  const double sf = 0.1, n = r->alice.Num("corrected_bits");
  const double qz = r->alice.Num("bits_flipped") / n, f = r->summary.ec_efficiency();
  const double r_asym = 1 - f * qkd::BinaryEntropy(qz) - qkd::BinaryEntropy(in.qber_x);
  const double gap =
      sf * r_asym +
      (1 - sf) * (qkd::BinaryEntropy(length.phase_error) - qkd::BinaryEntropy(in.qber_x)) +
      (64 + std::log2(2 / (1e-20 * 1e-15))) / 10000;
  const double r_meas = static_cast<double>(r->summary.secret_bits()) / 10000;
  std::printf(
      "secret fraction %.4f, asymptotic %.4f (f %.3f, Q_Z %.4f, Q_X %.4f), expected "
      "gap %.4f (mu %.4f), measured gap %.4f\n",
      r_meas, r_asym, f, qz, in.qber_x, gap, length.mu, r_asym - r_meas);
  EXPECT_NEAR(r_asym - r_meas, gap, 2.0 / 10000);  // flooring and f's rounding only
  RemoveOutput(r->run);
}

// Two links (F = 0.985 each: w_e2e = 0.98^2, Q = 1.98 %), several blocks
// with a biased basis choice: keys agree across blocks; Q_Z and Q_X are
// (1 - w1 w2) / 2, also the error rate Cascade corrected. (The result files
// hold sums over blocks, so the exact secure length is checked on one block,
// above.)
TEST(QkdSimTest, ThreeNodeChainQberIsTheProductOfTheLinksAndKeysAgree) {
  QkdGen g;
  g.name = "qkd_chain3";
  g.link_fidelity = {0.985, 0.985};
  g.duration_s = 8;
  g.pairs = 18000;  // about 8800 Z-sifted bits at z-probability 0.7: two blocks of 4000
  g.params = R"(block-bits="4000" z-probability="0.7" sample-fraction="0.1")";
  std::optional<QkdRun> r = RunQkd(g);
  ASSERT_TRUE(r);
  ExpectKeysAgree(*r);
  const double blocks = r->summary.blocks();
  ASSERT_EQ(blocks, 2);
  EXPECT_EQ(r->summary.sifted_bits(), 8000u);
  const double q = (1 - W(0.985) * W(0.985)) / 2;
  ExpectQberNear("Q_Z", r->alice.Num("z_errors"), r->alice.Num("z_sampled"), q);
  ExpectQberNear("Q_X", r->alice.Num("x_errors"), r->alice.Num("x_test_bits"), q);
  // Errors Cascade corrected: the QBER of the key bits themselves.
  ExpectQberNear("Q_Z of the corrected bits", r->alice.Num("bits_flipped"),
                 r->alice.Num("corrected_bits"), q);

  EXPECT_GT(r->summary.secret_bits(), 0u);
  EXPECT_GT(r->summary.ec_efficiency(), 1.0);  // Cascade discloses more than n h(Q)
  EXPECT_LT(r->summary.ec_efficiency(), 1.5);
  RemoveOutput(r->run);
}

// An intercept-resend attacker on the second of two links (F = 0.99 each):
// Q = (1 - w1 w2 / 2) / 2 = 25.7 % in both bases; the first block's estimate
// aborts the session at both ends, no key is stored, the key files are empty.
TEST(QkdSimTest, InterceptResendOnOneLinkAbortsTheSessionWithoutKey) {
  QkdGen g;
  g.name = "qkd_eve";
  g.link_fidelity = {0.99, 0.99};
  g.eavesdropper_link = "l1";
  g.pairs = 12000;  // about 3000 Z-sifted bits: one block of 2000
  g.params = R"(block-bits="2000" sample-fraction="0.2")";
  if (!ParseTopology(Xml(g), "eve.xml").ok()) {
    GTEST_SKIP() << "the loader does not know eavesdropper=\"intercept-resend\" (helper eve)";
  }
  std::optional<QkdRun> r = RunQkd(g);
  ASSERT_TRUE(r);
  const double q = (1 - W(0.99) * W(0.99) / 2) / 2;
  ExpectQberNear("Q_Z", r->alice.Num("z_errors"), r->alice.Num("z_sampled"), q);
  ExpectQberNear("Q_X", r->alice.Num("x_errors"), r->alice.Num("x_test_bits"), q);
  EXPECT_TRUE(r->summary.aborted());  // RES-36
  EXPECT_THAT(r->summary.abort_reason(), HasSubstr("QBER Z"));
  EXPECT_TRUE(r->alice.Bool("aborted"));
  EXPECT_TRUE(r->bob.Bool("aborted"));
  EXPECT_EQ(r->summary.blocks(), 0u);  // the first block never finished
  EXPECT_EQ(r->summary.sifted_bits(), 2000u);
  EXPECT_EQ(r->summary.secret_bits(), 0u);
  EXPECT_EQ(r->summary.stored_key_bits(), 0u);
  EXPECT_EQ(r->bob.Num("stored_key_bits"), 0);
  ASSERT_TRUE(r->key_files_exist);
  EXPECT_EQ(r->key_a.size(), 0u);
  EXPECT_EQ(r->key_b.size(), 0u);
  EXPECT_FALSE(r->summary.keys_match());
  EXPECT_EQ(r->summary.error(), "");
  // The attacker is hidden from the nodes but not from qworld's trace.
  ASSERT_EQ(r->run.summary.links_size(), 2);
  EXPECT_EQ(r->run.summary.links(0).intercepted(), 0u);
  EXPECT_GT(r->run.summary.links(1).intercepted(), 0u);
  RemoveOutput(r->run);
}

// A parameter the session does not have is refused before the run, naming
// the element; kme-* parameters (key delivery) are ignored in the sim.
TEST(QkdSimTest, UnknownSessionParameterIsRefusedNamingTheApp) {
  QkdGen g;
  g.name = "qkd_bad";
  g.params = R"(block-bits="4000" kme-http-port="8080" block-size="7")";
  absl::StatusOr<ScenarioRun> run = RunScenario(Xml(g), g.name);
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.status().message(), HasSubstr("app 'key': unknown parameter 'block-size'"));
  g.params = R"(block-bits="0")";
  run = RunScenario(Xml(g), g.name);
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.status().message(), HasSubstr("block-bits=\"0\": not a positive integer"));
  g.params = R"(z-probability="1.5")";
  run = RunScenario(Xml(g), g.name);
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.status().message(), HasSubstr("z-probability=\"1.5\""));
}

}  // namespace
}  // namespace qnet::scenarios
