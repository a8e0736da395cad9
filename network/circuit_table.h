// CircuitTable: the circuits installed at one node and their signalling
// (specs/network.md sections 2.1, 2.2, 2.5): opening a circuit at the head,
// CircuitSetup / Accept / Refuse hop by hop with labels, depth grants and
// memory reservations, and teardown towards both ends on close, link failure
// or refusal. Private to network/; see circuit_state.h for the shared state.
#ifndef QNET_NETWORK_CIRCUIT_TABLE_H_
#define QNET_NETWORK_CIRCUIT_TABLE_H_

#include <map>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "network/circuit_state.h"
#include "network/router.h"

namespace qnet::network {

class PairStream;

class CircuitTable {
 public:
  CircuitTable(NetworkContext* ctx, LinkStateRouter* router) : ctx_(ctx), router_(router) {}
  void set_stream(PairStream* stream) { stream_ = stream; }

  Circuit* Find(const CircuitKey& key);
  // The circuit a frame names, if it is installed and `neighbour` is its
  // upstream (from_downstream false) or downstream neighbour; else a counted drop.
  Circuit* FindFrom(const std::string& neighbour, const v1::CircuitKey& key, bool from_downstream,
                    const char* what);
  // The circuit whose CREATEs on `link` from `origin` carry `label`.
  Circuit* FindByLabel(const std::string& link, const std::string& origin, uint32_t label);
  std::map<CircuitKey, Circuit>& circuits() { return circuits_; }

  // NetworkService.
  absl::StatusOr<CircuitKey> Open(const CircuitRequest& request);
  void Close(const CircuitKey& key, const std::string& detail);

  void HandleSetup(const std::string& neighbour, const v1::CircuitSetup& setup);
  void HandleAccept(const std::string& neighbour, const v1::CircuitAccept& accept);
  void HandleRefuse(const std::string& neighbour, const v1::CircuitRefuse& refuse);
  void HandleTeardown(const std::string& neighbour, const v1::CircuitTeardown& teardown);

  // Removes the circuit here: frees its pairs, CREATE and reservation,
  // forwards CircuitTeardown to its neighbours other than `except` and not
  // over `failed_link`, and tells the upper layer if this node is an end
  // (NET-C-40 .. NET-C-44).
  void TearDown(CircuitKey key, v1::CircuitError code, const std::string& detail,
                const std::string& failed_link, const std::string& except);
  // A local link went down: every circuit over it is torn down (NET-C-42).
  void OnLinkDown(const std::string& link);

 private:
  using LabelKey = std::tuple<std::string, std::string, uint32_t>;  // (link, origin, label)

  uint32_t Unreserved() const;
  // The largest depth <= `asked` this node can reserve for a circuit that
  // keeps on `sides` sides (NET-C-11a); 0 if not even 1.
  uint32_t Grant(uint32_t asked, uint32_t sides) const;
  uint32_t NextLabel(const std::string& link);
  void Refuse(const std::string& neighbour, const v1::CircuitKey& key, v1::CircuitError code,
              const std::string& detail);
  void Install(Circuit circuit);
  // Removes the state, frees pairs and reservation, cancels the CREATE; no
  // messages or callbacks. Returns the circuit.
  Circuit Uninstall(CircuitKey key);
  void TraceCircuit(const Circuit& c, bool up, v1::CircuitError code, const std::string& detail);
  void OnSetupTimeout(const CircuitKey& key);

  NetworkContext* ctx_;
  LinkStateRouter* router_;
  PairStream* stream_ = nullptr;
  std::map<CircuitKey, Circuit> circuits_;
  std::map<LabelKey, CircuitKey> labels_;
  std::map<std::string, uint32_t> next_label_;  // per link, as its upstream end
  uint64_t next_number_ = 1;
  uint32_t reserved_ = 0;
};

}  // namespace qnet::network

#endif  // QNET_NETWORK_CIRCUIT_TABLE_H_
