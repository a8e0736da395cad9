// Progress of a running emulation on a real-time backend, read from the
// small file qworld keeps up to date (OUT/progress.json, specs/topology.md
// RES-1b): the emulated time qworld has reached and the pairs per link
// (heralded to the link's `a` end, where each pair yields one OK). Reading it
// costs the same whatever the rate of the run.
#ifndef QNET_EMULATOR_QNET_PROGRESS_H_
#define QNET_EMULATOR_QNET_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "stack/topology.h"

namespace qnet::launcher {

struct LinkProgress {
  std::string name;
  uint64_t oks = 0;
};

struct ProgressSnapshot {
  double emulated_s = 0;            // largest time_ns seen in any trace, in seconds
  double duration_s = 0;            // the run's emulated duration
  std::vector<LinkProgress> links;  // in topology order
  // sim backend: OK records of all nodes (each pair gives one at each end).
  std::optional<uint64_t> all_oks;
};

class RunProgress {
 public:
  RunProgress(const Topology& topology, const std::string& out_dir);

  // Reads the progress file once (a missing or unreadable one changes nothing).
  ProgressSnapshot Poll();

 private:
  const Topology& topology_;
  std::string path_;
  ProgressSnapshot last_;
};

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
