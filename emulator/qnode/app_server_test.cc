// SocketAppClient (apps/lib) <-> AppServer over a real Unix socket, with a
// scripted transport behind the server (specs/app-api.md APP-1, APP-4, APP-6,
// APP-10, APP-13, APP-C1..APP-C4).
#include "emulator/qnode/app_server.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vector>

#include "apps/lib/requests.h"
#include "apps/lib/socket_app_client.h"
#include "emulator/qnode/testing/fake_transport.h"
#include "gtest/gtest.h"
#include "stack/frame_codec.h"
#include "stack/testing/loop.h"

namespace qnet::qnode {
namespace {

using app::v1::AppEvent;

class AppServerTest : public qnet::testing::EventLoopTest {
 protected:
  AppServerTest() : EventLoopTest("qnet-app-server") {}
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EventLoopTest::SetUp());
    path_ = dir_ + "/app.sock";
    auto server = AppServer::Start(runtime_.get(), path_, &transport_, &tracer_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    EventLoopTest::TearDown();
  }

  struct App {
    std::unique_ptr<apps::SocketAppClient> client;
    std::vector<AppEvent> events;
    std::optional<absl::Status> disconnected;
    const AppEvent* Find(uint64_t request_id, AppEvent::BodyCase body) const {
      for (const auto& e : events) {
        if (e.request_id() == request_id && e.body_case() == body) return &e;
      }
      return nullptr;
    }
  };
  std::unique_ptr<App> NewApp(const std::string& path) {
    auto app = std::make_unique<App>();
    app->client = std::make_unique<apps::SocketAppClient>(runtime_.get(), path, absl::Seconds(2));
    App* raw = app.get();
    app->client->SetHandlers(
        {.on_event = [raw](const AppEvent& e) { raw->events.push_back(e); },
         .on_disconnected = [raw](absl::Status why) { raw->disconnected = why; }});
    return app;
  }
  // Sends and waits for the reply.
  app::v1::Reply Call(App* app, app::v1::AppRequest request) {
    const uint64_t id = app->client->Send(std::move(request));
    const bool got = RunUntil([&] { return app->Find(id, AppEvent::kReply) != nullptr; });
    EXPECT_TRUE(got) << "no reply to request " << id;
    return got ? app->Find(id, AppEvent::kReply)->reply() : app::v1::Reply();
  }

  testing::FakeTransport transport_;
  NullTracer tracer_;
  std::string path_;
  std::unique_ptr<AppServer> server_;
};

// APP-1, APP-4, APP-14, APP-16, APP-C1, APP-C3: requests and events round-trip.
TEST_F(AppServerTest, APP_1_RequestsAndEventsRoundTripOverTheSocket) {
  auto app = NewApp(path_);
  const app::v1::Reply bind = Call(app.get(), apps::BindRequest(4000));
  ASSERT_EQ(bind.code(), 0) << bind.message();
  EXPECT_EQ(transport_.sockets.at(bind.socket()).port, 4000u);

  app::v1::Qos qos;
  qos.set_min_fidelity(0.8);
  qos.set_window(3);
  const uint64_t connect_id = app->client->Send(apps::ConnectRequest(bind.socket(), "b", 9, qos));
  ASSERT_TRUE(RunUntil([&] { return app->Find(connect_id, AppEvent::kReply) != nullptr; }));
  const uint64_t connection = app->Find(connect_id, AppEvent::kReply)->reply().connection();
  ASSERT_EQ(transport_.connects.size(), 1u);
  EXPECT_EQ(transport_.connects[0].qos.window, 3u);

  transport::ConnectionInfo info;
  info.connection = connection;
  info.socket = bind.socket();
  info.peer_node = "b";
  info.peer_port = 9;
  info.initiator = true;
  transport_.sockets.at(bind.socket()).listener->OnConnected(info);
  transport::Pair pair;
  pair.connection = connection;
  pair.pair_id = 1;
  pair.estimated_fidelity = 0.91;
  transport_.sockets.at(bind.socket()).listener->OnPair(pair);
  ASSERT_TRUE(RunUntil([&] { return app->Find(0, AppEvent::kPair) != nullptr; }));
  EXPECT_NE(app->Find(connect_id, AppEvent::kConnected), nullptr);  // echoes the Connect
  EXPECT_DOUBLE_EQ(app->Find(0, AppEvent::kPair)->pair().estimated_fidelity(), 0.91);

  transport_.measure_inline_result = 1;
  const uint64_t m =
      app->client->Send(apps::MeasureRequest(apps::Qubit(connection, 1), physical::v1::BASIS_Z));
  ASSERT_TRUE(RunUntil([&] { return app->Find(m, AppEvent::kMeasured) != nullptr; }));
  EXPECT_EQ(app->Find(m, AppEvent::kMeasured)->measured().result(), 1u);
  // The Reply came first (APP-4).
  size_t reply_at = 0, measured_at = 0;
  for (size_t i = 0; i < app->events.size(); ++i) {
    if (app->events[i].request_id() != m) continue;
    (app->events[i].has_reply() ? reply_at : measured_at) = i;
  }
  EXPECT_LT(reply_at, measured_at);
  EXPECT_EQ(app->events.back().version(), 1u);
  EXPECT_FALSE(app->disconnected.has_value());
}

// APP-10, APP-13: sessions are isolated; a disconnect releases and unbinds.
TEST_F(AppServerTest, APP_13_DisconnectReleasesQubitsAndUnbinds) {
  auto first = NewApp(path_);
  auto second = NewApp(path_);
  const app::v1::Reply bind = Call(first.get(), apps::BindRequest(4000));
  ASSERT_EQ(bind.code(), 0);
  const app::v1::Reply q = Call(first.get(), apps::AllocateRequest(bind.socket()));
  ASSERT_EQ(q.code(), 0);
  // The second app cannot use the first one's socket or qubit.
  EXPECT_EQ(Call(second.get(), apps::AllocateRequest(bind.socket())).code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(Call(second.get(), apps::ReleaseRequest(q.qubit())).code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_TRUE(transport_.released.empty());
  EXPECT_EQ(server_->sessions(), 2u);

  first->client.reset();  // the app goes away
  ASSERT_TRUE(RunUntil([&] { return !transport_.unbound.empty(); }));
  EXPECT_EQ(transport_.unbound, std::vector<uint64_t>{bind.socket()});
  ASSERT_EQ(transport_.released.size(), 1u);
  EXPECT_EQ(transport_.released[0].second, q.qubit().id());
  EXPECT_EQ(server_->sessions(), 1u);
  EXPECT_EQ(server_->totals().rejected, 2u);
}

// APP-5, APP-6: garbage and oversized frames get error replies; the stream goes on.
TEST_F(AppServerTest, APP_6_OversizedAndGarbageFramesGetErrorReplies) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto stream = FramedStream::Adopt(runtime_.get(), fd, "test");
  std::vector<AppEvent> events;
  stream->Start({.on_frame = [&](std::string payload) {
    AppEvent e;
    ASSERT_TRUE(e.ParseFromString(payload));
    events.push_back(e);
  }});
  // A frame declaring 2 MiB (over the 1 MiB limit), then a garbage frame, then a valid request.
  std::string big;
  big.push_back(static_cast<char>(0x80));
  big.push_back(static_cast<char>(0x80));
  big.push_back(static_cast<char>(0x80));
  big.push_back(static_cast<char>(0x01));  // varint 2^21
  big.append(1 << 21, 'x');
  ASSERT_TRUE(stream->SendBytes(big).ok());
  ASSERT_TRUE(stream->SendBytes(std::string("\x03\xff\xff\xff", 4)).ok());
  app::v1::AppRequest bind = apps::BindRequest(4001);
  bind.set_version(1);
  bind.set_request_id(7);
  ASSERT_TRUE(stream->Send(bind).ok());
  ASSERT_TRUE(RunUntil([&] { return events.size() >= 3; }));
  EXPECT_EQ(events[0].reply().code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(events[1].reply().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(events[2].request_id(), 7u);
  EXPECT_EQ(events[2].reply().code(), 0);
  stream->Close();
}

// APP-C4: no server -> on_disconnected once, with a clear reason.
TEST_F(AppServerTest, APP_C4_MissingSocketReportsDisconnected) {
  auto app = std::make_unique<App>();
  app->client = std::make_unique<apps::SocketAppClient>(runtime_.get(), dir_ + "/nobody.sock",
                                                        absl::Milliseconds(200));
  int calls = 0;
  app->client->SetHandlers({.on_disconnected = [&](absl::Status why) {
    ++calls;
    app->disconnected = why;
  }});
  app->client->Send(apps::BindRequest(1));
  ASSERT_TRUE(RunUntil([&] { return app->disconnected.has_value(); }));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(app->disconnected->code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(transport_.sockets.empty());
}

}  // namespace
}  // namespace qnet::qnode
