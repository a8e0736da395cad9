// LinkQueue: the distributed queue of one link as one end holds it, and the
// weighted fair queueing scheduler over it (specs/link.md LINK-24 .. LINK-26,
// LINK-32). A pure class: no clock, no I/O, no randomness. Both ends of a link
// hold equal copies (the master's QueueAdd frames carry every field that the
// scheduler reads), apply the same operations at the same reference times and
// therefore select the same item at every decision.
//
// Scheduler (LINK-26): item i has stride s_i = 2^min(priority_i, 3) (weight
// 8 / s_i) and finish tag F_i = virtual_start_i + (charged_i + 1) * s_i, where
// charged_i counts the batches of i that ended in SUCCESS or IDLE. Select()
// returns the eligible item with the smallest (F_i, queue_id). Charge() sets the
// queue's virtual time V = max(V, F_i) before incrementing charged_i; the master
// stamps each new item with virtual_start = V (self-clocked fair queueing).
#ifndef QNET_LINK_QUEUE_H_
#define QNET_LINK_QUEUE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "qnet/link/v1/link.pb.h"
#include "stack/time.h"

namespace qnet::link {

struct QueueItem {
  uint64_t queue_id = 0;
  std::string origin;
  uint64_t origin_create_id = 0;
  v1::Create create;
  Time eligible;                     // may be selected at reference times >= this
  Time deadline = Time::Infinite();  // removed (TIMEOUT) at reference times >= this
  double alpha = 0;
  double estimated_fidelity = 0;
  uint64_t virtual_start = 0;
  uint32_t successes = 0;  // heralded successes so far (delivered or expired)
  uint64_t charged = 0;    // batches ended in SUCCESS or IDLE
  // Refused by the peer after it became eligible: leaves at the next decision.
  bool refused = false;
  v1::ErrorCode refusal_code = v1::ERROR_CODE_UNSPECIFIED;
  std::string refusal_detail;
  // Cancelled by its origin (LINK-48): `deadline` is when it leaves, without ERR.
  bool cancelled = false;

  uint64_t stride() const;
  uint64_t finish() const { return virtual_start + (charged + 1) * stride(); }
  // Every pair asked for was heralded (never for a standing request, LINK-45).
  bool complete() const { return create.pairs() != 0 && successes >= create.pairs(); }
};

class LinkQueue {
 public:
  // Adds an item; error if its queue id is already present.
  absl::Status Add(QueueItem item);
  QueueItem* Find(uint64_t queue_id);
  const QueueItem* Find(uint64_t queue_id) const;
  std::optional<QueueItem> Remove(uint64_t queue_id);

  // Removes, in queue-id order, the items whose deadline is <= `reference` and
  // the refused ones (LINK-25 step 1).
  std::vector<QueueItem> RemoveDue(Time reference);
  // The eligible item to serve at `reference` (LINK-26), or nullptr.
  QueueItem* Select(Time reference);
  bool AnyEligible(Time reference) const;
  // Whether an item other than `queue_id` is eligible at `reference`.
  bool AnyEligibleExcept(Time reference, uint64_t queue_id) const;
  // The earliest eligible_ns or deadline strictly after `reference`.
  std::optional<Time> NextChangeAfter(Time reference) const;
  // A batch of `queue_id` ended in SUCCESS or IDLE.
  void Charge(uint64_t queue_id);

  uint64_t virtual_time() const { return virtual_time_; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  // Items in queue-id order.
  const std::map<uint64_t, QueueItem>& items() const { return items_; }

 private:
  std::map<uint64_t, QueueItem> items_;
  uint64_t virtual_time_ = 0;
};

}  // namespace qnet::link

#endif  // QNET_LINK_QUEUE_H_
