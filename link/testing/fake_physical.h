// FakeLinkPhysics: a test double of the physical layer for ONE link, on the
// simulator runtime. It implements the heralded-generation contract of
// specs/physical.md / specs/link.md ("Heralded generation") with the analytic
// model of stack/heralding_model.h: the number of attempts until success is
// sampled from a geometric distribution with the injected Rng, no quantum
// state is kept. Measure-directly results are those of a perfect heralded Bell
// state (same basis at both ends: perfectly correlated per the Bell state's
// Pauli correlations; different bases: independent).
//
// Batch numbering follows PHYS-B2/B3: a Generate above the batch the other end
// has waiting supersedes it (that end gets Error{BAD_BATCH, link, batch}); one
// below it is refused with BAD_BATCH. Errors go to the end's error sink.
//
// It also checks what an end does with its memory: a Generate naming a slot
// that holds a kept qubit, or a Free of a slot that holds none, is counted as a
// violation (tests assert none happen).
#ifndef QNET_LINK_TESTING_FAKE_PHYSICAL_H_
#define QNET_LINK_TESTING_FAKE_PHYSICAL_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "stack/sim/simulator.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/topology.h"

namespace qnet::link::testing {

class FakeLinkPhysics {
 public:
  // One generation batch as the fake ran it.
  struct BatchRecord {
    uint64_t batch = 0;
    Time start;  // S: the later Generate's arrival
    Time end;    // the last herald's time_ns
    physical::v1::Outcome outcome = physical::v1::OUTCOME_UNSPECIFIED;
    uint64_t attempts = 0;
    uint32_t pairs = 0;  // successes (PHYS-B17)
    uint64_t queue_id_a = 0, queue_id_b = 0;
    double alpha_a = 0, alpha_b = 0;
    bool slot_a = false, slot_b = false;  // the Generates named a slot
  };
  struct Violations {
    uint64_t generate_slot_in_use = 0;  // Generate named a slot holding a kept qubit
    uint64_t free_empty_slot = 0;       // Free of a slot holding no qubit
    uint64_t repeated_batch = 0;        // two Generates of one end for one batch
    uint64_t other_requests = 0;        // Measure / Gate / BellMeasure (not used by the link layer)
    uint64_t total() const {
      return generate_slot_in_use + free_empty_slot + repeated_batch + other_requests;
    }
  };

  FakeLinkPhysics(sim::Simulator* sim, const LinkSpec& link, Rng rng);
  FakeLinkPhysics(const FakeLinkPhysics&) = delete;
  FakeLinkPhysics& operator=(const FakeLinkPhysics&) = delete;

  // The device of end a (true) or b (false).
  PhysicalService* service(bool side_a) { return &sides_[side_a ? 0 : 1]; }
  void SetHeraldSink(bool side_a, std::function<void(const physical::v1::Herald&)> sink) {
    sides_[side_a ? 0 : 1].sink = std::move(sink);
  }

  void SetErrorSink(bool side_a, std::function<void(const physical::v1::Error&)> sink) {
    sides_[side_a ? 0 : 1].error_sink = std::move(sink);
  }

  // Fault injection: the next `count` Generates of this end are refused with
  // `code` (an Error naming link and batch, at the request's time; PHYS-E1).
  void RefuseNextGenerates(bool side_a, physical::v1::ErrorCode code, int count = 1) {
    sides_[side_a ? 0 : 1].refuse_code = code;
    sides_[side_a ? 0 : 1].refuse_count = count;
  }
  uint64_t errors_sent() const { return errors_sent_; }
  // Errors reach the end this long after the refused request (a real-time
  // backend's round trip to qworld); zero by default.
  void set_error_delay(absl::Duration d) { error_delay_ = d; }

  // Fault injection: the next SUCCESS herald to this end (and only to it) is
  // altered by `mutate` (e.g. its slot removed).
  void MutateNextSuccess(bool side_a, std::function<void(physical::v1::Herald&)> mutate) {
    sides_[side_a ? 0 : 1].mutate_next_success = std::move(mutate);
  }

  const std::vector<BatchRecord>& batches() const { return batches_; }
  const Violations& violations() const { return violations_; }
  uint64_t successes() const { return pair_seq_; }
  // Slots of end a / b currently holding a kept qubit.
  const std::set<uint32_t>& occupied(bool side_a) const { return sides_[side_a ? 0 : 1].occupied; }
  // Generates of a batch that still wait for the other end's.
  size_t unpaired() const { return pending_.size(); }

 private:
  struct Side : public PhysicalService {
    FakeLinkPhysics* fake = nullptr;
    bool is_a = true;
    std::function<void(const physical::v1::Herald&)> sink;
    std::function<void(physical::v1::Herald&)> mutate_next_success;
    std::function<void(const physical::v1::Error&)> error_sink;
    physical::v1::ErrorCode refuse_code = physical::v1::ERROR_CODE_UNSPECIFIED;
    int refuse_count = 0;
    uint64_t last_batch = 0;  // last accepted Generate's batch
    std::set<uint32_t> occupied;
    std::set<uint64_t> batches_seen;
    void Generate(const physical::v1::Generate& request) override {
      fake->OnGenerate(is_a, request);
    }
    void Free(const physical::v1::Free& request) override;
    void Measure(const physical::v1::Measure&) override { ++fake->violations_.other_requests; }
    void ApplyGate(const physical::v1::Gate&) override { ++fake->violations_.other_requests; }
    void BellMeasure(const physical::v1::BellMeasure&) override {
      ++fake->violations_.other_requests;
    }
    void Init(const physical::v1::Init&) override { ++fake->violations_.other_requests; }
    void Probe(const physical::v1::Probe&) override { ++fake->violations_.other_requests; }
  };
  struct Pending {
    std::optional<physical::v1::Generate> g[2];
  };

  void OnGenerate(bool side_a, const physical::v1::Generate& request);
  void RunBatch(uint64_t batch, const physical::v1::Generate& ga, const physical::v1::Generate& gb);
  void DeliverAt(int side, physical::v1::Herald herald, Time at);
  void SendError(int side, physical::v1::ErrorCode code, uint64_t batch, const std::string& detail);

  sim::Simulator* sim_;
  LinkSpec link_;
  Rng rng_;
  std::array<Side, 2> sides_;
  std::map<uint64_t, Pending> pending_;
  std::vector<BatchRecord> batches_;
  Violations violations_;
  uint64_t pair_seq_ = 0;
  uint64_t errors_sent_ = 0;
  absl::Duration error_delay_ = absl::ZeroDuration();
};

}  // namespace qnet::link::testing

#endif  // QNET_LINK_TESTING_FAKE_PHYSICAL_H_
