// specs/app-api.md (APP-*), checked as an application sees it: the test
// connects to the node's app socket (--app_socket), speaks AppRequest /
// AppEvent frames (varint length prefix, APP-1) and, where the transport talks
// to another node, plays that node ("peer") on the network (transport
// messages in NetDatagrams, specs/transport.md).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"
#include "interop-tests/net_util.h"
#include "qnet/app/v1/app.pb.h"
#include "qnet/transport/v1/transport.pb.h"

namespace qnet::interop {
namespace {

using app::v1::AppEvent;
using app::v1::AppRequest;

// google.rpc.Code / absl::StatusCode numbers (app.proto Reply.code).
constexpr int kOk = 0;
constexpr int kInvalidArgument = 3;
constexpr int kNotFound = 5;
constexpr int kFailedPrecondition = 9;

int DialUnix(const std::string& path, Ms timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    close(fd);
    std::this_thread::sleep_for(Ms(20));
  }
  return -1;
}

// One app session on the node's app socket.
class App {
 public:
  bool Open(const std::string& path) {
    const int fd = DialUnix(path, Ms(5000));
    if (fd < 0) return false;
    channel_.Open(fd);
    return true;
  }
  bool Send(const AppRequest& r) { return channel_.Send(r); }
  bool SendRaw(const std::string& bytes) { return channel_.SendBytes(bytes); }
  std::optional<AppEvent> Next(Ms timeout = kWait) {
    auto r = channel_.Next(timeout);
    if (!r) return std::nullopt;
    AppEvent e;
    if (!e.ParseFromString(r->payload)) e.Clear();
    return e;
  }
  // The Reply to request `id`, skipping (and keeping) other events.
  std::optional<AppEvent> ReplyTo(uint64_t id, Ms timeout = kWait) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto e = Next(left);
      if (!e) return std::nullopt;
      if (e->has_reply() && e->request_id() == id) return e;
      others.push_back(*e);
    }
  }
  std::optional<AppEvent> Await(AppEvent::BodyCase body, Ms timeout = kWait) {
    for (auto it = others.begin(); it != others.end(); ++it) {
      if (it->body_case() == body) {
        AppEvent e = *it;
        others.erase(it);
        return e;
      }
    }
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto e = Next(left);
      if (!e) return std::nullopt;
      if (e->body_case() == body) return e;
      others.push_back(*e);
    }
  }
  bool Closed(Ms timeout) { return channel_.WaitClosed(timeout); }

  std::vector<AppEvent> others;

 private:
  Channel channel_;
};

AppRequest Req(uint64_t id) {
  AppRequest r;
  r.set_version(1);
  r.set_request_id(id);
  return r;
}

AppRequest BindReq(uint64_t id, uint32_t port) {
  AppRequest r = Req(id);
  r.mutable_bind()->set_port(port);
  return r;
}

HarnessOptions WithApp() {
  HarnessOptions o;
  o.app_socket = true;
  return o;
}

#define QNET_OPEN_APP(h, app)                                                 \
  QNET_START(h);                                                              \
  App app;                                                                    \
  ASSERT_TRUE(app.Open((h).app_socket_path()))                                \
      << "cannot connect to the app socket " << (h).app_socket_path() << "\n" \
      << (h).NodeLog()

// APP-2 "A request whose `version` is not 1 MUST be answered with a Reply of
// code FAILED_PRECONDITION and have no other effect; every event the node sends
// MUST carry `version` 1." APP-3 "`request_id` MUST be non-zero
// (INVALID_ARGUMENT otherwise) [...]". APP-5 "A frame that does not parse as
// an `AppRequest`, or a request without a body, MUST be answered with an
// INVALID_ARGUMENT Reply (request_id 0 when the frame did not parse), counted
// as a drop [...] and otherwise ignored." APP-4 (exactly one Reply each),
// APP-18 (each refusal a traced drop). The session goes on afterwards.
TEST(App, APP_2_BadRequestsGetErrorRepliesAndTheSessionSurvives) {
  Harness h(WithApp());
  QNET_OPEN_APP(h, app);
  AppRequest v2 = BindReq(11, 9);
  v2.set_version(2);
  ASSERT_TRUE(app.Send(v2));
  auto r = app.ReplyTo(11);
  ASSERT_TRUE(r) << "no Reply to a version-2 request";
  EXPECT_EQ(r->reply().code(), kFailedPrecondition) << r->reply().message();
  EXPECT_EQ(r->version(), 1u);
  EXPECT_EQ(r->reply().socket(), 0u) << "a refused Bind names a socket";
  AppRequest v0 = BindReq(12, 9);
  v0.set_version(0);
  ASSERT_TRUE(app.Send(v0));
  r = app.ReplyTo(12);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kFailedPrecondition) << r->reply().message();
  ASSERT_TRUE(app.Send(BindReq(0, 9)));  // APP-3
  r = app.ReplyTo(0);
  ASSERT_TRUE(r) << "no Reply to request_id 0";
  EXPECT_EQ(r->reply().code(), kInvalidArgument) << r->reply().message();
  ASSERT_TRUE(app.Send(Req(13)));  // APP-5: no body
  r = app.ReplyTo(13);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kInvalidArgument) << r->reply().message();
  ASSERT_TRUE(app.SendRaw(EncodeVarint(3) + std::string("\xff\xff\xff", 3)));  // not a message
  r = app.ReplyTo(0);
  ASSERT_TRUE(r) << "no Reply to an undecodable frame";
  EXPECT_EQ(r->reply().code(), kInvalidArgument) << r->reply().message();
  EXPECT_EQ(r->version(), 1u);
  // The session goes on: a good Bind, which the refused ones did not do (port 9 free).
  ASSERT_TRUE(app.Send(BindReq(14, 9)));
  r = app.ReplyTo(14);
  ASSERT_TRUE(r) << "session did not survive the bad requests";
  EXPECT_EQ(r->reply().code(), kOk) << r->reply().message();
  EXPECT_NE(r->reply().socket(), 0u);
  EXPECT_TRUE(app.others.empty()) << "events besides the Replies: " << app.others[0].DebugString();
  const uint64_t end = h.NowNs();  // drops traced while the run ends do not count
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(CountDrops(Until(trace, end)), 5) << "APP-18: one drop per refused request\n"
                                              << Dump(trace);
}

// APP-7 "`Bind{port}` with port 0 MUST be refused with INVALID_ARGUMENT; on
// success the Reply carries the new `socket`." APP-10 "A session MUST act only
// on sockets it bound; any other socket id MUST be answered with NOT_FOUND,
// whether another session owns it or not." APP-11 (connections), APP-12
// (qubits): NOT_FOUND. APP-17: a taken port is the transport's error. Unbind
// frees the port for another session.
TEST(App, APP_10_BindUnbindAndIdsOfNobody) {
  Harness h(WithApp());
  QNET_OPEN_APP(h, app);
  App other;
  ASSERT_TRUE(other.Open(h.app_socket_path()));
  ASSERT_TRUE(app.Send(BindReq(1, 9)));
  auto r = app.ReplyTo(1);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->reply().code(), kOk) << r->reply().message();
  const uint64_t socket = r->reply().socket();
  ASSERT_NE(socket, 0u);
  ASSERT_TRUE(app.Send(BindReq(2, 9)));
  r = app.ReplyTo(2);
  ASSERT_TRUE(r);
  EXPECT_NE(r->reply().code(), kOk) << "port 9 bound twice";
  ASSERT_TRUE(app.Send(BindReq(3, 0)));  // APP-7
  r = app.ReplyTo(3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kInvalidArgument) << "port 0: " << r->reply().message();
  AppRequest unbind = Req(4);
  unbind.mutable_unbind()->set_socket(socket);
  ASSERT_TRUE(other.Send(unbind));  // not that session's socket
  r = other.ReplyTo(4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kNotFound);
  AppRequest close = Req(5);
  close.mutable_close()->set_connection(77);  // APP-11
  ASSERT_TRUE(app.Send(close));
  r = app.ReplyTo(5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kNotFound);
  AppRequest release = Req(6);
  release.mutable_release()->mutable_qubit()->set_connection(1);  // APP-12
  release.mutable_release()->mutable_qubit()->set_id(1);
  ASSERT_TRUE(app.Send(release));
  r = app.ReplyTo(6);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kNotFound);
  AppRequest alloc = Req(7);
  alloc.mutable_allocate_qubit()->set_socket(socket + 1000);  // APP-10
  ASSERT_TRUE(app.Send(alloc));
  r = app.ReplyTo(7);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kNotFound);
  // Still bound: Unbind by its owner, then the port binds again.
  unbind.set_request_id(8);
  ASSERT_TRUE(app.Send(unbind));
  r = app.ReplyTo(8);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kOk) << r->reply().message();
  ASSERT_TRUE(other.Send(BindReq(9, 9)));
  r = other.ReplyTo(9);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply().code(), kOk) << "port 9 not free after Unbind: " << r->reply().message();
  QNET_STOP_AND_TRACE(h, trace);
}

// APP-13 "When the session ends (the app closes the socket [...]) the node
// MUST release every qubit the session still owns and unbind its sockets":
// a second session binds the port of a session that hung up.
TEST(App, APP_13_SessionEndUnbindsItsSockets) {
  Harness h(WithApp());
  QNET_START(h);
  {
    App first;
    ASSERT_TRUE(first.Open(h.app_socket_path())) << h.NodeLog();
    ASSERT_TRUE(first.Send(BindReq(1, 9)));
    auto r = first.ReplyTo(1);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->reply().code(), kOk);
  }  // hangs up
  App second;
  ASSERT_TRUE(second.Open(h.app_socket_path()));
  bool bound = false;
  for (uint64_t id = 1; id <= 20 && !bound; ++id) {  // the hang-up is noticed asynchronously
    ASSERT_TRUE(second.Send(BindReq(id, 9)));
    auto r = second.ReplyTo(id);
    ASSERT_TRUE(r);
    bound = r->reply().code() == kOk;
    if (!bound) std::this_thread::sleep_for(Ms(100));
  }
  EXPECT_TRUE(bound) << "port 9 stays bound after its session ended";
  QNET_STOP_AND_TRACE(h, trace);
}

// APP-14 "[...] A Connect whose connection never comes up ends with `Closed`
// carrying the Connect's request_id and the reason (REFUSED, UNREACHABLE,
// ...)." The remote node ("peer", played by the harness) has no socket at the
// port and answers the transport Connect with Refuse (specs/transport.md).
TEST(App, APP_14_ConnectToAPortWithoutListenerIsClosedRefused) {
  Harness h(WithApp());
  QNET_OPEN_APP(h, app);
  h.StartHellos(0);
  ASSERT_TRUE(h.SendNet(Advert("peer", 1, {{"L", "iut"}}), 0));
  Watch(h, Ms(200), 1);
  ASSERT_TRUE(app.Send(BindReq(1, 9)));
  auto r = app.ReplyTo(1);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->reply().code(), kOk);
  AppRequest connect = Req(2);
  connect.mutable_connect()->set_socket(r->reply().socket());
  connect.mutable_connect()->set_remote_node("peer");
  connect.mutable_connect()->set_remote_port(7);
  connect.mutable_connect()->mutable_qos()->set_type(app::v1::PAIR_TYPE_KEEP);
  ASSERT_TRUE(app.Send(connect));
  r = app.ReplyTo(2);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->reply().code(), kOk) << r->reply().message();
  const uint64_t connection = r->reply().connection();
  EXPECT_NE(connection, 0u);
  // The node's Connect reaches peer; peer has nothing at port 7.
  auto c = AwaitPeer(h, 0, 0, [](const wire::v1::Frame& f) {
    transport::v1::TransportMessage m;
    return f.has_network() && f.network().has_datagram() &&
           m.ParseFromString(f.network().datagram().payload()) && m.has_connect();
  });
  ASSERT_TRUE(c) << "no transport Connect datagram to peer\n" << h.NodeLog();
  transport::v1::TransportMessage m;
  ASSERT_TRUE(m.ParseFromString(c->msg.network().datagram().payload()));
  EXPECT_EQ(m.connect().dst_port(), 7u);
  transport::v1::TransportMessage refuse;
  refuse.set_dst_connection(m.src_connection());
  refuse.mutable_refuse()->set_reason("no socket at port 7");
  ASSERT_TRUE(h.SendNet(Datagram("peer", "iut", 64, refuse.SerializeAsString()), 0));
  auto closed = app.Await(AppEvent::kClosed);
  ASSERT_TRUE(closed) << "no Closed event after the peer refused";
  EXPECT_EQ(closed->closed().connection(), connection);
  EXPECT_EQ(closed->request_id(), 2u) << "Closed does not echo the Connect's request_id";
  EXPECT_EQ(closed->closed().reason(), app::v1::CLOSE_REASON_REFUSED);
  QNET_STOP_AND_TRACE(h, trace);
}

}  // namespace
}  // namespace qnet::interop
