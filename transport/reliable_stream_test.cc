// ReliableStream (specs/transport.md TRN-R1 .. TRN-R5), driven in virtual time
// by the simulator with a scripted lossy channel between two streams.
#include "transport/reliable_stream.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "stack/random.h"
#include "stack/sim/simulator.h"

namespace qnet::transport {
namespace {

v1::Segment DataSegment(const std::string& bytes) {
  v1::Segment s;
  s.mutable_data()->set_bytes(bytes);
  return s;
}

// Two streams joined by a channel with delay `d` that drops what `lose` says.
class StreamPair {
 public:
  explicit StreamPair(StreamOptions options = {}) {
    for (int side = 0; side < 2; ++side) {
      streams_[side] = std::make_unique<ReliableStream>(
          &sim_, options,
          [this, side](const v1::Segment& s) {
            ++sent_[side];
            send_times_[side].push_back(sim_.Now());
            Carry(side, [this, side, s] { streams_[1 - side]->OnSegment(s); });
          },
          [this, side](uint64_t cum) {
            Carry(side, [this, side, cum] { streams_[1 - side]->OnAck(cum); });
          },
          [this, side](const v1::Segment& s) { got_[side].push_back(s.data().bytes()); },
          [this, side] { ++failed_[side]; });
    }
  }
  void Carry(int from, std::function<void()> fn) {
    if (lose && lose(from)) return;
    sim_.Schedule(sim_.Now() + delay, std::move(fn));
  }

  sim::Simulator sim_;
  absl::Duration delay = absl::Milliseconds(5);
  std::function<bool(int from)> lose;
  std::unique_ptr<ReliableStream> streams_[2];
  std::vector<std::string> got_[2];
  int sent_[2] = {0, 0};
  int failed_[2] = {0, 0};
  std::vector<Time> send_times_[2];
};

// TRN-R1, TRN-R3: every segment reaches the other end once and in order,
// with 40 % of all datagrams (segments and acks) lost.
TEST(ReliableStreamTest, TRN_R1_R3_InOrderExactlyOnceUnderLoss) {
  StreamPair p;
  Rng rng(7);
  p.lose = [&](int) { return rng.Bernoulli(0.4); };
  p.streams_[0]->Start();
  p.streams_[1]->Start();
  std::vector<std::string> want[2];
  for (int i = 0; i < 200; ++i) {
    for (int side = 0; side < 2; ++side) {
      want[side].push_back(std::to_string(side) + ":" + std::to_string(i));
      p.streams_[side]->Enqueue(DataSegment(want[side].back()));
    }
  }
  p.sim_.RunUntil(Time::FromSeconds(60));
  EXPECT_EQ(p.got_[1], want[0]);
  EXPECT_EQ(p.got_[0], want[1]);
  EXPECT_TRUE(p.streams_[0]->all_acked());
  EXPECT_TRUE(p.streams_[1]->all_acked());
  EXPECT_GT(p.streams_[0]->retransmissions(), 0u);
  EXPECT_EQ(p.failed_[0] + p.failed_[1], 0);
}

// TRN-R1: segments queued before Start wait; nothing is sent before it.
TEST(ReliableStreamTest, TRN_R1_NothingSentBeforeStart) {
  StreamPair p;
  p.streams_[0]->Enqueue(DataSegment("a"));
  p.streams_[0]->Enqueue(DataSegment("b"));
  p.sim_.RunUntil(Time::FromSeconds(1));
  EXPECT_EQ(p.sent_[0], 0);
  p.streams_[0]->Start();
  p.streams_[1]->Start();
  p.sim_.RunUntil(Time::FromSeconds(2));
  EXPECT_EQ(p.got_[1], (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.sent_[0], 2);  // no retransmission when acks arrive in time
}

// TRN-R2: a reordered channel still hands segments up in order (later ones are
// buffered), and a duplicate is acked but not handed up again.
TEST(ReliableStreamTest, TRN_R2_ReorderedAndDuplicatedSegments) {
  sim::Simulator sim;
  std::vector<std::string> got;
  std::vector<uint64_t> acks;
  ReliableStream rx(
      &sim, {}, [](const v1::Segment&) {}, [&](uint64_t c) { acks.push_back(c); },
      [&](const v1::Segment& s) { got.push_back(s.data().bytes()); }, [] {});
  auto seg = [](uint64_t seq, const std::string& b) {
    v1::Segment s = DataSegment(b);
    s.set_seq(seq);
    return s;
  };
  rx.OnSegment(seg(2, "b"));
  rx.OnSegment(seg(3, "c"));
  EXPECT_TRUE(got.empty());
  rx.OnSegment(seg(1, "a"));
  rx.OnSegment(seg(2, "b"));
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(acks, (std::vector<uint64_t>{0, 0, 3, 3}));
  EXPECT_EQ(rx.duplicates(), 1u);
}

// TRN-R4, TRN-R5: with every datagram lost, retransmissions come after 50,
// 100, 200, 400 ms (doubling, capped at 400 ms here) and the stream fails
// after max_timeouts timeouts without an ack.
TEST(ReliableStreamTest, TRN_R4_R5_BackoffThenFailure) {
  StreamOptions o;
  o.initial_timeout = absl::Milliseconds(50);
  o.max_timeout = absl::Milliseconds(400);
  o.max_timeouts = 5;
  StreamPair p(o);
  p.lose = [](int) { return true; };
  p.streams_[0]->Start();
  p.streams_[0]->Enqueue(DataSegment("x"));
  p.sim_.RunUntil(Time::FromSeconds(10));
  std::vector<int64_t> ms;
  for (Time t : p.send_times_[0]) ms.push_back(t.nanos() / 1000000);
  EXPECT_EQ(ms, (std::vector<int64_t>{0, 50, 150, 350, 750, 1150}));
  EXPECT_EQ(p.failed_[0], 1);
  EXPECT_TRUE(p.streams_[0]->failed());
}

// TRN-R4: an ack that makes progress resets the timeout to its initial value.
TEST(ReliableStreamTest, TRN_R4_AckResetsBackoff) {
  StreamPair p;
  int lost = 0;
  p.lose = [&](int from) { return from == 0 && lost++ < 3; };  // first 3 tries of "a"
  p.streams_[0]->Start();
  p.streams_[1]->Start();
  p.streams_[0]->Enqueue(DataSegment("a"));
  p.sim_.RunUntil(Time::FromSeconds(1));
  ASSERT_EQ(p.got_[1], (std::vector<std::string>{"a"}));
  const size_t before = p.send_times_[0].size();
  lost = 2;  // lose the first try of "b": resent 50 ms after it
  p.streams_[0]->Enqueue(DataSegment("b"));
  p.sim_.RunUntil(Time::FromSeconds(2));
  ASSERT_EQ(p.send_times_[0].size(), before + 2);
  EXPECT_EQ(p.send_times_[0][before + 1] - p.send_times_[0][before], absl::Milliseconds(50));
}

}  // namespace
}  // namespace qnet::transport
