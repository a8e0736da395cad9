// Trace files: one qnet.results.v1.TraceRecord per line in Protobuf's JSON
// mapping (specs/topology.md, "Results", RES-1..RES-5), and the binary form
// the real-time daemons write by default (RES-1a: the same records, each a
// varint byte count followed by the serialized message, in a file named *.pb),
// which `qnet trace` prints as JSON lines.
#ifndef QNET_STACK_JSON_LINES_H_
#define QNET_STACK_JSON_LINES_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/runtime.h"
#include "stack/trace.h"

namespace qnet {

// A Tracer that appends JSON lines to a file, stamping node and time from the clock.
// Lines are written whole (RES-3): buffered, they reach the file when 64 KiB have
// accumulated, when a record is 20 ms of emulated time or more after the last
// write, on Flush() and on destruction. Not thread-safe (one per runtime thread).
class JsonLinesTracer : public Tracer {
 public:
  enum class Format { kJsonLines, kBinary };
  // Opens (truncates) `path`. Check ok() before use. `clock` may be null (then
  // records keep the time_ns they carry). kBinary writes the binary form.
  JsonLinesTracer(const std::string& path, std::string node, const Clock* clock,
                  Format format = Format::kJsonLines);
  ~JsonLinesTracer() override;
  JsonLinesTracer(const JsonLinesTracer&) = delete;
  JsonLinesTracer& operator=(const JsonLinesTracer&) = delete;

  bool ok() const { return file_ != nullptr; }
  // Fills `node` and `time_ns` when unset (empty / 0), then buffers one line.
  void Record(results::v1::TraceRecord record) override;
  void Flush();

  uint64_t records() const { return records_; }
  // Records that could not be serialised or written (disk full etc.).
  uint64_t failed() const { return failed_; }

 private:
  std::FILE* file_ = nullptr;
  std::string node_;
  const Clock* clock_;
  Format format_;
  std::string buffer_;
  int64_t last_flush_ns_ = -20'000'000;  // the first record is written at once
  uint64_t records_ = 0;
  uint64_t failed_ = 0;
};

// Reads a trace file. A line that does not parse is an error naming the line;
// blank lines are skipped and unknown fields ignored (RES-2).
absl::StatusOr<std::vector<results::v1::TraceRecord>> ReadTraceFile(const std::string& path);

// Streams a trace file record by record (in file order) without holding it in
// memory. With `malformed` null a bad line is an error naming the line (as
// ReadTraceFile); otherwise bad lines are skipped and counted in *malformed.
// A path ending in ".pb" is read in the binary form (a record that does not
// parse is a bad line; a truncated last record is ignored).
absl::Status ForEachTraceRecord(const std::string& path,
                                const std::function<void(results::v1::TraceRecord&&)>& fn,
                                uint64_t* malformed = nullptr);

// Rewrites the binary trace `pb_path` as JSON lines at `jsonl_path` (the same
// records, in order) and removes `pb_path`.
absl::Status ConvertBinaryTrace(const std::string& pb_path, const std::string& jsonl_path);

// Writes every record of the trace file `path` (either form) to `out` as JSON
// lines, the form a JsonLinesTracer writes (RES-1a: `qnet trace`).
absl::Status PrintTraceAsJsonLines(const std::string& path, std::FILE* out);

// The trace file of `stem` (e.g. OUT/nodes/a): STEM.pb when that file exists,
// else STEM.jsonl (RES-1a: a results folder holds one of the two).
std::string TraceFilePath(const std::string& stem);

}  // namespace qnet

#endif  // QNET_STACK_JSON_LINES_H_
