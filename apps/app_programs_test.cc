// qnet-teleport and qnet-chsh as processes (specs/app-api.md APP-P1..APP-P4):
// exit codes, messages and the result file when the node is not there.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "stack/testing/loop.h"

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Outcome RunProgram(const std::string& command) {
  Outcome out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return out;
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), pipe)) out.output += buffer;
  const int status = pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// APP-P1: bad flags exit 2 with a message naming the flag.
TEST(AppProgramsTest, APP_P1_UsageErrorsExitTwoWithAMessage) {
  Outcome role =
      RunProgram(std::string(QNET_TELEPORT_BIN) + " --app_socket=/tmp/x --port=1 --role=boss");
  EXPECT_EQ(role.exit_code, 2);
  EXPECT_NE(role.output.find("--role"), std::string::npos) << role.output;
  Outcome peer = RunProgram(std::string(QNET_CHSH_BIN) + " --app_socket=/tmp/x --port=1 --role=a");
  EXPECT_EQ(peer.exit_code, 2);
  EXPECT_NE(peer.output.find("--peer"), std::string::npos) << peer.output;
  Outcome socket = RunProgram(std::string(QNET_CHSH_BIN) + " --port=1 --role=b");
  EXPECT_EQ(socket.exit_code, 2);
  EXPECT_NE(socket.output.find("--app_socket"), std::string::npos) << socket.output;
}

// APP-P4: no node at the socket: exit 1, a clear message, and a result file saying so.
TEST(AppProgramsTest, APP_P4_MissingSocketExitsOneAndWritesTheResult) {
  auto dir = qnet::testing::MakeTempDir("qnet-app-programs");
  ASSERT_TRUE(dir.ok());
  for (const std::string& bin : {std::string(QNET_TELEPORT_BIN), std::string(QNET_CHSH_BIN)}) {
    const std::string result = *dir + "/result.json";
    const std::string role = bin == QNET_CHSH_BIN ? "b" : "receiver";
    Outcome out = RunProgram(bin + " --app_socket=" + *dir + "/none.sock --port=5 --role=" + role +
                             " --connect_timeout_s=0.2 --result=" + result);
    EXPECT_EQ(out.exit_code, 1) << out.output;
    EXPECT_NE(out.output.find("cannot reach the app socket"), std::string::npos) << out.output;
    const std::string json = ReadFile(result);
    EXPECT_NE(json.find("\"ok\": false"), std::string::npos) << json;
    std::remove(result.c_str());
  }
  qnet::testing::RemoveTempDir(*dir);
}

}  // namespace
