// The QKD suite's own parts against each other: the fake node's app API with
// a raw client on each socket, and the reference peer playing both roles
// through the fake network (good run: identical keys; each bug switch: the
// other side detects it). If these fail, the conformance verdicts of
// qkd_interop_test mean nothing.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "interop-tests/qkd/fake_node.h"
#include "interop-tests/qkd/qkd_peer.h"

namespace qnet::interop::qkd {
namespace {

using app::v1::AppEvent;
using app::v1::AppRequest;

std::string TempDir() {
  char tmpl[] = "/tmp/qnet-qkd-self-XXXXXX";
  return mkdtemp(tmpl);
}

int DialUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::optional<AppEvent> NextEvent(FakeNetwork& net, Channel& app) {
  std::optional<AppEvent> out;
  net.RunUntil(
      [&] {
        if (auto f = app.Next(Ms(1))) {
          AppEvent ev;
          if (ev.ParseFromString(f->payload)) out = ev;
          return true;
        }
        return false;
      },
      Ms(3000));
  return out;
}

v1::SessionParams Params(uint32_t block_bits = 4000) {
  v1::SessionParams p;
  p.set_block_bits(block_bits);
  p.set_z_probability(0.8);
  p.set_sample_fraction(0.1);
  p.set_qber_threshold(0.11);
  p.set_eps_sec(1e-10);
  p.set_eps_cor(1e-15);
  p.set_cascade_passes(4);
  p.set_key_size_bits(256);
  return p;
}

std::string Psk(uint64_t seed, size_t bytes = 8 + 2 * 4096) {
  std::mt19937_64 gen(seed);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xFF);
  return out;
}

TEST(QkdSuiteSelfTest, FakeNodeServesBindConnectPairsDataAndClose) {
  const std::string dir = TempDir();
  FakeNetworkOptions o;
  o.dir = dir;
  o.pairs = MakePairs(10, 0.5, 0.0, 0.0, 3);
  FakeNetwork net(o);
  std::string why;
  ASSERT_TRUE(net.Listen(&why)) << why;
  Channel app[2];
  for (int e = 0; e < 2; ++e) {
    const int fd = DialUnix(net.SocketPath(e));
    ASSERT_GE(fd, 0);
    app[e].Open(fd);
    ASSERT_TRUE(net.Accept(e, Ms(1000)));
  }
  AppRequest bind;
  bind.set_version(1);
  bind.set_request_id(1);
  bind.mutable_bind()->set_port(9);
  app[1].Send(bind);
  auto ev = NextEvent(net, app[1]);
  ASSERT_TRUE(ev && ev->has_reply());
  EXPECT_EQ(ev->reply().code(), 0);
  AppRequest connect;
  connect.set_version(1);
  connect.set_request_id(2);
  connect.mutable_connect()->set_socket(100);
  connect.mutable_connect()->set_remote_node("bob");
  connect.mutable_connect()->set_remote_port(9);
  connect.mutable_connect()->mutable_qos()->set_type(app::v1::PAIR_TYPE_MEASURE);
  app[0].Send(connect);
  ev = NextEvent(net, app[0]);
  ASSERT_TRUE(ev && ev->has_reply());
  const uint64_t conn = ev->reply().connection();
  ev = NextEvent(net, app[0]);
  ASSERT_TRUE(ev && ev->has_connected());
  EXPECT_EQ(ev->request_id(), 2u);
  EXPECT_TRUE(ev->connected().initiator());
  ev = NextEvent(net, app[1]);
  ASSERT_TRUE(ev && ev->has_connected());
  EXPECT_EQ(ev->request_id(), 0u);
  EXPECT_FALSE(ev->connected().initiator());
  // Ten pairs at each end, same ids, results equal where the bases are (QBER 0).
  for (int i = 0; i < 10; ++i) {
    auto pa = NextEvent(net, app[0]);
    auto pb = NextEvent(net, app[1]);
    ASSERT_TRUE(pa && pa->has_pair() && pb && pb->has_pair());
    EXPECT_EQ(pa->pair().pair_id(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(pb->pair().pair_id(), static_cast<uint64_t>(i + 1));
    if (pa->pair().basis() == pb->pair().basis()) {
      EXPECT_EQ(pa->pair().result(), pb->pair().result());
    }
  }
  AppRequest send;
  send.set_version(1);
  send.set_request_id(3);
  send.mutable_send()->set_connection(conn);
  send.mutable_send()->set_data("hello bob");
  app[0].Send(send);
  ev = NextEvent(net, app[0]);
  ASSERT_TRUE(ev && ev->has_reply());
  ev = NextEvent(net, app[1]);
  ASSERT_TRUE(ev && ev->has_data());
  EXPECT_EQ(ev->data().data(), "hello bob");
  AppRequest close_req;
  close_req.set_version(1);
  close_req.set_request_id(4);
  close_req.mutable_close()->set_connection(conn);
  app[0].Send(close_req);
  ev = NextEvent(net, app[0]);
  ASSERT_TRUE(ev && ev->has_reply());
  ev = NextEvent(net, app[1]);
  ASSERT_TRUE(ev && ev->has_closed());
  EXPECT_EQ(ev->closed().reason(), app::v1::CLOSE_REASON_PEER);
  EXPECT_TRUE(net.problems().empty());
  std::filesystem::remove_all(dir);
}

struct PeerRun {
  std::unique_ptr<QkdPeer> alice, bob;
};

PeerRun RunPeers(const std::vector<ScriptedPair>& pairs, Bug alice_bug, Bug bob_bug,
                 uint64_t bug_seq = 3, v1::SessionParams params = Params()) {
  const std::string dir = TempDir();
  FakeNetworkOptions o;
  o.dir = dir;
  o.pairs = pairs;
  FakeNetwork net(o);
  PeerRun run;
  const std::string psk = Psk(7);
  PeerConfig a{.alice = true, .params = params, .psk = psk, .seed = 11};
  a.bug = alice_bug;
  a.bug_seq = bug_seq;
  PeerConfig b{.alice = false, .params = params, .psk = psk, .seed = 12};
  b.bug = bob_bug;
  b.bug_seq = bug_seq;
  run.alice = std::make_unique<QkdPeer>(a, pairs);
  run.bob = std::make_unique<QkdPeer>(b, pairs);
  net.SetScripted(0, run.alice.get());
  net.SetScripted(1, run.bob.get());
  app::v1::Qos qos;
  qos.set_type(app::v1::PAIR_TYPE_MEASURE);
  net.ScriptedConnect(0, 9, qos);
  net.RunUntil([&] { return net.closed(); }, Ms(60000));
  std::filesystem::remove_all(dir);
  return run;
}

TEST(QkdSuiteSelfTest, ReferencePeersAgreeOnTheKey) {
  // 200000 pairs, unbiased bases: about 50000 Z-sifted bits, 2 blocks of
  // 20000 (the first block must give more key than the pads used so far);
  // QBER 2 % in both bases.
  const auto pairs = MakePairs(200000, 0.5, 0.02, 0.02, 5);
  v1::SessionParams params = Params(20000);
  params.set_z_probability(0.5);
  PeerRun run = RunPeers(pairs, Bug::kNone, Bug::kNone, 3, params);
  EXPECT_TRUE(run.alice->result().violations.empty()) << run.alice->result().violations[0];
  EXPECT_TRUE(run.bob->result().violations.empty()) << run.bob->result().violations[0];
  EXPECT_FALSE(run.alice->result().aborted) << run.alice->result().abort_reason;
  EXPECT_FALSE(run.bob->result().aborted) << run.bob->result().abort_reason;
  EXPECT_EQ(run.alice->result().blocks, 2u);
  EXPECT_EQ(run.bob->result().blocks, 2u);
  EXPECT_GT(run.alice->key_stream_bits(), 0u);
  EXPECT_EQ(run.alice->KeyStreamBytes(), run.bob->KeyStreamBytes());
}

TEST(QkdSuiteSelfTest, ReferencePeerDetectsEachBug) {
  const auto pairs = MakePairs(12000, 0.8, 0.02, 0.02, 6);
  struct Case {
    Bug alice_bug, bob_bug;
    bool bob_detects;  // else Alice does
    std::string reason;
  } cases[] = {
      {Bug::kBadTag, Bug::kNone, true, "authentication failed"},
      {Bug::kReplaySeq, Bug::kNone, true, "authentication failed"},
      {Bug::kSkipSeq, Bug::kNone, true, "authentication failed"},
      {Bug::kWrongVersion, Bug::kNone, true, "authentication failed"},
      {Bug::kGarbageMessage, Bug::kNone, true, "malformed message"},
      {Bug::kUnknownOneof, Bug::kNone, true, "malformed message"},
      {Bug::kHelloParamsDiffer, Bug::kNone, true, "session parameters differ"},
      {Bug::kWrongParityCount, Bug::kNone, true, "bad parity reply"},
      {Bug::kNone, Bug::kParityOutOfRange, false, "bad parity request"},
      {Bug::kNone, Bug::kBadTag, false, "authentication failed"},
  };
  for (const Case& c : cases) {
    PeerRun run = RunPeers(pairs, c.alice_bug, c.bob_bug);
    const QkdPeer& detector = c.bob_detects ? *run.bob : *run.alice;
    const QkdPeer& culprit = c.bob_detects ? *run.alice : *run.bob;
    EXPECT_TRUE(detector.result().aborted)
        << static_cast<int>(c.alice_bug) << "/" << static_cast<int>(c.bob_bug);
    EXPECT_NE(detector.result().abort_reason.find(c.reason), std::string::npos)
        << detector.result().abort_reason;
    EXPECT_EQ(detector.key_stream_bits(), 0u);
    // The culprit hears the Abort unless the channel could no longer be trusted.
    if (c.reason != "authentication failed") {
      EXPECT_TRUE(culprit.result().got_abort) << c.reason;
    }
  }
}

TEST(QkdSuiteSelfTest, ReferencePeersAbortAboveTheThreshold) {
  const auto pairs = MakePairs(12000, 0.8, 0.2, 0.2, 8);
  PeerRun run = RunPeers(pairs, Bug::kNone, Bug::kNone);
  EXPECT_TRUE(run.alice->result().aborted);
  EXPECT_TRUE(run.bob->result().aborted);
  EXPECT_NEAR(run.bob->result().qber_z, 0.2, 5 * std::sqrt(0.2 * 0.8 / 400));
  EXPECT_EQ(run.alice->key_stream_bits(), 0u);
}

}  // namespace
}  // namespace qnet::interop::qkd
