#include "emulator/qnode/app_session.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace qnet::qnode {
namespace {

using app::v1::AppEvent;
using app::v1::AppRequest;
using app::v1::Reply;
using results::v1::DropReason;

constexpr uint32_t kVersion = 1;

transport::QubitRef ToTransport(const app::v1::QubitRef& q) {
  return transport::QubitRef{q.connection(), q.id()};
}

app::v1::QubitRef ToProto(const transport::QubitRef& q) {
  app::v1::QubitRef out;
  out.set_connection(q.connection);
  out.set_id(q.id);
  return out;
}

transport::Qos ToTransport(const app::v1::Qos& q) {
  transport::Qos out;
  out.min_fidelity = q.min_fidelity();
  out.pairs = q.pairs();
  out.min_rate_hz = q.min_rate_hz();
  out.type = q.type() == app::v1::PAIR_TYPE_MEASURE ? transport::PairType::kMeasure
                                                    : transport::PairType::kKeep;
  out.basis =
      q.basis() == link::v1::BASIS_CHOICE_UNSPECIFIED ? link::v1::BASIS_CHOICE_XZ : q.basis();
  out.window = q.window() == 0 ? 1 : q.window();
  if (q.has_cutoff_s()) out.cutoff = absl::Seconds(q.cutoff_s());
  if (q.has_z_probability()) out.z_probability = q.z_probability();
  return out;
}

app::v1::Qos ToProto(const transport::Qos& q) {
  app::v1::Qos out;
  out.set_min_fidelity(q.min_fidelity);
  out.set_pairs(q.pairs);
  out.set_min_rate_hz(q.min_rate_hz);
  out.set_type(q.type == transport::PairType::kMeasure ? app::v1::PAIR_TYPE_MEASURE
                                                       : app::v1::PAIR_TYPE_KEEP);
  out.set_basis(q.basis);
  out.set_window(q.window);
  if (q.cutoff) out.set_cutoff_s(absl::ToDoubleSeconds(*q.cutoff));
  if (q.z_probability != 0.5) out.set_z_probability(q.z_probability);
  return out;
}

app::v1::CloseReason ToProto(transport::CloseReason r) {
  switch (r) {
    case transport::CloseReason::kLocal:
      return app::v1::CLOSE_REASON_LOCAL;
    case transport::CloseReason::kPeer:
      return app::v1::CLOSE_REASON_PEER;
    case transport::CloseReason::kDone:
      return app::v1::CLOSE_REASON_DONE;
    case transport::CloseReason::kRefused:
      return app::v1::CLOSE_REASON_REFUSED;
    case transport::CloseReason::kUnreachable:
      return app::v1::CLOSE_REASON_UNREACHABLE;
    case transport::CloseReason::kFailed:
      return app::v1::CLOSE_REASON_FAILED;
  }
  return app::v1::CLOSE_REASON_UNSPECIFIED;
}

bool SingleQubitGate(physical::v1::GateKind kind) {
  switch (kind) {
    case physical::v1::GATE_KIND_X:
    case physical::v1::GATE_KIND_Y:
    case physical::v1::GATE_KIND_Z:
    case physical::v1::GATE_KIND_H:
    case physical::v1::GATE_KIND_S:
    case physical::v1::GATE_KIND_RX:
    case physical::v1::GATE_KIND_RY:
    case physical::v1::GATE_KIND_RZ:
      return true;
    default:
      return false;
  }
}

void SetStatus(const absl::Status& s, Reply* reply) {
  reply->set_code(static_cast<int32_t>(s.code()));
  reply->set_message(std::string(s.message()));
}

}  // namespace

// Forwards one socket's callbacks to the session, tagged with the socket.
class AppSession::Listener : public transport::SocketListener {
 public:
  Listener(AppSession* session, transport::SocketId socket) : session_(session), socket_(socket) {}
  void set_socket(transport::SocketId socket) { socket_ = socket; }

  void OnConnected(const transport::ConnectionInfo& info) override {
    session_->OnConnected(socket_, info);
  }
  void OnClosed(transport::ConnectionId c, transport::CloseReason r,
                const std::string& detail) override {
    session_->OnClosed(c, r, detail);
  }
  void OnPair(const transport::Pair& pair) override { session_->OnPair(socket_, pair); }
  void OnPairExpired(transport::ConnectionId c, uint64_t id, const std::string& detail) override {
    session_->OnPairExpired(c, id, detail);
  }
  void OnData(transport::ConnectionId c, const std::string& bytes) override {
    session_->OnData(c, bytes);
  }
  void OnMeasured(uint64_t id, uint32_t result) override { session_->OnMeasured(id, result); }
  void OnBellMeasured(uint64_t id, physical::v1::BellState outcome) override {
    session_->OnBellMeasured(id, outcome);
  }

 private:
  AppSession* session_;
  transport::SocketId socket_;
};

AppSession::AppSession(transport::TransportService* transport, Tracer* tracer, Emit emit)
    : transport_(transport), tracer_(tracer), emit_(std::move(emit)) {}

AppSession::~AppSession() { Shutdown(); }

void AppSession::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  deferred_.clear();
  for (const auto& [key, socket] : qubits_) {
    (void)transport_->Release(transport::QubitRef{key.first, key.second});
  }
  qubits_.clear();
  for (const auto& [socket, listener] : sockets_) (void)transport_->Unbind(socket);
  // Listeners stay alive until destruction: the transport may still hold a
  // pointer while it unwinds a call.
  connections_.clear();
  connect_requests_.clear();
  measurements_.clear();
}

void AppSession::Send(uint64_t request_id, AppEvent event) {
  if (shut_down_) return;
  event.set_version(kVersion);
  event.set_request_id(request_id);
  ++stats_.events;
  emit_(std::move(event));
}

void AppSession::Later(std::function<void()> fn) {
  if (shut_down_) return;
  if (depth_ > 0) {
    deferred_.push_back(std::move(fn));
  } else {
    fn();
  }
}

void AppSession::Reject(uint64_t request_id, const absl::Status& why, DropReason reason) {
  ++stats_.rejected;
  tracer_->Drop(reason, absl::StrCat("app request ", request_id, ": ", why.ToString()));
  AppEvent event;
  SetStatus(why, event.mutable_reply());
  Send(request_id, std::move(event));
}

void AppSession::HandleFrame(std::string_view payload) {
  if (shut_down_) return;
  AppRequest request;
  if (!request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    ++stats_.requests;
    Reject(0, absl::InvalidArgumentError("APP-5: frame is not an AppRequest"),
           results::v1::DROP_REASON_MALFORMED_FRAME);
    return;
  }
  Handle(request);
}

void AppSession::HandleOversized(uint64_t declared_size) {
  if (shut_down_) return;
  ++stats_.requests;
  Reject(0,
         absl::ResourceExhaustedError(
             absl::StrCat("APP-6: frame of ", declared_size, " bytes exceeds the limit")),
         results::v1::DROP_REASON_OVERSIZED_FRAME);
}

void AppSession::Handle(const AppRequest& request) {
  if (shut_down_) return;
  ++stats_.requests;
  if (request.version() != kVersion) {
    Reject(request.request_id(),
           absl::FailedPreconditionError(
               absl::StrCat("APP-2: unsupported version ", request.version(), ", want 1")),
           results::v1::DROP_REASON_VERSION_MISMATCH);
    return;
  }
  if (absl::Status s = Validate(request); !s.ok()) {
    Reject(request.request_id(), s, results::v1::DROP_REASON_UNEXPECTED_FRAME);
    return;
  }
  ++depth_;
  Reply reply = Dispatch(request);
  --depth_;
  if (reply.code() == 0) {
    ++stats_.ok;
  } else {
    ++stats_.transport_errors;
  }
  AppEvent event;
  *event.mutable_reply() = std::move(reply);
  Send(request.request_id(), std::move(event));
  if (depth_ == 0) {
    std::vector<std::function<void()>> held;
    held.swap(deferred_);
    for (auto& fn : held) {
      if (shut_down_) break;
      fn();
    }
  }
}

absl::Status AppSession::CheckSocket(uint64_t socket) const {
  if (sockets_.count(socket) == 0) {
    return absl::NotFoundError(absl::StrCat("APP-10: no socket ", socket, " in this session"));
  }
  return absl::OkStatus();
}

absl::Status AppSession::CheckConnection(uint64_t connection) const {
  if (connections_.count(connection) == 0) {
    return absl::NotFoundError(
        absl::StrCat("APP-11: no connection ", connection, " in this session"));
  }
  return absl::OkStatus();
}

absl::Status AppSession::CheckQubit(const app::v1::QubitRef& qubit) const {
  if (qubits_.count({qubit.connection(), qubit.id()}) == 0) {
    return absl::NotFoundError(absl::StrCat("APP-12: no qubit (", qubit.connection(), ", ",
                                            qubit.id(), ") owned by this session"));
  }
  return absl::OkStatus();
}

absl::Status AppSession::Validate(const AppRequest& r) const {
  if (r.request_id() == 0) return absl::InvalidArgumentError("APP-3: request_id must be non-zero");
  switch (r.body_case()) {
    case AppRequest::kBind:
      if (r.bind().port() == 0) return absl::InvalidArgumentError("APP-7: port must be non-zero");
      return absl::OkStatus();
    case AppRequest::kUnbind:
      return CheckSocket(r.unbind().socket());
    case AppRequest::kConnect: {
      const auto& c = r.connect();
      if (absl::Status s = CheckSocket(c.socket()); !s.ok()) return s;
      if (c.remote_node().empty() || c.remote_port() == 0) {
        return absl::InvalidArgumentError("APP-8: remote node and port are required");
      }
      const auto& q = c.qos();
      if (!(q.min_fidelity() >= 0.0 && q.min_fidelity() <= 1.0)) {
        return absl::InvalidArgumentError("APP-8: min_fidelity must be in [0, 1]");
      }
      if (!(q.min_rate_hz() >= 0.0) || std::isinf(q.min_rate_hz())) {
        return absl::InvalidArgumentError("APP-8: min_rate_hz must be finite and >= 0");
      }
      if (q.has_cutoff_s() && !(q.cutoff_s() > 0.0 && std::isfinite(q.cutoff_s()))) {
        return absl::InvalidArgumentError("APP-8: cutoff_s must be finite and > 0");
      }
      if (!app::v1::PairType_IsValid(q.type()) || !link::v1::BasisChoice_IsValid(q.basis())) {
        return absl::InvalidArgumentError("APP-8: unknown pair type or basis choice");
      }
      return absl::OkStatus();
    }
    case AppRequest::kClose:
      return CheckConnection(r.close().connection());
    case AppRequest::kSend:
      return CheckConnection(r.send().connection());
    case AppRequest::kRelease:
      return CheckQubit(r.release().qubit());
    case AppRequest::kAllocateQubit:
      return CheckSocket(r.allocate_qubit().socket());
    case AppRequest::kGate:
      if (!SingleQubitGate(r.gate().kind())) {
        return absl::InvalidArgumentError("APP-9: only single-qubit gates X Y Z H S RX RY RZ");
      }
      if (!std::isfinite(r.gate().angle())) {
        return absl::InvalidArgumentError("APP-9: angle must be finite");
      }
      return CheckQubit(r.gate().qubit());
    case AppRequest::kMeasure:
      if (r.measure().basis() != physical::v1::BASIS_UNSPECIFIED &&
          r.measure().basis() != physical::v1::BASIS_Z &&
          r.measure().basis() != physical::v1::BASIS_X &&
          r.measure().basis() != physical::v1::BASIS_Y) {
        return absl::InvalidArgumentError("APP-9: basis must be Z, X, Y or UNSPECIFIED");
      }
      if (!std::isfinite(r.measure().angle())) {
        return absl::InvalidArgumentError("APP-9: angle must be finite");
      }
      return CheckQubit(r.measure().qubit());
    case AppRequest::kBellMeasure: {
      const auto& a = r.bell_measure().a();
      const auto& b = r.bell_measure().b();
      if (a.connection() == b.connection() && a.id() == b.id()) {
        return absl::InvalidArgumentError("APP-9: BellMeasure needs two different qubits");
      }
      if (absl::Status s = CheckQubit(a); !s.ok()) return s;
      return CheckQubit(b);
    }
    case AppRequest::BODY_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("APP-5: request has no body");
}

Reply AppSession::Dispatch(const AppRequest& r) {
  Reply reply;
  absl::Status status;
  switch (r.body_case()) {
    case AppRequest::kBind: {
      auto listener = std::make_unique<Listener>(this, 0);
      auto socket = transport_->Bind(r.bind().port(), listener.get());
      status = socket.status();
      if (socket.ok()) {
        listener->set_socket(*socket);
        sockets_[*socket] = std::move(listener);
        reply.set_socket(*socket);
      }
      break;
    }
    case AppRequest::kUnbind: {
      const uint64_t socket = r.unbind().socket();
      // Qubits of the socket go back first (APP-13).
      for (auto it = qubits_.begin(); it != qubits_.end();) {
        if (it->second == socket) {
          (void)transport_->Release(transport::QubitRef{it->first.first, it->first.second});
          it = qubits_.erase(it);
        } else {
          ++it;
        }
      }
      status = transport_->Unbind(socket);
      for (auto it = connections_.begin(); it != connections_.end();) {
        it = it->second == socket ? connections_.erase(it) : std::next(it);
      }
      // The listener object is kept (the transport may still be unwinding);
      // the socket id is no longer usable.
      auto node = sockets_.extract(socket);
      if (!node.empty()) retired_.push_back(std::move(node.mapped()));
      break;
    }
    case AppRequest::kConnect: {
      const auto& c = r.connect();
      auto connection =
          transport_->Connect(c.socket(), c.remote_node(), c.remote_port(), ToTransport(c.qos()));
      status = connection.status();
      if (connection.ok()) {
        connections_[*connection] = c.socket();
        connect_requests_[*connection] = r.request_id();
        reply.set_connection(*connection);
      }
      break;
    }
    case AppRequest::kClose:
      status = transport_->Close(r.close().connection());
      break;
    case AppRequest::kSend:
      status = transport_->Send(r.send().connection(), r.send().data());
      break;
    case AppRequest::kRelease:
      status = transport_->Release(ToTransport(r.release().qubit()));
      if (status.ok()) qubits_.erase({r.release().qubit().connection(), r.release().qubit().id()});
      break;
    case AppRequest::kAllocateQubit: {
      auto qubit = transport_->AllocateQubit(r.allocate_qubit().socket());
      status = qubit.status();
      if (qubit.ok()) {
        qubits_[{qubit->connection, qubit->id}] = r.allocate_qubit().socket();
        *reply.mutable_qubit() = ToProto(*qubit);
      }
      break;
    }
    case AppRequest::kGate:
      status = transport_->Gate(ToTransport(r.gate().qubit()), r.gate().kind(), r.gate().angle());
      break;
    case AppRequest::kMeasure: {
      const auto& m = r.measure();
      auto id = transport_->Measure(ToTransport(m.qubit()), m.basis(), m.angle());
      status = id.status();
      if (id.ok()) {
        qubits_.erase({m.qubit().connection(), m.qubit().id()});
        measurements_[*id] = r.request_id();
        reply.set_measurement(*id);
      }
      break;
    }
    case AppRequest::kBellMeasure: {
      const auto& b = r.bell_measure();
      auto id = transport_->BellMeasure(ToTransport(b.a()), ToTransport(b.b()));
      status = id.status();
      if (id.ok()) {
        qubits_.erase({b.a().connection(), b.a().id()});
        qubits_.erase({b.b().connection(), b.b().id()});
        measurements_[*id] = r.request_id();
        reply.set_measurement(*id);
      }
      break;
    }
    case AppRequest::BODY_NOT_SET:
      status = absl::InvalidArgumentError("no body");
      break;
  }
  if (!status.ok()) {
    Reply error;
    SetStatus(status, &error);
    return error;
  }
  return reply;
}

void AppSession::OnConnected(transport::SocketId socket, const transport::ConnectionInfo& info) {
  Later([this, socket, info] {
    if (sockets_.count(socket) == 0) return;
    connections_[info.connection] = socket;
    uint64_t request_id = 0;
    if (auto it = connect_requests_.find(info.connection); it != connect_requests_.end()) {
      request_id = it->second;
      connect_requests_.erase(it);
    }
    AppEvent event;
    auto* c = event.mutable_connected();
    c->set_connection(info.connection);
    c->set_socket(socket);
    c->set_peer_node(info.peer_node);
    c->set_peer_port(info.peer_port);
    c->set_initiator(info.initiator);
    *c->mutable_qos() = ToProto(info.qos);
    for (const auto& node : info.path) c->add_path(node);
    Send(request_id, std::move(event));
  });
}

void AppSession::OnClosed(transport::ConnectionId connection, transport::CloseReason reason,
                          const std::string& detail) {
  Later([this, connection, reason, detail] {
    if (connections_.erase(connection) == 0) return;
    uint64_t request_id = 0;
    if (auto it = connect_requests_.find(connection); it != connect_requests_.end()) {
      request_id = it->second;  // a Connect that never got Connected
      connect_requests_.erase(it);
    }
    AppEvent event;
    auto* c = event.mutable_closed();
    c->set_connection(connection);
    c->set_reason(ToProto(reason));
    c->set_detail(detail);
    Send(request_id, std::move(event));
  });
}

void AppSession::OnPair(transport::SocketId socket, const transport::Pair& pair) {
  Later([this, socket, pair] {
    if (sockets_.count(socket) == 0) return;
    if (pair.kept) qubits_[{pair.connection, pair.pair_id}] = socket;
    AppEvent event;
    auto* p = event.mutable_pair();
    p->set_connection(pair.connection);
    p->set_pair_id(pair.pair_id);
    p->set_time_ns(static_cast<uint64_t>(pair.time.nanos()));
    p->set_estimated_fidelity(pair.estimated_fidelity);
    p->set_kept(pair.kept);
    p->set_basis(pair.basis);
    p->set_result(pair.result);
    Send(0, std::move(event));
  });
}

void AppSession::OnPairExpired(transport::ConnectionId connection, uint64_t pair_id,
                               const std::string& detail) {
  Later([this, connection, pair_id, detail] {
    if (connections_.count(connection) == 0 && qubits_.count({connection, pair_id}) == 0) return;
    // The qubit, if the app still holds it, goes back (APP-15).
    if (qubits_.erase({connection, pair_id}) > 0) {
      (void)transport_->Release(transport::QubitRef{connection, pair_id});
    }
    AppEvent event;
    auto* e = event.mutable_pair_expired();
    e->set_connection(connection);
    e->set_pair_id(pair_id);
    e->set_detail(detail);
    Send(0, std::move(event));
  });
}

void AppSession::OnData(transport::ConnectionId connection, const std::string& bytes) {
  Later([this, connection, bytes] {
    if (connections_.count(connection) == 0) return;
    AppEvent event;
    event.mutable_data()->set_connection(connection);
    event.mutable_data()->set_data(bytes);
    Send(0, std::move(event));
  });
}

void AppSession::OnMeasured(uint64_t measurement, uint32_t result) {
  Later([this, measurement, result] {
    auto it = measurements_.find(measurement);
    if (it == measurements_.end()) return;
    const uint64_t request_id = it->second;
    measurements_.erase(it);
    AppEvent event;
    event.mutable_measured()->set_measurement(measurement);
    event.mutable_measured()->set_result(result);
    Send(request_id, std::move(event));
  });
}

void AppSession::OnBellMeasured(uint64_t measurement, physical::v1::BellState outcome) {
  Later([this, measurement, outcome] {
    auto it = measurements_.find(measurement);
    if (it == measurements_.end()) return;
    const uint64_t request_id = it->second;
    measurements_.erase(it);
    AppEvent event;
    event.mutable_bell_measured()->set_measurement(measurement);
    event.mutable_bell_measured()->set_bell_state(outcome);
    Send(request_id, std::move(event));
  });
}

}  // namespace qnet::qnode
