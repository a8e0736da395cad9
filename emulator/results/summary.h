// What a run leaves behind, summarised (specs/topology.md "Results",
// RES-6..RES-18): Summarize reads the trace files of a results folder and
// computes summary.json's figures; RenderReport prints them for humans (what
// `qnet report DIR` and the end of `qnet run` show).
//
// Promises:
// - Deterministic: the same topology and trace files give the same Summary and
//   byte-identical WriteSummary output (links and counts sorted by name, sums in
//   file order, Protobuf's JSON printer).
// - Trace files are untrusted: a malformed line is skipped and counted
//   (malformed_trace_lines), a record naming a link or node outside the topology
//   is counted (unattributed_records), a missing trace file is listed
//   (missing_traces); none of these fails the summary.
#ifndef QNET_EMULATOR_RESULTS_SUMMARY_H_
#define QNET_EMULATOR_RESULTS_SUMMARY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/topology.h"

namespace qnet::results {

// Reads OUT_DIR/nodes/<node>.jsonl for every node of `topology` and
// OUT_DIR/qworld.jsonl, and OUT_DIR/apps/<name>.json for every <app>
// (connections and apps: RES-20..RES-32, emulator/results/connections.h),
// and for every <app kind="qkd"> its result and key files (qkd: RES-34..RES-38,
// emulator/results/qkd_summary.h).
// `backend` is copied into the summary. Fails only when OUT_DIR is not a
// readable directory.
absl::StatusOr<v1::Summary> Summarize(const Topology& topology, const std::string& out_dir,
                                      const std::string& backend);

// The summary.json text (RES-6): Protobuf JSON mapping with whitespace, every
// field printed (defaults included), lowerCamelCase names, trailing newline.
std::string SummaryJson(const v1::Summary& summary);

// Writes SummaryJson to `path` atomically (temporary file, then rename).
absl::Status WriteSummary(const v1::Summary& summary, const std::string& path);

// Parses a summary.json (unknown fields ignored).
absl::StatusOr<v1::Summary> ReadSummary(const std::string& path);

// A human-readable report (RES-18, RES-33): one table row per link, then the
// connections, apps and QKD tables, QBER, errors, discards, drops and
// warnings (RES-39).
// Ends with a newline.
std::string RenderReport(const v1::Summary& summary);

}  // namespace qnet::results

#endif  // QNET_EMULATOR_RESULTS_SUMMARY_H_
