// A program under test as a child process (interop-tests/qkd): argv, a log
// file with its stdout and stderr, exit status. The QKD suite starts
// qnet-qkd ($QNET_QKD_IUT, default the qnet-qkd of this build) through it.
#ifndef QNET_INTEROP_TESTS_QKD_PROCESS_H_
#define QNET_INTEROP_TESTS_QKD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qnet::interop::qkd {

class Process {
 public:
  Process() = default;
  ~Process();  // SIGKILL if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts argv[0] with the arguments; output to `log_path`.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path);
  bool running();
  // Sends `signo` and waits up to `timeout` for the exit; the exit code
  // (128 + signal when killed by one), or nullopt if it is still running.
  std::optional<int> Signal(int signo, std::chrono::milliseconds timeout);
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Log() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// The program under test: $QNET_QKD_IUT, else the default compiled in.
std::string QkdProgram();

// Reads a whole file; nullopt if it does not exist.
std::optional<std::string> ReadFile(const std::string& path);
// Waits until `path` exists and is non-empty (polling every 20 ms).
bool WaitForFile(const std::string& path, std::chrono::milliseconds timeout);

// A minimal reader of the flat result JSON (specs/qkd.md QKD-R*): top-level
// "key": number | string | bool values, as text (strings unquoted).
std::map<std::string, std::string> FlatJson(const std::string& json);
double JsonNumber(const std::map<std::string, std::string>& json, const std::string& key,
                  double fallback = -1);

}  // namespace qnet::interop::qkd

#endif  // QNET_INTEROP_TESTS_QKD_PROCESS_H_
