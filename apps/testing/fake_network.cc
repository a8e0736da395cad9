#include "apps/testing/fake_network.h"

#include <cmath>
#include <numbers>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qnet::apps::testing {
namespace {

using C = std::complex<double>;
constexpr C kI(0.0, 1.0);
const double kR = 1.0 / std::numbers::sqrt2;

struct Gate2 {
  C m[2][2];
};

Gate2 GateMatrix(physical::v1::GateKind kind, double angle) {
  const double c = std::cos(angle / 2), s = std::sin(angle / 2);
  switch (kind) {
    case physical::v1::GATE_KIND_X:
      return {{{0, 1}, {1, 0}}};
    case physical::v1::GATE_KIND_Y:
      return {{{0, -kI}, {kI, 0}}};
    case physical::v1::GATE_KIND_Z:
      return {{{1, 0}, {0, -1}}};
    case physical::v1::GATE_KIND_H:
      return {{{kR, kR}, {kR, -kR}}};
    case physical::v1::GATE_KIND_S:
      return {{{1, 0}, {0, kI}}};
    case physical::v1::GATE_KIND_RX:
      return {{{c, -kI * s}, {-kI * s, c}}};
    case physical::v1::GATE_KIND_RY:
      return {{{c, -s}, {s, c}}};
    default:  // RZ
      return {{{std::exp(-kI * (angle / 2)), 0}, {0, std::exp(kI * (angle / 2))}}};
  }
}

physical::v1::BellState BellOf(uint32_t x, uint32_t z) {
  if (x == 0)
    return z == 0 ? physical::v1::BELL_STATE_PHI_PLUS : physical::v1::BELL_STATE_PHI_MINUS;
  return z == 0 ? physical::v1::BELL_STATE_PSI_PLUS : physical::v1::BELL_STATE_PSI_MINUS;
}

}  // namespace

// ---- StateVector ----

int StateVector::Add() {
  qubits_.push_back(next_);
  amp_.resize(amp_.size() * 2, C(0.0));  // new top bit 0
  return next_++;
}

int StateVector::Position(int q) const {
  for (size_t i = 0; i < qubits_.size(); ++i) {
    if (qubits_[i] == q) return static_cast<int>(i);
  }
  return -1;
}

void StateVector::Apply(int q, const C m[2][2]) {
  const size_t bit = size_t{1} << Position(q);
  for (size_t i = 0; i < amp_.size(); ++i) {
    if (i & bit) continue;
    const C a0 = amp_[i], a1 = amp_[i | bit];
    amp_[i] = m[0][0] * a0 + m[0][1] * a1;
    amp_[i | bit] = m[1][0] * a0 + m[1][1] * a1;
  }
}

void StateVector::Cnot(int control, int target) {
  const size_t cb = size_t{1} << Position(control), tb = size_t{1} << Position(target);
  for (size_t i = 0; i < amp_.size(); ++i) {
    if ((i & cb) && !(i & tb)) std::swap(amp_[i], amp_[i | tb]);
  }
}

uint32_t StateVector::MeasureAndRemove(int q, double u) {
  const int pos = Position(q);
  const size_t bit = size_t{1} << pos;
  double p1 = 0.0;
  for (size_t i = 0; i < amp_.size(); ++i) {
    if (i & bit) p1 += std::norm(amp_[i]);
  }
  const uint32_t outcome = u < p1 ? 1 : 0;
  const double norm = std::sqrt(outcome ? p1 : 1.0 - p1);
  std::vector<C> next(amp_.size() / 2);
  for (size_t i = 0; i < amp_.size(); ++i) {
    if (((i & bit) != 0) != (outcome == 1)) continue;
    const size_t low = i & (bit - 1), high = (i >> (pos + 1)) << pos;
    next[low | high] = amp_[i] / norm;
  }
  amp_ = std::move(next);
  qubits_.erase(qubits_.begin() + pos);
  return outcome;
}

// ---- Client ----

class FakeNetwork::NodeClient : public AppClient {
 public:
  NodeClient(FakeNetwork* network, std::string node) : network_(network), node_(std::move(node)) {}
  void SetHandlers(Handlers handlers) override { handlers_ = std::move(handlers); }
  uint64_t Send(app::v1::AppRequest request) override {
    request.set_version(1);
    if (request.request_id() == 0) request.set_request_id(next_request_++);
    network_->Handle(node_, request);
    return request.request_id();
  }
  void Deliver(const app::v1::AppEvent& event) {
    if (handlers_.on_event) handlers_.on_event(event);
  }

 private:
  FakeNetwork* network_;
  std::string node_;
  Handlers handlers_;
  uint64_t next_request_ = 1;
};

struct FakeNetwork::Connection {
  struct End {
    std::string node;
    uint64_t socket = 0, id = 0;
    uint32_t held = 0;
  };
  End end[2];  // initiator, responder
  uint32_t window = 1;
  app::v1::Qos qos;
  bool open = true;
  uint64_t next_pair = 1;
  int Side(uint64_t local_id) const { return end[0].id == local_id ? 0 : 1; }
};

FakeNetwork::FakeNetwork(double fidelity, uint64_t seed) : fidelity_(fidelity), rng_(seed) {}
FakeNetwork::~FakeNetwork() = default;

AppClient* FakeNetwork::Client(const std::string& name) {
  auto& c = clients_[name];
  if (!c) c = std::make_unique<NodeClient>(this, name);
  return c.get();
}

size_t FakeNetwork::Run(size_t limit) {
  size_t n = 0;
  while (n < limit) {
    if (queue_.empty() && !GenerateMeasured()) break;
    if (queue_.empty()) continue;
    auto [node, event] = std::move(queue_.front());
    queue_.pop_front();
    clients_.at(node)->Deliver(event);
    ++n;
  }
  return n;
}

void FakeNetwork::Post(const std::string& node, uint64_t request_id, app::v1::AppEvent event) {
  event.set_version(1);
  event.set_request_id(request_id);
  queue_.emplace_back(node, std::move(event));
}

FakeNetwork::Qubit* FakeNetwork::Find(const std::string& node, const app::v1::QubitRef& q) {
  auto it = qubits_.find({node, {q.connection(), q.id()}});
  return it == qubits_.end() ? nullptr : &it->second;
}

void FakeNetwork::Forget(const std::string& node, const app::v1::QubitRef& q) {
  auto it = qubits_.find({node, {q.connection(), q.id()}});
  if (it == qubits_.end()) return;
  if (auto c = connections_.find(q.connection()); c != connections_.end() && q.connection()) {
    --c->second->end[c->second->Side(q.connection())].held;
  }
  qubits_.erase(it);
}

// Werner = Bell mixture: PHI_PLUS with w + (1-w)/4, each other Bell state
// (1-w)/4; the pair's two qubits go to handles[0] and handles[1].
void FakeNetwork::AddWernerPair(double w, int handles[2]) {
  uint32_t x = 0, z = 0;
  if (!rng_.Bernoulli(w)) {
    const uint64_t k = rng_.Below(4);
    x = k & 1;
    z = (k >> 1) & 1;
  }
  handles[0] = state_.Add();
  handles[1] = state_.Add();
  state_.Apply(handles[0], GateMatrix(physical::v1::GATE_KIND_H, 0).m);
  state_.Cnot(handles[0], handles[1]);
  if (x) state_.Apply(handles[1], GateMatrix(physical::v1::GATE_KIND_X, 0).m);
  if (z) state_.Apply(handles[1], GateMatrix(physical::v1::GATE_KIND_Z, 0).m);
}

uint32_t FakeNetwork::Measure(int handle, physical::v1::Basis basis, double angle) {
  switch (basis) {
    case physical::v1::BASIS_Z:
      break;
    case physical::v1::BASIS_X:
      state_.Apply(handle, GateMatrix(physical::v1::GATE_KIND_H, 0).m);
      break;
    case physical::v1::BASIS_Y: {
      const C sdg[2][2] = {{1, 0}, {0, -kI}};
      state_.Apply(handle, sdg);
      state_.Apply(handle, GateMatrix(physical::v1::GATE_KIND_H, 0).m);
      break;
    }
    default:  // cos(angle) Z + sin(angle) X: rotate its +1 eigenstate RY(angle)|0> to |0>
      state_.Apply(handle, GateMatrix(physical::v1::GATE_KIND_RY, -angle).m);
      break;
  }
  return state_.MeasureAndRemove(handle, rng_.Uniform());
}

void FakeNetwork::Handle(const std::string& node, const app::v1::AppRequest& request) {
  app::v1::AppEvent event;
  *event.mutable_reply() = Dispatch(node, request);
  if (event.reply().code() != 0) {
    ++errors_;
    last_error_ =
        absl::StrCat(node, ": ", request.ShortDebugString(), " -> ", event.reply().message());
  }
  // The reply goes before the events the request caused (APP-4).
  Post(node, request.request_id(), std::move(event));
  for (auto& [n, e] : pending_) queue_.emplace_back(std::move(n), std::move(e));
  pending_.clear();
  Generate();
}

void FakeNetwork::Cause(const std::string& node, uint64_t request_id, app::v1::AppEvent event) {
  event.set_version(1);
  event.set_request_id(request_id);
  pending_.emplace_back(node, std::move(event));
}

app::v1::Reply FakeNetwork::Dispatch(const std::string& node, const app::v1::AppRequest& r) {
  app::v1::Reply reply;
  auto fail = [&reply](absl::Status s) {
    reply.set_code(static_cast<int>(s.code()));
    reply.set_message(std::string(s.message()));
    return reply;
  };
  const uint64_t rid = r.request_id();
  switch (r.body_case()) {
    case app::v1::AppRequest::kBind:
      for (const auto& [id, s] : sockets_) {
        if (s.node == node && s.port == r.bind().port())
          return fail(absl::AlreadyExistsError("port"));
      }
      sockets_[next_id_] = Socket{node, r.bind().port()};
      reply.set_socket(next_id_++);
      return reply;
    case app::v1::AppRequest::kUnbind: {
      auto it = sockets_.find(r.unbind().socket());
      if (it == sockets_.end() || it->second.node != node)
        return fail(absl::NotFoundError("socket"));
      for (auto& [id, c] : connections_) {
        if (c->open && c->end[c->Side(id)].socket == it->first)
          Close(id, app::v1::CLOSE_REASON_LOCAL);
      }
      sockets_.erase(it);
      return reply;
    }
    case app::v1::AppRequest::kConnect: {
      const auto& req = r.connect();
      auto it = sockets_.find(req.socket());
      if (it == sockets_.end() || it->second.node != node)
        return fail(absl::NotFoundError("socket"));
      const uint64_t local = next_id_++;
      reply.set_connection(local);
      uint64_t remote_socket = 0;
      for (const auto& [id, s] : sockets_) {
        if (s.node == req.remote_node() && s.port == req.remote_port()) remote_socket = id;
      }
      if (remote_socket == 0 || !clients_.count(req.remote_node())) {
        app::v1::AppEvent closed;
        closed.mutable_closed()->set_connection(local);
        closed.mutable_closed()->set_reason(app::v1::CLOSE_REASON_REFUSED);
        Cause(node, rid, std::move(closed));
        return reply;
      }
      auto c = std::make_shared<Connection>();
      c->end[0] = {node, req.socket(), local, 0};
      c->end[1] = {req.remote_node(), remote_socket, next_id_++, 0};
      c->window = req.qos().window() ? req.qos().window() : 1;
      c->qos = req.qos();
      connections_[c->end[0].id] = c;
      connections_[c->end[1].id] = c;
      for (int side = 0; side < 2; ++side) {
        app::v1::AppEvent up;
        auto* u = up.mutable_connected();
        u->set_connection(c->end[side].id);
        u->set_socket(c->end[side].socket);
        u->set_peer_node(c->end[1 - side].node);
        u->set_peer_port(sockets_[c->end[1 - side].socket].port);
        u->set_initiator(side == 0);
        *u->mutable_qos() = req.qos();
        Cause(c->end[side].node, side == 0 ? rid : 0, std::move(up));
      }
      return reply;
    }
    case app::v1::AppRequest::kClose: {
      auto it = connections_.find(r.close().connection());
      if (it == connections_.end() || it->second->end[it->second->Side(it->first)].node != node ||
          !it->second->open) {
        return fail(absl::NotFoundError("connection"));
      }
      Close(it->first, app::v1::CLOSE_REASON_LOCAL);
      return reply;
    }
    case app::v1::AppRequest::kSend: {
      auto it = connections_.find(r.send().connection());
      if (it == connections_.end() || !it->second->open)
        return fail(absl::NotFoundError("connection"));
      const auto& other = it->second->end[1 - it->second->Side(it->first)];
      app::v1::AppEvent data;
      data.mutable_data()->set_connection(other.id);
      data.mutable_data()->set_data(r.send().data());
      Cause(other.node, 0, std::move(data));
      return reply;
    }
    case app::v1::AppRequest::kRelease: {
      Qubit* q = Find(node, r.release().qubit());
      if (!q) return fail(absl::NotFoundError("qubit"));
      state_.MeasureAndRemove(q->handle, rng_.Uniform());  // same as a partial trace
      Forget(node, r.release().qubit());
      return reply;
    }
    case app::v1::AppRequest::kAllocateQubit: {
      const uint64_t id = next_id_++;
      qubits_[{node, {0, id}}] = Qubit{state_.Add(), node, 0};
      reply.mutable_qubit()->set_id(id);
      return reply;
    }
    case app::v1::AppRequest::kGate: {
      Qubit* q = Find(node, r.gate().qubit());
      if (!q) return fail(absl::NotFoundError("qubit"));
      state_.Apply(q->handle, GateMatrix(r.gate().kind(), r.gate().angle()).m);
      return reply;
    }
    case app::v1::AppRequest::kMeasure: {
      Qubit* q = Find(node, r.measure().qubit());
      if (!q) return fail(absl::NotFoundError("qubit"));
      const uint32_t result = Measure(q->handle, r.measure().basis(), r.measure().angle());
      Forget(node, r.measure().qubit());
      const uint64_t m = next_id_++;
      reply.set_measurement(m);
      app::v1::AppEvent e;
      e.mutable_measured()->set_measurement(m);
      e.mutable_measured()->set_result(result);
      Cause(node, rid, std::move(e));
      return reply;
    }
    case app::v1::AppRequest::kBellMeasure: {
      Qubit* a = Find(node, r.bell_measure().a());
      Qubit* b = Find(node, r.bell_measure().b());
      if (!a || !b || a == b) return fail(absl::NotFoundError("qubit"));
      // PHYS-M7: CNOT(a -> b), H(a), Z measurements; a gives z, b gives x.
      state_.Cnot(a->handle, b->handle);
      state_.Apply(a->handle, GateMatrix(physical::v1::GATE_KIND_H, 0).m);
      const uint32_t z = state_.MeasureAndRemove(a->handle, rng_.Uniform());
      const uint32_t x = state_.MeasureAndRemove(b->handle, rng_.Uniform());
      Forget(node, r.bell_measure().a());
      Forget(node, r.bell_measure().b());
      const uint64_t m = next_id_++;
      reply.set_measurement(m);
      app::v1::AppEvent e;
      e.mutable_bell_measured()->set_measurement(m);
      e.mutable_bell_measured()->set_bell_state(BellOf(x, z));
      Cause(node, rid, std::move(e));
      return reply;
    }
    case app::v1::AppRequest::BODY_NOT_SET:
      break;
  }
  return fail(absl::InvalidArgumentError("no body"));
}

void FakeNetwork::Close(uint64_t connection, app::v1::CloseReason local_reason) {
  auto c = connections_.at(connection);
  c->open = false;
  const int side = c->Side(connection);
  for (int s = 0; s < 2; ++s) {
    app::v1::AppEvent e;
    e.mutable_closed()->set_connection(c->end[s].id);
    e.mutable_closed()->set_reason(s == side ? local_reason : app::v1::CLOSE_REASON_PEER);
    Cause(c->end[s].node, 0, std::move(e));
  }
}

void FakeNetwork::Generate() {
  const double w = (4.0 * fidelity_ - 1.0) / 3.0;
  for (auto& [id, c] : connections_) {
    if (id != c->end[0].id) continue;                           // once per connection
    if (c->qos.type() == app::v1::PAIR_TYPE_MEASURE) continue;  // GenerateMeasured
    while (c->open && c->end[0].held < c->window && c->end[1].held < c->window) {
      int handles[2];
      AddWernerPair(w, handles);
      const uint64_t pair_id = c->next_pair++;
      ++pairs_generated_;
      for (int s = 0; s < 2; ++s) {
        qubits_[{c->end[s].node, {c->end[s].id, pair_id}}] =
            Qubit{handles[s], c->end[s].node, c->end[s].id};
        ++c->end[s].held;
        app::v1::AppEvent e;
        auto* p = e.mutable_pair();
        p->set_connection(c->end[s].id);
        p->set_pair_id(pair_id);
        p->set_kept(true);
        p->set_estimated_fidelity(fidelity_);
        Post(c->end[s].node, 0, std::move(e));
      }
      if (expire_every_ > 0 && pair_id % expire_every_ == 0) {
        for (int s = 0; s < 2; ++s) {
          const app::v1::QubitRef ref = [&] {
            app::v1::QubitRef q;
            q.set_connection(c->end[s].id);
            q.set_id(pair_id);
            return q;
          }();
          state_.MeasureAndRemove(Find(c->end[s].node, ref)->handle, rng_.Uniform());
          Forget(c->end[s].node, ref);
          app::v1::AppEvent e;
          e.mutable_pair_expired()->set_connection(c->end[s].id);
          e.mutable_pair_expired()->set_pair_id(pair_id);
          Post(c->end[s].node, 0, std::move(e));
        }
      }
    }
  }
}

}  // namespace qnet::apps::testing

namespace qnet::apps::testing {

bool FakeNetwork::GenerateMeasured() {
  const double w = (4.0 * fidelity_ - 1.0) / 3.0;
  bool any = false;
  for (auto& [id, c] : connections_) {
    if (id != c->end[0].id || !c->open || c->qos.type() != app::v1::PAIR_TYPE_MEASURE) continue;
    any = true;
    for (uint32_t i = 0; i < measure_batch_ && c->open; ++i) {
      if (c->qos.pairs() > 0 && c->next_pair > c->qos.pairs()) {
        Close(c->end[0].id, app::v1::CLOSE_REASON_DONE);
        for (auto& [n, e] : pending_) {
          e.mutable_closed()->set_reason(app::v1::CLOSE_REASON_DONE);
          queue_.emplace_back(std::move(n), std::move(e));
        }
        pending_.clear();
        break;
      }
      int handles[2];
      AddWernerPair(w, handles);
      const uint64_t pair_id = c->next_pair++;
      ++pairs_generated_;
      for (int s = 0; s < 2; ++s) {
        physical::v1::Basis basis = physical::v1::BASIS_Z;
        switch (c->qos.basis()) {
          case link::v1::BASIS_CHOICE_Z:
            break;
          case link::v1::BASIS_CHOICE_X:
            basis = physical::v1::BASIS_X;
            break;
          case link::v1::BASIS_CHOICE_Y:
            basis = physical::v1::BASIS_Y;
            break;
          case link::v1::BASIS_CHOICE_XYZ: {
            const physical::v1::Basis b3[3] = {physical::v1::BASIS_X, physical::v1::BASIS_Y,
                                               physical::v1::BASIS_Z};
            basis = b3[rng_.Below(3)];
            break;
          }
          default: {  // XZ, UNSPECIFIED (TRN-M2a)
            const double pz = c->qos.has_z_probability() ? c->qos.z_probability() : 0.5;
            basis = rng_.Bernoulli(pz) ? physical::v1::BASIS_Z : physical::v1::BASIS_X;
            break;
          }
        }
        const uint32_t result = Measure(handles[s], basis, 0.0);
        app::v1::AppEvent e;
        auto* p = e.mutable_pair();
        p->set_connection(c->end[s].id);
        p->set_pair_id(pair_id);
        p->set_time_ns(pair_id * pair_interval_ns_);
        p->set_kept(false);
        p->set_estimated_fidelity(fidelity_);
        p->set_basis(basis);
        p->set_result(result);
        Post(c->end[s].node, 0, std::move(e));
      }
      if (expire_every_ > 0 && pair_id % expire_every_ == 0) {
        for (int s = 0; s < 2; ++s) {
          app::v1::AppEvent e;
          e.mutable_pair_expired()->set_connection(c->end[s].id);
          e.mutable_pair_expired()->set_pair_id(pair_id);
          Post(c->end[s].node, 0, std::move(e));
        }
      }
    }
  }
  return any;
}

}  // namespace qnet::apps::testing
