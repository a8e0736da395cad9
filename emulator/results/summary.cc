// Summarize: from trace records to summary.json figures (specs/topology.md
// RES-6..RES-17; each figure's definition is cited where it is computed).
#include "emulator/results/summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "emulator/results/connections.h"
#include "emulator/results/qkd_summary.h"
#include "emulator/results/stats.h"
#include "google/protobuf/util/json_util.h"
#include "stack/heralding_model.h"
#include "stack/json_lines.h"

namespace qnet::results {
namespace {

namespace lv1 = ::qnet::link::v1;
namespace pv1 = ::qnet::physical::v1;

// One end's OK of a pair.
struct OkSeen {
  int64_t t_ns = 0;
  pv1::BellState bell = pv1::BELL_STATE_UNSPECIFIED;
  uint64_t herald_seq = 0;
  pv1::Basis basis = pv1::BASIS_UNSPECIFIED;
  uint32_t result = 0;
  double estimated_fidelity = 0;
  uint64_t create_id = 0;
};

using PairKey = std::pair<std::string, uint64_t>;     // (origin, sequence)
using RequestKey = std::pair<std::string, uint64_t>;  // (origin, create_id)

struct LinkState {
  const LinkSpec* spec = nullptr;
  std::map<PairKey, OkSeen> ok[2];  // [0]: end a, [1]: end b
  uint64_t oks = 0;
  uint64_t repeated_oks = 0;
  uint64_t creates = 0;
  uint64_t attempts = 0;
  // Model probability weighted by attempts over batches that recorded alpha.
  double p_weighted = 0;
  uint64_t p_attempts = 0;
  std::vector<std::pair<int64_t, bool>> busy;  // LinkBusy at end a, file order
  std::map<uint64_t, double> truth;            // HeraldTruth by pair_seq
  std::map<RequestKey, int64_t> create_ns;     // CREATE time at the origin
  // Every OK at the origin per request, as (time, sequence), for latency.
  std::map<RequestKey, std::vector<std::pair<int64_t, uint64_t>>> origin_oks;
  std::map<std::string, uint64_t> errors;
  std::map<std::string, uint64_t> discards;
  uint64_t intercepted = 0;  // RES-15a
  uint64_t downs[2] = {0, 0};  // RES-15b, per end (a, b)
};

std::string SchemeName(HeraldingScheme s) {
  switch (s) {
    case HeraldingScheme::kSingleClick:
      return "single-click";
    case HeraldingScheme::kDoubleClick:
      return "double-click";
    case HeraldingScheme::kWerner:
      return "werner";
  }
  return "";
}

template <typename Enum>
std::string EnumName(const std::string& name, Enum value) {
  return name.empty() ? absl::StrCat(static_cast<int>(value)) : name;
}

// RES-13: whether a Bell state's results disagree in a basis (bit 0 = +1
// eigenvalue). Phi+: ZZ corr, XX corr, YY anti; Psi+: ZZ anti, XX corr, YY
// corr; Phi-: ZZ corr, XX anti, YY corr; Psi-: all anti.
bool AntiCorrelated(pv1::BellState bell, pv1::Basis basis) {
  const bool z = basis == pv1::BASIS_Z, x = basis == pv1::BASIS_X;
  switch (bell) {
    case pv1::BELL_STATE_PHI_PLUS:
      return !z && !x;
    case pv1::BELL_STATE_PSI_PLUS:
      return z;
    case pv1::BELL_STATE_PHI_MINUS:
      return x;
    default:
      return true;  // PSI_MINUS
  }
}

void AddCounts(const std::map<std::string, uint64_t>& counts,
               google::protobuf::RepeatedPtrField<v1::CountByReason>* out) {
  for (const auto& [reason, count] : counts) {  // std::map: sorted by name
    v1::CountByReason* c = out->Add();
    c->set_reason(reason);
    c->set_count(count);
  }
}

class Summarizer {
 public:
  Summarizer(const Topology& topology, const std::string& backend)
      : topology_(topology), connections_(topology) {
    summary_.set_backend(backend);
    summary_.set_seed(topology.seed);
    summary_.set_emulated_s(topology.duration_s);
    summary_.set_topology(topology.name);
    end_ns_ = static_cast<int64_t>(std::llround(topology.duration_s * 1e9));
    for (const LinkSpec& l : topology.links) links_[l.name].spec = &l;
  }

  // RES-17: bad lines are skipped and counted, an unreadable file is listed.
  void ReadFile(const std::string& path, const std::string& display, const std::string& node) {
    uint64_t malformed = 0;
    absl::Status s = ForEachTraceRecord(
        path, [&](v1::TraceRecord&& r) { Record(node, r); }, &malformed);
    total_malformed_ += malformed;
    if (!s.ok()) summary_.add_missing_traces(display);
  }

  v1::Summary Finish();

 private:
  // The link a record at `node` belongs to: `name` if given, else the link to
  // `remote`. Null (and counted) when it is not a link of `node`.
  LinkState* LinkOf(const std::string& node, const std::string& name, const std::string& remote) {
    const LinkSpec* spec =
        name.empty() ? topology_.LinkBetween(node, remote) : topology_.FindLink(name);
    if (spec == nullptr || (spec->a != node && spec->b != node)) {
      ++unattributed_;
      return nullptr;
    }
    return &links_[spec->name];
  }

  void Record(const std::string& file_node, const v1::TraceRecord& r);
  void FinishLink(LinkState& s, v1::LinkSummary* out);

  const Topology& topology_;
  ConnectionSummarizer connections_;
  v1::Summary summary_;
  int64_t end_ns_ = 0;
  std::map<std::string, LinkState> links_;
  std::map<std::string, uint64_t> drops_;
  uint64_t total_malformed_ = 0;
  uint64_t unattributed_ = 0;
};

void Summarizer::Record(const std::string& file_node, const v1::TraceRecord& r) {
  const std::string& node = r.node().empty() ? file_node : r.node();
  const int64_t t = static_cast<int64_t>(r.time_ns());
  switch (r.event_case()) {
    case v1::TraceRecord::kCreate: {
      // RES-12: an accepted CREATE (create_id != 0) starts its request's latency clock.
      if (r.create_id() == 0) break;
      LinkState* s = LinkOf(node, "", r.create().remote_node());
      if (s == nullptr) break;
      ++s->creates;
      s->create_ns.try_emplace(RequestKey{node, r.create_id()}, t);
      break;
    }
    case v1::TraceRecord::kOk: {
      const lv1::Ok& ok = r.ok();
      LinkState* s = LinkOf(node, ok.link(), ok.remote_node());
      if (s == nullptr) break;
      const int side = node == s->spec->a ? 0 : 1;
      ++s->oks;
      OkSeen seen;
      seen.t_ns = t;
      seen.bell = ok.bell_state();
      seen.herald_seq = ok.herald_seq();
      seen.basis = ok.basis();
      seen.result = ok.result();
      seen.estimated_fidelity = ok.estimated_fidelity();
      seen.create_id = ok.create_id();
      const PairKey key{ok.pair().origin(), ok.pair().sequence()};
      if (!s->ok[side].emplace(key, seen).second) ++s->repeated_oks;
      if (ok.pair().origin() == node) {
        s->origin_oks[RequestKey{node, ok.create_id()}].emplace_back(t, ok.pair().sequence());
      }
      break;
    }
    case v1::TraceRecord::kErr: {
      const lv1::Err& err = r.err();
      LinkState* s = LinkOf(node, err.link(), "");
      if (s == nullptr) break;
      ++s->errors[EnumName(lv1::ErrorCode_Name(err.code()), err.code())];
      break;
    }
    case v1::TraceRecord::kDrop: {
      // RES-15: every drop counts in the run's drops; one naming a link also
      // counts as that link's discard.
      const std::string reason =
          EnumName(v1::DropReason_Name(r.drop().reason()), r.drop().reason());
      ++drops_[reason];
      if (!r.drop().link().empty()) {
        auto it = links_.find(r.drop().link());
        if (it == links_.end()) {
          ++unattributed_;
        } else {
          ++it->second.discards[reason];
        }
      }
      break;
    }
    case v1::TraceRecord::kLinkBusy: {
      LinkState* s = LinkOf(node, r.link_busy().link(), "");
      if (s == nullptr) break;
      if (node == s->spec->a) s->busy.emplace_back(t, r.link_busy().busy());  // RES-9: end a
      break;
    }
    case v1::TraceRecord::kHeraldTruth: {
      auto it = links_.find(r.herald_truth().link());
      if (it == links_.end()) {
        ++unattributed_;
        break;
      }
      it->second.truth.try_emplace(r.herald_truth().pair_seq(), r.herald_truth().true_fidelity());
      break;
    }
    case v1::TraceRecord::kBatch: {
      const v1::Batch& b = r.batch();
      auto it = links_.find(b.link());
      if (it == links_.end()) {
        ++unattributed_;
        break;
      }
      LinkState& s = it->second;
      s.attempts += b.attempts();
      // RES-14: the alpha the batch actually used, when recorded.
      if (b.attempts() > 0 && (b.alpha_a() > 0 || b.alpha_b() > 0)) {
        const double p = s.spec->scheme == HeraldingScheme::kSingleClick
                             ? SingleClick(*s.spec, b.alpha_a(), b.alpha_b()).total()
                             : SuccessProbability(*s.spec, 0);
        s.p_weighted += p * static_cast<double>(b.attempts());
        s.p_attempts += b.attempts();
      }
      break;
    }
    case v1::TraceRecord::kIntercepted: {  // RES-15a
      auto it = links_.find(r.intercepted().link());
      if (it == links_.end()) {
        ++unattributed_;
        break;
      }
      ++it->second.intercepted;
      break;
    }
    case v1::TraceRecord::kLinkLiveness: {  // RES-15b
      LinkState* s = LinkOf(node, r.link_liveness().link(), "");
      if (s == nullptr) break;
      if (!r.link_liveness().up()) ++s->downs[node == s->spec->a ? 0 : 1];
      break;
    }
    case v1::TraceRecord::EVENT_NOT_SET:
      break;
    default:  // network records and pair_truth (RES-20..RES-30)
      connections_.Record(node, r);
      break;
  }
}

void Summarizer::FinishLink(LinkState& s, v1::LinkSummary* out) {
  const LinkSpec& spec = *s.spec;
  out->set_name(spec.name);
  out->set_a(spec.a);
  out->set_b(spec.b);
  out->set_scheme(SchemeName(spec.scheme));
  out->set_attempts(s.attempts);
  out->set_creates(s.creates);
  out->set_oks(s.oks);

  // RES-9: busy intervals from end a's LinkBusy records, in time order; a link
  // still busy at the end counts until emulated_s.
  std::stable_sort(s.busy.begin(), s.busy.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::pair<int64_t, int64_t>> intervals;
  std::optional<int64_t> since;
  for (const auto& [t, busy] : s.busy) {
    if (busy && !since) since = t;
    if (!busy && since) {
      intervals.emplace_back(*since, t);
      since.reset();
    }
  }
  if (since) intervals.emplace_back(*since, std::max(*since, end_ns_));
  std::vector<int64_t> busy_before;  // busy time before each interval
  int64_t busy_ns = 0;
  for (const auto& [from, to] : intervals) {
    busy_before.push_back(busy_ns);
    busy_ns += to - from;
  }
  out->set_busy_s(static_cast<double>(busy_ns) * 1e-9);
  // Busy time elapsed up to t (intervals are disjoint and in time order).
  auto busy_clock = [&](int64_t t) -> int64_t {
    auto it = std::upper_bound(intervals.begin(), intervals.end(), t,
                               [](int64_t x, const auto& iv) { return x < iv.first; });
    if (it == intervals.begin()) return 0;
    const size_t i = static_cast<size_t>(it - intervals.begin()) - 1;
    return busy_before[i] +
           std::min(t - intervals[i].first, intervals[i].second - intervals[i].first);
  };
  for (auto& [request, oks] : s.origin_oks) std::sort(oks.begin(), oks.end());

  // RES-10: a pair is delivered when both ends traced an OK for its id.
  std::vector<int64_t> delivered_ns;
  Stats truth, estimate, latency;
  uint64_t inconsistent = s.repeated_oks;
  uint64_t one_end = 0;
  uint64_t measured[4] = {0, 0, 0, 0}, qber_errors[4] = {0, 0, 0, 0};  // by Basis
  for (const auto& [key, at_b] : s.ok[1]) {
    if (!s.ok[0].contains(key)) ++one_end;
  }
  for (const auto& [key, at_a] : s.ok[0]) {
    auto it = s.ok[1].find(key);
    if (it == s.ok[1].end()) {
      ++one_end;
      continue;
    }
    const OkSeen& at_b = it->second;
    const std::string& origin = key.first;
    const OkSeen& o = origin == spec.b ? at_b : at_a;  // the origin's view
    delivered_ns.push_back(std::max(at_a.t_ns, at_b.t_ns));
    if (at_a.bell != at_b.bell || at_a.herald_seq != at_b.herald_seq) ++inconsistent;  // RES-16

    // RES-11: fidelity joins on (link, herald_seq).
    if (auto t = s.truth.find(o.herald_seq); t != s.truth.end()) truth.Add(t->second);
    estimate.Add(o.estimated_fidelity);

    // RES-12: latency at the origin from the later of the CREATE and the
    // previous OK of the same request.
    if (origin == spec.a || origin == spec.b) {
      const RequestKey request{origin, o.create_id};
      std::optional<int64_t> from;
      if (auto c = s.create_ns.find(request); c != s.create_ns.end()) from = c->second;
      auto oks = s.origin_oks.find(request);
      if (oks != s.origin_oks.end()) {
        const auto& v = oks->second;
        auto self = std::lower_bound(v.begin(), v.end(), std::pair{o.t_ns, key.second});
        if (self != v.begin()) from = std::max(from.value_or(INT64_MIN), std::prev(self)->first);
      }
      if (from) latency.Add(static_cast<double>(o.t_ns - *from) * 1e-9);
    }

    // RES-13: QBER over pairs measured in the same basis at both ends.
    if (at_a.basis != pv1::BASIS_UNSPECIFIED && at_a.basis == at_b.basis &&
        at_a.basis <= pv1::BASIS_Y && o.bell != pv1::BELL_STATE_UNSPECIFIED) {
      ++measured[at_a.basis];
      const bool differ = (at_a.result != 0) != (at_b.result != 0);
      if (differ != AntiCorrelated(o.bell, at_a.basis)) ++qber_errors[at_a.basis];
    }
  }
  const uint64_t pairs = delivered_ns.size();
  out->set_pairs(pairs);
  out->set_pairs_one_end(one_end);
  out->set_inconsistent_pairs(inconsistent);

  // RES-10: rate over busy time; standard error from the inter-delivery times
  // on the busy clock, rate * cv / sqrt(N).
  const double busy_s = out->busy_s();
  const double rate = busy_s > 0 ? static_cast<double>(pairs) / busy_s : 0.0;
  out->set_rate_hz(rate);
  std::sort(delivered_ns.begin(), delivered_ns.end());
  Stats gaps;
  int64_t previous = 0;
  for (int64_t t : delivered_ns) {
    const int64_t b = busy_clock(t);
    gaps.Add(static_cast<double>(b - previous) * 1e-9);
    previous = b;
  }
  if (pairs >= 2 && gaps.mean() > 0) {
    out->set_rate_hz_stderr(rate * (gaps.sd() / gaps.mean()) /
                            std::sqrt(static_cast<double>(pairs)));
  }

  out->set_true_fidelity_mean(truth.mean());
  out->set_true_fidelity_stderr(truth.stderr_mean());
  out->set_fidelity_samples(truth.n());
  out->set_estimated_fidelity_mean(estimate.mean());
  out->set_latency_s_mean(latency.mean());
  out->set_latency_s_stderr(latency.stderr_mean());
  out->set_latency_samples(latency.n());

  auto qber = [&](pv1::Basis b) {
    return measured[b] > 0 ? static_cast<double>(qber_errors[b]) / static_cast<double>(measured[b])
                           : 0.0;
  };
  out->set_measured_pairs_z(measured[pv1::BASIS_Z]);
  out->set_measured_pairs_x(measured[pv1::BASIS_X]);
  out->set_measured_pairs_y(measured[pv1::BASIS_Y]);
  out->set_qber_errors_z(qber_errors[pv1::BASIS_Z]);
  out->set_qber_errors_x(qber_errors[pv1::BASIS_X]);
  out->set_qber_errors_y(qber_errors[pv1::BASIS_Y]);
  out->set_qber_z(qber(pv1::BASIS_Z));
  out->set_qber_x(qber(pv1::BASIS_X));
  out->set_qber_y(qber(pv1::BASIS_Y));
  AddCounts(s.errors, out->mutable_errors());
  AddCounts(s.discards, out->mutable_discards());
  out->set_intercepted(static_cast<uint32_t>(s.intercepted));
  out->set_downs_a(static_cast<uint32_t>(s.downs[0]));
  out->set_downs_b(static_cast<uint32_t>(s.downs[1]));

  // RES-14: model success probability: attempt-weighted over batches that
  // recorded alpha; else the link's fixed alpha; else the alpha the link layer
  // would choose for the first request on the link; schemes without alpha use
  // their own probability.
  double p = 0;
  if (s.p_attempts > 0) {
    p = s.p_weighted / static_cast<double>(s.p_attempts);
  } else if (spec.scheme != HeraldingScheme::kSingleClick) {
    p = SuccessProbability(spec, 0);
  } else if (spec.alpha) {
    p = SuccessProbability(spec, *spec.alpha);
  } else {
    for (const RequestSpec& q : topology_.requests) {
      if (topology_.LinkBetween(q.from, q.to) != &spec) continue;
      if (std::optional<double> alpha = ChooseAlpha(spec, q.min_fidelity)) {
        p = SuccessProbability(spec, *alpha);
      }
      break;
    }
  }
  const double cycle_s = absl::ToDoubleSeconds(AttemptCycle(spec));
  out->set_p_success_model(p);
  out->set_cycle_s(cycle_s);
  out->set_rate_model_hz(cycle_s > 0 ? p / cycle_s : 0.0);
}

v1::Summary Summarizer::Finish() {
  for (auto& [name, state] : links_) FinishLink(state, summary_.add_links());  // sorted by name
  AddCounts(drops_, summary_.mutable_drops());
  summary_.set_malformed_trace_lines(total_malformed_);
  summary_.set_unattributed_records(unattributed_);
  connections_.Finish(&summary_);
  return std::move(summary_);
}

}  // namespace

absl::StatusOr<v1::Summary> Summarize(const Topology& topology, const std::string& out_dir,
                                      const std::string& backend) {
  std::error_code ec;
  if (!std::filesystem::is_directory(out_dir, ec)) {
    return absl::NotFoundError(absl::StrCat(out_dir, ": not a results directory"));
  }
  Summarizer summarizer(topology, backend);
  std::vector<std::string> nodes;
  for (const NodeSpec& n : topology.nodes) nodes.push_back(n.name);
  std::sort(nodes.begin(), nodes.end());
  // RES-1a: each trace is NAME.pb or NAME.jsonl; a missing one is named by
  // its JSON lines form.
  auto read = [&](const std::string& stem, const std::string& node) {
    const std::string path = TraceFilePath(absl::StrCat(out_dir, "/", stem));
    summarizer.ReadFile(path, absl::EndsWith(path, ".pb") ? stem + ".pb" : stem + ".jsonl", node);
  };
  for (const std::string& node : nodes) read(absl::StrCat("nodes/", node), node);
  read("qworld", "qworld");
  v1::Summary summary = summarizer.Finish();
  SummarizeApps(topology, out_dir, &summary);
  SummarizeQkd(topology, out_dir, &summary);
  return summary;
}

std::string SummaryJson(const v1::Summary& summary) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;  // RES-6: snake_case keys, as in results.proto
  std::string json;
  // Printing a well-formed message cannot fail; the status is for bad UTF-8 in
  // strings, which the trace reader has already refused.
  (void)google::protobuf::util::MessageToJsonString(summary, &json, options);
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

absl::Status WriteSummary(const v1::Summary& summary, const std::string& path) {
  const std::string tmp = path + ".tmp";
  const std::string json = SummaryJson(summary);
  std::FILE* f = std::fopen(tmp.c_str(), "we");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  const bool written = std::fwrite(json.data(), 1, json.size(), f) == json.size();
  const bool closed = std::fclose(f) == 0;
  std::error_code ec;
  if (!written || !closed) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<v1::Summary> ReadSummary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  v1::Summary summary;
  const auto status = google::protobuf::util::JsonStringToMessage(ss.str(), &summary, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a qnet summary: ", std::string(status.message())));
  }
  return summary;
}

}  // namespace qnet::results
