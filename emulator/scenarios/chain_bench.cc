// Benchmark (not a test): sim-backend wall time for a Werner chain of N nodes
// to deliver a number of end-to-end pairs over one circuit, and a search for
// the largest chain that finishes within a wall-time budget.
//
//   scenario_bench --nodes=2,3,5,9,17,100 --pairs=200
//   scenario_bench --find_largest --budget_s=600 --pairs=200
//
// Each run is a child process (fork) so that a run over the budget can be
// stopped; the parent prints one line per run: nodes, wall seconds, emulated
// seconds (whole child, and RunSimulation alone: the rest is reading the
// traces for the summary), pairs delivered, peak RSS of the child. Chain physics: length 0,
// attempt 10 us, p = 0.5, F = 0.99 per link, 1 us classical delay, 4
// memories per node, no memory noise; the connection starts at 0.2 s
// (routing converged) and the run's duration is sized from the chain Monte
// Carlo (2x the expected time, + 0.1 s), so the figure is the whole run:
// setup, routing and the 200 pairs.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "emulator/scenarios/chain_monte_carlo.h"
#include "emulator/scenarios/chain_timing.h"
#include "emulator/scenarios/scenario_runner.h"
#include "emulator/scenarios/topology_gen.h"

ABSL_FLAG(std::string, nodes, "2,3,5,9,17,100", "chain sizes (nodes) to time");
ABSL_FLAG(int, pairs, 200, "end-to-end pairs per run");
ABSL_FLAG(bool, find_largest, false, "search the largest chain finishing within --budget_s");
ABSL_FLAG(double, budget_s, 600, "wall-time budget per run for --find_largest");
ABSL_FLAG(int, start_nodes, 100, "--find_largest: first size tried (then doubled, then bisected)");
ABSL_FLAG(bool, progress, false, "print the simulation's progress (stderr)");
ABSL_FLAG(int, max_nodes, 100000, "--find_largest: give up growing beyond this");

namespace qnet::scenarios {
namespace {

ChainGen BenchChain(int nodes, int pairs) {
  ChainGen chain;
  chain.name = "bench" + std::to_string(nodes);
  chain.seed = 1;
  chain.links = std::vector<LinkGen>(nodes - 1, {0.5, 0.99});
  chain.attempt_us = 10;
  chain.classical_delay_us = 1;
  chain.memories = 4;
  chain.pairs = static_cast<uint32_t>(pairs);
  const ChainMonteCarloResult mc = RunChainMonteCarlo(ChainGenModel(chain), 2000, 5);
  chain.duration_s = chain.start_s + 0.1 + 2 * pairs * mc.time_between_deliveries_s;
  return chain;
}

struct Outcome {
  bool finished = false;  // within the budget and delivered every pair
  double wall_s = 0;      // the whole child: topology, simulation, summary
  double sim_wall_s = 0;  // RunSimulation alone
  double emulated_s = 0;
  uint64_t delivered = 0;
  long max_rss_kb = 0;
};

// Runs one chain in a child; the child writes "delivered emulated_s" to a pipe.
Outcome RunOne(int nodes, int pairs, double budget_s) {
  const ChainGen chain = BenchChain(nodes, pairs);
  int fds[2];
  if (pipe(fds) != 0) return {};
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    uint64_t delivered = 0;
    double sim_wall_s = 0;
    std::function<void(const backend::SimProgress&)> progress;
    if (absl::GetFlag(FLAGS_progress)) {
      progress = [start](const backend::SimProgress& p) {
        std::fprintf(
            stderr, "  wall %.2f s: emulated %.4f s, oks %llu, events %llu\n",
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            p.emulated_s, static_cast<unsigned long long>(p.oks),
            static_cast<unsigned long long>(p.events));
      };
    }
    absl::StatusOr<ScenarioRun> run = RunScenario(ChainXml(chain), chain.name, progress);
    if (!run.ok()) {
      std::fprintf(stderr, "%s\n", std::string(run.status().message()).c_str());
    } else {
      sim_wall_s = run->wall_s;
      if (const auto* s = FindConnection(run->summary, "e2e")) delivered = s->pairs();
      RemoveOutput(*run);
    }
    const std::string line = std::to_string(delivered) + " " + std::to_string(sim_wall_s);
    (void)!write(fds[1], line.data(), line.size());
    _exit(run.ok() ? 0 : 1);
  }
  close(fds[1]);
  Outcome o;
  o.emulated_s = chain.duration_s;
  int status = 0;
  struct rusage usage {};
  for (;;) {
    const pid_t done = wait4(pid, &status, WNOHANG, &usage);
    o.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done == pid) break;
    if (o.wall_s > budget_s) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &usage);
      close(fds[0]);
      return o;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  char buf[128] = {};
  const ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  if (n > 0) {
    std::vector<std::string> parts = absl::StrSplit(std::string(buf, n), ' ');
    if (parts.size() == 2) {
      (void)absl::SimpleAtoi(parts[0], &o.delivered);
      (void)absl::SimpleAtod(parts[1], &o.sim_wall_s);
    }
  }
  o.max_rss_kb = usage.ru_maxrss;
  o.finished = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
               o.delivered >= static_cast<uint64_t>(pairs) && o.wall_s <= budget_s;
  return o;
}

void Print(int nodes, const Outcome& o) {
  std::printf(
      "nodes %6d  wall %9.2f s (simulation %9.2f s)  emulated %8.3f s  delivered %6llu  max_rss "
      "%8ld kB  %s\n",
      nodes, o.wall_s, o.sim_wall_s, o.emulated_s, static_cast<unsigned long long>(o.delivered),
      o.max_rss_kb, o.finished ? "ok" : "NOT FINISHED");
  std::fflush(stdout);
}

}  // namespace
}  // namespace qnet::scenarios

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace qnet::scenarios;
  const int pairs = absl::GetFlag(FLAGS_pairs);
  if (!absl::GetFlag(FLAGS_find_largest)) {
    int failures = 0;
    for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_nodes), ',')) {
      int nodes = 0;
      if (!absl::SimpleAtoi(s, &nodes) || nodes < 2) {
        std::fprintf(stderr, "bad --nodes entry '%s'\n", std::string(s).c_str());
        return 2;
      }
      const Outcome o = RunOne(nodes, pairs, 1e9);
      Print(nodes, o);
      failures += o.finished ? 0 : 1;
    }
    return failures == 0 ? 0 : 1;
  }
  const double budget = absl::GetFlag(FLAGS_budget_s);
  int good = 0, bad = 0;
  for (int nodes = absl::GetFlag(FLAGS_start_nodes); nodes <= absl::GetFlag(FLAGS_max_nodes);
       nodes *= 2) {
    const Outcome o = RunOne(nodes, pairs, budget);
    Print(nodes, o);
    if (!o.finished) {
      bad = nodes;
      break;
    }
    good = nodes;
  }
  if (bad == 0) {
    std::printf("largest chain within %.0f s: at least %d nodes (search limit)\n", budget, good);
    return 0;
  }
  // Bisect to within 5 %.
  while (good > 0 && bad - good > std::max(1, good / 20)) {
    const int mid = (good + bad) / 2;
    const Outcome o = RunOne(mid, pairs, budget);
    Print(mid, o);
    (o.finished ? good : bad) = mid;
  }
  std::printf("largest chain within %.0f s delivering %d pairs: %d nodes (%d did not finish)\n",
              budget, pairs, good, bad);
  return 0;
}
