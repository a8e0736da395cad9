// Strong types for the identifiers that cross layer boundaries.
#ifndef QNET_STACK_IDS_H_
#define QNET_STACK_IDS_H_

#include <compare>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/hash/hash.h"

namespace qnet {

// A named identifier that does not convert to or from other ids.
template <typename Tag>
class NamedId {
 public:
  NamedId() = default;
  explicit NamedId(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  bool empty() const { return name_.empty(); }
  friend auto operator<=>(const NamedId&, const NamedId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const NamedId& id) {
    return H::combine(std::move(h), id.name_);
  }

 private:
  std::string name_;
};

template <typename Tag>
class NumericId {
 public:
  constexpr NumericId() = default;
  constexpr explicit NumericId(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  friend constexpr auto operator<=>(NumericId, NumericId) = default;
  template <typename H>
  friend H AbslHashValue(H h, NumericId id) {
    return H::combine(std::move(h), id.value_);
  }

 private:
  uint64_t value_ = 0;
};

using NodeId = NamedId<struct NodeIdTag>;
using LinkId = NamedId<struct LinkIdTag>;
using CreateId = NumericId<struct CreateIdTag>;
using QueueId = NumericId<struct QueueIdTag>;
using CircuitId = NumericId<struct CircuitIdTag>;

// A memory slot of one node's emulated device.
using SlotId = NumericId<struct SlotIdTag>;

}  // namespace qnet

#endif  // QNET_STACK_IDS_H_
