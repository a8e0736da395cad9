// The soak benchmark: the load test's runs repeated. Each run goes on the
// local backend while a busy loop runs on every core; each prints one line,
// and the end prints the tally per topology. Exit status 1 when a run failed.
//
//   build/emulator/load/qnet_soak --runs 20
//   build/emulator/load/qnet_soak --runs 5 --topologies qkd-demo --keep
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "emulator/load/load_run.h"

ABSL_FLAG(int, runs, 20, "runs per topology");
ABSL_FLAG(std::string, topologies, "qkd-demo,chain5-apps",
          "topology names under emulator/topologies/, or paths to topology files");
ABSL_FLAG(int, busy, 0, "busy loops during each run (0: one per online core)");
ABSL_FLAG(std::string, out, "", "folder for the runs' results (default: a temporary folder)");
ABSL_FLAG(bool, keep, false, "keep the results of good runs too (failed runs are always kept)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("qnet_soak [--runs N] [--topologies a,b] [--busy K] [--keep]");
  absl::ParseCommandLine(argc, argv);
  const int runs = absl::GetFlag(FLAGS_runs);
  if (runs < 1) {
    std::fprintf(stderr, "qnet_soak: --runs must be at least 1\n");
    return 2;
  }
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) out = absl::StrCat(std::filesystem::temp_directory_path().string(),
                                      "/qnet_soak_", getpid());
  const int busy = absl::GetFlag(FLAGS_busy) > 0 ? absl::GetFlag(FLAGS_busy)
                                                  : qnet::load::BusyLoad::DefaultProcesses();
  std::vector<std::string> names =
      absl::StrSplit(absl::GetFlag(FLAGS_topologies), ',', absl::SkipEmpty());
  std::map<std::string, int> good;
  std::vector<std::string> failed;
  std::printf("qnet_soak: %d run(s) per topology, %d busy loop(s), results under %s\n", runs,
              busy, out.c_str());
  for (int i = 1; i <= runs; ++i) {
    for (const std::string& name : names) {
      const std::string topology =
          absl::StrContains(name, "/") || absl::EndsWith(name, ".xml")
              ? name
              : absl::StrCat(QNET_SOURCE_DIR, "/emulator/topologies/", name, ".xml");
      const std::string stem = std::filesystem::path(topology).stem().string();
      const std::string dir = absl::StrCat(out, "/", stem, "-", i);
      std::filesystem::remove_all(dir);
      qnet::load::LoadRun run;
      {
        qnet::load::BusyLoad load(busy);
        run = qnet::load::RunAndCheck(QNET_BINARY, topology, dir);
      }
      std::printf("run %d/%d %s: %s\n", i, runs, stem.c_str(), qnet::load::Describe(run).c_str());
      std::fflush(stdout);
      if (run.failures.empty()) {
        ++good[stem];
        if (!absl::GetFlag(FLAGS_keep)) std::filesystem::remove_all(dir);
      } else {
        failed.push_back(absl::StrCat(stem, " run ", i, " (", dir, ")"));
      }
    }
  }
  std::printf("\ntally:\n");
  for (const std::string& name : names) {
    const std::string stem = std::filesystem::path(name).stem().string();
    std::printf("  %s: %d/%d runs good\n", stem.c_str(), good[stem], runs);
  }
  for (const std::string& f : failed) std::printf("  failed: %s\n", f.c_str());
  return failed.empty() ? 0 : 1;
}
