// The daemons as real processes on loopback: qworld and two qnodes run a small
// werner link; both ends must report the same pairs in the same order at the
// rate the heralding contract promises (p / cycle, specs/physical.md), and the
// processes must end by themselves. Every process of a test runs in one process
// group, which TearDown kills, so nothing outlives a failing test.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"
#include "stack/json_lines.h"
#include "stack/topology_loader.h"

namespace qnet {
namespace {

int FreeTcpPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class DaemonsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qnet-daemons-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    if (pgid_ > 0) {
      kill(-pgid_, SIGKILL);
      for (auto& [name, pid] : running_) waitpid(pid, nullptr, 0);
    }
    if (HasFailure()) {
      for (const char* log : {"qworld", "alice", "bob"}) {
        std::ifstream in(dir_ + "/" + log + ".log");
        std::stringstream text;
        text << in.rdbuf();
        std::fprintf(stderr, "---- %s.log\n%s", log, text.str().c_str());
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts `argv` in the test's process group, output to DIR/NAME.log.
  void Spawn(const std::string& name, std::vector<std::string> argv) {
    const std::string log = dir_ + "/" + name + ".log";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setpgid(0, pgid_);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (pgid_ == 0) pgid_ = pid;
    setpgid(pid, pgid_);
    running_[name] = pid;
  }

  // Waits for every process to exit; their exit codes land in exit_codes_.
  bool WaitAll(std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!running_.empty() && std::chrono::steady_clock::now() < end) {
      for (auto it = running_.begin(); it != running_.end();) {
        int status = 0;
        if (waitpid(it->second, &status, WNOHANG) == it->second) {
          exit_codes_[it->first] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          it = running_.erase(it);
        } else {
          ++it;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return running_.empty();
  }

  std::string WriteTopology(const std::string& body) {
    const std::string path = dir_ + "/topology.xml";
    std::ofstream(path) << body;
    return path;
  }

  std::string dir_;
  pid_t pgid_ = 0;
  std::map<std::string, pid_t> running_;
  std::map<std::string, int> exit_codes_;
};

std::vector<link::v1::Ok> OksOf(const std::vector<results::v1::TraceRecord>& trace) {
  std::vector<link::v1::Ok> oks;
  for (const auto& r : trace) {
    if (r.has_ok()) oks.push_back(r.ok());
  }
  return oks;
}

TEST_F(DaemonsTest, TwoNodesAgreeOnEveryPairAtTheModelRate) {
  // p = 0.1 per attempt, cycle = attempt time 100 us (the 1 km round trip to the
  // station is 4.8 us): p / cycle = 1000 pairs per emulated second. Each batch
  // starts when the later Generate reaches qworld, so the wall latency of a
  // herald -> Generate round (qworld's timer, the node, qworld again: 0.3 to
  // 0.5 ms of wall time on a loaded 2-core machine) is added per batch; time
  // dilation 16 makes it 2 to 3 % of a batch (1 ms emulated). The seed fixes
  // the sampled attempts, so the statistical error of the rate is fixed too
  // (200 batches of 10.0 attempts on average for seed 7).
  const std::string topology_path =
      WriteTopology(R"(<network name="pair" seed="7" duration-s="0.28" time-dilation="16">
  <hardware name="hw" memories="4"/>
  <node name="alice" hardware="hw"/>
  <node name="bob" hardware="hw"/>
  <link name="L" a="alice" b="bob" length-km="1" scheme="werner" attempt-us="100" p-success="0.1" fidelity="0.9"/>
  <request from="alice" to="bob" pairs="200" type="measure" basis="z"/>
</network>
)");
  absl::StatusOr<Topology> topology = LoadTopologyFile(topology_path);
  ASSERT_TRUE(topology.ok()) << topology.status();
  const LinkSpec& link = topology->links[0];
  const double model_rate = link.p_success / absl::ToDoubleSeconds(AttemptCycle(link));
  ASSERT_NEAR(model_rate, 1000.0, 1e-6);

  const std::string socket = dir_ + "/qworld.sock";
  const std::string out = dir_ + "/out";
  const std::string alice = absl::StrCat("127.0.0.1:", FreeTcpPort());
  const std::string bob = absl::StrCat("127.0.0.1:", FreeTcpPort());
  Spawn("qworld", {QNET_QWORLD_BIN, "--topology", topology_path, "--socket", socket, "--out", out});
  Spawn("alice", {QNET_QNODE_BIN, "--topology", topology_path, "--node", "alice", "--qworld",
                  "unix:" + socket, "--listen", alice, "--peer", "bob=" + bob, "--out", out});
  Spawn("bob", {QNET_QNODE_BIN, "--topology", topology_path, "--node", "bob", "--qworld",
                "unix:" + socket, "--listen", bob, "--out", out});
  ASSERT_TRUE(WaitAll(std::chrono::seconds(60))) << "the daemons did not end by themselves";
  EXPECT_EQ(exit_codes_["qworld"], 0);
  EXPECT_EQ(exit_codes_["alice"], 0);
  EXPECT_EQ(exit_codes_["bob"], 0);

  auto alice_trace = ReadTraceFile(out + "/nodes/alice.jsonl");
  auto bob_trace = ReadTraceFile(out + "/nodes/bob.jsonl");
  auto qworld_trace = ReadTraceFile(out + "/qworld.jsonl");
  ASSERT_TRUE(alice_trace.ok()) << alice_trace.status();
  ASSERT_TRUE(bob_trace.ok()) << bob_trace.status();
  ASSERT_TRUE(qworld_trace.ok()) << qworld_trace.status();
  const std::vector<link::v1::Ok> a = OksOf(*alice_trace);
  const std::vector<link::v1::Ok> b = OksOf(*bob_trace);
  ASSERT_EQ(a.size(), b.size()) << "OK count differs between the ends";
  ASSERT_GE(a.size(), 100u) << "too few pairs to measure a rate";
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].pair().origin(), b[i].pair().origin()) << i;
    EXPECT_EQ(a[i].pair().sequence(), b[i].pair().sequence()) << i;
    EXPECT_EQ(a[i].pair().sequence(), i + 1) << i;
    EXPECT_EQ(a[i].herald_seq(), b[i].herald_seq()) << i;
    EXPECT_EQ(a[i].bell_state(), b[i].bell_state()) << i;
    EXPECT_EQ(a[i].time_ns(), b[i].time_ns()) << i << ": LINK-07, both ends share the batch end time";
  }
  // Rate over consecutive pairs: n - 1 batches between the first and last OK.
  const double span_s = static_cast<double>(a.back().time_ns() - a.front().time_ns()) * 1e-9;
  const double rate = static_cast<double>(a.size() - 1) / span_s;
  std::fprintf(stderr, "pairs %zu, rate %.1f Hz (model %.1f Hz)\n", a.size(), rate, model_rate);
  EXPECT_NEAR(rate, model_rate, 0.15 * model_rate);
  // qworld recorded the truth of every success the nodes saw.
  size_t truths = 0;
  for (const auto& r : *qworld_trace) truths += r.has_herald_truth();
  EXPECT_GE(truths, a.size());
}

TEST_F(DaemonsTest, QworldExitsNonzeroOnSigtermAndItsNodeFollows) {
  const std::string topology_path = WriteTopology(R"(<network name="pair" seed="1" duration-s="30">
  <hardware name="hw" memories="2"/>
  <node name="alice" hardware="hw"/>
  <node name="bob" hardware="hw"/>
  <link name="L" a="alice" b="bob" length-km="1" scheme="werner" attempt-us="100" p-success="0.1" fidelity="0.9"/>
</network>
)");
  const std::string socket = dir_ + "/qworld.sock";
  const std::string out = dir_ + "/out";
  Spawn("qworld", {QNET_QWORLD_BIN, "--topology", topology_path, "--socket", socket, "--out", out});
  // Only bob: the run never starts, and qworld waits for alice.
  Spawn("bob",
        {QNET_QNODE_BIN, "--topology", topology_path, "--node", "bob", "--qworld", "unix:" + socket,
         "--listen", absl::StrCat("127.0.0.1:", FreeTcpPort()), "--out", out});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string log;
  while (log.find("node bob connected") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(dir_ + "/qworld.log");
    std::stringstream text;
    text << in.rdbuf();
    log = text.str();
  }
  ASSERT_NE(log.find("node bob connected"), std::string::npos);
  kill(running_["qworld"], SIGTERM);
  ASSERT_TRUE(WaitAll(std::chrono::seconds(20)));
  EXPECT_EQ(exit_codes_["qworld"], 128 + SIGTERM);
  EXPECT_EQ(exit_codes_["bob"], 0) << "qworld's Stop ends the node normally";
  EXPECT_TRUE(std::filesystem::exists(out + "/qworld.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(out + "/nodes/bob.jsonl"));
  EXPECT_FALSE(std::filesystem::exists(socket)) << "qworld removes its socket";
}

}  // namespace
}  // namespace qnet
