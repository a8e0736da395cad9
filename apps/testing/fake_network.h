// A two-node stand-in for the transport service behind AppClient, for app
// tests. It models kept end-to-end pairs exactly: a Werner pair of fidelity F
// (w = (4F-1)/3) is the Bell-state mixture (w + (1-w)/4) PHI_PLUS + (1-w)/4
// each of the other three, so each pair is drawn as one pure Bell state and
// every qubit operation (gates, measurements at any XZ angle, Bell
// measurements, PHYS-M2/M5/M7 conventions) runs on a small state vector.
// Outcome statistics are therefore those of the Werner state, not an
// approximation.
//
// Transport behaviour: Bind/Connect/Close/Send/qubit operations as in
// transport/transport.h; pairs are generated while the connection is open
// and both ends hold fewer than `window` unreleased pair halves; events are
// queued and delivered by Run() (never inside Send, APP-C2), in one FIFO for
// both nodes. `expire_every` > 0 makes every k-th pair expire at both ends
// right after delivery (PairExpired), to exercise the apps' expiry paths.
//
// Measure pairs (Qos type PAIR_TYPE_MEASURE, TRN-M1..M3): each end's qubit is
// measured at once in its own basis (fixed Z/X/Y, or XZ with the QoS's
// z_probability, default 1/2, drawn per end and pair) and the Pair event
// carries kept=false, basis and the raw outcome (PHI_PLUS frame: equal bases
// give equal bits but for the Werner noise). No window applies: Run()
// generates `measure_batch` more pairs whenever its queue runs empty, until
// Qos.pairs pairs (then Closed DONE at both ends) or the connection closes.
// Pair time stamps are pair_id * pair_interval_ns.
#ifndef QNET_APPS_TESTING_FAKE_NETWORK_H_
#define QNET_APPS_TESTING_FAKE_NETWORK_H_

#include <complex>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/lib/app_client.h"
#include "stack/random.h"

namespace qnet::apps::testing {

// Pure state of a few qubits, addressed by handle.
class StateVector {
 public:
  int Add();  // a fresh |0>
  void Apply(int q, const std::complex<double> m[2][2]);
  void Cnot(int control, int target);
  // Measures in Z with uniform `u` in [0, 1) and removes the qubit.
  uint32_t MeasureAndRemove(int q, double u);
  size_t size() const { return qubits_.size(); }

 private:
  int Position(int q) const;
  std::vector<int> qubits_;  // position -> handle
  std::vector<std::complex<double>> amp_{1.0};
  int next_ = 1;
};

class FakeNetwork {
 public:
  // Pairs of fidelity `fidelity` (Werner); `seed` for the pairs and outcomes.
  FakeNetwork(double fidelity, uint64_t seed);
  ~FakeNetwork();

  // The client of node `name` ("a" or any other name; two nodes at most).
  AppClient* Client(const std::string& name);
  // Delivers queued events until none is left; returns how many.
  size_t Run(size_t limit = 10'000'000);

  void set_expire_every(uint64_t k) { expire_every_ = k; }
  void set_measure_batch(uint32_t n) { measure_batch_ = n; }
  void set_pair_interval_ns(uint64_t ns) { pair_interval_ns_ = ns; }
  uint64_t pairs_generated() const { return pairs_generated_; }
  size_t live_qubits() const { return state_.size(); }
  uint64_t errors() const { return errors_; }
  const std::string& last_error() const { return last_error_; }

 private:
  class NodeClient;
  struct Connection;
  struct Socket {
    std::string node;
    uint32_t port = 0;
  };
  struct Qubit {
    int handle = 0;
    std::string node;
    uint64_t connection = 0;  // local connection id, 0 for allocated qubits
  };

  void Handle(const std::string& node, const app::v1::AppRequest& request);
  app::v1::Reply Dispatch(const std::string& node, const app::v1::AppRequest& request);
  void Post(const std::string& node, uint64_t request_id, app::v1::AppEvent event);
  // An event caused by the request being handled: queued after its Reply.
  void Cause(const std::string& node, uint64_t request_id, app::v1::AppEvent event);
  void Generate();
  // One batch of measure pairs per open measure connection; false if none.
  bool GenerateMeasured();
  void Close(uint64_t connection, app::v1::CloseReason local_reason);
  void AddWernerPair(double w, int handles[2]);
  uint32_t Measure(int handle, physical::v1::Basis basis, double angle);
  Qubit* Find(const std::string& node, const app::v1::QubitRef& q);
  void Forget(const std::string& node, const app::v1::QubitRef& q);

  double fidelity_;
  Rng rng_;
  StateVector state_;
  std::map<std::string, std::unique_ptr<NodeClient>> clients_;
  std::deque<std::pair<std::string, app::v1::AppEvent>> queue_;
  std::vector<std::pair<std::string, app::v1::AppEvent>> pending_;
  std::map<uint64_t, Socket> sockets_;
  std::map<uint64_t, std::shared_ptr<Connection>> connections_;  // local id -> shared state
  std::map<std::pair<std::string, std::pair<uint64_t, uint64_t>>, Qubit> qubits_;
  uint64_t next_id_ = 1;
  uint64_t pairs_generated_ = 0;
  uint64_t expire_every_ = 0;
  uint32_t measure_batch_ = 256;
  uint64_t pair_interval_ns_ = 1'000'000;
  uint64_t errors_ = 0;
  std::string last_error_;
};

}  // namespace qnet::apps::testing

#endif  // QNET_APPS_TESTING_FAKE_NETWORK_H_
