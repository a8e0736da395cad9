// Trace files (specs/topology.md RES-1..RES-5).
#include "stack/json_lines.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/util/json_util.h"
#include "stack/frame_codec.h"
#include "stack/trace_json.h"

namespace qnet {
namespace {

// RES-3: buffered lines reach the file once this much text or this much emulated
// time has accumulated since the last write, and on Flush() / destruction.
constexpr size_t kFlushBytes = 64 << 10;
constexpr int64_t kFlushIntervalNs = 20'000'000;

}  // namespace

JsonLinesTracer::JsonLinesTracer(const std::string& path, std::string node, const Clock* clock,
                                 Format format)
    : node_(std::move(node)), clock_(clock), format_(format) {
  file_ = std::fopen(path.c_str(), "we");  // close-on-exec: launchers fork children
  if (file_ != nullptr) buffer_.reserve(kFlushBytes + 4096);
}

JsonLinesTracer::~JsonLinesTracer() {
  if (file_ == nullptr) return;
  Flush();
  std::fclose(file_);
}

void JsonLinesTracer::Record(results::v1::TraceRecord record) {
  if (file_ == nullptr) return;
  if (record.node().empty()) record.set_node(node_);
  if (record.time_ns() == 0 && clock_ != nullptr) {
    record.set_time_ns(static_cast<uint64_t>(clock_->Now().nanos()));
  }
  if (format_ == Format::kBinary) {
    AppendFrame(record, &buffer_);  // RES-1a
  } else if (const size_t mark = buffer_.size(); !AppendJsonFast(record, &buffer_)) {
    // The fast writer gives Protobuf's bytes for the records traces hold;
    // anything else goes through Protobuf's printer (trace_json.h).
    buffer_.resize(mark);
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = false;
    options.preserve_proto_field_names = false;
    std::string line;
    if (!google::protobuf::util::MessageToJsonString(record, &line, options).ok()) {
      ++failed_;
      return;
    }
    buffer_ += line;
    buffer_ += '\n';
  } else {
    buffer_ += '\n';
  }
  ++records_;
  const int64_t t = static_cast<int64_t>(record.time_ns());
  if (buffer_.size() >= kFlushBytes || t - last_flush_ns_ >= kFlushIntervalNs ||
      t < last_flush_ns_) {
    last_flush_ns_ = t;
    Flush();
  }
}

void JsonLinesTracer::Flush() {
  if (file_ == nullptr) return;
  if (!buffer_.empty()) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) ++failed_;
    buffer_.clear();
  }
  if (std::fflush(file_) != 0) ++failed_;
}

namespace {

absl::Status ForEachBinaryRecord(std::ifstream& in, const std::string& path,
                                 const std::function<void(results::v1::TraceRecord&&)>& fn,
                                 uint64_t* malformed) {
  FrameDecoder decoder(64u << 20);
  std::vector<char> chunk(1 << 16);
  uint64_t number = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    decoder.Append(std::string_view(chunk.data(), static_cast<size_t>(in.gcount())));
    for (;;) {
      absl::StatusOr<std::optional<FrameDecoder::Frame>> next = decoder.Next();
      if (!next.ok()) {
        return absl::DataLossError(absl::StrCat(path, ": record ", number + 1, ": ",
                                                next.status().message()));
      }
      if (!next->has_value()) break;
      ++number;
      results::v1::TraceRecord record;
      if ((*next)->oversized || !record.ParseFromString((*next)->payload)) {
        if (malformed != nullptr) {
          ++*malformed;
          continue;
        }
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": record ", number, " is not a TraceRecord"));
      }
      fn(std::move(record));
    }
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return absl::OkStatus();
}

}  // namespace

absl::Status ConvertBinaryTrace(const std::string& pb_path, const std::string& jsonl_path) {
  JsonLinesTracer out(jsonl_path, "", nullptr);
  if (!out.ok()) return absl::InternalError(absl::StrCat("cannot write ", jsonl_path));
  absl::Status s = ForEachTraceRecord(
      pb_path, [&](results::v1::TraceRecord&& r) { out.Record(std::move(r)); });
  if (!s.ok()) return s;
  out.Flush();
  if (out.failed() > 0) return absl::DataLossError(absl::StrCat("writing ", jsonl_path, " failed"));
  if (std::remove(pb_path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot remove ", pb_path));
  }
  return absl::OkStatus();
}

absl::Status PrintTraceAsJsonLines(const std::string& path, std::FILE* out) {
  std::string buffer;
  google::protobuf::util::JsonPrintOptions options;
  bool write_failed = false;
  absl::Status s = ForEachTraceRecord(path, [&](results::v1::TraceRecord&& r) {
    if (const size_t mark = buffer.size(); !AppendJsonFast(r, &buffer)) {
      buffer.resize(mark);
      std::string line;
      (void)google::protobuf::util::MessageToJsonString(r, &line, options);
      buffer += line;
    }
    buffer += '\n';
    if (buffer.size() >= kFlushBytes) {
      write_failed |= std::fwrite(buffer.data(), 1, buffer.size(), out) != buffer.size();
      buffer.clear();
    }
  });
  write_failed |= std::fwrite(buffer.data(), 1, buffer.size(), out) != buffer.size();
  if (!s.ok()) return s;
  if (write_failed || std::fflush(out) != 0) return absl::DataLossError("cannot write the output");
  return absl::OkStatus();
}

std::string TraceFilePath(const std::string& stem) {
  std::error_code ec;
  if (std::filesystem::exists(stem + ".pb", ec)) return stem + ".pb";
  return stem + ".jsonl";
}

absl::Status ForEachTraceRecord(const std::string& path,
                                const std::function<void(results::v1::TraceRecord&&)>& fn,
                                uint64_t* malformed) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open trace file"));
  if (absl::EndsWith(path, ".pb")) return ForEachBinaryRecord(in, path, fn, malformed);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // RES-2: readers ignore fields they do not know
  std::string line;
  for (int line_number = 1; std::getline(in, line); ++line_number) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    results::v1::TraceRecord record;
    // The fast reader takes the writer's shape; anything else (and every bad
    // line) goes through Protobuf's parser (trace_json.h).
    if (ParseJsonFast(line, &record)) {
      fn(std::move(record));
      continue;
    }
    record.Clear();
    const auto status = google::protobuf::util::JsonStringToMessage(line, &record, options);
    if (!status.ok()) {
      if (malformed != nullptr) {
        ++*malformed;
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number,
                       ": not a TraceRecord JSON line: ", std::string(status.message())));
    }
    fn(std::move(record));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<results::v1::TraceRecord>> ReadTraceFile(const std::string& path) {
  std::vector<results::v1::TraceRecord> records;
  absl::Status status = ForEachTraceRecord(
      path, [&](results::v1::TraceRecord&& r) { records.push_back(std::move(r)); });
  if (!status.ok()) return status;
  return records;
}

}  // namespace qnet
