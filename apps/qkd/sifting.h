// Sifting (specs/qkd.md section 2, QKD-S10..S19), sans-I/O.
//
// PairLog is one end's record of the measure pairs of a connection, by pair
// id: seen (a Pair or a PairExpired arrived), held (a Pair arrived and no
// PairExpired), basis, result. Ids start at 1. frontier() is the first id not
// yet seen with every lower id seen: a range of ids below it can be sifted.
// Take() removes a range from the log and returns this end's view of it.
//
// SiftRange combines the two views of a range (the Sift and SiftReply
// messages carry them): pairs both ends hold and measured in the same basis
// give one bit each, Z pairs to the key stream, X pairs to the test stream,
// in pair-id order, so both ends derive the same streams (QKD-S14).
#ifndef QNET_APPS_QKD_SIFTING_H_
#define QNET_APPS_QKD_SIFTING_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/status/statusor.h"
#include "apps/qkd/postproc/bits.h"

namespace qnet::qkd {

// Largest range one Sift may announce (QKD-S12).
inline constexpr uint32_t kMaxSiftRange = 16384;

// One end's view of pair ids [first, first + count).
struct SiftView {
  uint64_t first = 0;
  uint32_t count = 0;
  BitVector held, basis_x, result;  // `count` bits each; result stays local
};

class PairLog {
 public:
  // `limit`: ids above it are ignored (0: no limit).
  explicit PairLog(uint64_t limit = 0) : limit_(limit) {}

  void OnPair(uint64_t id, bool basis_x, bool result);
  void OnExpired(uint64_t id);

  // First id not seen yet such that every lower id (>= 1) was seen.
  uint64_t frontier() const { return frontier_; }
  // First id not taken yet (the next range starts here).
  uint64_t next() const { return base_; }
  // Removes [next(), next() + count) (count <= frontier() - next()).
  SiftView Take(uint32_t count);

  uint64_t held_pairs() const { return held_pairs_; }  // Pairs recorded (not expired)
  uint64_t expired_pairs() const { return expired_pairs_; }
  uint64_t ignored_events() const { return ignored_; }  // after Take, above limit, duplicate

 private:
  struct Record {
    bool seen = false, held = false, basis_x = false, result = false;
  };
  Record* At(uint64_t id);
  void Advance();

  uint64_t limit_;
  uint64_t base_ = 1;  // id of records_[0]
  uint64_t frontier_ = 1;
  std::deque<Record> records_;
  uint64_t held_pairs_ = 0, expired_pairs_ = 0, ignored_ = 0;
};

struct SiftCounts {
  uint64_t both_held = 0, z_matches = 0, x_matches = 0, mismatched = 0;
};

// Appends this end's bits of the range to `z_stream` and `x_stream`.
// `mine` holds results; `theirs` only held and basis_x. INVALID_ARGUMENT if
// the two views are not of the same range.
absl::StatusOr<SiftCounts> SiftRange(const SiftView& mine, const SiftView& theirs,
                                     BitVector* z_stream, BitVector* x_stream);

// A range's held/basis bits from wire bytes (QKD-W2 packing);
// INVALID_ARGUMENT when count is 0 or above kMaxSiftRange, or a byte string
// is too short.
absl::StatusOr<SiftView> ViewFromWire(uint64_t first, uint32_t count, const std::string& held,
                                      const std::string& basis_x);

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_SIFTING_H_
