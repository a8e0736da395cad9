// A throw-away PKI for a run's KMEs and SAEs (specs/qkd.md KME-*), made with
// OpenSSL: one CA, one server certificate per KME (CN and subjectAltName IP
// = the KME's address) and one client certificate per SAE (CN = the SAE
// id). ETSI GS QKD 014 authenticates SAEs by their client certificates; the
// launcher writes this into OUT/pki so that curl can call the KMEs:
//   OUT/pki/ca.pem
//   OUT/pki/kme-<node>.pem, kme-<node>.key
//   OUT/pki/sae-<id>.pem,   sae-<id>.key      (keys unencrypted, mode 0600)
#ifndef QNET_APPS_QKD_KME_PKI_H_
#define QNET_APPS_QKD_KME_PKI_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace qnet::qkd {

struct PkiRequest {
  std::string dir;
  std::vector<std::pair<std::string, std::string>> kmes;  // (node, IP address)
  std::vector<std::string> saes;
  int valid_days = 7;
};

absl::Status WritePki(const PkiRequest& request);

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_KME_PKI_H_
