#include "interop-tests/qkd/qkd_iut.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace qnet::interop::qkd {
namespace {

std::string Num(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

v1::SessionParams DefaultParams() {
  v1::SessionParams p;
  p.set_block_bits(20000);
  p.set_z_probability(0.5);
  p.set_sample_fraction(0.1);
  p.set_qber_threshold(0.11);
  p.set_eps_sec(1e-10);
  p.set_eps_cor(1e-15);
  p.set_cascade_passes(4);
  p.set_key_size_bits(256);
  return p;
}

std::string MakePsk(uint64_t seed, size_t bytes) {
  std::mt19937_64 gen(seed);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xFF);
  return out;
}

IutRun::IutRun(IutOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/qnet-qkd-interop-XXXXXX";
  dir_ = mkdtemp(tmpl);
}

IutRun::~IutRun() {
  for (auto& p : process_) {
    if (p) p->Signal(SIGKILL, Ms(2000));
  }
  net_.reset();
  if (std::getenv("QNET_INTEROP_KEEP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string IutRun::ResultPath(int end) const {
  return dir_ + (end == 0 ? "/result.a.json" : "/result.b.json");
}
std::string IutRun::KeyPath(int end) const {
  return dir_ + (end == 0 ? "/qkd.a.key" : "/qkd.b.key");
}

std::map<std::string, std::string> IutRun::Result(int end) const {
  return FlatJson(ReadFile(ResultPath(end)).value_or(""));
}

std::string IutRun::Key(int end) const { return ReadFile(KeyPath(end)).value_or(""); }

std::string IutRun::Describe() const {
  std::string out;
  for (int e = 0; e < 2; ++e) {
    if (!process_[e]) continue;
    out += std::string("---- program as ") + (e == 0 ? "a" : "b") + ", log:\n" + Log(e) +
           "\n---- result: " + ReadFile(ResultPath(e)).value_or("(none)") + "\n";
  }
  for (const auto& p : net_ ? net_->problems() : std::vector<std::string>{}) {
    out += "fake node: " + p + "\n";
  }
  if (peer_) {
    for (const auto& v : peer_->result().violations) out += "reference peer: " + v + "\n";
    if (peer_->result().aborted) out += "reference peer aborted: " + peer_->result().abort_reason;
  }
  return out;
}

std::string IutRun::Start() {
  psk_ = options_.peer.psk.empty() ? MakePsk(99) : options_.peer.psk;
  const std::string psk_path = dir_ + "/psk.bin";
  {
    std::ofstream out(psk_path, std::ios::binary);
    out << psk_;
  }
  FakeNetworkOptions no;
  no.dir = dir_;
  no.pairs = options_.pairs;
  net_ = std::make_unique<FakeNetwork>(no);
  std::string why;
  if (!net_->Listen(&why)) return why;
  for (int e = 0; e < 2; ++e) {
    if (options_.program[e]) continue;
    PeerConfig c = options_.peer;
    c.alice = e == 0;
    c.session = options_.session;
    c.params = options_.params;
    c.psk = psk_;
    peer_ = std::make_unique<QkdPeer>(c, options_.pairs);
    net_->SetScripted(e, peer_.get());
  }
  const auto& p = options_.params;
  const char* node[2] = {"alice", "bob"};
  for (int e = 0; e < 2; ++e) {
    if (!options_.program[e]) continue;
    std::vector<std::string> args = {
        QkdProgram(),
        "--app_socket=" + net_->SocketPath(e),
        std::string("--role=") + (e == 0 ? "a" : "b"),
        std::string("--node=") + node[e],
        std::string("--peer=") + node[1 - e],
        "--port=" + std::to_string(e == 0 ? kPortA : kPortB),
        "--peer_port=" + std::to_string(e == 0 ? kPortB : kPortA),
        "--pairs=" + std::to_string(options_.pairs.size()),
        "--seed=" + std::to_string(17 + e),
        "--session=" + options_.session,
        "--psk_file=" + psk_path,
        "--result=" + ResultPath(e),
        "--key_file=" + KeyPath(e),
        "--block_bits=" + std::to_string(p.block_bits()),
        "--z_probability=" + Num(p.z_probability()),
        "--sample_fraction=" + Num(p.sample_fraction()),
        "--qber_threshold=" + Num(p.qber_threshold()),
        "--eps_sec=" + Num(p.eps_sec()),
        "--eps_cor=" + Num(p.eps_cor()),
        "--cascade_passes=" + std::to_string(p.cascade_passes()),
        "--key_size=" + std::to_string(p.key_size_bits()),
    };
    const KmeFlags& k = options_.kme[e];
    if (k.http_port != 0 || k.https_port != 0) {
      args.push_back("--kme_address=127.0.0.1");
      args.push_back("--kme_http_port=" + std::to_string(k.http_port));
      args.push_back("--kme_https_port=" + std::to_string(k.https_port));
      if (!k.pki_dir.empty()) args.push_back("--pki_dir=" + k.pki_dir);
      args.push_back("--saes=" + Join(k.saes));
      args.push_back("--peer_saes=" + Join(k.peer_saes));
    }
    for (const auto& f : options_.extra_flags[e]) args.push_back(f);
    process_[e] = std::make_unique<Process>();
    if (!process_[e]->Start(args, dir_ + (e == 0 ? "/a.log" : "/b.log"))) return "fork failed";
  }
  // Bob's process first binds; the fake node holds Alice's Connect until then.
  for (int e : {1, 0}) {
    if (!options_.program[e]) continue;
    if (!net_->Accept(e, Ms(15000))) {
      return std::string("the program as ") + (e == 0 ? "a" : "b") +
             " did not dial its app socket; log:\n" + Log(e);
    }
  }
  if (!options_.program[0]) {
    app::v1::Qos qos;
    qos.set_type(app::v1::PAIR_TYPE_MEASURE);
    qos.set_basis(link::v1::BASIS_CHOICE_XZ);
    qos.set_z_probability(p.z_probability());
    net_->ScriptedConnect(0, kPortB, qos);
  }
  return "";
}

bool IutRun::RunToResults(Ms timeout) {
  auto all_there = [&] {
    for (int e = 0; e < 2; ++e) {
      if (!options_.program[e]) continue;
      if (!ReadFile(ResultPath(e)).has_value() && process_[e]->running()) return false;
    }
    return true;
  };
  net_->RunUntil(all_there, timeout);
  // Let the last frames (Abort, Close) through, then wait for complete files.
  net_->RunUntil([] { return false; }, Ms(200));
  bool ok = true;
  for (int e = 0; e < 2; ++e) {
    if (options_.program[e]) ok = WaitForFile(ResultPath(e), Ms(2000)) && ok;
  }
  return ok;
}

std::optional<int> IutRun::Stop(int end) {
  if (!process_[end]) return std::nullopt;
  return process_[end]->Signal(SIGTERM, Ms(5000));
}

}  // namespace qnet::interop::qkd
