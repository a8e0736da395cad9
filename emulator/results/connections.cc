// Connection and app figures (specs/topology.md RES-20..RES-33; each figure's
// definition is cited where it is computed).
#include "emulator/results/connections.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "emulator/results/app_result_file.h"
#include "emulator/results/stats.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace qnet::results {
namespace {

int64_t Nanos(double seconds) { return static_cast<int64_t>(std::llround(seconds * 1e9)); }
double Seconds(int64_t ns) { return static_cast<double>(ns) * 1e-9; }

// Head of a circuit key "<head>/<number>".
std::string HeadOf(const std::string& key) { return key.substr(0, key.rfind('/')); }

}  // namespace

ConnectionSummarizer::ConnectionSummarizer(const Topology& topology) : topology_(topology) {}

ConnectionSummarizer::Circuit& ConnectionSummarizer::CircuitOf(const std::string& key, int64_t t) {
  Circuit& c = circuits_[key];
  if (c.key.empty()) {
    c.key = key;
    c.head = HeadOf(key);
  }
  if (c.first_seen_ns < 0 || t < c.first_seen_ns) c.first_seen_ns = t;
  return c;
}

bool ConnectionSummarizer::Record(const std::string& file_node, const v1::TraceRecord& r) {
  const std::string& node = r.node().empty() ? file_node : r.node();
  const int64_t t = static_cast<int64_t>(r.time_ns());
  switch (r.event_case()) {
    case v1::TraceRecord::kCircuitEvent: {
      const v1::CircuitEvent& e = r.circuit_event();
      if (e.circuit().empty()) return true;
      Circuit& c = CircuitOf(e.circuit(), t);
      if (c.path.empty() || node == c.head) c.path.assign(e.path().begin(), e.path().end());
      if (node == c.head) {
        if (e.up() && c.up_ns < 0) c.up_ns = t;
        if (!e.up() && c.down_ns < 0) {
          c.down_ns = t;
          c.down_reason = e.reason();
        }
      } else if (!e.up() && !c.path.empty() && node == c.path.back()) {
        c.tail_down = true;
      }
      return true;
    }
    case v1::TraceRecord::kSwapEvent:
      if (!r.swap_event().circuit().empty()) ++CircuitOf(r.swap_event().circuit(), t).swaps;
      return true;
    case v1::TraceRecord::kEndPair: {
      const v1::EndPairEvent& e = r.end_pair();
      if (e.circuit().empty()) return true;
      Circuit& c = CircuitOf(e.circuit(), t);
      if (c.path.empty()) c.path.assign(e.path().begin(), e.path().end());
      const int64_t delivered = e.delivered_ns() != 0 ? static_cast<int64_t>(e.delivered_ns()) : t;
      Measured m;
      m.measured = e.measured();
      m.basis = e.basis();
      m.result = e.result();
      if (e.role() == "head") {
        HeadPair p;
        p.delivered_ns = delivered;
        p.estimated_fidelity = e.estimated_fidelity();
        p.label = e.label().empty() ? absl::StrCat(e.circuit(), "/", e.seq()) : e.label();
        p.measured = m;
        c.head_pairs.try_emplace(e.seq(), std::move(p));
      } else if (e.role() == "tail") {
        c.tail_pairs.try_emplace(e.seq(), TailPair{delivered, m});
      }
      return true;
    }
    case v1::TraceRecord::kPairExpired:
      if (!r.pair_expired().circuit().empty())
        CircuitOf(r.pair_expired().circuit(), t).expired.insert(r.pair_expired().seq());
      return true;
    case v1::TraceRecord::kPairDiscarded:
      if (!r.pair_discarded().circuit().empty()) {
        const std::string reason =
            r.pair_discarded().reason().empty() ? "unspecified" : r.pair_discarded().reason();
        ++CircuitOf(r.pair_discarded().circuit(), t).discards[reason];
      }
      return true;
    case v1::TraceRecord::kPairTruth:  // RES-26: the first record of a label counts
      truth_.try_emplace(r.pair_truth().label(), r.pair_truth().true_fidelity());
      return true;
    default:
      return false;
  }
}

// RES-21: circuits belong to the connection with the same (from, to) as their
// (head, tail); among several such connections, a circuit goes to the first
// started one without a circuit yet, else to the one whose latest circuit went
// down most recently before it came up.
void ConnectionSummarizer::Attribute() {
  std::vector<Circuit*> order;
  for (auto& [key, c] : circuits_) {
    if (!c.path.empty()) order.push_back(&c);
  }
  auto up = [](const Circuit* c) { return c->up_ns >= 0 ? c->up_ns : c->first_seen_ns; };
  std::stable_sort(order.begin(), order.end(),
                   [&](const Circuit* x, const Circuit* y) { return up(x) < up(y); });
  const auto& connections = topology_.connections;
  std::vector<const Circuit*> latest(connections.size(), nullptr);
  for (Circuit* c : order) {
    std::vector<int> candidates;
    for (size_t i = 0; i < connections.size(); ++i) {
      if (connections[i].from == c->head && connections[i].to == c->path.back())
        candidates.push_back(static_cast<int>(i));
    }
    if (candidates.empty()) continue;
    int chosen = -1;
    for (int i : candidates) {
      if (latest[i] == nullptr && Nanos(connections[i].start_s) <= up(c)) {
        chosen = i;
        break;
      }
    }
    if (chosen < 0) {
      int64_t best = std::numeric_limits<int64_t>::min();
      for (int i : candidates) {
        const Circuit* l = latest[i];
        if (l == nullptr || l->down_ns < 0 || l->down_ns > up(c)) continue;
        if (l->down_ns > best) {
          best = l->down_ns;
          chosen = i;
        }
      }
    }
    if (chosen < 0) chosen = candidates.front();
    c->connection = chosen;
    latest[chosen] = c;
  }
}

void ConnectionSummarizer::Finish(v1::Summary* summary) {
  Attribute();
  for (size_t i = 0; i < topology_.connections.size(); ++i)
    FinishConnection(static_cast<int>(i), summary->add_connections());
}

void ConnectionSummarizer::FinishConnection(int index, v1::ConnectionSummary* out) {
  const ConnectionSpec& spec = topology_.connections[index];
  out->set_name(spec.name);
  out->set_from(spec.from);
  out->set_to(spec.to);
  out->set_pairs_requested(spec.pairs);
  out->set_start_s(spec.start_s);
  const int64_t start_ns = Nanos(spec.start_s);
  const int64_t end_ns = Nanos(topology_.duration_s);

  std::vector<const Circuit*> mine;
  for (const auto& [key, c] : circuits_)
    if (c.connection == index) mine.push_back(&c);
  auto up = [](const Circuit* c) { return c->up_ns >= 0 ? c->up_ns : c->first_seen_ns; };
  std::stable_sort(mine.begin(), mine.end(),
                   [&](const Circuit* x, const Circuit* y) { return up(x) < up(y); });

  struct Delivered {
    int64_t head_ns;
    const HeadPair* pair;
  };
  // RES-29, indexed by physical.v1.Basis (X 1, Y 2, Z 3).
  uint32_t same_basis[4] = {0, 0, 0, 0}, disagree[4] = {0, 0, 0, 0};
  std::vector<Delivered> delivered;
  std::vector<int64_t> head_times;  // every head delivery, for latency (RES-25)
  uint32_t one_end = 0, in_flight = 0, expiries = 0, swaps = 0;
  std::map<std::string, uint64_t> discards;
  for (const Circuit* c : mine) {
    v1::CircuitSummary* cs = out->add_circuits();
    cs->set_circuit(c->key);
    for (const std::string& n : c->path) cs->add_path(n);
    cs->set_up_s(Seconds(up(c)));
    if (c->down_ns >= 0) {
      cs->set_down_s(Seconds(c->down_ns));
      cs->set_down_reason(c->down_reason);
    }
    swaps += c->swaps;
    expiries += static_cast<uint32_t>(c->expired.size());  // RES-27
    for (const auto& [reason, n] : c->discards) discards[reason] += n;
    const uint64_t last_tail_seq = c->tail_pairs.empty() ? 0 : c->tail_pairs.rbegin()->first;
    uint32_t circuit_pairs = 0;
    for (const auto& [seq, p] : c->head_pairs) {
      head_times.push_back(p.delivered_ns);
      if (c->expired.contains(seq)) continue;
      if (auto tail = c->tail_pairs.find(seq); tail != c->tail_pairs.end()) {  // RES-22
        delivered.push_back({p.delivered_ns, &p});
        ++circuit_pairs;
        const Measured& h = p.measured;
        const Measured& t = tail->second.measured;
        if (h.measured && t.measured && h.basis == t.basis && h.basis >= 1 && h.basis <= 3) {
          ++same_basis[h.basis];
          // RES-29: the PHI_PLUS frame: equal in X and Z, opposite in Y.
          const bool equal = h.result == t.result;
          if (equal == (h.basis == physical::v1::BASIS_Y)) ++disagree[h.basis];
        }
      } else if (seq > last_tail_seq && !c->tail_down && c->down_ns < 0) {
        ++in_flight;  // RES-28: the Deliver was still on its way when the run ended
      } else {
        ++one_end;
      }
    }
    for (const auto& [seq, t] : c->tail_pairs)  // RES-28: the tail alone
      if (!c->head_pairs.contains(seq) && !c->expired.contains(seq)) ++one_end;
    cs->set_pairs(circuit_pairs);
  }
  if (!mine.empty()) {
    for (const std::string& n : mine.front()->path) out->add_path(n);
    out->set_reroutes(static_cast<uint32_t>(mine.size() - 1));  // RES-23
  }
  std::stable_sort(delivered.begin(), delivered.end(),
                   [](const Delivered& x, const Delivered& y) { return x.head_ns < y.head_ns; });
  std::sort(head_times.begin(), head_times.end());
  const uint32_t pairs = static_cast<uint32_t>(delivered.size());
  out->set_pairs(pairs);
  out->set_pairs_one_end(one_end);
  out->set_pairs_in_flight(in_flight);
  out->set_expiries(expiries);
  out->set_swaps(swaps);
  auto qber = [&](int basis) {
    return same_basis[basis] > 0 ? static_cast<double>(disagree[basis]) / same_basis[basis] : 0.0;
  };
  out->set_measured_pairs_x(same_basis[physical::v1::BASIS_X]);
  out->set_measured_pairs_y(same_basis[physical::v1::BASIS_Y]);
  out->set_measured_pairs_z(same_basis[physical::v1::BASIS_Z]);
  out->set_qber_errors_x(disagree[physical::v1::BASIS_X]);
  out->set_qber_errors_y(disagree[physical::v1::BASIS_Y]);
  out->set_qber_errors_z(disagree[physical::v1::BASIS_Z]);
  out->set_qber_x(qber(physical::v1::BASIS_X));
  out->set_qber_y(qber(physical::v1::BASIS_Y));
  out->set_qber_z(qber(physical::v1::BASIS_Z));
  for (const auto& [reason, n] : discards) {
    v1::CountByReason* c = out->add_discards();
    c->set_reason(reason);
    c->set_count(static_cast<uint32_t>(n));
  }

  // RES-24: rate over the active time, from start-s to the last delivery when
  // the connection got all the pairs it asked for, else to the run's end.
  const bool complete = spec.pairs > 0 && pairs >= spec.pairs;
  const int64_t active_end = complete ? delivered.back().head_ns : end_ns;
  const double active_s = std::max(0.0, Seconds(active_end - start_ns));
  out->set_active_s(active_s);
  const double rate = active_s > 0 ? pairs / active_s : 0.0;
  out->set_rate_hz(rate);
  Stats gaps_from_start, gaps, truth, estimate, latency;
  int64_t previous = start_ns;
  for (size_t i = 0; i < delivered.size(); ++i) {
    gaps_from_start.Add(Seconds(delivered[i].head_ns - previous));
    if (i > 0) gaps.Add(Seconds(delivered[i].head_ns - previous));
    previous = delivered[i].head_ns;
    // RES-25: from the later of start-s and the previous delivery at the head.
    auto self = std::lower_bound(head_times.begin(), head_times.end(), delivered[i].head_ns);
    const int64_t from = self == head_times.begin() ? start_ns : std::max(start_ns, *(self - 1));
    latency.Add(Seconds(delivered[i].head_ns - from));
    estimate.Add(delivered[i].pair->estimated_fidelity);
    auto t = truth_.find(delivered[i].pair->label);  // RES-26
    if (t != truth_.end() && t->second >= 0) truth.Add(t->second);
  }
  if (pairs >= 2 && gaps_from_start.mean() > 0) {
    out->set_rate_hz_stderr(rate * (gaps_from_start.sd() / gaps_from_start.mean()) /
                            std::sqrt(static_cast<double>(pairs)));
  }
  // RES-30: the mean gap between consecutive deliveries at the head.
  out->set_mean_time_between_deliveries_s(gaps.mean());
  out->set_time_between_deliveries_stderr_s(gaps.stderr_mean());
  out->set_latency_s_mean(latency.mean());
  out->set_latency_s_stderr(latency.stderr_mean());
  out->set_true_fidelity_mean(truth.mean());
  out->set_true_fidelity_stderr(truth.stderr_mean());
  out->set_fidelity_samples(static_cast<uint32_t>(truth.n()));
  out->set_estimated_fidelity_mean(estimate.mean());
}

namespace {

// One app result file, parsed (RES-31), and which program of the pair wrote it.
struct AppFile : AppResultFile {
  std::string suffix;
};

AppFile ReadAppFile(const std::string& dir, const std::string& file, const std::string& suffix) {
  AppFile f;
  static_cast<AppResultFile&>(f) = ReadAppResultFile(dir, file);
  f.suffix = suffix;
  return f;
}

}  // namespace

void SummarizeApps(const Topology& topology, const std::string& out_dir, v1::Summary* summary) {
  const std::string dir = out_dir + "/apps";
  std::vector<std::string> listing;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    listing.push_back(entry.path().filename().string());
  std::sort(listing.begin(), listing.end());
  for (const AppSpec& app : topology.apps) {
    v1::AppSummary* out = summary->add_apps();
    out->set_name(app.name);
    out->set_kind(app.kind);
    out->set_node(app.node);
    out->set_peer(app.peer);
    // RES-31: NAME.json first, then NAME.SUFFIX.json (one per program of the
    // pair, e.g. NAME.peer.json) in name order.
    std::vector<AppFile> files = {ReadAppFile(dir, app.name + ".json", "")};
    for (const std::string& file : listing) {
      const std::string prefix = app.name + ".";
      if (file.size() <= prefix.size() + 5 || file.compare(0, prefix.size(), prefix) != 0 ||
          file.compare(file.size() - 5, 5, ".json") != 0)
        continue;
      const std::string suffix = file.substr(prefix.size(), file.size() - prefix.size() - 5);
      const std::string stem = file.substr(0, file.size() - 5);
      const bool other_app = std::any_of(topology.apps.begin(), topology.apps.end(),
                                         [&](const AppSpec& a) { return a.name == stem; });
      if (suffix.find('.') != std::string::npos || other_app) continue;
      files.push_back(ReadAppFile(dir, file, suffix));
    }
    if (!files.front().readable && files.size() == 1) {  // RES-32
      out->set_status(files.front().error.find("cannot open") != std::string::npos ? "missing"
                                                                                   : "malformed");
      out->set_error(files.front().error);
      continue;
    }
    // RES-31: numbers (and booleans as 0/1) into results, strings into texts,
    // both sorted by name; a field already taken by an earlier file is kept
    // as SUFFIX.field. Nested values are not copied.
    std::map<std::string, double> results;
    std::map<std::string, std::string> texts;
    std::vector<std::string> errors;
    std::string status;
    bool any_ok = false, all_ok = true;
    for (const AppFile& f : files) {
      if (!f.readable) {
        if (f.error.find("cannot open") == std::string::npos || f.suffix.empty())
          errors.push_back(f.error);
        continue;
      }
      auto key_of = [&](const std::string& key, bool taken) {
        return taken && !f.suffix.empty() ? absl::StrCat(f.suffix, ".", key) : key;
      };
      for (const auto& [key, value] : f.object.fields()) {
        switch (value.kind_case()) {
          case google::protobuf::Value::kNumberValue:
            results.try_emplace(key_of(key, results.contains(key)), value.number_value());
            break;
          case google::protobuf::Value::kBoolValue:
            results.try_emplace(key_of(key, results.contains(key)), value.bool_value() ? 1.0 : 0.0);
            if (key == "ok") {
              any_ok = true;
              all_ok = all_ok && value.bool_value();
            }
            break;
          case google::protobuf::Value::kStringValue:
            if (key == "status") {
              if (status.empty()) status = value.string_value();
            } else if (key == "error") {
              if (!value.string_value().empty())
                errors.push_back(absl::StrCat(f.name, ": ", value.string_value()));
            } else {
              texts.try_emplace(key_of(key, texts.contains(key)), value.string_value());
            }
            break;
          default:
            break;
        }
      }
    }
    // RES-32: "status" if a file gives one, else from "ok" (every file ok).
    if (status.empty()) status = any_ok ? (all_ok ? "ok" : "failed") : "unknown";
    out->set_status(status);
    for (const auto& [name, value] : results) {
      v1::NamedValue* r = out->add_results();
      r->set_name(name);
      r->set_value(value);
    }
    for (const auto& [name, text] : texts) {
      v1::NamedText* r = out->add_texts();
      r->set_name(name);
      r->set_text(text);
    }
    std::string error;
    for (const std::string& e : errors) absl::StrAppend(&error, error.empty() ? "" : "; ", e);
    out->set_error(error);
  }
}

}  // namespace qnet::results
