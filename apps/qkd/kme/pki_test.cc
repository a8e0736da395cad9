// WritePki: the files verify against the run's CA, with the right names,
// purposes and permissions (specs/qkd.md KME-32..KME-34).
#include "apps/qkd/kme/pki.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "stack/testing/loop.h"

namespace qnet::qkd {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509Ptr LoadCert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return cert;
}
PkeyPtr LoadKey(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  PkeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return key;
}
std::string CommonName(X509* cert) {
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
  return n > 0 ? std::string(buf, n) : "";
}
// X509_verify_cert of `cert` against `ca` for `purpose`.
bool Verifies(X509* ca, X509* cert, int purpose) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  const bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok;
}
int Mode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return st.st_mode & 0777;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::MakeTempDir("qnet-pki");
    ASSERT_TRUE(dir.ok());
    dir_ = *dir;
  }
  void TearDown() override { testing::RemoveTempDir(dir_); }
  std::string dir_;
};

TEST_F(PkiTest, Kme32FilesVerifyAgainstTheCaWithTheirNames) {
  PkiRequest request;
  request.dir = dir_ + "/pki";
  request.kmes = {{"alice", "127.0.0.1"}, {"bob", "10.0.0.2"}};
  request.saes = {"sae_a", "sae_b"};
  ASSERT_TRUE(WritePki(request).ok());
  X509Ptr ca = LoadCert(request.dir + "/ca.pem");
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(Mode(request.dir + "/ca.key"), -1);  // the CA key is not kept

  for (const auto& [node, address] : request.kmes) {
    const std::string stem = request.dir + "/kme-" + node;
    X509Ptr cert = LoadCert(stem + ".pem");
    PkeyPtr key = LoadKey(stem + ".key");
    ASSERT_TRUE(cert && key) << stem;
    EXPECT_TRUE(Verifies(ca.get(), cert.get(), X509_PURPOSE_SSL_SERVER)) << stem;
    EXPECT_FALSE(Verifies(ca.get(), cert.get(), X509_PURPOSE_SSL_CLIENT)) << stem;
    EXPECT_EQ(CommonName(cert.get()), address);
    EXPECT_EQ(X509_check_ip_asc(cert.get(), address.c_str(), 0), 1) << stem;
    EXPECT_NE(X509_check_ip_asc(cert.get(), "10.0.0.3", 0), 1) << stem;
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
    EXPECT_EQ(Mode(stem + ".key"), 0600);
  }
  for (const auto& sae : request.saes) {
    const std::string stem = request.dir + "/sae-" + sae;
    X509Ptr cert = LoadCert(stem + ".pem");
    PkeyPtr key = LoadKey(stem + ".key");
    ASSERT_TRUE(cert && key) << stem;
    EXPECT_TRUE(Verifies(ca.get(), cert.get(), X509_PURPOSE_SSL_CLIENT)) << stem;
    EXPECT_FALSE(Verifies(ca.get(), cert.get(), X509_PURPOSE_SSL_SERVER)) << stem;
    EXPECT_EQ(CommonName(cert.get()), sae);
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
    EXPECT_EQ(Mode(stem + ".key"), 0600);
  }
  // The two SAE keys differ.
  PkeyPtr ka = LoadKey(request.dir + "/sae-sae_a.key");
  X509Ptr cb = LoadCert(request.dir + "/sae-sae_b.pem");
  EXPECT_NE(X509_check_private_key(cb.get(), ka.get()), 1);
}

// A certificate of another run's PKI does not verify against this CA.
TEST_F(PkiTest, Kme32AnotherRunsCertificateDoesNotVerify) {
  PkiRequest one{dir_ + "/one", {{"alice", "127.0.0.1"}}, {"sae_a"}, 7};
  PkiRequest two{dir_ + "/two", {{"alice", "127.0.0.1"}}, {"sae_a"}, 7};
  ASSERT_TRUE(WritePki(one).ok());
  ASSERT_TRUE(WritePki(two).ok());
  X509Ptr ca1 = LoadCert(one.dir + "/ca.pem");
  X509Ptr sae2 = LoadCert(two.dir + "/sae-sae_a.pem");
  ASSERT_TRUE(ca1 && sae2);
  EXPECT_FALSE(Verifies(ca1.get(), sae2.get(), X509_PURPOSE_SSL_CLIENT));
}

TEST_F(PkiTest, Kme34BadNamesAreRefused) {
  EXPECT_EQ(WritePki({dir_, {}, {"../evil"}, 7}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WritePki({dir_, {{"a/b", "127.0.0.1"}}, {}, 7}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WritePki({"", {}, {"sae_a"}, 7}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Mode(dir_ + "/ca.pem"), -1);
}

}  // namespace
}  // namespace qnet::qkd
