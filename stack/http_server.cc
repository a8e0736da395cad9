// evhttp (+ bufferevent_openssl for HTTPS) behind the HttpServer contract.
#include "stack/http_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace qnet {
namespace {

std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  ERR_clear_error();
  return text;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

std::string MethodName(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_TRACE:
      return "TRACE";
    case EVHTTP_REQ_CONNECT:
      return "CONNECT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
  }
  return "UNKNOWN";
}

class HttpServerImpl : public HttpServer {
 public:
  HttpServerImpl(EventRuntime* runtime, HttpServerOptions options, Handler handler)
      : runtime_(runtime), options_(std::move(options)), handler_(std::move(handler)) {}

  ~HttpServerImpl() override {
    if (http_ != nullptr) evhttp_free(http_);
    if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
  }

  absl::Status Start() {
    if (!options_.cert_file.empty()) {
      if (absl::Status s = SetUpTls(); !s.ok()) return s;
    }
    http_ = evhttp_new(runtime_->base());
    if (http_ == nullptr) return absl::InternalError("evhttp_new failed");
    evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(options_.max_body_bytes));
    evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                          EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                          EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http_, &HttpServerImpl::OnRequest, this);
    if (ssl_ctx_ != nullptr) evhttp_set_bevcb(http_, &HttpServerImpl::OnNewConnection, this);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_, options_.address.c_str(), options_.port);
    if (bound == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("HTTP server cannot listen on ", options_.address, ":", options_.port));
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len) ==
        0) {
      if (addr.ss_family == AF_INET) {
        port_ = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
      } else if (addr.ss_family == AF_INET6) {
        port_ = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
      }
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }
  uint64_t requests() const override { return requests_; }
  uint64_t tls_failures() const override { return tls_failures_; }

 private:
  absl::Status SetUpTls() {
    if (options_.key_file.empty() || options_.ca_file.empty()) {
      return absl::InvalidArgumentError("HTTPS needs cert_file, key_file and ca_file");
    }
    ssl_ctx_ = SSL_CTX_new(TLS_server_method());
    if (ssl_ctx_ == nullptr) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
    SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx_, options_.cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load certificate ", options_.cert_file, ": ", OpenSslError()));
    }
    if (SSL_CTX_use_PrivateKey_file(ssl_ctx_, options_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load private key ", options_.key_file, ": ", OpenSslError()));
    }
    if (SSL_CTX_check_private_key(ssl_ctx_) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("private key ", options_.key_file, " does not match ", options_.cert_file));
    }
    if (SSL_CTX_load_verify_locations(ssl_ctx_, options_.ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load CA certificate ", options_.ca_file, ": ", OpenSslError()));
    }
    // Mutual TLS: a client without a certificate that verifies fails the handshake.
    SSL_CTX_set_verify(ssl_ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_app_data(ssl_ctx_, this);
    SSL_CTX_set_info_callback(ssl_ctx_, &HttpServerImpl::OnTlsInfo);
    return absl::OkStatus();
  }

  // A fatal alert the server sends is a failed handshake (no or bad client
  // certificate, protocol error).
  static void OnTlsInfo(const SSL* ssl, int where, int ret) {
    if ((where & SSL_CB_ALERT) == 0 || (where & SSL_CB_WRITE) == 0) return;
    if ((ret >> 8) != SSL3_AL_FATAL) return;
    auto* self = static_cast<HttpServerImpl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (self != nullptr) ++self->tls_failures_;
  }

  static bufferevent* OnNewConnection(event_base* base, void* arg) {
    auto* self = static_cast<HttpServerImpl*>(arg);
    SSL* ssl = SSL_new(self->ssl_ctx_);
    if (ssl == nullptr) return nullptr;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
  }

  static std::string ClientCommonName(evhttp_connection* conn) {
    bufferevent* bev = evhttp_connection_get_bufferevent(conn);
    if (bev == nullptr) return "";
    SSL* ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl == nullptr) return "";
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) return "";
    std::string cn;
    if (SSL_get_verify_result(ssl) == X509_V_OK) {
      char buf[256];
      int n =
          X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
      if (n > 0) cn.assign(buf, static_cast<size_t>(n));
    }
    X509_free(cert);
    return cn;
  }

  static void OnRequest(evhttp_request* req, void* arg) {
    auto* self = static_cast<HttpServerImpl*>(arg);
    ++self->requests_;
    HttpRequest request;
    request.method = MethodName(evhttp_request_get_command(req));
    std::string uri = evhttp_request_get_uri(req);
    if (size_t q = uri.find('?'); q != std::string::npos) {
      request.query = uri.substr(q + 1);
      uri.resize(q);
    }
    request.path = std::move(uri);
    evkeyvalq* headers = evhttp_request_get_input_headers(req);
    for (evkeyval* kv = headers->tqh_first; kv != nullptr; kv = kv->next.tqe_next) {
      request.headers[absl::AsciiStrToLower(kv->key)] = kv->value;
    }
    evbuffer* in = evhttp_request_get_input_buffer(req);
    request.body.resize(evbuffer_get_length(in));
    if (!request.body.empty()) evbuffer_copyout(in, request.body.data(), request.body.size());
    evhttp_connection* conn = evhttp_request_get_connection(req);
    if (conn != nullptr) {
      char* address = nullptr;
      ev_uint16_t port = 0;
      evhttp_connection_get_peer(conn, &address, &port);
      if (address != nullptr) request.peer = absl::StrCat(address, ":", port);
      if (self->ssl_ctx_ != nullptr) request.client_cn = ClientCommonName(conn);
    }

    HttpResponse response = self->handler_(request);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      response.content_type.c_str());
    evbuffer* out = evbuffer_new();
    if (!response.body.empty()) evbuffer_add(out, response.body.data(), response.body.size());
    evhttp_send_reply(req, response.status, Reason(response.status), out);
    evbuffer_free(out);
  }

  EventRuntime* runtime_;
  HttpServerOptions options_;
  Handler handler_;
  evhttp* http_ = nullptr;
  SSL_CTX* ssl_ctx_ = nullptr;
  uint16_t port_ = 0;
  uint64_t requests_ = 0, tls_failures_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(EventRuntime* runtime,
                                                               HttpServerOptions options,
                                                               Handler handler) {
  auto server = std::make_unique<HttpServerImpl>(runtime, std::move(options), std::move(handler));
  if (absl::Status s = server->Start(); !s.ok()) return s;
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace qnet
