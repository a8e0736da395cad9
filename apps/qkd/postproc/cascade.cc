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
  // The logical round in progress (QKD-C8): every query the schedule asks at
  // once, whatever the cap. For query j: a search index (>= 0) or -1 - block
  // for a block parity query of the newest pass; its (pass, begin, end); and
  // Alice's answer once received. It goes out in ParityRequests of at most
  // max_queries_per_round queries (`sent` so far); Bob acts on the answers
  // only when all of them are in, so the parities disclosed do not depend on
  // the cap, only the number of messages does.
  std::vector<int64_t> outstanding;
  std::vector<uint32_t> plan_pass, plan_begin, plan_end;
  std::vector<uint8_t> answers;
  size_t sent = 0;  // queries of the logical round sent (answered or in `request`)
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
  return s.passes.size() == s.params.passes && s.outstanding.empty() && s.searches.empty() &&
         !s.request.has_value();
}

std::optional<v1::ParityRequest> CascadeBob::NextRequest() {
  State& s = *state_;
  if (s.request.has_value()) return s.request;  // not yet answered: same again
  if (s.n == 0) return std::nullopt;
  if (s.outstanding.empty()) {
    // A new logical round. Start the next pass once the previous one is
    // settled (QKD-C6): its first round asks every block parity.
    bool new_pass = false;
    if (s.searches.empty()) {
      if (s.passes.size() == s.params.passes) return std::nullopt;
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
      new_pass = true;
    }
    s.plan_pass.clear();
    s.plan_begin.clear();
    s.plan_end.clear();
    // The next half of every running search (QKD-C8) ...
    for (size_t i = 0; i < s.searches.size(); ++i) {
      const State::Search& q = s.searches[i];
      const State::Range& r = q.path.back();
      s.plan_pass.push_back(q.pass);
      s.plan_begin.push_back(r.begin);
      s.plan_end.push_back(r.begin + (r.end - r.begin) / 2);
      s.outstanding.push_back(static_cast<int64_t>(i));
    }
    // ... or every block parity of a new pass.
    if (new_pass) {
      const State::Pass& newest = s.passes.back();
      const auto newest_index = static_cast<uint32_t>(s.passes.size() - 1);
      const auto blocks = static_cast<uint32_t>(newest.known.size());
      for (uint32_t b = 0; b < blocks; ++b) {
        s.plan_pass.push_back(newest_index);
        s.plan_begin.push_back(b * newest.k);
        s.plan_end.push_back(s.BlockEnd(newest, b));
        s.outstanding.push_back(-1 - static_cast<int64_t>(b));
      }
    }
    s.answers.assign(s.outstanding.size(), 0);
    s.sent = 0;
  }
  v1::ParityRequest req;
  req.set_round(rounds_);
  const size_t max = std::max<uint32_t>(1, s.params.max_queries_per_round);
  const size_t end = std::min(s.outstanding.size(), s.sent + max);
  for (size_t j = s.sent; j < end; ++j) {
    req.add_pass(s.plan_pass[j]);
    req.add_begin(s.plan_begin[j]);
    req.add_end(s.plan_end[j]);
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
  const auto chunk = static_cast<size_t>(s.request->pass_size());
  if (reply.parities().size() != (chunk + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat("cascade: reply carries ",
                                                   reply.parities().size(), " parity bytes for ",
                                                   chunk, " queries"));
  }
  disclosed_bits_ += chunk;
  for (size_t j = 0; j < chunk; ++j) {
    s.answers[s.sent + j] = (static_cast<uint8_t>(reply.parities()[j / 8]) >> (j % 8)) & 1;
  }
  s.sent += chunk;
  s.request.reset();
  if (s.sent < s.outstanding.size()) return absl::OkStatus();  // more of this logical round
  const size_t count = s.outstanding.size();
  auto alice_bit = [&](size_t j) { return s.answers[j] != 0; };

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
    State::Search q = std::move(s.searches[static_cast<size_t>(what)]);
    const State::Range r = q.path.back();
    const uint32_t mid = r.begin + (r.end - r.begin) / 2;
    q.path.push_back({r.begin, mid, alice_bit(j)});
    if (settle(q)) kept.push_back(std::move(q));
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
  s.outstanding.clear();
  s.answers.clear();
  s.sent = 0;
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
