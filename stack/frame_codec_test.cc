#include "stack/frame_codec.h"

#include "gtest/gtest.h"
#include "qnet/wire/v1/frame.pb.h"

namespace qnet {
namespace {

wire::v1::Frame HelloFrame(const std::string& node) {
  wire::v1::Frame f;
  f.set_version(1);
  f.set_from_node(node);
  f.mutable_hello()->set_node(node);
  return f;
}

TEST(FrameCodecTest, RoundTripsFramesSplitAtEveryByte) {
  std::string stream = EncodeFrame(HelloFrame("alice")) + EncodeFrame(HelloFrame("bob"));
  FrameDecoder decoder;
  std::vector<std::string> nodes;
  for (char c : stream) {
    decoder.Append(std::string_view(&c, 1));
    auto next = decoder.Next();
    ASSERT_TRUE(next.ok());
    if (next->has_value()) {
      wire::v1::Frame f;
      ASSERT_TRUE(f.ParseFromString((*next)->payload));
      nodes.push_back(f.hello().node());
    }
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(FrameCodecTest, SkipsOversizedFrameAndKeepsGoing) {
  FrameDecoder decoder(/*max_frame_bytes=*/16);
  wire::v1::Frame big = HelloFrame(std::string(100, 'x'));
  std::string stream = EncodeFrame(big) + EncodeFrame(HelloFrame("b"));
  decoder.Append(stream.substr(0, 20));
  auto first = decoder.Next();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  EXPECT_TRUE((*first)->oversized);
  EXPECT_FALSE(decoder.Next()->has_value());
  decoder.Append(stream.substr(20));
  auto second = decoder.Next();
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_FALSE((*second)->oversized);
  wire::v1::Frame f;
  ASSERT_TRUE(f.ParseFromString((*second)->payload));
  EXPECT_EQ(f.hello().node(), "b");
}

TEST(FrameCodecTest, RejectsOverlongVarint) {
  FrameDecoder decoder;
  decoder.Append(std::string(11, '\xff'));
  EXPECT_FALSE(decoder.Next().ok());
}

}  // namespace
}  // namespace qnet
