// Egp: one end of one link's entanglement generation protocol (specs/link.md),
// after Dahlberg et al., "A link layer protocol for quantum networks"
// (SIGCOMM 2019) and draft-dahlberg-ll-quantum.
//
// What it promises (requirement ids of specs/link.md):
//  - LinkService: CREATE admission (LINK-01 .. LINK-06), one OK per pair at
//    both ends with identical pair ids (LINK-07 .. LINK-11), ERR TIMEOUT /
//    REJECTED / EXPIRED (LINK-12 .. LINK-14), tracing (LINK-15, LINK-16).
//  - The distributed queue with the peer end (LINK-17 .. LINK-23, LINK-39,
//    LINK-40; egp_peer.cc): the link's `a` node is the master and numbers the
//    items; every item becomes eligible one round trip plus a margin after its
//    CREATE, so both ends know it before either may schedule it.
//  - Scheduling at shared reference times only (herald batch ends, eligible
//    times, deadlines), weighted fair queueing identical at both ends, one
//    Generate per decision, memory waits that neither busy-loop nor block other
//    requests (LINK-24 .. LINK-32, LINK-41, LINK-42), following the
//    heralded-generation contract with the physical layer (specs/physical.md).
//  - Untrusted peer frames and heralds are validated; a refusal is a counted,
//    traced drop and never loses or duplicates a pair (LINK-36 .. LINK-38,
//    LINK-44).
//  - A physical Error for the running batch ends it as failed and the end
//    decides again; a recurring refusal cannot livelock it (LINK-43).
//  - OK and ERR create ids: the origin's create id at both ends.
//
// Sans-I/O: inputs are the method calls below, each run at the runtime's Now();
// outputs go through the injected runtime (timers), physical service
// (Generate), memory pool (slots, Free), peer sender, listener and tracer. The
// only randomness is the injected Rng (measurement basis draws).
//
// Ownership: the node composition owns the Egp, the MemoryPool (shared by the
// node's Egps and outliving them) and everything else passed in. A kept pair's
// slot belongs to the layer above from its OK until it calls Release().
#ifndef QNET_LINK_EGP_H_
#define QNET_LINK_EGP_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "link/link.h"
#include "link/memory_pool.h"
#include "link/queue.h"
#include "qnet/link/v1/link.pb.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/physical_service.h"
#include "stack/random.h"
#include "stack/runtime.h"
#include "stack/topology.h"
#include "stack/trace.h"

namespace qnet::link {

struct EgpOptions {
  // The scheduling margin m of LINK-20 is max(one attempt cycle, min_margin).
  // Real-time backends set it above their worst frame-delivery jitter.
  absl::Duration min_margin = absl::ZeroDuration();
  // Queue limit (LINK-03): items in the link's queue at the master, pending
  // requests of this end at the other end.
  size_t max_queue = 256;
  // LINK-49: at most this many pairs in one batch.
  uint32_t max_batch_pairs = 64;
};

// Counters for tests, progress and benchmarks.
struct EgpStats {
  uint64_t creates = 0;  // accepted CREATEs of this end
  uint64_t oks = 0;
  uint64_t errs = 0;     // Err delivered to the listener
  uint64_t drops = 0;    // refused inputs (each also traced)
  uint64_t batches = 0;  // Generates sent
  uint64_t successes = 0;
  uint64_t idle_batches = 0;
  uint64_t deadline_batches = 0;
  uint64_t mismatches = 0;  // QUEUE_MISMATCH heralds
  uint64_t late_adds = 0;   // QueueAdds that arrived after their eligible time
  uint64_t memory_waits = 0;
  uint64_t physical_errors = 0;  // Errors from the physical layer (all also drops)
  uint64_t cancels = 0;          // requests cancelled (either origin)
};

class Egp : public LinkService, public SlotOwner {
 public:
  // `self_node` must be `link.a` or `link.b` (the master is `link.a`).
  Egp(const LinkSpec& link, std::string self_node, Runtime* runtime, PhysicalService* physical,
      MemoryPool* memory, std::function<void(const v1::LinkFrame&)> send_to_peer,
      LinkListener* listener, Tracer* tracer, Rng rng, EgpOptions options = {});
  ~Egp() override;
  Egp(const Egp&) = delete;
  Egp& operator=(const Egp&) = delete;

  // LinkService.
  absl::StatusOr<uint64_t> Create(const v1::Create& create) override;
  void Release(uint32_t slot) override;
  absl::Status Cancel(uint64_t create_id) override;

  // SlotOwner: a slot holding a pair of one of this end's requests was freed
  // (by Release here, or by the layer above through the pool after a
  // measurement); the request holds one pair less (LINK-46).
  void OnSlotFreed(uint32_t slot) override;

  // A frame from the peer end (already parsed, from the neighbour's connection).
  void OnPeerFrame(const v1::LinkFrame& frame);
  // A herald from the physical layer for this link.
  void OnHerald(const physical::v1::Herald& herald);
  // An Error from the physical layer naming this link (LINK-43): if it names
  // the running batch, the batch ends as failed and the end decides again.
  void OnPhysicalError(const physical::v1::Error& error);

  const std::string& link_name() const { return spec_.name; }
  bool is_master() const { return master_; }
  const EgpStats& stats() const { return stats_; }
  const LinkQueue& queue() const { return queue_; }
  size_t pending_requests() const { return pending_.size(); }
  // Pairs of queue item `queue_id` held at this end (delivered, not freed).
  uint32_t held(uint64_t queue_id) const;
  // The scheduling margin m and the one-way classical delay d in use.
  absl::Duration margin() const { return margin_; }
  absl::Duration delay() const { return delay_; }

 private:
  // kBatchOutstanding: a Generate was sent and heralds may still come;
  // kHeraldPending: the batch's last herald is in and waits for its time.
  enum class Phase { kIdle, kWaitingMemory, kBatchOutstanding, kHeraldPending };

  struct PendingRequest {
    v1::Create create;
    Time created;
  };
  struct ItemRecord {  // every item ever queued, for Expire frames
    std::string origin;
    uint64_t origin_create_id = 0;
  };
  struct Batch {
    uint64_t number = 0;
    uint64_t queue_id = 0;
    Time start;                           // start_ns of the Generate (PHYS-B4a)
    std::vector<uint32_t> slots;          // keep: one per pair asked for
    std::vector<physical::v1::Basis> bases;  // measure: one per pair asked for
    uint32_t heralded = 0;                // successes heralded so far
  };
  // A herald of the running batch waiting for its time (LINK-30).
  struct QueuedHerald {
    physical::v1::Herald herald;
    Time at;                       // when to act on it
    std::optional<uint64_t> bad_time;  // LINK-44: its time_ns, if beyond one cycle
  };

  // Distributed queue.
  void Enqueue(QueueItem item);
  v1::QueueAdd ToQueueAdd(const QueueItem& item) const;
  void HandleAddRequest(const v1::QueueAddRequest& request);
  void HandleAdd(const v1::QueueAdd& add);
  void HandleRejectOfItem(const v1::QueueReject& reject);
  void HandleRejectOfRequest(const v1::QueueReject& reject);
  void HandleCheck(const v1::QueueCheck& check);
  void HandleExpire(const v1::Expire& expire);
  void HandleCancel(const v1::QueueCancel& cancel);
  // Sets the item's cancel deadline and tells the peer (master only).
  void CancelItem(QueueItem& item);
  void SendReject(uint64_t queue_id, uint64_t origin_create_id, v1::ErrorCode code,
                  const std::string& detail);
  void Send(v1::LinkFrame frame);

  // Scheduling.
  bool KeepsHere(const QueueItem& item) const;
  // How many pairs the next batch of `item` may ask for, memory aside.
  uint32_t BatchPairs(const QueueItem& item) const;
  void ArmWake();
  void Decide(Time reference);
  void OnWake();
  void StartBatch(QueueItem& item, Time reference);
  void OnMemoryGranted(uint32_t slot);
  void OnMemoryReady();
  void OnMemoryPollExpired();
  void SendGenerate(uint32_t idle_cycles);
  void OnHeraldTimer();
  void ProcessHerald(const QueuedHerald& queued, Time reference);
  void ProcessSuccess(const QueuedHerald& queued, Time reference);
  void EndBatch(Time reference);
  // Gives the batch's slots that hold no pair back to the pool, without Free.
  void ReturnBatchSlots();
  void SetBusy(bool busy, Time reference);

  // Upward.
  void DeliverErr(v1::ErrorCode code, const std::string& origin, uint64_t create_id,
                  const std::string& detail, uint64_t expired_from = 0, uint64_t expired_to = 0);
  // Reports EXPIRED for the pairs of `origin` in [from, to] not reported yet.
  void ReportExpired(const std::string& origin, uint64_t create_id, uint64_t from, uint64_t to,
                     const std::string& detail);
  void Drop(results::v1::DropReason reason, std::string detail);

  const LinkSpec spec_;
  const std::string self_;
  const std::string peer_;
  const bool master_;
  Runtime* runtime_;
  PhysicalService* physical_;
  MemoryPool* memory_;
  std::function<void(const v1::LinkFrame&)> send_to_peer_;
  LinkListener* listener_;
  Tracer* tracer_;
  Rng rng_;
  const EgpOptions options_;
  const absl::Duration cycle_;
  const absl::Duration delay_;
  const absl::Duration margin_;

  LinkQueue queue_;
  uint64_t next_create_id_ = 1;
  uint64_t next_queue_id_ = 1;  // master
  // Ids already used by the other end (peer: QueueAdd queue ids; master:
  // QueueAddRequest create ids), bounded: ids below the floor count as seen.
  struct SeenIds {
    bool Insert(uint64_t id);  // false if `id` was seen (or is below the floor)
    std::set<uint64_t> ids;
    uint64_t floor = 1;
  };
  SeenIds seen_ids_;
  std::map<uint64_t, PendingRequest> pending_;         // peer: own CREATEs awaiting QueueAdd
  std::map<uint64_t, ItemRecord> history_;             // by queue id
  std::map<std::string, uint64_t> last_sequence_;      // per origin
  std::map<std::string, std::set<uint64_t>> expired_;  // per origin
  // Kept pairs delivered and not freed yet: slot -> queue id, and per queue id.
  absl::flat_hash_map<uint32_t, uint64_t> held_slots_;
  std::map<uint64_t, uint32_t> held_count_;

  Phase phase_ = Phase::kIdle;
  Time last_reference_ = Time::Zero();
  uint64_t batch_counter_ = 0;
  Batch batch_;
  uint64_t idle_item_ = 0;  // queue id of the item whose batch just ended IDLE
  std::deque<QueuedHerald> heralds_;
  std::optional<Time> last_failed_batch_;  // last physical Error ending a batch, no herald since
  std::optional<MemoryPool::WaitId> memory_wait_;
  bool window_wait_ = false;  // waiting for a pair of the batch's item to be freed (LINK-46)
  std::vector<uint32_t> granted_slots_;
  bool busy_ = false;
  std::unique_ptr<Timer> wake_timer_;
  std::unique_ptr<Timer> herald_timer_;
  std::unique_ptr<Timer> memory_poll_timer_;
  std::unique_ptr<Timer> memory_ready_timer_;
  EgpStats stats_;
};

}  // namespace qnet::link

#endif  // QNET_LINK_EGP_H_
