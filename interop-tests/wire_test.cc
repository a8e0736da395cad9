// specs/link.md section 8 (wire between neighbours): LINK-W1 .. LINK-W7. The
// harness writes raw bytes on the neighbour connection and watches the node's
// answers, drops and connection state.
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "interop-tests/test_util.h"

namespace qnet::interop {
namespace {

using physical::v1::OUTCOME_SUCCESS;
using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_OVERSIZED_FRAME;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;
using results::v1::DROP_REASON_UNKNOWN_LINK;
using results::v1::DROP_REASON_VERSION_MISMATCH;

constexpr size_t kMiB = 1 << 20;

wire::v1::Frame PeerFrame(const LinkFrame& link, const std::string& from = "peer",
                          uint32_t version = 1) {
  wire::v1::Frame f;
  f.set_version(version);
  f.set_from_node(from);
  *f.mutable_link() = link;
  return f;
}

// A Frame carrying a QueueAddRequest, padded with an unknown length-delimited
// field (number 999) to exactly `size` bytes of message.
wire::v1::Frame PaddedFrame(uint64_t create_id, size_t size) {
  wire::v1::Frame f = PeerFrame(AddRequestFrame(create_id, MakeCreate("iut", 1), 0));
  const size_t base = f.ByteSizeLong();
  const size_t overhead = 2 /* tag of field 999, wire type 2 */ + 3 /* length varint */;
  f.GetReflection()->MutableUnknownFields(&f)->AddLengthDelimited(
      999, std::string(size - base - overhead, 'x'));
  return f;
}

// LINK-W1 "Classical frames between neighbours MUST be varint-length-prefixed
// serialized qnet.wire.v1.Frame messages on one TCP stream per neighbour pair."
// The node reassembles a frame written one byte at a time and splits two
// frames written at once.
TEST(Link, LINK_W1_FramesAreVarintPrefixedOnTheStream) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  const std::string one =
      EncodeFrame(PeerFrame(AddRequestFrame(1, MakeCreate("iut", 1), h.NowNs())));
  for (char byte : one) {
    ASSERT_TRUE(h.SendPeerRaw(std::string(1, byte)));
    std::this_thread::sleep_for(Ms(2));
  }
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add) << "a frame written byte by byte was not read";
  EXPECT_EQ(add->msg.add().origin_create_id(), 1u);
  const std::string two =
      EncodeFrame(PeerFrame(AddRequestFrame(2, MakeCreate("iut", 1), h.NowNs()))) +
      EncodeFrame(PeerFrame(AddRequestFrame(3, MakeCreate("iut", 1), h.NowNs())));
  ASSERT_TRUE(h.SendPeerRaw(two));
  for (uint64_t id : {2u, 3u}) {
    add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add) << "create id " << id;
    EXPECT_EQ(add->msg.add().origin_create_id(), id);
  }
  const uint64_t end = h.NowNs();  // drops traced while the run ends do not count
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(CountDrops(Until(trace, end)), 0) << Dump(trace);
}

// LINK-W2 "A frame MUST carry version 1 and the sender's node name; a frame with
// another version MUST be dropped and counted (VERSION_MISMATCH), and a frame
// whose from_node is not the neighbour of the connection MUST be dropped and
// counted (UNEXPECTED_FRAME)."
TEST(Link, LINK_W2_VersionAndSenderAreChecked) {
  Harness h(Options(model::LinkParams{}, {Request{.pairs = 1, .start_s = 0.05}}));
  QNET_START(h);
  ASSERT_TRUE(
      h.SendPeerFrame(PeerFrame(AddRequestFrame(1, MakeCreate("iut", 1), h.NowNs()), "peer", 2)));
  ASSERT_TRUE(
      h.SendPeerFrame(PeerFrame(AddRequestFrame(2, MakeCreate("iut", 1), h.NowNs()), "peer", 0)));
  ASSERT_TRUE(
      h.SendPeerFrame(PeerFrame(AddRequestFrame(3, MakeCreate("iut", 1), h.NowNs()), "mallory")));
  ASSERT_TRUE(h.SendPeerFrame(PeerFrame(AddRequestFrame(4, MakeCreate("iut", 1), h.NowNs()))));
  for (int i = 0; i < 2; ++i) {
    auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
    ASSERT_TRUE(add);
    EXPECT_TRUE(add->msg.add().origin() == "iut" || add->msg.add().origin_create_id() == 4u)
        << "a dropped frame was acted on: " << add->msg.DebugString();
  }
  EXPECT_FALSE(h.ExpectLink(LinkFrame::kAdd, kQuiet));
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_VERSION_MISMATCH).size(), 2u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNEXPECTED_FRAME).size(), 1u) << Dump(trace);
  ASSERT_FALSE(h.peer_log().empty());
  for (const auto& f : h.peer_log()) {
    EXPECT_EQ(f.msg.version(), 1u) << f.msg.DebugString();
    EXPECT_EQ(f.msg.from_node(), "iut") << f.msg.DebugString();
  }
}

// LINK-W3 "A LinkFrame MUST name its link; a node MUST drop (UNKNOWN_LINK) a
// LinkFrame for a link it does not share with the sending neighbour, and deliver
// the others to the end of that link." The node has two neighbours: a frame for
// L2 from peer (L2 joins the node and peer2) and one for an unknown link are
// dropped; frames for L from peer and for L2 from peer2 reach their ends.
TEST(Link, LINK_W3_LinkFramesAreRoutedByLinkAndNeighbour) {
  HarnessOptions o = Options(model::LinkParams{});
  o.second_peer = true;
  Harness h(o);
  QNET_START(h);
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(1, MakeCreate("iut", 1), h.NowNs(), "L2"), 0));
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(2, MakeCreate("iut", 1), h.NowNs(), "L9"), 0));
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(3, MakeCreate("iut", 1), h.NowNs(), "L"), 0));
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(4, MakeCreate("iut", 1), h.NowNs(), "L2"), 1));
  auto on_l = h.ExpectLink(LinkFrame::kAdd, kWait, 0);
  ASSERT_TRUE(on_l);
  EXPECT_EQ(on_l->msg.link(), "L");
  EXPECT_EQ(on_l->msg.add().origin_create_id(), 3u);
  EXPECT_EQ(on_l->msg.add().origin(), "peer");
  auto on_l2 = h.ExpectLink(LinkFrame::kAdd, kWait, 1);
  ASSERT_TRUE(on_l2);
  EXPECT_EQ(on_l2->msg.link(), "L2");
  EXPECT_EQ(on_l2->msg.add().origin_create_id(), 4u);
  EXPECT_EQ(on_l2->msg.add().origin(), "peer2");
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_UNKNOWN_LINK).size(), 2u) << Dump(trace);
  EXPECT_EQ(LinkFramesIn(h.peer_log(0), LinkFrame::kAdd).size(), 1u);
  EXPECT_EQ(LinkFramesIn(h.peer_log(1), LinkFrame::kAdd).size(), 1u);
}

// LINK-W4 "A frame longer than 1 MiB MUST be skipped and counted
// (OVERSIZED_FRAME) and a frame that does not parse MUST be counted
// (MALFORMED_FRAME); both leave the stream usable." A frame of exactly 1 MiB is
// accepted, one byte more is skipped unread (its request is never answered).
TEST(Link, LINK_W4_OversizedAndUnparsableFramesLeaveTheStreamUsable) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  const wire::v1::Frame exact = PaddedFrame(1, kMiB);
  ASSERT_EQ(exact.ByteSizeLong(), kMiB);
  const wire::v1::Frame over = PaddedFrame(2, kMiB + 1);
  ASSERT_EQ(over.ByteSizeLong(), kMiB + 1);
  ASSERT_TRUE(h.SendPeerFrame(exact));
  ASSERT_TRUE(h.SendPeerFrame(over));
  ASSERT_TRUE(h.SendPeerRaw(EncodeVarint(5) + std::string(5, '\xff')));
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(3, MakeCreate("iut", 1), h.NowNs())));
  std::vector<uint64_t> answered;
  while (auto add = h.ExpectLink(LinkFrame::kAdd, Ms(1500)))
    answered.push_back(add->msg.add().origin_create_id());
  EXPECT_EQ(answered, (std::vector<uint64_t>{1, 3}));
  EXPECT_TRUE(h.NodeAlive());
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_OVERSIZED_FRAME).size(), 1u) << Dump(trace);
  EXPECT_EQ(Drops(trace, DROP_REASON_MALFORMED_FRAME).size(), 1u) << Dump(trace);
}

// LINK-W5 "Unknown fields MUST be ignored (proto3 semantics), so that a peer
// with additional fields interoperates." Unknown fields in the Frame, the
// LinkFrame, the QueueAddRequest and its Create.
TEST(Link, LINK_W5_UnknownFieldsAreIgnored) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  wire::v1::Frame f = PeerFrame(AddRequestFrame(1, MakeCreate("iut", 2), h.NowNs()));
  f.GetReflection()->MutableUnknownFields(&f)->AddVarint(999, 42);
  LinkFrame* lf = f.mutable_link();
  lf->GetReflection()->MutableUnknownFields(lf)->AddLengthDelimited(77, "future");
  auto* req = lf->mutable_add_request();
  req->GetReflection()->MutableUnknownFields(req)->AddFixed64(50, 7);
  auto* create = req->mutable_create();
  create->GetReflection()->MutableUnknownFields(create)->AddVarint(30, 1);
  ASSERT_TRUE(h.SendPeerFrame(f));
  auto add = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(add) << "a frame with unknown fields was not acted on";
  EXPECT_EQ(add->msg.add().origin_create_id(), 1u);
  EXPECT_EQ(add->msg.add().create().pairs(), 2u);
  const uint64_t end = h.NowNs();  // drops traced while the run ends do not count
  QNET_STOP_AND_TRACE(h, trace);
  EXPECT_EQ(CountDrops(Until(trace, end)), 0) << Dump(trace);
}

// LINK-W6 "A sender MUST NOT deliver a frame to the peer end earlier than d
// after sending it (the fibre's propagation delay); where the network does not
// delay frames, the node holds them for d." d = 50 ms: the QueueAdd of the
// node's CREATE, its answer to a QueueAddRequest and to a QueueCheck each
// arrive no earlier than d after what caused them.
TEST(Link, LINK_W6_FramesArriveNoEarlierThanTheClassicalDelay) {
  model::LinkParams link;
  link.classical_delay_us = 50000;
  const uint64_t d = model::DelayNs(link);
  Harness h(Options(link, {Request{.pairs = 1, .max_time_s = 10, .start_s = 0.02}}));
  QNET_START(h);
  auto own = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(own);
  const uint64_t sent_request = h.NowNs();
  ASSERT_TRUE(h.SendPeer(AddRequestFrame(9, MakeCreate("iut", 1), sent_request)));
  auto answer = h.ExpectLink(LinkFrame::kAdd, kWait);
  ASSERT_TRUE(answer);
  EXPECT_GE(answer->at_ns, sent_request + d);
  const uint64_t sent_check = h.NowNs();
  ASSERT_TRUE(h.SendPeer(CheckFrame(99, 1)));
  auto reject = h.ExpectLink(LinkFrame::kReject, kWait);
  ASSERT_TRUE(reject);
  EXPECT_GE(reject->at_ns, sent_check + d);
  QNET_STOP_AND_TRACE(h, trace);
  const uint64_t created = CreateTimeOf(own->msg.add(), 10'000'000'000ull);  // LINK-18
  ::testing::Test::RecordProperty("queue_add_after_create_ns",
                                  std::to_string(own->at_ns - created));
  EXPECT_GE(own->at_ns, created + d)
      << "QueueAdd " << (own->at_ns - created) / 1000 << " us after its CREATE";
}

// LINK-W7 "An invalid length prefix MUST close the connection (the stream
// cannot be resynchronised)." Eleven continuation bytes are no varint.
TEST(Link, LINK_W7_InvalidLengthPrefixClosesTheConnection) {
  Harness h(Options(model::LinkParams{}));
  QNET_START(h);
  ASSERT_TRUE(h.SendPeerRaw(std::string(11, '\xff')));
  EXPECT_TRUE(h.PeerClosed(Ms(5000))) << "the connection stayed open";
  EXPECT_TRUE(h.NodeAlive()) << "the node exited instead of closing one connection";
  QNET_STOP_AND_TRACE(h, trace);
}

}  // namespace
}  // namespace qnet::interop
