#include "apps/teleport/teleport_app.h"

#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "apps/lib/requests.h"

namespace qnet::apps {
namespace {

using physical::v1::GateKind;

// Gates that take |0> to cardinal state `state` (APP-T2): +Z, -Z, +X, -X, +Y, -Y.
std::vector<GateKind> Preparation(uint32_t state) {
  switch (state) {
    case 0:
      return {};
    case 1:
      return {physical::v1::GATE_KIND_X};
    case 2:
      return {physical::v1::GATE_KIND_H};
    case 3:
      return {physical::v1::GATE_KIND_X, physical::v1::GATE_KIND_H};
    case 4:
      return {physical::v1::GATE_KIND_H, physical::v1::GATE_KIND_S};
    default:
      return {physical::v1::GATE_KIND_X, physical::v1::GATE_KIND_H, physical::v1::GATE_KIND_S};
  }
}

const char* CloseReasonName(app::v1::CloseReason r) { return app::v1::CloseReason_Name(r).c_str(); }

}  // namespace

physical::v1::Basis TeleportApp::StateBasis(uint32_t state) {
  return state < 2   ? physical::v1::BASIS_Z
         : state < 4 ? physical::v1::BASIS_X
                     : physical::v1::BASIS_Y;
}

uint32_t TeleportApp::StateOutcome(uint32_t state) { return state % 2; }

TeleportApp::TeleportApp(AppClient* client, Rng* rng, TeleportOptions options)
    : client_(client), rng_(rng), options_(std::move(options)) {}

void TeleportApp::Start() {
  client_->SetHandlers(AppClient::Handlers{
      .on_event = [this](const app::v1::AppEvent& e) { OnEvent(e); },
      .on_disconnected =
          [this](absl::Status why) {
            Finish(absl::UnavailableError(absl::StrCat("lost the node: ", why.ToString())));
          },
  });
  bind_request_ = Send(BindRequest(options_.port));
}

void TeleportApp::Finish(absl::Status status) {
  if (done_) return;
  done_ = true;
  status_ = std::move(status);
  if (result_.pairs > 0) {
    const double n = static_cast<double>(result_.pairs);
    result_.pair_fidelity_estimate = fidelity_sum_ / n;
    result_.expected_fidelity = (2.0 * result_.pair_fidelity_estimate + 1.0) / 3.0;
    if (options_.role == TeleportOptions::Role::kReceiver) {
      result_.fidelity = static_cast<double>(result_.successes) / n;
      result_.stderr_ = std::sqrt(result_.fidelity * (1.0 - result_.fidelity) / n);
    }
  }
  if (on_done_) on_done_();
}

void TeleportApp::OnEvent(const app::v1::AppEvent& event) {
  if (done_) return;
  const bool sender = options_.role == TeleportOptions::Role::kSender;
  switch (event.body_case()) {
    case app::v1::AppEvent::kReply:
      OnReply(event.request_id(), event.reply());
      break;
    case app::v1::AppEvent::kConnected: {
      const auto& c = event.connected();
      if (sender || c.socket() != socket_) break;
      if (connection_ == 0) {
        connection_ = c.connection();
      } else if (c.connection() != connection_) {
        Send(CloseRequest(c.connection()));  // one peer at a time
      }
      break;
    }
    case app::v1::AppEvent::kClosed: {
      const auto& c = event.closed();
      if (c.connection() != connection_ && event.request_id() != connect_request_) break;
      if (sender && c.reason() == app::v1::CLOSE_REASON_PEER && result_.pairs > 0) {
        Finish(absl::OkStatus());  // the receiver has what it needs (APP-T6)
      } else if (close_request_ == 0) {
        Finish(absl::AbortedError(
            absl::StrCat("connection closed (", CloseReasonName(c.reason()), "): ", c.detail())));
      }
      break;
    }
    case app::v1::AppEvent::kPair:
      if (event.pair().connection() == connection_ && connection_ != 0) OnPair(event.pair());
      break;
    case app::v1::AppEvent::kPairExpired:
      if (event.pair_expired().connection() == connection_) {
        OnExpired(event.pair_expired().pair_id());
      }
      break;
    case app::v1::AppEvent::kData:
      if (!sender && event.data().connection() == connection_) OnData(event.data().data());
      break;
    case app::v1::AppEvent::kBellMeasured: {
      auto it = bell_requests_.find(event.request_id());
      if (it == bell_requests_.end()) break;
      const uint64_t p = it->second;
      bell_requests_.erase(it);
      auto pair = sending_.find(p);
      if (pair == sending_.end()) break;  // expired meanwhile
      const auto bell = event.bell_measured().bell_state();
      const uint32_t x =
          (bell == physical::v1::BELL_STATE_PSI_PLUS || bell == physical::v1::BELL_STATE_PSI_MINUS);
      const uint32_t z = (bell == physical::v1::BELL_STATE_PHI_MINUS ||
                          bell == physical::v1::BELL_STATE_PSI_MINUS);
      Send(
          SendRequest(connection_, absl::StrCat("T ", p, " ", pair->second.state, " ", x, " ", z)));
      ++result_.pairs;
      fidelity_sum_ += pair->second.estimated_fidelity;
      sending_.erase(pair);
      break;
    }
    case app::v1::AppEvent::kMeasured: {
      auto it = measure_requests_.find(event.request_id());
      if (it == measure_requests_.end()) break;
      const uint64_t p = it->second;
      measure_requests_.erase(it);
      auto pair = receiving_.find(p);
      if (pair == receiving_.end()) break;  // expired meanwhile: not counted
      ++result_.pairs;
      if (event.measured().result() == StateOutcome(pair->second.state)) ++result_.successes;
      fidelity_sum_ += pair->second.estimated_fidelity;
      receiving_.erase(pair);
      if (result_.pairs >= options_.pairs && close_request_ == 0) {
        close_request_ = Send(CloseRequest(connection_));
      }
      break;
    }
    case app::v1::AppEvent::BODY_NOT_SET:
      break;
  }
}

void TeleportApp::OnReply(uint64_t request_id, const app::v1::Reply& reply) {
  const absl::Status status = ReplyStatus(reply);
  if (request_id == bind_request_) {
    if (!status.ok()) return Finish(status);
    socket_ = reply.socket();
    if (options_.role == TeleportOptions::Role::kSender) {
      app::v1::Qos qos;
      qos.set_min_fidelity(options_.min_fidelity);
      qos.set_type(app::v1::PAIR_TYPE_KEEP);
      qos.set_window(options_.window);
      connect_request_ = Send(ConnectRequest(socket_, options_.peer, options_.peer_port, qos));
    }
    return;
  }
  if (request_id == connect_request_) {
    if (!status.ok()) return Finish(status);
    connection_ = reply.connection();
    return;
  }
  if (request_id == close_request_) return Finish(absl::OkStatus());
  if (auto it = allocate_requests_.find(request_id); it != allocate_requests_.end()) {
    const uint64_t p = it->second;
    allocate_requests_.erase(it);
    auto pair = sending_.find(p);
    if (pair == sending_.end()) {  // expired while allocating: give the qubit back
      if (status.ok()) Send(ReleaseRequest(reply.qubit()));
      return;
    }
    if (!status.ok()) return Finish(status);
    pair->second.local = reply.qubit().id();
    for (GateKind kind : Preparation(pair->second.state)) {
      pair_requests_[Send(GateRequest(reply.qubit(), kind))] = p;
    }
    bell_requests_[Send(BellMeasureRequest(reply.qubit(), Qubit(connection_, p)))] = p;
    return;
  }
  // Requests about one pair: an error matters only while the pair is live.
  for (auto* requests : {&pair_requests_, &bell_requests_, &measure_requests_}) {
    auto it = requests->find(request_id);
    if (it == requests->end()) continue;
    const uint64_t p = it->second;
    const bool live = sending_.count(p) > 0 || receiving_.count(p) > 0;
    if (requests == &pair_requests_ || !status.ok()) requests->erase(it);
    if (!status.ok() && live) Finish(status);
    return;
  }
  // Sends, releases: an error means the connection is gone; Closed says why.
}

void TeleportApp::OnPair(const app::v1::Pair& pair) {
  if (!pair.kept()) return Finish(absl::FailedPreconditionError("APP-T1: pairs must be kept"));
  const uint64_t p = pair.pair_id();
  if (options_.role == TeleportOptions::Role::kSender) {
    ++started_;
    SenderPair& s = sending_[p];
    s.state = static_cast<uint32_t>(rng_->Below(6));
    s.estimated_fidelity = pair.estimated_fidelity();
    allocate_requests_[Send(AllocateRequest(socket_))] = p;
    return;
  }
  if (close_request_ != 0) return;
  ReceiverPair& r = receiving_[p];
  r.held = true;
  r.estimated_fidelity = pair.estimated_fidelity();
  MaybeMeasure(p);
}

void TeleportApp::OnData(const std::string& data) {
  std::vector<std::string> parts = absl::StrSplit(data, ' ');
  uint64_t p = 0;
  uint32_t state = 0, x = 0, z = 0;
  if (parts.size() != 5 || parts[0] != "T" || !absl::SimpleAtoi(parts[1], &p) ||
      !absl::SimpleAtoi(parts[2], &state) || !absl::SimpleAtoi(parts[3], &x) ||
      !absl::SimpleAtoi(parts[4], &z) || state > 5 || x > 1 || z > 1) {
    ++malformed_records_;
    return;  // APP-T7: not a record; ignored and counted
  }
  if (expired_ids_.count(p) || close_request_ != 0) return;
  ReceiverPair& r = receiving_[p];
  if (r.have_record) return;  // duplicate record
  r.have_record = true;
  r.state = state;
  r.x = x;
  r.z = z;
  MaybeMeasure(p);
}

void TeleportApp::MaybeMeasure(uint64_t p) {
  ReceiverPair& r = receiving_[p];
  if (!r.held || !r.have_record || r.measuring) return;
  r.measuring = true;
  const app::v1::QubitRef q = Qubit(connection_, p);
  // The teleported state is X^x Z^z |psi>: undo X first, then Z (APP-T4).
  if (r.x) pair_requests_[Send(GateRequest(q, physical::v1::GATE_KIND_X))] = p;
  if (r.z) pair_requests_[Send(GateRequest(q, physical::v1::GATE_KIND_Z))] = p;
  measure_requests_[Send(MeasureRequest(q, StateBasis(r.state)))] = p;
}

void TeleportApp::OnExpired(uint64_t p) {
  ++result_.expired;
  expired_ids_.insert(p);
  if (auto it = sending_.find(p); it != sending_.end()) {
    if (it->second.local != 0) Send(ReleaseRequest(Qubit(0, it->second.local)));
    sending_.erase(it);
  }
  receiving_.erase(p);
}

std::string TeleportApp::ResultJson() const {
  const bool receiver = options_.role == TeleportOptions::Role::kReceiver;
  JsonObject json;
  json.Add("app", "teleport")
      .Add("role", receiver ? "receiver" : "sender")
      .AddRaw("ok", status_.ok() ? "true" : "false")
      .Add("error", std::string(status_.message()))
      .Add("pairs", result_.pairs)
      .Add("expired", result_.expired);
  if (receiver) {
    json.Add("successes", result_.successes)
        .Add("fidelity", result_.fidelity)
        .Add("stderr", result_.stderr_);
  }
  json.Add("pair_fidelity_estimate", result_.pair_fidelity_estimate)
      .Add("expected_fidelity", result_.expected_fidelity)
      .Add("expected_note", "(2F+1)/3 with F the mean estimated pair fidelity");
  return json.ToString();
}

}  // namespace qnet::apps
