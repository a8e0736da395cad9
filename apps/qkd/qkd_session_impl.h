// Internal to qkd_session*.cc: the state machine behind QkdSession. Split by
// concern: qkd_session.cc (events, frames, authentication, sifting, end of
// session), qkd_blocks.cc (estimation, Cascade, verification,
// amplification, refill and key store), qkd_result.cc (the result JSON).
#ifndef QNET_APPS_QKD_QKD_SESSION_IMPL_H_
#define QNET_APPS_QKD_QKD_SESSION_IMPL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "apps/qkd/auth/authenticator.h"
#include "apps/qkd/postproc/cascade.h"
#include "apps/qkd/postproc/privacy.h"
#include "apps/qkd/qkd_session.h"
#include "apps/qkd/qkd_session_frames.h"
#include "apps/qkd/sifting.h"

namespace qnet::qkd {

// ParityRequest.round of Bob's "Cascade done" message (QKD-S24).
inline constexpr uint32_t kCascadeDoneRound = 0xFFFFFFFF;
// Alice announces a Sift once this many ids are ready (or the last ids):
// one frame, 128 pad bits both ways, per range (QKD-S12).
inline constexpr uint32_t kSiftChunk = kMaxSiftRange;
// Largest frame an end sends (QKD-W3): the transport's 64 KiB per Send,
// less room for its own framing. Frames carry at most kFragmentBytes of
// message (QKD-W4), so they stay below it.
inline constexpr size_t kMaxFrameBytes = 65536 - 64;
static_assert(kFragmentBytes + 64 < kMaxFrameBytes);
// QKD-W9: the Toeplitz seed n + m - 1 < 2 block_bits stays within reach.
static_assert(2 * size_t{kMaxBlockBits} <= kToeplitzMaxSeedBits);
// Bits of the verification hash (QKD-V*), disclosed.
inline constexpr uint64_t kVerifyLeakBits = 64;

class QkdSession::Impl {
 public:
  Impl(QkdSession* session, apps::AppClient* client, Rng* rng, QkdOptions options);
  void Start();

  // qkd_result.cc
  std::string ResultJson() const;

 private:
  enum class Phase { kIdle, kEstimate, kCascade, kVerify, kAmplify };
  struct Block {
    uint64_t id = 0;
    BitVector key;     // this end's block_bits Z bits; after estimation, the sample removed
    BitVector sample;  // mask over the block_bits positions
    uint32_t sample_size = 0;
    BitVector x_bits;  // this end's X test bits of the block
    uint64_t cascade_seed = 0;
    uint64_t z_errors = 0, x_errors = 0;
    double qber_z = 0.0, qber_x = 0.0;
    std::unique_ptr<CascadeAlice> cascade_alice;
    std::unique_ptr<CascadeBob> cascade_bob;
    uint32_t rounds = 0;
    BitVector final_key;
    uint64_t amplify_seq = 0;  // a->b seq of the Amplify frame
  };

  bool alice() const { return options_.role == QkdOptions::Role::kAlice; }
  QkdResult& result() { return session_->result_; }

  // qkd_session.cc: events and frames.
  void OnEvent(const app::v1::AppEvent& event);
  void OnReply(uint64_t request_id, const app::v1::Reply& reply);
  void OnPairEvent(const app::v1::Pair& pair);
  void OnClosedEvent(const app::v1::Closed& closed);
  void OnData(const std::string& data);
  void OnMessage(const v1::QkdMessage& message);
  void OnHello(const v1::Hello& hello);
  bool SendMessage(const v1::QkdMessage& message);
  // A frame or message that breaks the protocol: counted, session aborts.
  void Malformed(const std::string& what);
  void Abort(const std::string& reason, bool tell_peer = true);
  void Finish(absl::Status status);

  // qkd_session.cc: sifting.
  void MaybeSift();
  void OnSift(const v1::Sift& sift);
  void AnswerSifts();
  void OnSiftReply(const v1::SiftReply& reply);
  void ApplySift(const SiftView& mine, const SiftView& theirs);
  void MaybeFinish();

  // qkd_blocks.cc.
  void MaybeStartBlock();
  void OnEstimate(const v1::Estimate& estimate);
  void OnEstimateReply(const v1::EstimateReply& reply);
  // Both ends: QBERs, the abort rule, then Cascade. False if aborted.
  bool Evaluate(Block& block, const BitVector& peer_sample_bits, const BitVector& peer_x_bits);
  void SendNextParityRequest();
  void OnParityRequest(const v1::ParityRequest& request);
  void OnParityReply(const v1::ParityReply& reply);
  void OnVerify(const v1::Verify& verify);
  void OnVerifyReply(const v1::VerifyReply& reply);
  void AccountCascade(uint64_t disclosed, uint32_t rounds, uint64_t flipped);
  SecureLength BlockSecureLength() const;
  void OnAmplify(const v1::Amplify& amplify);
  void OnAmplifyAck(const v1::AmplifyAck& ack);
  void FinishBlock(uint64_t amplify_seq, uint64_t ack_seq);
  bool ExpectBlock(Phase phase, uint64_t block, const char* what);

  QkdSession* session_;
  apps::AppClient* client_;
  Rng* rng_;
  QkdOptions options_;
  std::optional<Authenticator> auth_;
  std::optional<FrameChannel> frames_;  // over *auth_

  uint64_t bind_request_ = 0, connect_request_ = 0, close_request_ = 0;
  uint64_t socket_ = 0, connection_ = 0;
  bool connection_closed_ = false, hello_done_ = false;

  PairLog log_;
  std::deque<SiftView> outstanding_;    // Alice: Sifts sent, not answered
  std::deque<SiftView> pending_sifts_;  // Bob: Sifts received, not answered
  uint64_t next_sift_first_ = 1;        // Bob: first id of the next Sift
  BitVector z_stream_, x_stream_;       // sifted, not yet in a block
  uint64_t first_pair_ns_ = 0, latest_pair_ns_ = 0, last_block_ns_ = 0;
  bool have_pair_time_ = false;

  Phase phase_ = Phase::kIdle;
  Block block_;
  uint64_t blocks_started_ = 0;
  double ec_denominator_ = 0.0;  // sum over blocks of n h(flipped / n)
  uint64_t refill_seq_ab_ = 0, refill_seq_ba_ = 0;
  uint64_t frame_seq_ = 0;      // seq of the frame being handled
  uint64_t last_sent_seq_ = 0;  // seq of this end's last frame
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_QKD_SESSION_IMPL_H_
