#include "apps/chsh/chsh_app.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "apps/lib/requests.h"

namespace qnet::apps {

double ChshApp::AngleA(uint32_t setting) { return setting ? std::numbers::pi / 2 : 0.0; }
double ChshApp::AngleB(uint32_t setting) {
  return setting ? -std::numbers::pi / 4 : std::numbers::pi / 4;
}

ChshApp::ChshApp(AppClient* client, Rng* rng, ChshOptions options)
    : client_(client), rng_(rng), options_(std::move(options)) {}

void ChshApp::Start() {
  client_->SetHandlers(AppClient::Handlers{
      .on_event = [this](const app::v1::AppEvent& e) { OnEvent(e); },
      .on_disconnected =
          [this](absl::Status why) {
            Finish(absl::UnavailableError(absl::StrCat("lost the node: ", why.ToString())));
          },
  });
  bind_request_ = Send(BindRequest(options_.port));
}

void ChshApp::Finish(absl::Status status) {
  if (done_) return;
  done_ = true;
  status_ = std::move(status);
  if (result_.pairs > 0) {
    result_.pair_fidelity_estimate = fidelity_sum_ / static_cast<double>(result_.pairs);
    const double w = (4.0 * result_.pair_fidelity_estimate - 1.0) / 3.0;
    result_.expected_s = 2.0 * std::numbers::sqrt2 * w;
  }
  if (options_.role == ChshOptions::Role::kA) {
    double s = 0.0, variance = 0.0;
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        const uint64_t n = result_.n[i][j];
        const double e = n ? static_cast<double>(product_sum_[i][j]) / static_cast<double>(n) : 0;
        result_.correlator[i][j] = e;
        s += (i == 1 && j == 1) ? -e : e;
        // Binomial error of a mean of +-1 values: (1 - E^2) / n.
        variance += n ? (1.0 - e * e) / static_cast<double>(n) : INFINITY;
      }
    }
    result_.s = s;
    result_.stderr_ = std::sqrt(variance);
  }
  if (on_done_) on_done_();
}

void ChshApp::OnEvent(const app::v1::AppEvent& event) {
  if (done_) return;
  const bool a = options_.role == ChshOptions::Role::kA;
  switch (event.body_case()) {
    case app::v1::AppEvent::kReply:
      OnReply(event.request_id(), event.reply());
      break;
    case app::v1::AppEvent::kConnected: {
      const auto& c = event.connected();
      if (a || c.socket() != socket_) break;
      if (connection_ == 0) {
        connection_ = c.connection();
      } else if (c.connection() != connection_) {
        Send(CloseRequest(c.connection()));
      }
      break;
    }
    case app::v1::AppEvent::kClosed: {
      const auto& c = event.closed();
      if (c.connection() != connection_ && event.request_id() != connect_request_) break;
      if (!a && c.reason() == app::v1::CLOSE_REASON_PEER && result_.pairs > 0) {
        Finish(absl::OkStatus());  // a has what it needs
      } else if (close_request_ == 0) {
        Finish(absl::AbortedError(absl::StrCat(
            "connection closed (", app::v1::CloseReason_Name(c.reason()), "): ", c.detail())));
      }
      break;
    }
    case app::v1::AppEvent::kPair: {
      const auto& pair = event.pair();
      if (pair.connection() != connection_ || connection_ == 0 || close_request_ != 0) break;
      if (!pair.kept()) return Finish(absl::FailedPreconditionError("APP-H1: pairs must be kept"));
      PairState& p = pairs_[pair.pair_id()];
      p.estimated_fidelity = pair.estimated_fidelity();
      p.measuring = true;
      p.mine.setting = static_cast<uint32_t>(rng_->Below(2));
      const double angle = a ? AngleA(p.mine.setting) : AngleB(p.mine.setting);
      measure_requests_[Send(MeasureRequest(Qubit(connection_, pair.pair_id()),
                                            physical::v1::BASIS_UNSPECIFIED, angle))] =
          pair.pair_id();
      break;
    }
    case app::v1::AppEvent::kPairExpired: {
      if (event.pair_expired().connection() != connection_) break;
      ++result_.expired;
      expired_ids_.insert(event.pair_expired().pair_id());
      pairs_.erase(event.pair_expired().pair_id());
      break;
    }
    case app::v1::AppEvent::kData:
      if (a && event.data().connection() == connection_) OnData(event.data().data());
      break;
    case app::v1::AppEvent::kMeasured: {
      auto it = measure_requests_.find(event.request_id());
      if (it == measure_requests_.end()) break;
      const uint64_t id = it->second;
      measure_requests_.erase(it);
      auto p = pairs_.find(id);
      if (p == pairs_.end()) break;  // expired meanwhile
      p->second.mine.have = true;
      p->second.mine.outcome = event.measured().result();
      if (!a) {
        Send(SendRequest(connection_, absl::StrCat("C ", id, " ", p->second.mine.setting, " ",
                                                   p->second.mine.outcome)));
        ++result_.pairs;
        fidelity_sum_ += p->second.estimated_fidelity;
        pairs_.erase(p);
        break;
      }
      MaybeCount(id);
      break;
    }
    case app::v1::AppEvent::kBellMeasured:
    case app::v1::AppEvent::BODY_NOT_SET:
      break;
  }
}

void ChshApp::OnReply(uint64_t request_id, const app::v1::Reply& reply) {
  const absl::Status status = ReplyStatus(reply);
  if (request_id == bind_request_) {
    if (!status.ok()) return Finish(status);
    socket_ = reply.socket();
    if (options_.role == ChshOptions::Role::kA) {
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
  if (auto it = measure_requests_.find(request_id); it != measure_requests_.end()) {
    if (status.ok()) return;
    const bool live = pairs_.count(it->second) > 0 && !expired_ids_.count(it->second);
    measure_requests_.erase(it);
    if (live) Finish(status);
  }
}

void ChshApp::OnData(const std::string& data) {
  std::vector<std::string> parts = absl::StrSplit(data, ' ');
  uint64_t id = 0;
  uint32_t setting = 0, outcome = 0;
  if (parts.size() != 4 || parts[0] != "C" || !absl::SimpleAtoi(parts[1], &id) ||
      !absl::SimpleAtoi(parts[2], &setting) || !absl::SimpleAtoi(parts[3], &outcome) ||
      setting > 1 || outcome > 1) {
    ++malformed_records_;  // APP-H5: ignored and counted
    return;
  }
  if (expired_ids_.count(id) || close_request_ != 0) return;
  PairState& p = pairs_[id];
  if (p.theirs.have) return;
  p.theirs = Side{true, setting, outcome};
  MaybeCount(id);
}

void ChshApp::MaybeCount(uint64_t id) {
  auto it = pairs_.find(id);
  if (it == pairs_.end() || !it->second.mine.have || !it->second.theirs.have) return;
  const Side& x = it->second.mine;
  const Side& y = it->second.theirs;
  ++result_.n[x.setting][y.setting];
  product_sum_[x.setting][y.setting] += (x.outcome == y.outcome) ? 1 : -1;
  ++result_.pairs;
  fidelity_sum_ += it->second.estimated_fidelity;
  pairs_.erase(it);
  if (result_.pairs >= options_.pairs && close_request_ == 0) {
    close_request_ = Send(CloseRequest(connection_));
  }
}

std::string ChshApp::ResultJson() const {
  const bool a = options_.role == ChshOptions::Role::kA;
  JsonObject json;
  json.Add("app", "chsh")
      .Add("role", a ? "a" : "b")
      .AddRaw("ok", status_.ok() ? "true" : "false")
      .Add("error", std::string(status_.message()))
      .Add("pairs", result_.pairs)
      .Add("expired", result_.expired);
  if (a) {
    json.Add("S", result_.s).Add("stderr", result_.stderr_);
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        json.Add(absl::StrCat("n_", i, j), result_.n[i][j])
            .Add(absl::StrCat("E_", i, j), result_.correlator[i][j]);
      }
    }
  }
  json.Add("pair_fidelity_estimate", result_.pair_fidelity_estimate)
      .Add("expected_S", result_.expected_s)
      .Add("expected_note", "2 sqrt2 w, w = (4F-1)/3, F the mean estimated pair fidelity");
  return json.ToString();
}

}  // namespace qnet::apps
