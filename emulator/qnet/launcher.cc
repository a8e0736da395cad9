#include "emulator/qnet/launcher.h"

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emulator/backend/sim_backend.h"
#include "emulator/qnet/child_group.h"
#include "emulator/qnet/local_backend.h"
#include "emulator/qnet/mininet_backend.h"
#include "emulator/qnet/progress.h"
#include "emulator/results/summary.h"
#include "stack/json_lines.h"
#include "stack/topology_loader.h"

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] =
    "usage:\n"
    "  qnet run TOPOLOGY.xml [--backend sim|local|mininet] [--seed N] [--out DIR] [--duration S]\n"
    "           [--wall-timeout S] [--trace-format json|binary] [--serve-keys]\n"
    "  qnet report DIR\n"
    "  qnet trace FILE...\n"
    "\n"
    "run      runs the emulated network of TOPOLOGY.xml (specs/topology.md), shows progress,\n"
    "         writes traces and summary.json to DIR and prints the report\n"
    "  --backend  sim (one process, virtual time), local (default: real processes on loopback),\n"
    "             mininet (real processes in Mininet hosts; root)\n"
    "  --seed     overrides the topology's seed\n"
    "  --out      results folder (default results/<topology name>-<backend>-<UTC time>)\n"
    "  --duration emulated seconds, overrides the topology's duration-s\n"
    "  --wall-timeout  real seconds after which a local or mininet run is stopped\n"
    "             (default: duration x time-dilation + 30)\n"
    "  --trace-format  binary: traces as nodes/NAME.pb and qworld.pb (default on local and\n"
    "             mininet: cheap for the daemons); json: JSON lines, nodes/NAME.jsonl and\n"
    "             qworld.jsonl (default on sim; local and mininet convert after the run)\n"
    "  --serve-keys  keep the QKD apps' key managers (ETSI GS QKD 014) serving after the\n"
    "             report until Ctrl-C; the curl commands to fetch keys are printed\n"
    "report   prints the report of a finished run's results folder\n"
    "trace    prints trace files (.pb or .jsonl) as JSON lines, one TraceRecord per line\n";

absl::Status PrepareOutDir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return absl::InvalidArgumentError(absl::StrCat("--out ", dir, " is not a directory"));
    if (!fs::is_empty(dir, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "out dir ", dir, " exists and is not empty; choose another --out or remove it"));
    }
  }
  fs::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create out dir ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

void PrintSimProgress(ProgressPrinter& printer, const Topology& topology,
                      const backend::SimProgress& p) {
  ProgressSnapshot snapshot;
  snapshot.emulated_s = p.emulated_s;
  snapshot.duration_s = topology.duration_s;
  snapshot.all_oks = p.oks;
  printer.Print(snapshot);
}

absl::Status SummarizeRun(const Topology& topology, const std::string& out_dir,
                          const RunOptions& options, std::FILE* out);

// `summarized` is set when the backend already wrote the summary and printed
// the report (--serve-keys: before serving keys).
absl::Status RunBackend(const RunOptions& options, const Topology& topology,
                        const std::string& out_dir, std::FILE* out, bool* summarized) {
  if (options.backend == "sim") {
    ProgressPrinter printer(out, "sim");
    absl::Status s = backend::RunSimulation(
        topology, out_dir,
        [&](const backend::SimProgress& p) { PrintSimProgress(printer, topology, p); }, nullptr,
        TraceFormat(options) == "binary");
    printer.Finish();
    return s;
  }
  // Real processes: Ctrl-C now stops the run cleanly instead of killing the
  // launcher (the sim backend keeps the default: nothing to clean up).
  ChildGroup::InstallInterruptHandlers();
  absl::StatusOr<DaemonPaths> daemons = FindDaemons(SelfDir());
  if (!daemons.ok()) return daemons.status();
  if (absl::Status s = FindApps(topology, SelfDir(), &*daemons); !s.ok()) return s;
  DaemonSettings settings;
  settings.topology_path = out_dir + "/topology.xml";
  settings.out_dir = out_dir;
  settings.seed = options.seed;
  settings.duration_s = options.duration_s;
  if (options.backend == "mininet") {
    return RunMininet(topology, settings, *daemons, WallTimeout(topology, options.wall_timeout_s),
                      options.serve_keys);
  }
  absl::StatusOr<LocalPlan> plan = PlanLocal(topology, settings, *daemons);
  if (!plan.ok()) return plan.status();
  ProgressPrinter printer(out, "local");
  ServeOptions serve;
  serve.out = out;
  serve.serve_keys = options.serve_keys;
  serve.report = [&] {
    *summarized = true;
    return SummarizeRun(topology, out_dir, options, out);
  };
  return RunLocal(topology, *plan, out_dir, WallTimeout(topology, options.wall_timeout_s), &printer,
                  serve);
}

absl::Status SummarizeRun(const Topology& topology, const std::string& out_dir,
                          const RunOptions& options, std::FILE* out) {
  // RES-1a: the real-time daemons write binary traces; --trace-format json
  // turns them into JSON lines now.
  if (options.backend != "sim" && TraceFormat(options) == "json") {
    std::vector<std::string> traces = {out_dir + "/qworld"};
    for (const NodeSpec& node : topology.nodes) traces.push_back(out_dir + "/nodes/" + node.name);
    for (const std::string& t : traces) {
      std::error_code ec;
      if (!fs::exists(t + ".pb", ec)) continue;
      if (absl::Status s = ConvertBinaryTrace(t + ".pb", t + ".jsonl"); !s.ok()) return s;
    }
  }
  absl::StatusOr<results::v1::Summary> summary =
      results::Summarize(topology, out_dir, options.backend);
  if (!summary.ok()) {
    return absl::Status(summary.status().code(),
                        absl::StrCat("the run finished but its traces could not be summarized: ",
                                     summary.status().message()));
  }
  if (absl::Status s = results::WriteSummary(*summary, out_dir + "/summary.json"); !s.ok())
    return s;
  std::fprintf(out, "%s", results::RenderReport(*summary).c_str());
  std::fprintf(out, "results: %s (summary.json, traces, logs)\n", out_dir.c_str());
  std::fflush(out);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunCommand(const RunOptions& options, std::FILE* out) {
  std::error_code ec;
  if (!fs::is_regular_file(options.topology_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("topology file '", options.topology_path, "' not found"));
  }
  absl::StatusOr<Topology> loaded = LoadTopologyFile(options.topology_path);
  if (!loaded.ok()) return absl::InvalidArgumentError(loaded.status().message());
  Topology topology = *std::move(loaded);
  if (options.seed) topology.seed = *options.seed;
  if (options.duration_s) topology.duration_s = *options.duration_s;
  if (options.backend != "sim") {
    if (absl::Status s = CheckNodeNamesUsable(topology); !s.ok()) return s;
  }
  if (options.backend == "mininet") {
    if (absl::Status s = CheckMininetPrerequisites(); !s.ok()) return s;
  }

  std::string out_dir = options.out_dir.value_or("");
  if (out_dir.empty()) {
    out_dir = DefaultOutDir(topology.name, options.backend, absl::Now());
    for (int i = 2; fs::exists(out_dir, ec); ++i) {
      out_dir = absl::StrCat(DefaultOutDir(topology.name, options.backend, absl::Now()), "-", i);
    }
  }
  if (absl::Status s = PrepareOutDir(out_dir); !s.ok()) return s;
  out_dir = fs::absolute(out_dir).lexically_normal().string();
  if (!out_dir.empty() && out_dir.back() == '/') out_dir.pop_back();
  fs::copy_file(options.topology_path, out_dir + "/topology.xml",
                fs::copy_options::overwrite_existing, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot copy the topology into ", out_dir, ": ", ec.message()));

  std::fprintf(
      out, "qnet: %s (%zu nodes, %zu links), backend %s, %g s emulated, seed %llu, results in %s\n",
      topology.name.c_str(), topology.nodes.size(), topology.links.size(), options.backend.c_str(),
      topology.duration_s, static_cast<unsigned long long>(topology.seed), out_dir.c_str());
  std::fflush(out);
  bool summarized = false;
  if (absl::Status s = RunBackend(options, topology, out_dir, out, &summarized); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(s.message(), "\nresults folder (partial): ", out_dir));
  }
  if (summarized) return absl::OkStatus();
  if (absl::Status s = SummarizeRun(topology, out_dir, options, out); !s.ok()) return s;
  if (options.backend != "sim" && !options.serve_keys && HasQkdApps(topology)) {
    std::fprintf(out,
                 "qkd: the key managers stopped with the run; add --serve-keys to keep them "
                 "serving after the report\n");
  }
  return absl::OkStatus();
}

absl::Status ReportCommand(const std::string& dir, std::FILE* out) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(absl::StrCat("results folder '", dir, "' not found"));
  const std::string summary_path = dir + "/summary.json";
  if (fs::exists(summary_path, ec)) {
    absl::StatusOr<results::v1::Summary> summary = results::ReadSummary(summary_path);
    if (!summary.ok()) return summary.status();
    std::fprintf(out, "%s", results::RenderReport(*summary).c_str());
    return absl::OkStatus();
  }
  const std::string topology_path = dir + "/topology.xml";
  if (!fs::exists(topology_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(dir, " has neither summary.json nor topology.xml: not a qnet results folder"));
  }
  absl::StatusOr<Topology> topology = LoadTopologyFile(topology_path);
  if (!topology.ok()) return topology.status();
  absl::StatusOr<results::v1::Summary> summary = results::Summarize(*topology, dir, "unknown");
  if (!summary.ok()) return summary.status();
  std::fprintf(out, "%s", results::RenderReport(*summary).c_str());
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fprintf(args.empty() ? stderr : stdout, "%s", kUsage);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  absl::Status status;
  if (command == "run") {
    absl::StatusOr<RunOptions> options = ParseRunArgs(args);
    if (!options.ok()) {
      std::fprintf(stderr, "qnet run: %s\n%s", std::string(options.status().message()).c_str(),
                   kUsage);
      return 2;
    }
    status = RunCommand(*options, stdout);
  } else if (command == "trace") {
    if (args.empty()) {
      std::fprintf(stderr, "qnet trace: needs one or more trace files\n%s", kUsage);
      return 2;
    }
    for (const std::string& path : args) {
      status = PrintTraceAsJsonLines(path, stdout);
      if (!status.ok()) break;
    }
  } else if (command == "report") {
    if (args.size() != 1) {
      std::fprintf(stderr, "qnet report: needs exactly one results folder\n%s", kUsage);
      return 2;
    }
    status = ReportCommand(args[0], stdout);
  } else {
    std::fprintf(stderr, "qnet: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  }
  if (status.ok()) return 0;
  std::fprintf(stderr, "qnet %s: %s\n", command.c_str(), std::string(status.message()).c_str());
  if (absl::IsCancelled(status)) {
    const int sig = ChildGroup::PendingInterrupt();
    return 128 + (sig != 0 ? sig : SIGINT);
  }
  if (absl::IsInvalidArgument(status) || absl::IsNotFound(status)) return 2;
  return 1;
}

}  // namespace qnet::launcher
