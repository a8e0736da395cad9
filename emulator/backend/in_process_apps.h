// The sim backend's applications: every <app> of the topology runs its two
// app objects (apps/teleport TeleportApp, apps/chsh ChshApp, apps/qkd
// QkdSession: the same classes the qnet-teleport / qnet-chsh / qnet-qkd
// programs run) inside the simulation, each
// behind an InProcessAppClient that feeds an AppSession (the core of qnode's
// app server) over its node's TransportService.
//
//  - Roles: the app's `node` runs the initiator (teleport sender, chsh a), its
//    `peer` the responder (teleport receiver, chsh b), which binds the app's
//    port (node::AssignPorts); the initiator binds kAppInitiatorPortBase + the
//    app's index.
//  - Both start at the app's start-s. Options from the element: pairs,
//    min-fidelity, and the params window (default 1).
//  - Results: when the run ends, OUT/apps/<name>.json is the reporting side's
//    ResultJson() (teleport: the receiver; chsh: a), the other side's goes to
//    OUT/apps/<name>.<role>.json, as the app programs write them. An app that
//    has not finished is written with "ok": false and the reason.
//  - Randomness: Rng forked from the run's root as "app/<name>/<role>".
//  - qkd (roles a = node, b = peer; a reports): the session parameters from
//    the element's hyphenated params (block-bits, z-probability,
//    sample-fraction, qber-threshold, eps-sec, eps-cor, cascade-passes,
//    key-size, auth-refill-bits; kme-* ignored: no key delivery in the sim;
//    any other is an error naming the element); session name = app name; the
//    pre-shared secret (kQkdPskBytes) from the root's Fork("qkd-psk/<name>").
//    Besides the result files, each end's key stream bytes go to
//    OUT/qkd/<name>.<role>.key (empty without key; specs/topology.md RES-37).
#ifndef QNET_EMULATOR_BACKEND_IN_PROCESS_APPS_H_
#define QNET_EMULATOR_BACKEND_IN_PROCESS_APPS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "apps/lib/app_client.h"
#include "emulator/qnode/app_session.h"
#include "stack/random.h"
#include "stack/runtime.h"
#include "stack/topology.h"
#include "stack/trace.h"
#include "transport/transport.h"

namespace qnet::backend {

inline constexpr uint32_t kAppInitiatorPortBase = 41000;
// A QKD session's pre-shared secret: hash key (8 bytes) and two pads of
// 32768 bits (specs/qkd.md QKD-U*).
inline constexpr size_t kQkdPskBytes = 2 * 32768 / 8 + 8;

// An AppClient whose node is in the same process: requests go to an
// AppSession at once; every event (replies included) reaches the handler on a
// later runtime turn, in order (APP-C2, APP-C3). Never disconnects (APP-C4).
class InProcessAppClient : public apps::AppClient {
 public:
  InProcessAppClient(Runtime* runtime, transport::TransportService* transport, Tracer* tracer);
  ~InProcessAppClient() override;

  void SetHandlers(Handlers handlers) override;
  uint64_t Send(app::v1::AppRequest request) override;

  const qnode::AppSession& session() const { return *session_; }

 private:
  void Deliver();

  Runtime* runtime_;
  Handlers handlers_;
  std::unique_ptr<qnode::AppSession> session_;
  std::deque<app::v1::AppEvent> pending_;
  std::unique_ptr<Timer> timer_;
  uint64_t next_request_id_ = 1;
};

// One side of one app: the app object behind a uniform face.
class SimAppSide {
 public:
  virtual ~SimAppSide() = default;
  virtual void Start() = 0;
  virtual bool done() const = 0;
  virtual absl::Status status() const = 0;
  virtual std::string ResultJson() const = 0;
  // A QKD end's key stream bytes (the key file); "" for other apps.
  virtual std::string KeyBytes() const { return ""; }
};

class InProcessApps {
 public:
  // `transport_of(node)` gives a node's transport service, `tracer_of(node)` its tracer.
  InProcessApps(const Topology& topology, Runtime* runtime, const Rng& root,
                std::function<transport::TransportService*(const std::string&)> transport_of,
                std::function<Tracer*(const std::string&)> tracer_of);
  ~InProcessApps();

  // Checks the app kinds and builds the apps; an error names the element.
  absl::Status Init();
  // Arms each app's start at its start-s.
  void Start();
  // Writes OUT/apps/*.json.
  absl::Status WriteResults(const std::string& out_dir) const;

  size_t size() const { return apps_.size(); }
  bool all_done() const;
  // The reporting side's result JSON of app `name` ("" if unknown).
  std::string ResultJson(const std::string& name) const;

 private:
  struct App {
    const AppSpec* spec = nullptr;
    std::string initiator_role, responder_role;
    bool initiator_reports = true;
    bool qkd = false;  // also writes OUT/qkd/NAME.a.key and NAME.b.key
    std::unique_ptr<InProcessAppClient> initiator_client, responder_client;
    std::unique_ptr<Rng> initiator_rng, responder_rng;
    std::unique_ptr<SimAppSide> initiator, responder;
    std::unique_ptr<Timer> start;
  };

  template <typename AppT, typename OptionsT>
  void MakePairSides(const AppSpec& spec, uint32_t window, uint32_t own_port, uint32_t port,
                     typename OptionsT::Role initiator_role, typename OptionsT::Role responder_role,
                     App* app);

  const Topology& topology_;
  Runtime* runtime_;
  Rng root_;
  std::function<transport::TransportService*(const std::string&)> transport_of_;
  std::function<Tracer*(const std::string&)> tracer_of_;
  std::vector<App> apps_;
};

}  // namespace qnet::backend

#endif  // QNET_EMULATOR_BACKEND_IN_PROCESS_APPS_H_
