// QkdSession, per block (specs/qkd.md sections 3 to 6): parameter
// estimation, Cascade, verification, privacy amplification, the refill of
// the authentication pads and the key store.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "apps/qkd/qkd_session_impl.h"

namespace qnet::qkd {
namespace {

const char* PhaseName(int phase) {
  static const char* const kNames[] = {"idle", "estimate", "cascade", "verify", "amplify"};
  return kNames[phase];
}

uint32_t SampleSize(const QkdOptions& o) {  // QKD-E1
  const double s = std::llround(o.sample_fraction * static_cast<double>(o.block_bits));
  return static_cast<uint32_t>(std::clamp(s, 0.0, static_cast<double>(o.block_bits)));
}

// `bits` where `mask` is set, in position order.
BitVector Select(const BitVector& bits, const BitVector& mask, bool where) {
  BitVector out;
  for (size_t i = 0; i < bits.size(); ++i) {
    if (mask.Get(i) == where) out.PushBack(bits.Get(i));
  }
  return out;
}

}  // namespace

bool QkdSession::Impl::ExpectBlock(Phase phase, uint64_t block, const char* what) {
  if (phase_ != phase || block != block_.id) {
    Malformed(absl::StrCat(what, " for block ", block, " while block ", block_.id, " is in ",
                           PhaseName(static_cast<int>(phase_))));
    return false;
  }
  return true;
}

// ---- parameter estimation (QKD-E*) ----

void QkdSession::Impl::MaybeStartBlock() {
  if (!alice() || phase_ != Phase::kIdle || session_->done_ || close_request_ != 0) return;
  const uint32_t n = options_.block_bits;
  if (n == 0 || z_stream_.size() < n) return MaybeSift();  // MaybeSift ends in MaybeFinish
  block_ = Block{};
  block_.id = ++blocks_started_;
  block_.key = z_stream_.Slice(0, n);
  z_stream_ = z_stream_.Slice(n, z_stream_.size());
  block_.x_bits = x_stream_;  // QKD-E3: every X test bit since the last block
  x_stream_ = BitVector();
  // QKD-E1: exactly round(sample_fraction * block_bits) distinct positions.
  block_.sample_size = SampleSize(options_);
  std::vector<uint32_t> positions(n);
  std::iota(positions.begin(), positions.end(), 0u);
  block_.sample = BitVector(n);
  for (uint32_t i = 0; i < block_.sample_size; ++i) {
    std::swap(positions[i], positions[i + rng_->Below(n - i)]);
    block_.sample.Set(positions[i], true);
  }
  block_.cascade_seed = rng_->Next();
  v1::QkdMessage m;
  auto* e = m.mutable_estimate();
  e->set_block(block_.id);
  e->set_sample(block_.sample.ToBytes());
  e->set_sample_bits(Select(block_.key, block_.sample, true).ToBytes());
  e->set_x_count(static_cast<uint32_t>(block_.x_bits.size()));
  e->set_x_bits(block_.x_bits.ToBytes());
  e->set_cascade_seed(block_.cascade_seed);
  phase_ = Phase::kEstimate;
  SendMessage(m);
}

void QkdSession::Impl::OnEstimate(const v1::Estimate& e) {
  if (phase_ != Phase::kIdle || e.block() != blocks_started_ + 1) {
    return Malformed(absl::StrCat("Estimate for block ", e.block(), " (expected ",
                                  blocks_started_ + 1, ", phase ",
                                  PhaseName(static_cast<int>(phase_)), ")"));
  }
  const uint32_t n = options_.block_bits;
  if (z_stream_.size() < n) {
    return Malformed(
        absl::StrCat("Estimate with ", z_stream_.size(), " of ", n, " Z-sifted bits here"));
  }
  Block block;
  block.id = e.block();
  block.sample_size = SampleSize(options_);
  BitVector peer_sample, peer_x;
  if (!BitVector::FromBytes(e.sample(), n, &block.sample) ||
      block.sample.Count() != block.sample_size) {
    return Malformed(
        absl::StrCat("Estimate sample is not ", block.sample_size, " of ", n, " positions"));
  }
  if (!BitVector::FromBytes(e.sample_bits(), block.sample_size, &peer_sample)) {
    return Malformed("Estimate sample_bits too short");
  }
  if (e.x_count() > x_stream_.size() || !BitVector::FromBytes(e.x_bits(), e.x_count(), &peer_x)) {
    return Malformed(absl::StrCat("Estimate x_count ", e.x_count(), " with ", x_stream_.size(),
                                  " X test bits here"));
  }
  block.key = z_stream_.Slice(0, n);
  z_stream_ = z_stream_.Slice(n, z_stream_.size());
  block.x_bits = x_stream_.Slice(0, e.x_count());
  x_stream_ = x_stream_.Slice(e.x_count(), x_stream_.size());
  block.cascade_seed = e.cascade_seed();
  blocks_started_ = block.id;
  block_ = std::move(block);
  v1::QkdMessage m;
  auto* r = m.mutable_estimate_reply();
  r->set_block(block_.id);
  r->set_sample_bits(Select(block_.key, block_.sample, true).ToBytes());
  r->set_x_bits(block_.x_bits.ToBytes());
  if (!SendMessage(m)) return;
  if (!Evaluate(block_, peer_sample, peer_x)) return;
  block_.cascade_bob = std::make_unique<CascadeBob>(
      block_.key, block_.qber_z, CascadeParams{.passes = options_.cascade_passes},
      block_.cascade_seed);
  phase_ = Phase::kCascade;
  SendNextParityRequest();
}

void QkdSession::Impl::OnEstimateReply(const v1::EstimateReply& r) {
  if (!ExpectBlock(Phase::kEstimate, r.block(), "EstimateReply")) return;
  BitVector peer_sample, peer_x;
  if (!BitVector::FromBytes(r.sample_bits(), block_.sample_size, &peer_sample) ||
      !BitVector::FromBytes(r.x_bits(), block_.x_bits.size(), &peer_x)) {
    return Malformed("EstimateReply bit strings too short");
  }
  if (!Evaluate(block_, peer_sample, peer_x)) return;
  block_.cascade_alice = std::make_unique<CascadeAlice>(
      block_.key, CascadeParams{.passes = options_.cascade_passes}, block_.cascade_seed);
  phase_ = Phase::kCascade;
}

bool QkdSession::Impl::Evaluate(Block& b, const BitVector& peer_sample, const BitVector& peer_x) {
  const BitVector own_sample = Select(b.key, b.sample, true);
  b.z_errors = own_sample.HammingDistance(peer_sample);
  b.x_errors = b.x_bits.HammingDistance(peer_x);
  // QKD-E4, QKD-E5.
  b.qber_z = b.sample_size ? static_cast<double>(b.z_errors) / b.sample_size : 0.0;
  b.qber_x = b.x_bits.size() ? static_cast<double>(b.x_errors) / b.x_bits.size() : 0.0;
  QkdResult& r = result();
  r.sifted_bits += options_.block_bits;
  r.z_errors += b.z_errors;
  r.z_sampled += b.sample_size;
  r.x_errors += b.x_errors;
  r.x_test_bits += b.x_bits.size();
  // QKD-E6: the same rule at both ends.
  if (b.qber_z > options_.qber_threshold) {
    Abort(absl::StrFormat("QBER Z %.3g > %.3g (block %d)", b.qber_z, options_.qber_threshold, b.id),
          /*tell_peer=*/!alice());
    return false;
  }
  if (!b.x_bits.empty() && b.qber_x > options_.qber_threshold) {
    Abort(absl::StrFormat("QBER X %.3g > %.3g (block %d)", b.qber_x, options_.qber_threshold, b.id),
          /*tell_peer=*/!alice());
    return false;
  }
  b.key = Select(b.key, b.sample, false);  // QKD-E7: the sample is disclosed
  return true;
}

// ---- Cascade (QKD-C*; the message flow QKD-S2x) ----

void QkdSession::Impl::SendNextParityRequest() {
  v1::QkdMessage m;
  auto request = block_.cascade_bob->NextRequest();
  if (!request.has_value()) {  // done: the empty request with the done round
    m.mutable_parity_request()->set_block(block_.id);
    m.mutable_parity_request()->set_round(kCascadeDoneRound);
    phase_ = Phase::kVerify;
    SendMessage(m);
    return;
  }
  request->set_block(block_.id);
  *m.mutable_parity_request() = *std::move(request);
  ++block_.rounds;
  SendMessage(m);
}

void QkdSession::Impl::OnParityRequest(const v1::ParityRequest& request) {
  if (!ExpectBlock(Phase::kCascade, request.block(), "ParityRequest")) return;
  v1::QkdMessage m;
  if (request.round() == kCascadeDoneRound && request.pass_size() == 0 &&
      request.begin_size() == 0 && request.end_size() == 0) {
    // QKD-V1: Alice's hash of her key under a fresh hash key.
    auto* v = m.mutable_verify();
    v->set_block(block_.id);
    v->set_hash_key(rng_->Next());
    v->set_hash(VerificationHash(block_.key, v->hash_key()));
    phase_ = Phase::kVerify;
    SendMessage(m);
    return;
  }
  auto reply = block_.cascade_alice->Answer(request);
  if (!reply.ok()) return Malformed(absl::StrCat("ParityRequest: ", reply.status().message()));
  reply->set_block(block_.id);
  reply->set_round(request.round());
  ++block_.rounds;
  *m.mutable_parity_reply() = *std::move(reply);
  SendMessage(m);
}

void QkdSession::Impl::OnParityReply(const v1::ParityReply& reply) {
  if (!ExpectBlock(Phase::kCascade, reply.block(), "ParityReply")) return;
  if (absl::Status s = block_.cascade_bob->OnReply(reply); !s.ok()) {
    return Malformed(absl::StrCat("ParityReply: ", s.message()));
  }
  SendNextParityRequest();
}

void QkdSession::Impl::AccountCascade(uint64_t disclosed, uint32_t rounds, uint64_t flipped) {
  QkdResult& r = result();
  const uint64_t n = block_.key.size();
  r.corrected_bits += n;
  r.disclosed_bits += disclosed;
  r.cascade_rounds += rounds;
  r.bits_flipped += flipped;
  if (n > 0) {  // QKD-R3: f = disclosed / (n h(flipped / n)), summed over blocks
    ec_denominator_ += static_cast<double>(n) *
                       BinaryEntropy(static_cast<double>(flipped) / static_cast<double>(n));
  }
}

// ---- verification (QKD-V*) ----

void QkdSession::Impl::OnVerify(const v1::Verify& verify) {
  if (!ExpectBlock(Phase::kVerify, verify.block(), "Verify")) return;
  const BitVector& corrected = block_.cascade_bob->key();
  const bool equal = VerificationHash(corrected, verify.hash_key()) == verify.hash();
  AccountCascade(block_.cascade_bob->disclosed_bits(), block_.cascade_bob->rounds(),
                 block_.cascade_bob->bits_flipped());
  v1::QkdMessage m;
  auto* r = m.mutable_verify_reply();
  r->set_block(block_.id);
  r->set_equal(equal);
  r->set_errors_corrected(block_.cascade_bob->bits_flipped());
  if (!SendMessage(m)) return;
  if (!equal) {  // QKD-V3: the block is dropped
    ++result().blocks_failed_verification;
    phase_ = Phase::kIdle;
    return;
  }
  block_.key = corrected;
  phase_ = Phase::kAmplify;
}

void QkdSession::Impl::OnVerifyReply(const v1::VerifyReply& reply) {
  if (!ExpectBlock(Phase::kVerify, reply.block(), "VerifyReply")) return;
  if (reply.errors_corrected() > block_.key.size()) {
    return Malformed("VerifyReply errors_corrected above the block length");
  }
  AccountCascade(block_.cascade_alice->disclosed_bits(), block_.rounds, reply.errors_corrected());
  if (!reply.equal()) {
    ++result().blocks_failed_verification;
    phase_ = Phase::kIdle;
    return MaybeStartBlock();
  }
  // QKD-A1: Alice draws the Toeplitz seed and sends it with the length.
  const SecureLength length = BlockSecureLength();
  const size_t n = block_.key.size(), m_bits = length.bits;
  v1::QkdMessage m;
  auto* a = m.mutable_amplify();
  a->set_block(block_.id);
  a->set_secret_bits(static_cast<uint32_t>(m_bits));
  if (m_bits > 0) {
    BitVector seed(n + m_bits - 1);
    for (uint64_t& w : seed.mutable_words()) w = rng_->Next();
    if ((seed.size() & 63) != 0)
      seed.mutable_words().back() &= (uint64_t{1} << (seed.size() & 63)) - 1;
    auto hashed = ToeplitzHash(block_.key, seed, m_bits);
    if (!hashed.ok()) return Finish(hashed.status());
    block_.final_key = *std::move(hashed);
    a->set_toeplitz_seed(seed.ToBytes());
  }
  phase_ = Phase::kAmplify;
  if (!SendMessage(m)) return;
  block_.amplify_seq = last_sent_seq_;
}

// ---- privacy amplification (QKD-L*, QKD-A*), refill (QKD-U*), store ----

SecureLength QkdSession::Impl::BlockSecureLength() const {
  SecureLengthInput in;
  in.n = block_.key.size();
  in.k = block_.x_bits.size();
  in.qber_x = block_.qber_x;
  in.leak_ec =
      alice() ? block_.cascade_alice->disclosed_bits() : block_.cascade_bob->disclosed_bits();
  in.leak_verify = kVerifyLeakBits;
  in.eps_sec = options_.eps_sec;
  in.eps_cor = options_.eps_cor;
  SecureLength length = ComputeSecureLength(in);
  if (in.k == 0) length.bits = 0;  // QKD-E8: Q_X unknown
  return length;
}

void QkdSession::Impl::OnAmplify(const v1::Amplify& amplify) {
  if (!ExpectBlock(Phase::kAmplify, amplify.block(), "Amplify")) return;
  const SecureLength length = BlockSecureLength();
  if (amplify.secret_bits() != length.bits) {  // QKD-A3
    return Malformed(absl::StrCat("Amplify length ", amplify.secret_bits(),
                                  " differs from the computed ", length.bits));
  }
  const size_t n = block_.key.size(), m_bits = length.bits;
  if (m_bits > 0) {
    BitVector seed;
    if (!BitVector::FromBytes(amplify.toeplitz_seed(), n + m_bits - 1, &seed)) {
      return Malformed("Amplify toeplitz_seed too short");
    }
    auto hashed = ToeplitzHash(block_.key, seed, m_bits);
    if (!hashed.ok()) return Finish(hashed.status());
    block_.final_key = *std::move(hashed);
  }
  const uint64_t amplify_seq = frame_seq_;
  v1::QkdMessage m;
  m.mutable_amplify_ack()->set_block(block_.id);
  if (!SendMessage(m)) return;
  FinishBlock(amplify_seq, last_sent_seq_);
}

void QkdSession::Impl::OnAmplifyAck(const v1::AmplifyAck& ack) {
  if (!ExpectBlock(Phase::kAmplify, ack.block(), "AmplifyAck")) return;
  FinishBlock(block_.amplify_seq, frame_seq_);
  if (!session_->done_) MaybeStartBlock();
}

void QkdSession::Impl::FinishBlock(uint64_t amplify_seq, uint64_t ack_seq) {
  // QKD-U10: each direction gets the pad bits of its frames since the last
  // refill: a->b up to the Amplify, b->a up to the AmplifyAck.
  uint64_t want_ab = 64 * (amplify_seq - refill_seq_ab_);
  uint64_t want_ba = 64 * (ack_seq - refill_seq_ba_);
  if (options_.auth_refill_bits > 0) {
    want_ab = want_ba = (uint64_t{options_.auth_refill_bits} + 63) / 64 * 64;
  }
  refill_seq_ab_ = amplify_seq;
  refill_seq_ba_ = ack_seq;
  const BitVector& key = block_.final_key;
  const uint64_t len = key.size();
  // QKD-U12: a key shorter than both amounts fills a->b first.
  const uint64_t ab = std::min(want_ab, len / 64 * 64);
  const uint64_t ba = std::min(want_ba, (len - ab) / 64 * 64);
  if (ab > 0) auth_->Refill(Direction::kAliceToBob, key.Slice(0, ab));
  if (ba > 0) auth_->Refill(Direction::kBobToAlice, key.Slice(ab, ab + ba));
  // QKD-K1: the rest, truncated to a multiple of 16 bits, to the store.
  const uint64_t stored = (len - ab - ba) / 16 * 16;
  if (stored > 0) session_->key_store_->Append(key.Slice(ab + ba, ab + ba + stored));
  QkdResult& r = result();
  r.secret_bits += len;
  r.auth_bits_refilled += ab + ba;
  r.stored_key_bits += stored;
  ++r.blocks;
  if (block_.x_bits.empty()) ++r.blocks_without_x_test;
  last_block_ns_ = latest_pair_ns_;
  phase_ = Phase::kIdle;
  if (session_->on_key_) session_->on_key_();
}

}  // namespace qnet::qkd
