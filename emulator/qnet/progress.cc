#include "emulator/qnet/progress.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace qnet::launcher {
namespace {

// At most this much is read per Poll(), so a huge backlog cannot stall the
// progress display; the rest is read by later polls.
constexpr size_t kMaxReadPerPoll = 8 << 20;

}  // namespace

void TraceTail::Poll(const std::function<void(const results::v1::TraceRecord&)>& on_record) {
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) return;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < offset_) {
    offset_ = 0;
    partial_.clear();
  }
  if (size == offset_) return;
  std::FILE* f = std::fopen(path_.c_str(), "rb");
  if (f == nullptr) return;
  if (std::fseek(f, static_cast<long>(offset_), SEEK_SET) != 0) {
    std::fclose(f);
    return;
  }
  std::string chunk(std::min<uint64_t>(size - offset_, kMaxReadPerPoll), '\0');
  const size_t n = std::fread(chunk.data(), 1, chunk.size(), f);
  std::fclose(f);
  chunk.resize(n);
  offset_ += n;

  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  size_t start = 0;
  while (true) {
    const size_t nl = chunk.find('\n', start);
    if (nl == std::string::npos) {
      partial_.append(chunk, start, std::string::npos);
      break;
    }
    std::string line = std::move(partial_);
    partial_.clear();
    line.append(chunk, start, nl - start);
    start = nl + 1;
    if (line.empty()) continue;
    ++lines_;
    results::v1::TraceRecord record;
    if (!google::protobuf::util::JsonStringToMessage(line, &record, options).ok()) {
      ++bad_lines_;
      continue;
    }
    if (on_record) on_record(record);
  }
}

RunProgress::RunProgress(const Topology& topology, const std::string& out_dir)
    : topology_(topology) {
  traces_.push_back(NodeTrace{TraceTail(out_dir + "/qworld.jsonl"), "qworld"});
  for (const NodeSpec& node : topology.nodes) {
    traces_.push_back(
        NodeTrace{TraceTail(absl::StrCat(out_dir, "/nodes/", node.name, ".jsonl")), node.name});
  }
  for (const LinkSpec& link : topology.links) {
    a_end_[{link.a, link.name}] = links_.size();
    links_.push_back(LinkProgress{link.name, 0});
  }
}

ProgressSnapshot RunProgress::Poll() {
  ProgressSnapshot snapshot;
  for (NodeTrace& trace : traces_) {
    trace.tail.Poll([&](const results::v1::TraceRecord& record) {
      max_time_ns_ = std::max<int64_t>(max_time_ns_, static_cast<int64_t>(record.time_ns()));
      if (record.has_ok()) {
        auto it = a_end_.find({trace.node, record.ok().link()});
        if (it != a_end_.end()) ++links_[it->second].oks;
      }
    });
    snapshot.bad_lines += trace.tail.bad_lines();
  }
  snapshot.emulated_s = static_cast<double>(max_time_ns_) * 1e-9;
  snapshot.duration_s = topology_.duration_s;
  snapshot.links = links_;
  return snapshot;
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
  if (snapshot.bad_lines > 0)
    absl::StrAppend(&line, "  (", snapshot.bad_lines, " unreadable trace lines)");
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
