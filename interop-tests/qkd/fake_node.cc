#include "interop-tests/qkd/fake_node.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>

namespace qnet::interop::qkd {
namespace {

using app::v1::AppEvent;
using app::v1::AppRequest;

int ListenUnixSocket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

constexpr int kOk = 0;
constexpr int kInvalidArgument = 3;
constexpr int kUnimplemented = 12;

}  // namespace

std::vector<ScriptedPair> MakePairs(uint64_t n, double z_probability, double qber_z, double qber_x,
                                    uint64_t seed, double lost_fraction) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<ScriptedPair> pairs(n);
  for (uint64_t i = 0; i < n; ++i) {
    ScriptedPair& p = pairs[i];
    p.id = i + 1;
    for (int e = 0; e < 2; ++e) p.basis_x[e] = !(u(gen) < z_probability);
    p.result[0] = u(gen) < 0.5 ? 1 : 0;
    if (p.basis_x[0] == p.basis_x[1]) {
      const double q = p.basis_x[0] ? qber_x : qber_z;
      p.result[1] = p.result[0] ^ (u(gen) < q ? 1 : 0);
    } else {
      p.result[1] = u(gen) < 0.5 ? 1 : 0;
    }
    if (lost_fraction > 0 && u(gen) < lost_fraction) p.held[u(gen) < 0.5 ? 0 : 1] = false;
  }
  return pairs;
}

FakeNetwork::FakeNetwork(FakeNetworkOptions options) : options_(std::move(options)) {}

FakeNetwork::~FakeNetwork() {
  chan_[0].reset();
  chan_[1].reset();
  for (int fd : listen_fd_)
    if (fd >= 0) close(fd);
}

std::string FakeNetwork::SocketPath(int end) const {
  return options_.dir + (end == 0 ? "/a.sock" : "/b.sock");
}

bool FakeNetwork::Listen(std::string* why) {
  for (int e = 0; e < 2; ++e) {
    listen_fd_[e] = ListenUnixSocket(SocketPath(e));
    if (listen_fd_[e] < 0) {
      *why = "cannot listen on " + SocketPath(e);
      return false;
    }
  }
  return true;
}

bool FakeNetwork::Accept(int end, Ms timeout) {
  pollfd p{listen_fd_[end], POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  const int fd = accept4(listen_fd_[end], nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return false;
  chan_[end] = std::make_unique<Channel>();
  chan_[end]->Open(fd);
  return true;
}

bool FakeNetwork::app_gone(int end) {
  return chan_[end] != nullptr && chan_[end]->WaitClosed(Ms(0));
}

bool FakeNetwork::RunUntil(const std::function<bool()>& done, Ms timeout) {
  const auto end_time = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end_time) return done();
    bool any = false;
    for (int e = 0; e < 2; ++e) {
      if (chan_[e] == nullptr) continue;
      // Drain what is there; wait a little only when nothing came.
      while (auto frame = chan_[e]->Next(Ms(0))) {
        any = true;
        AppRequest request;
        if (!request.ParseFromString(frame->payload)) {
          problems_.push_back("end " + std::to_string(e) + ": a request frame did not parse");
          Reply(e, 0, kInvalidArgument, "does not parse");
          continue;
        }
        requests_[e].push_back(request);
        Handle(e, request);
      }
    }
    if (!pending_.empty()) {
      any = true;
      FlushPending();
    }
    for (int e = 0; e < 2; ++e) {
      // APP-13: an app that goes away has its connections closed; the other
      // end sees the peer close.
      if (chan_[e] != nullptr && connected_ && !closed_ && !end_closed_[e] &&
          chan_[e]->WaitClosed(Ms(0))) {
        while (auto frame = chan_[e]->Next(Ms(0))) {  // what it sent before it went
          AppRequest request;
          if (request.ParseFromString(frame->payload)) {
            requests_[e].push_back(request);
            Handle(e, request);
          }
        }
        if (!closed_) {
          closed_ = true;
          app_left_[e] = true;
          Closed(e, app::v1::CLOSE_REASON_LOCAL);
          Closed(1 - e, app::v1::CLOSE_REASON_PEER);
        }
        any = true;
      }
    }
    for (int e = 0; e < 2; ++e) {
      if (scripted_[e] != nullptr && connected_ && !closed_ && scripted_[e]->WantsClose()) {
        Closed(e, app::v1::CLOSE_REASON_LOCAL);
        Closed(1 - e, app::v1::CLOSE_REASON_PEER);
        closed_ = true;
        any = true;
      }
    }
    if (!any) {
      // Block briefly on one channel so the loop does not spin.
      for (int e = 0; e < 2; ++e) {
        if (chan_[e] == nullptr) continue;
        if (auto frame = chan_[e]->Next(Ms(2))) {
          AppRequest request;
          if (!request.ParseFromString(frame->payload)) {
            problems_.push_back("end " + std::to_string(e) + ": a request frame did not parse");
            Reply(e, 0, kInvalidArgument, "does not parse");
            continue;
          }
          requests_[e].push_back(request);
          Handle(e, request);
        }
        break;
      }
      if (chan_[0] == nullptr && chan_[1] == nullptr) {
        std::this_thread::sleep_for(Ms(2));
      }
    }
  }
  return true;
}

void FakeNetwork::Emit(int end, AppEvent event) {
  if (chan_[end] == nullptr) return;
  event.set_version(1);
  chan_[end]->Send(event);
}

void FakeNetwork::Reply(int end, uint64_t request_id, int code, const std::string& message,
                        uint64_t socket, uint64_t connection) {
  AppEvent ev;
  ev.set_request_id(request_id);
  auto* r = ev.mutable_reply();
  r->set_code(code);
  r->set_message(message);
  r->set_socket(socket);
  r->set_connection(connection);
  Emit(end, std::move(ev));
}

void FakeNetwork::Handle(int end, const AppRequest& request) {
  const uint64_t id = request.request_id();
  switch (request.body_case()) {
    case AppRequest::kBind:
      if (request.bind().port() == 0) {
        Reply(end, id, kInvalidArgument, "port 0");
        return;
      }
      bound_port_[end] = request.bind().port();
      socket_[end] = 100 + end;
      Reply(end, id, kOk, "", socket_[end]);
      if (connect_ && initiator_ == 1 - end && bound_port_[end] == connect_->remote_port()) {
        Establish();
      }
      return;
    case AppRequest::kConnect: {
      if (connect_) {
        problems_.push_back("a second Connect");
        Reply(end, id, kUnimplemented, "one connection only");
        return;
      }
      connect_ = request.connect();
      initiator_ = end;
      connect_request_id_ = id;
      connection_[end] = 7 + end;
      Reply(end, id, kOk, "", 0, connection_[end]);
      if (request.connect().remote_node() != options_.node[1 - end]) {
        problems_.push_back("Connect to unknown node '" + request.connect().remote_node() + "'");
      }
      if (scripted_[1 - end] != nullptr || bound_port_[1 - end] == connect_->remote_port()) {
        Establish();
      }
      return;
    }
    case AppRequest::kSend:
      if (!connected_ || closed_ || request.send().connection() != connection_[end]) {
        Reply(end, id, 5, "no such connection");
        problems_.push_back("Send on a connection that is not up");
        return;
      }
      Reply(end, id, kOk);
      sent_[end].push_back(request.send().data());
      Deliver(1 - end, request.send().data());
      return;
    case AppRequest::kClose:
      if (!connected_ || closed_ || request.close().connection() != connection_[end]) {
        Reply(end, id, 5, "no such connection");
        return;
      }
      Reply(end, id, kOk);
      closed_ = true;
      Closed(end, app::v1::CLOSE_REASON_LOCAL);
      Closed(1 - end, app::v1::CLOSE_REASON_PEER);
      return;
    case AppRequest::kUnbind:
      Reply(end, id, kOk);
      return;
    default:
      problems_.push_back("unexpected request " + std::to_string(request.body_case()));
      Reply(end, id, kUnimplemented, "not in the fake node");
  }
}

void FakeNetwork::ScriptedConnect(int end, uint32_t port, const app::v1::Qos& qos) {
  app::v1::Connect c;
  c.set_remote_node(options_.node[1 - end]);
  c.set_remote_port(port);
  *c.mutable_qos() = qos;
  connect_ = c;
  initiator_ = end;
  connect_request_id_ = 0;
  connection_[end] = 7 + end;
  if (scripted_[1 - end] != nullptr || bound_port_[1 - end] == port) Establish();
}

void FakeNetwork::Establish() {
  const int a = initiator_, b = 1 - initiator_;
  connection_[b] = 7 + b;
  connected_ = true;
  for (int e : {a, b}) {
    AppEvent ev;
    ev.set_request_id(e == a ? connect_request_id_ : 0);
    auto* c = ev.mutable_connected();
    c->set_connection(connection_[e]);
    c->set_socket(socket_[e]);
    c->set_peer_node(options_.node[1 - e]);
    c->set_peer_port(e == a ? connect_->remote_port() : bound_port_[a]);
    c->set_initiator(e == a);
    *c->mutable_qos() = connect_->qos();
    c->add_path(options_.node[a]);
    c->add_path(options_.node[b]);
    Emit(e, std::move(ev));
  }
  // Pairs: the initiator's end is index 0 of each ScriptedPair.
  for (const ScriptedPair& p : options_.pairs) {
    for (int e : {a, b}) {
      const int view = e == a ? 0 : 1;
      if (chan_[e] == nullptr) continue;
      AppEvent ev;
      auto* pair = ev.mutable_pair();
      pair->set_connection(connection_[e]);
      pair->set_pair_id(p.id);
      pair->set_time_ns(p.id * options_.pair_interval_ns);
      pair->set_estimated_fidelity(options_.estimated_fidelity);
      pair->set_kept(false);
      pair->set_basis(p.basis_x[view] ? physical::v1::BASIS_X : physical::v1::BASIS_Z);
      pair->set_result(p.result[view]);
      Emit(e, std::move(ev));
      if (!p.held[view]) {  // delivered, then expired at this end (APP-15)
        AppEvent expired;
        expired.mutable_pair_expired()->set_connection(connection_[e]);
        expired.mutable_pair_expired()->set_pair_id(p.id);
        expired.mutable_pair_expired()->set_detail("scripted expiry");
        Emit(e, std::move(expired));
      }
    }
  }
  for (int e : {a, b}) {
    if (scripted_[e] != nullptr) DeliverFromScripted(e, scripted_[e]->OnConnected());
  }
  if (options_.close_after_pairs) CloseConnection(app::v1::CLOSE_REASON_DONE);
}

void FakeNetwork::Deliver(int to, const std::string& data) {
  if (closed_) return;
  if (scripted_[to] != nullptr) {
    pending_.emplace_back(to, data);  // handled by RunUntil (no recursion between two peers)
    return;
  }
  AppEvent ev;
  ev.mutable_data()->set_connection(connection_[to]);
  ev.mutable_data()->set_data(data);
  Emit(to, std::move(ev));
}

void FakeNetwork::DeliverFromScripted(int from, std::vector<std::string> payloads) {
  for (std::string& p : payloads) {
    sent_[from].push_back(p);
    Deliver(1 - from, p);
  }
}

void FakeNetwork::FlushPending() {
  // Data sent before a Close still arrives (before the Closed), as on the
  // transport's reliable stream.
  while (!pending_.empty()) {
    auto [to, data] = std::move(pending_.front());
    pending_.pop_front();
    DeliverFromScripted(to, scripted_[to]->OnData(data));
  }
}

void FakeNetwork::Closed(int end, app::v1::CloseReason reason) {
  if (end_closed_[end]) return;
  end_closed_[end] = true;
  if (scripted_[end] != nullptr) {
    FlushPending();
    scripted_[end]->OnClosed();
    return;
  }
  AppEvent ev;
  ev.mutable_closed()->set_connection(connection_[end]);
  ev.mutable_closed()->set_reason(reason);
  Emit(end, std::move(ev));
}

void FakeNetwork::CloseConnection(app::v1::CloseReason reason) {
  if (!connected_ || closed_) return;
  closed_ = true;
  Closed(0, reason);
  Closed(1, reason);
}

}  // namespace qnet::interop::qkd
