// Trace files (specs/topology.md RES-1..RES-5): what JsonLinesTracer writes is
// one JSON object per line in Protobuf's JSON mapping, stamped with node and
// emulated time, and reads back unchanged.
#include "stack/json_lines.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace qnet {
namespace {

using results::v1::TraceRecord;
using ::testing::HasSubstr;
using ::testing::Not;

class FakeClock : public Clock {
 public:
  Time Now() const override { return now; }
  Time now = Time::FromNanos(1000);
};

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/qnet_json_lines_", name, "_", getpid(), ".jsonl");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TraceRecord OkRecord(uint64_t seq) {
  TraceRecord r;
  auto* ok = r.mutable_ok();
  ok->set_create_id(3);
  ok->mutable_pair()->set_origin("alice");
  ok->mutable_pair()->set_partner("bob");
  ok->mutable_pair()->set_sequence(seq);
  ok->set_bell_state(physical::v1::BELL_STATE_PSI_MINUS);
  ok->set_estimated_fidelity(0.875);
  ok->set_herald_seq(seq);
  ok->set_link("ab");
  r.set_attempts(17);
  return r;
}

// RES-1, RES-4: one object per line, lowerCamelCase names, node and time stamped.
TEST(JsonLinesTest, StampsNodeAndTimeAndWritesLowerCamelCaseLines) {
  const std::string path = TempPath("stamp");
  FakeClock clock;
  {
    JsonLinesTracer tracer(path, "alice", &clock);
    ASSERT_TRUE(tracer.ok());
    tracer.Record(OkRecord(1));
    clock.now = Time::FromNanos(2500);
    TraceRecord own = OkRecord(2);
    own.set_node("elsewhere");
    own.set_time_ns(777);
    tracer.Record(own);
    tracer.Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "bad varint", "ab");
    EXPECT_EQ(tracer.records(), 3u);
    EXPECT_EQ(tracer.failed(), 0u);
  }
  const std::string text = ReadFile(path);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_THAT(lines[0], HasSubstr("\"timeNs\":\"1000\""));
  EXPECT_THAT(lines[0], HasSubstr("\"node\":\"alice\""));
  EXPECT_THAT(lines[0], HasSubstr("\"heraldSeq\":\"1\""));
  EXPECT_THAT(lines[0], HasSubstr("\"bellState\":\"BELL_STATE_PSI_MINUS\""));
  EXPECT_THAT(lines[0], Not(HasSubstr("herald_seq")));
  EXPECT_THAT(lines[1], HasSubstr("\"timeNs\":\"777\""));
  EXPECT_THAT(lines[1], HasSubstr("\"node\":\"elsewhere\""));
  EXPECT_THAT(lines[2], HasSubstr("\"timeNs\":\"2500\""));
  EXPECT_THAT(lines[2], HasSubstr("\"reason\":\"DROP_REASON_MALFORMED_FRAME\""));

  absl::StatusOr<std::vector<TraceRecord>> back = ReadTraceFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 3u);
  TraceRecord expected = OkRecord(1);
  expected.set_node("alice");
  expected.set_time_ns(1000);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*back)[0], expected))
      << (*back)[0].DebugString();
  EXPECT_EQ((*back)[2].drop().detail(), "bad varint");
  std::filesystem::remove(path);
}

// RES-3: whole lines reach the file on Flush(), after 20 ms of emulated time,
// and at destruction; nothing is lost.
TEST(JsonLinesTest, FlushesOnRequestAfterTwentyMillisecondsAndAtDestruction) {
  const std::string path = TempPath("flush");
  FakeClock clock;
  auto tracer = std::make_unique<JsonLinesTracer>(path, "n", &clock);
  ASSERT_TRUE(tracer->ok());
  tracer->Record(OkRecord(1));  // 1 us: first write is due (no earlier flush)
  const size_t after_first = ReadFile(path).size();
  EXPECT_GT(after_first, 0u);
  clock.now = Time::FromNanos(5'000'000);
  tracer->Record(OkRecord(2));
  EXPECT_EQ(ReadFile(path).size(), after_first);  // buffered
  tracer->Flush();
  const size_t after_flush = ReadFile(path).size();
  EXPECT_GT(after_flush, after_first);
  clock.now = Time::FromNanos(6'000'000);
  tracer->Record(OkRecord(3));
  EXPECT_EQ(ReadFile(path).size(), after_flush);
  clock.now = Time::FromNanos(30'000'000);
  tracer->Record(OkRecord(4));  // 29 ms after the last write
  EXPECT_EQ(ReadTraceFile(path)->size(), 4u);
  clock.now = Time::FromNanos(31'000'000);
  tracer->Record(OkRecord(5));
  EXPECT_EQ(ReadTraceFile(path)->size(), 4u);
  tracer.reset();
  absl::StatusOr<std::vector<TraceRecord>> all = ReadTraceFile(path);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*all)[i].ok().herald_seq(), static_cast<uint64_t>(i + 1));
  std::filesystem::remove(path);
}

TEST(JsonLinesTest, LargeVolumesStayWholeLines) {
  const std::string path = TempPath("volume");
  FakeClock clock;
  {
    JsonLinesTracer tracer(path, "n", &clock);
    for (int i = 1; i <= 5000; ++i) {
      clock.now = Time::FromNanos(1000 + i);  // far below the time threshold: size decides
      tracer.Record(OkRecord(i));
    }
    // Some 64 KiB blocks are already out, each ending with a whole line.
    const std::string partial = ReadFile(path);
    EXPECT_GT(partial.size(), 64u << 10);
    EXPECT_EQ(partial.back(), '\n');
  }
  absl::StatusOr<std::vector<TraceRecord>> all = ReadTraceFile(path);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 5000u);
  std::filesystem::remove(path);
}

TEST(JsonLinesTest, UnwritablePathIsNotOk) {
  FakeClock clock;
  JsonLinesTracer tracer("/nonexistent/dir/x.jsonl", "n", &clock);
  EXPECT_FALSE(tracer.ok());
  tracer.Record(OkRecord(1));  // harmless
  tracer.Flush();
}

// RES-2: a bad line is an error naming file and line; blank lines and unknown
// fields are tolerated.
TEST(JsonLinesTest, ReadTraceFileNamesTheBadLineAndIgnoresUnknownFields) {
  const std::string path = TempPath("read");
  std::ofstream(path)
      << R"({"timeNs":"5","node":"a","futureField":1,"linkBusy":{"link":"ab","busy":true}})"
      << "\n\n"
      << R"({"timeNs":"6","node":"a","ok":{"heraldSeq":"x"}})"
      << "\n";
  absl::StatusOr<std::vector<TraceRecord>> r = ReadTraceFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(path + ":3:"));

  std::ofstream(path)
      << R"({"timeNs":"5","node":"a","futureField":1,"linkBusy":{"link":"ab","busy":true}})"
      << "\n\n";
  r = ReadTraceFile(path);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_TRUE((*r)[0].link_busy().busy());
  EXPECT_EQ((*r)[0].time_ns(), 5u);

  std::ofstream(path) << "{\"timeNs\":\"5\"";  // truncated last line
  EXPECT_FALSE(ReadTraceFile(path).ok());

  EXPECT_EQ(ReadTraceFile("/nonexistent/x.jsonl").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove(path);
}

// RES-1a: the binary form holds the same records, reads back unchanged, a
// truncated last record is ignored, a record that does not parse is an error,
// `qnet trace` prints it as the JSON lines the text form would hold, and a
// results folder's trace is STEM.pb when that exists, else STEM.jsonl.
TEST(JsonLinesTest, BinaryTracesHoldTheSameRecordsAndPrintAsJsonLines) {
  const std::string stem = absl::StrCat(::testing::TempDir(), "/qnet_binary_trace_", getpid());
  FakeClock clock;
  EXPECT_EQ(TraceFilePath(stem), stem + ".jsonl");
  {
    JsonLinesTracer text(stem + ".jsonl", "alice", &clock);
    JsonLinesTracer binary(stem + ".pb", "alice", &clock, JsonLinesTracer::Format::kBinary);
    ASSERT_TRUE(text.ok() && binary.ok());
    for (uint64_t i = 1; i <= 1000; ++i) {
      clock.now = Time::FromNanos(static_cast<int64_t>(1000 * i));
      text.Record(OkRecord(i));
      binary.Record(OkRecord(i));
    }
    binary.Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "bad varint", "ab");
    text.Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "bad varint", "ab");
  }
  EXPECT_EQ(TraceFilePath(stem), stem + ".pb");
  absl::StatusOr<std::vector<TraceRecord>> a = ReadTraceFile(stem + ".jsonl");
  absl::StatusOr<std::vector<TraceRecord>> b = ReadTraceFile(stem + ".pb");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 1001u);
  ASSERT_EQ(b->size(), 1001u);
  for (size_t i = 0; i < a->size(); ++i) {
    ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*a)[i], (*b)[i])) << i;
  }
  const std::string printed_path = stem + ".printed";
  std::FILE* printed = std::fopen(printed_path.c_str(), "w");
  ASSERT_NE(printed, nullptr);
  ASSERT_TRUE(PrintTraceAsJsonLines(stem + ".pb", printed).ok());
  std::fclose(printed);
  EXPECT_EQ(ReadFile(printed_path), ReadFile(stem + ".jsonl"));

  // A truncated last record (a daemon killed mid-write) is ignored.
  const std::string whole = ReadFile(stem + ".pb");
  std::ofstream(stem + ".pb", std::ios::binary) << whole.substr(0, whole.size() - 3);
  b = ReadTraceFile(stem + ".pb");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->size(), 1000u);
  // A record whose bytes are not a TraceRecord is an error naming it.
  std::ofstream(stem + ".pb", std::ios::binary) << whole << std::string("\x03\xff\xff\xff", 4);
  b = ReadTraceFile(stem + ".pb");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("record 1002"));
  for (const char* ext : {".jsonl", ".pb", ".printed"}) std::filesystem::remove(stem + ext);
}

}  // namespace
}  // namespace qnet
