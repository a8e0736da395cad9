// Conformance harness: drives one node implementation as a black box over the
// wire (DESIGN.md: "it drives binaries, it does not link the stack"). The
// harness plays the node's neighbour ("peer", optionally a second neighbour
// "peer2") on the classical channel and its physics service (a scripted qworld)
// on the physics socket, and reads the node's trace file to see what its link
// service reported.
//
// The node under test ("iut") is started as a process from the command line in
// $QNET_IUT (default: the qnode built with this tree), with the qnode CLI:
//   IUT --topology FILE --node iut --qworld unix:PATH --listen 127.0.0.1:PORT
//       --peer peer=127.0.0.1:PORT [--peer peer2=127.0.0.1:PORT] --out DIR
// so another implementation is tested by pointing QNET_IUT at a wrapper that
// accepts these flags (interop-tests/README.md). Nothing of the qnet stack is
// linked here: only the wire protos.
//
// Observation. Every frame the node sends (to the physics socket and to each
// neighbour) is read by a background thread and stamped with its arrival time
// on the shared emulated clock (CLOCK_MONOTONIC minus the epoch the harness
// sent in Start), so that tests can check timing bounds (LINK-24, LINK-W6)
// without depending on when the test thread looks. Everything read is also
// kept in a log (physics_log(), peer_log()) for checks after the run.
//
// Trace. A node buffers its trace (specs/topology.md RES-3), so tests end the
// run with StopNode() (physics Stop, as qworld sends at the end of a run: the
// node flushes and exits) before reading Trace().
#ifndef QNET_INTEROP_TESTS_HARNESS_H_
#define QNET_INTEROP_TESTS_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "qnet/network/v1/network.pb.h"
#include "qnet/physical/v1/physical.pb.h"
#include "qnet/results/v1/results.pb.h"
#include "qnet/wire/v1/frame.pb.h"

namespace qnet::interop {

using Ms = std::chrono::milliseconds;

// CLOCK_MONOTONIC in nanoseconds, the clock every process of a run shares.
uint64_t MonotonicNs();

// Varint length prefix + serialized message (LINK-W1, PHYS-1).
std::string EncodeFrame(const google::protobuf::MessageLite& message);
std::string EncodeVarint(uint64_t value);

// A stream socket carrying varint-length-prefixed frames. A background thread
// reads it and queues each complete frame with the CLOCK_MONOTONIC time at
// which its last byte was read. Sending happens on the caller's thread.
class Channel {
 public:
  struct Received {
    std::string payload;
    uint64_t mono_ns = 0;
  };

  Channel() = default;
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  void Open(int fd);  // takes ownership and starts reading
  bool is_open() const { return fd_ >= 0; }
  bool SendBytes(const std::string& bytes);
  bool Send(const google::protobuf::MessageLite& message) {
    return SendBytes(EncodeFrame(message));
  }
  // The next frame, or nullopt on timeout or when the stream ended.
  std::optional<Received> Next(Ms timeout);
  // True once the other side closed the stream (or it failed), waiting up to
  // `timeout`. Frames that arrived before the end stay readable with Next().
  bool WaitClosed(Ms timeout);
  // True if the other side sent a length prefix that is not a valid varint.
  bool saw_bad_prefix();

 private:
  void ReadLoop();

  int fd_ = -1;
  std::thread reader_;
  std::mutex send_mu_;  // senders on several threads (the hello pump of Harness::StartHellos)
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Received> frames_;
  bool closed_ = false;
  bool bad_prefix_ = false;
  bool stop_ = false;
};

template <typename M>
struct Timed {
  M msg;
  uint64_t at_ns = 0;  // emulated arrival time at the harness
};

struct HarnessOptions {
  // Attributes of the link "L" between iut and peer (name, a and b are added).
  std::string link_attributes =
      R"(scheme="werner" length-km="1" attempt-us="100" p-success="0.5" fidelity="0.9")";
  std::string requests;  // <request .../> elements
  uint32_t memories = 4;
  bool iut_is_master = true;  // false: the link is declared a="peer" b="iut"
  // A second neighbour "peer2" on link "L2" (a="iut", b="peer2").
  bool second_peer = false;
  std::string link2_attributes;  // default: link_attributes
  double duration_s = 30;
  // Network-layer suites (specs/network.md): extra attributes of <network>
  // (e.g. routing-metric="hops") and extra elements (nodes and links beyond
  // the node's neighbours, <connection>s).
  std::string network_attributes;
  std::string extra_topology;
  // Pass --app_socket DIR/app.sock (specs/app-api.md); see app_socket_path().
  bool app_socket = false;
};

class Harness {
 public:
  explicit Harness(HarnessOptions options);
  ~Harness();  // kills the node if still running; removes the folder unless QNET_INTEROP_KEEP is
               // set

  // Writes the topology, starts the node, answers its Hello on the physics
  // socket, sets up the classical connection(s) with Hello frames, then sends
  // Start with an epoch 50 ms ahead and returns once emulated time 0 has come.
  // Returns an empty string on success, else what went wrong.
  std::string Start();

  // Emulated time now, as the node computes it from Start (PHYS-S4).
  uint64_t NowNs() const;
  void SleepUntilNs(uint64_t emulated_ns) const;

  // ---- Physics side (scripted qworld).
  std::optional<Timed<physical::v1::NodeToWorld>> NextPhysics(Ms timeout);
  // The next Generate, skipping (but logging) other requests such as Free.
  std::optional<Timed<physical::v1::Generate>> NextGenerate(Ms timeout);
  bool SendPhysics(const physical::v1::WorldToNode& message);
  bool SendHerald(const physical::v1::Herald& herald);
  // A herald that follows the contract for `generate` (PHYS-B12, PHYS-B15,
  // PHYS-B18): echoes link, batch, queue id, and for a SUCCESS the first slot
  // (keep) or the first pair's basis (measure), index 1 and no `more`; with
  // time_ns = `time_ns` (0: now), attempts 1, result 0, Bell state PSI_PLUS.
  // For a Generate that asks for several pairs this is the whole batch when
  // the other end could take one pair only (PHYS-B17: the batch runs to the
  // smaller capacity), a legitimate physical layer's answer.
  physical::v1::Herald HeraldFor(const physical::v1::Generate& generate,
                                 physical::v1::Outcome outcome, uint64_t pair_seq,
                                 uint64_t time_ns = 0) const;
  // The `n` SUCCESS heralds of a batch of n pairs (PHYS-B17, PHYS-B18): success
  // j (1-based) has index j, pair_seq first_pair_seq + j - 1, the j-th slot
  // (keep) or basis (measure) of `generate`, `more` set but on the last, and
  // time_ns = first_time_ns + (j - 1) step_ns (first_time_ns 0: now).
  std::vector<physical::v1::Herald> HeraldsFor(const physical::v1::Generate& generate, uint32_t n,
                                               uint64_t first_pair_seq, uint64_t first_time_ns = 0,
                                               uint64_t step_ns = 200'000) const;
  // Sends each herald no earlier than its time_ns (a physical layer heralds a
  // success at most one cycle before its time, PHYS-B12; LINK-44 treats an
  // earlier one as broken). Returns false if a send failed.
  bool SendHeralds(const std::vector<physical::v1::Herald>& heralds);
  // Every physics message read so far, in arrival order.
  const std::vector<Timed<physical::v1::NodeToWorld>>& physics_log() const { return physics_log_; }

  // ---- Classical side, as neighbour `peer` (0: "peer", 1: "peer2").
  std::optional<Timed<wire::v1::Frame>> NextPeer(Ms timeout, int peer = 0);
  // The next LinkFrame with this body, skipping (but logging) other frames.
  std::optional<Timed<link::v1::LinkFrame>> ExpectLink(link::v1::LinkFrame::BodyCase body,
                                                       Ms timeout, int peer = 0);
  // A well-formed Frame{version 1, from_node = the neighbour's name, link}.
  bool SendPeer(const link::v1::LinkFrame& link_frame, int peer = 0);
  bool SendPeerFrame(const wire::v1::Frame& frame, int peer = 0);
  bool SendPeerRaw(const std::string& bytes, int peer = 0);
  bool PeerClosed(Ms timeout, int peer = 0);

  // ---- Network layer (specs/network.md), as neighbour `peer`.
  // Frame{version 1, from_node = the neighbour's name, network}.
  bool SendNet(const network::v1::NetworkFrame& frame, int peer = 0);
  // The next NetworkFrame with this body, skipping (but logging) other frames.
  std::optional<Timed<network::v1::NetworkFrame>> ExpectNet(
      network::v1::NetworkFrame::BodyCase body, Ms timeout, int peer = 0);
  // A background thread sends NetHello{link, heard: true} as `peer` every
  // `interval` (the neighbour's keepalive; it hears the node) until
  // StopHellos; the link is "L" for peer 0 and "L2" for peer 1.
  void StartHellos(int peer, Ms interval = Ms(20));
  void StopHellos(int peer);
  static const char* LinkName(int peer) { return peer == 0 ? "L" : "L2"; }
  static const char* PeerName(int peer) { return peer == 0 ? "peer" : "peer2"; }
  std::string app_socket_path() const { return dir_ + "/app.sock"; }
  const std::vector<Timed<wire::v1::Frame>>& peer_log(int peer = 0) const {
    return peer_log_[peer];
  }

  // ---- End of the run.
  // Waits 200 ms for the node to act on its last inputs, sends physics Stop
  // (what qworld sends when the run is over), waits for the node to exit, then reads what is left
  // on every channel into the logs. Returns true if the node exited with status 0 within the
  // timeout.
  bool StopNode(Ms timeout = Ms(10000));
  bool NodeAlive();
  int exit_status() const { return exit_status_; }

  // The node's trace (OUT/nodes/iut.jsonl). Lines that do not parse are
  // counted in trace_malformed_lines().
  std::vector<results::v1::TraceRecord> Trace();
  int trace_malformed_lines() const { return trace_malformed_; }

  const std::string& dir() const { return dir_; }
  std::string NodeLog() const;

 private:
  uint64_t ToEmulated(uint64_t mono_ns) const {
    return mono_ns > epoch_ns_ ? mono_ns - epoch_ns_ : 0;
  }
  void Drain(Ms quiet);

  HarnessOptions options_;
  std::string dir_;
  int physics_listen_fd_ = -1;
  int peer_listen_fd_[2] = {-1, -1};
  Channel physics_;
  Channel peer_[2];
  pid_t pid_ = -1;
  int exit_status_ = -1;
  uint64_t epoch_ns_ = 0;
  int trace_malformed_ = 0;
  std::vector<Timed<physical::v1::NodeToWorld>> physics_log_;
  std::vector<Timed<wire::v1::Frame>> peer_log_[2];
  struct HelloPump {
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
  };
  std::unique_ptr<HelloPump> hellos_[2];
};

// ---- What a Generate asks for (specs/physical.md PHYS-B17, PHYS-B19; specs/link.md LINK-27).
// The slots of a keeping end, in the order they are filled: `slots`, or `slot` alone.
std::vector<uint32_t> SlotsOf(const physical::v1::Generate& generate);
// The end's capacity for the batch: keep: its slots, or `pairs` if smaller and
// not 0; measure directly: `pairs` (0 counts as 1).
uint32_t PairsOf(const physical::v1::Generate& generate);
// The basis of pair j (0-based) of a measuring end: the j-th of
// `measure_bases`, or `measure_basis` when the list is shorter.
physical::v1::Basis BasisOfPair(const physical::v1::Generate& generate, size_t j);

// ---- Trace queries.
using Trace = std::vector<results::v1::TraceRecord>;
std::vector<results::v1::TraceRecord> Creates(const Trace& trace);
std::vector<results::v1::TraceRecord> Oks(const Trace& trace);
std::vector<results::v1::TraceRecord> Errs(const Trace& trace, link::v1::ErrorCode code);
std::vector<results::v1::TraceRecord> Drops(const Trace& trace, results::v1::DropReason reason);
std::vector<results::v1::TraceRecord> Busy(const Trace& trace);
int CountDrops(const Trace& trace);
// One line per record, for failure messages.
std::string Dump(const Trace& trace);

}  // namespace qnet::interop

#endif  // QNET_INTEROP_TESTS_HARNESS_H_
