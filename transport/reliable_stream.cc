#include "transport/reliable_stream.h"

#include <algorithm>
#include <utility>

namespace qnet::transport {

ReliableStream::ReliableStream(Runtime* runtime, StreamOptions options, SegmentFn transmit,
                               AckFn ack, SegmentFn deliver, std::function<void()> failed)
    : runtime_(runtime),
      options_(options),
      transmit_(std::move(transmit)),
      ack_(std::move(ack)),
      deliver_(std::move(deliver)),
      on_failed_(std::move(failed)),
      timer_(runtime->CreateTimer([this] { OnTimeout(); })),
      timeout_(options.initial_timeout) {}

uint64_t ReliableStream::Enqueue(v1::Segment segment) {
  const uint64_t seq = next_seq_++;
  segment.set_seq(seq);
  unacked_.push_back(std::move(segment));
  if (started_ && !stopped_) {
    transmit_(unacked_.back());
    if (!timer_->armed()) Arm();
  }
  return seq;
}

void ReliableStream::Start() {
  if (started_ || stopped_) return;
  started_ = true;
  for (const v1::Segment& s : unacked_) transmit_(s);
  if (!unacked_.empty()) Arm();
}

void ReliableStream::Arm() { timer_->ArmAt(runtime_->Now() + timeout_); }

void ReliableStream::OnTimeout() {
  if (stopped_ || unacked_.empty()) return;
  if (++timeouts_ > options_.max_timeouts) {  // TRN-R5
    failed_ = true;
    Stop();
    if (on_failed_) on_failed_();
    return;
  }
  timeout_ = std::min(timeout_ * 2, options_.max_timeout);  // TRN-R4
  for (const v1::Segment& s : unacked_) {
    ++retransmissions_;
    transmit_(s);
  }
  Arm();
}

void ReliableStream::OnSegment(const v1::Segment& segment) {
  const uint64_t seq = segment.seq();
  if (seq == 0) return;  // not a stream segment; the caller counts it
  if (seq < next_expected_ || early_.contains(seq)) {
    ++duplicates_;  // TRN-R3: handed up once only; re-acked below (also when stopped)
  } else if (stopped_) {
    return;  // a stopped stream takes nothing new
  } else if (seq > next_expected_) {
    early_.emplace(seq, segment);
  } else {
    ++next_expected_;
    deliver_(segment);
    // `deliver_` may have stopped the stream (a Close); keep order anyway.
    while (!stopped_) {
      auto it = early_.find(next_expected_);
      if (it == early_.end()) break;
      v1::Segment next = std::move(it->second);
      early_.erase(it);
      ++next_expected_;
      deliver_(next);
    }
  }
  ack_(next_expected_ - 1);  // TRN-R2
}

void ReliableStream::OnAck(uint64_t cumulative) {
  bool progress = false;
  while (!unacked_.empty() && unacked_.front().seq() <= cumulative) {
    unacked_.pop_front();
    progress = true;
  }
  if (!progress) return;
  timeouts_ = 0;
  timeout_ = options_.initial_timeout;
  if (unacked_.empty()) {
    timer_->Cancel();
  } else if (!stopped_) {
    Arm();
  }
}

void ReliableStream::Stop() {
  stopped_ = true;
  timer_->Cancel();
}

}  // namespace qnet::transport
