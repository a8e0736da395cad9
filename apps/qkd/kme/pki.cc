// The run's throw-away PKI with OpenSSL 3 (EC P-256 keys, X.509 v3, SHA-256).
#include "apps/qkd/kme/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace qnet::qkd {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

absl::Status Fail(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslError()));
}

bool IsIpAddress(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return Fail(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Fail("X509_add_ext");
  return absl::OkStatus();
}

enum class Role { kCa, kServer, kClient };

// A certificate for `key` with subject CN `cn`, signed by `issuer_key`
// (`issuer` null: self-signed CA).
absl::StatusOr<X509Ptr> MakeCertificate(EVP_PKEY* key, const std::string& cn, Role role,
                                        const std::string& san, X509* issuer, EVP_PKEY* issuer_key,
                                        int valid_days) {
  X509Ptr cert(X509_new());
  if (!cert) return Fail("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) return Fail("RAND_bytes");
  serial_bytes[0] &= 0x7F;  // positive
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  if (serial == nullptr ||
      BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) == nullptr) {
    BN_free(serial);
    return Fail("serial number");
  }
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(valid_days) * 86400);
  if (X509_set_pubkey(cert.get(), key) != 1) return Fail("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("qnet"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return Fail(absl::StrCat("subject CN=", cn));
  }
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1) {
    return Fail("X509_set_issuer_name");
  }
  auto add = [&](int nid, const std::string& value) {
    return AddExtension(cert.get(), signer, nid, value);
  };
  absl::Status s = add(NID_subject_key_identifier, "hash");
  if (s.ok() && issuer != nullptr) s = add(NID_authority_key_identifier, "keyid:always");
  switch (role) {
    case Role::kCa:
      if (s.ok()) s = add(NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
      if (s.ok()) s = add(NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case Role::kServer:
      if (s.ok()) s = add(NID_basic_constraints, "critical,CA:FALSE");
      if (s.ok()) s = add(NID_key_usage, "critical,digitalSignature,keyAgreement");
      if (s.ok()) s = add(NID_ext_key_usage, "serverAuth");
      break;
    case Role::kClient:
      if (s.ok()) s = add(NID_basic_constraints, "critical,CA:FALSE");
      if (s.ok()) s = add(NID_key_usage, "critical,digitalSignature,keyAgreement");
      if (s.ok()) s = add(NID_ext_key_usage, "clientAuth");
      break;
  }
  if (s.ok() && !san.empty()) s = add(NID_subject_alt_name, san);
  if (!s.ok()) return s;
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return Fail(absl::StrCat("signing the certificate of ", cn));
  }
  return cert;
}

// Writes with `mode` (the file is replaced if it exists).
absl::Status WriteFile(const std::string& path, mode_t mode,
                       const std::function<bool(FILE*)>& write) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", path, ": ", std::generic_category().message(errno)));
  }
  ::fchmod(fd, mode);
  FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot open ", path));
  }
  const bool ok = write(f);
  if (std::fclose(f) != 0 || !ok) return Fail(absl::StrCat("writing ", path));
  return absl::OkStatus();
}

absl::Status WritePair(const std::string& dir, const std::string& stem, X509* cert, EVP_PKEY* key) {
  absl::Status s = WriteFile(absl::StrCat(dir, "/", stem, ".pem"), 0644,
                             [&](FILE* f) { return PEM_write_X509(f, cert) == 1; });
  if (!s.ok() || key == nullptr) return s;
  return WriteFile(absl::StrCat(dir, "/", stem, ".key"), 0600, [&](FILE* f) {
    return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  });
}

absl::StatusOr<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Fail("EC P-256 key generation");
  return key;
}

bool SafeName(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

absl::Status WritePki(const PkiRequest& request) {
  if (request.dir.empty()) return absl::InvalidArgumentError("PKI directory is empty");
  if (request.valid_days <= 0) return absl::InvalidArgumentError("valid_days must be positive");
  for (const auto& [node, address] : request.kmes) {
    if (!SafeName(node))
      return absl::InvalidArgumentError(absl::StrCat("bad KME name '", node, "'"));
    if (address.empty())
      return absl::InvalidArgumentError(absl::StrCat("KME ", node, ": no address"));
  }
  for (const auto& sae : request.saes) {
    if (!SafeName(sae)) return absl::InvalidArgumentError(absl::StrCat("bad SAE id '", sae, "'"));
  }
  std::error_code ec;
  std::filesystem::create_directories(request.dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create PKI directory ", request.dir, ": ", ec.message()));
  }

  auto ca_key = NewKey();
  if (!ca_key.ok()) return ca_key.status();
  auto ca = MakeCertificate(ca_key->get(), "qnet run CA", Role::kCa, "", nullptr, nullptr,
                            request.valid_days);
  if (!ca.ok()) return ca.status();
  // The CA's key is not written: nothing is signed after this call.
  if (absl::Status s = WritePair(request.dir, "ca", ca->get(), nullptr); !s.ok()) return s;

  for (const auto& [node, address] : request.kmes) {
    auto key = NewKey();
    if (!key.ok()) return key.status();
    const std::string san =
        IsIpAddress(address) ? absl::StrCat("IP:", address) : absl::StrCat("DNS:", address);
    auto cert = MakeCertificate(key->get(), address, Role::kServer, san, ca->get(), ca_key->get(),
                                request.valid_days);
    if (!cert.ok()) return cert.status();
    if (absl::Status s = WritePair(request.dir, "kme-" + node, cert->get(), key->get()); !s.ok()) {
      return s;
    }
  }
  for (const auto& sae : request.saes) {
    auto key = NewKey();
    if (!key.ok()) return key.status();
    auto cert = MakeCertificate(key->get(), sae, Role::kClient, "", ca->get(), ca_key->get(),
                                request.valid_days);
    if (!cert.ok()) return cert.status();
    if (absl::Status s = WritePair(request.dir, "sae-" + sae, cert->get(), key->get()); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace qnet::qkd
