#include "link/queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::link {

uint64_t QueueItem::stride() const {
  return uint64_t{1} << std::min<uint32_t>(create.priority(), 3);
}

absl::Status LinkQueue::Add(QueueItem item) {
  const uint64_t id = item.queue_id;
  auto [it, inserted] = items_.try_emplace(id, std::move(item));
  if (!inserted) return absl::AlreadyExistsError(absl::StrCat("queue id ", id, " already queued"));
  return absl::OkStatus();
}

QueueItem* LinkQueue::Find(uint64_t queue_id) {
  auto it = items_.find(queue_id);
  return it == items_.end() ? nullptr : &it->second;
}

const QueueItem* LinkQueue::Find(uint64_t queue_id) const {
  auto it = items_.find(queue_id);
  return it == items_.end() ? nullptr : &it->second;
}

std::optional<QueueItem> LinkQueue::Remove(uint64_t queue_id) {
  auto it = items_.find(queue_id);
  if (it == items_.end()) return std::nullopt;
  QueueItem item = std::move(it->second);
  items_.erase(it);
  return item;
}

std::vector<QueueItem> LinkQueue::RemoveDue(Time reference) {
  std::vector<QueueItem> due;
  for (auto it = items_.begin(); it != items_.end();) {
    if (it->second.refused || it->second.deadline <= reference) {
      due.push_back(std::move(it->second));
      it = items_.erase(it);
    } else {
      ++it;
    }
  }
  return due;
}

QueueItem* LinkQueue::Select(Time reference) {
  QueueItem* best = nullptr;
  for (auto& [id, item] : items_) {
    if (item.eligible > reference) continue;
    // Ascending queue id order: a strict comparison keeps the smaller id on ties.
    if (best == nullptr || item.finish() < best->finish()) best = &item;
  }
  return best;
}

bool LinkQueue::AnyEligible(Time reference) const {
  for (const auto& [id, item] : items_)
    if (item.eligible <= reference) return true;
  return false;
}

bool LinkQueue::AnyEligibleExcept(Time reference, uint64_t queue_id) const {
  for (const auto& [id, item] : items_)
    if (id != queue_id && item.eligible <= reference) return true;
  return false;
}

std::optional<Time> LinkQueue::NextChangeAfter(Time reference) const {
  std::optional<Time> next;
  auto consider = [&](Time t) {
    if (t > reference && !t.is_infinite() && (!next || t < *next)) next = t;
  };
  for (const auto& [id, item] : items_) {
    consider(item.eligible);
    consider(item.deadline);
  }
  return next;
}

void LinkQueue::Charge(uint64_t queue_id) {
  QueueItem* item = Find(queue_id);
  if (item == nullptr) return;
  virtual_time_ = std::max(virtual_time_, item->finish());
  ++item->charged;
}

}  // namespace qnet::link
