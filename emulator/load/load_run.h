// Runs of `qnet run` on the local backend while every core is kept busy, and
// the checks that make a run good: keys equal at both ends, no pair at one
// end only, a link down at both ends or at neither, every app ok. Used by the
// load test (load_test.cc, CTest label integration) and by the soak
// benchmark (soak.cc: `qnet_soak --runs N`).
#ifndef QNET_EMULATOR_LOAD_LOAD_RUN_H_
#define QNET_EMULATOR_LOAD_LOAD_RUN_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "qnet/results/v1/results.pb.h"

namespace qnet::load {

// Keeps `processes` busy loops running (one per core by default) until
// destroyed; they die with this process too (PR_SET_PDEATHSIG).
class BusyLoad {
 public:
  explicit BusyLoad(int processes = DefaultProcesses());
  ~BusyLoad();
  BusyLoad(const BusyLoad&) = delete;
  BusyLoad& operator=(const BusyLoad&) = delete;

  int processes() const { return static_cast<int>(pids_.size()); }
  // The number of online cores.
  static int DefaultProcesses();

 private:
  std::vector<pid_t> pids_;
};

// What a good run must show, as one line per failure (empty: good):
// every QKD session made a key, not aborted, with equal key files at both
// ends; no link and no connection has a pair delivered at one end only or
// an inconsistent pair; every connection delivered pairs; every link went
// down as many times at one end as at the other; every app reported ok;
// every trace was there and parsed.
std::vector<std::string> CheckSummary(const results::v1::Summary& summary);

struct LoadRun {
  int exit_code = -1;
  double wall_s = 0;
  std::string output;                 // qnet's stdout and stderr
  results::v1::Summary summary;       // OUT/summary.json (when it exists)
  std::vector<std::string> failures;  // exit code, summary, processes left
};

// Runs `qnet run TOPOLOGY --backend local --out OUT_DIR` (OUT_DIR must not
// exist or be empty) and checks the run: exit code 0, CheckSummary, and no
// process of the run left afterwards.
LoadRun RunAndCheck(const std::string& qnet, const std::string& topology,
                    const std::string& out_dir);

// One line on a run: "ok" or the failures, with the QKD key bits and the
// wall time.
std::string Describe(const LoadRun& run);

}  // namespace qnet::load

#endif  // QNET_EMULATOR_LOAD_LOAD_RUN_H_
