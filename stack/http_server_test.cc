// HttpServer over plain HTTP on loopback: a blocking client in a thread, the
// server on the test's EventRuntime. HTTPS with client certificates is tested
// with the run's PKI in apps/qkd/kme/kme_https_test.cc.
#include "stack/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "stack/testing/loop.h"

namespace qnet {
namespace {

// Sends `raw` to 127.0.0.1:port and reads until the server closes.
std::string Exchange(uint16_t port, const std::string& raw) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    size_t sent = 0;
    while (sent < raw.size()) {
      ssize_t n = send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

struct Reply {
  int status = 0;
  std::string headers, body;
};
Reply Parse(const std::string& raw) {
  Reply r;
  if (raw.size() > 12 && raw.compare(0, 5, "HTTP/") == 0) r.status = std::stoi(raw.substr(9, 3));
  size_t end = raw.find("\r\n\r\n");
  if (end != std::string::npos) {
    r.headers = raw.substr(0, end);
    r.body = raw.substr(end + 4);
  }
  return r;
}

class HttpServerTest : public testing::EventLoopTest {
 protected:
  HttpServerTest() : EventLoopTest("qnet-http") {}

  // Runs the loop while a client thread exchanges `raw` with the server.
  Reply Call(const std::string& raw) {
    std::atomic<bool> done{false};
    std::string response;
    std::thread client([&] {
      response = Exchange(server_->port(), raw);
      done = true;
    });
    bool finished = RunUntil([&] { return done.load(); });
    client.join();
    EXPECT_TRUE(finished);
    return Parse(response);
  }

  void StartServer(size_t max_body = 1 << 20) {
    HttpServerOptions options;
    options.max_body_bytes = max_body;
    auto server = HttpServer::Create(runtime_.get(), options, [this](const HttpRequest& r) {
      seen_.push_back(r);
      HttpResponse response;
      response.status = r.method == "POST" ? 201 : 200;
      response.body = absl::StrCat("{\"echo\":\"", r.body, "\"}");
      return response;
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
  }

  std::unique_ptr<HttpServer> server_;
  std::vector<HttpRequest> seen_;
};

// specs/qkd.md KME-31 (Content-Type).
TEST_F(HttpServerTest, GetReachesTheHandlerWithPathQueryAndHeaders) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Reply r = Call(
      "GET /api/v1/keys/SAE_B/enc_keys?number=2&size=256 HTTP/1.1\r\nHost: x\r\n"
      "X-SAE-ID: SAE_A\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"echo\":\"\"}");
  EXPECT_NE(r.headers.find("Content-Type: application/json"), std::string::npos) << r.headers;
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].method, "GET");
  EXPECT_EQ(seen_[0].path, "/api/v1/keys/SAE_B/enc_keys");
  EXPECT_EQ(seen_[0].query, "number=2&size=256");
  EXPECT_EQ(seen_[0].headers.at("x-sae-id"), "SAE_A");
  EXPECT_EQ(seen_[0].client_cn, "");
  EXPECT_EQ(seen_[0].peer.rfind("127.0.0.1:", 0), 0u) << seen_[0].peer;
  EXPECT_EQ(server_->requests(), 1u);
}

TEST_F(HttpServerTest, PostBodyRoundTripAndHandlerStatus) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string body = "{\"number\": 3}";
  Reply r =
      Call(absl::StrCat("POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
                        "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "{\"echo\":\"{\"number\": 3}\"}");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].body, body);
  EXPECT_EQ(seen_[0].query, "");
}

// A body above max_body_bytes is answered 413 and never reaches the handler.
// specs/qkd.md KME-30.
TEST_F(HttpServerTest, Kme30OversizedBodyIs413WithoutTheHandler) {
  ASSERT_NO_FATAL_FAILURE(StartServer(1024));
  const std::string body(2048, 'x');
  Reply r = Call(absl::StrCat("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: ", body.size(),
                              "\r\nConnection: close\r\n\r\n", body));
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(seen_.empty());
  // Exactly at the limit is served.
  const std::string fits(1024, 'y');
  r = Call(absl::StrCat("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: ", fits.size(),
                        "\r\nConnection: close\r\n\r\n", fits));
  EXPECT_EQ(r.status, 201);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].body, fits);
}

TEST_F(HttpServerTest, BusyPortIsAnErrorNamingIt) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  HttpServerOptions options;
  options.port = server_->port();
  auto second = HttpServer::Create(runtime_.get(), options,
                                   [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(absl::StrCat("127.0.0.1:", server_->port())),
            std::string::npos)
      << second.status();
}

TEST_F(HttpServerTest, MissingCertificateFileIsAnError) {
  HttpServerOptions options;
  options.cert_file = dir_ + "/none.pem";
  options.key_file = dir_ + "/none.key";
  options.ca_file = dir_ + "/ca.pem";
  auto server = HttpServer::Create(runtime_.get(), options,
                                   [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("none.pem"), std::string::npos) << server.status();
}

}  // namespace
}  // namespace qnet
