// MemoryPool: the memory slots of one node's emulated device, shared by all the
// node's link ends (specs/link.md LINK-33 .. LINK-35). The node composition
// creates one pool per node and hands it to each Egp.
//
// Promises:
//  - Allocate() hands out the lowest-numbered free slot (LINK-33), so a run is
//    reproducible from its seed.
//  - A slot that received a qubit leaves the pool's hands only through
//    Release(), which sends the physical Free (LINK-34). A slot that never
//    received a qubit (the batch failed) goes back with Return(), without Free.
//  - A freed slot is handed to the longest-waiting WaitForSlot() caller first
//    (FIFO, LINK-35); the callback runs synchronously inside Return/Release and
//    the slot is then already allocated to that caller.
//  - A slot may have an owner (SetOwner): the link end whose request's pair
//    it holds, which counts the pairs each request holds (LINK-46). Whoever
//    frees the slot (Release or Return, by any layer), the owner hears it once,
//    before the slot goes to a waiter, and the slot has no owner afterwards.
// Sans-I/O apart from the injected PhysicalService; single-threaded.
#ifndef QNET_LINK_MEMORY_POOL_H_
#define QNET_LINK_MEMORY_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "stack/physical_service.h"

namespace qnet::link {

// Told when a slot it owns is freed (MemoryPool::SetOwner).
class SlotOwner {
 public:
  virtual ~SlotOwner() = default;
  virtual void OnSlotFreed(uint32_t slot) = 0;
};

class MemoryPool {
 public:
  using WaitId = uint64_t;

  // `slots` memory qubits numbered 0 .. slots-1. `physical` receives Free
  // requests; it may be null in tests that never Release().
  MemoryPool(uint32_t slots, PhysicalService* physical);
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  uint32_t capacity() const { return static_cast<uint32_t>(allocated_.size()); }
  uint32_t free_count() const { return free_count_; }
  bool allocated(uint32_t slot) const { return slot < allocated_.size() && allocated_[slot]; }

  // The lowest free slot, now allocated to the caller; nullopt if none is free.
  std::optional<uint32_t> Allocate();
  // Gives back an allocated slot that holds no qubit. Error if not allocated.
  absl::Status Return(uint32_t slot);
  // Discards the qubit in an allocated slot (physical Free) and frees the slot.
  // Error if the slot is not allocated.
  absl::Status Release(uint32_t slot);

  // Calls `on_slot(slot)` once, with a slot already allocated to the caller, as
  // soon as one is freed. Waiters are served in the order they asked.
  WaitId WaitForSlot(std::function<void(uint32_t slot)> on_slot);
  // Withdraws a wait that has not been served; no effect otherwise.
  void CancelWait(WaitId id);
  size_t waiters() const { return waiters_.size(); }

  // Makes `owner` (or nobody, with nullptr) the owner of an allocated slot.
  void SetOwner(uint32_t slot, SlotOwner* owner);

  uint64_t frees_sent() const { return frees_sent_; }

 private:
  void Freed(uint32_t slot);

  PhysicalService* physical_;
  std::vector<bool> allocated_;
  std::vector<SlotOwner*> owners_;
  uint32_t free_count_;
  struct Waiter {
    WaitId id;
    std::function<void(uint32_t)> on_slot;
  };
  std::deque<Waiter> waiters_;
  WaitId next_wait_id_ = 1;
  uint64_t frees_sent_ = 0;
};

}  // namespace qnet::link

#endif  // QNET_LINK_MEMORY_POOL_H_
