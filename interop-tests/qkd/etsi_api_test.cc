// Conformance of qnet-qkd's ETSI GS QKD 014 V1.1.1 key delivery (specs/qkd.md
// section 9, KME-*), black box: two copies of the program run one good
// session through the fake node (alice: role a, SAEs sae-a1 and sae-a2; bob:
// role b, SAE sae-b1), each serving its KME on HTTP and HTTPS; the `curl`
// program is the SAE. The PKI is made here with the `openssl` program (the
// layout of apps/qkd/kme/pki.h), so the KME is also checked against
// certificates it did not make itself.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "interop-tests/qkd/qkd_iut.h"

namespace qnet::interop::qkd {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

int Sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// ca.pem, kme-<node>.{pem,key} (CN node, SAN IP 127.0.0.1), sae-<id>.{pem,key}
// (CN = id), all EC P-256, signed by ca.pem. `stranger` gets a client
// certificate from another CA (stranger-ca.pem) too.
bool MakePki(const std::string& dir, const std::vector<std::string>& nodes,
             const std::vector<std::string>& saes) {
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  if (Sh("mkdir -p " + dir) != 0) return false;
  auto ca = [&](const std::string& stem) {
    return Sh("openssl req -x509 " + ec + " -keyout " + dir + "/" + stem + ".key -out " + dir +
              "/" + stem + ".pem -days 2 -subj /CN=" + stem) == 0;
  };
  auto leaf = [&](const std::string& ca_stem, const std::string& stem, const std::string& cn,
                  const std::string& ext) {
    const std::string ext_file = dir + "/" + stem + ".ext";
    std::ofstream(ext_file) << ext << "\n";
    return Sh("openssl req " + ec + " -keyout " + dir + "/" + stem + ".key -out " + dir + "/" +
              stem + ".csr -subj /CN=" + cn) == 0 &&
           Sh("openssl x509 -req -in " + dir + "/" + stem + ".csr -CA " + dir + "/" + ca_stem +
              ".pem -CAkey " + dir + "/" + ca_stem + ".key -CAcreateserial -days 2 -out " + dir +
              "/" + stem + ".pem -extfile " + ext_file) == 0;
  };
  if (!ca("ca") || !ca("stranger-ca")) return false;
  for (const auto& n : nodes) {
    if (!leaf("ca", "kme-" + n, n,
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")) {
      return false;
    }
  }
  for (const auto& s : saes) {
    if (!leaf("ca", "sae-" + s, s, "extendedKeyUsage=clientAuth")) return false;
  }
  // A client that claims a known SAE's name under another CA.
  return leaf("stranger-ca", "sae-stranger", "sae-a1", "extendedKeyUsage=clientAuth");
}

struct Http {
  int status = 0;  // 0: no HTTP response (e.g. the TLS handshake failed)
  int curl_exit = 0;
  std::string content_type;
  std::string body;
  Struct json;
  bool json_ok = false;
};

class EtsiApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/qnet-qkd-etsi-XXXXXX";
    pki_ = std::string(mkdtemp(tmpl)) + "/pki";
    ASSERT_TRUE(MakePki(pki_, {"alice", "bob"}, {"sae-a1", "sae-a2", "sae-b1", "sae-x"}))
        << "openssl could not make the PKI in " << pki_;
    IutOptions o;
    o.program[0] = o.program[1] = true;
    // 300000 pairs, Z with 0.8 at each end: 192000 Z-sifted bits, 3 blocks of
    // 60000; each leaves about 10^4 bits after the pad refills, so each KME's
    // share holds dozens of 256-bit keys.
    o.pairs = MakePairs(300000, 0.8, 0.02, 0.02, 31);
    o.params.set_block_bits(60000);
    o.params.set_z_probability(0.8);
    for (int e = 0; e < 2; ++e) {
      http_[e] = FreePort();
      https_[e] = FreePort();
      o.kme[e].http_port = http_[e];
      o.kme[e].https_port = https_[e];
      o.kme[e].pki_dir = pki_;
    }
    o.kme[0].saes = {"sae-a1", "sae-a2"};
    o.kme[0].peer_saes = {"sae-b1"};
    o.kme[1].saes = {"sae-b1"};
    o.kme[1].peer_saes = {"sae-a1", "sae-a2"};
    run_ = new IutRun(o);
    const std::string why = run_->Start();
    ASSERT_EQ(why, "") << run_->Describe();
    ASSERT_TRUE(run_->RunToResults()) << run_->Describe();
    ASSERT_EQ(run_->Result(0).at("ok"), "true") << run_->Describe();
    ASSERT_EQ(run_->Result(1).at("ok"), "true") << run_->Describe();
    ASSERT_FALSE(run_->Key(0).empty());
    ASSERT_EQ(run_->Key(0), run_->Key(1)) << "the two ends' key files differ";
    // The programs keep serving their KMEs after the session.
    ASSERT_TRUE(run_->process(0)->running()) << run_->Log(0);
    ASSERT_TRUE(run_->process(1)->running()) << run_->Log(1);
  }
  static void TearDownTestSuite() {
    if (run_ != nullptr) {
      EXPECT_EQ(run_->Stop(0), 0) << run_->Log(0);
      EXPECT_EQ(run_->Stop(1), 0) << run_->Log(1);
    }
    delete run_;
    run_ = nullptr;
    Sh("rm -rf " + pki_.substr(0, pki_.size() - 4));
  }
  void SetUp() override {
    if (run_ == nullptr) GTEST_SKIP() << "no session";
  }

  // `end`: 0 alice's KME, 1 bob's. `sae`: the client certificate (HTTPS) or
  // the X-SAE-ID header (HTTP); "" for none.
  static Http Call(int end, bool https, const std::string& sae, const std::string& method,
                   const std::string& path, const std::string& body = "") {
    const std::string dir = run_->dir();
    const std::string out = dir + "/curl.out", in = dir + "/curl.in";
    std::string cmd = "curl -s -o " + out + " -w '%{http_code} %{content_type}' --max-time 10 ";
    if (https) {
      cmd += "--cacert " + pki_ + "/ca.pem ";
      if (!sae.empty())
        cmd += "--cert " + pki_ + "/" + sae + ".pem --key " + pki_ + "/" + sae + ".key ";
      cmd += "'https://127.0.0.1:" + std::to_string(https_[end]);
    } else {
      if (!sae.empty()) cmd += "-H 'X-SAE-ID: " + sae + "' ";
      cmd += "'http://127.0.0.1:" + std::to_string(http_[end]);
    }
    cmd += path + "'";  // quoted: a query's '&' is not for the shell
    if (method == "POST") {
      std::ofstream(in) << body;
      cmd = cmd + " -X POST -H 'Content-Type: application/json' --data-binary @" + in;
    }
    std::remove(out.c_str());
    Http h;
    FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
    char buf[256] = {0};
    const size_t n = fread(buf, 1, sizeof buf - 1, p);
    h.curl_exit = WEXITSTATUS(pclose(p));
    const std::string written(buf, n);
    h.status = std::atoi(written.c_str());
    if (const size_t sp = written.find(' '); sp != std::string::npos) {
      h.content_type = written.substr(sp + 1);
    }
    h.body = ReadFile(out).value_or("");
    h.json_ok =
        !h.body.empty() && google::protobuf::util::JsonStringToMessage(h.body, &h.json).ok();
    return h;
  }
  static std::string Str(const Struct& s, const std::string& key) {
    auto it = s.fields().find(key);
    return it == s.fields().end() ? "" : it->second.string_value();
  }
  static double Num(const Struct& s, const std::string& key) {
    auto it = s.fields().find(key);
    return it == s.fields().end() ? -1 : it->second.number_value();
  }
  // (key_ID, key) of a key container.
  static std::vector<std::pair<std::string, std::string>> Keys(const Http& h) {
    std::vector<std::pair<std::string, std::string>> out;
    auto it = h.json.fields().find("keys");
    if (it == h.json.fields().end()) return out;
    for (const Value& v : it->second.list_value().values()) {
      out.emplace_back(Str(v.struct_value(), "key_ID"), Str(v.struct_value(), "key"));
    }
    return out;
  }
  static std::string IdsBody(const std::vector<std::pair<std::string, std::string>>& keys) {
    std::string body = "{\"key_IDs\": [";
    for (size_t i = 0; i < keys.size(); ++i) {
      body += (i ? ", " : "") + std::string("{\"key_ID\": \"") + keys[i].first + "\"}";
    }
    return body + "]}";
  }
  // An error as the standard has it: 400 with {"message", "details"?}.
  static void Expect400(const Http& h, const std::string& message_part) {
    EXPECT_EQ(h.status, 400) << h.body;
    ASSERT_TRUE(h.json_ok) << "400 body is not JSON: " << h.body;
    EXPECT_NE(Str(h.json, "message").find(message_part), std::string::npos) << h.body;
  }

  static inline IutRun* run_ = nullptr;
  static inline std::string pki_;
  static inline int http_[2] = {0, 0}, https_[2] = {0, 0};
};

constexpr const char* kEnc = "/api/v1/keys/sae-b1/enc_keys";  // at alice, master sae-a1
constexpr const char* kDec = "/api/v1/keys/sae-a1/dec_keys";  // at bob, slave sae-b1

TEST_F(EtsiApiTest, KME_8_StatusFieldsOverHttps) {
  Http h = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/status");
  ASSERT_EQ(h.status, 200) << h.body;
  ASSERT_TRUE(h.json_ok) << h.body;
  EXPECT_EQ(Str(h.json, "source_KME_ID"), "alice");
  EXPECT_EQ(Str(h.json, "target_KME_ID"), "bob");
  EXPECT_EQ(Str(h.json, "master_SAE_ID"), "sae-a1");
  EXPECT_EQ(Str(h.json, "slave_SAE_ID"), "sae-b1");
  EXPECT_EQ(Num(h.json, "key_size"), 256);
  // Alice's share is half of each block's key (QKD-K3): at least one key of 256 bits.
  const double stored_bits = std::stod(run_->Result(0).at("stored_key_bits"));
  EXPECT_GE(Num(h.json, "stored_key_count"), 1);
  EXPECT_LE(Num(h.json, "stored_key_count"), stored_bits / 2 / 256);
  EXPECT_GE(Num(h.json, "max_key_per_request"), 1);
  EXPECT_GE(Num(h.json, "max_key_size"), 256);
  EXPECT_LE(Num(h.json, "min_key_size"), 256);
  EXPECT_GE(Num(h.json, "max_key_count"), Num(h.json, "stored_key_count"));
  EXPECT_TRUE(h.json.fields().contains("max_SAE_ID_count"));
}

TEST_F(EtsiApiTest, KME_19_23_26_EncKeysAtOneEndDecKeysAtTheOtherGiveTheSameKeyOnce) {
  Http enc = Call(0, true, "sae-sae-a1", "POST", kEnc, R"({"number": 2, "size": 256})");
  ASSERT_EQ(enc.status, 200) << enc.body;
  const auto keys = Keys(enc);
  ASSERT_EQ(keys.size(), 2u) << enc.body;
  EXPECT_NE(keys[0].first, keys[1].first);
  EXPECT_NE(keys[0].second, keys[1].second);
  EXPECT_EQ(keys[0].second.size(), 44u);  // base64 of 32 bytes
  Http dec = Call(1, true, "sae-sae-b1", "POST", kDec, IdsBody(keys));
  ASSERT_EQ(dec.status, 200) << dec.body;
  EXPECT_EQ(Keys(dec), keys);
  // Never twice: the same ids again are not found, and nothing is handed out.
  Http again = Call(1, true, "sae-sae-b1", "POST", kDec, IdsBody(keys));
  Expect400(again, "one or more keys specified are not found on KME");
  EXPECT_TRUE(Keys(again).empty());
  // One of them alone, in the GET form: also refused.
  Http one = Call(1, true, "sae-sae-b1", "GET", std::string(kDec) + "?key_ID=" + keys[0].first);
  EXPECT_EQ(one.status, 400) << one.body;
  EXPECT_TRUE(Keys(one).empty());
}

TEST_F(EtsiApiTest, KME_25_BobsKmeHandsOutKeysOnlyTheirSlaveFetches) {
  Http enc = Call(1, true, "sae-sae-b1", "GET", "/api/v1/keys/sae-a2/enc_keys?number=1&size=512");
  ASSERT_EQ(enc.status, 200) << enc.body;
  const auto keys = Keys(enc);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].second.size(), 88u);  // base64 of 64 bytes
  // Another SAE of the same node may not take it (401, no body) ...
  Http other = Call(0, true, "sae-sae-a1", "POST", "/api/v1/keys/sae-b1/dec_keys", IdsBody(keys));
  EXPECT_EQ(other.status, 401) << other.body;
  EXPECT_TRUE(Keys(other).empty());
  // ... and that took nothing: the right SAE gets it, once.
  Http dec =
      Call(0, true, "sae-sae-a2", "GET", "/api/v1/keys/sae-b1/dec_keys?key_ID=" + keys[0].first);
  ASSERT_EQ(dec.status, 200) << dec.body;
  EXPECT_EQ(Keys(dec), keys);
}

TEST_F(EtsiApiTest, KME_5_PlainHttpTakesTheSaeFromTheHeader) {
  Http enc = Call(0, false, "sae-a1", "POST", kEnc, "{}");
  ASSERT_EQ(enc.status, 200) << enc.body;
  const auto keys = Keys(enc);
  ASSERT_EQ(keys.size(), 1u);  // the defaults: one key of key_size
  EXPECT_EQ(keys[0].second.size(), 44u);
  Http dec = Call(1, false, "sae-b1", "POST", kDec, IdsBody(keys));
  ASSERT_EQ(dec.status, 200) << dec.body;
  EXPECT_EQ(Keys(dec), keys);
  // No header: not an SAE of this node.
  Http none = Call(0, false, "", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_EQ(none.status, 401);
  EXPECT_TRUE(none.body.empty()) << none.body;
}

TEST_F(EtsiApiTest, KME_6_7_UnknownSaesAre401WithNoBody) {
  // A caller certified by the CA but not an SAE of alice's node.
  Http caller = Call(0, true, "sae-sae-x", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_EQ(caller.status, 401);
  EXPECT_TRUE(caller.body.empty()) << caller.body;
  // A slave that is not at the peer node.
  Http slave = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-nobody/status");
  EXPECT_EQ(slave.status, 401);
  EXPECT_TRUE(slave.body.empty()) << slave.body;
  Http enc = Call(0, true, "sae-sae-a1", "POST", "/api/v1/keys/sae-a2/enc_keys", "{}");
  EXPECT_EQ(enc.status, 401);  // sae-a2 is at this node, not the peer
}

TEST_F(EtsiApiTest, KME_29_HttpsWithoutAValidClientCertificateFailsTheHandshake) {
  Http none = Call(0, true, "", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_EQ(none.status, 0) << "answered without a client certificate: " << none.body;
  EXPECT_NE(none.curl_exit, 0);
  // A certificate with a known SAE's name from another CA.
  Http stranger = Call(0, true, "sae-stranger", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_EQ(stranger.status, 0) << stranger.body;
  EXPECT_NE(stranger.curl_exit, 0);
}

TEST_F(EtsiApiTest, KME_11_18_MalformedRequestsAre400AndHandOutNothing) {
  Http status = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/status");
  ASSERT_EQ(status.status, 200);
  const double before = Num(status.json, "stored_key_count");
  const int max_per_request = static_cast<int>(Num(status.json, "max_key_per_request"));
  const int max_size = static_cast<int>(Num(status.json, "max_key_size"));
  const int min_size = static_cast<int>(Num(status.json, "min_key_size"));
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc, R"({"number": 1, "size": )"), "");
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc, "not json at all"), "");
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc, R"({"number": "many"})"), "");
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc,
                 "{\"number\": " + std::to_string(max_per_request + 1) + "}"),
            "");
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc, R"({"number": 0})"), "");
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc, R"({"number": 1, "size": 100})"),
            "size shall be a multiple of 8");
  Expect400(
      Call(0, true, "sae-sae-a1", "POST", kEnc, "{\"size\": " + std::to_string(max_size + 8) + "}"),
      "");
  if (min_size > 8) {
    Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc,
                   "{\"size\": " + std::to_string(min_size - 8) + "}"),
              "");
  }
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc,
                 R"({"extension_mandatory": [{"abc_route_type": "direct"}]})"),
            "not all extension_mandatory parameters are supported");
  Expect400(Call(0, true, "sae-sae-a1", "GET", std::string(kEnc) + "?number=x"), "");
  Expect400(Call(1, true, "sae-sae-b1", "POST", kDec, "{\"key_IDs\": ["), "");
  Expect400(Call(1, true, "sae-sae-b1", "POST", kDec, R"({"key_IDs": []})"), "");
  Expect400(Call(1, true, "sae-sae-b1", "POST", kDec,
                 R"({"key_IDs": [{"key_ID": "00000000-0000-8000-8020-000000000000"}]})"),
            "one or more keys specified are not found on KME");
  // Nothing was taken by any of them.
  Http after = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_EQ(Num(after.json, "stored_key_count"), before);
}

TEST_F(EtsiApiTest, KME_20_MoreKeysThanStoredIs503AndTakesNothing) {
  Http status = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/status");
  ASSERT_EQ(status.status, 200);
  const int max_size = static_cast<int>(Num(status.json, "max_key_size"));
  const int max_per_request = static_cast<int>(Num(status.json, "max_key_per_request"));
  const double before = Num(status.json, "stored_key_count");
  const double asked_bits = static_cast<double>(max_size) * max_per_request;
  const double have_bits = std::stod(run_->Result(0).at("stored_key_bits")) / 2;
  if (asked_bits <= have_bits) GTEST_SKIP() << "the store holds more than one request can take";
  Http h = Call(0, true, "sae-sae-a1", "POST", kEnc,
                "{\"number\": " + std::to_string(max_per_request) +
                    ", \"size\": " + std::to_string(max_size) + "}");
  EXPECT_EQ(h.status, 503) << h.body;
  EXPECT_TRUE(h.json_ok) << "503 needs a body: " << h.body;
  EXPECT_TRUE(Keys(h).empty());
  Http after = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_EQ(Num(after.json, "stored_key_count"), before);
}

TEST_F(EtsiApiTest, KME_2_3_31_UnknownPathsAndMethods) {
  Http path = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/nothing");
  EXPECT_EQ(path.status, 404) << path.body;
  EXPECT_EQ(Str(path.json, "message"), "unknown resource");
  Http other = Call(0, true, "sae-sae-a1", "GET", "/api/v2/keys/sae-b1/status");
  EXPECT_EQ(other.status, 404) << other.body;
  Http method = Call(0, true, "sae-sae-a1", "POST", "/api/v1/keys/sae-b1/status", "{}");
  EXPECT_EQ(method.status, 405) << method.body;
  EXPECT_EQ(Str(method.json, "message"), "method not allowed");
  // KME-31: JSON answers say so.
  Http status = Call(0, true, "sae-sae-a1", "GET", "/api/v1/keys/sae-b1/status");
  EXPECT_NE(status.content_type.find("application/json"), std::string::npos) << status.content_type;
  EXPECT_NE(method.content_type.find("application/json"), std::string::npos);
}

TEST_F(EtsiApiTest, KME_4_HttpsIgnoresTheSaeHeader) {
  // The certificate says sae-a1; a header claiming sae-a2 changes nothing.
  const std::string dir = run_->dir();
  const std::string cmd = "curl -s --max-time 10 --cacert " + pki_ + "/ca.pem --cert " + pki_ +
                          "/sae-sae-a1.pem --key " + pki_ +
                          "/sae-sae-a1.key -H 'X-SAE-ID: sae-a2' "
                          "'https://127.0.0.1:" +
                          std::to_string(https_[0]) + "/api/v1/keys/sae-b1/status' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string body;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) body.append(buf, n);
  pclose(p);
  Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &json).ok()) << body;
  EXPECT_EQ(Str(json, "master_SAE_ID"), "sae-a1");
}

TEST_F(EtsiApiTest, KME_9_15_16_RequestFormsTheKmeRefuses) {
  Expect400(Call(0, true, "sae-sae-a1", "GET", std::string(kEnc) + "?number=1&colour=red"),
            "unknown query parameter");
  Expect400(Call(0, true, "sae-sae-a1", "POST", kEnc,
                 R"({"number": 1, "additional_slave_SAE_IDs": ["sae-b2"]})"),
            "additional_slave_SAE_IDs are not supported");
  // KME-16: the unsupported names, sorted, in the details.
  Http ext = Call(0, true, "sae-sae-a1", "POST", kEnc,
                  R"({"extension_mandatory": [{"zeta": 1}, {"alpha": 2}]})");
  Expect400(ext, "not all extension_mandatory parameters are supported");
  EXPECT_NE(ext.body.find(R"(["alpha","zeta"])"), std::string::npos) << ext.body;
  // KME-17: extension_optional is ignored.
  Http opt = Call(0, true, "sae-sae-a1", "POST", kEnc,
                  R"({"number": 1, "extension_optional": [{"whatever": true}]})");
  EXPECT_EQ(opt.status, 200) << opt.body;
}

TEST_F(EtsiApiTest, KME_24_ARefusedIdInARequestHandsOutNoneOfIt) {
  Http enc = Call(0, true, "sae-sae-a1", "POST", kEnc, R"({"number": 1})");
  ASSERT_EQ(enc.status, 200) << enc.body;
  auto keys = Keys(enc);
  ASSERT_EQ(keys.size(), 1u);
  auto with_bogus = keys;
  with_bogus.emplace_back("00000000-0000-8000-8020-000000000000", "");
  Http refused = Call(1, true, "sae-sae-b1", "POST", kDec, IdsBody(with_bogus));
  Expect400(refused, "one or more keys specified are not found on KME");
  EXPECT_TRUE(Keys(refused).empty());
  EXPECT_NE(refused.body.find("00000000-0000-8000-8020-000000000000"), std::string::npos);
  // The good id was not marked as served: it is still there, once. Ids are
  // accepted in upper case too (QKD-K7).
  std::string upper = keys[0].first;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Http dec = Call(1, true, "sae-sae-b1", "GET", std::string(kDec) + "?key_ID=" + upper);
  ASSERT_EQ(dec.status, 200) << dec.body;
  ASSERT_EQ(Keys(dec).size(), 1u);
  EXPECT_EQ(Keys(dec)[0].second, keys[0].second);
  Http twice = Call(1, true, "sae-sae-b1", "GET", std::string(kDec) + "?key_ID=" + keys[0].first);
  EXPECT_EQ(twice.status, 400) << twice.body;
}

TEST_F(EtsiApiTest, QKD_R1_R2_BothEndsReportTheSameFigures) {
  const auto a = run_->Result(0), b = run_->Result(1);
  for (const char* field : {"app",
                            "session",
                            "from",
                            "to",
                            "ok",
                            "aborted",
                            "pairs",
                            "sift_ranges",
                            "sifted_bits",
                            "x_test_bits",
                            "z_errors",
                            "z_sampled",
                            "x_errors",
                            "qber_z",
                            "qber_x",
                            "blocks",
                            "blocks_failed_verification",
                            "blocks_without_x_test",
                            "leftover_bits",
                            "corrected_bits",
                            "bits_flipped",
                            "disclosed_bits",
                            "cascade_rounds",
                            "ec_efficiency",
                            "secret_bits",
                            "secret_fraction",
                            "auth_bits_consumed",
                            "auth_bits_refilled",
                            "stored_key_bits",
                            "key_sha256"}) {
    ASSERT_TRUE(a.count(field)) << "result of a lacks " << field;
    ASSERT_TRUE(b.count(field)) << "result of b lacks " << field;
    EXPECT_EQ(a.at(field), b.at(field)) << field;
  }
  EXPECT_EQ(a.at("role"), "a");
  EXPECT_EQ(b.at("role"), "b");
  EXPECT_EQ(a.at("from"), "alice");
  EXPECT_EQ(a.at("to"), "bob");
  // QKD-R2: qber_z = z_errors / z_sampled; secret_fraction = secret / sifted.
  EXPECT_DOUBLE_EQ(JsonNumber(a, "qber_z"), JsonNumber(a, "z_errors") / JsonNumber(a, "z_sampled"));
  EXPECT_DOUBLE_EQ(JsonNumber(a, "secret_fraction"),
                   JsonNumber(a, "secret_bits") / JsonNumber(a, "sifted_bits"));
  EXPECT_EQ(JsonNumber(a, "sifted_bits"), 180000);  // 3 blocks of 60000
  // The key file's SHA-256 is the reported key_sha256 (QKD-R1): same bytes at both ends.
  EXPECT_EQ(run_->Key(0), run_->Key(1));
  EXPECT_EQ(run_->Key(0).size() * 8, static_cast<size_t>(JsonNumber(a, "stored_key_bits")));
}

}  // namespace
}  // namespace qnet::interop::qkd
