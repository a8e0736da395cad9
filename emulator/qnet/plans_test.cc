// The local and mininet plans: addresses, ports, subnets, interface names and
// the exact daemon command lines (launcher brief; qworld/qnode CLIs).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "emulator/qnet/local_backend.h"
#include "emulator/qnet/mininet_backend.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// a - b - c, links ab (a dials b) and cb (c dials b).
Topology Line() {
  Topology t;
  t.name = "line";
  t.duration_s = 2;
  t.nodes = {NodeSpec{"a", "hw", 3}, NodeSpec{"b", "hw", 4}, NodeSpec{"c", "hw", 5}};
  LinkSpec ab, cb;
  ab.name = "ab", ab.a = "a", ab.b = "b";
  cb.name = "cb", cb.a = "c", cb.b = "b";
  t.links = {ab, cb};
  return t;
}

DaemonSettings Settings() {
  DaemonSettings s;
  s.topology_path = "/out/topology.xml";
  s.out_dir = "/out";
  s.seed = 42;
  s.duration_s = 1.5;
  return s;
}

std::string ValueOf(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "";
}

std::vector<std::string> ValuesOf(const std::vector<std::string>& argv, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) out.push_back(argv[i + 1]);
  }
  return out;
}

TEST(LocalPlanTest, LoopbackAddressesAreOnePerNode) {
  EXPECT_EQ(LoopbackAddress(0), "127.0.1.1");
  EXPECT_EQ(LoopbackAddress(253), "127.0.1.254");
  EXPECT_EQ(LoopbackAddress(254), "127.0.2.1");
}

TEST(LocalPlanTest, EveryNodeGetsItsAddressPortAndPeersAndTheDaemonFlags) {
  const DaemonPaths daemons{"/bin/qworld", "/bin/qnode"};
  absl::StatusOr<LocalPlan> plan = PlanLocal(Line(), Settings(), daemons);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->socket_path, "/out/qworld.sock");
  EXPECT_EQ(plan->qworld_log_path, "/out/logs/qworld.log");
  EXPECT_THAT(plan->qworld_argv,
              ElementsAre("/bin/qworld", "--topology", "/out/topology.xml", "--socket",
                          "/out/qworld.sock", "--out", "/out", "--trace_format", "binary",
                          "--seed", "42", "--duration", "1.5"));
  ASSERT_EQ(plan->nodes.size(), 3u);
  std::set<std::string> listens;
  for (size_t i = 0; i < 3; ++i) {
    const LocalNode& n = plan->nodes[i];
    EXPECT_EQ(n.address, LoopbackAddress(i));
    EXPECT_GT(n.port, 0);
    EXPECT_EQ(n.log_path, absl::StrCat("/out/logs/", n.name, ".log"));
    EXPECT_EQ(n.argv[0], "/bin/qnode");
    EXPECT_EQ(ValueOf(n.argv, "--node"), n.name);
    EXPECT_EQ(ValueOf(n.argv, "--qworld"), "unix:/out/qworld.sock");
    EXPECT_EQ(ValueOf(n.argv, "--topology"), "/out/topology.xml");
    EXPECT_EQ(ValueOf(n.argv, "--out"), "/out");
    EXPECT_EQ(ValueOf(n.argv, "--trace_format"), "binary");  // RES-1a
    EXPECT_EQ(ValueOf(n.argv, "--seed"), "42");
    EXPECT_EQ(ValueOf(n.argv, "--duration"), "1.5");
    listens.insert(ValueOf(n.argv, "--listen"));
    EXPECT_EQ(ValueOf(n.argv, "--listen"), absl::StrCat(n.address, ":", n.port));
  }
  EXPECT_EQ(listens.size(), 3u);
  const auto& a = plan->nodes[0];
  const auto& b = plan->nodes[1];
  const auto& c = plan->nodes[2];
  EXPECT_THAT(ValuesOf(a.argv, "--peer"), ElementsAre(absl::StrCat("b=", b.address, ":", b.port)));
  EXPECT_THAT(ValuesOf(b.argv, "--peer"), ElementsAre(absl::StrCat("a=", a.address, ":", a.port),
                                                      absl::StrCat("c=", c.address, ":", c.port)));
  EXPECT_THAT(ValuesOf(c.argv, "--peer"), ElementsAre(absl::StrCat("b=", b.address, ":", b.port)));
}

TEST(LocalPlanTest, SeedAndDurationArePassedOnlyWhenOverridden) {
  DaemonSettings s = Settings();
  s.seed.reset();
  s.duration_s.reset();
  absl::StatusOr<LocalPlan> plan = PlanLocal(Line(), s, DaemonPaths{"/q", "/n"});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(ValueOf(plan->qworld_argv, "--seed"), "");
  EXPECT_EQ(ValueOf(plan->nodes[0].argv, "--duration"), "");
}

TEST(LocalPlanTest, ALongOutDirGetsASocketUnderTmp) {
  const std::string out(150, 'x');
  EXPECT_EQ(QworldSocketPath("/short"), "/short/qworld.sock");
  EXPECT_TRUE(absl::StartsWith(QworldSocketPath("/" + out), "/tmp/qnet-"));
}

TEST(LocalPlanTest, NodeNamesThatCannotBeFilesAreRejectedWithTheLine) {
  Topology t = Line();
  t.source = "x.xml";
  t.nodes[1].name = "qworld";
  absl::Status s = CheckNodeNamesUsable(t);
  EXPECT_THAT(s.message(), HasSubstr("x.xml:4: node name 'qworld'"));
  t.nodes[1].name = "../b";
  EXPECT_FALSE(CheckNodeNamesUsable(t).ok());
  t.nodes[1].name = "b-2_x.y";
  EXPECT_TRUE(CheckNodeNamesUsable(t).ok());
}

TEST(LocalPlanTest, FreeTcpPortGivesABindablePort) {
  absl::StatusOr<int> port = FreeTcpPort("127.0.1.7");
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  EXPECT_FALSE(FreeTcpPort("not-an-address").ok());
}

TEST(LocalPlanTest, DaemonsAreFoundThroughTheEnvironmentOrReportedMissing) {
  setenv("QNET_QWORLD", "/bin/true", 1);
  setenv("QNET_QNODE", "/bin/false", 1);
  absl::StatusOr<DaemonPaths> found = FindDaemons("/nonexistent");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->qworld, "/bin/true");
  EXPECT_EQ(found->qnode, "/bin/false");
  setenv("QNET_QNODE", "/nonexistent/qnode", 1);
  absl::StatusOr<DaemonPaths> missing = FindDaemons("/nonexistent");
  EXPECT_THAT(missing.status().message(), HasSubstr("QNET_QNODE"));
  unsetenv("QNET_QWORLD");
  unsetenv("QNET_QNODE");
}

google::protobuf::Struct ParsePlan(const std::string& json) {
  google::protobuf::Struct plan;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &plan).ok()) << json;
  return plan;
}

std::string Field(const google::protobuf::Value& v, const std::string& key) {
  return v.struct_value().fields().at(key).string_value();
}

std::vector<std::string> Argv(const google::protobuf::Value& v) {
  std::vector<std::string> out;
  for (const auto& item : v.struct_value().fields().at("argv").list_value().values()) {
    out.push_back(item.string_value());
  }
  return out;
}

TEST(MininetPlanTest, LinksGetSlash30SubnetsAndPeersDialAcrossThem) {
  absl::StatusOr<std::string> json = MininetPlanJson(
      Line(), Settings(), DaemonPaths{"/bin/qworld", "/bin/qnode"}, "qabc", absl::Seconds(40));
  ASSERT_TRUE(json.ok()) << json.status();
  google::protobuf::Struct plan = ParsePlan(*json);
  const auto& f = plan.fields();
  EXPECT_EQ(f.at("tag").string_value(), "qabc");
  EXPECT_EQ(f.at("wall_timeout_s").number_value(), 40);
  // TOPO-47: 20 s + 0.5 s per node + 0.25 s per link, and where the driver
  // says what it was waiting for when that is not enough.
  EXPECT_EQ(f.at("startup_timeout_s").number_value(), 20 + 3 * 0.5 + 2 * 0.25);
  EXPECT_EQ(f.at("startup_failure_file").string_value(), "/out/logs/mininet-startup.txt");
  EXPECT_EQ(f.at("socket_path").string_value(), "/out/qworld.sock");
  EXPECT_THAT(Argv(f.at("qworld")),
              ElementsAre("/bin/qworld", "--topology", "/out/topology.xml", "--socket",
                          "/out/qworld.sock", "--out", "/out", "--trace_format", "binary",
                          "--seed", "42", "--duration", "1.5"));

  const auto& links = f.at("links").list_value().values();
  ASSERT_EQ(links.size(), 2);
  EXPECT_EQ(Field(links[0], "subnet"), "10.0.1.0/30");
  EXPECT_EQ(Field(links[0], "a_ip"), "10.0.1.1");
  EXPECT_EQ(Field(links[0], "b_ip"), "10.0.1.2");
  EXPECT_EQ(Field(links[1], "subnet"), "10.0.2.0/30");
  // Hosts qabcn1..3; interfaces numbered per host, all within Linux's 15 characters.
  EXPECT_EQ(Field(links[0], "a_intf"), "qabcn1-1");
  EXPECT_EQ(Field(links[0], "b_intf"), "qabcn2-1");
  EXPECT_EQ(Field(links[1], "a_intf"), "qabcn3-1");
  EXPECT_EQ(Field(links[1], "b_intf"), "qabcn2-2");

  const auto& nodes = f.at("nodes").list_value().values();
  ASSERT_EQ(nodes.size(), 3);
  EXPECT_EQ(Field(nodes[0], "host"), "qabcn1");
  EXPECT_EQ(Field(nodes[1], "log"), "/out/logs/b.log");
  const std::vector<std::string> a = Argv(nodes[0]), b = Argv(nodes[1]), c = Argv(nodes[2]);
  EXPECT_EQ(ValueOf(a, "--listen"), "0.0.0.0:7000");
  EXPECT_EQ(ValueOf(a, "--qworld"), "unix:/out/qworld.sock");
  EXPECT_THAT(ValuesOf(a, "--peer"), ElementsAre("b=10.0.1.2:7000"));
  EXPECT_THAT(ValuesOf(b, "--peer"), ElementsAre("a=10.0.1.1:7000", "c=10.0.2.1:7000"));
  EXPECT_THAT(ValuesOf(c, "--peer"), ElementsAre("b=10.0.2.2:7000"));
}

TEST(MininetPlanTest, TagIsShortAndStartsWithQ) {
  const std::string tag = MininetRunTag();
  EXPECT_EQ(tag[0], 'q');
  EXPECT_LE(tag.size(), 6u);
  // Every tag has the same length (no tag + "n" is a prefix of another run's
  // names), and the probe's differs from the run's of the same process.
  const std::string probe = MininetProbeTag();
  EXPECT_EQ(probe[0], 'p');
  EXPECT_EQ(probe.size(), tag.size());
  EXPECT_EQ(probe.substr(1), tag.substr(1));
  EXPECT_EQ(tag.size(), 6u);
}

// TOPO-47: the driver's exit status 3 becomes an error naming the stage it
// was waiting for, with what to do instead.
TEST(MininetPlanTest, StartupFailureNamesWhatTheDriverWaitedFor) {
  const std::string out = absl::StrCat(::testing::TempDir(), "/qnet_plans_startup_", getpid());
  std::filesystem::create_directories(out + "/logs");
  std::ofstream(out + "/logs/mininet-startup.txt")
      << "Mininet could not start the network within 21 s: it was waiting for the shell of host "
         "q00001n1 (mnexec in a new network namespace); this machine cannot run Mininet hosts "
         "(use --backend local)\n";
  absl::Status s = MininetStartupError(out);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("within 21 s: it was waiting for the shell of host q00001n1"));
  EXPECT_THAT(s.message(), HasSubstr("use --backend local"));
  EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr("(use --backend local)")));

  std::filesystem::remove(out + "/logs/mininet-startup.txt");
  s = MininetStartupError(out);
  EXPECT_THAT(s.message(), HasSubstr("exited with status 3"));
  EXPECT_THAT(s.message(), HasSubstr("use --backend local"));
  std::filesystem::remove_all(out);
}

TEST(MininetPlanTest, WithoutRootThePrerequisiteCheckSaysWhatToDoInstead) {
  if (geteuid() != 0) {
    absl::Status s = CheckMininetPrerequisites();
    EXPECT_THAT(s.message(), HasSubstr("needs root"));
    EXPECT_THAT(s.message(), HasSubstr("--backend local"));
    return;
  }
  // As root: check from a child that gives up root (user nobody).
  const pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    absl::Status s = CheckMininetPrerequisites();
    const bool good = !s.ok() && absl::StrContains(s.message(), "needs root") &&
                      absl::StrContains(s.message(), "--backend local");
    _exit(good ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace qnet::launcher
