// The `qnet` command (DESIGN.md, "Process model": the launcher reads the
// topology, starts qworld, builds the network, starts every qnode, shows
// progress, collects traces and results, tears everything down).
//
//   qnet run TOPOLOGY.xml [--backend sim|local|mininet] [--seed N] [--out DIR] [--duration S]
//            [--wall-timeout S] [--serve-keys]
//   qnet report DIR
//
// `run` loads the topology (errors name file, line and attribute), applies
// --seed / --duration, makes the out dir (default DefaultOutDir(): results/
// <topology name>-<backend>-<UTC YYYYMMDDTHHMMSSZ>), copies the topology there
// as topology.xml, runs the backend, then writes OUT/summary.json
// (results::Summarize / WriteSummary) and prints results::RenderReport.
// `report` prints the report of a finished run: from OUT/summary.json, or made
// from the traces and OUT/topology.xml when summary.json is missing.
//
// With qkd apps (specs/topology.md TOPO-40..TOPO-45) a real-process run
// writes their PSKs and OUT/pki first, prints where SAEs fetch keys, and with
// --serve-keys keeps the KMEs serving after the report until Ctrl-C (exit 0).
// An app's own failure or an aborted QKD session does not fail the run.
//
// Exit status: 0 on success; 1 when the run fails (the reason, naming the
// failed process and its log, on stderr); 2 for a usage error (unknown flag,
// missing file, bad value); 128 + signal when interrupted by SIGINT/SIGTERM.
#ifndef QNET_EMULATOR_QNET_LAUNCHER_H_
#define QNET_EMULATOR_QNET_LAUNCHER_H_

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "emulator/qnet/run_options.h"
#include "stack/topology.h"

namespace qnet::launcher {

// `qnet run`: progress and the report go to `out`, nothing to stderr (main
// prints the returned error there).
absl::Status RunCommand(const RunOptions& options, std::FILE* out);

// `qnet report DIR`.
absl::Status ReportCommand(const std::string& dir, std::FILE* out);

// The whole command line; returns the exit status.
int Main(int argc, char** argv);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_LAUNCHER_H_
