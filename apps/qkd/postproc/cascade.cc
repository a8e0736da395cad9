// Cascade (specs/qkd.md section 4, QKD-C*). See cascade.h for the contract.
#include "apps/qkd/postproc/cascade.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace qnet::qkd {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// SplitMix64 (Steele, Lea, Flood 2014), QKD-C3.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t Next() {
    state_ += kGolden;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// Uniform in [0, bound), bound >= 1, QKD-C4: draws r until r < 2^64 - (2^64
// mod bound), then r mod bound.
uint64_t UniformBelow(SplitMix64& rng, uint64_t bound) {
  const uint64_t rem = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const uint64_t r = rng.Next();
    if (rem == 0 || r < 0 - rem) return r % bound;
  }
}

// A copy of `key` in the order of `perm`: out[pos] = key[perm[pos]].
BitVector Permuted(const BitVector& key, const std::vector<uint32_t>& perm) {
  BitVector out(key.size());
  auto& words = out.mutable_words();
  for (size_t pos = 0; pos < perm.size(); ++pos) {
    words[pos >> 6] |= static_cast<uint64_t>(key.Get(perm[pos])) << (pos & 63);
  }
  return out;
}

uint32_t BlockSize(uint32_t k1, uint32_t pass, uint32_t n) {
  uint64_t k = k1;
  for (uint32_t i = 0; i < pass && k < n; ++i) k *= 2;
  return static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(k, n)));
}

}  // namespace

std::vector<uint32_t> CascadePermutation(uint64_t seed, uint32_t pass, uint32_t n) {
  std::vector<uint32_t> perm(n);
  for (uint32_t i = 0; i < n; ++i) perm[i] = i;
  if (pass == 0 || n < 2) return perm;
  SplitMix64 rng(seed ^ (static_cast<uint64_t>(pass) * kGolden));
  for (uint32_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<uint32_t>(UniformBelow(rng, uint64_t{i} + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

uint32_t CascadeFirstBlockSize(const CascadeParams& params, double q, uint32_t n) {
  if (!(q >= 0.001)) q = 0.001;  // also catches NaN
  if (q > 0.25) q = 0.25;
  const double k = std::ceil(params.k1_factor / q);
  uint64_t k1 = k < 1 ? 1 : (k > 4294967295.0 ? 4294967295u : static_cast<uint64_t>(k));
  if (n > 0 && k1 > n) k1 = n;
  return static_cast<uint32_t>(std::max<uint64_t>(k1, 1));
}

// ---------------------------------------------------------------- Alice

CascadeAlice::CascadeAlice(BitVector key, CascadeParams params, uint64_t seed)
    : key_(std::move(key)), params_(params), seed_(seed) {}
CascadeAlice::~CascadeAlice() = default;

absl::StatusOr<v1::ParityReply> CascadeAlice::Answer(const v1::ParityRequest& request) {
  const int count = request.pass_size();
  if (request.begin_size() != count || request.end_size() != count) {
    return absl::InvalidArgumentError(absl::StrCat("cascade: parity request with ", count,
                                                   " passes, ", request.begin_size(),
                                                   " begins and ", request.end_size(), " ends"));
  }
  if (static_cast<uint64_t>(count) > params_.max_queries_per_round) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cascade: ", count, " queries in one round (max ", params_.max_queries_per_round, ")"));
  }
  const uint64_t n = key_.size();
  for (int j = 0; j < count; ++j) {
    if (request.pass(j) >= params_.passes) {
      return absl::InvalidArgumentError(absl::StrCat("cascade: query ", j, " names pass ",
                                                     request.pass(j), " of ", params_.passes));
    }
    if (request.begin(j) >= request.end(j) || request.end(j) > n) {
      return absl::InvalidArgumentError(absl::StrCat("cascade: query ", j, " range [",
                                                     request.begin(j), ", ", request.end(j),
                                                     ") invalid for ", n, " bits"));
    }
  }
  // Valid: only now build permutations and count disclosures (QKD-C9).
  if (perms_.size() < params_.passes) perms_.resize(params_.passes);
  if (permuted_.size() < params_.passes) permuted_.resize(params_.passes);
  std::string parities((count + 7) / 8, '\0');
  for (int j = 0; j < count; ++j) {
    const uint32_t pass = request.pass(j);
    if (permuted_[pass].size() != n) {
      perms_[pass] = CascadePermutation(seed_, pass, static_cast<uint32_t>(n));
      permuted_[pass] = pass == 0 ? key_ : Permuted(key_, perms_[pass]);
    }
    if (permuted_[pass].Parity(request.begin(j), request.end(j))) {
      parities[j / 8] = static_cast<char>(parities[j / 8] | (1 << (j % 8)));
    }
  }
  disclosed_bits_ += static_cast<uint64_t>(count);
  v1::ParityReply reply;
  reply.set_block(request.block());
  reply.set_round(request.round());
  reply.set_parities(std::move(parities));
  return reply;
}

// ---------------------------------------------------------------- Bob

struct CascadeBob::State {
  CascadeParams params;
  uint64_t seed = 0;
  uint32_t n = 0;
  uint32_t k1 = 1;
  // Per started pass: block size, permutation, inverse, Bob's key in that
  // order, Alice's block parities and whether each is known.
  struct Pass {
    uint32_t k = 1;
    std::vector<uint32_t> perm;
    std::vector<uint32_t> inverse;
    BitVector permuted;
    std::vector<uint8_t> alice_parity;
    std::vector<uint8_t> known;
    std::vector<uint8_t> searching;
  };
  std::vector<Pass> passes;  // started passes, in order
  // Block parity queries of the current pass not yet sent.
  std::vector<uint32_t> pending_blocks;
  size_t next_pending = 0;
  // A binary search in block `block` of pass `pass`: the path of nested
  // ranges from the block down to the current one, each with Alice's parity.
  // Bob's parity of the current range differs from Alice's (or did when last
  // checked). The path lets a search whose range a flip elsewhere evened out
  // continue in a sibling range with no new query.
  struct Range {
    uint32_t begin, end;
    bool alice;
  };
  struct Search {
    uint32_t pass, block;
    std::vector<Range> path;
  };
  std::vector<Search> searches;
  // The outstanding request: for query j, a search index (>= 0) or
  // -1 - block for a block parity query of the newest pass.
  std::vector<int64_t> outstanding;
  std::optional<v1::ParityRequest> request;
  std::vector<std::pair<uint32_t, uint32_t>> candidates;  // (pass, block)

  uint32_t BlockEnd(const Pass& p, uint32_t block) const {
    return static_cast<uint32_t>(std::min<uint64_t>(uint64_t{block + 1} * p.k, n));
  }
};

CascadeBob::CascadeBob(BitVector key, double qber_estimate, CascadeParams params, uint64_t seed)
    : key_(std::move(key)), state_(std::make_unique<State>()) {
  State& s = *state_;
  s.params = params;
  s.seed = seed;
  s.n = static_cast<uint32_t>(key_.size());
  s.k1 = CascadeFirstBlockSize(params, qber_estimate, s.n);
}
CascadeBob::~CascadeBob() = default;

bool CascadeBob::done() const {
  const State& s = *state_;
  if (s.n == 0 || s.params.passes == 0) return true;
  return s.passes.size() == s.params.passes && s.next_pending == s.pending_blocks.size() &&
         s.searches.empty() && !s.request.has_value();
}

std::optional<v1::ParityRequest> CascadeBob::NextRequest() {
  State& s = *state_;
  if (s.request.has_value()) return s.request;  // not yet answered: same again
  if (s.n == 0) return std::nullopt;
  // Start the next pass once the previous one is settled (QKD-C6).
  if (s.searches.empty() && s.next_pending == s.pending_blocks.size() &&
      s.passes.size() < s.params.passes) {
    const auto pass = static_cast<uint32_t>(s.passes.size());
    State::Pass p;
    p.k = BlockSize(s.k1, pass, s.n);
    p.perm = CascadePermutation(s.seed, pass, s.n);
    p.inverse.resize(s.n);
    for (uint32_t pos = 0; pos < s.n; ++pos) p.inverse[p.perm[pos]] = pos;
    p.permuted = pass == 0 ? key_ : Permuted(key_, p.perm);
    const uint32_t blocks = (s.n + p.k - 1) / p.k;
    p.alice_parity.assign(blocks, 0);
    p.known.assign(blocks, 0);
    p.searching.assign(blocks, 0);
    s.passes.push_back(std::move(p));
    s.pending_blocks.resize(blocks);
    for (uint32_t b = 0; b < blocks; ++b) s.pending_blocks[b] = b;
    s.next_pending = 0;
  }
  if (s.searches.empty() && s.next_pending == s.pending_blocks.size()) return std::nullopt;

  v1::ParityRequest req;
  req.set_round(rounds_);
  s.outstanding.clear();
  const uint32_t max = std::max<uint32_t>(1, s.params.max_queries_per_round);
  for (size_t i = 0; i < s.searches.size() && s.outstanding.size() < max; ++i) {
    const State::Search& q = s.searches[i];
    const State::Range& r = q.path.back();
    req.add_pass(q.pass);
    req.add_begin(r.begin);
    req.add_end(r.begin + (r.end - r.begin) / 2);
    s.outstanding.push_back(static_cast<int64_t>(i));
  }
  const State::Pass& newest = s.passes.back();
  const auto newest_index = static_cast<uint32_t>(s.passes.size() - 1);
  while (s.next_pending < s.pending_blocks.size() && s.outstanding.size() < max) {
    const uint32_t b = s.pending_blocks[s.next_pending++];
    req.add_pass(newest_index);
    req.add_begin(b * newest.k);
    req.add_end(s.BlockEnd(newest, b));
    s.outstanding.push_back(-1 - static_cast<int64_t>(b));
  }
  ++rounds_;
  s.request = req;
  return req;
}

absl::Status CascadeBob::OnReply(const v1::ParityReply& reply) {
  State& s = *state_;
  if (!s.request.has_value()) {
    return absl::InvalidArgumentError("cascade: parity reply without a request");
  }
  if (reply.round() != s.request->round()) {
    return absl::InvalidArgumentError(absl::StrCat("cascade: reply for round ", reply.round(),
                                                   ", expected ", s.request->round()));
  }
  const size_t count = s.outstanding.size();
  if (reply.parities().size() != (count + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat("cascade: reply carries ",
                                                   reply.parities().size(), " parity bytes for ",
                                                   count, " queries"));
  }
  disclosed_bits_ += count;
  auto alice_bit = [&](size_t j) {
    return ((static_cast<uint8_t>(reply.parities()[j / 8]) >> (j % 8)) & 1) != 0;
  };

  // Flipping Bob's bit `index` (original order): every started pass's copy
  // changes and the block containing it changes parity (cascade, QKD-C7).
  auto flip = [&](uint32_t index) {
    key_.Flip(index);
    ++bits_flipped_;
    for (uint32_t q = 0; q < s.passes.size(); ++q) {
      State::Pass& p = s.passes[q];
      const uint32_t pos = p.inverse[index];
      p.permuted.Flip(pos);
      const uint32_t block = pos / p.k;
      if (p.known[block]) s.candidates.emplace_back(q, block);
    }
  };

  // Moves search q to a range of its path whose parities differ (the newest
  // range, else a sibling range along the path, whose Alice parity follows
  // from its parent's and its sibling's) and flips the bit when the range is
  // one bit long. False when the search is over.
  auto settle = [&](State::Search& q) -> bool {
    State::Pass& p = s.passes[q.pass];
    auto differs = [&](const State::Range& r) {
      return r.alice != p.permuted.Parity(r.begin, r.end);
    };
    while (!differs(q.path.back())) {
      if (q.path.size() == 1) {
        p.searching[q.block] = 0;  // the block is even now
        return false;
      }
      const State::Range child = q.path.back();
      q.path.pop_back();
      const State::Range parent = q.path.back();
      const bool alice = parent.alice != child.alice;
      const State::Range sibling = child.begin == parent.begin
                                       ? State::Range{child.end, parent.end, alice}
                                       : State::Range{parent.begin, child.begin, alice};
      if (differs(sibling)) {
        q.path.push_back(sibling);
        break;
      }
      // Neither half differs: the parent does not either; go up.
    }
    const State::Range& r = q.path.back();
    if (r.end - r.begin > 1) return true;
    p.searching[q.block] = 0;
    s.candidates.emplace_back(q.pass, q.block);  // other errors may remain
    flip(p.perm[r.begin]);
    return false;
  };

  std::vector<State::Search> kept;
  kept.reserve(s.searches.size());
  std::vector<uint8_t> answered(s.searches.size(), 0);
  for (size_t j = 0; j < count; ++j) {
    const int64_t what = s.outstanding[j];
    if (what < 0) {
      const auto block = static_cast<uint32_t>(-1 - what);
      State::Pass& p = s.passes.back();
      p.alice_parity[block] = alice_bit(j) ? 1 : 0;
      p.known[block] = 1;
      s.candidates.emplace_back(static_cast<uint32_t>(s.passes.size() - 1), block);
      continue;
    }
    answered[static_cast<size_t>(what)] = 1;
    State::Search q = std::move(s.searches[static_cast<size_t>(what)]);
    const State::Range r = q.path.back();
    const uint32_t mid = r.begin + (r.end - r.begin) / 2;
    q.path.push_back({r.begin, mid, alice_bit(j)});
    if (settle(q)) kept.push_back(std::move(q));
  }
  for (size_t i = 0; i < s.searches.size(); ++i) {
    if (!answered[i]) kept.push_back(std::move(s.searches[i]));  // beyond this round's cap
  }
  // Flips of this round may have evened out a search's range or its whole
  // block (a bit shared across passes): settle every search again. A block
  // left even ends its search, as sequential Cascade would not have started
  // it (QKD-C7).
  s.searches.clear();
  for (State::Search& q : kept) {
    if (settle(q)) s.searches.push_back(std::move(q));
  }

  // Start a search in every known block whose parities now differ.
  while (!s.candidates.empty()) {
    const auto [q, block] = s.candidates.back();
    s.candidates.pop_back();
    State::Pass& p = s.passes[q];
    if (!p.known[block] || p.searching[block]) continue;
    const uint32_t begin = block * p.k;
    const uint32_t end = s.BlockEnd(p, block);
    const bool alice = p.alice_parity[block] != 0;
    if (alice == p.permuted.Parity(begin, end)) continue;
    if (end - begin == 1) {
      flip(p.perm[begin]);  // pushes (q, block) again: then even
      continue;
    }
    p.searching[block] = 1;
    s.searches.push_back({q, block, {{begin, end, alice}}});
  }
  s.request.reset();
  s.outstanding.clear();
  return absl::OkStatus();
}

CascadeRun RunCascade(const BitVector& alice, const BitVector& bob, double qber_estimate,
                      const CascadeParams& params, uint64_t seed) {
  CascadeAlice a(alice, params, seed);
  CascadeBob b(bob, qber_estimate, params, seed);
  while (auto req = b.NextRequest()) {
    auto reply = a.Answer(*req);
    if (!reply.ok() || !b.OnReply(*reply).ok()) break;  // cannot happen between these two
  }
  CascadeRun run;
  run.corrected = b.key();
  run.disclosed_bits = a.disclosed_bits();
  run.rounds = b.rounds();
  run.bits_flipped = b.bits_flipped();
  return run;
}

}  // namespace qnet::qkd
