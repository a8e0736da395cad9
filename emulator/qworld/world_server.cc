#include "emulator/qworld/world_server.h"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace qnet::qworld {
namespace {

using physical::v1::ErrorCode;
using physical::v1::NodeToWorld;
using physical::v1::WorldToNode;
using results::v1::DropReason;

class WorldCore : public PhysicsCore {
 public:
  WorldCore(const Topology& topology, Rng rng, world::World::Output* output,
            world::WorldOptions options)
      : world_(topology, rng, output, options) {}
  void Handle(const std::string& node, const NodeToWorld& request, Time now) override {
    world_.Handle(node, request, now);
  }

 private:
  world::World world_;
};

const char* BodyName(const WorldToNode& m) {
  switch (m.body_case()) {
    case WorldToNode::kHelloAck:
      return "HelloAck";
    case WorldToNode::kStart:
      return "Start";
    case WorldToNode::kHerald:
      return "Herald";
    case WorldToNode::kMeasureResult:
      return "MeasureResult";
    case WorldToNode::kBellMeasureResult:
      return "BellMeasureResult";
    case WorldToNode::kError:
      return "Error";
    case WorldToNode::kStop:
      return "Stop";
    default:
      return "empty message";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorldServer>> WorldServer::Create(EventRuntime* runtime,
                                                                 Topology topology,
                                                                 WorldServerOptions options,
                                                                 PhysicsCoreFactory core) {
  if (runtime->epoch_set())
    return absl::FailedPreconditionError("the runtime's epoch is already set");
  if (topology.nodes.empty()) return absl::InvalidArgumentError("the topology has no nodes");
  if (options.socket_path.empty() && options.listen_tcp.empty()) {
    return absl::InvalidArgumentError("qworld needs a socket path or a TCP address to listen on");
  }
  std::unique_ptr<WorldServer> server(
      new WorldServer(runtime, std::move(topology), std::move(options)));
  if (absl::Status s = server->Init(std::move(core)); !s.ok()) return s;
  return server;
}

WorldServer::WorldServer(EventRuntime* runtime, Topology topology, WorldServerOptions options)
    : runtime_(runtime), topology_(std::move(topology)), options_(std::move(options)) {}

WorldServer::~WorldServer() {
  // Streams and timers first: their callbacks point here.
  connections_.clear();
  unix_listener_.reset();
  tcp_listener_.reset();
  if (tracer_ != nullptr) tracer_->Flush();
}

absl::Status WorldServer::Init(PhysicsCoreFactory core) {
  duration_s_ = options_.duration_s.value_or(topology_.duration_s);
  if (!(duration_s_ > 0))
    return absl::InvalidArgumentError(
        absl::StrCat("run duration must be > 0 s, got ", duration_s_));
  if (!(topology_.time_dilation > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time dilation must be > 0, got ", topology_.time_dilation));
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.out_dir.empty() ? "." : options_.out_dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create ", options_.out_dir, ": ", ec.message()));
  const std::string trace_path = (options_.out_dir.empty() ? "." : options_.out_dir) +
                                 (options_.binary_trace ? "/qworld.pb" : "/qworld.jsonl");
  tracer_ = std::make_unique<JsonLinesTracer>(
      trace_path, "qworld", runtime_,
      options_.binary_trace ? JsonLinesTracer::Format::kBinary
                            : JsonLinesTracer::Format::kJsonLines);
  if (!tracer_->ok()) return absl::InternalError(absl::StrCat("cannot write ", trace_path));

  const Rng root(options_.seed.value_or(topology_.seed));
  if (core == nullptr) {
    world::WorldOptions world_options;
    // PHYS-B4a: wall time converted to emulated time.
    world_options.max_start_lag = options_.max_start_lag_wall / topology_.time_dilation;
    core = [world_options](const Topology& t, Rng rng, world::World::Output* out) {
      return std::make_unique<WorldCore>(t, std::move(rng), out, world_options);
    };
  }
  core_ = core(topology_, root.Fork("qworld"), this);

  for (const LinkSpec& link : topology_.links) link_a_[link.name] = link.a;
  delivery_timer_ = runtime_->CreateTimer([this] { FlushDue(); });
  stop_timer_ = runtime_->CreateTimer([this] { StopRun("the run's duration is over"); });
  auto on_accept = [this](std::unique_ptr<FramedStream> stream) { OnAccept(std::move(stream)); };
  if (!options_.socket_path.empty()) {
    auto listener = StreamListener::Listen(runtime_, "unix:" + options_.socket_path, on_accept);
    if (!listener.ok()) return listener.status();
    unix_listener_ = std::move(*listener);
  }
  if (!options_.listen_tcp.empty()) {
    auto listener = StreamListener::Listen(runtime_, options_.listen_tcp, on_accept);
    if (!listener.ok()) return listener.status();
    tcp_listener_ = std::move(*listener);
  }
  Log(absl::StrCat("listening on ", unix_listener_ ? unix_listener_->address() : "",
                   unix_listener_ && tcp_listener_ ? " and " : "",
                   tcp_listener_ ? tcp_listener_->address() : "", " for ", topology_.nodes.size(),
                   " nodes"));
  return absl::OkStatus();
}

const std::string& WorldServer::unix_address() const {
  static const std::string kNone;
  return unix_listener_ ? unix_listener_->address() : kNone;
}

const std::string& WorldServer::tcp_address() const {
  static const std::string kNone;
  return tcp_listener_ ? tcp_listener_->address() : kNone;
}

void WorldServer::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "qworld: %s\n", line.c_str());
  }
}

std::string WorldServer::Describe(const Connection& c) const {
  return c.node.empty()
             ? absl::StrCat("connection ", c.id, " (", c.stream ? c.stream->peer() : "", ")")
             : absl::StrCat("node ", c.node);
}

void WorldServer::OnAccept(std::unique_ptr<FramedStream> stream) {
  if (finished_) return;
  const uint64_t id = next_connection_++;
  auto connection = std::make_unique<Connection>();
  connection->id = id;
  connection->stream = std::move(stream);
  FramedStream* s = connection->stream.get();
  connections_[id] = std::move(connection);
  s->Start({
      .on_frame = [this, id](std::string payload) { OnFrame(id, payload); },
      .on_oversized =
          [this, id](uint64_t size) {
            ++oversized_frames_;
            auto it = connections_.find(id);
            tracer_->Drop(
                DropReason::DROP_REASON_OVERSIZED_FRAME,
                absl::StrCat(it == connections_.end() ? "a connection" : Describe(*it->second),
                             " sent a frame of ", size, " bytes"));
          },
      .on_closed = [this, id](absl::Status why) { OnClosed(id, why); },
  });
  // PHYS-S8: a peer that never says Hello is closed, counted and traced.
  Connection& c = *connections_[id];
  c.hello_timer = runtime_->CreateWallTimer([this, id] {
    auto it = connections_.find(id);
    if (it == connections_.end() || !it->second->node.empty()) return;
    Connection& c = *it->second;
    const std::string detail =
        absl::StrCat("no Hello within ", absl::FormatDuration(options_.hello_timeout), ": closed");
    Reject(c, physical::v1::ERROR_CODE_UNEXPECTED, detail,
           DropReason::DROP_REASON_UNEXPECTED_FRAME);
    Log(absl::StrCat(Describe(c), ": ", detail));
    c.stream->CloseWhenFlushed([this, id] {
      runtime_->Post([this, id] { OnClosed(id, absl::OkStatus()); });
    });
  });
  c.hello_timer->ArmAfter(options_.hello_timeout);
}

void WorldServer::Reject(Connection& c, ErrorCode code, const std::string& detail,
                         DropReason reason) {
  if (reason == DropReason::DROP_REASON_MALFORMED_FRAME) {
    ++malformed_frames_;
  } else {
    ++unexpected_frames_;
  }
  tracer_->Drop(reason, absl::StrCat(Describe(c), ": ", detail));
  WorldToNode error;
  error.mutable_error()->set_code(code);
  error.mutable_error()->set_detail(detail);
  SendNow(c.id, std::move(error));
}

void WorldServer::OnFrame(uint64_t id, const std::string& payload) {
  auto it = connections_.find(id);
  if (it == connections_.end() || finished_) return;
  Connection& c = *it->second;
  NodeToWorld request;
  if (!request.ParseFromString(payload)) {
    return Reject(c, physical::v1::ERROR_CODE_MALFORMED,
                  absl::StrCat("a ", payload.size(),
                               "-byte frame does not parse as qnet.physical.v1.NodeToWorld"),
                  DropReason::DROP_REASON_MALFORMED_FRAME);
  }
  if (c.node.empty()) {
    if (!request.has_hello()) {
      return Reject(c, physical::v1::ERROR_CODE_UNEXPECTED, "the first frame must be Hello",
                    DropReason::DROP_REASON_UNEXPECTED_FRAME);
    }
    return OnHello(c, request);
  }
  if (request.has_hello()) {
    return Reject(c, physical::v1::ERROR_CODE_UNEXPECTED, "Hello repeated on a connection",
                  DropReason::DROP_REASON_UNEXPECTED_FRAME);
  }
  if (request.has_bye()) {
    c.said_bye = true;
    Log(absl::StrCat("node ", c.node, " said bye", request.bye().reason().empty() ? "" : ": ",
                     request.bye().reason()));
  }
  if (stopped_) {
    if (c.said_bye) CheckAllLeft();
    return;
  }
  ++requests_;
  core_->Handle(c.node, request, runtime_->Now());
}

void WorldServer::OnHello(Connection& c, const NodeToWorld& request) {
  const std::string& name = request.hello().node();
  auto bound = node_connection_.find(name);
  if (bound != node_connection_.end()) {
    return Reject(c, physical::v1::ERROR_CODE_UNEXPECTED,
                  absl::StrCat("node '", name, "' is already connected"),
                  DropReason::DROP_REASON_UNEXPECTED_FRAME);
  }
  // Bind tentatively so that World's answer (HelloAck or Error) reaches this connection.
  node_connection_[name] = c.id;
  hello_node_ = name;
  hello_acked_ = false;
  ++requests_;
  core_->Handle(name, request, runtime_->Now());
  hello_node_.clear();
  if (!hello_acked_) {
    node_connection_.erase(name);
    ++unexpected_frames_;
    Log(absl::StrCat("connection ", c.id, " refused: Hello for '", name, "'"));
    return;
  }
  c.node = name;
  said_hello_.insert(name);
  Log(absl::StrCat("node ", name, " connected (", said_hello_.size(), "/", topology_.nodes.size(),
                   ")"));
  if (started_) {
    SendStart(c.id);
  } else {
    MaybeStart();
  }
}

void WorldServer::OnClosed(uint64_t id, const absl::Status& why) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  std::unique_ptr<Connection> c = std::move(it->second);
  connections_.erase(it);
  if (!c->node.empty()) {
    auto bound = node_connection_.find(c->node);
    if (bound != node_connection_.end() && bound->second == id) node_connection_.erase(bound);
    if (!c->said_bye || !why.ok()) {
      Log(absl::StrCat("node ", c->node, " disconnected", why.ok() ? "" : ": ", why.message()));
    }
    if (!c->said_bye && !stopped_ && !finished_) {
      // A node that vanished ends its session as if it had said Bye (PHYS-S3):
      // its qubits are discarded and it may say Hello again.
      NodeToWorld bye;
      bye.set_version(1);
      bye.mutable_bye()->set_reason("connection closed");
      core_->Handle(c->node, bye, runtime_->Now());
    }
  }
  // The stream is inside its own callback: destroy it on the next loop turn.
  runtime_->Post([c = std::shared_ptr<Connection>(std::move(c))] {});
  if (finished_) return;
  if (stopped_) return CheckAllLeft();
  if (started_ && node_connection_.empty()) {
    Abort(absl::UnavailableError("every node disconnected before the end of the run"));
  }
}

void WorldServer::Deliver(const std::string& node, WorldToNode message, Time at) {
  if (message.has_hello_ack() && node == hello_node_) hello_acked_ = true;
  auto bound = node_connection_.find(node);
  if (bound == node_connection_.end() || stopped_ || finished_) {
    ++deliveries_lost_;
    if (!stopped_ && !finished_) {
      tracer_->Drop(
          DropReason::DROP_REASON_NO_CONSUMER,
          absl::StrCat(BodyName(message), " for node '", node, "', which is not connected"));
    }
    return;
  }
  const Time now = runtime_->Now();
  if (at <= now && (pending_.empty() || pending_.begin()->first.first > at.nanos())) {
    SendNow(bound->second, std::move(message));
    return;
  }
  const Key key{at.nanos(), next_seq_++};
  auto [it, inserted] = pending_.emplace(key, Pending{bound->second, std::move(message)});
  if (it == pending_.begin()) delivery_timer_->ArmAt(at);
}

void WorldServer::Record(results::v1::TraceRecord record) { tracer_->Record(std::move(record)); }

void WorldServer::SendNow(uint64_t id, WorldToNode message) {
  auto it = connections_.find(id);
  if (it == connections_.end() || !it->second->stream->open()) {
    ++deliveries_lost_;
    return;
  }
  if (message.version() == 0) message.set_version(1);
  if (message.has_herald() && message.herald().outcome() == physical::v1::OUTCOME_SUCCESS) {
    auto a = link_a_.find(message.herald().link());  // RES-1b: pairs counted at the a end
    if (a != link_a_.end() && a->second == it->second->node) ++link_pairs_[a->first];
  }
  if (it->second->stream->Send(message).ok()) {
    ++deliveries_sent_;
  } else {
    ++deliveries_lost_;
  }
}

void WorldServer::FlushDue() {
  const int64_t now = runtime_->Now().nanos();
  while (!pending_.empty() && pending_.begin()->first.first <= now) {
    auto node = pending_.extract(pending_.begin());
    SendNow(node.mapped().connection, std::move(node.mapped().message));
  }
  if (!pending_.empty()) delivery_timer_->ArmAt(Time::FromNanos(pending_.begin()->first.first));
}

void WorldServer::SendStart(uint64_t id) {
  WorldToNode start;
  start.mutable_start()->set_epoch_monotonic_ns(static_cast<uint64_t>(epoch_ns_));
  start.mutable_start()->set_time_dilation(topology_.time_dilation);
  SendNow(id, std::move(start));
}

void WorldServer::MaybeStart() {
  if (started_ || stopped_) return;
  for (const NodeSpec& node : topology_.nodes) {
    if (!said_hello_.contains(node.name)) return;
  }
  epoch_ns_ = MonotonicNanos() + absl::ToInt64Nanoseconds(options_.start_delay);
  if (absl::Status s = runtime_->SetEpoch(epoch_ns_, topology_.time_dilation); !s.ok()) {
    return Abort(absl::InternalError(absl::StrCat("cannot start: ", s.message())));
  }
  started_ = true;
  for (const auto& [name, id] : node_connection_) SendStart(id);
  progress_timer_ = runtime_->CreateWallTimer([this] {
    WriteProgress();
    progress_timer_->ArmAfter(absl::Milliseconds(250));
  });
  progress_timer_->ArmAfter(absl::Milliseconds(250));
  stop_timer_->ArmAt(Time::FromSeconds(duration_s_ + options_.grace_s));
  Log(absl::StrFormat("start: %d nodes, epoch %d ns (monotonic), time dilation %g, duration %g s",
                      topology_.nodes.size(), epoch_ns_, topology_.time_dilation, duration_s_));
}

void WorldServer::StopRun(const std::string& reason) {
  if (stopped_) return;
  if (started_) FlushDue();
  stopped_ = true;
  deliveries_lost_ += pending_.size();
  pending_.clear();
  delivery_timer_->Cancel();
  stop_timer_->Cancel();
  if (progress_timer_) progress_timer_->Cancel();
  WriteProgress();
  WorldToNode stop;
  stop.mutable_stop()->set_reason(reason);
  for (const auto& [name, id] : node_connection_) SendNow(id, stop);
  Log(absl::StrFormat(
      "stop at %.6f s emulated: %s (%d requests, %d deliveries sent, %d not delivered)",
      runtime_->Now().seconds(), reason, requests_, deliveries_sent_, deliveries_lost_));
  tracer_->Flush();
  leave_timer_ = runtime_->CreateWallTimer([this] {
    std::string missing;
    for (const auto& [id, c] : connections_) {
      if (!c->node.empty() && !c->said_bye)
        absl::StrAppend(&missing, missing.empty() ? "" : ", ", c->node);
    }
    Log(absl::StrCat("nodes still connected after ", absl::FormatDuration(options_.stop_timeout),
                     ": ", missing));
    Finish(end_status_);
  });
  leave_timer_->ArmAfter(options_.stop_timeout);
  CheckAllLeft();
}

void WorldServer::WriteProgress() {
  if (!started_) return;
  results::v1::RunProgress progress;
  progress.set_emulated_ns(static_cast<uint64_t>(runtime_->Now().nanos()));
  for (const LinkSpec& link : topology_.links) {
    results::v1::NamedCount* c = progress.add_link_pairs();
    c->set_name(link.name);
    c->set_count(link_pairs_[link.name]);
  }
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(progress, &json).ok()) return;
  const std::string dir = options_.out_dir.empty() ? "." : options_.out_dir;
  const std::string tmp = dir + "/.progress.json.tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "we");
  if (f == nullptr) return;
  const bool written = std::fwrite(json.data(), 1, json.size(), f) == json.size();
  if (std::fclose(f) == 0 && written) std::rename(tmp.c_str(), (dir + "/progress.json").c_str());
}

void WorldServer::CheckAllLeft() {
  if (!stopped_ || finished_) return;
  for (const auto& [id, c] : connections_) {
    if (!c->node.empty() && !c->said_bye) return;
  }
  Finish(end_status_);
}

void WorldServer::Abort(absl::Status why) {
  if (finished_) return;
  end_status_ = why;
  StopRun(std::string(why.message()));
  Finish(std::move(why));
}

void WorldServer::Finish(absl::Status why) {
  if (finished_) return;
  finished_ = true;
  if (leave_timer_) leave_timer_->Cancel();
  tracer_->Flush();
  // Let queued frames (Stop, errors) reach the nodes, for a bounded time.
  auto remaining = std::make_shared<size_t>(0);
  auto done = [this, why](void) {
    if (flush_timer_ == nullptr) return;
    flush_timer_.reset();
    Log(why.ok() ? "done" : absl::StrCat("ended: ", why.message()));
    if (on_finished_) on_finished_(why);
  };
  flush_timer_ = runtime_->CreateWallTimer(done);
  for (auto& [id, c] : connections_) {
    if (c->stream == nullptr || !c->stream->open()) continue;
    ++*remaining;
    c->stream->CloseWhenFlushed([remaining, done] {
      if (--*remaining == 0) done();
    });
  }
  if (*remaining == 0) {
    flush_timer_->ArmAfter(absl::ZeroDuration());
  } else {
    flush_timer_->ArmAfter(absl::Milliseconds(500));
  }
}

}  // namespace qnet::qworld
