// ReliableStream: the reliable, ordered control stream of one transport
// connection (specs/transport.md TRN-R1 .. TRN-R7) over a lossy, possibly
// reordering datagram service. Segments are numbered 1, 2, 3, ... per
// direction; the receiver hands them up in order exactly once and answers
// every segment with a cumulative Ack; the sender retransmits every unacked
// segment when its timer fires, doubling the timeout up to a maximum, and
// reports failure after a bounded number of timeouts without progress.
//
// Sans-I/O: time and timers from the injected Runtime; segments and acks go
// out through the injected callbacks. Single-threaded.
#ifndef QNET_TRANSPORT_RELIABLE_STREAM_H_
#define QNET_TRANSPORT_RELIABLE_STREAM_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>

#include "absl/time/time.h"
#include "qnet/transport/v1/transport.pb.h"
#include "stack/runtime.h"

namespace qnet::transport {

struct StreamOptions {
  absl::Duration initial_timeout = absl::Milliseconds(50);  // TRN-R4
  absl::Duration max_timeout = absl::Seconds(1);            // TRN-R4
  uint32_t max_timeouts = 8;  // consecutive timeouts without an ack -> failed (TRN-R5)
};

class ReliableStream {
 public:
  using SegmentFn = std::function<void(const v1::Segment&)>;
  using AckFn = std::function<void(uint64_t cumulative)>;

  // `transmit` sends a segment (first time or again), `ack` sends an Ack,
  // `deliver` hands a received segment up (in order, once), `failed` is
  // called once when the peer stopped acknowledging (the stream then stops).
  ReliableStream(Runtime* runtime, StreamOptions options, SegmentFn transmit, AckFn ack,
                 SegmentFn deliver, std::function<void()> failed);
  ReliableStream(const ReliableStream&) = delete;
  ReliableStream& operator=(const ReliableStream&) = delete;

  // Numbers the segment and queues it; sent at once if the stream is started.
  uint64_t Enqueue(v1::Segment segment);
  // The peer is known: send what is queued (TRN-R1). Idempotent.
  void Start();
  // A segment from the peer: acked, buffered if early, handed up in order.
  void OnSegment(const v1::Segment& segment);
  void OnAck(uint64_t cumulative);
  // Stops retransmitting (the connection is gone).
  void Stop();

  bool all_acked() const { return unacked_.empty(); }
  bool failed() const { return failed_; }
  uint64_t retransmissions() const { return retransmissions_; }
  uint64_t duplicates() const { return duplicates_; }

 private:
  void Arm();
  void OnTimeout();

  Runtime* runtime_;
  StreamOptions options_;
  SegmentFn transmit_;
  AckFn ack_;
  SegmentFn deliver_;
  std::function<void()> on_failed_;
  std::unique_ptr<Timer> timer_;

  bool started_ = false;
  bool stopped_ = false;
  bool failed_ = false;
  uint64_t next_seq_ = 1;
  std::deque<v1::Segment> unacked_;  // in seq order
  absl::Duration timeout_;
  uint32_t timeouts_ = 0;

  uint64_t next_expected_ = 1;
  std::map<uint64_t, v1::Segment> early_;  // received ahead of next_expected_

  uint64_t retransmissions_ = 0;
  uint64_t duplicates_ = 0;
};

}  // namespace qnet::transport

#endif  // QNET_TRANSPORT_RELIABLE_STREAM_H_
