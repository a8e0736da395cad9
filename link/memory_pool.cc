#include "link/memory_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::link {

MemoryPool::MemoryPool(uint32_t slots, PhysicalService* physical)
    : physical_(physical), allocated_(slots, false), owners_(slots, nullptr), free_count_(slots) {}

void MemoryPool::SetOwner(uint32_t slot, SlotOwner* owner) {
  if (allocated(slot)) owners_[slot] = owner;
}

std::optional<uint32_t> MemoryPool::Allocate() {
  for (uint32_t s = 0; s < allocated_.size(); ++s) {
    if (!allocated_[s]) {
      allocated_[s] = true;
      --free_count_;
      return s;
    }
  }
  return std::nullopt;
}

absl::Status MemoryPool::Return(uint32_t slot) {
  if (!allocated(slot))
    return absl::FailedPreconditionError(absl::StrCat("slot ", slot, " is not allocated"));
  Freed(slot);
  return absl::OkStatus();
}

absl::Status MemoryPool::Release(uint32_t slot) {
  if (!allocated(slot))
    return absl::FailedPreconditionError(absl::StrCat("slot ", slot, " is not allocated"));
  if (physical_ != nullptr) {
    physical::v1::Free free;
    free.set_slot(slot);
    physical_->Free(free);
    ++frees_sent_;
  }
  Freed(slot);
  return absl::OkStatus();
}

void MemoryPool::Freed(uint32_t slot) {
  if (SlotOwner* owner = owners_[slot]) {
    owners_[slot] = nullptr;
    owner->OnSlotFreed(slot);
  }
  if (waiters_.empty()) {
    allocated_[slot] = false;
    ++free_count_;
    return;
  }
  // The slot passes straight to the first waiter and stays allocated.
  Waiter w = std::move(waiters_.front());
  waiters_.pop_front();
  w.on_slot(slot);
}

MemoryPool::WaitId MemoryPool::WaitForSlot(std::function<void(uint32_t)> on_slot) {
  const WaitId id = next_wait_id_++;
  waiters_.push_back(Waiter{id, std::move(on_slot)});
  return id;
}

void MemoryPool::CancelWait(WaitId id) {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->id == id) {
      waiters_.erase(it);
      return;
    }
  }
}

}  // namespace qnet::link
