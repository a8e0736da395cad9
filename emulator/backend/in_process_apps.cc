#include "emulator/backend/in_process_apps.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "apps/chsh/chsh_app.h"
#include "apps/qkd/qkd_session.h"
#include "apps/teleport/teleport_app.h"
#include "emulator/node/connection_workload.h"

namespace qnet::backend {

InProcessAppClient::InProcessAppClient(Runtime* runtime, transport::TransportService* transport,
                                       Tracer* tracer)
    : runtime_(runtime) {
  timer_ = runtime_->CreateTimer([this] { Deliver(); });
  session_ =
      std::make_unique<qnode::AppSession>(transport, tracer, [this](app::v1::AppEvent event) {
        pending_.push_back(std::move(event));
        if (!timer_->armed()) timer_->ArmAt(runtime_->Now());
      });
}

InProcessAppClient::~InProcessAppClient() {
  session_.reset();  // unbinds its sockets while the client is still whole
  timer_.reset();
}

void InProcessAppClient::SetHandlers(Handlers handlers) { handlers_ = std::move(handlers); }

uint64_t InProcessAppClient::Send(app::v1::AppRequest request) {
  request.set_version(1);
  if (request.request_id() == 0) request.set_request_id(next_request_id_++);
  const uint64_t id = request.request_id();
  session_->Handle(request);
  return id;
}

void InProcessAppClient::Deliver() {
  // Only the events queued so far; those the handlers cause come next turn.
  std::deque<app::v1::AppEvent> batch;
  batch.swap(pending_);
  for (const app::v1::AppEvent& event : batch) {
    if (handlers_.on_event) handlers_.on_event(event);
  }
}

namespace {

template <typename AppT>
class Side : public SimAppSide {
 public:
  template <typename Options>
  Side(apps::AppClient* client, Rng* rng, Options options) : app_(client, rng, options) {}
  void Start() override { app_.Start(); }
  bool done() const override { return app_.done(); }
  absl::Status status() const override { return app_.status(); }
  std::string ResultJson() const override { return app_.ResultJson(); }

 private:
  AppT app_;
};

// One end of a QKD session, with its key store for the key file.
class QkdSide : public SimAppSide {
 public:
  QkdSide(apps::AppClient* client, Rng* rng, qkd::QkdOptions options)
      : session_(client, rng, std::move(options)) {}
  void Start() override { session_.Start(); }
  bool done() const override { return session_.done(); }
  absl::Status status() const override { return session_.status(); }
  std::string ResultJson() const override { return session_.ResultJson(); }
  std::string KeyBytes() const override { return session_.key_store().StreamBytes(); }

 private:
  mutable qkd::QkdSession session_;  // key_store() is not const
};

// The session parameters of a <app kind="qkd"> (hyphenated, as in the
// topology; the launcher passes them as --block_bits=... to qnet-qkd).
absl::Status QkdParams(const Topology& topology, const AppSpec& spec, qkd::QkdOptions* o) {
  for (const auto& [key, value] : spec.params) {
    auto bad = [&](const char* what) {
      return absl::InvalidArgumentError(absl::StrCat(topology.source, ":", spec.line, ": app '",
                                                     spec.name, "': ", key, "=\"", value,
                                                     "\": ", what));
    };
    auto u32 = [&](uint32_t* out, uint32_t min) -> absl::Status {
      uint32_t v = 0;
      if (!absl::SimpleAtoi(value, &v) || v < min)
        return bad(min > 0 ? "not a positive integer" : "not an integer");
      *out = v;
      return absl::OkStatus();
    };
    auto real = [&](double* out, double lo, double hi, bool open_lo) -> absl::Status {
      double v = 0;
      if (!absl::SimpleAtod(value, &v) || !(v <= hi) || (open_lo ? !(v > lo) : !(v >= lo)))
        return bad(
            absl::StrCat("not a number in ", open_lo ? "(" : "[", lo, ", ", hi, "]").c_str());
      *out = v;
      return absl::OkStatus();
    };
    absl::Status s;
    if (key == "block-bits") {
      s = u32(&o->block_bits, 1);
    } else if (key == "z-probability") {
      s = real(&o->z_probability, 0, 1, true);
    } else if (key == "sample-fraction") {
      s = real(&o->sample_fraction, 0, 1, true);
    } else if (key == "qber-threshold") {
      s = real(&o->qber_threshold, 0, 0.5, false);
    } else if (key == "eps-sec") {
      s = real(&o->eps_sec, 0, 1, true);
    } else if (key == "eps-cor") {
      s = real(&o->eps_cor, 0, 1, true);
    } else if (key == "cascade-passes") {
      s = u32(&o->cascade_passes, 1);
    } else if (key == "key-size") {
      s = u32(&o->key_size_bits, 8);
    } else if (key == "auth-refill-bits") {
      s = u32(&o->auth_refill_bits, 0);
    } else if (key == "window") {
      s = u32(&o->window, 1);
      if (s.ok() && o->window > 4096) s = bad("not an integer in [1, 4096]");
    } else if (absl::StartsWith(key, "kme-")) {
      continue;  // key delivery: real processes only
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          topology.source, ":", spec.line, ": app '", spec.name, "': unknown parameter '", key,
          "' for kind qkd (block-bits, z-probability, sample-fraction, qber-threshold, eps-sec, "
          "eps-cor, cascade-passes, key-size, auth-refill-bits, window, kme-*)"));
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// The pre-shared secret of a QKD session: deterministic from the run's seed
// (the launcher draws a random one for real processes).
std::string QkdPsk(const Rng& root, const std::string& name) {
  Rng rng = root.Fork(absl::StrCat("qkd-psk/", name));
  std::string psk(kQkdPskBytes, '\0');
  for (size_t i = 0; i < psk.size(); i += 8) {
    uint64_t word = rng.Next();
    for (size_t j = 0; j < 8 && i + j < psk.size(); ++j, word >>= 8)
      psk[i + j] = static_cast<char>(word & 0xff);
  }
  return psk;
}

uint32_t ParamU32(const AppSpec& spec, const std::string& key, uint32_t fallback) {
  for (const auto& [k, v] : spec.params) {
    uint32_t value = 0;
    if (k == key && absl::SimpleAtoi(v, &value)) return value;
  }
  return fallback;
}

}  // namespace

InProcessApps::InProcessApps(
    const Topology& topology, Runtime* runtime, const Rng& root,
    std::function<transport::TransportService*(const std::string&)> transport_of,
    std::function<Tracer*(const std::string&)> tracer_of)
    : topology_(topology),
      runtime_(runtime),
      root_(root),
      transport_of_(std::move(transport_of)),
      tracer_of_(std::move(tracer_of)) {}

InProcessApps::~InProcessApps() = default;

// Teleport and CHSH take the same options (pairs, min_fidelity, window, role,
// own port, peer node and port): the initiator at the app's node, the
// responder at its peer, each pointing at the other.
template <typename AppT, typename OptionsT>
void InProcessApps::MakePairSides(const AppSpec& spec, uint32_t window, uint32_t own_port,
                                  uint32_t port, typename OptionsT::Role initiator_role,
                                  typename OptionsT::Role responder_role, App* app) {
  OptionsT o;
  o.pairs = spec.pairs;
  o.min_fidelity = spec.min_fidelity;
  o.window = window;
  o.role = initiator_role;
  o.port = own_port;
  o.peer = spec.peer;
  o.peer_port = port;
  app->initiator =
      std::make_unique<Side<AppT>>(app->initiator_client.get(), app->initiator_rng.get(), o);
  o.role = responder_role;
  o.port = port;
  o.peer = spec.node;
  o.peer_port = own_port;
  app->responder =
      std::make_unique<Side<AppT>>(app->responder_client.get(), app->responder_rng.get(), o);
}

absl::Status InProcessApps::Init() {
  const node::AssignedPorts ports = node::AssignPorts(topology_);
  for (size_t i = 0; i < topology_.apps.size(); ++i) {
    const AppSpec& spec = topology_.apps[i];
    transport::TransportService* at_node = transport_of_(spec.node);
    transport::TransportService* at_peer = transport_of_(spec.peer);
    if (at_node == nullptr || at_peer == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(topology_.source, ":", spec.line, ": app '", spec.name, "': unknown node"));
    }
    App app;
    app.spec = &spec;
    const uint32_t port = ports.apps[i];
    const uint32_t own_port = kAppInitiatorPortBase + static_cast<uint32_t>(i);
    const uint32_t window = ParamU32(spec, "window", 1);
    app.initiator_client =
        std::make_unique<InProcessAppClient>(runtime_, at_node, tracer_of_(spec.node));
    app.responder_client =
        std::make_unique<InProcessAppClient>(runtime_, at_peer, tracer_of_(spec.peer));
    if (spec.kind == "teleport") {
      app.initiator_role = "sender";
      app.responder_role = "receiver";
      app.initiator_reports = false;
    } else if (spec.kind == "chsh" || spec.kind == "qkd") {
      app.initiator_role = "a";
      app.responder_role = "b";
      app.initiator_reports = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(topology_.source, ":", spec.line, ": app '", spec.name, "': kind '",
                       spec.kind, "' cannot run in the sim backend (teleport, chsh or qkd)"));
    }
    app.initiator_rng =
        std::make_unique<Rng>(root_.Fork(absl::StrCat("app/", spec.name, "/", app.initiator_role)));
    app.responder_rng =
        std::make_unique<Rng>(root_.Fork(absl::StrCat("app/", spec.name, "/", app.responder_role)));
    if (spec.kind == "teleport") {
      MakePairSides<apps::TeleportApp, apps::TeleportOptions>(
          spec, window, own_port, port, apps::TeleportOptions::Role::kSender,
          apps::TeleportOptions::Role::kReceiver, &app);
    } else if (spec.kind == "qkd") {
      qkd::QkdOptions o;
      if (absl::Status s = QkdParams(topology_, spec, &o); !s.ok()) return s;
      app.qkd = true;
      o.session = spec.name;
      o.pairs = spec.pairs;
      o.min_fidelity = spec.min_fidelity;
      o.psk = QkdPsk(root_, spec.name);
      o.role = qkd::QkdOptions::Role::kAlice;
      o.node = spec.node;
      o.peer = spec.peer;
      o.port = own_port;
      o.peer_port = port;
      app.initiator =
          std::make_unique<QkdSide>(app.initiator_client.get(), app.initiator_rng.get(), o);
      o.role = qkd::QkdOptions::Role::kBob;
      o.node = spec.peer;
      o.peer = spec.node;
      o.port = port;
      o.peer_port = own_port;
      app.responder =
          std::make_unique<QkdSide>(app.responder_client.get(), app.responder_rng.get(), o);
    } else {
      MakePairSides<apps::ChshApp, apps::ChshOptions>(spec, window, own_port, port,
                                                      apps::ChshOptions::Role::kA,
                                                      apps::ChshOptions::Role::kB, &app);
    }
    apps_.push_back(std::move(app));
  }
  return absl::OkStatus();
}

void InProcessApps::Start() {
  for (App& app : apps_) {
    App* a = &app;
    // The responder binds first (same instant, earlier event), so the
    // initiator's Connect finds the port.
    app.start = runtime_->CreateTimer([a] {
      a->responder->Start();
      a->initiator->Start();
    });
    app.start->ArmAt(Time::FromSeconds(app.spec->start_s));
  }
}

bool InProcessApps::all_done() const {
  for (const App& app : apps_)
    if (!app.initiator->done() || !app.responder->done()) return false;
  return true;
}

namespace {

std::string ResultOf(const SimAppSide& side, const AppSpec& spec, const std::string& role) {
  if (side.done()) return side.ResultJson();
  return absl::StrCat(R"({"app": ")", spec.kind, R"(", "role": ")", role,
                      R"(", "ok": false, "error": "the run ended before the app finished"})");
}

}  // namespace

std::string InProcessApps::ResultJson(const std::string& name) const {
  for (const App& app : apps_) {
    if (app.spec->name != name) continue;
    return app.initiator_reports ? ResultOf(*app.initiator, *app.spec, app.initiator_role)
                                 : ResultOf(*app.responder, *app.spec, app.responder_role);
  }
  return "";
}

absl::Status InProcessApps::WriteResults(const std::string& out_dir) const {
  if (apps_.empty()) return absl::OkStatus();
  const std::string dir = out_dir + "/apps";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  auto write = [](const std::string& path, const std::string& json) {
    std::ofstream out(path, std::ios::trunc);
    out << json << "\n";
    out.close();
    return out ? absl::OkStatus() : absl::InternalError(absl::StrCat("cannot write ", path));
  };
  for (const App& app : apps_) {
    const std::string& name = app.spec->name;
    const std::string init = ResultOf(*app.initiator, *app.spec, app.initiator_role);
    const std::string resp = ResultOf(*app.responder, *app.spec, app.responder_role);
    const std::string& main = app.initiator_reports ? init : resp;
    const std::string& other = app.initiator_reports ? resp : init;
    const std::string& other_role = app.initiator_reports ? app.responder_role : app.initiator_role;
    if (absl::Status s = write(absl::StrCat(dir, "/", name, ".json"), main); !s.ok()) return s;
    if (absl::Status s = write(absl::StrCat(dir, "/", name, ".", other_role, ".json"), other);
        !s.ok())
      return s;
    if (!app.qkd) continue;
    // The key files (empty without key): OUT/qkd/NAME.a.key, NAME.b.key.
    const std::string qkd_dir = out_dir + "/qkd";
    std::filesystem::create_directories(qkd_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", qkd_dir, ": ", ec.message()));
    for (const auto& [side, role] : {std::pair{app.initiator.get(), app.initiator_role},
                                     std::pair{app.responder.get(), app.responder_role}}) {
      const std::string path = absl::StrCat(qkd_dir, "/", name, ".", role, ".key");
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      const std::string bytes = side->KeyBytes();
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      out.close();
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
    }
  }
  return absl::OkStatus();
}

}  // namespace qnet::backend
