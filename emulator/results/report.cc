// RenderReport: summary.json as a table for humans.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emulator/results/summary.h"

namespace qnet::results {
namespace {

// Left-aligned text columns, right-aligned numeric columns, two spaces apart.
std::string Table(const std::vector<std::vector<std::string>>& rows,
                  const std::vector<bool>& right_aligned) {
  std::vector<size_t> width(right_aligned.size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      absl::StrAppend(&line, i == 0 ? "" : "  ", right_aligned[i] ? pad : "", row[i],
                      right_aligned[i] ? "" : pad);
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string ShortReason(const std::string& reason) {
  for (const char* prefix : {"ERROR_CODE_", "DROP_REASON_"}) {
    if (absl::StartsWith(reason, prefix)) return reason.substr(std::string(prefix).size());
  }
  return reason;
}

std::string Counts(const google::protobuf::RepeatedPtrField<v1::CountByReason>& counts) {
  std::vector<std::string> parts;
  for (const v1::CountByReason& c : counts) {
    parts.push_back(absl::StrCat(ShortReason(c.reason()), " ", c.count()));
  }
  return absl::StrJoin(parts, ", ");
}

std::string Qber(const char* basis, uint64_t errors, uint64_t n) {
  return absl::StrFormat("%s %.2f%% (%d/%d)", basis, 100.0 * static_cast<double>(errors) / n,
                         errors, n);
}

// RES-33: one row per connection, then its circuits and counts.
std::string Connections(const v1::Summary& s) {
  if (s.connections().empty()) return "";
  std::vector<std::vector<std::string>> rows = {{"connection", "path", "pairs", "rate Hz", "F true",
                                                 "F est", "latency ms", "gap ms", "swaps",
                                                 "expiries", "reroutes", "one end"}};
  std::string notes;
  for (const v1::ConnectionSummary& c : s.connections()) {
    rows.push_back({
        c.name(),
        c.path().empty() ? absl::StrCat(c.from(), " > ", c.to(), " (no circuit)")
                         : absl::StrJoin(c.path(), " > "),
        absl::StrCat(c.pairs()),
        c.pairs() >= 2 ? absl::StrFormat("%.2f +- %.2f", c.rate_hz(), c.rate_hz_stderr())
                       : absl::StrFormat("%.2f", c.rate_hz()),
        c.fidelity_samples() >= 2
            ? absl::StrFormat("%.4f +- %.4f", c.true_fidelity_mean(), c.true_fidelity_stderr())
        : c.fidelity_samples() == 1 ? absl::StrFormat("%.4f", c.true_fidelity_mean())
                                    : "-",
        c.pairs() > 0 ? absl::StrFormat("%.4f", c.estimated_fidelity_mean()) : "-",
        c.pairs() > 0 ? absl::StrFormat("%.2f", c.latency_s_mean() * 1e3) : "-",
        c.pairs() >= 2 ? absl::StrFormat("%.2f", c.mean_time_between_deliveries_s() * 1e3) : "-",
        absl::StrCat(c.swaps()),
        absl::StrCat(c.expiries()),
        absl::StrCat(c.reroutes()),
        absl::StrCat(c.pairs_one_end()),
    });
    for (int i = 1; i < c.circuits_size(); ++i) {
      absl::StrAppend(&notes, c.name(), ": rerouted at ",
                      absl::StrFormat("%.6f", c.circuits(i).up_s()), " s over ",
                      absl::StrJoin(c.circuits(i).path(), " > "), "\n");
    }
    if (c.discards_size() > 0)
      absl::StrAppend(&notes, c.name(), ": discards ", Counts(c.discards()), "\n");
    std::vector<std::string> qber;  // RES-29
    if (c.measured_pairs_z() > 0) qber.push_back(Qber("Z", c.qber_errors_z(), c.measured_pairs_z()));
    if (c.measured_pairs_x() > 0) qber.push_back(Qber("X", c.qber_errors_x(), c.measured_pairs_x()));
    if (c.measured_pairs_y() > 0) qber.push_back(Qber("Y", c.qber_errors_y(), c.measured_pairs_y()));
    if (!qber.empty()) absl::StrAppend(&notes, c.name(), ": QBER ", absl::StrJoin(qber, ", "), "\n");
    if (c.pairs_in_flight() > 0) {
      absl::StrAppend(&notes, c.name(), ": ", c.pairs_in_flight(),
                      " pair(s) still on their way to the tail at the end\n");
    }
  }
  std::string out =
      Table(rows, {false, false, true, true, true, true, true, true, true, true, true, true});
  if (!notes.empty()) absl::StrAppend(&out, notes);
  return out;
}

// RES-33: one row per app with its status and results (a qkd app's are in
// the QKD table, RES-39).
std::string Apps(const v1::Summary& s) {
  if (s.apps().empty()) return "";
  std::vector<std::vector<std::string>> rows = {{"app", "kind", "ends", "status", "results"}};
  for (const v1::AppSummary& a : s.apps()) {
    std::vector<std::string> parts;
    if (a.kind() == "qkd") {
      parts.push_back("see the QKD table");  // RES-39 has its figures
    } else {
      for (const v1::NamedValue& r : a.results())
        parts.push_back(absl::StrFormat("%s %g", r.name(), r.value()));
    }
    if (!a.error().empty()) parts.push_back(a.error());
    rows.push_back({a.name(), a.kind(), absl::StrCat(a.node(), " - ", a.peer()), a.status(),
                    absl::StrJoin(parts, ", ")});
  }
  return Table(rows, {false, false, false, false, false});
}

// RES-39: one row per QKD session, then the abort reasons and errors.
std::string Qkd(const v1::Summary& s) {
  if (s.qkd().empty()) return "";
  std::vector<std::vector<std::string>> rows = {{"qkd", "ends", "QBER Z %", "QBER X %", "sifted",
                                                 "secret", "net", "rate bit/s", "f", "aborted",
                                                 "keys match"}};
  std::string notes;
  for (const v1::QkdSummary& q : s.qkd()) {
    rows.push_back({
        q.name(),
        absl::StrCat(q.from(), " -> ", q.to()),
        absl::StrFormat("%.2f", 100 * q.qber_z()),
        absl::StrFormat("%.2f", 100 * q.qber_x()),
        absl::StrCat(q.sifted_bits()),
        absl::StrCat(q.secret_bits()),
        absl::StrCat(q.net_key_bits()),
        absl::StrFormat("%.1f", q.key_rate_bps()),
        q.ec_efficiency() > 0 ? absl::StrFormat("%.3f", q.ec_efficiency()) : "-",
        q.aborted() ? "yes" : "no",
        q.keys_match() ? absl::StrFormat("yes (%d bits)", q.key_bits()) : "no",
    });
    if (q.aborted()) absl::StrAppend(&notes, q.name(), ": aborted: ", q.abort_reason(), "\n");
    if (!q.error().empty()) absl::StrAppend(&notes, q.name(), ": ", q.error(), "\n");
    if (!q.aborted() && q.net_key_bits() < 0) {
      absl::StrAppend(&notes, q.name(), ": authentication used ", -q.net_key_bits(),
                      " pre-shared bits more than the session made (blocks of about 10^5 bits "
                      "pay for their tags; specs/qkd.md QKD-R6)\n");
    }
  }
  std::string out =
      Table(rows, {false, false, true, true, true, true, true, true, true, false, false});
  absl::StrAppend(&out, notes);
  return out;
}

}  // namespace

std::string RenderReport(const v1::Summary& s) {
  std::string out = absl::StrFormat(
      "qnet report: topology \"%s\", backend %s, seed %d, %g s emulated\n\n", s.topology(),
      s.backend().empty() ? "unknown" : s.backend(), s.seed(), s.emulated_s());
  std::vector<std::vector<std::string>> rows = {{"link", "scheme", "ends", "pairs", "busy s",
                                                 "rate Hz", "model Hz", "F true", "F est",
                                                 "latency ms", "attempts"}};
  for (const v1::LinkSummary& l : s.links()) {
    rows.push_back({
        l.name(),
        l.scheme(),
        absl::StrCat(l.a(), " - ", l.b()),
        absl::StrCat(l.pairs()),
        absl::StrFormat("%.3f", l.busy_s()),
        l.pairs() >= 2 ? absl::StrFormat("%.2f +- %.2f", l.rate_hz(), l.rate_hz_stderr())
                       : absl::StrFormat("%.2f", l.rate_hz()),
        absl::StrFormat("%.2f", l.rate_model_hz()),
        l.fidelity_samples() >= 2
            ? absl::StrFormat("%.4f +- %.4f", l.true_fidelity_mean(), l.true_fidelity_stderr())
        : l.fidelity_samples() == 1 ? absl::StrFormat("%.4f", l.true_fidelity_mean())
                                    : "-",
        l.pairs() > 0 ? absl::StrFormat("%.4f", l.estimated_fidelity_mean()) : "-",
        l.latency_samples() > 0 ? absl::StrFormat("%.2f", l.latency_s_mean() * 1e3) : "-",
        absl::StrCat(l.attempts()),
    });
  }
  if (s.links().empty()) rows.push_back({"(no links)"});
  out += Table(rows, {false, false, false, true, true, true, true, true, true, true, true});

  const std::string connections = Connections(s);
  if (!connections.empty()) absl::StrAppend(&out, "\n", connections);
  const std::string apps = Apps(s);
  if (!apps.empty()) absl::StrAppend(&out, "\n", apps);
  const std::string qkd = Qkd(s);
  if (!qkd.empty()) absl::StrAppend(&out, "\n", qkd);

  std::string notes;
  for (const v1::LinkSummary& l : s.links()) {
    std::vector<std::string> qber;
    if (l.measured_pairs_z() > 0)
      qber.push_back(Qber("Z", l.qber_errors_z(), l.measured_pairs_z()));
    if (l.measured_pairs_x() > 0)
      qber.push_back(Qber("X", l.qber_errors_x(), l.measured_pairs_x()));
    if (l.measured_pairs_y() > 0)
      qber.push_back(Qber("Y", l.qber_errors_y(), l.measured_pairs_y()));
    if (!qber.empty())
      absl::StrAppend(&notes, l.name(), ": QBER ", absl::StrJoin(qber, ", "), "\n");
    if (l.intercepted() > 0) {  // RES-15a
      absl::StrAppend(&notes, l.name(), ": eavesdropper intercepted ", l.intercepted(),
                      " pair(s)\n");
    }
    if (l.downs_a() > 0 || l.downs_b() > 0) {  // RES-15b
      absl::StrAppend(&notes, l.name(), ": went down ", l.downs_a(), " time(s) at ", l.a(), ", ",
                      l.downs_b(), " at ", l.b(), "\n");
    }
    if (l.errors_size() > 0)
      absl::StrAppend(&notes, l.name(), ": errors ", Counts(l.errors()), "\n");
    if (l.discards_size() > 0) {
      absl::StrAppend(&notes, l.name(), ": discards ", Counts(l.discards()), "\n");
    }
    if (l.pairs_one_end() > 0 || l.inconsistent_pairs() > 0) {
      absl::StrAppend(&notes, l.name(), ": ", l.pairs_one_end(),
                      " pair(s) delivered at one end only, ", l.inconsistent_pairs(),
                      " inconsistent\n");
    }
  }
  if (!notes.empty()) absl::StrAppend(&out, "\n", notes);
  absl::StrAppend(&out, "\ndrops: ", s.drops().empty() ? "none" : Counts(s.drops()), "\n");
  if (!s.missing_traces().empty()) {
    absl::StrAppend(&out, "warning: missing trace files: ", absl::StrJoin(s.missing_traces(), ", "),
                    "\n");
  }
  if (s.malformed_trace_lines() > 0) {
    absl::StrAppend(&out, "warning: ", s.malformed_trace_lines(),
                    " malformed trace line(s) skipped\n");
  }
  if (s.unattributed_records() > 0) {
    absl::StrAppend(&out, "warning: ", s.unattributed_records(),
                    " trace record(s) name a link or node outside the topology\n");
  }
  return out;
}

}  // namespace qnet::results
