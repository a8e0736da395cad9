// qnet-teleport: teleports random cardinal states between two apps over the
// app socket of their qnode (specs/app-api.md APP-P1..APP-P4, APP-T*).
//   qnet-teleport --app_socket=/run/a.sock --role=sender --port=8 --peer=b --peer_port=9
//       --pairs=100 --min_fidelity=0.8 --seed=1 --result=out.json
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "apps/lib/app_main.h"
#include "apps/teleport/teleport_app.h"

ABSL_FLAG(std::string, app_socket, "", "qnode's app socket (Unix path)");
ABSL_FLAG(std::string, role, "", "sender | receiver (the receiver reports the fidelity)");
ABSL_FLAG(uint32_t, port, 0, "own port to bind (non-zero)");
ABSL_FLAG(std::string, peer, "", "sender: the receiver's node");
ABSL_FLAG(uint32_t, peer_port, 0, "sender: the receiver's port");
ABSL_FLAG(uint32_t, pairs, 100, "states to teleport");
ABSL_FLAG(double, min_fidelity, 0.0, "minimum end-to-end pair fidelity asked for");
ABSL_FLAG(uint32_t, window, 1, "pairs held at once per end");
ABSL_FLAG(uint64_t, seed, 1, "random seed (state choice)");
ABSL_FLAG(std::string, result, "", "result JSON file (default: stdout)");
ABSL_FLAG(double, connect_timeout_s, 10.0, "wall seconds to wait for the app socket");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Teleports random cardinal states over qnet; see --help.");
  absl::ParseCommandLine(argc, argv);
  using qnet::apps::TeleportOptions;
  TeleportOptions options;
  const std::string role = absl::GetFlag(FLAGS_role);
  std::string error;
  auto fail = [&error](const char* why) {
    if (error.empty()) error = why;  // the first problem is reported
  };
  if (role == "sender") {
    options.role = TeleportOptions::Role::kSender;
  } else if (role == "receiver") {
    options.role = TeleportOptions::Role::kReceiver;
  } else {
    fail("--role must be sender or receiver");
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
  if (options.role == TeleportOptions::Role::kSender &&
      (options.peer.empty() || options.peer_port == 0)) {
    fail("the sender needs --peer and --peer_port");
  }
  if (!error.empty()) {
    std::cerr << "qnet-teleport: " << error << "\n";
    return 2;
  }
  qnet::Rng rng(absl::GetFlag(FLAGS_seed));
  return qnet::apps::RunAppProcess<qnet::apps::TeleportApp>(
      "qnet-teleport", socket, absl::GetFlag(FLAGS_result),
      absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s)), [&](qnet::apps::AppClient* client) {
        return std::make_unique<qnet::apps::TeleportApp>(client, &rng, options);
      });
}
