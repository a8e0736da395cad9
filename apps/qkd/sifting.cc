#include "apps/qkd/sifting.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qnet::qkd {
namespace {
// Ids further than this above the first untaken one are ignored: the
// transport hands out ids in order, so such an id is a fault, not a pair.
constexpr uint64_t kMaxLookahead = uint64_t{1} << 22;
}  // namespace

PairLog::Record* PairLog::At(uint64_t id) {
  if (id < base_ || id == 0 || (limit_ > 0 && id > limit_) || id - base_ >= kMaxLookahead) {
    return nullptr;
  }
  const uint64_t index = id - base_;
  if (index >= records_.size()) records_.resize(index + 1);
  return &records_[index];
}

void PairLog::Advance() {
  while (frontier_ - base_ < records_.size() && records_[frontier_ - base_].seen) ++frontier_;
}

void PairLog::OnPair(uint64_t id, bool basis_x, bool result) {
  Record* r = At(id);
  if (r == nullptr || r->seen) {
    ++ignored_;
    return;
  }
  *r = Record{true, true, basis_x, result};
  ++held_pairs_;
  Advance();
}

void PairLog::OnExpired(uint64_t id) {
  Record* r = At(id);
  if (r == nullptr) {
    ++ignored_;  // already sifted (QKD-S13: an expiry after the Sift is too late)
    return;
  }
  if (r->held) --held_pairs_;
  if (!r->seen || r->held) ++expired_pairs_;
  r->seen = true;
  r->held = false;
  Advance();
}

SiftView PairLog::Take(uint32_t count) {
  SiftView v;
  v.first = base_;
  v.count = count;
  v.held = BitVector(count);
  v.basis_x = BitVector(count);
  v.result = BitVector(count);
  for (uint32_t i = 0; i < count && !records_.empty(); ++i) {
    const Record r = records_.front();
    records_.pop_front();
    v.held.Set(i, r.held);
    v.basis_x.Set(i, r.basis_x);
    v.result.Set(i, r.result);
  }
  base_ += count;
  if (frontier_ < base_) frontier_ = base_;
  Advance();
  return v;
}

absl::StatusOr<SiftCounts> SiftRange(const SiftView& mine, const SiftView& theirs,
                                     BitVector* z_stream, BitVector* x_stream) {
  if (mine.first != theirs.first || mine.count != theirs.count) {
    return absl::InvalidArgumentError(absl::StrCat("sift range [", theirs.first, ", +",
                                                   theirs.count, ") is not the expected [",
                                                   mine.first, ", +", mine.count, ")"));
  }
  SiftCounts c;
  for (uint32_t i = 0; i < mine.count; ++i) {
    if (!mine.held.Get(i) || !theirs.held.Get(i)) continue;
    ++c.both_held;
    if (mine.basis_x.Get(i) != theirs.basis_x.Get(i)) {
      ++c.mismatched;
    } else if (mine.basis_x.Get(i)) {
      ++c.x_matches;
      x_stream->PushBack(mine.result.Get(i));
    } else {
      ++c.z_matches;
      z_stream->PushBack(mine.result.Get(i));
    }
  }
  return c;
}

absl::StatusOr<SiftView> ViewFromWire(uint64_t first, uint32_t count, const std::string& held,
                                      const std::string& basis_x) {
  if (count == 0 || count > kMaxSiftRange) {
    return absl::InvalidArgumentError(absl::StrCat("sift range of ", count, " ids"));
  }
  if (first == 0) return absl::InvalidArgumentError("sift range starts at pair id 0");
  SiftView v;
  v.first = first;
  v.count = count;
  if (!BitVector::FromBytes(held, count, &v.held) ||
      !BitVector::FromBytes(basis_x, count, &v.basis_x)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sift bit strings too short for ", count, " ids"));
  }
  return v;
}

}  // namespace qnet::qkd
