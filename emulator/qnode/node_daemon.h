// NodeDaemon: the serving logic of the qnode daemon, apart from main() so that
// tests can run it in-process. One emulated node as one process:
//
//   EventRuntime -- QworldClient (physics, over unix:/tcp: to qworld)
//                -- node::Node (the node's stack, composed in emulator/node)
//                -- JsonLinesTracer at OUT/nodes/NAME.jsonl
//                -- one framed TCP connection per neighbour
//
// Neighbour connections (specs/link.md LINK-W1..W6): for each link where this
// node is `a` it dials the neighbour's address (retrying until it listens);
// where it is `b` it accepts on its own listening address. The first frame in
// each direction is wire.v1.Frame{hello} naming the sender; an accepted
// connection whose Hello does not name a neighbour without a connection is
// answered with FrameError and closed. Later frames are parsed as
// wire.v1.Frame and passed to Node::OnFrame; a frame that does not parse, or is
// oversized, goes to Node::OnBadFrame (LINK-W4). Frames to a neighbour are held
// for the link's classical delay (LinkSpec::delay_s(), emulated, so scaled by
// the time dilation) by a DelayedSender (LINK-W6), and kept in order until the
// connection exists.
//
// Apps (specs/app-api.md): with an app socket path, once qworld's Start has
// set the epoch the daemon serves the node's TransportService there
// (AppServer: one AppSession per app connection); the socket file appears
// then, so an app that finds it can use the transport at once.
//
// Failure events (<event cut-link|fail-node>, specs/topology.md TOPO-35): from
// an event's emulated time on, frames to or from the neighbour on a cut link
// are dropped and counted (frames_cut), and the node hears of the cut at once
// (Node::OnLinkDown); qworld cuts the fibre itself (PHYS-L3).
//
// Run: qworld's Start sets the runtime's epoch; the node starts at emulated
// time 0 and stops issuing work at the run's duration. On qworld's Stop (or at
// duration + grace if no Stop comes) it stops the node, releases held frames,
// sends Bye, flushes the trace and finishes with exit code 0. Losing qworld
// before Stop, a refused Hello or an unreachable neighbour finish with 1.
#ifndef QNET_EMULATOR_QNODE_NODE_DAEMON_H_
#define QNET_EMULATOR_QNODE_NODE_DAEMON_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "emulator/node/node.h"
#include "emulator/node/qworld_client.h"
#include "emulator/qnode/app_server.h"
#include "qnet/wire/v1/frame.pb.h"
#include "stack/event_runtime.h"
#include "stack/json_lines.h"
#include "stack/stream.h"
#include "stack/topology.h"

namespace qnet::qnode {

struct NodeDaemonOptions {
  std::string node;
  std::string qworld_address;                // unix:PATH or tcp:HOST:PORT
  std::string listen_address;                // HOST:PORT for neighbours that dial this node
  std::map<std::string, std::string> peers;  // neighbour -> HOST:PORT
  std::string out_dir;
  std::optional<uint64_t> seed;      // default: the topology's seed
  std::optional<double> duration_s;  // default: the topology's duration
  double grace_s = 1.0;  // emulated seconds after the duration to wait for qworld's Stop
  absl::Duration connect_timeout =
      absl::Seconds(30);                        // wall time to reach qworld and each neighbour
  std::function<void(const std::string&)> log;  // default: stderr
  // LINK-20: the link layer's scheduling margin is at least this much wall
  // time (converted to emulated time with the topology's time dilation), above
  // the frame-delivery jitter of real processes on a loaded host.
  absl::Duration link_margin_wall = absl::Milliseconds(2);
  // Unix socket path of the app server; empty: no app server.
  std::string app_socket;
  // The trace: JSON lines at OUT/nodes/NAME.jsonl, or the binary form
  // (RES-1a) at OUT/nodes/NAME.pb, which costs less per record.
  bool binary_trace = false;
  // Link liveness in wall time (NET-R-6a): the router's hello interval is at
  // least `hello_interval_wall` and its dead interval at least
  // `dead_interval_wall` (both converted with the time dilation), so that a
  // CPU stall of a loaded machine does not take links down.
  absl::Duration hello_interval_wall = absl::Milliseconds(250);
  absl::Duration dead_interval_wall = absl::Seconds(2);
  // A connection that has not said Hello within this is closed (LINK-W10).
  absl::Duration hello_timeout = absl::Seconds(10);
};

// Parses repeated "--peer NAME=HOST:PORT" values (each may hold a comma-separated list).
absl::StatusOr<std::map<std::string, std::string>> ParsePeers(
    const std::vector<std::string>& values);

class NodeDaemon {
 public:
  // `runtime` must outlive the daemon and have no epoch yet.
  static absl::StatusOr<std::unique_ptr<NodeDaemon>> Create(EventRuntime* runtime,
                                                            Topology topology,
                                                            NodeDaemonOptions options);
  ~NodeDaemon();

  // Called once with the exit code when the daemon is done; the owner stops the loop.
  void set_on_finished(std::function<void(int exit_code)> on_finished) {
    on_finished_ = std::move(on_finished);
  }
  // Ends the run now (signals): stop the node, flush, say Bye.
  void Shutdown(const std::string& reason, int exit_code);

  const std::string& listen_address() const;
  const node::Node& node() const { return *node_; }
  const node::QworldClient& qworld() const { return *qworld_; }
  uint64_t frames_lost() const { return frames_lost_; }
  // Connections refused or closed for what their peer sent or did not send
  // (no Hello in time, bad first frame, stranger), LINK-W10.
  uint64_t connections_refused() const { return connections_refused_; }
  // Times a neighbour connection was lost after it had been bound.
  uint64_t neighbour_losses() const { return neighbour_losses_; }
  uint64_t frames_cut() const { return frames_cut_; }
  const AppServer* app_server() const { return app_server_.get(); }

 private:
  struct Neighbour {
    std::string name;
    const LinkSpec* link = nullptr;
    bool dial = false;  // this node is the link's `a`
    std::string address;
    std::unique_ptr<DelayedSender> sender;
    uint64_t connection = 0;          // 0: not connected
    std::deque<std::string> waiting;  // released while not connected (LINK-W9)
    std::unique_ptr<Dialer> dialer;
    int connections = 0;              // bound so far (1 + reconnections)
  };
  struct PeerConnection {
    uint64_t id = 0;
    std::unique_ptr<FramedStream> stream;
    std::string neighbour;  // known once its Hello arrived (or dialled)
    bool hello_seen = false;
    std::unique_ptr<WallTimer> hello_timer;  // LINK-W10
  };

  NodeDaemon(EventRuntime* runtime, Topology topology, NodeDaemonOptions options);
  absl::Status Init();
  void OnQworldStart(const physical::v1::Start& start);
  void SendToNeighbour(const std::string& neighbour, const wire::v1::Frame& frame);
  // The link to `neighbour` is cut (events); counts and traces the lost frame.
  bool CutDrop(const std::string& neighbour, const char* direction);
  void CutLinks(const EventSpec& event);
  void Release(Neighbour& n, std::string bytes);
  uint64_t AddConnection(std::unique_ptr<FramedStream> stream, const std::string& neighbour);
  void OnPeerFrame(uint64_t id, const std::string& payload);
  void OnPeerHello(PeerConnection& c, const wire::v1::Frame& frame);
  void OnPeerOversized(uint64_t id, uint64_t size);
  void OnPeerClosed(uint64_t id, const absl::Status& why);
  // The connection bound to `n` is gone (closed, or replaced by a newer one):
  // the link goes down (NET-R-3) and the dialling end dials again (LINK-W9).
  void OnNeighbourLost(Neighbour& n, const std::string& why);
  void DialNeighbour(Neighbour& n, bool first);
  void Bind(PeerConnection& c, Neighbour& n);
  void RefusePeer(PeerConnection& c, wire::v1::FrameErrorCode code, const std::string& detail);
  void SendHello(FramedStream* stream);
  void Finish(const std::string& reason, int exit_code);
  void Log(const std::string& line) const;

  EventRuntime* runtime_;
  Topology topology_;  // Node keeps a reference: declared before node_
  NodeDaemonOptions options_;
  double duration_s_ = 0;
  std::unique_ptr<JsonLinesTracer> tracer_;
  std::unique_ptr<node::QworldClient> qworld_;
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<Dialer> qworld_dialer_;
  std::unique_ptr<StreamListener> listener_;
  std::map<std::string, Neighbour> neighbours_;
  std::map<uint64_t, PeerConnection> connections_;
  std::unique_ptr<Timer> start_timer_, duration_timer_, end_timer_;
  std::unique_ptr<WallTimer> flush_timer_;
  std::function<void(int)> on_finished_;
  std::vector<std::unique_ptr<Timer>> event_timers_;
  std::set<std::string> cut_;              // neighbours whose link is cut
  std::unique_ptr<AppServer> app_server_;  // after node_: destroyed first
  uint64_t next_connection_ = 1;
  uint64_t frames_lost_ = 0;
  uint64_t frames_cut_ = 0;
  uint64_t connections_refused_ = 0;
  uint64_t neighbour_losses_ = 0;
  bool finishing_ = false;
};

}  // namespace qnet::qnode

#endif  // QNET_EMULATOR_QNODE_NODE_DAEMON_H_
