#include "emulator/qnet/progress.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "qnet/results/v1/results.pb.h"

namespace qnet::launcher {

RunProgress::RunProgress(const Topology& topology, const std::string& out_dir)
    : topology_(topology), path_(out_dir + "/progress.json") {
  last_.duration_s = topology.duration_s;
  for (const LinkSpec& link : topology.links) last_.links.push_back(LinkProgress{link.name, 0});
}

ProgressSnapshot RunProgress::Poll() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return last_;
  std::stringstream text;
  text << in.rdbuf();
  results::v1::RunProgress progress;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(text.str(), &progress, options).ok()) {
    return last_;
  }
  last_.emulated_s = static_cast<double>(progress.emulated_ns()) * 1e-9;
  for (const results::v1::NamedCount& c : progress.link_pairs()) {
    for (LinkProgress& link : last_.links) {
      if (link.name == c.name()) link.oks = c.count();
    }
  }
  return last_;
}

std::string FormatProgress(const std::string& backend, const ProgressSnapshot& snapshot) {
  const double fraction = snapshot.duration_s > 0 ? snapshot.emulated_s / snapshot.duration_s : 0;
  std::string line =
      absl::StrFormat("[%s] %.1f/%.1f s emulated (%d%%)", backend, snapshot.emulated_s,
                      snapshot.duration_s, static_cast<int>(std::min(1.0, fraction) * 100));
  for (const LinkProgress& link : snapshot.links) {
    const double rate =
        snapshot.emulated_s > 0 ? static_cast<double>(link.oks) / snapshot.emulated_s : 0;
    absl::StrAppendFormat(&line, "  %s %u pairs %.1f Hz", link.name, link.oks, rate);
  }
  if (snapshot.all_oks) absl::StrAppend(&line, "  ", *snapshot.all_oks, " OKs at all nodes");
  return line;
}

ProgressPrinter::ProgressPrinter(std::FILE* out, std::string backend)
    : out_(out), backend_(std::move(backend)), tty_(isatty(fileno(out)) == 1) {}

void ProgressPrinter::Print(const ProgressSnapshot& snapshot) {
  const std::string line = FormatProgress(backend_, snapshot);
  if (line == last_line_) return;
  last_line_ = line;
  if (tty_) {
    std::fprintf(out_, "\r%s\x1b[K", line.c_str());
    pending_newline_ = true;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressPrinter::Finish() {
  if (pending_newline_) std::fputc('\n', out_);
  pending_newline_ = false;
  std::fflush(out_);
}

}  // namespace qnet::launcher
