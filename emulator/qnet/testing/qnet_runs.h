// Test helpers for end-to-end runs of the qnet binary (integration and
// mininet tests): run it, read what it left, and look for what it must not
// leave (processes).
#ifndef QNET_EMULATOR_QNET_TESTING_QNET_RUNS_H_
#define QNET_EMULATOR_QNET_TESTING_QNET_RUNS_H_

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "qnet/results/v1/results.pb.h"

namespace qnet::launcher::test_runs {

struct CommandResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string output;  // stdout and stderr
};

// Runs `argv` through /bin/sh with output captured.
inline CommandResult RunProgram(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& a : argv) absl::StrAppend(&line, "'", a, "' ");
  absl::StrAppend(&line, "2>&1 </dev/null");
  CommandResult result;
  std::FILE* p = popen(line.c_str(), "r");
  if (p == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) result.output.append(buf, n);
  const int status = pclose(p);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool ReadSummary(const std::string& out_dir, results::v1::Summary* summary) {
  const std::string json = ReadFile(out_dir + "/summary.json");
  return !json.empty() && google::protobuf::util::JsonStringToMessage(json, summary).ok();
}

// "pid: cmdline" of every process (other than this one) whose command line
// contains `needle`. Zombies have an empty cmdline and are not listed.
inline std::vector<std::string> ProcessesMentioning(const std::string& needle) {
  std::vector<std::string> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* e = readdir(proc)) {
    const std::string pid = e->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid == std::to_string(getpid()))
      continue;
    std::string cmdline = ReadFile("/proc/" + pid + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos)
      found.push_back(absl::StrCat(pid, ": ", cmdline));
  }
  closedir(proc);
  return found;
}

// A two-node werner link measured directly: the rate is p / cycle = 100 Hz in
// every backend. With the same seed qworld samples the same attempts per batch
// in every backend, so the process backends differ from sim only by their
// real-time overhead between batches (herald to next Generate through qworld:
// 0.3-0.6 ms of wall time measured on loopback and in Mininet, 4-9 % of the
// rate at dilation 1). A 2 ms attempt (10 ms per pair) and time dilation 3
// bring it to about 1.5 % (measured: local 91.3 Hz against sim 92.5 Hz), at
// 12 s of wall time for 4 emulated seconds and ~370 pairs.
inline std::string TwoNodeWernerXml(const std::string& name, double duration_s) {
  return absl::StrCat(R"(<network name=")", name, R"(" seed="7" duration-s=")", duration_s,
                      R"(" time-dilation="3">
  <hardware name="hw" memories="2"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1" scheme="werner" attempt-us="2000" p-success="0.2" fidelity="0.9"/>
  <request from="a" to="b" pairs="1000000" type="measure" basis="xz"/>
</network>
)");
}

inline std::string WriteTemp(const std::string& dir, const std::string& name,
                             const std::string& text) {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

}  // namespace qnet::launcher::test_runs

#endif  // QNET_EMULATOR_QNET_TESTING_QNET_RUNS_H_
