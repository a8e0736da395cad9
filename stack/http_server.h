// HttpServer: a small HTTP/1.1 server on the libevent runtime (evhttp), plain
// or HTTPS with mutual TLS (OpenSSL through libevent_openssl). It is the only
// HTTP code that touches sockets; what a request means is decided by the
// injected handler (e.g. the KME of apps/qkd/kme, sans-I/O).
//
// Contract:
//  - Plain HTTP when `cert_file` is empty; otherwise TLS 1.2 or later, the
//    server presents cert_file/key_file and REQUIRES a client certificate
//    that verifies against `ca_file`; a handshake without one fails and the
//    request never reaches the handler (counted in tls_failures()).
//  - The handler gets the method, the path (percent-decoding not applied),
//    the raw query string, the body, the request headers, and for TLS the
//    client certificate's subject Common Name (`client_cn`).
//  - Bodies above `max_body_bytes` are answered 413 without calling the
//    handler; the response carries the handler's status, Content-Type
//    (default application/json) and body.
#ifndef QNET_STACK_HTTP_SERVER_H_
#define QNET_STACK_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "stack/event_runtime.h"

namespace qnet {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // "/api/v1/keys/SAE_B/status"
  std::string query;   // after '?', raw; "" if none
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string client_cn;  // TLS: the client certificate's CN; "" on plain HTTP
  std::string peer;       // "address:port" of the caller
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (see port())
  std::string cert_file, key_file, ca_file;  // all three for HTTPS (mutual TLS)
  size_t max_body_bytes = 1 << 20;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds and starts serving on `runtime`'s loop. Errors name the address
  // and port, or the certificate file that could not be loaded.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(EventRuntime* runtime,
                                                            HttpServerOptions options,
                                                            Handler handler);
  virtual ~HttpServer() = default;

  virtual uint16_t port() const = 0;
  virtual uint64_t requests() const = 0;
  virtual uint64_t tls_failures() const = 0;
};

}  // namespace qnet

#endif  // QNET_STACK_HTTP_SERVER_H_
