#include "emulator/node/qworld_client.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::node {

using physical::v1::NodeToWorld;
using physical::v1::WorldToNode;
using results::v1::DropReason;

QworldClient::QworldClient(std::string node, Tracer* tracer, Callbacks callbacks)
    : node_(std::move(node)), tracer_(tracer), callbacks_(std::move(callbacks)) {}

QworldClient::~QworldClient() = default;

void QworldClient::Attach(std::unique_ptr<FramedStream> stream) {
  stream_ = std::move(stream);
  stream_->Start({
      .on_frame = [this](std::string payload) { OnFrame(payload); },
      .on_oversized =
          [this](uint64_t size) {
            Drop(DropReason::DROP_REASON_OVERSIZED_FRAME,
                 absl::StrCat("qworld sent a frame of ", size, " bytes"));
          },
      .on_closed =
          [this](absl::Status why) {
            if (callbacks_.on_closed) callbacks_.on_closed(std::move(why));
          },
  });
  NodeToWorld hello;
  hello.mutable_hello()->set_node(node_);
  Send(std::move(hello));
}

void QworldClient::Bye(const std::string& reason, std::function<void()> on_done) {
  if (!connected()) {
    if (on_done) on_done();
    return;
  }
  leaving_ = true;
  NodeToWorld bye;
  bye.mutable_bye()->set_reason(reason);
  Send(std::move(bye));
  stream_->CloseWhenFlushed(std::move(on_done));
}

void QworldClient::Generate(const physical::v1::Generate& request) {
  NodeToWorld m;
  *m.mutable_generate() = request;
  Send(std::move(m));
}

void QworldClient::Free(const physical::v1::Free& request) {
  NodeToWorld m;
  *m.mutable_free() = request;
  Send(std::move(m));
}

void QworldClient::Measure(const physical::v1::Measure& request) {
  NodeToWorld m;
  *m.mutable_measure() = request;
  Send(std::move(m));
}

void QworldClient::ApplyGate(const physical::v1::Gate& request) {
  NodeToWorld m;
  *m.mutable_gate() = request;
  Send(std::move(m));
}

void QworldClient::BellMeasure(const physical::v1::BellMeasure& request) {
  NodeToWorld m;
  *m.mutable_bell_measure() = request;
  Send(std::move(m));
}

void QworldClient::Init(const physical::v1::Init& request) {
  NodeToWorld m;
  *m.mutable_init() = request;
  Send(std::move(m));
}

void QworldClient::Probe(const physical::v1::Probe& request) {
  NodeToWorld m;
  *m.mutable_probe() = request;
  Send(std::move(m));
}

void QworldClient::Send(NodeToWorld message) {
  message.set_version(1);
  if (stream_ == nullptr || (leaving_ && !message.has_bye()) || !stream_->Send(message).ok()) {
    // The link layer learns nothing from qworld for this request; its own
    // deadlines (batch deadline, request timeout) take over.
    ++requests_lost_;
    return;
  }
  ++requests_sent_;
}

void QworldClient::Drop(DropReason reason, std::string detail) {
  ++dropped_frames_;
  if (tracer_ != nullptr) tracer_->Drop(reason, std::move(detail));
}

void QworldClient::OnFrame(const std::string& payload) {
  WorldToNode m;
  if (!m.ParseFromString(payload)) {
    return Drop(DropReason::DROP_REASON_MALFORMED_FRAME,
                absl::StrCat("a ", payload.size(),
                             "-byte frame from qworld does not parse as WorldToNode"));
  }
  if (m.version() != 1) {
    return Drop(DropReason::DROP_REASON_VERSION_MISMATCH,
                absl::StrCat("qworld frame version ", m.version()));
  }
  if (rejected_) {
    return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                "frame from qworld after it refused the Hello");
  }
  switch (m.body_case()) {
    case WorldToNode::kHelloAck:
      if (acked_ || m.hello_ack().node() != node_) {
        return Drop(
            DropReason::DROP_REASON_UNEXPECTED_FRAME,
            absl::StrCat("HelloAck for '", m.hello_ack().node(), "'", acked_ ? " (repeated)" : ""));
      }
      acked_ = true;
      memories_ = m.hello_ack().memories();
      if (callbacks_.on_hello_ack) callbacks_.on_hello_ack(m.hello_ack());
      return;
    case WorldToNode::kStart:
      if (!acked_ || started_) {
        return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                    started_ ? "second Start from qworld" : "Start from qworld before HelloAck");
      }
      if (!(m.start().time_dilation() > 0)) {
        return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                    absl::StrCat("Start with time dilation ", m.start().time_dilation()));
      }
      started_ = true;
      if (callbacks_.on_start) callbacks_.on_start(m.start());
      return;
    case WorldToNode::kStop:
      if (callbacks_.on_stop) callbacks_.on_stop(m.stop());
      return;
    case WorldToNode::kError:
      if (!acked_) {
        rejected_ = true;
        if (callbacks_.on_rejected) callbacks_.on_rejected(m.error());
        return;
      }
      break;
    case WorldToNode::kHerald:
    case WorldToNode::kMeasureResult:
    case WorldToNode::kBellMeasureResult:
      if (!started_) {
        return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                    "indication from qworld before Start");
      }
      break;
    default:
      return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME, "frame from qworld with no known body");
  }
  if (listener_ == nullptr) {
    return Drop(DropReason::DROP_REASON_NO_CONSUMER, "indication from qworld with no listener");
  }
  ++indications_;
  switch (m.body_case()) {
    case WorldToNode::kHerald:
      return listener_->OnHerald(m.herald());
    case WorldToNode::kMeasureResult:
      return listener_->OnMeasureResult(m.measure_result());
    case WorldToNode::kBellMeasureResult:
      return listener_->OnBellMeasureResult(m.bell_measure_result());
    case WorldToNode::kError:
      return listener_->OnPhysicalError(m.error());
    default:
      return;
  }
}

}  // namespace qnet::node
