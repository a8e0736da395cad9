// Progress of a running emulation, read from the trace files the daemons are
// still writing (OUT/qworld.jsonl, OUT/nodes/NAME.jsonl; specs/topology.md,
// "Results").
//
// TraceTail reads one growing JSON-lines file incrementally: each Poll() reads
// only the bytes appended since the last one, keeps an incomplete last line
// for the next Poll(), and parses complete lines as qnet.results.v1.TraceRecord.
// A line that does not parse is counted, never fatal (progress is advisory; the
// summary reads the files again, strictly, once the run is over).
//
// RunProgress follows every trace of a topology and reports the emulated time
// reached (the largest time_ns seen) and the OKs per link (counted at the
// link's `a` end, where each delivered pair yields exactly one OK).
#ifndef QNET_EMULATOR_QNET_PROGRESS_H_
#define QNET_EMULATOR_QNET_PROGRESS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/topology.h"

namespace qnet::launcher {

class TraceTail {
 public:
  explicit TraceTail(std::string path) : path_(std::move(path)) {}

  // Reads what was appended since the last call and hands every complete,
  // parsable line to `on_record`. A missing file is not an error (the daemon
  // may not have created it yet). A file that shrank is read again from the
  // start (it was truncated and rewritten).
  void Poll(const std::function<void(const results::v1::TraceRecord&)>& on_record);

  const std::string& path() const { return path_; }
  uint64_t lines() const { return lines_; }
  uint64_t bad_lines() const { return bad_lines_; }

 private:
  std::string path_;
  uint64_t offset_ = 0;
  std::string partial_;
  uint64_t lines_ = 0;
  uint64_t bad_lines_ = 0;
};

struct LinkProgress {
  std::string name;
  uint64_t oks = 0;
};

struct ProgressSnapshot {
  double emulated_s = 0;            // largest time_ns seen in any trace, in seconds
  double duration_s = 0;            // the run's emulated duration
  std::vector<LinkProgress> links;  // in topology order
  uint64_t bad_lines = 0;
  // sim backend: OK records of all nodes (each pair gives one at each end).
  std::optional<uint64_t> all_oks;
};

class RunProgress {
 public:
  RunProgress(const Topology& topology, const std::string& out_dir);

  // Polls every trace file once.
  ProgressSnapshot Poll();

 private:
  struct NodeTrace {
    TraceTail tail;
    std::string node;
  };
  const Topology& topology_;
  std::vector<NodeTrace> traces_;
  // (node, link) -> index in links_, for the links whose `a` end is node.
  std::map<std::pair<std::string, std::string>, size_t> a_end_;
  std::vector<LinkProgress> links_;
  int64_t max_time_ns_ = 0;
};

// One progress line: "[local] 3.2/10.0 s emulated (32%)  ab 120 pairs 37.5 Hz".
// Rates are OKs per emulated second so far.
std::string FormatProgress(const std::string& backend, const ProgressSnapshot& snapshot);

// Prints progress lines: on a TTY one line rewritten in place ("\r...\x1b[K"),
// otherwise one plain line per call that changed something. Finish() ends the
// TTY line.
class ProgressPrinter {
 public:
  ProgressPrinter(std::FILE* out, std::string backend);
  void Print(const ProgressSnapshot& snapshot);
  void Finish();

 private:
  std::FILE* out_;
  std::string backend_;
  bool tty_;
  bool pending_newline_ = false;
  std::string last_line_;
};

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_PROGRESS_H_
