// Trace files: one qnet.results.v1.TraceRecord per line in Protobuf's JSON
// mapping (specs/topology.md, "Traces").
#ifndef QNET_STACK_JSON_LINES_H_
#define QNET_STACK_JSON_LINES_H_

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
class JsonLinesTracer : public Tracer {
 public:
  // Opens (truncates) `path`. Check ok() before use.
  JsonLinesTracer(const std::string& path, std::string node, const Clock* clock);
  ~JsonLinesTracer() override;
  bool ok() const { return file_ != nullptr; }
  void Record(results::v1::TraceRecord record) override;
  void Flush();

 private:
  std::FILE* file_ = nullptr;
  std::string node_;
  const Clock* clock_;
};

// Reads a trace file. A line that does not parse is an error naming the line.
absl::StatusOr<std::vector<results::v1::TraceRecord>> ReadTraceFile(const std::string& path);

}  // namespace qnet

#endif  // QNET_STACK_JSON_LINES_H_
