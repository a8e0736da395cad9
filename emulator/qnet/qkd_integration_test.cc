// `qnet run` of a three-node QKD chain with qnet-qkd as real processes
// (issue 4; launcher brief "Tests"; specs/topology.md TOPO-40..TOPO-45): a -
// b - c, Werner links of F = 0.99, one <app kind="qkd"> a -> c with SAEs
// sae-a at a and sae-c at c. Real processes deliver about 240 end-to-end
// pairs per wall second on the loaded 2-core machine (a swap and several
// process hops per pair), so the run is sized for one minute: 10000 pairs
// (about 42 s), one block of 4000 Z-sifted bits (z-probability 0.65), and
// auth-refill-bits 64, so that the block leaves key for the KMEs (a block
// costs about 4500 authentication bits per direction; refilling all of them
// would leave a block this small without key; the PSK's 32768-bit pads last
// for hundreds of frames). Sim backend, same seed: 577 secret bits, 448
// stored. Label integration for the local backend; the Mininet variant
// (label mininet) skips without root or Mininet.
//
// What it asserts:
//  - both ends' key files OUT/qkd/qkd.a.key and qkd.b.key exist, are
//    non-empty and equal byte for byte, and summary.json qkd[0] says
//    keys_match, not aborted, secret_bits > 0;
//  - the QBERs agree with the chain's Werner pairs: end to end
//    w = ((4F - 1)/3)^2, QBER (1 - w)/2 = 0.0132 in both bases, within 4
//    standard errors sqrt(Q (1 - Q) / n) of the sampled bits n (plus 0.01
//    for the memories' decoherence on loopback), and below the threshold;
//  - (local, --serve-keys) while the KMEs serve after the report: enc_keys
//    over HTTPS at a's KME (client certificate of sae-a) and dec_keys of that
//    key_ID at c's KME (certificate of sae-c) return the same key; a second
//    dec_keys of the id is refused with 400 (ETSI GS QKD 014; KME-*); Ctrl-C
//    (SIGINT) then ends the run with status 0;
//  - nothing of the run is left running.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "emulator/qnet/local_backend.h"
#include "emulator/qnet/mininet_backend.h"
#include "emulator/qnet/testing/qnet_runs.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr double kLinkFidelity = 0.99;

// The chain; KME ports given so that concurrent local runs do not collide.
// Mininet runs at time dilation 3: on the loaded machine, dilation 1 let the
// network layer declare links down (late hellos) and lose its route a -> c.
std::string ChainXml(int http_port, int https_port, bool mininet) {
  const std::string link =
      absl::StrCat(R"(length-km="2" scheme="werner" attempt-us="10" p-success="0.2" fidelity=")",
                   kLinkFidelity, R"("/>)");
  return absl::StrCat(
      R"(<?xml version="1.0" encoding="UTF-8"?>
<network name="qkd-chain3-test" seed="11" )",
      mininet ? R"(duration-s="25" time-dilation="3")" : R"(duration-s="60" time-dilation="1")",
      R"(>
  <hardware name="hw" memories="8"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <link name="ab" a="a" b="b" )",
      link, R"(
  <link name="bc" a="b" b="c" )",
      link, R"(
  <sae name="sae-a" node="a"/>
  <sae name="sae-c" node="c"/>
  <app name="qkd" kind="qkd" node="a" peer="c" pairs="10000" block-bits="4000"
       z-probability="0.65" auth-refill-bits="64" kme-http-port=")",
      http_port, R"(" kme-https-port=")", https_port, R"("/>
</network>
)");
}

bool ParseJson(const std::string& json, Struct* out) {
  return google::protobuf::util::JsonStringToMessage(json, out).ok();
}

double Number(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

// The run's checks on the files it left (both backends).
void CheckKeysAndSummary(const std::string& out, const std::string& output) {
  const std::string key_a = test_runs::ReadFile(out + "/qkd/qkd.a.key");
  const std::string key_b = test_runs::ReadFile(out + "/qkd/qkd.b.key");
  EXPECT_FALSE(key_a.empty()) << output;
  EXPECT_EQ(key_a.size(), key_b.size());
  EXPECT_TRUE(key_a == key_b) << "the two ends' keys differ";

  Struct summary;
  ASSERT_TRUE(ParseJson(test_runs::ReadFile(out + "/summary.json"), &summary)) << output;
  const Value& qkd_list = summary.fields().at("qkd");
  ASSERT_EQ(qkd_list.list_value().values_size(), 1) << output;
  const Struct& qkd = qkd_list.list_value().values(0).struct_value();
  auto flag = [&qkd](const std::string& key) {
    auto it = qkd.fields().find(key);
    return it != qkd.fields().end() && it->second.bool_value();
  };
  EXPECT_TRUE(flag("keys_match")) << output;
  EXPECT_FALSE(flag("aborted")) << output;
  EXPECT_GT(Number(qkd, "secret_bits"), 0) << output;
  EXPECT_GT(Number(qkd, "key_rate_bps"), 0) << output;

  // QBER against the model, with the sample sizes from Alice's result file.
  Struct alice;
  ASSERT_TRUE(ParseJson(test_runs::ReadFile(out + "/apps/qkd.json"), &alice));
  const double w = std::pow((4 * kLinkFidelity - 1) / 3, 2);
  const double q = (1 - w) / 2;
  const double n_z = Number(alice, "z_sampled"), n_x = Number(alice, "x_test_bits");
  ASSERT_GT(n_z, 0);
  ASSERT_GT(n_x, 0);
  const double qber_z = Number(qkd, "qber_z"), qber_x = Number(qkd, "qber_x");
  EXPECT_NEAR(qber_z, q, 4 * std::sqrt(q * (1 - q) / n_z) + 0.01) << "n_z " << n_z;
  EXPECT_NEAR(qber_x, q, 4 * std::sqrt(q * (1 - q) / n_x) + 0.01) << "n_x " << n_x;
  EXPECT_LT(qber_z, 0.11);
  EXPECT_LT(qber_x, 0.11);
}

struct Fixture {
  std::string dir, out, topology;
  int http_port = 0, https_port = 0;
};

Fixture Prepare(const std::string& backend) {
  Fixture f;
  f.dir = absl::StrCat(::testing::TempDir(), "/qnet_qkd_test_", getpid(), "_", backend);
  fs::remove_all(f.dir);
  fs::create_directories(f.dir);
  f.out = f.dir + "/out";
  f.topology = f.dir + "/qkd-chain3.xml";
  // Free on a's address now; c's (127.0.1.3) has its own port space.
  f.http_port = FreeTcpPort("127.0.1.1").value_or(18000);
  f.https_port = FreeTcpPort("127.0.1.1").value_or(18001);
  if (f.https_port == f.http_port) ++f.https_port;
  std::ofstream(f.topology) << ChainXml(f.http_port, f.https_port, backend == "mininet");
  return f;
}

struct Http {
  int status = 0;
  std::string body;
};

// curl over HTTPS with an SAE's client certificate of OUT/pki.
Http Curl(const Fixture& f, const std::string& sae, const std::string& url) {
  const std::string body_path = f.dir + "/curl_body";
  fs::remove(body_path);
  const std::string pki = f.out + "/pki";
  test_runs::CommandResult r = test_runs::RunProgram(
      {"curl", "-s", "-o", body_path, "-w", "%{http_code}", "--cacert", pki + "/ca.pem", "--cert",
       pki + "/sae-" + sae + ".pem", "--key", pki + "/sae-" + sae + ".key", url});
  Http http;
  http.status = std::atoi(r.output.c_str());
  http.body = test_runs::ReadFile(body_path);
  return http;
}

#ifndef QNET_QKD_MININET
TEST(QkdIntegrationTest, KeysMatchAndTheKmesHandOutTheSameKeyOnce) {
  Fixture f = Prepare("local");
  const std::string log = f.dir + "/qnet.out";
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(QNET_BINARY, QNET_BINARY, "run", f.topology.c_str(), "--backend", "local", "--out",
          f.out.c_str(), "--serve-keys", static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  // Safety limit only (not a timing assertion): the run takes about 65 s.
  const absl::Time give_up = absl::Now() + absl::Seconds(240);
  bool serving = false, exited = false;
  int status = 0;
  while (absl::Now() < give_up) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    if (absl::StrContains(test_runs::ReadFile(log), "qkd: serving keys")) {
      serving = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (!serving) {
    if (!exited) {
      kill(pid, SIGINT);
      waitpid(pid, &status, 0);
    }
    FAIL() << "the run did not reach --serve-keys:\n" << test_runs::ReadFile(log);
  }
  const std::string output = test_runs::ReadFile(log);
  CheckKeysAndSummary(f.out, output);
  EXPECT_TRUE(absl::StrContains(output, "/api/v1/keys/sae-c/enc_keys")) << output;

  // KME-*: enc_keys at a, dec_keys at c, then the same id again.
  const std::string kme_a = absl::StrCat("https://127.0.1.1:", f.https_port, "/api/v1/keys/");
  const std::string kme_c = absl::StrCat("https://127.0.1.3:", f.https_port, "/api/v1/keys/");
  // Alice's share of 448 stored bits holds three 64-bit keys.
  Http enc = Curl(f, "sae-a", kme_a + "sae-c/enc_keys?size=64");
  EXPECT_EQ(enc.status, 200) << enc.body;
  Struct enc_json;
  ASSERT_TRUE(ParseJson(enc.body, &enc_json)) << enc.body;
  const auto& keys = enc_json.fields().at("keys").list_value();
  ASSERT_EQ(keys.values_size(), 1) << enc.body;
  const std::string key_id = keys.values(0).struct_value().fields().at("key_ID").string_value();
  const std::string key = keys.values(0).struct_value().fields().at("key").string_value();
  EXPECT_EQ(key.size(), 12u) << key;  // base64 of 8 bytes
  Http dec = Curl(f, "sae-c", kme_c + "sae-a/dec_keys?key_ID=" + key_id);
  EXPECT_EQ(dec.status, 200) << dec.body;
  Struct dec_json;
  ASSERT_TRUE(ParseJson(dec.body, &dec_json)) << dec.body;
  const auto& got = dec_json.fields().at("keys").list_value();
  ASSERT_EQ(got.values_size(), 1) << dec.body;
  EXPECT_EQ(got.values(0).struct_value().fields().at("key_ID").string_value(), key_id);
  EXPECT_EQ(got.values(0).struct_value().fields().at("key").string_value(), key);
  Http again = Curl(f, "sae-c", kme_c + "sae-a/dec_keys?key_ID=" + key_id);
  EXPECT_EQ(again.status, 400) << again.body;
  // Another SAE (sae-a is not at c) gets nothing.
  Http stranger = Curl(f, "sae-a", kme_c + "sae-a/dec_keys?key_ID=" + key_id);
  EXPECT_NE(stranger.status, 200) << stranger.body;

  kill(pid, SIGINT);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << test_runs::ReadFile(log);
  EXPECT_EQ(WEXITSTATUS(status), 0) << test_runs::ReadFile(log);
  EXPECT_EQ(test_runs::ProcessesMentioning(f.out), std::vector<std::string>{})
      << "processes left behind";
  if (!::testing::Test::HasFailure()) fs::remove_all(f.dir);
}
#else
TEST(QkdMininetTest, KeysMatchAtBothEndsInMininet) {
  if (geteuid() != 0) GTEST_SKIP() << "mininet tests need root (network namespaces, veth links)";
  // The driver next to the qnet binary (TOPO-46: the probe runs it).
  if (absl::Status s = CheckMininetPrerequisites(fs::path(QNET_BINARY).parent_path().string());
      !s.ok())
    GTEST_SKIP() << s.message();
  Fixture f = Prepare("mininet");
  test_runs::CommandResult run = test_runs::RunProgram(
      {QNET_BINARY, "run", f.topology, "--backend", "mininet", "--out", f.out});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  CheckKeysAndSummary(f.out, run.output);
  EXPECT_TRUE(absl::StrContains(run.output, "mnexec -a ")) << run.output;
  EXPECT_EQ(test_runs::ProcessesMentioning(f.out), std::vector<std::string>{})
      << "processes left behind";
  if (!::testing::Test::HasFailure()) fs::remove_all(f.dir);
}
#endif

}  // namespace
}  // namespace qnet::launcher
