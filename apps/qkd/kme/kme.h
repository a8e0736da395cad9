// Kme: the ETSI GS QKD 014 V1.1.1 key delivery API of one node's QKD
// session end (specs/qkd.md section "Key delivery", KME-*), sans-I/O: it maps
// one HttpRequest (stack/http_server.h) to one HttpResponse over the
// session's KeyStore. stack/http_server.h serves it over HTTP or HTTPS.
//
//   GET  /api/v1/keys/{slave_SAE_ID}/status
//   POST /api/v1/keys/{slave_SAE_ID}/enc_keys    GET ...?number=&size=
//   POST /api/v1/keys/{master_SAE_ID}/dec_keys   GET ...?key_ID=
//
// The calling SAE is the request's client_cn on HTTPS; on plain HTTP (local
// demos only) the `X-SAE-ID` header (KME-*). A caller that is not one of this
// node's SAEs, or that names an SAE not at the peer node, gets 401 with no
// body; a malformed request 400 {"message", "details"}; no key 503 {"message"}.
// enc_keys reserves keys from this end's share of the KeyStore; dec_keys
// serves keys the peer KME reserved, each once, by their self-describing ids
// (KeyStore, KME-*). No message between the KMEs is needed.
#ifndef QNET_APPS_QKD_KME_KME_H_
#define QNET_APPS_QKD_KME_KME_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "apps/qkd/auth/key_store.h"
#include "stack/http_server.h"

namespace qnet::qkd {

struct KmeConfig {
  std::string kme_id;                   // this node's KME id (the node name)
  std::string peer_kme_id;              // the peer node's
  std::vector<std::string> local_saes;  // SAEs at this node (topology <sae>)
  std::vector<std::string> peer_saes;   // SAEs at the peer node
  uint32_t key_size = 256;              // bits, default size
  uint32_t min_key_size = 64;
  uint32_t max_key_size = 1024;
  uint32_t max_key_per_request = 128;
  uint64_t max_key_count = 100000;     // reported; keys of key_size the store may hold
  bool allow_header_identity = false;  // plain HTTP: trust X-SAE-ID
};

class Kme {
 public:
  Kme(KmeConfig config, KeyStore* store);

  HttpResponse Handle(const HttpRequest& request);

  // Requests answered, by HTTP status.
  const std::map<int, uint64_t>& responses() const { return responses_; }
  uint64_t keys_delivered() const { return keys_delivered_; }
  // dec_keys requests refused because an id was not served (KME-23).
  uint64_t refused_fetches() const { return refused_fetches_; }

 private:
  HttpResponse Dispatch(const HttpRequest& request);
  HttpResponse GetStatus(const std::string& master, const std::string& slave);
  HttpResponse EncKeys(const HttpRequest& request, const std::string& master,
                       const std::string& slave);
  HttpResponse DecKeys(const HttpRequest& request, const std::string& slave,
                       const std::string& master);
  HttpResponse KeyContainer(const std::vector<ReservedKey>& keys);
  int32_t StoredKeyCount() const;

  KmeConfig config_;
  KeyStore* store_;
  std::map<int, uint64_t> responses_;
  uint64_t keys_delivered_ = 0;
  uint64_t refused_fetches_ = 0;
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_KME_KME_H_
