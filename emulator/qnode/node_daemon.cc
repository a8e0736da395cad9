#include "emulator/qnode/node_daemon.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace qnet::qnode {
namespace {

using results::v1::DropReason;

// Frames released while a neighbour is not connected yet are kept up to this many.
constexpr size_t kMaxWaitingFrames = 4096;

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParsePeers(
    const std::vector<std::string>& values) {
  std::map<std::string, std::string> peers;
  for (const std::string& value : values) {
    for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      const size_t eq = item.find('=');
      if (eq == absl::string_view::npos || eq == 0 || eq + 1 == item.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--peer '", item, "': expected NEIGHBOUR=HOST:PORT"));
      }
      const std::string name(item.substr(0, eq));
      if (absl::Status s = ParseStreamAddress(std::string(item.substr(eq + 1))).status(); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--peer '", item, "': ", s.message()));
      }
      if (!peers.emplace(name, std::string(item.substr(eq + 1))).second) {
        return absl::InvalidArgumentError(absl::StrCat("--peer names '", name, "' twice"));
      }
    }
  }
  return peers;
}

absl::StatusOr<std::unique_ptr<NodeDaemon>> NodeDaemon::Create(EventRuntime* runtime,
                                                               Topology topology,
                                                               NodeDaemonOptions options) {
  if (runtime->epoch_set())
    return absl::FailedPreconditionError("the runtime's epoch is already set");
  std::unique_ptr<NodeDaemon> daemon(
      new NodeDaemon(runtime, std::move(topology), std::move(options)));
  if (absl::Status s = daemon->Init(); !s.ok()) return s;
  return daemon;
}

NodeDaemon::NodeDaemon(EventRuntime* runtime, Topology topology, NodeDaemonOptions options)
    : runtime_(runtime), topology_(std::move(topology)), options_(std::move(options)) {}

NodeDaemon::~NodeDaemon() {
  connections_.clear();
  neighbours_.clear();
  if (tracer_ != nullptr) tracer_->Flush();
}

void NodeDaemon::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "qnode %s: %s\n", options_.node.c_str(), line.c_str());
  }
}

const std::string& NodeDaemon::listen_address() const {
  static const std::string kNone;
  return listener_ ? listener_->address() : kNone;
}

absl::Status NodeDaemon::Init() {
  const std::string& me = options_.node;
  if (topology_.FindNode(me) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("node '", me, "' is not in the topology ", topology_.source));
  }
  duration_s_ = options_.duration_s.value_or(topology_.duration_s);
  if (!(duration_s_ > 0))
    return absl::InvalidArgumentError(
        absl::StrCat("run duration must be > 0 s, got ", duration_s_));
  for (const auto& [name, address] : options_.peers) {
    if (topology_.LinkBetween(me, name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--peer ", name, ": no link joins ", me, " and ", name));
    }
  }

  const std::string out = options_.out_dir.empty() ? "." : options_.out_dir;
  std::error_code ec;
  std::filesystem::create_directories(out + "/nodes", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", out, "/nodes: ", ec.message()));
  const std::string trace_path =
      absl::StrCat(out, "/nodes/", me, options_.binary_trace ? ".pb" : ".jsonl");
  tracer_ = std::make_unique<JsonLinesTracer>(trace_path, me, runtime_,
                                              options_.binary_trace
                                                  ? JsonLinesTracer::Format::kBinary
                                                  : JsonLinesTracer::Format::kJsonLines);
  if (!tracer_->ok()) return absl::InternalError(absl::StrCat("cannot write ", trace_path));

  node::QworldClient::Callbacks callbacks;
  callbacks.on_hello_ack = [this](const physical::v1::HelloAck& ack) {
    Log(absl::StrCat("qworld accepted the node (", ack.memories(), " memories)"));
  };
  callbacks.on_rejected = [this](const physical::v1::Error& error) {
    Finish(absl::StrCat("qworld refused the node: ", physical::v1::ErrorCode_Name(error.code()),
                        ": ", error.detail()),
           1);
  };
  callbacks.on_start = [this](const physical::v1::Start& start) { OnQworldStart(start); };
  callbacks.on_stop = [this](const physical::v1::Stop& stop) {
    Finish(absl::StrCat("qworld: ", stop.reason()), 0);
  };
  callbacks.on_closed = [this](absl::Status why) {
    if (!finishing_)
      Finish(absl::StrCat("lost the connection to qworld", why.ok() ? "" : ": ", why.message()), 1);
  };
  qworld_ = std::make_unique<node::QworldClient>(me, tracer_.get(), std::move(callbacks));

  node::Node::Env env;
  env.runtime = runtime_;
  env.physical = qworld_.get();
  env.tracer = tracer_.get();
  env.send = [this](const std::string& neighbour, const wire::v1::Frame& frame) {
    SendToNeighbour(neighbour, frame);
  };
  const double dilation = std::max(topology_.time_dilation, 1e-9);
  env.link_margin = options_.link_margin_wall / dilation;
  env.min_hello_interval = options_.hello_interval_wall / dilation;  // NET-R-6a
  env.min_dead_interval = options_.dead_interval_wall / dilation;
  const Rng root(options_.seed.value_or(topology_.seed));
  node_ = std::make_unique<node::Node>(topology_, me, std::move(env), root.Fork("node/" + me));
  qworld_->set_listener(node_.get());

  for (const LinkSpec& link : topology_.links) {
    if (link.a != me && link.b != me) continue;
    const std::string name = link.a == me ? link.b : link.a;
    if (neighbours_.contains(name)) continue;  // one connection per neighbour pair
    Neighbour& n = neighbours_[name];
    n.name = name;
    n.link = &link;
    n.dial = link.a == me;
    if (n.dial) {
      auto it = options_.peers.find(name);
      if (it == options_.peers.end()) {
        return absl::InvalidArgumentError(absl::StrCat("no --peer address for neighbour ", name,
                                                       " (link ", link.name, ", which ", me,
                                                       " dials)"));
      }
      n.address = it->second;
    }
    n.sender = std::make_unique<DelayedSender>(
        runtime_, SecondsToDuration(link.delay_s()),
        [this, name](std::string bytes) { Release(neighbours_[name], std::move(bytes)); });
  }

  if (!options_.listen_address.empty()) {
    auto listener = StreamListener::Listen(runtime_, options_.listen_address,
                                           [this](std::unique_ptr<FramedStream> s) {
                                             if (!finishing_) AddConnection(std::move(s), "");
                                           });
    if (!listener.ok()) return listener.status();
    listener_ = std::move(*listener);
  } else {
    for (const auto& [name, n] : neighbours_) {
      if (!n.dial)
        return absl::InvalidArgumentError(
            absl::StrCat("neighbour ", name, " dials this node: --listen is needed"));
    }
  }

  qworld_dialer_ = Dialer::Dial(
      runtime_, options_.qworld_address, options_.connect_timeout,
      [this](absl::StatusOr<std::unique_ptr<FramedStream>> stream) {
        if (!stream.ok()) {
          return Finish(absl::StrCat("cannot reach qworld: ", stream.status().message()), 1);
        }
        Log(absl::StrCat("connected to qworld at ", options_.qworld_address));
        qworld_->Attach(std::move(*stream));
      });
  for (auto& [name, n] : neighbours_) {
    if (n.dial) DialNeighbour(n, /*first=*/true);
  }
  Log(absl::StrCat("up: ", neighbours_.size(), " neighbours, listening on ",
                   listener_ ? listener_->address() : "(nothing)"));
  return absl::OkStatus();
}

void NodeDaemon::DialNeighbour(Neighbour& n, bool first) {
  const std::string name = n.name;
  n.dialer = Dialer::Dial(
      runtime_, n.address, options_.connect_timeout,
      [this, name, first](absl::StatusOr<std::unique_ptr<FramedStream>> stream) {
        Neighbour& n = neighbours_[name];
        if (finishing_) return;
        if (!stream.ok()) {
          // At start a neighbour that never answers ends the run; later the
          // node keeps dialling until the run ends (LINK-W9).
          if (first) {
            return Finish(
                absl::StrCat("cannot reach neighbour ", name, ": ", stream.status().message()),
                1);
          }
          Log(absl::StrCat("neighbour ", name, " still unreachable (", stream.status().message(),
                           "); dialling again"));
          return DialNeighbour(n, false);
        }
        n.dialer.reset();
        const uint64_t id = AddConnection(std::move(*stream), name);
        PeerConnection& c = connections_[id];
        SendHello(c.stream.get());
        Bind(c, n);
      });
}

void NodeDaemon::OnNeighbourLost(Neighbour& n, const std::string& why) {
  n.connection = 0;
  if (finishing_) return;
  ++neighbour_losses_;
  Log(absl::StrCat("neighbour ", n.name, " disconnected", why.empty() ? "" : ": ", why,
                   n.dial ? "; dialling again" : "; waiting for it to dial again"));
  node_->OnLinkDown(n.link->name);  // NET-R-3: frames may have been lost with it
  if (n.dial && n.dialer == nullptr) DialNeighbour(n, false);
}

void NodeDaemon::OnQworldStart(const physical::v1::Start& start) {
  if (absl::Status s = runtime_->SetEpoch(static_cast<int64_t>(start.epoch_monotonic_ns()),
                                          start.time_dilation());
      !s.ok()) {
    return Finish(absl::StrCat("bad Start from qworld: ", s.message()), 1);
  }
  Log(absl::StrFormat("start: epoch %d ns (monotonic), time dilation %g, duration %g s",
                      start.epoch_monotonic_ns(), start.time_dilation(), duration_s_));
  if (!options_.app_socket.empty()) {
    std::error_code ec;
    std::filesystem::remove(options_.app_socket, ec);  // a stale socket of an earlier run
    absl::StatusOr<std::unique_ptr<AppServer>> server =
        AppServer::Start(runtime_, options_.app_socket, node_->transport(), tracer_.get());
    if (!server.ok()) {
      return Finish(absl::StrCat("cannot serve apps on ", options_.app_socket, ": ",
                                 server.status().message()),
                    1);
    }
    app_server_ = std::move(*server);
    Log(absl::StrCat("serving apps on ", options_.app_socket));
  }
  for (const EventSpec& event : topology_.events) {
    auto timer = runtime_->CreateTimer([this, &event] { CutLinks(event); });
    timer->ArmAt(Time::FromSeconds(event.at_s));
    event_timers_.push_back(std::move(timer));
  }
  start_timer_ = runtime_->CreateTimer([this] { node_->Start(); });
  start_timer_->ArmAt(Time::Zero());
  duration_timer_ = runtime_->CreateTimer([this] { node_->Stop(); });
  duration_timer_->ArmAt(Time::FromSeconds(duration_s_));
  end_timer_ =
      runtime_->CreateTimer([this] { Finish("the run is over and qworld sent no Stop", 0); });
  end_timer_->ArmAt(Time::FromSeconds(duration_s_ + options_.grace_s));
}

void NodeDaemon::CutLinks(const EventSpec& event) {
  for (const LinkSpec& link : topology_.links) {
    if (link.a != options_.node && link.b != options_.node) continue;
    const bool hit = event.kind == EventKind::kCutLink
                         ? link.name == event.target
                         : (link.a == event.target || link.b == event.target);
    if (!hit) continue;
    const std::string neighbour = link.a == options_.node ? link.b : link.a;
    if (!cut_.insert(neighbour).second) continue;
    Log(absl::StrCat("link ", link.name, " to ", neighbour, " is cut (event at ", event.at_s,
                     " s)"));
    node_->OnLinkDown(link.name);
  }
}

bool NodeDaemon::CutDrop(const std::string& neighbour, const char* direction) {
  if (!cut_.contains(neighbour)) return false;
  ++frames_cut_;
  auto it = neighbours_.find(neighbour);
  tracer_->Drop(DropReason::DROP_REASON_NO_CONSUMER,
                absl::StrCat("frame ", direction, " ", neighbour, " lost: the link is cut"),
                it != neighbours_.end() ? it->second.link->name : "");
  return true;
}

void NodeDaemon::SendToNeighbour(const std::string& neighbour, const wire::v1::Frame& frame) {
  if (CutDrop(neighbour, "to")) return;
  auto it = neighbours_.find(neighbour);
  if (it == neighbours_.end()) {
    ++frames_lost_;
    tracer_->Drop(DropReason::DROP_REASON_UNKNOWN_LINK,
                  absl::StrCat("frame for ", neighbour, ", not a neighbour"));
    return;
  }
  it->second.sender->SendFrame(frame);
}

void NodeDaemon::Release(Neighbour& n, std::string bytes) {
  if (n.connection != 0) {
    auto it = connections_.find(n.connection);
    if (it != connections_.end() && it->second.stream->SendBytes(bytes).ok()) return;
  } else if (n.waiting.size() < kMaxWaitingFrames && !finishing_) {
    n.waiting.push_back(std::move(bytes));
    return;
  }
  ++frames_lost_;
  tracer_->Drop(DropReason::DROP_REASON_NO_CONSUMER,
                absl::StrCat("frame to ", n.name,
                             " lost: ", n.connection == 0 ? "not connected" : "connection closed"),
                n.link->name);
}

uint64_t NodeDaemon::AddConnection(std::unique_ptr<FramedStream> stream,
                                   const std::string& neighbour) {
  const uint64_t id = next_connection_++;
  PeerConnection& c = connections_[id];
  c.id = id;
  c.stream = std::move(stream);
  c.neighbour = neighbour;
  c.stream->Start({
      .on_frame = [this, id](std::string payload) { OnPeerFrame(id, payload); },
      .on_oversized = [this, id](uint64_t size) { OnPeerOversized(id, size); },
      .on_closed = [this, id](absl::Status why) { OnPeerClosed(id, why); },
  });
  // LINK-W10: a peer that says nothing is not kept forever.
  c.hello_timer = runtime_->CreateWallTimer([this, id] {
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second.hello_seen) return;
    RefusePeer(it->second, wire::v1::FRAME_ERROR_CODE_UNEXPECTED,
               absl::StrCat("no Hello within ", absl::FormatDuration(options_.hello_timeout)));
  });
  c.hello_timer->ArmAfter(options_.hello_timeout);
  return id;
}

void NodeDaemon::SendHello(FramedStream* stream) {
  wire::v1::Frame hello;
  hello.set_version(1);
  hello.set_from_node(options_.node);
  hello.mutable_hello()->set_node(options_.node);
  (void)stream->Send(hello);
}

void NodeDaemon::Bind(PeerConnection& c, Neighbour& n) {
  n.connection = c.id;
  ++n.connections;
  Log(absl::StrCat("neighbour ", n.name, n.connections > 1 ? " reconnected (" : " connected (",
                   c.stream->peer(), ")"));
  while (!n.waiting.empty()) {
    (void)c.stream->SendBytes(n.waiting.front());
    n.waiting.pop_front();
  }
}

void NodeDaemon::RefusePeer(PeerConnection& c, wire::v1::FrameErrorCode code,
                            const std::string& detail) {
  ++connections_refused_;
  if (c.hello_timer) c.hello_timer->Cancel();
  tracer_->Drop(code == wire::v1::FRAME_ERROR_CODE_VERSION
                    ? DropReason::DROP_REASON_VERSION_MISMATCH
                    : DropReason::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("connection from ", c.stream->peer(), ": ", detail));
  Log(absl::StrCat("refused connection from ", c.stream->peer(), ": ", detail));
  wire::v1::Frame error;
  error.set_version(1);
  error.set_from_node(options_.node);
  error.mutable_error()->set_code(code);
  error.mutable_error()->set_detail(detail);
  (void)c.stream->Send(error);
  if (!c.neighbour.empty()) {
    auto it = neighbours_.find(c.neighbour);
    if (it != neighbours_.end() && it->second.connection == c.id) {
      OnNeighbourLost(it->second, detail);
    }
  }
  const uint64_t id = c.id;
  c.neighbour.clear();  // its close is no longer the neighbour's
  c.stream->CloseWhenFlushed(
      [this, id] { runtime_->Post([this, id] { connections_.erase(id); }); });
}

void NodeDaemon::OnPeerFrame(uint64_t id, const std::string& payload) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  PeerConnection& c = it->second;
  wire::v1::Frame frame;
  const bool parsed = frame.ParseFromString(payload);
  if (!c.hello_seen) {
    if (!parsed || !frame.has_hello()) {
      return RefusePeer(
          c, parsed ? wire::v1::FRAME_ERROR_CODE_UNEXPECTED : wire::v1::FRAME_ERROR_CODE_MALFORMED,
          "the first frame on a neighbour connection must be Hello");
    }
    return OnPeerHello(c, frame);
  }
  if (!parsed) {
    return node_->OnBadFrame(
        c.neighbour, false,
        absl::StrCat("a ", payload.size(), "-byte frame does not parse as qnet.wire.v1.Frame"));
  }
  if (CutDrop(c.neighbour, "from")) return;
  node_->OnFrame(c.neighbour, frame);
}

void NodeDaemon::OnPeerHello(PeerConnection& c, const wire::v1::Frame& frame) {
  const std::string& name = frame.hello().node();
  if (frame.version() != 1) {
    return RefusePeer(c, wire::v1::FRAME_ERROR_CODE_VERSION,
                      absl::StrCat("Hello with version ", frame.version()));
  }
  if (!frame.from_node().empty() && frame.from_node() != name) {
    return RefusePeer(c, wire::v1::FRAME_ERROR_CODE_UNEXPECTED,
                      absl::StrCat("Hello for '", name, "' sent by '", frame.from_node(), "'"));
  }
  if (!c.neighbour.empty()) {  // dialled: we know whom we called
    if (name != c.neighbour) {
      return RefusePeer(c, wire::v1::FRAME_ERROR_CODE_UNEXPECTED,
                        absl::StrCat("dialled ", c.neighbour, " but '", name, "' answered"));
    }
    c.hello_seen = true;
    c.hello_timer->Cancel();
    return;
  }
  auto it = neighbours_.find(name);
  if (it == neighbours_.end()) {
    return RefusePeer(c, wire::v1::FRAME_ERROR_CODE_UNEXPECTED,
                      absl::StrCat("'", name, "' is not a neighbour of ", options_.node));
  }
  Neighbour& n = it->second;
  if (n.dial) {
    return RefusePeer(c, wire::v1::FRAME_ERROR_CODE_UNEXPECTED,
                      absl::StrCat(options_.node, " dials ", name, ", not the other way round"));
  }
  if (n.connection != 0) {
    // LINK-W9: the neighbour dials only when it lost its connection, so the
    // one held here is dead even if its close has not shown yet; the newer one
    // wins.
    auto old = connections_.find(n.connection);
    if (old != connections_.end()) {
      PeerConnection& o = old->second;
      o.neighbour.clear();
      const uint64_t old_id = o.id;
      o.stream->Close();
      runtime_->Post([this, old_id] { connections_.erase(old_id); });
    }
    OnNeighbourLost(n, "it connected again");
  }
  c.neighbour = name;
  c.hello_seen = true;
  c.hello_timer->Cancel();
  SendHello(c.stream.get());
  Bind(c, n);
}

void NodeDaemon::OnPeerOversized(uint64_t id, uint64_t size) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  PeerConnection& c = it->second;
  if (!c.hello_seen) {
    return RefusePeer(c, wire::v1::FRAME_ERROR_CODE_OVERSIZED,
                      absl::StrCat("first frame of ", size, " bytes instead of Hello"));
  }
  node_->OnBadFrame(c.neighbour, true, absl::StrCat("frame of ", size, " bytes"));
}

void NodeDaemon::OnPeerClosed(uint64_t id, const absl::Status& why) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  const std::string neighbour = it->second.neighbour;
  if (!neighbour.empty()) {
    auto n = neighbours_.find(neighbour);
    if (n != neighbours_.end() && n->second.connection == id) {
      OnNeighbourLost(n->second, std::string(why.message()));
    }
  }
  // Inside the stream's own callback: destroy it on the next loop turn.
  auto stream = std::shared_ptr<FramedStream>(std::move(it->second.stream));
  connections_.erase(it);
  runtime_->Post([stream] {});
}

void NodeDaemon::Shutdown(const std::string& reason, int exit_code) { Finish(reason, exit_code); }

void NodeDaemon::Finish(const std::string& reason, int exit_code) {
  if (finishing_) return;
  finishing_ = true;
  Log(absl::StrCat("stop: ", reason));
  if (start_timer_) start_timer_->Cancel();
  if (duration_timer_) duration_timer_->Cancel();
  if (end_timer_) end_timer_->Cancel();
  qworld_dialer_.reset();
  event_timers_.clear();
  node_->Stop();
  for (auto& [name, n] : neighbours_) {
    n.dialer.reset();
    n.sender->Flush();
  }
  tracer_->Flush();
  auto remaining = std::make_shared<size_t>(1);  // the Bye to qworld
  auto done = [this, exit_code] {
    if (flush_timer_ == nullptr) return;
    flush_timer_.reset();
    tracer_->Flush();
    if (on_finished_) on_finished_(exit_code);
  };
  flush_timer_ = runtime_->CreateWallTimer(done);
  auto one_done = [remaining, done] {
    if (--*remaining == 0) done();
  };
  for (auto& [id, c] : connections_) {
    if (c.stream == nullptr || !c.stream->open()) continue;
    ++*remaining;
    c.stream->CloseWhenFlushed(one_done);
  }
  flush_timer_->ArmAfter(absl::Seconds(1));
  qworld_->Bye(reason, one_done);
}

}  // namespace qnet::qnode
