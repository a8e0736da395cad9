// qnet-chsh: a CHSH Bell test between two apps over the app sockets of their
// qnodes (specs/app-api.md APP-P1..APP-P4, APP-H*).
//   qnet-chsh --app_socket=/run/a.sock --role=a --port=8 --peer=b --peer_port=9
//       --pairs=1000 --seed=1 --result=out.json
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "apps/chsh/chsh_app.h"
#include "apps/lib/app_main.h"

ABSL_FLAG(std::string, app_socket, "", "qnode's app socket (Unix path)");
ABSL_FLAG(std::string, role, "", "a (connects and reports S) | b");
ABSL_FLAG(uint32_t, port, 0, "own port to bind (non-zero)");
ABSL_FLAG(std::string, peer, "", "a: b's node");
ABSL_FLAG(uint32_t, peer_port, 0, "a: b's port");
ABSL_FLAG(uint32_t, pairs, 100, "pairs to measure");
ABSL_FLAG(double, min_fidelity, 0.0, "minimum end-to-end pair fidelity asked for");
ABSL_FLAG(uint32_t, window, 1, "pairs held at once per end");
ABSL_FLAG(uint64_t, seed, 1, "random seed (measurement settings)");
ABSL_FLAG(std::string, result, "", "result JSON file (default: stdout)");
ABSL_FLAG(double, connect_timeout_s, 10.0, "wall seconds to wait for the app socket");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Runs a CHSH test over qnet; see --help.");
  absl::ParseCommandLine(argc, argv);
  using qnet::apps::ChshOptions;
  ChshOptions options;
  const std::string role = absl::GetFlag(FLAGS_role);
  std::string error;
  auto fail = [&error](const char* why) {
    if (error.empty()) error = why;  // the first problem is reported
  };
  if (role == "a") {
    options.role = ChshOptions::Role::kA;
  } else if (role == "b") {
    options.role = ChshOptions::Role::kB;
  } else {
    fail("--role must be a or b");
  }
  options.port = absl::GetFlag(FLAGS_port);
  options.peer = absl::GetFlag(FLAGS_peer);
  options.peer_port = absl::GetFlag(FLAGS_peer_port);
  options.pairs = absl::GetFlag(FLAGS_pairs);
  options.min_fidelity = absl::GetFlag(FLAGS_min_fidelity);
  options.window = absl::GetFlag(FLAGS_window);
  const std::string socket = absl::GetFlag(FLAGS_app_socket);
  if (socket.empty()) fail("--app_socket is required");
  if (options.port == 0) fail("--port must be non-zero");
  if (options.pairs == 0) fail("--pairs must be positive");
  if (!(options.min_fidelity >= 0 && options.min_fidelity <= 1)) {
    fail("--min_fidelity must be in [0, 1]");
  }
  if (options.role == ChshOptions::Role::kA && (options.peer.empty() || options.peer_port == 0)) {
    fail("role a needs --peer and --peer_port");
  }
  if (!error.empty()) {
    std::cerr << "qnet-chsh: " << error << "\n";
    return 2;
  }
  qnet::Rng rng(absl::GetFlag(FLAGS_seed));
  return qnet::apps::RunAppProcess<qnet::apps::ChshApp>(
      "qnet-chsh", socket, absl::GetFlag(FLAGS_result),
      absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s)), [&](qnet::apps::AppClient* client) {
        return std::make_unique<qnet::apps::ChshApp>(client, &rng, options);
      });
}
