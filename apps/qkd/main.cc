// qnet-qkd: one end of a QKD session over qnet (specs/qkd.md), and the
// ETSI GS QKD 014 KME of its node for that session's keys.
//   qnet-qkd --app_socket=/run/a.sock --role=a --port=20 --peer=b --peer_port=21
//       --pairs=100000 --session=qkd1 --node=a --psk_file=OUT/qkd/qkd1.psk
//       --key_file=OUT/qkd/qkd1.a.key --result=OUT/apps/qkd1.json
//       --kme_http_port=8443 --saes=SAE_A --peer_saes=SAE_B
// When the session is done it writes the result JSON and the key file (the
// key store's stream, also when empty). Without a KME port it then exits;
// with one it keeps serving the KME until SIGTERM/SIGINT. Exit status: 0 the
// session finished OK, 1 it failed, 3 it aborted (QBER, authentication,
// protocol), 2 usage or I/O errors, 130 a signal before the session was done.
#include <csignal>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "apps/lib/app_main.h"
#include "apps/lib/socket_app_client.h"
#include "apps/qkd/qkd_session.h"
#include "stack/event_runtime.h"
#ifdef QNET_QKD_WITH_KME
#include "apps/qkd/kme/kme.h"
#include "stack/http_server.h"
#endif

ABSL_FLAG(std::string, app_socket, "", "qnode's app socket (Unix path)");
ABSL_FLAG(std::string, role, "", "a (Alice: connects, reports) | b (Bob)");
ABSL_FLAG(uint32_t, port, 0, "own port to bind (non-zero)");
ABSL_FLAG(std::string, peer, "", "the other end's node");
ABSL_FLAG(uint32_t, peer_port, 0, "a: Bob's port");
ABSL_FLAG(uint32_t, pairs, 100000, "a: pairs to sift (ids 1..pairs)");
ABSL_FLAG(double, min_fidelity, 0.0, "minimum end-to-end pair fidelity asked for");
ABSL_FLAG(uint64_t, seed, 1, "random seed (samples, seeds, hash keys)");
ABSL_FLAG(std::string, result, "", "result JSON file (default: stdout)");
ABSL_FLAG(std::string, session, "", "the session (<app>) name; both ends equal");
ABSL_FLAG(std::string, node, "", "this end's node");
ABSL_FLAG(std::string, psk_file, "", "pre-shared secret (raw bytes), the same at both ends");
ABSL_FLAG(std::string, key_file, "", "where to write the key stream bytes (optional)");
ABSL_FLAG(std::string, kme_address, "127.0.0.1", "address the KME listens on");
ABSL_FLAG(uint32_t, kme_http_port, 0, "plain HTTP KME port (0: none; demos only)");
ABSL_FLAG(uint32_t, kme_https_port, 0, "HTTPS (mutual TLS) KME port (0: none)");
ABSL_FLAG(std::string, pki_dir, "", "HTTPS: kme-<node>.pem/.key and ca.pem");
ABSL_FLAG(std::string, saes, "", "comma list of this node's SAEs");
ABSL_FLAG(std::string, peer_saes, "", "comma list of the peer node's SAEs");
ABSL_FLAG(uint32_t, block_bits, 10000, "Z-sifted bits per block");
ABSL_FLAG(double, z_probability, 0.5, "probability of the Z basis at each end");
ABSL_FLAG(uint32_t, window, 4,
          "Alice: end-to-end pairs in flight on the connection (at most the node's memories)");
ABSL_FLAG(double, sample_fraction, 0.1, "share of a block's Z bits disclosed for Q_Z");
ABSL_FLAG(double, qber_threshold, 0.11, "abort above, in either basis");
ABSL_FLAG(double, eps_sec, 1e-10, "secrecy parameter");
ABSL_FLAG(double, eps_cor, 1e-15, "correctness parameter");
ABSL_FLAG(uint32_t, cascade_passes, 4, "Cascade passes");
ABSL_FLAG(uint32_t, key_size, 256, "ETSI default key size (bits)");
ABSL_FLAG(uint32_t, auth_refill_bits, 0, "pad bits per direction per block (0: as consumed)");
ABSL_FLAG(double, connect_timeout_s, 10.0, "wall seconds to wait for the app socket");

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  return static_cast<bool>(out);
}

std::vector<std::string> List(const std::string& csv) {
  return absl::StrSplit(csv, ',', absl::SkipEmpty());
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Runs one end of a QKD session over qnet; see --help.");
  absl::ParseCommandLine(argc, argv);
  using qnet::qkd::QkdOptions;
  QkdOptions o;
  std::string error;
  auto fail = [&error](const std::string& why) {
    if (error.empty()) error = why;
  };
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role == "a") {
    o.role = QkdOptions::Role::kAlice;
  } else if (role == "b") {
    o.role = QkdOptions::Role::kBob;
  } else {
    fail("--role must be a or b");
  }
  o.session = absl::GetFlag(FLAGS_session);
  o.node = absl::GetFlag(FLAGS_node);
  o.peer = absl::GetFlag(FLAGS_peer);
  o.port = absl::GetFlag(FLAGS_port);
  o.peer_port = absl::GetFlag(FLAGS_peer_port);
  o.pairs = absl::GetFlag(FLAGS_pairs);
  o.min_fidelity = absl::GetFlag(FLAGS_min_fidelity);
  o.block_bits = absl::GetFlag(FLAGS_block_bits);
  o.z_probability = absl::GetFlag(FLAGS_z_probability);
  o.window = absl::GetFlag(FLAGS_window);
  o.sample_fraction = absl::GetFlag(FLAGS_sample_fraction);
  o.qber_threshold = absl::GetFlag(FLAGS_qber_threshold);
  o.eps_sec = absl::GetFlag(FLAGS_eps_sec);
  o.eps_cor = absl::GetFlag(FLAGS_eps_cor);
  o.cascade_passes = absl::GetFlag(FLAGS_cascade_passes);
  o.key_size_bits = absl::GetFlag(FLAGS_key_size);
  o.auth_refill_bits = absl::GetFlag(FLAGS_auth_refill_bits);
  const std::string socket = absl::GetFlag(FLAGS_app_socket);
  const std::string psk_file = absl::GetFlag(FLAGS_psk_file);
  const uint32_t http_port = absl::GetFlag(FLAGS_kme_http_port);
  const uint32_t https_port = absl::GetFlag(FLAGS_kme_https_port);
  if (socket.empty()) fail("--app_socket is required");
  if (o.port == 0) fail("--port must be non-zero");
  if (o.session.empty()) fail("--session is required");
  if (o.node.empty() || o.peer.empty()) fail("--node and --peer are required");
  if (o.role == QkdOptions::Role::kAlice && (o.peer_port == 0 || o.pairs == 0)) {
    fail("role a needs --peer_port and --pairs > 0");
  }
  // QKD-W9: messages of any size are fragmented (QKD-W4); the bound keeps
  // the Toeplitz seed (n + m - 1 < 2 block_bits) within kToeplitzMaxSeedBits.
  if (o.block_bits < 64 || o.block_bits > qnet::qkd::kMaxBlockBits) {
    fail(absl::StrCat("--block_bits must be in [64, ", qnet::qkd::kMaxBlockBits, "]"));
  }
  if (!(o.z_probability > 0 && o.z_probability < 1)) fail("--z_probability must be in (0, 1)");
  if (o.window < 1 || o.window > 4096) fail("--window must be in [1, 4096]");
  if (!(o.sample_fraction > 0 && o.sample_fraction < 1)) {
    fail("--sample_fraction must be in (0, 1)");
  }
  if (!(o.qber_threshold > 0 && o.qber_threshold <= 0.5)) {
    fail("--qber_threshold must be in (0, 0.5]");
  }
  if (!(o.eps_sec > 0 && o.eps_sec < 1) || !(o.eps_cor > 0 && o.eps_cor < 1)) {
    fail("--eps_sec and --eps_cor must be in (0, 1)");
  }
  if (o.cascade_passes == 0) fail("--cascade_passes must be positive");
  if (!(o.min_fidelity >= 0 && o.min_fidelity <= 1)) fail("--min_fidelity must be in [0, 1]");
  if (http_port > 65535 || https_port > 65535) fail("KME ports must be below 65536");
  if (https_port != 0 && absl::GetFlag(FLAGS_pki_dir).empty()) {
    fail("--kme_https_port needs --pki_dir");
  }
  if (psk_file.empty()) {
    fail("--psk_file is required");
  } else if (error.empty() && !ReadFile(psk_file, &o.psk)) {
    fail(absl::StrCat("cannot read --psk_file ", psk_file));
  }
  if (!error.empty()) {
    std::cerr << "qnet-qkd: " << error << "\n";
    return 2;
  }

  auto runtime = qnet::EventRuntime::Create();
  if (!runtime.ok()) {
    std::cerr << "qnet-qkd: " << runtime.status() << "\n";
    return 2;
  }
  qnet::EventRuntime* loop = runtime->get();
  qnet::apps::SocketAppClient client(loop, socket,
                                     absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s)));
  qnet::Rng rng(absl::GetFlag(FLAGS_seed));
  const std::string node = o.node, peer = o.peer;
  const uint32_t key_size = o.key_size_bits;
  qnet::qkd::QkdSession session(&client, &rng, std::move(o));

  const bool serve_kme = http_port != 0 || https_port != 0;
#ifdef QNET_QKD_WITH_KME
  std::unique_ptr<qnet::qkd::Kme> kme;
  std::vector<std::unique_ptr<qnet::HttpServer>> servers;
  if (serve_kme) {
    qnet::qkd::KmeConfig config;
    config.kme_id = node;
    config.peer_kme_id = peer;
    config.local_saes = List(absl::GetFlag(FLAGS_saes));
    config.peer_saes = List(absl::GetFlag(FLAGS_peer_saes));
    config.key_size = key_size;
    config.allow_header_identity = http_port != 0;
    kme = std::make_unique<qnet::qkd::Kme>(config, &session.key_store());
    auto start = [&](uint32_t port, bool tls) -> bool {
      qnet::HttpServerOptions options;
      options.address = absl::GetFlag(FLAGS_kme_address);
      options.port = static_cast<uint16_t>(port);
      if (tls) {
        const std::string dir = absl::GetFlag(FLAGS_pki_dir);
        options.cert_file = absl::StrCat(dir, "/kme-", node, ".pem");
        options.key_file = absl::StrCat(dir, "/kme-", node, ".key");
        options.ca_file = absl::StrCat(dir, "/ca.pem");
      }
      // On plain HTTP the X-SAE-ID header names the caller (demos only); on
      // HTTPS only the client certificate does.
      qnet::qkd::Kme* k = kme.get();
      auto server = qnet::HttpServer::Create(
          loop, options, [k](const qnet::HttpRequest& request) { return k->Handle(request); });
      if (!server.ok()) {
        std::cerr << "qnet-qkd: KME: " << server.status() << "\n";
        return false;
      }
      servers.push_back(*std::move(server));
      return true;
    };
    if ((http_port != 0 && !start(http_port, false)) ||
        (https_port != 0 && !start(https_port, true))) {
      return 2;
    }
  }
#else
  if (serve_kme) {
    std::cerr << "qnet-qkd: built without the KME (qnet_kme)\n";
    return 2;
  }
  (void)key_size;
#endif

  int signal = 0;
  (void)loop->HandleTerminationSignals([&](int signo) {
    signal = signo;
    loop->Stop();
  });
  bool written = true;
  session.set_on_done([&] {
    // The result and the key file as soon as the session is done (QKD-R5).
    const std::string key_file = absl::GetFlag(FLAGS_key_file);
    if (!key_file.empty() && !WriteFile(key_file, session.key_store().StreamBytes())) {
      std::cerr << "qnet-qkd: cannot write the key file " << key_file << "\n";
      written = false;
    }
    if (!qnet::apps::WriteResult(absl::GetFlag(FLAGS_result), session.ResultJson())) {
      std::cerr << "qnet-qkd: cannot write the result to " << absl::GetFlag(FLAGS_result) << "\n";
      written = false;
    }
    if (!session.status().ok()) {
      std::cerr << "qnet-qkd: session " << session.status().message() << "\n";
    }
    // Stop only once the last requests (an Abort's Send, the Close) are
    // written (QKD-S8).
    if (!serve_kme) client.CloseWhenFlushed([loop] { loop->Stop(); });
  });
  session.Start();
  if (absl::Status s = loop->Run(); !s.ok()) {
    std::cerr << "qnet-qkd: event loop: " << s << "\n";
    return 2;
  }
  if (!session.done()) {
    std::cerr << "qnet-qkd: interrupted (signal " << signal << ") before the session was done\n";
    (void)qnet::apps::WriteResult(absl::GetFlag(FLAGS_result), session.ResultJson());
    return 130;
  }
  if (!written) return 2;
  if (session.result().aborted) return 3;
  return session.status().ok() ? 0 : 1;
}
