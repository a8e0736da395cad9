// QKD apps in the local and mininet plans (qkd_setup.h; specs/topology.md
// TOPO-39..TOPO-45): roles, the qnet-qkd flags, KME ports and addresses, the
// PSK files, the key-fetch commands, and --serve-keys.
#include "emulator/qnet/qkd_setup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "emulator/qnet/local_backend.h"
#include "emulator/qnet/mininet_backend.h"
#include "emulator/qnet/run_options.h"
#include "emulator/qnet/testing/qnet_runs.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

// a - b - c (links ab, bc), SAEs sae-a at a and sae-c at c, one qkd app a -> c.
Topology Chain() {
  Topology t;
  t.name = "chain";
  t.source = "chain.xml";
  t.duration_s = 2;
  t.nodes = {NodeSpec{"a", "hw", 3}, NodeSpec{"b", "hw", 4}, NodeSpec{"c", "hw", 5}};
  LinkSpec ab, bc;
  ab.name = "ab", ab.a = "a", ab.b = "b";
  bc.name = "bc", bc.a = "b", bc.b = "c";
  t.links = {ab, bc};
  AppSpec qkd;
  qkd.name = "qkd";
  qkd.kind = "qkd";
  qkd.node = "a";
  qkd.peer = "c";
  qkd.pairs = 6000;
  qkd.line = 9;
  qkd.params = {{"block-bits", "2000"}, {"kme-https-port", "9443"}, {"z-probability", "0.8"}};
  t.apps = {qkd};
  t.saes = {SaeSpec{"sae-a", "a", 10}, SaeSpec{"sae-c", "c", 11}};
  return t;
}

DaemonSettings Settings() {
  DaemonSettings s;
  s.topology_path = "/out/topology.xml";
  s.out_dir = "/out";
  s.seed = 42;
  return s;
}

DaemonPaths Daemons() {
  DaemonPaths d;
  d.qworld = "/bin/qworld";
  d.qnode = "/bin/qnode";
  d.apps["qkd"] = "/bin/qnet-qkd";
  d.apps["teleport"] = "/bin/qnet-teleport";
  return d;
}

std::string ValueOf(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == flag) return argv[i + 1];
  return "";
}

// TOPO-40, TOPO-39, TOPO-43: roles a/b, result files, every qnet-qkd flag.
TEST(QkdPlanTest, BothEndsGetTheirRoleResultAndQkdFlags) {
  absl::StatusOr<LocalPlan> plan = PlanLocal(Chain(), Settings(), Daemons());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->apps.size(), 2u);
  const LocalApp& bob = plan->apps[0];  // the responder starts first
  const LocalApp& alice = plan->apps[1];
  EXPECT_EQ(bob.role, "b");
  EXPECT_EQ(bob.node, "c");
  EXPECT_FALSE(bob.reports);
  EXPECT_EQ(bob.result_path, "/out/apps/qkd.b.json");
  EXPECT_EQ(alice.role, "a");
  EXPECT_EQ(alice.node, "a");
  EXPECT_TRUE(alice.reports);
  EXPECT_EQ(alice.result_path, "/out/apps/qkd.json");
  EXPECT_EQ(alice.argv[0], "/bin/qnet-qkd");
  EXPECT_EQ(ValueOf(alice.argv, "--role"), "a");
  EXPECT_EQ(ValueOf(alice.argv, "--peer"), "c");
  EXPECT_EQ(ValueOf(alice.argv, "--pairs"), "6000");
  EXPECT_THAT(
      alice.argv,
      IsSupersetOf({"--block_bits=2000", "--z_probability=0.8", "--session=qkd", "--node=a",
                    "--psk_file=/out/qkd/qkd.psk", "--key_file=/out/qkd/qkd.a.key",
                    "--kme_address=127.0.1.1", "--kme_http_port=8000", "--kme_https_port=9443",
                    "--pki_dir=/out/pki", "--saes=sae-a", "--peer_saes=sae-c"}));
  EXPECT_THAT(bob.argv,
              IsSupersetOf({"--block_bits=2000", "--peer=a", "--session=qkd", "--node=c",
                            "--psk_file=/out/qkd/qkd.psk", "--key_file=/out/qkd/qkd.b.key",
                            "--kme_address=127.0.1.3", "--kme_http_port=8000",
                            "--kme_https_port=9443", "--saes=sae-c", "--peer_saes=sae-a"}));
  // The KME port attributes become the explicit flags only, once.
  EXPECT_EQ(std::count(alice.argv.begin(), alice.argv.end(), "--kme_https_port=9443"), 1);
  for (const std::string& arg : alice.argv) EXPECT_EQ(arg.find("--kme-"), std::string::npos);
}

// TOPO-39: every app kind, not only qkd.
TEST(QkdPlanTest, HyphenatedParametersBecomeUnderscoreFlagsForEveryKind) {
  Topology t = Chain();
  t.apps[0].kind = "teleport";
  t.apps[0].params = {{"state-set", "cardinal"}};
  absl::StatusOr<LocalPlan> plan = PlanLocal(t, Settings(), Daemons());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->apps[0].argv, Contains("--state_set=cardinal"));
  EXPECT_THAT(plan->apps[0].argv, Not(Contains("--session=qkd")));
  EXPECT_TRUE(plan->key_fetch.empty());
}

// TOPO-43: defaults 8000 + 2 i / 8001 + 2 i by rank among qkd apps; 0 is off.
TEST(QkdPlanTest, KmePortsDefaultByRankAndCanBeTurnedOff) {
  Topology t = Chain();
  AppSpec tele = t.apps[0];
  tele.name = "tele";
  tele.kind = "teleport";
  AppSpec second = t.apps[0];
  second.name = "qkd2";
  second.node = "b";
  second.params = {{"kme-http-port", "0"}};
  t.apps = {tele, t.apps[0], second};
  EXPECT_TRUE(CheckQkdApps(t).ok());
  EXPECT_EQ(KmePortsOf(t, 1).http, 8000);
  EXPECT_EQ(KmePortsOf(t, 1).https, 9443);
  EXPECT_EQ(KmePortsOf(t, 2).http, 0);
  EXPECT_EQ(KmePortsOf(t, 2).https, 8003);
}

TEST(QkdPlanTest, BadOrCollidingKmePortsAreRefusedWithTheLine) {
  Topology t = Chain();
  t.apps[0].params = {{"kme-http-port", "70000"}};
  EXPECT_THAT(CheckQkdApps(t).message(),
              HasSubstr("chain.xml:9: app 'qkd': kme-http-port must be an integer in [0, 65535], "
                        "got '70000'"));
  EXPECT_FALSE(PlanLocal(t, Settings(), Daemons()).ok());
  t = Chain();
  AppSpec second = t.apps[0];
  second.name = "qkd2";
  second.node = "b";
  second.params = {{"kme-http-port", "9443"}};  // c serves qkd's HTTPS KME on 9443
  t.apps.push_back(second);
  EXPECT_THAT(CheckQkdApps(t).message(),
              HasSubstr("app 'qkd2' and app 'qkd' both serve a KME at node c on port 9443"));
}

// TOPO-44: the curl commands, exactly.
TEST(QkdPlanTest, KeyFetchCommandsNameCertificatesAddressesAndSaes) {
  Topology t = Chain();
  absl::StatusOr<LocalPlan> plan = PlanLocal(t, Settings(), Daemons());
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> lines;
  for (const KeyFetchCommand& c : plan->key_fetch) lines.push_back(c.node + "|" + c.command);
  const std::string tls = "--cacert /out/pki/ca.pem --cert /out/pki/sae-";
  EXPECT_THAT(
      lines,
      ElementsAre(
          "|# qkd app qkd: master SAE sae-a at a, slave SAE sae-c at c; put a key_ID from "
          "enc_keys into dec_keys",
          "a|curl " + tls +
              "sae-a.pem --key /out/pki/sae-sae-a.key https://127.0.1.1:9443/api/v1/keys/sae-c/"
              "status",
          "a|curl " + tls +
              "sae-a.pem --key /out/pki/sae-sae-a.key https://127.0.1.1:9443/api/v1/keys/sae-c/"
              "enc_keys",
          "c|curl " + tls +
              "sae-c.pem --key /out/pki/sae-sae-c.key 'https://127.0.1.3:9443/api/v1/keys/sae-a/"
              "dec_keys?key_ID=KEY_ID'",
          "a|curl -H 'X-SAE-ID: sae-a' http://127.0.1.1:8000/api/v1/keys/sae-c/enc_keys",
          "c|curl -H 'X-SAE-ID: sae-c' 'http://127.0.1.3:8000/api/v1/keys/sae-a/"
          "dec_keys?key_ID=KEY_ID'"));
  t.saes.pop_back();
  EXPECT_THAT(KeyFetchCommands(t, "/out", [](const std::string&) { return "x"; })[0].command,
              HasSubstr("no <sae> at c"));
  EXPECT_EQ(FormatKeyFetchCommands({{"a", "curl x"}, {"", "# y"}},
                                   [](const std::string& n) { return "mnexec -a 7 " + n + " "; }),
            "  mnexec -a 7 a curl x\n  # y\n");
}

// TOPO-41: 8200 random bytes, mode 0600, one file per app, never overwritten.
TEST(QkdPlanTest, PrepareWritesOnePrivatePskPerAppAndThePki) {
  const std::string out = absl::StrCat(::testing::TempDir(), "/qkd_setup_test_", getpid());
  fs::remove_all(out);
  fs::create_directories(out);
  Topology t = Chain();
  AppSpec second = t.apps[0];
  second.name = "qkd2";
  second.node = "b";
  second.params = {};
  t.apps.push_back(second);
  auto address_of = [](const std::string& node) {
    return node == "a" ? "127.0.1.1" : node == "b" ? "127.0.1.2" : "127.0.1.3";
  };
  const absl::Status prepared = PrepareQkd(t, out, address_of);
  const std::string psk1 = test_runs::ReadFile(QkdPskPath(out, "qkd"));
  const std::string psk2 = test_runs::ReadFile(QkdPskPath(out, "qkd2"));
  EXPECT_EQ(psk1.size(), 8200u);
  EXPECT_EQ(psk2.size(), 8200u);
  EXPECT_NE(psk1, psk2);
  // 8200 random bytes: P(all zero or repeated halves) is negligible.
  EXPECT_NE(psk1.substr(0, 4100), psk1.substr(4100));
  struct stat st {};
  ASSERT_EQ(stat(QkdPskPath(out, "qkd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
#ifdef QNET_HAVE_KME
  ASSERT_TRUE(prepared.ok()) << prepared;
  for (const char* file : {"ca.pem", "kme-a.pem", "kme-a.key", "kme-b.pem", "kme-c.pem",
                           "sae-sae-a.pem", "sae-sae-a.key", "sae-sae-c.pem"}) {
    EXPECT_TRUE(fs::exists(absl::StrCat(out, "/pki/", file))) << file;
  }
#else
  EXPECT_TRUE(absl::IsUnimplemented(prepared)) << prepared;
#endif
  // A second run into the same folder does not overwrite a PSK.
  EXPECT_FALSE(PrepareQkd(t, out, address_of).ok());
  EXPECT_EQ(test_runs::ReadFile(QkdPskPath(out, "qkd")), psk1);
  fs::remove_all(out);
}

// TOPO-43, TOPO-44 in Mininet: the host's address on its first link.
TEST(QkdPlanTest, MininetEndsUseTheirHostAddressAndThePlanCarriesFetchAndServe) {
  absl::StatusOr<std::string> json =
      MininetPlanJson(Chain(), Settings(), Daemons(), "qabc", absl::Seconds(40), true);
  ASSERT_TRUE(json.ok()) << json.status();
  google::protobuf::Struct plan;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &plan).ok());
  const auto& f = plan.fields();
  EXPECT_TRUE(f.at("serve_keys").bool_value());
  const auto& apps = f.at("apps").list_value().values();
  ASSERT_EQ(apps.size(), 2);
  std::vector<std::string> bob_argv, alice_argv;
  for (const auto& v : apps[0].struct_value().fields().at("argv").list_value().values())
    bob_argv.push_back(v.string_value());
  for (const auto& v : apps[1].struct_value().fields().at("argv").list_value().values())
    alice_argv.push_back(v.string_value());
  EXPECT_THAT(alice_argv, Contains("--kme_address=10.0.1.1"));  // a on link ab
  EXPECT_THAT(bob_argv, Contains("--kme_address=10.0.2.2"));    // c on link bc
  const auto& fetch = f.at("qkd_fetch").list_value().values();
  ASSERT_EQ(fetch.size(), 6);
  EXPECT_EQ(fetch[2].struct_value().fields().at("node").string_value(), "a");
  EXPECT_THAT(fetch[2].struct_value().fields().at("command").string_value(),
              HasSubstr("https://10.0.1.1:9443/api/v1/keys/sae-c/enc_keys"));
  EXPECT_EQ(MininetNodeAddress(Chain(), "b"), "10.0.1.2");
}

// TOPO-45.
TEST(QkdPlanTest, ServeKeysIsAFlagWithoutValueAndNotForTheSimBackend) {
  absl::StatusOr<RunOptions> o = ParseRunArgs({"t.xml", "--serve-keys", "--seed", "3"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->serve_keys);
  EXPECT_EQ(*o->seed, 3u);
  EXPECT_FALSE(ParseRunArgs({"t.xml"})->serve_keys);
  EXPECT_THAT(ParseRunArgs({"t.xml", "--serve-keys", "--backend=sim"}).status().message(),
              HasSubstr("--serve-keys needs --backend local or mininet"));
}

}  // namespace
}  // namespace qnet::launcher
