// Cascade information reconciliation (specs/qkd.md section "Error
// correction", QKD-C*), sans-I/O: two plain objects exchanging the
// ParityRequest / ParityReply messages of specs/proto/qnet/qkd/v1/qkd.proto.
//
//   CascadeBob   holds the noisy key and drives: each NextRequest() is one
//                round of parity queries (every query of the round in one
//                message); OnReply() feeds Alice's parities back, runs the
//                binary searches and the cascade back-tracking, and flips
//                Bob's bits. done() once every pass is finished and no
//                block of any pass has odd parity difference left.
//   CascadeAlice holds the reference key and answers queries; it never
//                changes its key.
//
// A query names (pass, begin, end): the parity of the key bits at positions
// perm_pass[begin .. end) where perm_pass = Permutation(seed, pass, n) (pass
// 0 is the identity). The permutation is pinned bit for bit (QKD-C*) so that
// two implementations agree: it is not std::shuffle.
//
// Parameters: the original Brassard-Salvail schedule (k1 = ceil(0.73/Q),
// doubling each pass, 4 passes) by default; other schedules through
// CascadeParams. Q is the QBER estimate both ends know from parameter
// estimation (clamped to [0.001, 0.25]).
#ifndef QNET_APPS_QKD_POSTPROC_CASCADE_H_
#define QNET_APPS_QKD_POSTPROC_CASCADE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "apps/qkd/postproc/bits.h"
#include "qnet/qkd/v1/qkd.pb.h"

namespace qnet::qkd {

struct CascadeParams {
  uint32_t passes = 4;
  // First-pass block size k1 = ceil(k1_factor / Q); pass i > 0 uses
  // k1 * 2^i (capped at n).
  double k1_factor = 0.73;
  // Upper bound on queries in one ParityRequest (the message stays far below
  // the transport's 64 KiB per Send).
  uint32_t max_queries_per_round = 4096;
};

// The pinned permutation of pass `pass` over n positions (QKD-C*).
std::vector<uint32_t> CascadePermutation(uint64_t seed, uint32_t pass, uint32_t n);
// First-pass block size for QBER estimate q (QKD-C*).
uint32_t CascadeFirstBlockSize(const CascadeParams& params, double q, uint32_t n);

class CascadeAlice {
 public:
  CascadeAlice(BitVector key, CascadeParams params, uint64_t seed);
  ~CascadeAlice();
  // Answers one round. A request with an unknown pass, begin >= end, end > n
  // or mismatched arrays is refused with INVALID_ARGUMENT (counted by the
  // caller; the block is then aborted).
  absl::StatusOr<v1::ParityReply> Answer(const v1::ParityRequest& request);
  // Parity bits disclosed so far (one per answered query).
  uint64_t disclosed_bits() const { return disclosed_bits_; }
  const BitVector& key() const { return key_; }

 private:
  BitVector key_;
  CascadeParams params_;
  uint64_t seed_;
  std::vector<std::vector<uint32_t>> perms_;  // lazily built per pass
  std::vector<BitVector> permuted_;           // key_ in each pass's order
  uint64_t disclosed_bits_ = 0;
};

class CascadeBob {
 public:
  CascadeBob(BitVector key, double qber_estimate, CascadeParams params, uint64_t seed);
  ~CascadeBob();
  // The next round's queries (block and round numbers filled in by the
  // caller's block id and this object's round counter); nullopt when done().
  std::optional<v1::ParityRequest> NextRequest();
  // Alice's answer to the last request. INVALID_ARGUMENT if it does not
  // match (round, parity count).
  absl::Status OnReply(const v1::ParityReply& reply);
  bool done() const;

  const BitVector& key() const { return key_; }
  uint64_t disclosed_bits() const { return disclosed_bits_; }  // parities received
  uint32_t rounds() const { return rounds_; }                  // requests sent
  uint64_t bits_flipped() const { return bits_flipped_; }      // errors corrected

 private:
  struct State;
  BitVector key_;
  std::unique_ptr<State> state_;
  uint64_t disclosed_bits_ = 0;
  uint32_t rounds_ = 0;
  uint64_t bits_flipped_ = 0;
};

// Runs both ends to completion in process (benchmarks, tests, the
// efficiency table): returns Bob's corrected key and the counters.
struct CascadeRun {
  BitVector corrected;
  uint64_t disclosed_bits = 0;
  uint32_t rounds = 0;
  uint64_t bits_flipped = 0;
};
CascadeRun RunCascade(const BitVector& alice, const BitVector& bob, double qber_estimate,
                      const CascadeParams& params, uint64_t seed);

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_POSTPROC_CASCADE_H_
