#include "emulator/qnet/run_options.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace qnet::launcher {

absl::StatusOr<RunOptions> ParseRunArgs(const std::vector<std::string>& args) {
  RunOptions options;
  bool have_topology = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "-") || arg == "-") {
      if (have_topology) {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected argument '", arg, "': qnet run takes one topology file"));
      }
      options.topology_path = arg;
      have_topology = true;
      continue;
    }
    if (arg == "--serve-keys") {
      options.serve_keys = true;
      continue;
    }
    std::string name = arg, value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (name != "--backend" && name != "--seed" && name != "--out" && name != "--duration" &&
        name != "--wall-timeout" && name != "--trace-format") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag '", name,
          "' for qnet run (flags: --backend, --seed, --out, --duration, --wall-timeout, "
          "--trace-format, --serve-keys)"));
    }
    if (!has_value) {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(absl::StrCat("flag ", name, " needs a value"));
      value = args[++i];
    }
    if (name == "--backend") {
      if (value != "sim" && value != "local" && value != "mininet") {
        return absl::InvalidArgumentError(
            absl::StrCat("--backend must be sim, local or mininet, got '", value, "'"));
      }
      options.backend = value;
    } else if (name == "--trace-format") {
      if (value != "json" && value != "binary") {
        return absl::InvalidArgumentError(
            absl::StrCat("--trace-format must be json or binary, got '", value, "'"));
      }
      options.trace_format = value;
    } else if (name == "--seed") {
      uint32_t seed;  // TOPO seed range: [0, 2^32 - 1]
      if (!absl::SimpleAtoi(value, &seed)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--seed must be an integer in [0, 4294967295], got '", value, "'"));
      }
      options.seed = seed;
    } else if (name == "--out") {
      if (value.empty()) return absl::InvalidArgumentError("--out needs a directory");
      options.out_dir = value;
    } else {
      double d;
      if (!absl::SimpleAtod(value, &d) || !std::isfinite(d) || d <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, " must be a positive number of ",
            name == "--duration" ? "emulated" : "wall-clock", " seconds, got '", value, "'"));
      }
      (name == "--duration" ? options.duration_s : options.wall_timeout_s) = d;
    }
  }
  if (!have_topology) return absl::InvalidArgumentError("qnet run needs a topology file");
  if (options.serve_keys && options.backend == "sim") {
    return absl::InvalidArgumentError(
        "--serve-keys needs --backend local or mininet (the sim backend runs no KME)");
  }
  return options;
}

std::string TraceFormat(const RunOptions& options) {
  if (options.trace_format) return *options.trace_format;
  return options.backend == "sim" ? "json" : "binary";
}

std::string DefaultOutDir(const std::string& topology_name, const std::string& backend,
                          absl::Time now) {
  std::string name = topology_name.empty() ? "qnet" : topology_name;
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      c = '_';
  }
  return absl::StrCat("results/", name, "-", backend, "-",
                      absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()));
}

absl::Duration WallTimeout(const Topology& topology, std::optional<double> override_s) {
  if (override_s) return absl::Seconds(*override_s);
  return absl::Seconds(topology.duration_s * std::max(topology.time_dilation, 1e-9)) + kWallMargin;
}

}  // namespace qnet::launcher
