#include "emulator/node/connection_workload.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::node {

using results::v1::DropReason;

AssignedPorts AssignPorts(const Topology& topology) {
  AssignedPorts ports;
  std::map<std::string, std::set<uint32_t>> used;  // node -> ports taken
  for (const ConnectionSpec& c : topology.connections)
    if (c.port != 0) used[c.to].insert(c.port);
  for (const AppSpec& a : topology.apps)
    if (a.port != 0) used[a.peer].insert(a.port);
  auto assign = [&used](const std::string& node, uint32_t port) {
    if (port != 0) return port;
    std::set<uint32_t>& taken = used[node];
    uint32_t p = kFirstAssignedPort;
    while (taken.contains(p)) ++p;
    taken.insert(p);
    return p;
  };
  for (const ConnectionSpec& c : topology.connections)
    ports.connections.push_back(assign(c.to, c.port));
  for (const AppSpec& a : topology.apps) ports.apps.push_back(assign(a.peer, a.port));
  return ports;
}

transport::Qos QosOf(const ConnectionSpec& spec) {
  transport::Qos qos;
  qos.min_fidelity = spec.min_fidelity;
  qos.pairs = spec.pairs;
  qos.min_rate_hz = spec.min_rate_hz;
  qos.type =
      spec.kind == RequestKind::kKeep ? transport::PairType::kKeep : transport::PairType::kMeasure;
  switch (spec.basis) {
    case BasisSet::kZ:
      qos.basis = link::v1::BASIS_CHOICE_Z;
      break;
    case BasisSet::kX:
      qos.basis = link::v1::BASIS_CHOICE_X;
      break;
    case BasisSet::kY:
      qos.basis = link::v1::BASIS_CHOICE_Y;
      break;
    case BasisSet::kXZ:
      qos.basis = link::v1::BASIS_CHOICE_XZ;
      break;
    case BasisSet::kXYZ:
      qos.basis = link::v1::BASIS_CHOICE_XYZ;
      break;
  }
  qos.window = spec.window == 0 ? 1 : spec.window;
  if (std::isinf(spec.cutoff_s)) {
    qos.cutoff = absl::InfiniteDuration();  // `inf`: no cutoff
  } else if (spec.cutoff_s > 0) {
    qos.cutoff = SecondsToDuration(spec.cutoff_s);
  }
  return qos;
}

ConnectionWorkload::ConnectionWorkload(const Topology& topology, std::string node, Runtime* runtime,
                                       transport::TransportService* transport, Tracer* tracer)
    : topology_(topology),
      node_(std::move(node)),
      runtime_(runtime),
      transport_(transport),
      tracer_(tracer) {
  const AssignedPorts ports = AssignPorts(topology_);
  for (size_t i = 0; i < topology_.connections.size(); ++i) {
    const ConnectionSpec& spec = topology_.connections[i];
    if (spec.from != node_ && spec.to != node_) continue;
    End end;
    end.spec = &spec;
    end.index = i;
    end.initiator = spec.from == node_;
    end.port = ports.connections[i];
    ends_.push_back(std::move(end));
  }
}

ConnectionWorkload::~ConnectionWorkload() = default;

void ConnectionWorkload::Fail(const std::string& detail) {
  tracer_->Drop(DropReason::DROP_REASON_UNSPECIFIED, absl::StrCat("connection workload: ", detail));
}

void ConnectionWorkload::Start() {
  for (size_t i = 0; i < ends_.size(); ++i) {
    End& end = ends_[i];
    if (end.initiator) {
      auto timer = runtime_->CreateTimer([this, i] { Connect(ends_[i]); });
      timer->ArmAt(Time::FromSeconds(end.spec->start_s));
      connect_timers_.push_back(std::move(timer));
      continue;
    }
    auto it = listening_.find(end.port);
    if (it != listening_.end()) {
      end.socket = it->second;
      continue;
    }
    absl::StatusOr<transport::SocketId> socket = transport_->Bind(end.port, this);
    if (!socket.ok()) {
      Fail(absl::StrCat(end.spec->name, ": cannot bind port ", end.port, " at ", node_, ": ",
                        socket.status().message()));
      continue;
    }
    end.socket = *socket;
    listening_[end.port] = *socket;
  }
}

void ConnectionWorkload::Stop() {
  stopped_ = true;
  connect_timers_.clear();
}

void ConnectionWorkload::Connect(End& end) {
  if (stopped_) return;
  const ConnectionSpec& spec = *end.spec;
  absl::StatusOr<transport::SocketId> socket =
      transport_->Bind(kInitiatorPortBase + static_cast<uint32_t>(end.index), this);
  if (!socket.ok()) {
    return Fail(absl::StrCat(spec.name, ": cannot bind a local port at ", node_, ": ",
                             socket.status().message()));
  }
  end.socket = *socket;
  absl::StatusOr<transport::ConnectionId> id =
      transport_->Connect(end.socket, spec.to, end.port, QosOf(spec));
  if (!id.ok()) {
    end.counts.closed = transport::CloseReason::kRefused;
    end.counts.close_detail = std::string(id.status().message());
    return Fail(absl::StrCat(spec.name, ": connect to ", spec.to, ":", end.port,
                             " refused: ", id.status().message()));
  }
  end.connection = *id;
  by_connection_[*id] = static_cast<size_t>(&end - ends_.data());
}

ConnectionWorkload::End* ConnectionWorkload::EndOf(transport::ConnectionId connection) {
  auto it = by_connection_.find(connection);
  return it == by_connection_.end() ? nullptr : &ends_[it->second];
}

const ConnectionCounts* ConnectionWorkload::counts(const std::string& connection_name) const {
  for (const End& end : ends_)
    if (end.spec->name == connection_name) return &end.counts;
  return nullptr;
}

void ConnectionWorkload::OnConnected(const transport::ConnectionInfo& info) {
  End* end = EndOf(info.connection);
  if (end == nullptr) {
    // The responder learns its connection here: the first unconnected end on
    // that socket whose initiator is the peer.
    for (size_t i = 0; i < ends_.size(); ++i) {
      End& e = ends_[i];
      if (e.initiator || e.connection || e.socket != info.socket || e.spec->from != info.peer_node)
        continue;
      e.connection = info.connection;
      by_connection_[info.connection] = i;
      end = &e;
      break;
    }
  }
  if (end == nullptr) {
    Fail(absl::StrCat("connection from ", info.peer_node, " to port socket ", info.socket,
                      " matches no <connection> at ", node_, "; closing it"));
    (void)transport_->Close(info.connection);
    return;
  }
  end->counts.connected = true;
}

void ConnectionWorkload::OnClosed(transport::ConnectionId connection, transport::CloseReason reason,
                                  const std::string& detail) {
  End* end = EndOf(connection);
  if (end == nullptr) return;
  end->counts.closed = reason;
  end->counts.close_detail = detail;
}

void ConnectionWorkload::OnPair(const transport::Pair& pair) {
  End* end = EndOf(pair.connection);
  if (end == nullptr) {
    Fail(absl::StrCat("pair ", pair.pair_id, " of unknown connection ", pair.connection));
    return;
  }
  ConnectionCounts& c = end->counts;
  ++c.pairs;
  c.pair_ids.push_back(pair.pair_id);
  if (!pair.kept) {
    ++c.measured;
    if (pair.result == 1) ++c.ones;
    return;
  }
  ++c.kept;
  const transport::QubitRef qubit{pair.connection, pair.pair_id};
  const double hold_s = end->spec->hold_s;
  if (hold_s <= 0) {
    if (transport_->Release(qubit).ok()) ++c.released;
    return;
  }
  const size_t index = static_cast<size_t>(end - ends_.data());
  const uint64_t key = next_hold_++;
  auto timer = runtime_->CreateTimer([this, index, qubit, key] {
    if (transport_->Release(qubit).ok()) ++ends_[index].counts.released;
    holds_.erase(key);  // destroys this timer last: nothing after it
  });
  timer->ArmAt(runtime_->Now() + SecondsToDuration(hold_s));
  holds_[key] = std::move(timer);
}

void ConnectionWorkload::OnPairExpired(transport::ConnectionId connection, uint64_t pair_id,
                                       const std::string&) {
  if (End* end = EndOf(connection)) {
    ++end->counts.expired;
    end->counts.expired_ids.push_back(pair_id);
  }
}

void ConnectionWorkload::OnData(transport::ConnectionId, const std::string&) {}
void ConnectionWorkload::OnMeasured(uint64_t, uint32_t) {}
void ConnectionWorkload::OnBellMeasured(uint64_t, physical::v1::BellState) {}

}  // namespace qnet::node
