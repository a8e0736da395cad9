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
      "stored %u blocks %u f %.3f rate %.1f bit/s aborted %d (%s) keys_match %d\n",
      g.name.c_str(), r.run.wall_s, r.summary.qber_z(), r.alice.Num("z_errors"),
      r.alice.Num("z_sampled"), r.summary.qber_x(), r.alice.Num("x_errors"),
      r.alice.Num("x_test_bits"), r.summary.sifted_bits(), r.summary.secret_bits(),
      r.summary.stored_key_bits(), r.summary.blocks(), r.summary.ec_efficiency(),
      r.summary.key_rate_bps(), r.summary.aborted(), r.summary.abort_reason().c_str(),
      r.summary.keys_match());
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

// One block on one link (F = 0.97, w = 0.96, Q = 2 %): the keys agree, both
// QBERs are the analytic one, and the secret length is exactly the finite-size
// formula (QKD-L*) of the block's measured inputs.
TEST(QkdSimTest, OneLinkOneBlockKeysAgreeAndSecretLengthIsTheFormula) {
  QkdGen g;
  g.name = "qkd_one_block";
  g.pairs = 20000;  // about 5000 Z-sifted bits at z-probability 0.5: one block of 4000
  g.params = R"(block-bits="4000" sample-fraction="0.1")";
  std::optional<QkdRun> r = RunQkd(g);
  ASSERT_TRUE(r);
  ExpectKeysAgree(*r);
  ASSERT_EQ(r->summary.blocks(), 1u);
  EXPECT_EQ(r->summary.sifted_bits(), 4000u);
  const double q = (1 - W(0.97)) / 2;
  ExpectQberNear("Q_Z", r->alice.Num("z_errors"), r->alice.Num("z_sampled"), q);
  ExpectQberNear("Q_X", r->alice.Num("x_errors"), r->alice.Num("x_test_bits"), q);
  EXPECT_EQ(r->alice.Num("z_sampled"), 400);  // sample-fraction of the block
  EXPECT_EQ(r->alice.Num("corrected_bits"), 3600);

  qkd::SecureLengthInput in;
  in.n = static_cast<uint64_t>(r->alice.Num("corrected_bits"));
  in.k = static_cast<uint64_t>(r->alice.Num("x_test_bits"));
  in.qber_x = r->alice.Num("x_errors") / r->alice.Num("x_test_bits");
  in.leak_ec = static_cast<uint64_t>(r->alice.Num("disclosed_bits"));
  in.leak_verify = 64;
  const uint64_t expected = qkd::ComputeSecureLength(in).bits;
  EXPECT_GT(expected, 0u);
  EXPECT_EQ(r->summary.secret_bits(), expected);
  EXPECT_EQ(r->bob.Num("secret_bits"), static_cast<double>(expected));
  // The key store gets the secret bits less the pads' refill, in 16-bit units.
  const double refilled = r->alice.Num("auth_bits_refilled");
  EXPECT_EQ(r->summary.stored_key_bits(),
            (static_cast<uint64_t>(expected) - static_cast<uint64_t>(refilled)) / 16 * 16);
  RemoveOutput(r->run);
}

}  // namespace
}  // namespace qnet::scenarios
