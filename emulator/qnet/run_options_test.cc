// `qnet run` options: unknown flags and bad values are clear errors.
#include "emulator/qnet/run_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qnet::launcher {
namespace {

using ::testing::HasSubstr;

TEST(RunOptionsTest, DefaultsAndBothFlagSpellings) {
  absl::StatusOr<RunOptions> o = ParseRunArgs({"t.xml"});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->topology_path, "t.xml");
  EXPECT_EQ(o->backend, "local");
  EXPECT_FALSE(o->seed || o->out_dir || o->duration_s);

  o = ParseRunArgs({"--backend", "sim", "t.xml", "--seed=7", "--out", "o", "--duration=2.5"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->backend, "sim");
  EXPECT_EQ(*o->seed, 7u);
  EXPECT_EQ(*o->out_dir, "o");
  EXPECT_EQ(*o->duration_s, 2.5);
  EXPECT_FALSE(o->wall_timeout_s);
  o = ParseRunArgs({"t.xml", "--wall-timeout", "4"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(*o->wall_timeout_s, 4);
  EXPECT_EQ(TraceFormat(*o), "binary");  // RES-1a: the real-time backends' default
  o = ParseRunArgs({"t.xml", "--backend=sim"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(TraceFormat(*o), "json");
  o = ParseRunArgs({"t.xml", "--trace-format", "json"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(TraceFormat(*o), "json");
}

TEST(RunOptionsTest, BadInputIsAClearError) {
  EXPECT_THAT(ParseRunArgs({"t.xml", "--bakend", "sim"}).status().message(),
              HasSubstr("unknown flag '--bakend'"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--backend"}).status().message(),
              HasSubstr("--backend needs a value"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--backend=ns3"}).status().message(),
              HasSubstr("--backend must be sim, local or mininet, got 'ns3'"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--seed", "-1"}).status().message(),
              HasSubstr("--seed must be"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--duration", "0"}).status().message(),
              HasSubstr("--duration must be"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--duration", "nan"}).status().message(),
              HasSubstr("--duration must be"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--wall-timeout", "-3"}).status().message(),
              HasSubstr("--wall-timeout must be a positive number of wall-clock seconds"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "--trace-format=xml"}).status().message(),
              HasSubstr("--trace-format must be json or binary, got 'xml'"));
  EXPECT_THAT(ParseRunArgs({"t.xml", "u.xml"}).status().message(),
              HasSubstr("unexpected argument 'u.xml'"));
  EXPECT_THAT(ParseRunArgs({}).status().message(), HasSubstr("needs a topology file"));
}

TEST(RunOptionsTest, DefaultOutDirNamesTopologyBackendAndUtcTime) {
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);  // 2027-01-15 08:00:00 UTC
  EXPECT_EQ(DefaultOutDir("demo", "local", t), "results/demo-local-20270115T080000Z");
  EXPECT_EQ(DefaultOutDir("../a b", "sim", t), "results/.._a_b-sim-20270115T080000Z");
}

TEST(RunOptionsTest, WallTimeoutScalesWithDilation) {
  Topology t;
  t.duration_s = 10;
  t.time_dilation = 3;
  EXPECT_EQ(WallTimeout(t), absl::Seconds(30) + kWallMargin);
  EXPECT_EQ(WallTimeout(t, 4.5), absl::Seconds(4.5));
}

}  // namespace
}  // namespace qnet::launcher
