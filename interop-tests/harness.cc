#include "interop-tests/harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "google/protobuf/util/json_util.h"

#ifndef QNET_DEFAULT_IUT
#define QNET_DEFAULT_IUT "qnode"
#endif

namespace qnet::interop {
namespace {

int ListenTcp(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A port for the node to listen on. Picked at random below the kernel's
// ephemeral range (32768 and up on Linux), where the listening and dialling
// sockets of other tests running in parallel get theirs, so that the port is
// still free when the node binds it. The bind check (without SO_REUSEADDR)
// skips ports in use, also those a recent test's connections left in
// TIME_WAIT, which a node that does not set SO_REUSEADDR cannot bind.
int FreeTcpPort() {
  static std::mt19937 rng(static_cast<uint32_t>(MonotonicNs()) ^
                          static_cast<uint32_t>(getpid()) * 2654435761u);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const uint16_t port = static_cast<uint16_t>(20000 + rng() % 12000);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (ok) return port;
  }
  uint16_t port = 0;
  int fd = ListenTcp(&port);
  if (fd >= 0) close(fd);
  return port;
}

int ListenUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int AcceptWithin(int listen_fd, Ms timeout) {
  pollfd p{listen_fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return -1;
  return accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
}

int DialTcp(uint16_t port, Ms timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    close(fd);
    std::this_thread::sleep_for(Ms(20));
  }
  return -1;
}

Ms Left(std::chrono::steady_clock::time_point end) {
  const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
  return left.count() > 0 ? left : Ms(0);
}

}  // namespace

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string EncodeVarint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

std::string EncodeFrame(const google::protobuf::MessageLite& message) {
  std::string out = EncodeVarint(message.ByteSizeLong());
  message.AppendToString(&out);
  return out;
}

// ------------------------------------------------------------------ Channel

Channel::~Channel() {
  if (fd_ >= 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    shutdown(fd_, SHUT_RDWR);
    if (reader_.joinable()) reader_.join();
    close(fd_);
  }
}

void Channel::Open(int fd) {
  fd_ = fd;
  reader_ = std::thread([this] { ReadLoop(); });
}

void Channel::ReadLoop() {
  std::string buffer;
  char chunk[65536];
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, 100);
    if (ready == 0) continue;
    const ssize_t n = ready > 0 ? ::recv(fd_, chunk, sizeof chunk, 0) : -1;
    const uint64_t now = MonotonicNs();
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      closed_ = true;
      cv_.notify_all();
      return;
    }
    buffer.append(chunk, static_cast<size_t>(n));
    for (;;) {
      uint64_t size = 0;
      size_t i = 0;
      bool have_len = false;
      for (; i < buffer.size() && i < 10; ++i) {
        const uint8_t b = static_cast<uint8_t>(buffer[i]);
        size |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
          have_len = true;
          break;
        }
      }
      if (!have_len) {
        if (buffer.size() >= 10) bad_prefix_ = true;
        break;
      }
      if (buffer.size() - (i + 1) < size) break;
      frames_.push_back(Received{buffer.substr(i + 1, size), now});
      buffer.erase(0, i + 1 + size);
    }
    cv_.notify_all();
  }
}

bool Channel::SendBytes(const std::string& bytes) {
  if (fd_ < 0) return false;
  std::lock_guard<std::mutex> lock(send_mu_);
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::optional<Channel::Received> Channel::Next(Ms timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return !frames_.empty() || closed_; });
  if (frames_.empty()) return std::nullopt;
  Received r = std::move(frames_.front());
  frames_.pop_front();
  return r;
}

bool Channel::WaitClosed(Ms timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return closed_; });
}

bool Channel::saw_bad_prefix() {
  std::lock_guard<std::mutex> lock(mu_);
  return bad_prefix_;
}

// ------------------------------------------------------------------ Harness

Harness::Harness(HarnessOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/qnet-interop-XXXXXX";
  dir_ = mkdtemp(tmpl);
}

Harness::~Harness() {
  for (int i = 0; i < 2; ++i) StopHellos(i);
  if (pid_ > 0 && exit_status_ < 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (physics_listen_fd_ >= 0) close(physics_listen_fd_);
  for (int fd : peer_listen_fd_)
    if (fd >= 0) close(fd);
  if (std::getenv("QNET_INTEROP_KEEP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string Harness::Start() {
  const std::string a = options_.iut_is_master ? "iut" : "peer";
  const std::string b = options_.iut_is_master ? "peer" : "iut";
  const std::string topo = dir_ + "/topology.xml";
  {
    std::ofstream out(topo);
    out << "<network name=\"interop\" seed=\"1\" duration-s=\"" << options_.duration_s << "\" "
        << options_.network_attributes << ">\n"
        << "  <hardware name=\"hw\" memories=\"" << options_.memories << "\"/>\n"
        << "  <node name=\"iut\" hardware=\"hw\"/>\n  <node name=\"peer\" hardware=\"hw\"/>\n"
        << "  <link name=\"L\" a=\"" << a << "\" b=\"" << b << "\" " << options_.link_attributes
        << "/>\n";
    if (options_.second_peer) {
      out << "  <node name=\"peer2\" hardware=\"hw\"/>\n"
          << "  <link name=\"L2\" a=\"iut\" b=\"peer2\" "
          << (options_.link2_attributes.empty() ? options_.link_attributes
                                                : options_.link2_attributes)
          << "/>\n";
    }
    out << options_.extra_topology << options_.requests << "\n</network>\n";
  }
  const std::string physics_path = dir_ + "/qworld.sock";
  physics_listen_fd_ = ListenUnix(physics_path);
  if (physics_listen_fd_ < 0) return "cannot listen on " + physics_path;
  uint16_t peer_port[2] = {0, 0};
  const int peers = options_.second_peer ? 2 : 1;
  for (int i = 0; i < peers; ++i) {
    if (i == 0 && !options_.iut_is_master) {
      peer_port[0] = static_cast<uint16_t>(FreeTcpPort());
      continue;
    }
    peer_listen_fd_[i] = ListenTcp(&peer_port[i]);
    if (peer_listen_fd_[i] < 0) return "cannot listen on loopback";
  }
  const char* iut_env = std::getenv("QNET_IUT");
  const std::string iut = iut_env != nullptr && *iut_env != 0 ? iut_env : QNET_DEFAULT_IUT;
  // The node's listening port is picked here and bound by the node; another
  // process may take it in between (tests run in parallel). A node that could
  // not listen exits at once: it is then started again on another port.
  int iut_port = 0;
  int fd = -1;
  for (int attempt = 1;; ++attempt) {
    iut_port = FreeTcpPort();
    std::vector<std::string> args = {iut,
                                     "--topology",
                                     topo,
                                     "--node",
                                     "iut",
                                     "--qworld",
                                     "unix:" + physics_path,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(iut_port),
                                     "--peer",
                                     "peer=127.0.0.1:" + std::to_string(peer_port[0]),
                                     "--out",
                                     dir_};
    if (options_.second_peer) {
      args.push_back("--peer");
      args.push_back("peer2=127.0.0.1:" + std::to_string(peer_port[1]));
    }
    if (options_.app_socket) {
      args.push_back("--app_socket");
      args.push_back(app_socket_path());
    }
    exit_status_ = -1;
    pid_ = fork();
    if (pid_ == 0) {
      const std::string log = dir_ + "/iut.log";
      int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(log_fd, 1);
      dup2(log_fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Physics session: Hello -> HelloAck (PHYS-S1).
    const auto end = std::chrono::steady_clock::now() + Ms(10000);
    while (fd < 0 && NodeAlive() && std::chrono::steady_clock::now() < end)
      fd = AcceptWithin(physics_listen_fd_, Ms(100));
    if (fd >= 0) break;
    const bool port_taken = NodeLog().find("Address already in use") != std::string::npos;
    if (!NodeAlive() && port_taken && attempt < 5) continue;
    return "the node did not connect to the physics socket; log: " + NodeLog();
  }
  physics_.Open(fd);
  auto hello = NextPhysics(Ms(5000));
  if (!hello || !hello->msg.has_hello()) return "the node's first physics frame was not Hello";
  if (hello->msg.version() != 1)
    return "the node's physics Hello has version " + std::to_string(hello->msg.version());
  if (hello->msg.hello().node() != "iut")
    return "Hello named node '" + hello->msg.hello().node() + "'";
  physical::v1::WorldToNode ack;
  ack.set_version(1);
  ack.mutable_hello_ack()->set_node("iut");
  ack.mutable_hello_ack()->set_memories(options_.memories);
  if (!SendPhysics(ack)) return "cannot send HelloAck";
  // Classical sessions: the link's `a` dials `b`; Hello in each direction.
  for (int i = 0; i < peers; ++i) {
    const bool iut_dials = i == 1 || options_.iut_is_master;
    if (iut_dials) {
      int pfd = AcceptWithin(peer_listen_fd_[i], Ms(10000));
      if (pfd < 0)
        return std::string("the node did not dial ") + PeerName(i) + "; log: " + NodeLog();
      peer_[i].Open(pfd);
    } else {
      int pfd = DialTcp(static_cast<uint16_t>(iut_port), Ms(10000));
      if (pfd < 0) return "cannot dial the node's listening port; log: " + NodeLog();
      peer_[i].Open(pfd);
    }
    wire::v1::Frame hello_frame;
    hello_frame.set_version(1);
    hello_frame.set_from_node(PeerName(i));
    hello_frame.mutable_hello()->set_node(PeerName(i));
    if (!SendPeerFrame(hello_frame, i)) return "cannot send Hello to the node";
    auto their_hello = NextPeer(Ms(5000), i);
    if (!their_hello || !their_hello->msg.has_hello())
      return std::string("the node sent no Hello on the connection with ") + PeerName(i);
    if (their_hello->msg.hello().node() != "iut" || their_hello->msg.version() != 1)
      return "the node's Hello is not {version 1, node iut}";
  }
  // Start (PHYS-S4).
  epoch_ns_ = MonotonicNs() + 50'000'000;
  physical::v1::WorldToNode start;
  start.set_version(1);
  start.mutable_start()->set_epoch_monotonic_ns(epoch_ns_);
  start.mutable_start()->set_time_dilation(1.0);
  if (!SendPhysics(start)) return "cannot send Start";
  SleepUntilNs(0);
  return "";
}

uint64_t Harness::NowNs() const { return ToEmulated(MonotonicNs()); }

void Harness::SleepUntilNs(uint64_t emulated_ns) const {
  const uint64_t target = epoch_ns_ + emulated_ns;
  for (;;) {
    const uint64_t now = MonotonicNs();
    if (now >= target) return;
    std::this_thread::sleep_for(std::chrono::nanoseconds(target - now));
  }
}

std::optional<Timed<physical::v1::NodeToWorld>> Harness::NextPhysics(Ms timeout) {
  auto r = physics_.Next(timeout);
  if (!r) return std::nullopt;
  Timed<physical::v1::NodeToWorld> m;
  m.at_ns = ToEmulated(r->mono_ns);
  if (!m.msg.ParseFromString(r->payload)) m.msg.Clear();  // logged as an empty body
  physics_log_.push_back(m);
  return m;
}

std::optional<Timed<physical::v1::Generate>> Harness::NextGenerate(Ms timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto m = NextPhysics(Left(end));
    if (!m) return std::nullopt;
    if (m->msg.has_generate()) return Timed<physical::v1::Generate>{m->msg.generate(), m->at_ns};
  }
}

bool Harness::SendPhysics(const physical::v1::WorldToNode& message) {
  return physics_.Send(message);
}

bool Harness::SendHerald(const physical::v1::Herald& herald) {
  physical::v1::WorldToNode m;
  m.set_version(1);
  *m.mutable_herald() = herald;
  return SendPhysics(m);
}

physical::v1::Herald Harness::HeraldFor(const physical::v1::Generate& g,
                                        physical::v1::Outcome outcome, uint64_t pair_seq,
                                        uint64_t time_ns) const {
  physical::v1::Herald h;
  h.set_link(g.link());
  h.set_batch(g.batch());
  h.set_outcome(outcome);
  h.set_time_ns(time_ns != 0 ? time_ns : NowNs());
  h.set_attempts(outcome == physical::v1::OUTCOME_SUCCESS ? 1 : 0);
  h.set_queue_id(g.queue_id());
  if (outcome == physical::v1::OUTCOME_SUCCESS) {
    h.set_pair_seq(pair_seq);
    h.set_bell_state(physical::v1::BELL_STATE_PSI_PLUS);
    h.set_index(1);
    if (g.measure_basis() == physical::v1::BASIS_UNSPECIFIED) {
      const std::vector<uint32_t> slots = SlotsOf(g);
      if (!slots.empty()) h.set_slot(slots[0]);
    } else {
      h.set_basis(BasisOfPair(g, 0));
      h.set_result(0);
    }
  }
  return h;
}

std::vector<physical::v1::Herald> Harness::HeraldsFor(const physical::v1::Generate& g, uint32_t n,
                                                      uint64_t first_pair_seq,
                                                      uint64_t first_time_ns,
                                                      uint64_t step_ns) const {
  std::vector<physical::v1::Herald> out;
  const uint64_t t0 = first_time_ns != 0 ? first_time_ns : NowNs();
  const std::vector<uint32_t> slots = SlotsOf(g);
  for (uint32_t j = 0; j < n; ++j) {
    physical::v1::Herald h =
        HeraldFor(g, physical::v1::OUTCOME_SUCCESS, first_pair_seq + j, t0 + j * step_ns);
    h.set_index(j + 1);
    h.set_more(j + 1 < n);
    if (g.measure_basis() == physical::v1::BASIS_UNSPECIFIED) {
      if (j < slots.size()) {
        h.set_slot(slots[j]);
      } else {
        h.clear_slot();
      }
    } else {
      h.set_basis(BasisOfPair(g, j));
    }
    out.push_back(h);
  }
  return out;
}

bool Harness::SendHeralds(const std::vector<physical::v1::Herald>& heralds) {
  for (const physical::v1::Herald& h : heralds) {
    SleepUntilNs(h.time_ns());
    if (!SendHerald(h)) return false;
  }
  return true;
}

std::vector<uint32_t> SlotsOf(const physical::v1::Generate& g) {
  if (g.has_slot()) return {g.slot()};
  return std::vector<uint32_t>(g.slots().begin(), g.slots().end());
}

uint32_t PairsOf(const physical::v1::Generate& g) {
  if (g.measure_basis() == physical::v1::BASIS_UNSPECIFIED) {
    const uint32_t slots = static_cast<uint32_t>(SlotsOf(g).size());
    return g.pairs() != 0 && g.pairs() < slots ? g.pairs() : slots;
  }
  return g.pairs() == 0 ? 1 : g.pairs();
}

physical::v1::Basis BasisOfPair(const physical::v1::Generate& g, size_t j) {
  return j < static_cast<size_t>(g.measure_bases_size()) ? g.measure_bases(static_cast<int>(j))
                                                         : g.measure_basis();
}

std::optional<Timed<wire::v1::Frame>> Harness::NextPeer(Ms timeout, int peer) {
  auto r = peer_[peer].Next(timeout);
  if (!r) return std::nullopt;
  Timed<wire::v1::Frame> f;
  f.at_ns = ToEmulated(r->mono_ns);
  if (!f.msg.ParseFromString(r->payload)) f.msg.Clear();
  peer_log_[peer].push_back(f);
  return f;
}

std::optional<Timed<link::v1::LinkFrame>> Harness::ExpectLink(link::v1::LinkFrame::BodyCase body,
                                                              Ms timeout, int peer) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto f = NextPeer(Left(end), peer);
    if (!f) return std::nullopt;
    if (f->msg.has_link() && f->msg.link().body_case() == body)
      return Timed<link::v1::LinkFrame>{f->msg.link(), f->at_ns};
  }
}

bool Harness::SendPeer(const link::v1::LinkFrame& link_frame, int peer) {
  wire::v1::Frame f;
  f.set_version(1);
  f.set_from_node(PeerName(peer));
  *f.mutable_link() = link_frame;
  return SendPeerFrame(f, peer);
}

bool Harness::SendPeerFrame(const wire::v1::Frame& frame, int peer) {
  return peer_[peer].Send(frame);
}
bool Harness::SendPeerRaw(const std::string& bytes, int peer) {
  return peer_[peer].SendBytes(bytes);
}
bool Harness::PeerClosed(Ms timeout, int peer) { return peer_[peer].WaitClosed(timeout); }

bool Harness::SendNet(const network::v1::NetworkFrame& frame, int peer) {
  wire::v1::Frame f;
  f.set_version(1);
  f.set_from_node(PeerName(peer));
  *f.mutable_network() = frame;
  return SendPeerFrame(f, peer);
}

std::optional<Timed<network::v1::NetworkFrame>> Harness::ExpectNet(
    network::v1::NetworkFrame::BodyCase body, Ms timeout, int peer) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto f = NextPeer(Left(end), peer);
    if (!f) return std::nullopt;
    if (f->msg.has_network() && f->msg.network().body_case() == body)
      return Timed<network::v1::NetworkFrame>{f->msg.network(), f->at_ns};
  }
}

void Harness::StartHellos(int peer, Ms interval) {
  StopHellos(peer);
  auto pump = std::make_unique<HelloPump>();
  HelloPump* p = pump.get();
  wire::v1::Frame f;
  f.set_version(1);
  f.set_from_node(PeerName(peer));
  network::v1::NetHello* hello = f.mutable_network()->mutable_hello();
  hello->set_link(LinkName(peer));
  // NET-R-1: `heard` says the sender hears the other end; the neighbour played
  // here does, the node sending its hellos all along (NET-R-5 brings a down
  // link up only on a hello that says so).
  hello->set_heard(true);
  const std::string bytes = EncodeFrame(f);
  Channel* channel = &peer_[peer];
  p->thread = std::thread([p, channel, bytes, interval] {
    // The neighbour's keepalive must not starve when the machine is loaded
    // (tests run in parallel): the node declares the link down after 4 missed
    // intervals (NET-R-2), which would tear down the circuits under test.
    // Raising this thread's priority needs privileges; without them it is
    // simply not raised.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), -10);
    std::unique_lock<std::mutex> lock(p->mu);
    while (!p->stop) {
      channel->SendBytes(bytes);
      p->cv.wait_for(lock, interval, [p] { return p->stop; });
    }
  });
  hellos_[peer] = std::move(pump);
}

void Harness::StopHellos(int peer) {
  if (!hellos_[peer]) return;
  {
    std::lock_guard<std::mutex> lock(hellos_[peer]->mu);
    hellos_[peer]->stop = true;
  }
  hellos_[peer]->cv.notify_all();
  hellos_[peer]->thread.join();
  hellos_[peer].reset();
}

bool Harness::NodeAlive() {
  if (pid_ <= 0 || exit_status_ >= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == 0) return true;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

void Harness::Drain(Ms quiet) {
  while (NextPhysics(quiet)) {
  }
  for (int i = 0; i < 2; ++i) {
    if (!peer_[i].is_open()) continue;
    while (NextPeer(quiet, i)) {
    }
  }
}

bool Harness::StopNode(Ms timeout) {
  // Let the node act on what it was sent last (a herald is acted on at its
  // time_ns, from a timer) before the run ends.
  std::this_thread::sleep_for(Ms(200));
  if (NodeAlive()) {
    physical::v1::WorldToNode stop;
    stop.set_version(1);
    stop.mutable_stop()->set_reason("interop test over");
    SendPhysics(stop);
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (NodeAlive() && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(Ms(10));
    if (NodeAlive()) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      exit_status_ = 128 + SIGKILL;
    }
  }
  Drain(Ms(50));
  return exit_status_ == 0;
}

std::vector<results::v1::TraceRecord> Harness::Trace() {
  std::vector<results::v1::TraceRecord> out;
  trace_malformed_ = 0;
  std::ifstream in(dir_ + "/nodes/iut.jsonl");
  std::string line;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // RES-2
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    results::v1::TraceRecord r;
    if (google::protobuf::util::JsonStringToMessage(line, &r, options).ok()) {
      out.push_back(std::move(r));
    } else {
      ++trace_malformed_;
    }
  }
  return out;
}

std::string Harness::NodeLog() const {
  std::ifstream in(dir_ + "/iut.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ------------------------------------------------------------------ queries

namespace {
template <typename Pred>
std::vector<results::v1::TraceRecord> Filter(const Trace& trace, Pred pred) {
  std::vector<results::v1::TraceRecord> out;
  for (const auto& r : trace)
    if (pred(r)) out.push_back(r);
  return out;
}
}  // namespace

std::vector<results::v1::TraceRecord> Creates(const Trace& trace) {
  return Filter(trace, [](const auto& r) { return r.has_create(); });
}
std::vector<results::v1::TraceRecord> Oks(const Trace& trace) {
  return Filter(trace, [](const auto& r) { return r.has_ok(); });
}
std::vector<results::v1::TraceRecord> Errs(const Trace& trace, link::v1::ErrorCode code) {
  return Filter(trace, [code](const auto& r) { return r.has_err() && r.err().code() == code; });
}
std::vector<results::v1::TraceRecord> Drops(const Trace& trace, results::v1::DropReason reason) {
  return Filter(trace,
                [reason](const auto& r) { return r.has_drop() && r.drop().reason() == reason; });
}
std::vector<results::v1::TraceRecord> Busy(const Trace& trace) {
  return Filter(trace, [](const auto& r) { return r.has_link_busy(); });
}
int CountDrops(const Trace& trace) {
  int n = 0;
  for (const auto& r : trace) n += r.has_drop();
  return n;
}

std::string Dump(const Trace& trace) {
  std::string out;
  for (const auto& r : trace) {
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(r, &line);
    out += line + "\n";
  }
  return out;
}

}  // namespace qnet::interop
