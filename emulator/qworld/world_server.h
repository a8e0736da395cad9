// WorldServer: the serving logic of the qworld daemon (specs/physical.md, the
// physics-emulation interface of DESIGN.md), apart from main() so that tests
// run it in-process.
//
// It listens on a Unix socket and optionally TCP (PHYS-4), and drives one
// World, the sans-I/O physics core, with the frames of every node connection
// (PHYS-1):
// - A connection's first frame MUST be Hello (PHYS-S1); World answers HelloAck
//   or Error. Any other first frame (PHYS-S2), a second Hello on a connection,
//   or a Hello for a node that is connected already is answered with Error
//   UNEXPECTED.
// - When every node of the topology has said Hello, every node gets
//   Start{epoch = CLOCK_MONOTONIC now + start_delay, topology time dilation}
//   and the runtime's epoch is set to the same value; a node that says Hello
//   later gets the same Start (PHYS-S4).
// - Each later frame goes to World::Handle with the current emulated time
//   (>= 0) at which it is read (PHYS-S5). World's answers are sent at their
//   emulated time with the runtime's timers (at once if due), never earlier,
//   in (time, emission) order (PHYS-S6).
// - A frame that does not parse is answered with Error MALFORMED (PHYS-5); it
//   and an oversized frame (PHYS-3) are counted and traced as drops; the
//   connection goes on. An invalid length prefix closes the connection.
// - At emulated duration + grace every node gets Stop; answers not yet due are
//   discarded and later requests are ignored (PHYS-S7). The run is over when
//   every node has said Bye or closed its connection, or after `stop_timeout`
//   of wall time.
// - A node whose connection closes without Bye is ended as if it had said Bye
//   (PHYS-S3), so it may say Hello again.
// - Abort() (SIGINT/SIGTERM in the daemon) sends Stop at once and ends the run
//   with an error; so does the loss of every node before the end.
// Everything World records (HeraldTruth, Batch, drops) and the server's own
// drops go to OUT/qworld.jsonl (node "qworld"). About four times a second of
// wall time, and when the run stops, it writes OUT/progress.json (RES-1b):
// its emulated time and, per link, the successes it heralded to the link's
// `a` end.
#ifndef QNET_EMULATOR_QWORLD_WORLD_SERVER_H_
#define QNET_EMULATOR_QWORLD_WORLD_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "emulator/world/world.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/event_runtime.h"
#include "stack/json_lines.h"
#include "stack/stream.h"
#include "stack/topology.h"

namespace qnet::qworld {

struct WorldServerOptions {
  std::string socket_path;           // Unix socket; empty: none
  std::string listen_tcp;            // "HOST:PORT"; empty: none
  std::string out_dir;               // qworld.jsonl goes here
  std::optional<uint64_t> seed;      // default: the topology's seed
  std::optional<double> duration_s;  // default: the topology's duration
  absl::Duration start_delay =
      absl::Milliseconds(300);  // wall time from the last Hello to the epoch
  double grace_s = 0.05;        // emulated seconds after the duration before Stop
  absl::Duration stop_timeout = absl::Seconds(10);  // wall time allowed for the nodes to leave
  // A connection that has not said Hello within this wall time is closed
  // (PHYS-S8).
  absl::Duration hello_timeout = absl::Seconds(10);
  // PHYS-B4a: a batch may start up to this much wall time before the later
  // of its two Generates arrived, at the ends' shared reference time.
  absl::Duration max_start_lag_wall = absl::Milliseconds(5);
  // The trace: OUT/qworld.jsonl, or the binary form OUT/qworld.pb (RES-1a).
  bool binary_trace = false;
  std::function<void(const std::string&)> log;      // one line per event; default: stderr
};

// What the server drives: World itself, or a scripted core in tests.
class PhysicsCore {
 public:
  virtual ~PhysicsCore() = default;
  virtual void Handle(const std::string& node, const physical::v1::NodeToWorld& request,
                      Time now) = 0;
};
using PhysicsCoreFactory = std::function<std::unique_ptr<PhysicsCore>(
    const Topology& topology, Rng rng, world::World::Output* output)>;

class WorldServer : public world::World::Output {
 public:
  // `runtime` must outlive the server and have no epoch yet. `core` defaults to World.
  static absl::StatusOr<std::unique_ptr<WorldServer>> Create(EventRuntime* runtime,
                                                             Topology topology,
                                                             WorldServerOptions options,
                                                             PhysicsCoreFactory core = nullptr);
  ~WorldServer() override;

  // Called once when the run is over (OK) or failed; the owner stops the loop.
  void set_on_finished(std::function<void(absl::Status)> on_finished) {
    on_finished_ = std::move(on_finished);
  }

  // Sends Stop to every node, flushes the trace and finishes with `why`.
  void Abort(absl::Status why);

  // World::Output.
  void Deliver(const std::string& node, physical::v1::WorldToNode message, Time at) override;
  void Record(results::v1::TraceRecord record) override;

  const std::string& unix_address() const;
  const std::string& tcp_address() const;
  bool started() const { return started_; }
  bool stopped() const { return stopped_; }
  size_t nodes_said_hello() const { return said_hello_.size(); }
  size_t nodes_connected() const { return node_connection_.size(); }
  uint64_t malformed_frames() const { return malformed_frames_; }
  uint64_t oversized_frames() const { return oversized_frames_; }
  uint64_t unexpected_frames() const { return unexpected_frames_; }
  uint64_t requests() const { return requests_; }
  uint64_t deliveries_sent() const { return deliveries_sent_; }
  uint64_t deliveries_lost() const {
    return deliveries_lost_;
  }  // node not connected, or after Stop

 private:
  struct Connection {
    uint64_t id = 0;
    std::unique_ptr<FramedStream> stream;
    std::string node;  // set once World accepted its Hello
    bool said_bye = false;
    std::unique_ptr<WallTimer> hello_timer;  // PHYS-S8
  };
  struct Pending {
    uint64_t connection = 0;
    physical::v1::WorldToNode message;
  };
  using Key = std::pair<int64_t, uint64_t>;  // (emulated time, emission sequence)

  WorldServer(EventRuntime* runtime, Topology topology, WorldServerOptions options);
  absl::Status Init(PhysicsCoreFactory core);
  void OnAccept(std::unique_ptr<FramedStream> stream);
  void OnFrame(uint64_t id, const std::string& payload);
  void OnHello(Connection& connection, const physical::v1::NodeToWorld& request);
  void OnClosed(uint64_t id, const absl::Status& why);
  void Reject(Connection& connection, physical::v1::ErrorCode code, const std::string& detail,
              results::v1::DropReason reason);
  void SendNow(uint64_t id, physical::v1::WorldToNode message);
  void SendStart(uint64_t id);
  void FlushDue();
  void MaybeStart();
  void StopRun(const std::string& reason);
  void CheckAllLeft();
  void Finish(absl::Status why);
  void WriteProgress();
  std::string Describe(const Connection& connection) const;
  void Log(const std::string& line) const;

  EventRuntime* runtime_;
  Topology topology_;
  WorldServerOptions options_;
  double duration_s_ = 0;
  std::unique_ptr<JsonLinesTracer> tracer_;
  std::unique_ptr<PhysicsCore> core_;
  std::unique_ptr<StreamListener> unix_listener_, tcp_listener_;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::map<std::string, uint64_t> node_connection_;  // node -> connection serving it
  std::set<std::string> said_hello_;
  std::map<Key, Pending> pending_;  // deliveries not yet due
  std::unique_ptr<Timer> delivery_timer_, stop_timer_;
  std::unique_ptr<WallTimer> leave_timer_, flush_timer_, progress_timer_;
  std::map<std::string, std::string> link_a_;     // link -> its `a` node
  std::map<std::string, uint64_t> link_pairs_;  // successes heralded to the `a` end
  std::function<void(absl::Status)> on_finished_;
  absl::Status end_status_;  // what the run ends with once every node has left
  uint64_t next_connection_ = 1;
  uint64_t next_seq_ = 1;
  std::string hello_node_;  // node whose Hello World is handling
  bool hello_acked_ = false;
  bool started_ = false;
  bool stopped_ = false;
  bool finished_ = false;
  int64_t epoch_ns_ = 0;
  uint64_t malformed_frames_ = 0, oversized_frames_ = 0, unexpected_frames_ = 0;
  uint64_t requests_ = 0, deliveries_sent_ = 0, deliveries_lost_ = 0;
};

}  // namespace qnet::qworld

#endif  // QNET_EMULATOR_QWORLD_WORLD_SERVER_H_
