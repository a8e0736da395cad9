// Connections, handshake, circuits and pairs of the TransportLayer. Qubit
// operations and physical results are in transport_qubits.cc.
#include "transport/transport_layer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::transport {
namespace {

using results::v1::DropReason;

v1::Qos ToWire(const Qos& q) {
  v1::Qos w;
  w.set_min_fidelity(q.min_fidelity);
  w.set_pairs(q.pairs);
  w.set_min_rate_hz(q.min_rate_hz);
  w.set_type(q.type == PairType::kMeasure ? v1::PAIR_TYPE_MEASURE : v1::PAIR_TYPE_KEEP);
  w.set_basis(q.basis);
  w.set_window(q.window);
  if (q.cutoff) w.set_cutoff_ns(absl::ToInt64Nanoseconds(*q.cutoff));
  if (q.z_probability != 0.5) w.set_z_probability(q.z_probability);
  return w;
}

Qos FromWire(const v1::Qos& w) {
  Qos q;
  q.min_fidelity = w.min_fidelity();
  q.pairs = w.pairs();
  q.min_rate_hz = w.min_rate_hz();
  q.type = w.type() == v1::PAIR_TYPE_MEASURE ? PairType::kMeasure : PairType::kKeep;
  q.basis = w.basis();
  q.window = w.window();
  if (w.has_cutoff_ns()) q.cutoff = absl::Nanoseconds(static_cast<int64_t>(w.cutoff_ns()));
  if (w.has_z_probability()) q.z_probability = w.z_probability();
  return q;
}

// TRN-H5: what both ends check of a QoS; empty if acceptable.
std::string QosProblem(const Qos& q, uint32_t memories, bool wire_type_known = true) {
  if (!(q.min_fidelity >= 0.0 && q.min_fidelity <= 1.0)) return "min_fidelity not in [0, 1]";
  if (!(q.min_rate_hz >= 0.0) || !std::isfinite(q.min_rate_hz)) return "bad min_rate_hz";
  if (!wire_type_known) return "unknown pair type";
  if (!link::v1::BasisChoice_IsValid(q.basis)) return "unknown basis choice";
  if (q.window == 0) return "window 0";
  if (q.window > memories) {
    return absl::StrCat("window ", q.window, " exceeds the node's ", memories, " memories");
  }
  if (q.cutoff && *q.cutoff <= absl::ZeroDuration()) return "cutoff not positive";
  if (!(q.z_probability >= 0.0 && q.z_probability <= 1.0)) return "z_probability not in [0, 1]";
  return "";
}

CloseReason FromWire(v1::CloseReason r) {
  switch (r) {
    case v1::CLOSE_REASON_DONE:
      return CloseReason::kDone;
    case v1::CLOSE_REASON_FAILED:
      return CloseReason::kFailed;
    case v1::CLOSE_REASON_UNREACHABLE:
      return CloseReason::kUnreachable;
    default:
      return CloseReason::kPeer;
  }
}

}  // namespace

TransportLayer::TransportLayer(std::string node, Runtime* runtime, network::NetworkService* network,
                               PhysicalService* physical, link::MemoryPool* memory, Tracer* tracer,
                               TransportOptions options)
    : node_(std::move(node)),
      runtime_(runtime),
      network_(network),
      physical_(physical),
      memory_(memory),
      tracer_(tracer),
      options_(options) {}

TransportLayer::~TransportLayer() = default;

void TransportLayer::Drop(DropReason reason, std::string detail) {
  ++stats_.drops;
  tracer_->Drop(reason, absl::StrCat("transport: ", detail));
}

absl::Status TransportLayer::BadCall(absl::Status status) {
  ++stats_.bad_calls;
  return status;
}

SocketListener* TransportLayer::ListenerOf(SocketId socket) {
  auto it = sockets_.find(socket);
  return it == sockets_.end() ? nullptr : it->second.listener;
}

TransportLayer::Connection* TransportLayer::Find(ConnectionId id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

// ---- Sockets ----

absl::StatusOr<SocketId> TransportLayer::Bind(uint32_t port, SocketListener* listener) {
  if (port == 0 || listener == nullptr) {
    return BadCall(absl::InvalidArgumentError("Bind: port 0 or no listener"));  // TRN-S1
  }
  if (ports_.contains(port)) {
    return BadCall(absl::AlreadyExistsError(absl::StrCat("Bind: port ", port, " is taken")));
  }
  const SocketId id = next_socket_++;
  sockets_[id] = Socket{id, port, listener, {}};
  ports_[port] = id;
  return id;
}

absl::Status TransportLayer::Unbind(SocketId socket) {
  auto it = sockets_.find(socket);
  if (it == sockets_.end()) return BadCall(absl::NotFoundError("Unbind: unknown socket"));
  for (ConnectionId cid : std::set<ConnectionId>(it->second.connections)) {
    if (Connection* c = Find(cid)) {
      Shutdown(*c, CloseReason::kLocal, v1::CLOSE_REASON_CLOSED, "socket unbound", true, false);
    }
  }
  // TRN-S2: the socket's qubits are freed; results of its pending operations are dropped.
  for (auto q = qubits_.begin(); q != qubits_.end();) {
    if (q->second.socket == socket) {
      (void)memory_->Release(q->second.slot);
      q = qubits_.erase(q);
    } else {
      ++q;
    }
  }
  for (auto& [id, op] : pending_) {
    if (op.socket == socket) op.socket = 0;
  }
  ports_.erase(it->second.port);
  sockets_.erase(it);
  return absl::OkStatus();
}

// ---- Connections and handshake ----

TransportLayer::Connection& TransportLayer::NewConnection(SocketId socket, uint32_t local_port) {
  auto c = std::make_unique<Connection>();
  c->id = next_connection_++;
  c->socket = socket;
  c->local_port = local_port;
  const ConnectionId id = c->id;
  c->stream = std::make_unique<ReliableStream>(
      runtime_, options_.stream,
      [this, id](const v1::Segment& s) {
        if (Connection* conn = Find(id)) {
          v1::TransportMessage m;
          *m.mutable_segment() = s;
          SendMessage(*conn, std::move(m));
        }
      },
      [this, id](uint64_t cumulative) {
        if (Connection* conn = Find(id)) {
          v1::TransportMessage m;
          m.mutable_ack()->set_seq(cumulative);
          SendMessage(*conn, std::move(m));
        }
      },
      [this, id](const v1::Segment& s) { HandleSegment(id, s); },
      [this, id] {
        if (Connection* conn = Find(id)) {  // TRN-R5
          Shutdown(*conn, CloseReason::kFailed, v1::CLOSE_REASON_FAILED,
                   "the peer stopped acknowledging", false, true);
        }
      });
  c->handshake_timer = runtime_->CreateTimer([this, id] { OnHandshakeTimeout(id); });
  c->circuit_timer = runtime_->CreateTimer([this, id] {
    Connection* conn = Find(id);
    if (conn == nullptr || conn->state == State::kClosed) return;
    if (conn->state == State::kDraining && conn->initiator) {
      // TRN-D3: the circuit of a done connection is down.
      Shutdown(*conn, CloseReason::kDone, v1::CLOSE_REASON_DONE, "all pairs delivered", true, true);
    } else if (conn->state == State::kDraining) {
      // TRN-D2: deferred so that the network layer acknowledges the last pair
      // before the teardown leaves.
      if (conn->circuit) {
        const network::CircuitKey key = *conn->circuit;
        conn->circuit.reset();
        if (network_) network_->CloseCircuit(key, "all pairs delivered");
      }
    } else if (!conn->circuit) {
      OpenCircuitFor(*conn);
    }
  });
  c->linger_timer = runtime_->CreateTimer([this, id] { Forget(id); });
  Connection& ref = *c;
  connections_[id] = std::move(c);
  sockets_[socket].connections.insert(id);
  return ref;
}

void TransportLayer::SendMessage(const Connection& c, v1::TransportMessage message) {
  message.set_src_connection(c.id);
  message.set_dst_connection(c.peer_connection);
  if (network_ == nullptr) {
    ++stats_.datagram_send_errors;
    return;
  }
  // Best effort: a lost datagram is recovered by the timers (TRN-R4, TRN-H3).
  if (!network_->SendDatagram(c.peer_node, message.SerializeAsString()).ok()) {
    ++stats_.datagram_send_errors;
  }
}

absl::StatusOr<ConnectionId> TransportLayer::Connect(SocketId socket,
                                                     const std::string& remote_node,
                                                     uint32_t remote_port, const Qos& qos) {
  auto s = sockets_.find(socket);
  if (s == sockets_.end()) return BadCall(absl::NotFoundError("Connect: unknown socket"));
  if (remote_node.empty() || remote_node == node_ || remote_port == 0) {
    return BadCall(absl::InvalidArgumentError("Connect: remote must be another node and port"));
  }
  if (std::string problem = QosProblem(qos, memory_->capacity()); !problem.empty()) {
    return BadCall(absl::InvalidArgumentError(absl::StrCat("Connect: ", problem)));  // TRN-H5
  }
  Connection& c = NewConnection(socket, s->second.port);
  c.peer_node = remote_node;
  c.peer_port = remote_port;
  c.initiator = true;
  c.qos = qos;
  c.connect_timeout = options_.stream.initial_timeout;
  ++stats_.connections_initiated;
  SendConnect(c);
  return c.id;
}

void TransportLayer::SendConnect(Connection& c) {
  ++c.connect_attempts;
  v1::TransportMessage m;
  v1::Connect* connect = m.mutable_connect();
  connect->set_src_port(c.local_port);
  connect->set_dst_port(c.peer_port);
  *connect->mutable_qos() = ToWire(c.qos);
  SendMessage(c, std::move(m));
  c.handshake_timer->ArmAt(runtime_->Now() + c.connect_timeout);
}

void TransportLayer::OnHandshakeTimeout(ConnectionId id) {
  Connection* c = Find(id);
  if (c == nullptr || c->state != State::kConnecting) return;
  if (c->connect_attempts >= options_.max_connect_attempts) {  // TRN-H3
    Shutdown(*c, CloseReason::kUnreachable, v1::CLOSE_REASON_UNREACHABLE, "no answer to Connect",
             false, true);
    return;
  }
  c->connect_timeout = std::min(c->connect_timeout * 2, options_.stream.max_timeout);
  SendConnect(*c);
}

void TransportLayer::Refuse(const std::string& source, ConnectionId peer,
                            const std::string& reason) {
  ++stats_.connects_refused;
  v1::TransportMessage m;
  m.set_dst_connection(peer);
  m.mutable_refuse()->set_reason(reason);
  if (network_ == nullptr || !network_->SendDatagram(source, m.SerializeAsString()).ok()) {
    ++stats_.datagram_send_errors;
  }
}

void TransportLayer::HandleConnect(const std::string& source, const v1::TransportMessage& m) {
  const ConnectionId peer = m.src_connection();
  if (peer == 0 || m.dst_connection() != 0) {
    Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "Connect without a source connection id");
    return;
  }
  if (auto it = accepted_.find({source, peer}); it != accepted_.end()) {
    // TRN-H4: a repeated Connect (our Accept was lost) gets the Accept again.
    if (Connection* c = Find(it->second); c != nullptr && c->state != State::kClosed) {
      v1::TransportMessage accept;
      accept.mutable_accept();
      SendMessage(*c, std::move(accept));
    }
    return;
  }
  const v1::Connect& connect = m.connect();
  auto port = ports_.find(connect.dst_port());
  if (port == ports_.end()) {
    Refuse(source, peer, absl::StrCat("no socket at port ", connect.dst_port()));  // TRN-H2
    return;
  }
  const Qos qos = FromWire(connect.qos());
  const bool type_known =
      connect.qos().type() == v1::PAIR_TYPE_KEEP || connect.qos().type() == v1::PAIR_TYPE_MEASURE;
  if (std::string problem = QosProblem(qos, memory_->capacity(), type_known); !problem.empty()) {
    Refuse(source, peer, problem);  // TRN-H5
    return;
  }
  Connection& c = NewConnection(port->second, connect.dst_port());
  c.peer_node = source;
  c.peer_port = connect.src_port();
  c.peer_connection = peer;
  c.qos = qos;
  c.state = State::kOpen;
  accepted_[{source, peer}] = c.id;
  ++stats_.connections_accepted;
  v1::TransportMessage accept;
  accept.mutable_accept();
  SendMessage(c, std::move(accept));
  c.stream->Start();
  if (SocketListener* l = ListenerOf(c.socket)) {
    l->OnConnected(*connection_info(c.id));  // TRN-H1
  }
}

void TransportLayer::HandleAccept(Connection& c, const v1::TransportMessage& m) {
  if (c.state != State::kConnecting) return;  // a repeated Accept
  c.peer_connection = m.src_connection();
  c.state = State::kOpen;
  c.handshake_timer->Cancel();
  c.stream->Start();
  const ConnectionId id = c.id;
  if (SocketListener* l = ListenerOf(c.socket)) l->OnConnected(*connection_info(id));
  if (Connection* again = Find(id); again != nullptr && again->state == State::kOpen) {
    OpenCircuitFor(*again);  // TRN-P1
  }
}

void TransportLayer::OnDatagram(const std::string& source, const std::string& payload) {
  v1::TransportMessage m;
  if (!m.ParseFromString(payload) || m.body_case() == v1::TransportMessage::BODY_NOT_SET) {
    Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "undecodable message from " + source);
    return;
  }
  if (m.has_connect()) {
    HandleConnect(source, m);
    return;
  }
  Connection* c = Find(m.dst_connection());
  // TRN-H6: a message must come from the connection's peer node and, once the
  // peer's id is known, name it.
  const bool from_peer = c != nullptr && c->peer_node == source &&
                         (c->peer_connection == m.src_connection() ||
                          (c->state == State::kConnecting && (m.has_accept() || m.has_refuse())));
  if (c != nullptr && c->state == State::kClosed && c->peer_connection == 0 &&
      c->peer_node == source && m.has_accept() && m.src_connection() != 0) {
    // TRN-S6: closed while connecting; the responder accepted meanwhile.
    c->peer_connection = m.src_connection();
    v1::Segment s;
    s.mutable_close()->set_reason(v1::CLOSE_REASON_CLOSED);
    s.mutable_close()->set_detail("closed while connecting");
    c->stream->Enqueue(std::move(s));
    c->stream->Start();
    return;
  }
  if (!from_peer) {
    Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("message for unknown connection ", m.dst_connection(), " from ", source));
    return;
  }
  if (m.has_accept()) {
    HandleAccept(*c, m);
  } else if (m.has_refuse()) {
    if (c->state == State::kConnecting) {
      Shutdown(*c, CloseReason::kRefused, v1::CLOSE_REASON_UNSPECIFIED, m.refuse().reason(), false,
               true);
    }
  } else if (m.has_segment()) {
    if (m.segment().seq() == 0) {
      Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "segment with seq 0");
      return;
    }
    c->stream->OnSegment(m.segment());
  } else if (m.has_ack()) {
    c->stream->OnAck(m.ack().seq());
  }
}

void TransportLayer::HandleSegment(ConnectionId id, const v1::Segment& segment) {
  Connection* c = Find(id);
  if (c == nullptr || c->state == State::kClosed) return;
  SocketListener* l = ListenerOf(c->socket);
  switch (segment.body_case()) {
    case v1::Segment::kData:
      if (l) l->OnData(id, segment.data().bytes());  // TRN-R6
      break;
    case v1::Segment::kExpired: {
      std::vector<uint64_t> ids(segment.expired().pair_ids().begin(),
                                segment.expired().pair_ids().end());
      Expire(*c, ids, segment.expired().detail());  // TRN-E2
      break;
    }
    case v1::Segment::kDone:
      if (!c->initiator && c->state == State::kOpen) {  // TRN-D2
        c->done_last = segment.done().last_pair_id();
        c->state = State::kDraining;
        MaybeCloseDrainedCircuit(*c);
      }
      break;
    case v1::Segment::kClose:
      Shutdown(*c, FromWire(segment.close().reason()), v1::CLOSE_REASON_UNSPECIFIED,
               segment.close().detail(), false, true);  // TRN-S4
      break;
    default:
      Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "empty segment");
  }
}

absl::Status TransportLayer::Close(ConnectionId connection) {
  Connection* c = Find(connection);
  if (c == nullptr || c->state == State::kClosed) {
    return BadCall(absl::NotFoundError("Close: unknown or closed connection"));
  }
  Shutdown(*c, CloseReason::kLocal, v1::CLOSE_REASON_CLOSED, "closed by the peer", true, true);
  return absl::OkStatus();
}

absl::Status TransportLayer::Send(ConnectionId connection, std::string bytes) {
  Connection* c = Find(connection);
  if (c == nullptr || c->state == State::kClosed) {
    return BadCall(absl::NotFoundError("Send: unknown or closed connection"));
  }
  if (bytes.size() > options_.max_data_bytes) {
    return BadCall(absl::InvalidArgumentError("Send: message too large"));
  }
  v1::Segment s;
  s.mutable_data()->set_bytes(std::move(bytes));
  c->stream->Enqueue(std::move(s));  // queued until the handshake completes
  return absl::OkStatus();
}

void TransportLayer::Shutdown(Connection& c, CloseReason reason, v1::CloseReason wire,
                              const std::string& detail, bool send_close, bool notify) {
  if (c.state == State::kClosed || c.closing) return;
  c.closing = true;
  c.handshake_timer->Cancel();
  c.circuit_timer->Cancel();
  // Closing the circuit first lets the head's teardown expiries (reported
  // synchronously) go out as Expired ahead of Close (TRN-E3).
  if (c.circuit) {
    const network::CircuitKey key = *c.circuit;
    c.circuit.reset();
    if (network_) network_->CloseCircuit(key, detail);
  }
  if (send_close && c.peer_connection != 0) {
    v1::Segment s;
    s.mutable_close()->set_reason(wire);
    s.mutable_close()->set_detail(detail);
    c.stream->Enqueue(std::move(s));
  }
  c.state = State::kClosed;
  // Kept pairs the owner never saw go back to the pool (TRN-W3); qubits the
  // owner holds stay its own until it releases them.
  for (uint64_t id : c.waiting) {
    auto q = qubits_.find({c.id, id});
    if (q != qubits_.end()) {
      DiscardSlot(q->second.slot, "connection closed before the pair was handed over");
      qubits_.erase(q);
    }
  }
  c.waiting.clear();
  c.waiting_pairs.clear();
  c.linger_timer->ArmAt(runtime_->Now() + options_.linger);
  if (notify) {
    if (SocketListener* l = ListenerOf(c.socket)) l->OnClosed(c.id, reason, detail);
  }
}

void TransportLayer::Forget(ConnectionId id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  c.stream->Stop();
  accepted_.erase({c.peer_node, c.peer_connection});
  for (auto b = circuits_.begin(); b != circuits_.end();) {
    b = b->second.connection == id ? circuits_.erase(b) : std::next(b);
  }
  if (auto s = sockets_.find(c.socket); s != sockets_.end()) s->second.connections.erase(id);
  connections_.erase(it);
}

std::optional<ConnectionInfo> TransportLayer::connection_info(ConnectionId connection) const {
  auto it = connections_.find(connection);
  if (it == connections_.end() || it->second->state == State::kClosed) return std::nullopt;
  const Connection& c = *it->second;
  return ConnectionInfo{c.id, c.socket, c.peer_node, c.peer_port, c.initiator, c.qos, c.path};
}

// ---- Circuits ----

void TransportLayer::OpenCircuitFor(Connection& c) {
  v1::CircuitUpper upper;
  upper.set_connection(c.id);
  upper.set_first_pair_id(c.last_pair_id + 1);  // TRN-P2
  network::CircuitRequest request;
  request.remote_node = c.peer_node;
  request.min_fidelity = c.qos.min_fidelity;
  request.cutoff = c.qos.cutoff;
  request.min_rate_hz = c.qos.min_rate_hz;
  request.upper = upper.SerializeAsString();
  // TRN-W4: the circuit holds up to `window` pairs per side of each node.
  request.depth = c.qos.window;
  if (c.qos.type == PairType::kMeasure) {  // TRN-M1: the ends measure directly
    network::EndMeasure m;
    m.basis = c.qos.basis;
    if (c.qos.z_probability != 0.5) m.z_probability = c.qos.z_probability;
    request.measure = m;
  }
  absl::StatusOr<network::CircuitKey> key =
      network_ ? network_->OpenCircuit(request) : absl::UnavailableError("no network layer");
  if (!key.ok()) {
    // TRN-F3: refusals that a retry cannot change (the network layer's
    // NOTIME, MALFORMED, REFUSED, DUPLICATE) end the connection at once.
    const absl::StatusCode code = key.status().code();
    if (code == absl::StatusCode::kFailedPrecondition ||
        code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kPermissionDenied ||
        code == absl::StatusCode::kAlreadyExists) {
      c.failed_opens = std::max(c.failed_opens, options_.max_reroutes);
    }
    CircuitFailed(c, std::string(key.status().message()));
    return;
  }
  ++stats_.circuits_opened;
  if (c.ever_up) ++stats_.reroutes;
  c.circuit = *key;
  circuits_[*key] = Binding{c.id, c.last_pair_id + 1};
}

void TransportLayer::CircuitFailed(Connection& c, const std::string& detail) {
  if (++c.failed_opens > options_.max_reroutes) {  // TRN-F3
    const bool up_before = c.ever_up;
    Shutdown(c, up_before ? CloseReason::kFailed : CloseReason::kUnreachable,
             up_before ? v1::CLOSE_REASON_FAILED : v1::CLOSE_REASON_UNREACHABLE,
             absl::StrCat("no circuit after ", c.failed_opens, " attempts: ", detail), true, true);
    return;
  }
  // TRN-F2: exponential backoff before the next attempt.
  absl::Duration backoff = options_.reroute_backoff;
  for (uint32_t i = 1; i < c.failed_opens; ++i) backoff *= 2;
  c.circuit_timer->ArmAt(runtime_->Now() + backoff);
}

absl::Status TransportLayer::OnIncomingCircuit(const network::CircuitInfo& info) {
  v1::CircuitUpper upper;
  if (!upper.ParseFromString(info.upper) || upper.connection() == 0 || upper.first_pair_id() == 0) {
    Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "circuit with undecodable upper bytes");
    return absl::InvalidArgumentError("transport: malformed circuit request");
  }
  auto it = accepted_.find({info.remote_node, upper.connection()});
  Connection* c = it == accepted_.end() ? nullptr : Find(it->second);
  // TRN-P3: only a live accepted connection, with ids that continue its own.
  if (c == nullptr || c->state != State::kOpen || upper.first_pair_id() <= c->last_pair_id) {
    Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
         "circuit for no live connection from " + info.remote_node);
    return absl::FailedPreconditionError("transport: no live connection for this circuit");
  }
  c->circuit = info.key;
  circuits_[info.key] = Binding{c->id, upper.first_pair_id()};
  return absl::OkStatus();
}

void TransportLayer::OnCircuitUp(const network::CircuitInfo& info) {
  auto b = circuits_.find(info.key);
  Connection* c = b == circuits_.end() ? nullptr : Find(b->second.connection);
  if (c == nullptr || c->circuit != info.key) return;  // closed meanwhile
  c->path = info.path;
  c->ever_up = true;
  c->failed_opens = 0;
}

void TransportLayer::OnCircuitDown(const network::CircuitKey& key, network::v1::CircuitError code,
                                   const std::string& detail) {
  auto b = circuits_.find(key);
  Connection* c = b == circuits_.end() ? nullptr : Find(b->second.connection);
  if (c == nullptr || c->circuit != key || c->closing) return;  // stale or being closed
  c->circuit.reset();
  c->path.clear();
  if (!c->initiator) return;  // TRN-F1: the head replaces it, or closes
  if (c->state == State::kDraining) {
    // TRN-D3: finish after the expiries this teardown reports (same instant).
    c->circuit_timer->ArmAt(runtime_->Now());
    return;
  }
  if (c->state != State::kOpen) return;
  if (code == network::v1::CIRCUIT_ERROR_REFUSED || code == network::v1::CIRCUIT_ERROR_MALFORMED ||
      code == network::v1::CIRCUIT_ERROR_NOTIME) {
    c->failed_opens = options_.max_reroutes;  // TRN-F4: not worth retrying
  }
  CircuitFailed(*c, absl::StrCat(network::v1::CircuitError_Name(code), ": ", detail));
}

void TransportLayer::MaybeCloseDrainedCircuit(Connection& c) {
  // TRN-D2: the responder has seen every id up to the last (or a later one).
  if (c.state != State::kDraining || c.initiator || !c.circuit) return;
  if (c.last_pair_id < c.done_last) return;
  c.circuit_timer->ArmAt(runtime_->Now());
}

// ---- Pairs ----

void TransportLayer::DiscardSlot(uint32_t slot, const std::string& why) {
  ++stats_.pairs_discarded;
  (void)memory_->Release(slot);
  tracer_->Drop(results::v1::DROP_REASON_PAIR_EXPIRED, "transport: " + why);
}

void TransportLayer::DiscardPair(const network::EndPair& pair, const std::string& why) {
  if (!pair.measured) return DiscardSlot(pair.slot, why);
  ++stats_.pairs_discarded;
  tracer_->Drop(results::v1::DROP_REASON_PAIR_EXPIRED, "transport: " + why);
}

void TransportLayer::OnPair(const network::EndPair& pair) {
  auto b = circuits_.find(pair.circuit);
  Connection* c = b == circuits_.end() ? nullptr : Find(b->second.connection);
  if (c == nullptr || c->state == State::kClosed || pair.seq == 0) {
    ++stats_.drops;
    DiscardPair(pair, "pair of a circuit with no live connection");
    return;
  }
  HandlePair(*c, b->second.first_pair_id + pair.seq - 1, pair);  // TRN-P2
}

void TransportLayer::HandlePair(Connection& c, uint64_t pair_id, const network::EndPair& pair) {
  c.last_pair_id = std::max(c.last_pair_id, pair_id);
  const bool beyond_done = c.done_last != 0 && pair_id > c.done_last;
  const bool measure = c.qos.type == PairType::kMeasure;
  if (c.expired.contains(pair_id) || beyond_done || c.seen.contains(pair_id) ||
      measure != pair.measured) {
    DiscardPair(pair, measure != pair.measured
                          ? absl::StrCat("pair ", pair_id, " not of the connection's type")
                          : absl::StrCat("pair ", pair_id, " expired or beyond the last"));
    MaybeCloseDrainedCircuit(c);
    return;
  }
  Pair p;
  p.connection = c.id;
  p.pair_id = pair_id;
  p.time = pair.delivered;
  p.estimated_fidelity = pair.estimated_fidelity;
  if (measure) {  // TRN-M1, TRN-M3: measured directly by the link layer at this end
    p.kept = false;
    p.basis = pair.basis;
    p.result = pair.result;
    Announce(c, p);
  } else {
    qubits_[{c.id, pair_id}] = Qubit{c.socket, pair.slot, false};
    c.waiting.push_back(pair_id);
    c.waiting_pairs[pair_id] = p;
    PromoteWaiting(c);  // TRN-W1
  }
  const ConnectionId id = c.id;
  Connection* again = Find(id);
  if (again == nullptr || again->state == State::kClosed) return;
  if (again->initiator && again->qos.pairs != 0 && pair_id >= again->qos.pairs &&
      again->state == State::kOpen) {
    // TRN-D1: the last pair: tell the responder, hand out nothing later.
    again->state = State::kDraining;
    again->done_last = again->qos.pairs;
    v1::Segment s;
    s.mutable_done()->set_last_pair_id(again->done_last);
    again->stream->Enqueue(std::move(s));
  }
  MaybeCloseDrainedCircuit(*again);
}

void TransportLayer::Announce(Connection& c, const Pair& pair) {
  c.seen.insert(pair.pair_id);
  ++stats_.pairs_delivered;
  if (SocketListener* l = ListenerOf(c.socket)) l->OnPair(pair);
}

void TransportLayer::PromoteWaiting(Connection& c) {
  const ConnectionId id = c.id;
  while (true) {
    Connection* conn = Find(id);
    if (conn == nullptr || conn->state == State::kClosed || conn->waiting.empty() ||
        conn->held >= conn->qos.window) {
      return;
    }
    const uint64_t pair_id = conn->waiting.front();
    conn->waiting.pop_front();
    Pair p = conn->waiting_pairs[pair_id];
    conn->waiting_pairs.erase(pair_id);
    auto q = qubits_.find({id, pair_id});
    if (q == qubits_.end()) continue;
    q->second.announced = true;
    ++conn->held;
    Announce(*conn, p);
  }
}

void TransportLayer::OnPairExpired(const network::CircuitKey& key, uint64_t seq,
                                   const std::string& detail) {
  auto b = circuits_.find(key);
  Connection* c = b == circuits_.end() ? nullptr : Find(b->second.connection);
  if (c == nullptr || c->state == State::kClosed || seq == 0) return;
  const uint64_t pair_id = b->second.first_pair_id + seq - 1;
  if (c->expired.contains(pair_id)) return;
  // TRN-E1: the head tells the responder, then both ends report.
  v1::Segment s;
  s.mutable_expired()->add_pair_ids(pair_id);
  s.mutable_expired()->set_detail(detail);
  c->stream->Enqueue(std::move(s));
  Expire(*c, {pair_id}, detail);
}

void TransportLayer::Expire(Connection& c, const std::vector<uint64_t>& ids,
                            const std::string& detail) {
  const ConnectionId id = c.id;
  for (uint64_t pair_id : ids) {
    Connection* conn = Find(id);
    if (conn == nullptr || conn->state == State::kClosed) return;
    if (!conn->expired.insert(pair_id).second) continue;
    auto q = qubits_.find({id, pair_id});
    if (q != qubits_.end()) {  // TRN-E4: a qubit still held is freed
      const bool announced = q->second.announced;
      (void)memory_->Release(q->second.slot);
      qubits_.erase(q);
      if (announced) {
        --conn->held;
      } else {
        std::erase(conn->waiting, pair_id);
        conn->waiting_pairs.erase(pair_id);
        ++stats_.pairs_discarded;
      }
    }
    if (conn->seen.contains(pair_id)) {  // TRN-E2: only ids the owner saw
      ++stats_.pairs_expired;
      if (SocketListener* l = ListenerOf(conn->socket)) l->OnPairExpired(id, pair_id, detail);
    }
  }
  if (Connection* conn = Find(id)) PromoteWaiting(*conn);
}

}  // namespace qnet::transport
