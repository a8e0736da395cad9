#include "interop-tests/qkd/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

#ifndef QNET_DEFAULT_QKD_IUT
#define QNET_DEFAULT_QKD_IUT "qnet-qkd"
#endif

namespace qnet::interop::qkd {

using Ms = std::chrono::milliseconds;

Process::~Process() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Process::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  log_path_ = log_path;
  std::vector<std::string> args = argv;
  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> cargv;
    for (auto& s : args) cargv.push_back(s.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  return true;
}

std::optional<int> Process::Wait(Ms timeout) {
  if (exit_code_) return exit_code_;
  if (pid_ <= 0) return std::nullopt;
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(Ms(10));
  }
}

bool Process::running() { return pid_ > 0 && !Wait(Ms(0)); }

std::optional<int> Process::Signal(int signo, Ms timeout) {
  if (exit_code_) return exit_code_;
  if (pid_ <= 0) return std::nullopt;
  kill(pid_, signo);
  return Wait(timeout);
}

std::string Process::Log() const { return ReadFile(log_path_).value_or("(no log)"); }

std::string QkdProgram() {
  const char* env = std::getenv("QNET_QKD_IUT");
  return env != nullptr && *env != 0 ? env : QNET_DEFAULT_QKD_IUT;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool WaitForFile(const std::string& path, Ms timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto text = ReadFile(path);
    if (text && !text->empty() && text->back() == '\n') return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(Ms(20));
  }
}

std::map<std::string, std::string> FlatJson(const std::string& json) {
  std::map<std::string, std::string> out;
  google::protobuf::Struct parsed;
  if (!google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) return out;
  for (const auto& [key, value] : parsed.fields()) {
    switch (value.kind_case()) {
      case google::protobuf::Value::kStringValue:
        out[key] = value.string_value();
        break;
      case google::protobuf::Value::kBoolValue:
        out[key] = value.bool_value() ? "true" : "false";
        break;
      case google::protobuf::Value::kNumberValue: {
        std::ostringstream v;
        v.precision(17);
        v << value.number_value();
        out[key] = v.str();
        break;
      }
      default: {
        std::string text;
        (void)google::protobuf::util::MessageToJsonString(value, &text);
        out[key] = text;
      }
    }
  }
  return out;
}

double JsonNumber(const std::map<std::string, std::string>& json, const std::string& key,
                  double fallback) {
  auto it = json.find(key);
  if (it == json.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  return end == it->second.c_str() ? fallback : v;
}

}  // namespace qnet::interop::qkd
