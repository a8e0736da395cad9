// QkdSession: one end of a BBM92 session (specs/qkd.md), driven only by
// AppClient events (sans-I/O; randomness from the injected Rng; time from the
// pairs' time stamps).
//
// Alice (role a, the <app>'s `node`) binds `port` and connects to Bob (role
// b, `peer`, bound at `peer_port`) with measure-directly pairs, basis choice
// XZ with `z_probability`, `pairs` pairs. Every classical message is a
// QkdMessage in an AuthenticatedFrame (apps/qkd/auth/authenticator.h) sent
// with Send. The flow per block (QKD-S*, QKD-E*, QKD-C*, QKD-V*, QKD-A*):
//   Hello/HelloAck -> Sift/SiftReply per range of pair ids (incremental) ->
//   once `block_bits` Z-sifted bits are there: Estimate/EstimateReply (abort
//   the session above `qber_threshold` in either basis) -> Cascade rounds
//   (Bob asks, Alice answers) -> Verify/VerifyReply (a block that differs is
//   dropped and counted) -> Amplify/AmplifyAck (secure length from
//   postproc/privacy.h) -> refill the authentication pads -> KeyStore.
// Sifted bits left when the connection closes that do not fill a block are
// dropped and counted. The session is done when the connection has closed
// and every complete block is finished, or on abort (status() names the
// reason; result().aborted).
#ifndef QNET_APPS_QKD_QKD_SESSION_H_
#define QNET_APPS_QKD_QKD_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "apps/lib/app_client.h"
#include "apps/qkd/auth/key_store.h"
#include "qnet/qkd/v1/qkd.pb.h"
#include "stack/random.h"

namespace qnet::qkd {

// Largest block_bits qnet-qkd accepts (QKD-W9): the Toeplitz seed of a
// block, n + m - 1 < 2 block_bits bits, stays within kToeplitzMaxSeedBits
// (2^24, apps/qkd/postproc/privacy.h).
inline constexpr uint32_t kMaxBlockBits = uint32_t{1} << 23;

struct QkdOptions {
  enum class Role { kAlice, kBob };
  Role role = Role::kAlice;
  std::string session;     // the <app> name; both ends must agree
  std::string node;        // this end's node (for the result)
  std::string peer;        // the other end's node
  uint32_t port = 0;       // own port to bind
  uint32_t peer_port = 0;  // Alice: Bob's port
  uint32_t pairs = 10000;  // pairs requested (0: until Close)
  double min_fidelity = 0.0;
  // Alice's connection window (QKD-S1): end-to-end pairs in flight, which
  // the network grants as far as the path's memories allow (specs/network.md
  // NET-C-11a); more in flight, fewer wake-ups per pair on real processes.
  uint32_t window = 4;
  std::string psk;  // pre-shared secret bytes (Authenticator::Create)
  // Must be equal at both ends (sent in Hello; Bob aborts otherwise).
  uint32_t block_bits = 10000;
  double z_probability = 0.5;
  double sample_fraction = 0.1;
  double qber_threshold = 0.11;
  double eps_sec = 1e-10;
  double eps_cor = 1e-15;
  uint32_t cascade_passes = 4;
  uint32_t key_size_bits = 256;
  // Bits moved from each block's key into each direction's pad (QKD-U*);
  // 0: as many as that direction consumed since the last refill.
  uint32_t auth_refill_bits = 0;
};

struct QkdResult {
  bool aborted = false;
  std::string abort_reason;
  uint64_t pairs = 0;          // pairs held in sifted ranges (not expired)
  uint64_t expired_pairs = 0;  // PairExpired before the pair's range was sifted
  uint64_t sift_ranges = 0;
  uint64_t sifted_bits = 0;  // Z-sifted bits in processed blocks
  uint64_t x_test_bits = 0;
  uint64_t z_errors = 0, z_sampled = 0;  // parameter estimation, all blocks
  uint64_t x_errors = 0;
  double qber_z = 0.0, qber_x = 0.0;
  uint64_t blocks = 0, blocks_failed_verification = 0;
  // Blocks with no X test bit: Q_X unknown, secure length 0 (QKD-E8).
  uint64_t blocks_without_x_test = 0;
  uint64_t leftover_bits = 0;   // sifted bits dropped at the end
  uint64_t corrected_bits = 0;  // bits entering error correction (all blocks)
  uint64_t bits_flipped = 0;    // errors Cascade corrected
  uint64_t disclosed_bits = 0;  // Cascade parities
  uint32_t cascade_rounds = 0;
  double ec_efficiency = 0.0;  // disclosed / sum over blocks of n h(errors / n)
  uint64_t secret_bits = 0;    // privacy amplification output, all blocks
  uint64_t auth_bits_consumed = 0, auth_bits_refilled = 0;  // both directions
  uint64_t stored_key_bits = 0;                             // appended to the KeyStore
  double first_pair_s = 0.0, last_block_s = 0.0;  // emulated time of first pair, last block
  // stored_key_bits / (last_block_s - first_pair_s) (QKD-R4).
  double key_rate_bps = 0.0;
  uint64_t bad_frames = 0;  // refused frames (tag, seq, parse)
  // Messages that crossed as several frames (QKD-W4), by direction from this
  // end (not in the JSON).
  uint64_t fragmented_sent = 0, fragmented_received = 0;
};

class QkdSession {
 public:
  QkdSession(apps::AppClient* client, Rng* rng, QkdOptions options);
  ~QkdSession();

  void Start();
  void set_on_done(std::function<void()> on_done) { on_done_ = std::move(on_done); }
  // Called after each block's key is appended to the KeyStore.
  void set_on_key(std::function<void()> on_key) { on_key_ = std::move(on_key); }
  bool done() const { return done_; }
  const absl::Status& status() const { return status_; }
  const QkdResult& result() const { return result_; }
  // One JSON object: the QkdResult fields, role, session, node, peer, ok,
  // key_sha256 (of key_store().StreamBytes()) (specs/qkd.md QKD-R*).
  std::string ResultJson() const;

  // The session's keys; lives as long as the session (the KME keeps serving
  // it after done()).
  KeyStore& key_store() { return *key_store_; }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::function<void()> on_done_, on_key_;
  bool done_ = false;
  absl::Status status_;
  QkdResult result_;
  std::unique_ptr<KeyStore> key_store_;
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_QKD_SESSION_H_
