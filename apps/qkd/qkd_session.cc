// QkdSession: events, frames, authentication, sifting and the end of a
// session (specs/qkd.md sections 1, 2 and 10). Blocks: qkd_blocks.cc.
#include "apps/qkd/qkd_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "apps/lib/requests.h"
#include "apps/qkd/qkd_session_impl.h"

namespace qnet::qkd {

QkdSession::QkdSession(apps::AppClient* client, Rng* rng, QkdOptions options)
    : key_store_(std::make_unique<KeyStore>(
          options.session, options.role == QkdOptions::Role::kAlice, options.psk)) {
  impl_ = std::make_unique<Impl>(this, client, rng, std::move(options));
}
QkdSession::~QkdSession() = default;

void QkdSession::Start() { impl_->Start(); }
std::string QkdSession::ResultJson() const { return impl_->ResultJson(); }

QkdSession::Impl::Impl(QkdSession* session, apps::AppClient* client, Rng* rng, QkdOptions options)
    : session_(session),
      client_(client),
      rng_(rng),
      options_(std::move(options)),
      log_(options_.role == QkdOptions::Role::kAlice ? options_.pairs : 0) {}

void QkdSession::Impl::Start() {
  client_->SetHandlers(apps::AppClient::Handlers{
      .on_event = [this](const app::v1::AppEvent& e) { OnEvent(e); },
      .on_disconnected =
          [this](absl::Status why) {
            connection_closed_ = true;
            Finish(absl::UnavailableError(absl::StrCat("lost the node: ", why.ToString())));
          },
  });
  auto auth = Authenticator::Create(options_.psk, alice());
  if (!auth.ok()) {  // QKD-S5: a PSK too short for one tag per direction
    return Abort(absl::StrCat("authentication key exhausted: pre-shared secret of ",
                              options_.psk.size(), " bytes (", auth.status().message(), ")"),
                 /*tell_peer=*/false);
  }
  auth_.emplace(*std::move(auth));
  frames_.emplace(&*auth_);
  bind_request_ = client_->Send(apps::BindRequest(options_.port));
}

// ---- events ----

void QkdSession::Impl::OnEvent(const app::v1::AppEvent& event) {
  if (session_->done_) return;
  switch (event.body_case()) {
    case app::v1::AppEvent::kReply:
      return OnReply(event.request_id(), event.reply());
    case app::v1::AppEvent::kConnected: {
      const auto& c = event.connected();
      if (alice()) {
        if (c.connection() != connection_ || hello_done_) return;
        v1::QkdMessage m;  // QKD-S2: Hello first
        auto* hello = m.mutable_hello();
        hello->set_session(options_.session);
        auto* p = hello->mutable_params();
        p->set_block_bits(options_.block_bits);
        p->set_z_probability(options_.z_probability);
        p->set_sample_fraction(options_.sample_fraction);
        p->set_qber_threshold(options_.qber_threshold);
        p->set_eps_sec(options_.eps_sec);
        p->set_eps_cor(options_.eps_cor);
        p->set_cascade_passes(options_.cascade_passes);
        p->set_key_size_bits(options_.key_size_bits);
        SendMessage(m);
        return;
      }
      if (c.socket() != socket_) return;
      if (connection_ == 0) {
        connection_ = c.connection();
      } else if (c.connection() != connection_) {
        client_->Send(apps::CloseRequest(c.connection()));  // QKD-S3: one session per end
      }
      return;
    }
    case app::v1::AppEvent::kClosed:
      if (event.closed().connection() == connection_ ||
          (connect_request_ != 0 && event.request_id() == connect_request_)) {
        OnClosedEvent(event.closed());
      }
      return;
    case app::v1::AppEvent::kPair:
      if (event.pair().connection() == connection_ && connection_ != 0) {
        OnPairEvent(event.pair());
      }
      return;
    case app::v1::AppEvent::kPairExpired:
      if (event.pair_expired().connection() != connection_ || connection_ == 0) return;
      log_.OnExpired(event.pair_expired().pair_id());
      return alice() ? MaybeSift() : AnswerSifts();
    case app::v1::AppEvent::kData:
      if (event.data().connection() == connection_ && connection_ != 0) {
        OnData(event.data().data());
      }
      return;
    default:
      return;
  }
}

void QkdSession::Impl::OnReply(uint64_t request_id, const app::v1::Reply& reply) {
  const absl::Status status = apps::ReplyStatus(reply);
  if (request_id == bind_request_) {
    if (!status.ok()) return Finish(status);
    socket_ = reply.socket();
    if (alice()) {
      // QKD-S1: measure pairs, XZ with z_probability, until this end closes
      // (the connection is also the classical channel, so no Qos.pairs).
      app::v1::Qos qos;
      qos.set_type(app::v1::PAIR_TYPE_MEASURE);
      qos.set_basis(link::v1::BASIS_CHOICE_XZ);
      qos.set_z_probability(options_.z_probability);
      qos.set_min_fidelity(options_.min_fidelity);
      qos.set_window(options_.window);
      connect_request_ =
          client_->Send(apps::ConnectRequest(socket_, options_.peer, options_.peer_port, qos));
    }
    return;
  }
  if (request_id == connect_request_) {
    if (!status.ok()) return Finish(status);
    connection_ = reply.connection();
    return;
  }
  if (request_id == close_request_ && close_request_ != 0) {
    connection_closed_ = true;
    return Finish(absl::OkStatus());
  }
}

void QkdSession::Impl::OnPairEvent(const app::v1::Pair& pair) {
  if (pair.kept()) return Abort("the transport delivered a kept pair: measure pairs expected");
  const uint64_t t = pair.time_ns();
  if (!have_pair_time_ || t < first_pair_ns_) first_pair_ns_ = t;
  if (!have_pair_time_ || t > latest_pair_ns_) latest_pair_ns_ = t;
  have_pair_time_ = true;
  if (pair.basis() == physical::v1::BASIS_Z || pair.basis() == physical::v1::BASIS_X) {
    log_.OnPair(pair.pair_id(), pair.basis() == physical::v1::BASIS_X, pair.result() != 0);
  } else {
    log_.OnExpired(pair.pair_id());  // QKD-S11: only Z and X outcomes are sifted
  }
  alice() ? MaybeSift() : AnswerSifts();
}

void QkdSession::Impl::OnClosedEvent(const app::v1::Closed& closed) {
  connection_closed_ = true;
  const std::string why =
      absl::StrCat("connection closed (", app::v1::CloseReason_Name(closed.reason()), ")",
                   closed.detail().empty() ? "" : ": ", closed.detail());
  if (close_request_ != 0) return;  // our Close; its Reply finishes
  // QKD-S30: Bob is done when Alice closes with no block under way.
  if (!alice() && closed.reason() == app::v1::CLOSE_REASON_PEER && phase_ == Phase::kIdle &&
      pending_sifts_.empty() && hello_done_) {
    result().leftover_bits = z_stream_.size();
    return Finish(absl::OkStatus());
  }
  Finish(absl::UnavailableError(
      phase_ == Phase::kIdle ? why : absl::StrCat(why, " during block ", block_.id)));
}

// ---- frames ----

bool QkdSession::Impl::SendMessage(const v1::QkdMessage& message) {
  if (session_->done_ || connection_closed_ || connection_ == 0) return false;
  // QKD-W4: one frame, or fragments of kFragmentBytes with `more`.
  auto frames = frames_->Seal(message.SerializeAsString());
  if (!frames.ok()) {
    if (frames.status().code() == absl::StatusCode::kResourceExhausted) {
      Abort("authentication key exhausted", /*tell_peer=*/false);  // QKD-S7
    } else {
      Abort(std::string(frames.status().message()));  // QKD-W6: "message too large: ..."
    }
    return false;
  }
  last_sent_seq_ = frames_->last_sent_seq();
  for (std::string& frame : *frames) {
    client_->Send(apps::SendRequest(connection_, std::move(frame)));
  }
  return true;
}

void QkdSession::Impl::OnData(const std::string& data) {
  auto message_bytes = frames_->Receive(data);
  if (!message_bytes.ok()) {
    const absl::Status& s = message_bytes.status();
    switch (s.code()) {
      case absl::StatusCode::kDataLoss:  // QKD-S6: not a frame
        ++result().bad_frames;
        return Abort(std::string(s.message()));
      case absl::StatusCode::kResourceExhausted:
        ++result().bad_frames;
        return Abort("authentication key exhausted", /*tell_peer=*/false);
      case absl::StatusCode::kOutOfRange:  // QKD-W6
        ++result().bad_frames;
        return Abort(std::string(s.message()));
      case absl::StatusCode::kFailedPrecondition:  // QKD-W7
        return Malformed(std::string(s.message()));
      default:  // QKD-S6: Open refused the frame
        ++result().bad_frames;
        return Abort(absl::StrCat("authentication failed: ", s.message()));
    }
  }
  if (!message_bytes->has_value()) return;  // QKD-W5: a fragment, more to come
  frame_seq_ = frames_->last_seq();
  v1::QkdMessage message;
  if (!message.ParseFromString(**message_bytes)) return Malformed("not a QkdMessage");
  OnMessage(message);
}

void QkdSession::Impl::OnMessage(const v1::QkdMessage& m) {
  using M = v1::QkdMessage;
  if (m.body_case() == M::kAbort) {  // QKD-S8
    return Abort(absl::StrCat("peer aborted: ", m.abort().reason()), /*tell_peer=*/false);
  }
  if (m.body_case() == M::kHello) return OnHello(m.hello());
  if (alice() && !hello_done_ && m.body_case() == M::kHelloAck) {
    if (m.hello_ack().session() != options_.session) return Malformed("HelloAck session differs");
    hello_done_ = true;
    return MaybeSift();
  }
  if (!hello_done_) return Malformed("a message before the Hello exchange");
  // QKD-S4: each message goes one way only.
  switch (m.body_case()) {
    case M::kHelloAck:
      return alice() ? Malformed("a second HelloAck") : Malformed("HelloAck sent to Bob");
    case M::kSift:
      return alice() ? Malformed("Sift sent to Alice") : OnSift(m.sift());
    case M::kSiftReply:
      return alice() ? OnSiftReply(m.sift_reply()) : Malformed("SiftReply sent to Bob");
    case M::kEstimate:
      return alice() ? Malformed("Estimate sent to Alice") : OnEstimate(m.estimate());
    case M::kEstimateReply:
      return alice() ? OnEstimateReply(m.estimate_reply()) : Malformed("EstimateReply sent to Bob");
    case M::kParityRequest:
      return alice() ? OnParityRequest(m.parity_request()) : Malformed("ParityRequest sent to Bob");
    case M::kParityReply:
      return alice() ? Malformed("ParityReply sent to Alice") : OnParityReply(m.parity_reply());
    case M::kVerify:
      return alice() ? Malformed("Verify sent to Alice") : OnVerify(m.verify());
    case M::kVerifyReply:
      return alice() ? OnVerifyReply(m.verify_reply()) : Malformed("VerifyReply sent to Bob");
    case M::kAmplify:
      return alice() ? Malformed("Amplify sent to Alice") : OnAmplify(m.amplify());
    case M::kAmplifyAck:
      return alice() ? OnAmplifyAck(m.amplify_ack()) : Malformed("AmplifyAck sent to Bob");
    default:
      return Malformed("unknown message type");  // QKD-S9
  }
}

void QkdSession::Impl::OnHello(const v1::Hello& hello) {
  if (alice() || hello_done_) return Malformed("unexpected Hello");
  // QKD-S2: every parameter must equal Bob's own.
  const auto& p = hello.params();
  std::string diff;
  auto check = [&diff](const char* name, auto theirs, auto mine) {
    if (diff.empty() && theirs != mine) {
      diff = absl::StrCat("Hello parameter ", name, " differs: Alice ", theirs, ", Bob ", mine);
    }
  };
  if (hello.session() != options_.session) {
    diff = absl::StrCat("Hello session differs: Alice \"", hello.session(), "\", Bob \"",
                        options_.session, "\"");
  }
  check("block_bits", p.block_bits(), options_.block_bits);
  check("z_probability", p.z_probability(), options_.z_probability);
  check("sample_fraction", p.sample_fraction(), options_.sample_fraction);
  check("qber_threshold", p.qber_threshold(), options_.qber_threshold);
  check("eps_sec", p.eps_sec(), options_.eps_sec);
  check("eps_cor", p.eps_cor(), options_.eps_cor);
  check("cascade_passes", p.cascade_passes(), options_.cascade_passes);
  check("key_size_bits", p.key_size_bits(), options_.key_size_bits);
  if (!diff.empty()) return Abort(diff);
  hello_done_ = true;
  v1::QkdMessage m;
  m.mutable_hello_ack()->set_session(options_.session);
  SendMessage(m);
  AnswerSifts();
}

void QkdSession::Impl::Malformed(const std::string& what) {
  ++result().bad_frames;
  Abort(absl::StrCat("protocol error: ", what));
}

void QkdSession::Impl::Abort(const std::string& reason, bool tell_peer) {
  if (session_->done_) return;
  result().aborted = true;
  result().abort_reason = reason;
  if (connection_ != 0 && !connection_closed_) {
    if (tell_peer) {  // best effort: Abort, then Close
      v1::QkdMessage m;
      m.mutable_abort()->set_reason(reason);
      if (auto frame = auth_->Seal(m.SerializeAsString()); frame.ok()) {
        client_->Send(apps::SendRequest(connection_, frame->SerializeAsString()));
      }
    }
    client_->Send(apps::CloseRequest(connection_));
    connection_closed_ = true;
  }
  Finish(absl::AbortedError(reason));
}

// ---- sifting ----

void QkdSession::Impl::MaybeSift() {
  if (!hello_done_ || close_request_ != 0 || session_->done_) return;
  const uint64_t limit = options_.pairs;
  while (true) {
    const uint64_t ready = log_.frontier() - log_.next();
    const bool last = limit > 0 && log_.frontier() > limit;  // QKD-S12
    if (ready == 0 || (ready < kSiftChunk && !last)) break;
    // QKD-S15: no sifting ahead while a whole block waits (bounds the pad
    // spent before the next refill).
    if (z_stream_.size() >= options_.block_bits && options_.block_bits > 0) break;
    const uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(ready, kMaxSiftRange));
    SiftView mine = log_.Take(count);
    v1::QkdMessage m;
    auto* sift = m.mutable_sift();
    sift->set_first_pair_id(mine.first);
    sift->set_count(mine.count);
    sift->set_held(mine.held.ToBytes());
    sift->set_basis_x(mine.basis_x.ToBytes());
    if (!SendMessage(m)) return;
    ++result().sift_ranges;
    outstanding_.push_back(std::move(mine));
  }
  MaybeFinish();
}

void QkdSession::Impl::OnSift(const v1::Sift& sift) {
  auto theirs = ViewFromWire(sift.first_pair_id(), sift.count(), sift.held(), sift.basis_x());
  if (!theirs.ok()) return Malformed(std::string(theirs.status().message()));
  if (theirs->first != next_sift_first_) {  // QKD-S12: consecutive ranges
    return Malformed(
        absl::StrCat("Sift starts at pair id ", theirs->first, ", expected ", next_sift_first_));
  }
  next_sift_first_ += theirs->count;
  pending_sifts_.push_back(*std::move(theirs));
  AnswerSifts();
}

void QkdSession::Impl::AnswerSifts() {
  while (hello_done_ && !session_->done_ && !pending_sifts_.empty()) {
    const SiftView& theirs = pending_sifts_.front();
    // QKD-S13: answer once every id of the range was seen here.
    if (log_.frontier() < theirs.first + theirs.count) return;
    SiftView mine = log_.Take(theirs.count);
    v1::QkdMessage m;
    auto* reply = m.mutable_sift_reply();
    reply->set_first_pair_id(mine.first);
    reply->set_count(mine.count);
    reply->set_held(mine.held.ToBytes());
    reply->set_basis_x(mine.basis_x.ToBytes());
    if (!SendMessage(m)) return;
    ++result().sift_ranges;
    SiftView answered = std::move(pending_sifts_.front());
    pending_sifts_.pop_front();
    ApplySift(mine, answered);
  }
}

void QkdSession::Impl::OnSiftReply(const v1::SiftReply& reply) {
  auto theirs = ViewFromWire(reply.first_pair_id(), reply.count(), reply.held(), reply.basis_x());
  if (!theirs.ok()) return Malformed(std::string(theirs.status().message()));
  if (outstanding_.empty()) return Malformed("SiftReply without a Sift");
  SiftView mine = std::move(outstanding_.front());
  outstanding_.pop_front();
  if (mine.first != theirs->first || mine.count != theirs->count) {
    return Malformed(absl::StrCat("SiftReply for [", theirs->first, ", +", theirs->count,
                                  "), expected [", mine.first, ", +", mine.count, ")"));
  }
  ApplySift(mine, *theirs);
  if (!session_->done_) MaybeStartBlock();
}

void QkdSession::Impl::ApplySift(const SiftView& mine, const SiftView& theirs) {
  auto counts = SiftRange(mine, theirs, &z_stream_, &x_stream_);
  if (!counts.ok()) return Malformed(std::string(counts.status().message()));
  result().pairs += counts->both_held;
}

void QkdSession::Impl::MaybeFinish() {
  // QKD-S30: Alice ends the session once every id up to `pairs` is sifted and
  // every complete block is finished.
  if (!alice() || session_->done_ || close_request_ != 0 || options_.pairs == 0) return;
  if (log_.next() <= options_.pairs || !outstanding_.empty() || phase_ != Phase::kIdle) return;
  if (z_stream_.size() >= options_.block_bits) return;  // another block first
  result().leftover_bits = z_stream_.size();
  close_request_ = client_->Send(apps::CloseRequest(connection_));
}

void QkdSession::Impl::Finish(absl::Status status) {
  if (session_->done_) return;
  session_->done_ = true;
  session_->status_ = std::move(status);
  QkdResult& r = result();
  r.qber_z = r.z_sampled ? static_cast<double>(r.z_errors) / static_cast<double>(r.z_sampled) : 0;
  r.qber_x =
      r.x_test_bits ? static_cast<double>(r.x_errors) / static_cast<double>(r.x_test_bits) : 0;
  r.ec_efficiency =
      ec_denominator_ > 0 ? static_cast<double>(r.disclosed_bits) / ec_denominator_ : 0.0;
  r.expired_pairs = log_.expired_pairs();
  if (frames_) {
    r.fragmented_sent = frames_->fragmented_sent();
    r.fragmented_received = frames_->fragmented_received();
  }
  if (auth_) {
    r.auth_bits_consumed =
        auth_->bits_consumed(Direction::kAliceToBob) + auth_->bits_consumed(Direction::kBobToAlice);
  }
  r.first_pair_s = have_pair_time_ ? static_cast<double>(first_pair_ns_) * 1e-9 : 0.0;
  r.last_block_s = r.blocks ? static_cast<double>(last_block_ns_) * 1e-9 : r.first_pair_s;
  const double span = r.last_block_s - r.first_pair_s;
  r.key_rate_bps = span > 0 ? static_cast<double>(r.stored_key_bits) / span : 0.0;
  if (session_->on_done_) session_->on_done_();
}

}  // namespace qnet::qkd
