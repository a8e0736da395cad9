// The end-to-end workload of a node: the topology's <connection> elements
// (specs/topology.md) driven through the node's TransportService, the way an
// application would.
//
//  - The responder (`to`) binds the connection's port at Start (time 0), so
//    the socket exists before any Connect can arrive; one socket per port.
//  - The initiator (`from`) binds a local port (kInitiatorPortBase + the
//    connection's index) and connects at start-s with the connection's QoS.
//  - Kept pairs are held for hold-s, then released (at once when hold-s is 0);
//    measured pairs are counted by outcome. Expiries and closes are counted.
//  - Stop: no further connects; holds in progress still release their pairs.
// Sans-I/O: timers from the injected Runtime; errors go to the Tracer as drops.
#ifndef QNET_EMULATOR_NODE_CONNECTION_WORKLOAD_H_
#define QNET_EMULATOR_NODE_CONNECTION_WORKLOAD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stack/runtime.h"
#include "stack/topology.h"
#include "stack/trace.h"
#include "transport/transport.h"

namespace qnet::node {

inline constexpr uint32_t kFirstAssignedPort = 1000;
inline constexpr uint32_t kInitiatorPortBase = 40000;

// Ports of the topology's listening sockets: a connection's port at `to`, an
// app's port at its `peer` (the counterpart binds, the app's `node` connects).
// Explicit ports are kept; a 0 port becomes the first port from
// kFirstAssignedPort not used at that node, in file order (connections first,
// then apps). Every process computes the same numbers.
struct AssignedPorts {
  std::vector<uint32_t> connections;  // index as Topology::connections
  std::vector<uint32_t> apps;         // index as Topology::apps
};
AssignedPorts AssignPorts(const Topology& topology);

transport::Qos QosOf(const ConnectionSpec& spec);

struct ConnectionCounts {
  bool connected = false;
  uint64_t pairs = 0;  // delivered at this end
  uint64_t kept = 0;
  uint64_t measured = 0;
  uint64_t ones = 0;      // measured outcomes equal to 1
  uint64_t released = 0;  // kept pairs released after their hold
  uint64_t expired = 0;
  std::optional<transport::CloseReason> closed;
  std::string close_detail;
  std::vector<uint64_t> pair_ids;     // in delivery order
  std::vector<uint64_t> expired_ids;  // in report order
};

class ConnectionWorkload : public transport::SocketListener {
 public:
  ConnectionWorkload(const Topology& topology, std::string node, Runtime* runtime,
                     transport::TransportService* transport, Tracer* tracer);
  ~ConnectionWorkload() override;

  void Start();
  void Stop();

  // Counts at this end of the named connection (nullptr if this node is not an end).
  const ConnectionCounts* counts(const std::string& connection_name) const;

  // SocketListener.
  void OnConnected(const transport::ConnectionInfo& info) override;
  void OnClosed(transport::ConnectionId connection, transport::CloseReason reason,
                const std::string& detail) override;
  void OnPair(const transport::Pair& pair) override;
  void OnPairExpired(transport::ConnectionId connection, uint64_t pair_id,
                     const std::string& detail) override;
  void OnData(transport::ConnectionId connection, const std::string& bytes) override;
  void OnMeasured(uint64_t request_id, uint32_t result) override;
  void OnBellMeasured(uint64_t request_id, physical::v1::BellState outcome) override;

 private:
  struct End {
    const ConnectionSpec* spec = nullptr;
    size_t index = 0;
    bool initiator = false;
    uint32_t port = 0;  // the listening port at `to`
    transport::SocketId socket = 0;
    std::optional<transport::ConnectionId> connection;
    ConnectionCounts counts;
  };

  void Connect(End& end);
  End* EndOf(transport::ConnectionId connection);
  void Fail(const std::string& detail);

  const Topology& topology_;
  std::string node_;
  Runtime* runtime_;
  transport::TransportService* transport_;
  Tracer* tracer_;
  std::vector<End> ends_;
  std::map<uint32_t, transport::SocketId> listening_;  // port -> socket
  std::map<transport::ConnectionId, size_t> by_connection_;
  std::vector<std::unique_ptr<Timer>> connect_timers_;
  std::map<uint64_t, std::unique_ptr<Timer>> holds_;
  uint64_t next_hold_ = 1;
  bool stopped_ = false;
};

}  // namespace qnet::node

#endif  // QNET_EMULATOR_NODE_CONNECTION_WORKLOAD_H_
