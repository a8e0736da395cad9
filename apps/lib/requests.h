// Builders for the AppRequests apps send (specs/proto/qnet/app/v1/app.proto),
// and a flat JSON object writer for app result files. Header only.
#ifndef QNET_APPS_LIB_REQUESTS_H_
#define QNET_APPS_LIB_REQUESTS_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "qnet/app/v1/app.pb.h"

namespace qnet::apps {

inline app::v1::AppRequest BindRequest(uint32_t port) {
  app::v1::AppRequest r;
  r.mutable_bind()->set_port(port);
  return r;
}

inline app::v1::AppRequest ConnectRequest(uint64_t socket, const std::string& node, uint32_t port,
                                          const app::v1::Qos& qos) {
  app::v1::AppRequest r;
  auto* c = r.mutable_connect();
  c->set_socket(socket);
  c->set_remote_node(node);
  c->set_remote_port(port);
  *c->mutable_qos() = qos;
  return r;
}

inline app::v1::AppRequest CloseRequest(uint64_t connection) {
  app::v1::AppRequest r;
  r.mutable_close()->set_connection(connection);
  return r;
}

inline app::v1::AppRequest SendRequest(uint64_t connection, std::string data) {
  app::v1::AppRequest r;
  r.mutable_send()->set_connection(connection);
  r.mutable_send()->set_data(std::move(data));
  return r;
}

inline app::v1::QubitRef Qubit(uint64_t connection, uint64_t id) {
  app::v1::QubitRef q;
  q.set_connection(connection);
  q.set_id(id);
  return q;
}

inline app::v1::AppRequest ReleaseRequest(const app::v1::QubitRef& q) {
  app::v1::AppRequest r;
  *r.mutable_release()->mutable_qubit() = q;
  return r;
}

inline app::v1::AppRequest AllocateRequest(uint64_t socket) {
  app::v1::AppRequest r;
  r.mutable_allocate_qubit()->set_socket(socket);
  return r;
}

inline app::v1::AppRequest GateRequest(const app::v1::QubitRef& q, physical::v1::GateKind kind,
                                       double angle = 0.0) {
  app::v1::AppRequest r;
  *r.mutable_gate()->mutable_qubit() = q;
  r.mutable_gate()->set_kind(kind);
  r.mutable_gate()->set_angle(angle);
  return r;
}

inline app::v1::AppRequest MeasureRequest(const app::v1::QubitRef& q, physical::v1::Basis basis,
                                          double angle = 0.0) {
  app::v1::AppRequest r;
  *r.mutable_measure()->mutable_qubit() = q;
  r.mutable_measure()->set_basis(basis);
  r.mutable_measure()->set_angle(angle);
  return r;
}

inline app::v1::AppRequest BellMeasureRequest(const app::v1::QubitRef& a,
                                              const app::v1::QubitRef& b) {
  app::v1::AppRequest r;
  *r.mutable_bell_measure()->mutable_a() = a;
  *r.mutable_bell_measure()->mutable_b() = b;
  return r;
}

// A flat JSON object, keys in insertion order.
class JsonObject {
 public:
  JsonObject& Add(const std::string& key, const std::string& value) {
    std::string escaped;
    for (char c : value) {
      if (c == '"' || c == '\\') {
        escaped += '\\';
        escaped += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        escaped += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
      } else {
        escaped += c;
      }
    }
    fields_.emplace_back(key, absl::StrCat("\"", escaped, "\""));
    return *this;
  }
  JsonObject& Add(const std::string& key, const char* value) {
    return Add(key, std::string(value));
  }
  JsonObject& Add(const std::string& key, double value) {
    fields_.emplace_back(key, std::isfinite(value) ? absl::StrFormat("%.17g", value) : "null");
    return *this;
  }
  JsonObject& Add(const std::string& key, uint64_t value) {
    fields_.emplace_back(key, absl::StrCat(value));
    return *this;
  }
  JsonObject& AddRaw(const std::string& key, std::string json) {
    fields_.emplace_back(key, std::move(json));
    return *this;
  }
  std::string ToString() const {
    std::string out = "{";
    for (size_t i = 0; i < fields_.size(); ++i) {
      absl::StrAppend(&out, i ? ", " : "", "\"", fields_[i].first, "\": ", fields_[i].second);
    }
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

}  // namespace qnet::apps

#endif  // QNET_APPS_LIB_REQUESTS_H_
