// One conformance run of the program under test (qnet-qkd, or $QNET_QKD_IUT):
// a fake network (fake_node.h) whose one node serves the program's app socket
// and whose other node is the reference peer (qkd_peer.h), or a second copy of
// the program (ETSI tests). The program gets the command line of the design
// (interop-tests/README.md, "QKD"):
//   --app_socket --role a|b --node --peer --port --peer_port --pairs --seed
//   --session --psk_file --result --key_file --block_bits --z_probability
//   --sample_fraction --qber_threshold --eps_sec --eps_cor --cascade_passes
//   --key_size [--kme_address --kme_http_port --kme_https_port --pki_dir
//   --saes --peer_saes]
// Verdicts come from artifacts: the result JSON, the key file (compared byte
// for byte with the peer's key stream) and what the program sent.
#ifndef QNET_INTEROP_TESTS_QKD_QKD_IUT_H_
#define QNET_INTEROP_TESTS_QKD_QKD_IUT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "interop-tests/qkd/fake_node.h"
#include "interop-tests/qkd/process.h"
#include "interop-tests/qkd/qkd_peer.h"

namespace qnet::interop::qkd {

inline constexpr uint32_t kPortA = 7001, kPortB = 7002;

// Session parameters of the suite's runs (both ends).
v1::SessionParams DefaultParams();
std::string MakePsk(uint64_t seed, size_t bytes = 8 + 2 * 4096);

struct KmeFlags {
  uint32_t http_port = 0, https_port = 0;
  std::string pki_dir;
  std::vector<std::string> saes, peer_saes;
};

struct IutOptions {
  // Which ends run the program: end 0 is Alice (role a), end 1 Bob (role b).
  bool program[2] = {true, false};
  std::vector<ScriptedPair> pairs;
  v1::SessionParams params = DefaultParams();
  std::string session = "qkd";
  PeerConfig peer;  // the reference peer's config (alice/params/psk filled in)
  KmeFlags kme[2];
  std::vector<std::string> extra_flags[2];
};

class IutRun {
 public:
  explicit IutRun(IutOptions options);
  ~IutRun();  // kills what is still running; removes the folder unless QNET_INTEROP_KEEP

  // Starts the program(s) and connects everything; "" or what went wrong.
  std::string Start();
  // Pumps the fake network until every program has written its result (or
  // the timeout). True if all results are there.
  bool RunToResults(Ms timeout = Ms(120000));
  // SIGTERM to each program; its exit code.
  std::optional<int> Stop(int end);

  const std::string& dir() const { return dir_; }
  std::string ResultPath(int end) const;
  std::string KeyPath(int end) const;
  std::map<std::string, std::string> Result(int end) const;
  // The key file's bytes ("" when absent).
  std::string Key(int end) const;
  std::string Log(int end) const { return process_[end] ? process_[end]->Log() : ""; }
  // Everything for a failure message: both logs and the results.
  std::string Describe() const;

  FakeNetwork& net() { return *net_; }
  QkdPeer* peer() { return peer_.get(); }
  Process* process(int end) { return process_[end].get(); }

 private:
  IutOptions options_;
  std::string dir_;
  std::string psk_;
  std::unique_ptr<FakeNetwork> net_;
  std::unique_ptr<QkdPeer> peer_;
  std::unique_ptr<Process> process_[2];
};

}  // namespace qnet::interop::qkd

#endif  // QNET_INTEROP_TESTS_QKD_QKD_IUT_H_
