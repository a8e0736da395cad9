#include "interop-tests/qkd/qkd_peer.h"

#include <algorithm>
#include <cmath>

#include "apps/qkd/postproc/privacy.h"

namespace qnet::interop::qkd {
namespace {

using ::qnet::qkd::Direction;
using v1::QkdMessage;

constexpr uint32_t kCascadeDone = 0xFFFFFFFFu;

std::string Bits(const BitVector& v) { return v.ToBytes(); }

bool SameParams(const v1::SessionParams& a, const v1::SessionParams& b) {
  return a.block_bits() == b.block_bits() && a.z_probability() == b.z_probability() &&
         a.sample_fraction() == b.sample_fraction() && a.qber_threshold() == b.qber_threshold() &&
         a.eps_sec() == b.eps_sec() && a.eps_cor() == b.eps_cor() &&
         a.cascade_passes() == b.cascade_passes() && a.key_size_bits() == b.key_size_bits();
}

}  // namespace

// One block in flight (both roles).
struct QkdPeer::Block {
  uint64_t id = 0;
  BitVector raw;          // the block's block_bits Z bits (this end)
  BitVector sample_mask;  // disclosed positions
  uint64_t x_first = 0;   // X test bits [x_first, x_first + x_count)
  uint32_t x_count = 0;
  uint64_t cascade_seed = 0;
  BitVector key;  // raw minus the sampled positions (Bob: corrected by Cascade)
  double qber_z = 0, qber_x = 0;
  std::unique_ptr<::qnet::qkd::CascadeAlice> alice;
  std::unique_ptr<::qnet::qkd::CascadeBob> bob;
  uint64_t disclosed = 0;
  bool verified = false;
  uint64_t amplify_seq = 0;  // Alice: a->b seq of the Amplify (QKD-U10)
};

QkdPeer::QkdPeer(PeerConfig config, const std::vector<ScriptedPair>& pairs)
    : config_(std::move(config)), rng_(config_.seed) {
  const int view = config_.alice ? 0 : 1;
  for (const ScriptedPair& p : pairs) {
    View v;
    v.held = p.held[view];
    v.basis_x = p.basis_x[view];
    v.result = p.result[view];
    pairs_[p.id] = v;
    max_pair_id_ = std::max(max_pair_id_, p.id);
  }
  auto auth = ::qnet::qkd::Authenticator::Create(config_.psk, config_.alice);
  if (auth.ok()) {
    auth_.emplace(std::move(*auth));
  } else {
    result_.violations.push_back("peer PSK: " + std::string(auth.status().message()));
  }
}

QkdPeer::~QkdPeer() = default;

void QkdPeer::Violation(const std::string& what) { result_.violations.push_back(what); }

void QkdPeer::Send(const QkdMessage& message) {
  if (!auth_ || result_.aborted || closed_) return;
  std::string body = message.SerializeAsString();
  const uint64_t seq = last_seq_[config_.alice ? 0 : 1] + 1;
  const bool bug_here = seq == config_.bug_seq;
  if (bug_here && config_.bug == Bug::kGarbageMessage) body = "\xff\xff\xff\xff";
  if (bug_here && config_.bug == Bug::kUnknownOneof) {
    body = std::string("\x9a\x06\x03xyz", 6);  // field 99, length-delimited "xyz"
  }
  if (bug_here && config_.bug == Bug::kAbort) {
    QkdMessage abort;
    abort.mutable_abort()->set_reason("scripted abort");
    body = abort.SerializeAsString();
    result_.aborted = true;
    result_.abort_reason = "scripted abort";
    wants_close_ = false;  // the program under test must close
  }
  if (bug_here && config_.bug == Bug::kWrongDirection) {
    QkdMessage wrong;
    if (config_.alice) {
      wrong.mutable_amplify_ack()->set_block(1);
    } else {
      wrong.mutable_amplify()->set_block(1);
    }
    body = wrong.SerializeAsString();
  }
  if (bug_here && config_.bug == Bug::kSkipSeq) {
    // Burn one pad word so that the tag is valid for seq + 1.
    (void)auth_->Seal("skipped");
    ++last_seq_[config_.alice ? 0 : 1];
  }
  auto frame = auth_->Seal(body);
  if (!frame.ok()) {
    Abort("authentication key exhausted");
    return;
  }
  last_seq_[config_.alice ? 0 : 1] = frame->seq();
  if (bug_here && config_.bug == Bug::kBadTag) frame->set_tag(frame->tag() ^ 1u);
  if (bug_here && config_.bug == Bug::kWrongVersion) frame->set_version(2);
  std::string bytes = frame->SerializeAsString();
  if (bug_here && config_.bug == Bug::kReplaySeq && !sent_frames_.empty()) {
    out_.push_back(sent_frames_.back());
  }
  sent_frames_.push_back(bytes);
  if (bug_here && config_.bug == Bug::kGarbageFrame) bytes = "\x08\x01\x12\xff\xff";
  out_.push_back(std::move(bytes));
}

void QkdPeer::Abort(const std::string& reason) {
  if (result_.aborted) return;
  QkdMessage m;
  m.mutable_abort()->set_reason(reason);
  Send(m);
  result_.aborted = true;
  result_.abort_reason = reason;
  wants_close_ = true;
}

std::vector<std::string> QkdPeer::OnConnected() {
  if (config_.alice) {
    QkdMessage m;
    m.mutable_hello()->set_session(config_.session);
    *m.mutable_hello()->mutable_params() = config_.params;
    if (config_.bug == Bug::kHelloParamsDiffer) {
      m.mutable_hello()->mutable_params()->set_block_bits(config_.params.block_bits() + 1);
    }
    Send(m);
  }
  return std::exchange(out_, {});
}

std::vector<std::string> QkdPeer::OnData(const std::string& data) {
  if (result_.aborted || finished_) {
    // Nothing is acted on any more; an Abort sent back is counted (QKD-S8).
    v1::AuthenticatedFrame late;
    QkdMessage m;
    if (auth_ && late.ParseFromString(data)) {
      auto opened = auth_->Open(late);
      if (opened.ok() && m.ParseFromString(*opened) && m.has_abort()) ++result_.abort_replies;
    }
    return {};
  }
  v1::AuthenticatedFrame frame;
  if (!frame.ParseFromString(data)) {
    Violation("a Send that is not an AuthenticatedFrame");
    return std::exchange(out_, {});
  }
  if (!auth_) return {};
  auto opened = auth_->Open(frame);
  if (!opened.ok()) {
    Violation("frame refused: " + std::string(opened.status().message()));
    Abort("authentication failed");
    return std::exchange(out_, {});
  }
  last_seq_[config_.alice ? 1 : 0] = frame.seq();
  QkdMessage m;
  if (!m.ParseFromString(*opened) || m.body_case() == QkdMessage::BODY_NOT_SET) {
    Violation("an authenticated message that is no QkdMessage");
    Abort("malformed message");
    return std::exchange(out_, {});
  }
  received_.push_back(m);
  Handle(m);
  return std::exchange(out_, {});
}

void QkdPeer::Handle(const QkdMessage& m) {
  const auto& p = config_.params;
  switch (m.body_case()) {
    case QkdMessage::kAbort:
      result_.got_abort = true;
      result_.peer_abort_reason = m.abort().reason();
      result_.aborted = true;
      result_.abort_reason = "peer aborted: " + m.abort().reason();
      wants_close_ = true;
      return;
    case QkdMessage::kHello: {
      if (config_.alice || hello_done_) return Violation("unexpected Hello");
      if (m.hello().session() != config_.session || !SameParams(m.hello().params(), p)) {
        return Abort("session parameters differ");
      }
      hello_done_ = true;
      QkdMessage r;
      r.mutable_hello_ack()->set_session(config_.session);
      return Send(r);
    }
    case QkdMessage::kHelloAck: {
      if (!config_.alice || hello_done_) return Violation("unexpected HelloAck");
      hello_done_ = true;
      SendNextSift();
      return MaybeDone();
    }
    case QkdMessage::kSift: {
      if (config_.alice || !hello_done_) return Violation("unexpected Sift");
      const auto& s = m.sift();
      if (s.first_pair_id() != next_sift_) return Abort("sift range out of order");
      BitVector held(s.count()), bx(s.count());
      for (uint32_t i = 0; i < s.count(); ++i) {
        auto it = pairs_.find(s.first_pair_id() + i);
        const bool h = it != pairs_.end() && it->second.held;
        held.Set(i, h);
        bx.Set(i, h && it->second.basis_x);
      }
      QkdMessage r;
      r.mutable_sift_reply()->set_first_pair_id(s.first_pair_id());
      r.mutable_sift_reply()->set_count(s.count());
      r.mutable_sift_reply()->set_held(Bits(held));
      r.mutable_sift_reply()->set_basis_x(Bits(bx));
      Send(r);
      next_sift_ = s.first_pair_id() + s.count();
      return SiftRange(s.first_pair_id(), s.count(), s.held(), s.basis_x());
    }
    case QkdMessage::kSiftReply: {
      if (!config_.alice || sift_replies_due_ == 0) return Violation("unexpected SiftReply");
      const auto& s = m.sift_reply();
      if (s.first_pair_id() != next_sift_) return Abort("sift reply out of order");
      --sift_replies_due_;
      next_sift_ = s.first_pair_id() + s.count();
      SiftRange(s.first_pair_id(), s.count(), s.held(), s.basis_x());
      MaybeStartBlock();
      SendNextSift();
      return MaybeDone();
    }
    case QkdMessage::kEstimate: {
      if (config_.alice || block_) return Violation("unexpected Estimate");
      const auto& e = m.estimate();
      const uint32_t n = p.block_bits();
      if (e.block() != next_block_ || z_stream_.size() - z_used_ < n ||
          x_stream_.size() - x_used_ < e.x_count()) {
        return Abort("estimate for bits not sifted");
      }
      block_ = std::make_unique<Block>();
      Block& b = *block_;
      b.id = e.block();
      b.raw = z_stream_.Slice(z_used_, z_used_ + n);
      z_used_ += n;
      if (!BitVector::FromBytes(e.sample(), n, &b.sample_mask)) return Abort("short sample mask");
      const size_t s = b.sample_mask.Count();
      BitVector alice_sample, alice_x;
      if (!BitVector::FromBytes(e.sample_bits(), s, &alice_sample) ||
          !BitVector::FromBytes(e.x_bits(), e.x_count(), &alice_x)) {
        return Abort("short estimate bits");
      }
      b.x_first = x_used_;
      b.x_count = e.x_count();
      x_used_ += e.x_count();
      b.cascade_seed = e.cascade_seed();
      BitVector mine_sample;
      for (uint32_t i = 0; i < n; ++i) {
        if (b.sample_mask.Get(i)) {
          mine_sample.PushBack(b.raw.Get(i));
        } else {
          b.key.PushBack(b.raw.Get(i));
        }
      }
      BitVector mine_x = x_stream_.Slice(b.x_first, b.x_first + b.x_count);
      QkdMessage r;
      r.mutable_estimate_reply()->set_block(b.id);
      r.mutable_estimate_reply()->set_sample_bits(Bits(mine_sample));
      r.mutable_estimate_reply()->set_x_bits(Bits(mine_x));
      Send(r);
      AfterEstimate(mine_sample.HammingDistance(alice_sample), s, mine_x.HammingDistance(alice_x),
                    b.x_count);
      return;
    }
    case QkdMessage::kEstimateReply: {
      if (!config_.alice || !block_ || block_->alice || block_->verified) {
        return Violation("unexpected EstimateReply");
      }
      Block& b = *block_;
      const size_t s = b.sample_mask.Count();
      BitVector bob_sample, bob_x;
      if (m.estimate_reply().block() != b.id ||
          !BitVector::FromBytes(m.estimate_reply().sample_bits(), s, &bob_sample) ||
          !BitVector::FromBytes(m.estimate_reply().x_bits(), b.x_count, &bob_x)) {
        return Abort("malformed estimate reply");
      }
      BitVector mine_sample;
      for (uint32_t i = 0; i < b.raw.size(); ++i)
        if (b.sample_mask.Get(i)) mine_sample.PushBack(b.raw.Get(i));
      BitVector mine_x = x_stream_.Slice(b.x_first, b.x_first + b.x_count);
      AfterEstimate(mine_sample.HammingDistance(bob_sample), s, mine_x.HammingDistance(bob_x),
                    b.x_count);
      return;
    }
    case QkdMessage::kParityRequest: {
      if (!config_.alice || !block_ || !block_->alice) return Violation("unexpected ParityRequest");
      const auto& q = m.parity_request();
      if (q.round() == kCascadeDone && q.pass_size() == 0) {
        block_->disclosed = block_->alice->disclosed_bits();
        block_->verified = true;  // cascade over; Verify sent
        QkdMessage v;
        v.mutable_verify()->set_block(block_->id);
        const uint64_t hash_key = rng_();
        v.mutable_verify()->set_hash_key(hash_key);
        v.mutable_verify()->set_hash(::qnet::qkd::VerificationHash(block_->key, hash_key));
        if (config_.bug == Bug::kBadVerify && block_->id == 1) {
          v.mutable_verify()->set_hash(v.verify().hash() ^ 1u);
        }
        return Send(v);
      }
      auto reply = block_->alice->Answer(q);
      if (!reply.ok()) return Abort("bad parity request: " + std::string(reply.status().message()));
      reply->set_block(block_->id);
      reply->set_round(q.round());
      if (config_.bug == Bug::kWrongParityCount && !bug_parity_done_) {
        bug_parity_done_ = true;
        reply->mutable_parities()->push_back('\x01');
        reply->mutable_parities()->push_back('\x01');
      }
      QkdMessage r;
      *r.mutable_parity_reply() = *reply;
      return Send(r);
    }
    case QkdMessage::kParityReply: {
      if (config_.alice || !block_ || !block_->bob) return Violation("unexpected ParityReply");
      if (absl::Status s = block_->bob->OnReply(m.parity_reply()); !s.ok()) {
        return Abort("bad parity reply: " + std::string(s.message()));
      }
      auto next = block_->bob->NextRequest();
      QkdMessage r;
      if (next) {
        *r.mutable_parity_request() = *next;
        r.mutable_parity_request()->set_block(block_->id);
      } else {
        r.mutable_parity_request()->set_block(block_->id);
        r.mutable_parity_request()->set_round(kCascadeDone);
      }
      return Send(r);
    }
    case QkdMessage::kVerify: {
      if (config_.alice || !block_ || !block_->bob || !block_->bob->done()) {
        return Violation("unexpected Verify");
      }
      block_->key = block_->bob->key();
      block_->disclosed = block_->bob->disclosed_bits();
      const bool equal =
          ::qnet::qkd::VerificationHash(block_->key, m.verify().hash_key()) == m.verify().hash();
      QkdMessage r;
      r.mutable_verify_reply()->set_block(block_->id);
      r.mutable_verify_reply()->set_equal(equal);
      r.mutable_verify_reply()->set_errors_corrected(block_->bob->bits_flipped());
      Send(r);
      if (!equal) {
        ++result_.blocks_failed_verification;
        block_.reset();
        ++next_block_;
      }
      return;
    }
    case QkdMessage::kVerifyReply: {
      if (!config_.alice || !block_ || !block_->verified)
        return Violation("unexpected VerifyReply");
      if (!m.verify_reply().equal()) {
        ++result_.blocks_failed_verification;
        block_.reset();
        ++next_block_;
        MaybeStartBlock();
        SendNextSift();
        return MaybeDone();
      }
      ::qnet::qkd::SecureLengthInput in;
      in.n = block_->key.size();
      in.k = block_->x_count;
      in.qber_x = block_->qber_x;
      in.leak_ec = block_->disclosed;
      in.leak_verify = 64;
      in.eps_sec = p.eps_sec();
      in.eps_cor = p.eps_cor();
      const uint64_t m_bits = in.k == 0 ? 0 : ::qnet::qkd::ComputeSecureLength(in).bits;  // QKD-E8
      BitVector seed(m_bits == 0 ? 0 : in.n + m_bits - 1);
      for (auto& w : seed.mutable_words()) w = rng_();
      if (seed.size() % 64 != 0 && !seed.mutable_words().empty()) {
        seed.mutable_words().back() &= (uint64_t{1} << (seed.size() % 64)) - 1;
      }
      QkdMessage a;
      a.mutable_amplify()->set_block(block_->id);
      a.mutable_amplify()->set_secret_bits(static_cast<uint32_t>(m_bits));
      if (m_bits > 0) a.mutable_amplify()->set_toeplitz_seed(Bits(seed));
      Send(a);
      block_->amplify_seq = last_seq_[0];
      block_->verified = false;  // waiting for AmplifyAck
      block_->alice.reset();
      block_->bob.reset();
      block_->sample_mask = seed;  // kept for Finish (reuse of the field)
      block_->disclosed = m_bits;
      return;
    }
    case QkdMessage::kAmplify: {
      if (config_.alice || !block_) return Violation("unexpected Amplify");
      const uint32_t m_bits = m.amplify().secret_bits();
      BitVector seed;
      if (m_bits > block_->key.size() ||
          !BitVector::FromBytes(m.amplify().toeplitz_seed(),
                                m_bits == 0 ? 0 : block_->key.size() + m_bits - 1, &seed)) {
        return Abort("malformed amplify");
      }
      // QKD-S25: the length must be the secure length Bob computes himself.
      ::qnet::qkd::SecureLengthInput in;
      in.n = block_->key.size();
      in.k = block_->x_count;
      in.qber_x = block_->qber_x;
      in.leak_ec = block_->disclosed;
      in.leak_verify = 64;
      in.eps_sec = config_.params.eps_sec();
      in.eps_cor = config_.params.eps_cor();
      const uint64_t expected = in.k == 0 ? 0 : ::qnet::qkd::ComputeSecureLength(in).bits;
      if (m_bits != expected) {
        ++result_.secure_length_mismatches;
        Violation("Amplify secret_bits " + std::to_string(m_bits) + ", expected " +
                  std::to_string(expected));
      }
      QkdMessage r;
      r.mutable_amplify_ack()->set_block(block_->id);
      Send(r);
      return Finish(block_->id, m_bits, seed);
    }
    case QkdMessage::kAmplifyAck: {
      if (!config_.alice || !block_ || block_->alice) return Violation("unexpected AmplifyAck");
      const BitVector seed = block_->sample_mask;
      Finish(block_->id, static_cast<uint32_t>(block_->disclosed), seed);
      MaybeStartBlock();
      SendNextSift();
      return MaybeDone();
    }
    default:
      return Violation("unknown message body");
  }
}

void QkdPeer::SiftRange(uint64_t first, uint32_t count, const std::string& other_held,
                        const std::string& other_x) {
  BitVector held, bx;
  if (!BitVector::FromBytes(other_held, count, &held) ||
      !BitVector::FromBytes(other_x, count, &bx)) {
    return Abort("malformed sift");
  }
  for (uint32_t i = 0; i < count; ++i) {
    auto it = pairs_.find(first + i);
    if (it == pairs_.end() || !it->second.held || !held.Get(i)) continue;
    if (it->second.basis_x != bx.Get(i)) continue;
    (it->second.basis_x ? x_stream_ : z_stream_).PushBack(it->second.result != 0);
  }
}

void QkdPeer::SendNextSift() {
  // One range at a time, and none while a whole block waits (QKD-S12, S15).
  if (!config_.alice || sift_replies_due_ > 0 || next_to_send_ > max_pair_id_) return;
  if (z_stream_.size() - z_used_ >= config_.params.block_bits() || result_.aborted) return;
  const uint64_t first = next_to_send_;
  const uint32_t count =
      static_cast<uint32_t>(std::min<uint64_t>(config_.sift_chunk, max_pair_id_ - first + 1));
  BitVector held(count), bx(count);
  for (uint32_t i = 0; i < count; ++i) {
    const View& v = pairs_[first + i];
    held.Set(i, v.held);
    bx.Set(i, v.held && v.basis_x);
  }
  QkdMessage s;
  s.mutable_sift()->set_first_pair_id(first);
  s.mutable_sift()->set_count(count);
  s.mutable_sift()->set_held(Bits(held));
  s.mutable_sift()->set_basis_x(Bits(bx));
  Send(s);
  ++sift_replies_due_;
  next_to_send_ = first + count;
}

void QkdPeer::MaybeStartBlock() {
  if (!config_.alice || block_ || result_.aborted) return;
  const auto& p = config_.params;
  const uint32_t n = p.block_bits();
  if (z_stream_.size() - z_used_ < n) return;
  block_ = std::make_unique<Block>();
  Block& b = *block_;
  b.id = next_block_;
  b.raw = z_stream_.Slice(z_used_, z_used_ + n);
  z_used_ += n;
  // Sample: a uniformly random subset of round(sample_fraction * n) positions.
  const uint32_t s = static_cast<uint32_t>(std::llround(p.sample_fraction() * n));
  std::vector<uint32_t> idx(n);
  for (uint32_t i = 0; i < n; ++i) idx[i] = i;
  b.sample_mask = BitVector(n);
  for (uint32_t i = 0; i < s; ++i) {
    const uint32_t j = i + static_cast<uint32_t>(rng_() % (n - i));
    std::swap(idx[i], idx[j]);
    b.sample_mask.Set(idx[i], true);
  }
  BitVector sample_bits;
  for (uint32_t i = 0; i < n; ++i) {
    if (b.sample_mask.Get(i)) {
      sample_bits.PushBack(b.raw.Get(i));
    } else {
      b.key.PushBack(b.raw.Get(i));
    }
  }
  b.x_first = x_used_;
  b.x_count = static_cast<uint32_t>(x_stream_.size() - x_used_);
  x_used_ += b.x_count;
  b.cascade_seed = rng_();
  QkdMessage e;
  e.mutable_estimate()->set_block(b.id);
  e.mutable_estimate()->set_sample(Bits(b.sample_mask));
  e.mutable_estimate()->set_sample_bits(Bits(sample_bits));
  e.mutable_estimate()->set_x_count(b.x_count);
  e.mutable_estimate()->set_x_bits(Bits(x_stream_.Slice(b.x_first, b.x_first + b.x_count)));
  e.mutable_estimate()->set_cascade_seed(b.cascade_seed);
  Send(e);
}

void QkdPeer::AfterEstimate(uint64_t z_errors, uint64_t z_sampled, uint64_t x_errors,
                            uint64_t x_count) {
  Block& b = *block_;
  const auto& p = config_.params;
  b.qber_z = z_sampled == 0 ? 0.0 : static_cast<double>(z_errors) / z_sampled;
  b.qber_x = x_count == 0 ? 0.0 : static_cast<double>(x_errors) / x_count;
  result_.qber_z = b.qber_z;
  result_.qber_x = b.qber_x;
  if (b.qber_z > p.qber_threshold() || b.qber_x > p.qber_threshold()) {
    // Both ends decide alike; the peer also says so.
    return Abort("QBER above threshold");
  }
  ::qnet::qkd::CascadeParams cp;
  cp.passes = p.cascade_passes();
  if (config_.alice) {
    b.alice = std::make_unique<::qnet::qkd::CascadeAlice>(b.key, cp, b.cascade_seed);
    return;
  }
  b.bob = std::make_unique<::qnet::qkd::CascadeBob>(b.key, b.qber_z, cp, b.cascade_seed);
  auto next = b.bob->NextRequest();
  QkdMessage r;
  r.mutable_parity_request()->set_block(b.id);
  if (next) {
    *r.mutable_parity_request() = *next;
    r.mutable_parity_request()->set_block(b.id);
    if (config_.bug == Bug::kParityOutOfRange) {
      r.mutable_parity_request()->set_end(0, static_cast<uint32_t>(b.key.size()) + 5);
    }
  } else {
    r.mutable_parity_request()->set_round(kCascadeDone);
  }
  Send(r);
}

void QkdPeer::Finish(uint64_t block, uint32_t secret_bits, const BitVector& seed) {
  Block& b = *block_;
  result_.sifted_bits += config_.params.block_bits();
  result_.x_test_bits += b.x_count;
  result_.secret_bits += secret_bits;
  ++result_.blocks;
  BitVector final_key;
  if (secret_bits > 0) {
    auto hashed = ::qnet::qkd::ToeplitzHash(b.key, seed, secret_bits);
    if (!hashed.ok()) return Abort("toeplitz: " + std::string(hashed.status().message()));
    final_key = std::move(*hashed);
  }
  // Refill both pads with what each direction consumed since the last refill
  // (rounded up to 64 bits), a->b first (QKD-U10..U12), counted up to the
  // Amplify (a->b) and the AmplifyAck (b->a).
  const uint64_t amplify_seq = config_.alice ? b.amplify_seq : last_seq_[0];
  const uint64_t a2b = 64 * (amplify_seq - refilled_upto_[0]);
  const uint64_t b2a = 64 * (last_seq_[1] - refilled_upto_[1]);
  auto rest = auth_->RefillFromKey(final_key, a2b, b2a);
  if (!rest.ok()) {
    return Abort("authentication key exhausted (refill " + std::to_string(a2b) + " + " +
                 std::to_string(b2a) + " bits from " + std::to_string(final_key.size()) + ")");
  }
  refilled_upto_[0] = amplify_seq;
  refilled_upto_[1] = last_seq_[1];
  const size_t keep = rest->size() / 16 * 16;
  key_stream_.Append(rest->Slice(0, keep));
  block_.reset();
  next_block_ = block + 1;
}

void QkdPeer::MaybeDone() {
  if (!config_.alice || finished_ || result_.aborted) return;
  if (sift_replies_due_ > 0 || block_) return;
  if (next_sift_ <= max_pair_id_) return;
  if (z_stream_.size() - z_used_ >= config_.params.block_bits()) return;
  finished_ = true;
  wants_close_ = true;
}

}  // namespace qnet::interop::qkd
