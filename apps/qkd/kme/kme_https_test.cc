// The KMEs over HTTPS with mutual TLS (stack/http_server.h + WritePki + Kme):
// a blocking OpenSSL client in a thread, the servers on the test's loop
// (specs/qkd.md KME-4, KME-26, KME-29).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "apps/qkd/kme/kme.h"
#include "apps/qkd/kme/pki.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "qnet/qkd/v1/etsi014.pb.h"
#include "stack/http_server.h"
#include "stack/random.h"
#include "stack/testing/loop.h"

namespace qnet::qkd {
namespace {

struct Reply {
  bool connected = false;  // TLS handshake done and a response read
  int status = 0;
  std::string body;
};

// One HTTPS request to 127.0.0.1:port; `cert` empty: no client certificate.
Reply HttpsCall(uint16_t port, const std::string& ca, const std::string& cert,
                const std::string& key, const std::string& request) {
  Reply reply;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!cert.empty()) {
    SSL_CTX_use_certificate_file(ctx, cert.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  SSL* ssl = SSL_new(ctx);
  SSL_set1_host(ssl, "127.0.0.1");
  std::string raw;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1 &&
        SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
      char buf[4096];
      for (;;) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) break;
        raw.append(buf, static_cast<size_t>(n));
      }
    }
  }
  ERR_clear_error();
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  if (raw.size() > 12 && raw.compare(0, 5, "HTTP/") == 0) {
    reply.connected = true;
    reply.status = std::stoi(raw.substr(9, 3));
    size_t end = raw.find("\r\n\r\n");
    if (end != std::string::npos) reply.body = raw.substr(end + 4);
  }
  return reply;
}

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", extra_headers,
                      "Connection: close\r\n\r\n");
}
std::string Post(const std::string& path, const std::string& body) {
  return absl::StrCat("POST ", path,
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

KmeConfig Config(bool alice) {
  KmeConfig c;
  c.kme_id = alice ? "alice" : "bob";
  c.peer_kme_id = alice ? "bob" : "alice";
  c.local_saes = {alice ? "sae_a" : "sae_b"};
  c.peer_saes = {alice ? "sae_b" : "sae_a"};
  return c;  // allow_header_identity stays false: HTTPS only
}

class KmeHttpsTest : public testing::EventLoopTest {
 protected:
  KmeHttpsTest()
      : EventLoopTest("qnet-kme-https"),
        alice_store_("s1", true, std::string(64, 'k')),
        bob_store_("s1", false, std::string(64, 'k')),
        alice_(Config(true), &alice_store_),
        bob_(Config(false), &bob_store_) {}

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EventLoopTest::SetUp());
    pki_ = dir_ + "/pki";
    ASSERT_TRUE(
        WritePki(
            {pki_, {{"alice", "127.0.0.1"}, {"bob", "127.0.0.1"}}, {"sae_a", "sae_b", "sae_c"}, 1})
            .ok());
    ASSERT_TRUE(WritePki({dir_ + "/other", {}, {"sae_a"}, 1}).ok());
    Rng rng(7);
    BitVector block(4096);
    for (size_t i = 0; i < block.size(); ++i) block.Set(i, rng.Bernoulli(0.5));
    alice_store_.Append(block);
    bob_store_.Append(block);
    alice_server_ = Serve("alice", &alice_);
    bob_server_ = Serve("bob", &bob_);
    ASSERT_TRUE(alice_server_ && bob_server_);
  }

  std::unique_ptr<HttpServer> Serve(const std::string& node, Kme* kme) {
    HttpServerOptions options;
    options.cert_file = pki_ + "/kme-" + node + ".pem";
    options.key_file = pki_ + "/kme-" + node + ".key";
    options.ca_file = pki_ + "/ca.pem";
    auto server = HttpServer::Create(runtime_.get(), options, [this, kme](const HttpRequest& r) {
      seen_cn_.push_back(r.client_cn);
      return kme->Handle(r);
    });
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // As SAE `sae` (its certificate; "" for none; a path for a foreign one).
  Reply Call(HttpServer* server, const std::string& sae, const std::string& request,
             const std::string& cert_dir = "") {
    const std::string dir = cert_dir.empty() ? pki_ : cert_dir;
    const std::string cert = sae.empty() ? "" : dir + "/sae-" + sae + ".pem";
    const std::string key = sae.empty() ? "" : dir + "/sae-" + sae + ".key";
    std::atomic<bool> done{false};
    Reply reply;
    const uint16_t port = server->port();
    std::thread client([&] {
      reply = HttpsCall(port, pki_ + "/ca.pem", cert, key, request);
      done = true;
    });
    EXPECT_TRUE(RunUntil([&] { return done.load(); }));
    client.join();
    return reply;
  }

  KeyStore alice_store_, bob_store_;
  Kme alice_, bob_;
  std::string pki_;
  std::unique_ptr<HttpServer> alice_server_, bob_server_;
  std::vector<std::string> seen_cn_;
};

// KME-4: the caller is the certificate's CN; X-SAE-ID is not trusted on HTTPS.
TEST_F(KmeHttpsTest, Kme4ClientCertificateNamesTheCaller) {
  Reply r = Call(alice_server_.get(), "sae_a", Get("/api/v1/keys/sae_b/status"));
  ASSERT_TRUE(r.connected);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("master_SAE_ID":"sae_a")"), std::string::npos) << r.body;
  ASSERT_EQ(seen_cn_.size(), 1u);
  EXPECT_EQ(seen_cn_[0], "sae_a");
  // sae_c holds a valid certificate but is no SAE of Alice's node.
  r = Call(alice_server_.get(), "sae_c", Get("/api/v1/keys/sae_b/status", "X-SAE-ID: sae_a\r\n"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(alice_server_->tls_failures(), 0u);
}

// KME-29: no client certificate, or one from another CA: the handshake fails
// and the request never reaches the KME.
TEST_F(KmeHttpsTest, Kme29WithoutAValidClientCertificateNothingIsServed) {
  Reply none = Call(alice_server_.get(), "", Get("/api/v1/keys/sae_b/status"));
  EXPECT_FALSE(none.connected);
  Reply foreign =
      Call(alice_server_.get(), "sae_a", Get("/api/v1/keys/sae_b/status"), dir_ + "/other");
  EXPECT_FALSE(foreign.connected);
  EXPECT_TRUE(seen_cn_.empty());
  EXPECT_EQ(alice_server_->requests(), 0u);
  EXPECT_EQ(alice_server_->tls_failures(), 2u);
  EXPECT_TRUE(alice_.responses().empty());
}

// KME-19/KME-26 end to end: enc_keys at Alice's KME, dec_keys at Bob's, same key;
// the second dec_keys of the id is 400.
TEST_F(KmeHttpsTest, Kme26EncKeysAtOneKmeDecKeysAtTheOther) {
  Reply enc = Call(alice_server_.get(), "sae_a",
                   Post("/api/v1/keys/sae_b/enc_keys", R"({"number": 1, "size": 512})"));
  ASSERT_EQ(enc.status, 200) << enc.body;
  v1::EtsiKeyContainer sent;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(enc.body, &sent).ok());
  ASSERT_EQ(sent.keys_size(), 1);
  Reply dec = Call(bob_server_.get(), "sae_b",
                   Get("/api/v1/keys/sae_a/dec_keys?key_ID=" + sent.keys(0).key_id()));
  ASSERT_EQ(dec.status, 200) << dec.body;
  v1::EtsiKeyContainer got;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(dec.body, &got).ok());
  ASSERT_EQ(got.keys_size(), 1);
  EXPECT_EQ(got.keys(0).key(), sent.keys(0).key());
  EXPECT_EQ(got.keys(0).key().size(), 88u);  // base64 of 64 bytes
  Reply again = Call(bob_server_.get(), "sae_b",
                     Get("/api/v1/keys/sae_a/dec_keys?key_ID=" + sent.keys(0).key_id()));
  EXPECT_EQ(again.status, 400);
  EXPECT_NE(again.body.find("one or more keys specified are not found on KME"), std::string::npos);
}

}  // namespace
}  // namespace qnet::qkd
