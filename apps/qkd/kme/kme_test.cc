// Kme (ETSI GS QKD 014) over two KeyStores with identical appends, as Alice's
// and Bob's ends of one session (specs/qkd.md section 9, KME-*).
#include "apps/qkd/kme/kme.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "qnet/qkd/v1/etsi014.pb.h"
#include "stack/random.h"

namespace qnet::qkd {
namespace {

namespace pb = ::qnet::qkd::v1;

constexpr char kNotFound[] = "one or more keys specified are not found on KME";
constexpr size_t kBlockBits = 4096;  // Alice's share: bytes [0, 256), Bob's: [256, 512)

BitVector RandomBits(size_t n, uint64_t seed) {
  Rng rng(seed);
  BitVector bits(n);
  for (size_t i = 0; i < n; ++i) bits.Set(i, rng.Bernoulli(0.5));
  return bits;
}

KmeConfig Config(bool alice) {
  KmeConfig c;
  c.kme_id = alice ? "alice" : "bob";
  c.peer_kme_id = alice ? "bob" : "alice";
  c.local_saes = alice ? std::vector<std::string>{"sae_a", "sae_a2"}
                       : std::vector<std::string>{"sae_b", "sae_b2"};
  c.peer_saes = alice ? std::vector<std::string>{"sae_b", "sae_b2"}
                      : std::vector<std::string>{"sae_a", "sae_a2"};
  c.allow_header_identity = true;
  return c;
}

HttpRequest Req(const std::string& method, const std::string& path, const std::string& caller,
                const std::string& body = "", const std::string& query = "") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.query = query;
  r.body = body;
  if (!caller.empty()) r.headers["x-sae-id"] = caller;
  return r;
}

pb::EtsiKeyContainer Keys(const HttpResponse& response) {
  pb::EtsiKeyContainer c;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(response.body, &c).ok()) << response.body;
  return c;
}
pb::EtsiError Err(const HttpResponse& response) {
  pb::EtsiError e;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(response.body, &e).ok()) << response.body;
  return e;
}
std::string KeyBytes(const pb::EtsiKey& key) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(key.key(), &out));
  return out;
}
std::string IdsBody(const std::vector<std::string>& ids) {
  std::string body = R"({"key_IDs": [)";
  for (size_t i = 0; i < ids.size(); ++i) {
    absl::StrAppend(&body, i ? ", " : "", R"({"key_ID": ")", ids[i], R"("})");
  }
  return body + "]}";
}

class KmeTest : public ::testing::Test {
 protected:
  KmeTest()
      : alice_store_("s1", true, std::string(64, 'k')),
        bob_store_("s1", false, std::string(64, 'k')),
        alice_(Config(true), &alice_store_),
        bob_(Config(false), &bob_store_) {}

  void AppendBlocks(int n) {
    for (int i = 0; i < n; ++i) {
      BitVector block = RandomBits(kBlockBits, 100 + i);
      blocks_.push_back(block.ToBytes());
      alice_store_.Append(block);
      bob_store_.Append(block);
    }
  }

  // enc_keys at Alice by sae_a for sae_b.
  HttpResponse Enc(const std::string& body) {
    return alice_.Handle(Req("POST", "/api/v1/keys/sae_b/enc_keys", "sae_a", body));
  }
  HttpResponse Dec(const std::vector<std::string>& ids, const std::string& caller = "sae_b") {
    return bob_.Handle(Req("POST", "/api/v1/keys/sae_a/dec_keys", caller, IdsBody(ids)));
  }

  KeyStore alice_store_, bob_store_;
  Kme alice_, bob_;
  std::vector<std::string> blocks_;
};

// KME-19, KME-26: enc_keys at Alice and dec_keys at Bob hand out the
// same bytes: Alice's share of the stream, in stream order.
TEST_F(KmeTest, Kme19EncAtAliceDecAtBobGiveTheSameKey) {
  AppendBlocks(2);
  HttpResponse enc = Enc(R"({"number": 2, "size": 256})");
  ASSERT_EQ(enc.status, 200) << enc.body;
  pb::EtsiKeyContainer sent = Keys(enc);
  ASSERT_EQ(sent.keys_size(), 2);
  EXPECT_EQ(KeyBytes(sent.keys(0)), blocks_[0].substr(0, 32));
  EXPECT_EQ(KeyBytes(sent.keys(1)), blocks_[0].substr(32, 32));
  EXPECT_NE(sent.keys(0).key_id(), sent.keys(1).key_id());
  EXPECT_EQ(alice_store_.available_bits(), 2 * 2048u - 512u);

  HttpResponse dec = Dec({sent.keys(0).key_id(), sent.keys(1).key_id()});
  ASSERT_EQ(dec.status, 200) << dec.body;
  pb::EtsiKeyContainer got = Keys(dec);
  ASSERT_EQ(got.keys_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(got.keys(i).key_id(), sent.keys(i).key_id());
    EXPECT_EQ(KeyBytes(got.keys(i)), KeyBytes(sent.keys(i)));
  }
  EXPECT_EQ(alice_.keys_delivered(), 2u);
  EXPECT_EQ(bob_.keys_delivered(), 2u);

  // The other direction: Bob's KME hands out Bob's share (KME-19, QKD-K3).
  HttpResponse enc_b = bob_.Handle(Req("POST", "/api/v1/keys/sae_a/enc_keys", "sae_b", ""));
  ASSERT_EQ(enc_b.status, 200) << enc_b.body;
  pb::EtsiKeyContainer sent_b = Keys(enc_b);
  ASSERT_EQ(sent_b.keys_size(), 1);
  EXPECT_EQ(KeyBytes(sent_b.keys(0)), blocks_[0].substr(256, 32));
  HttpResponse dec_a = alice_.Handle(
      Req("POST", "/api/v1/keys/sae_b/dec_keys", "sae_a", IdsBody({sent_b.keys(0).key_id()})));
  ASSERT_EQ(dec_a.status, 200) << dec_a.body;
  EXPECT_EQ(KeyBytes(Keys(dec_a).keys(0)), blocks_[0].substr(256, 32));
}

// KME-23, KME-24: a key id is served once; a batch with one spent id hands out
// nothing, and its other ids stay fetchable.
TEST_F(KmeTest, Kme23ReplayedKeyIdIsNotFoundAndNothingIsHandedOut) {
  AppendBlocks(1);
  pb::EtsiKeyContainer sent = Keys(Enc(R"({"number": 2})"));
  ASSERT_EQ(sent.keys_size(), 2);
  const std::string id0 = sent.keys(0).key_id(), id1 = sent.keys(1).key_id();
  ASSERT_EQ(Dec({id0}).status, 200);

  HttpResponse replay = Dec({id0});
  EXPECT_EQ(replay.status, 400);
  EXPECT_EQ(Err(replay).message(), kNotFound);
  HttpResponse batch = Dec({id1, id0});
  EXPECT_EQ(batch.status, 400);
  EXPECT_EQ(Err(batch).message(), kNotFound);
  EXPECT_EQ(batch.body.find("\"keys\""), std::string::npos);
  // The same id twice in one request: refused as a whole.
  EXPECT_EQ(Dec({id1, id1}).status, 400);
  EXPECT_EQ(bob_.refused_fetches(), 3u);

  HttpResponse later = Dec({id1});
  ASSERT_EQ(later.status, 200) << later.body;
  EXPECT_EQ(KeyBytes(Keys(later).keys(0)), KeyBytes(sent.keys(1)));
  EXPECT_EQ(bob_.keys_delivered(), 2u);
  // An id that never existed, and one of the right form with a wrong MAC.
  EXPECT_EQ(Err(Dec({"not-a-key"})).message(), kNotFound);
  std::string forged = id1;
  forged[0] = forged[0] == '0' ? '1' : '0';
  EXPECT_EQ(Dec({forged}).status, 400);
}

// KME-25: a key made for sae_b fetched by sae_b2 (another SAE of Bob's node)
// is 401 with no body and stays fetchable by sae_b; naming the wrong master
// is not found.
TEST_F(KmeTest, Kme25KeyOfAnotherSaeIsUnauthorized) {
  AppendBlocks(1);
  pb::EtsiKeyContainer sent = Keys(Enc(""));
  ASSERT_EQ(sent.keys_size(), 1);
  const std::string id = sent.keys(0).key_id();
  HttpResponse other = Dec({id}, "sae_b2");
  EXPECT_EQ(other.status, 401);
  EXPECT_EQ(other.body, "");
  HttpResponse wrong_master =
      bob_.Handle(Req("POST", "/api/v1/keys/sae_a2/dec_keys", "sae_b", IdsBody({id})));
  EXPECT_EQ(wrong_master.status, 400);
  EXPECT_EQ(Err(wrong_master).message(), kNotFound);
  EXPECT_EQ(Dec({id}).status, 200);
}

// KME-4..KME-7: identity and the SAE in the path.
TEST_F(KmeTest, Kme6UnknownCallersAndSaesAre401WithNoBody) {
  AppendBlocks(1);
  const std::string status = "/api/v1/keys/sae_b/status";
  for (const HttpResponse& r : {
           alice_.Handle(Req("GET", status, "")),                                // no identity
           alice_.Handle(Req("GET", status, "mallory")),                         // not an SAE
           alice_.Handle(Req("GET", status, "sae_b")),                           // peer's SAE
           alice_.Handle(Req("GET", "/api/v1/keys/sae_a2/status", "sae_a")),     // slave local
           alice_.Handle(Req("POST", "/api/v1/keys/nobody/enc_keys", "sae_a")),  // unknown slave
           bob_.Handle(Req("POST", "/api/v1/keys/sae_b2/dec_keys", "sae_b", IdsBody({"x"}))),
       }) {
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.body, "");
  }
  EXPECT_EQ(alice_store_.available_bits(), 2048u);

  // KME-4: on TLS the certificate's CN is the caller, whatever the header says.
  HttpRequest tls = Req("GET", status, "mallory");
  tls.client_cn = "sae_a";
  EXPECT_EQ(alice_.Handle(tls).status, 200);
  tls.client_cn = "mallory";
  tls.headers["x-sae-id"] = "sae_a";
  EXPECT_EQ(alice_.Handle(tls).status, 401);
  // KME-5: without allow_header_identity the header is not trusted.
  KmeConfig strict = Config(true);
  strict.allow_header_identity = false;
  Kme strict_kme(strict, &alice_store_);
  EXPECT_EQ(strict_kme.Handle(Req("GET", status, "sae_a")).status, 401);
}

// KME-8: the status fields, exactly.
TEST_F(KmeTest, Kme8StatusFieldsExact) {
  AppendBlocks(2);
  HttpResponse r = alice_.Handle(Req("GET", "/api/v1/keys/sae_b/status", "sae_a"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"source_KME_ID":"alice","target_KME_ID":"bob","master_SAE_ID":"sae_a",)"
                    R"("slave_SAE_ID":"sae_b","key_size":256,"stored_key_count":16,)"
                    R"("max_key_count":100000,"max_key_per_request":128,"max_key_size":1024,)"
                    R"("min_key_size":64,"max_SAE_ID_count":0})");
  ASSERT_EQ(Enc(R"({"number": 3, "size": 512})").status, 200);  // 1536 of 4096 bits
  r = alice_.Handle(Req("GET", "/api/v1/keys/sae_b/status", "sae_a"));
  EXPECT_NE(r.body.find(R"("stored_key_count":10,)"), std::string::npos) << r.body;
}

// KME-11..KME-18, KME-21, KME-22: malformed and unsupported requests are 400 with the
// standard's message, and take no key.
TEST_F(KmeTest, Kme11BadKeyRequestsAre400) {
  AppendBlocks(1);
  struct Case {
    std::string body, message;
  };
  const std::vector<Case> cases = {
      {"{", "malformed key request"},
      {"[1, 2]", "malformed key request"},
      {R"({"number": "two"})", "malformed key request"},
      {R"({"number": 1.5})", "malformed key request"},
      {R"({"colour": "red"})", "malformed key request"},
      {R"({"number": 0})", "number shall be at least 1"},
      {R"({"number": -3})", "number shall be at least 1"},
      {R"({"number": 129})", "number exceeds max_key_per_request"},
      {R"({"size": 100})", "size shall be a multiple of 8"},
      {R"({"size": 56})", "size shall be between min_key_size and max_key_size"},
      {R"({"size": 1032})", "size shall be between min_key_size and max_key_size"},
      {R"({"additional_slave_SAE_IDs": ["sae_b2"]})", "additional_slave_SAE_IDs are not supported"},
      {R"({"extension_mandatory": [{"abc_route_type": "direct"}]})",
       "not all extension_mandatory parameters are supported"},
  };
  for (const auto& c : cases) {
    HttpResponse r = Enc(c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(Err(r).message(), c.message) << c.body;
  }
  EXPECT_NE(Enc(R"({"extension_mandatory": [{"abc_route_type": "direct"}]})")
                .body.find(R"({"extension_mandatory_unsupported":["abc_route_type"]})"),
            std::string::npos);
  // extension_optional is ignored (KME-17).
  EXPECT_EQ(Enc(R"({"extension_optional": [{"abc_x": 1}]})").status, 200);
  EXPECT_EQ(alice_store_.available_bits(), 2048u - 256u);
  // dec_keys bodies (KME-21, KME-22).
  EXPECT_EQ(Err(bob_.Handle(Req("POST", "/api/v1/keys/sae_a/dec_keys", "sae_b", "{x"))).message(),
            "malformed key IDs");
  EXPECT_EQ(Err(Dec({})).message(), "key_IDs shall name at least one key");
  EXPECT_EQ(Err(Dec(std::vector<std::string>(129, "x"))).message(),
            "number of key_IDs exceeds max_key_per_request");
  EXPECT_EQ(alice_.responses().at(400), 14u);
  EXPECT_EQ(bob_.responses().at(400), 3u);
}

// KME-20: too little key is 503, all or nothing.
TEST_F(KmeTest, Kme20TooLittleKeyIs503AndTakesNothing) {
  HttpResponse empty = Enc("");
  EXPECT_EQ(empty.status, 503);
  EXPECT_EQ(Err(empty).message(), "not enough key material on KME");
  EXPECT_NE(alice_.Handle(Req("GET", "/api/v1/keys/sae_b/status", "sae_a"))
                .body.find(R"("stored_key_count":0,)"),
            std::string::npos);
  AppendBlocks(1);  // 2048 bits at Alice: 8 keys of 256
  EXPECT_EQ(Enc(R"({"number": 9})").status, 503);
  EXPECT_EQ(alice_store_.available_bits(), 2048u);
  HttpResponse eight = Enc(R"({"number": 8})");
  ASSERT_EQ(eight.status, 200);
  EXPECT_EQ(Keys(eight).keys_size(), 8);
  EXPECT_EQ(KeyBytes(Keys(eight).keys(7)), blocks_[0].substr(224, 32));
  EXPECT_EQ(Enc("").status, 503);
  EXPECT_EQ(alice_.responses().at(503), 3u);
  EXPECT_EQ(alice_.responses().at(200), 2u);
}

// KME-9, KME-10, KME-21: the GET forms.
TEST_F(KmeTest, Kme9GetForms) {
  AppendBlocks(1);
  HttpResponse enc =
      alice_.Handle(Req("GET", "/api/v1/keys/sae_b/enc_keys", "sae_a", "", "number=2&size=128"));
  ASSERT_EQ(enc.status, 200) << enc.body;
  pb::EtsiKeyContainer sent = Keys(enc);
  ASSERT_EQ(sent.keys_size(), 2);
  EXPECT_EQ(KeyBytes(sent.keys(1)), blocks_[0].substr(16, 16));
  HttpResponse dec = bob_.Handle(
      Req("GET", "/api/v1/keys/sae_a/dec_keys", "sae_b", "", "key_ID=" + sent.keys(1).key_id()));
  ASSERT_EQ(dec.status, 200) << dec.body;
  EXPECT_EQ(KeyBytes(Keys(dec).keys(0)), KeyBytes(sent.keys(1)));
  EXPECT_EQ(Err(alice_.Handle(Req("GET", "/api/v1/keys/sae_b/enc_keys", "sae_a", "", "number=x")))
                .message(),
            "number shall be an integer");
  EXPECT_EQ(Err(alice_.Handle(Req("GET", "/api/v1/keys/sae_b/enc_keys", "sae_a", "", "colour=1")))
                .message(),
            "unknown query parameter");
}

// KME-1..KME-3: other paths 404, other methods 405.
TEST_F(KmeTest, Kme1RoutesAndMethods) {
  EXPECT_EQ(alice_.Handle(Req("GET", "/api/v1/keys/sae_b", "sae_a")).status, 404);
  EXPECT_EQ(alice_.Handle(Req("GET", "/api/v1/keys/sae_b/keys", "sae_a")).status, 404);
  EXPECT_EQ(alice_.Handle(Req("GET", "/api/v2/keys/sae_b/status", "sae_a")).status, 404);
  EXPECT_EQ(alice_.Handle(Req("POST", "/api/v1/keys/sae_b/status", "sae_a")).status, 405);
  EXPECT_EQ(alice_.Handle(Req("DELETE", "/api/v1/keys/sae_b/enc_keys", "sae_a")).status, 405);
}

}  // namespace
}  // namespace qnet::qkd
