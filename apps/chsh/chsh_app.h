// ChshApp (specs/app-api.md APP-H1..APP-H6): a CHSH Bell test over kept
// end-to-end pairs, driven only by AppClient events (sans-I/O; settings from
// the injected Rng).
//
// Role a (the initiator, reports): binds `port`, connects to (peer,
// peer_port). Role b: binds `port` and accepts one connection. For each
// delivered pair each side draws its setting bit and measures its half in the
// XZ plane (Measure with basis UNSPECIFIED and an angle): a at 0 or pi/2, b at
// pi/4 or -pi/4. b sends "C <pair id> <setting> <outcome>" to a; a pairs the
// records with its own outcomes, and after `pairs` complete pairs closes the
// connection and reports
//   E(i, j) = mean of (-1)^(outcome_a + outcome_b) over pairs with settings (i, j),
//   S = E(0,0) + E(0,1) + E(1,0) - E(1,1)   (2 sqrt2 w for Werner pairs),
//   stderr(S) = sqrt(sum over (i, j) of (1 - E(i,j)^2) / n(i,j)).
// Pairs that expire are not counted.
#ifndef QNET_APPS_CHSH_CHSH_APP_H_
#define QNET_APPS_CHSH_CHSH_APP_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "apps/lib/app_client.h"
#include "stack/random.h"

namespace qnet::apps {

struct ChshOptions {
  enum class Role { kA, kB };
  Role role = Role::kA;
  uint32_t port = 0;
  std::string peer;        // a: b's node
  uint32_t peer_port = 0;  // a: b's port
  uint32_t pairs = 100;
  double min_fidelity = 0.0;
  uint32_t window = 1;
};

struct ChshResult {
  uint64_t pairs = 0;  // a: complete pairs; b: outcomes sent
  uint64_t expired = 0;
  uint64_t n[2][2] = {};         // pairs per (setting a, setting b)
  double correlator[2][2] = {};  // E(i, j)
  double s = 0.0;
  double stderr_ = 0.0;
  double pair_fidelity_estimate = 0.0;
  double expected_s = 0.0;  // 2 sqrt2 w, w = (4F-1)/3 from the estimate
};

class ChshApp {
 public:
  // Measurement angles in the XZ plane, by setting bit.
  static double AngleA(uint32_t setting);
  static double AngleB(uint32_t setting);

  ChshApp(AppClient* client, Rng* rng, ChshOptions options);

  void Start();
  void set_on_done(std::function<void()> on_done) { on_done_ = std::move(on_done); }
  bool done() const { return done_; }
  const absl::Status& status() const { return status_; }
  const ChshResult& result() const { return result_; }
  std::string ResultJson() const;
  // Records from the peer that did not parse (ignored).
  uint64_t malformed_records() const { return malformed_records_; }

 private:
  struct Side {
    bool have = false;
    uint32_t setting = 0, outcome = 0;
  };
  struct PairState {
    Side mine, theirs;
    bool measuring = false;
    double estimated_fidelity = 0.0;
  };

  void OnEvent(const app::v1::AppEvent& event);
  void OnReply(uint64_t request_id, const app::v1::Reply& reply);
  void OnData(const std::string& data);
  void MaybeCount(uint64_t pair_id);
  void Finish(absl::Status status);
  uint64_t Send(app::v1::AppRequest request) { return client_->Send(std::move(request)); }

  AppClient* client_;
  Rng* rng_;
  ChshOptions options_;
  std::function<void()> on_done_;
  bool done_ = false;
  absl::Status status_;
  ChshResult result_;
  double fidelity_sum_ = 0.0;
  int64_t product_sum_[2][2] = {};

  uint64_t bind_request_ = 0, connect_request_ = 0, close_request_ = 0;
  uint64_t socket_ = 0, connection_ = 0;
  std::map<uint64_t, PairState> pairs_;
  std::map<uint64_t, uint64_t> measure_requests_;  // request -> pair id
  std::set<uint64_t> expired_ids_;
  uint64_t malformed_records_ = 0;
};

}  // namespace qnet::apps

#endif  // QNET_APPS_CHSH_CHSH_APP_H_
