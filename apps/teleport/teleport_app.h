// TeleportApp (specs/app-api.md APP-T1..APP-T8): quantum teleportation of
// random cardinal states over kept end-to-end pairs, driven only by AppClient
// events (sans-I/O: no clock, no socket; randomness from the injected Rng).
//
// Sender: binds `port`, connects to (peer, peer_port) with keep pairs of at
// least `min_fidelity`; for each delivered pair it draws one of the six
// cardinal states (+Z -Z +X -X +Y -Y, index 0..5), prepares it on a fresh
// qubit (AllocateQubit + gates), Bell-measures (prepared qubit, pair half) and
// sends "T <pair id> <state> <x> <z>" over the connection, (x, z) being the
// Pauli index of the outcome (PHYS-M7). It finishes when the receiver closes.
//
// Receiver: binds `port`, accepts one connection, and for each pair whose
// record has arrived applies X^x then Z^z to its half (the teleported state is
// X^x Z^z |psi> up to phase) and measures in the state's basis; a success is
// the outcome of the prepared eigenstate. After `pairs` measurements it closes
// the connection and reports the mean success (the teleportation fidelity,
// (2F+1)/3 for Werner pairs of fidelity F) with its binomial standard error.
// Pairs that expire (PairExpired) are not counted.
#ifndef QNET_APPS_TELEPORT_TELEPORT_APP_H_
#define QNET_APPS_TELEPORT_TELEPORT_APP_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "apps/lib/app_client.h"
#include "stack/random.h"

namespace qnet::apps {

struct TeleportOptions {
  enum class Role { kSender, kReceiver };
  Role role = Role::kSender;
  uint32_t port = 0;       // own port (both roles bind one)
  std::string peer;        // sender: the receiver's node
  uint32_t peer_port = 0;  // sender: the receiver's port
  uint32_t pairs = 100;    // states to teleport
  double min_fidelity = 0.0;
  uint32_t window = 1;
};

struct TeleportResult {
  uint64_t pairs = 0;                   // receiver: states measured; sender: states sent
  uint64_t successes = 0;               // receiver
  uint64_t expired = 0;                 // pairs reported expired and skipped
  double fidelity = 0.0;                // successes / pairs
  double stderr_ = 0.0;                 // sqrt(f (1 - f) / pairs)
  double pair_fidelity_estimate = 0.0;  // mean estimated_fidelity of the pairs used
  double expected_fidelity = 0.0;       // (2F+1)/3 with F the estimate above
};

class TeleportApp {
 public:
  // `client` and `rng` must outlive the app.
  TeleportApp(AppClient* client, Rng* rng, TeleportOptions options);

  // Installs the client's handlers and sends the first request.
  void Start();
  // Called once when the app has finished (successfully or not).
  void set_on_done(std::function<void()> on_done) { on_done_ = std::move(on_done); }

  bool done() const { return done_; }
  // OK after a normal finish; the reason otherwise.
  const absl::Status& status() const { return status_; }
  const TeleportResult& result() const { return result_; }
  // The result file's JSON object (APP-P3).
  std::string ResultJson() const;
  // Records from the peer that did not parse (ignored).
  uint64_t malformed_records() const { return malformed_records_; }

  // The six states: index -> (basis, outcome of the prepared eigenstate).
  static physical::v1::Basis StateBasis(uint32_t state);
  static uint32_t StateOutcome(uint32_t state);

 private:
  struct SenderPair {
    uint32_t state = 0;
    uint64_t local = 0;  // the prepared qubit
    double estimated_fidelity = 0.0;
  };
  struct ReceiverPair {
    bool held = false;
    bool have_record = false;
    bool measuring = false;
    uint32_t state = 0, x = 0, z = 0;
    double estimated_fidelity = 0.0;
  };

  void OnEvent(const app::v1::AppEvent& event);
  void OnReply(uint64_t request_id, const app::v1::Reply& reply);
  void OnPair(const app::v1::Pair& pair);
  void OnData(const std::string& data);
  void OnExpired(uint64_t pair_id);
  void MaybeMeasure(uint64_t pair_id);
  void Finish(absl::Status status);
  uint64_t Send(app::v1::AppRequest request) { return client_->Send(std::move(request)); }

  AppClient* client_;
  Rng* rng_;
  TeleportOptions options_;
  std::function<void()> on_done_;
  bool done_ = false;
  absl::Status status_;
  TeleportResult result_;
  double fidelity_sum_ = 0.0;

  uint64_t bind_request_ = 0, connect_request_ = 0, close_request_ = 0;
  uint64_t socket_ = 0, connection_ = 0;
  uint64_t started_ = 0;  // sender: pairs taken into use
  std::map<uint64_t, SenderPair> sending_;
  std::map<uint64_t, ReceiverPair> receiving_;
  std::map<uint64_t, uint64_t> allocate_requests_;  // request -> pair id
  std::map<uint64_t, uint64_t> bell_requests_;      // request -> pair id
  std::map<uint64_t, uint64_t> measure_requests_;   // request -> pair id
  std::map<uint64_t, uint64_t> pair_requests_;      // gates etc.: request -> pair id
  std::set<uint64_t> expired_ids_;
  uint64_t malformed_records_ = 0;
};

}  // namespace qnet::apps

#endif  // QNET_APPS_TELEPORT_TELEPORT_APP_H_
