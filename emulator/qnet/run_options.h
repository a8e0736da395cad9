// Options of `qnet run` (launcher.h) and the limits derived from them.
#ifndef QNET_EMULATOR_QNET_RUN_OPTIONS_H_
#define QNET_EMULATOR_QNET_RUN_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stack/topology.h"

namespace qnet::launcher {

struct RunOptions {
  std::string topology_path;
  std::string backend = "local";
  std::optional<uint64_t> seed;
  std::optional<std::string> out_dir;
  std::optional<double> duration_s;
  std::optional<double> wall_timeout_s;  // overrides WallTimeout()
  // --serve-keys (no value): after the report, the qkd apps' KMEs keep
  // serving until Ctrl-C (TOPO-45); local and mininet backends.
  bool serve_keys = false;
  // --trace-format json|binary (RES-1a): unset means binary on the local and
  // mininet backends, json on sim.
  std::optional<std::string> trace_format;
};

// The trace format of a run: options.trace_format, else the backend's default.
std::string TraceFormat(const RunOptions& options);

// Parses the arguments after `qnet run`; accepts --flag VALUE and --flag=VALUE
// (--serve-keys takes no value).
absl::StatusOr<RunOptions> ParseRunArgs(const std::vector<std::string>& args);

// results/<name>-<backend>-<UTC timestamp>, relative to the working directory;
// characters of the name other than letters, digits, '-', '_' and '.' become '_'.
std::string DefaultOutDir(const std::string& topology_name, const std::string& backend,
                          absl::Time now);

// Real-time limit of a run on the local and mininet backends:
// duration * time dilation + kWallMargin (process start, qworld's start delay,
// Stop grace, exit).
inline constexpr absl::Duration kWallMargin = absl::Seconds(30);
// --wall-timeout replaces it.
absl::Duration WallTimeout(const Topology& topology,
                           std::optional<double> override_s = std::nullopt);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_RUN_OPTIONS_H_
