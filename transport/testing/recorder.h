// A SocketListener that records every event, for transport tests.
#ifndef QNET_TRANSPORT_TESTING_RECORDER_H_
#define QNET_TRANSPORT_TESTING_RECORDER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "transport/transport.h"
#include "transport/transport_layer.h"

namespace qnet::transport::testing {

struct Closed {
  ConnectionId connection;
  CloseReason reason;
  std::string detail;
};

class Recorder : public SocketListener {
 public:
  explicit Recorder(TransportService* t) : t_(t) {}
  void OnConnected(const ConnectionInfo& info) override { connected.push_back(info); }
  void OnClosed(ConnectionId c, CloseReason r, const std::string& d) override {
    closed.push_back({c, r, d});
  }
  void OnPair(const Pair& pair) override {
    pairs.push_back(pair);
    if (on_pair) on_pair(pair);
    if (auto_release && pair.kept)
      release_errors += !t_->Release({pair.connection, pair.pair_id}).ok();
  }
  void OnPairExpired(ConnectionId, uint64_t id, const std::string&) override {
    expired.push_back(id);
  }
  void OnData(ConnectionId, const std::string& bytes) override { data.push_back(bytes); }
  void OnMeasured(uint64_t request, uint32_t result) override { measured[request] = result; }
  void OnBellMeasured(uint64_t request, physical::v1::BellState s) override { bell[request] = s; }

  std::vector<uint64_t> ids() const {
    std::vector<uint64_t> v;
    for (const Pair& p : pairs) v.push_back(p.pair_id);
    return v;
  }

  bool auto_release = true;
  int release_errors = 0;
  std::function<void(const Pair&)> on_pair;
  std::vector<ConnectionInfo> connected;
  std::vector<Closed> closed;
  std::vector<Pair> pairs;
  std::vector<uint64_t> expired;
  std::vector<std::string> data;
  std::map<uint64_t, uint32_t> measured;
  std::map<uint64_t, physical::v1::BellState> bell;

 private:
  TransportService* t_;
};

}  // namespace qnet::transport::testing

#endif  // QNET_TRANSPORT_TESTING_RECORDER_H_
