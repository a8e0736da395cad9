// Topology file loader (specs/topology.md TOPO-1..TOPO-13, TOPO-30..TOPO-38). The file is
// untrusted input: every check reports file, line, element and attribute, and
// all errors found are reported together (TOPO-3).
#include "stack/topology_loader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "stack/heralding_model.h"
#include "tinyxml2.h"

namespace qnet {
namespace {

constexpr size_t kMaxErrors = 20;
constexpr size_t kMaxFileBytes = 16 << 20;
// Emulated times are int64 nanoseconds; 1e9 s keeps every sum far from overflow.
constexpr double kMaxSeconds = 1e9;
constexpr double kInf = kInfiniteSeconds;

// What a numeric attribute accepts (TOPO-5): a domain, described by `text`, and
// a sanity cap beyond which values are refused as implausible.
struct Range {
  double lo;
  bool lo_open;
  double hi;
  bool hi_open;
  bool allow_inf;
  const char* text;  // "a number >= 0", used verbatim in errors
  double cap = std::numeric_limits<double>::max();
};

constexpr double kNoCap = std::numeric_limits<double>::max();
constexpr Range kProbability{0, false, 1, false, false, "a probability in [0, 1]"};
constexpr Range kPositiveProbability{0, true, 1, false, false, "a probability in (0, 1]"};
constexpr Range kAlpha{0, true, 0.5, false, false, "a number in (0, 0.5]"};
constexpr Range kWernerFidelity{0.25, false, 1, false, false, "a fidelity in [0.25, 1]"};
constexpr Range kFraction{0, false, 1, false, false, "a fraction in [0, 1]"};
constexpr Range kPositiveTime{0, true, kNoCap, false, false, "a time > 0", kMaxSeconds};
constexpr Range kNonNegativeTime{0, false, kNoCap, false, false, "a time >= 0", kMaxSeconds};
constexpr Range kPositiveTimeOrInf{0,          true, kNoCap, false, true, "a time > 0 or 'inf'",
                                   kMaxSeconds};
constexpr Range kDilation{1e-3, false, 1e6, false, false, "a number in [0.001, 1e6]"};
constexpr Range kLoss{0, false, kNoCap, false, false, "a number >= 0", 1000};
constexpr Range kLength{0, false, kNoCap, false, false, "a number >= 0", 1e6};
constexpr Range kRate{0, false, kNoCap, false, false, "a rate >= 0 (Hz)", 1e12};
constexpr Range kNonNegativeTimeOrInf{
    0, false, kNoCap, false, true, "a time >= 0 or 'inf'", kMaxSeconds};

constexpr std::pair<absl::string_view, BasisSet> kBasisWords[] = {{"z", BasisSet::kZ},
                                                                  {"x", BasisSet::kX},
                                                                  {"y", BasisSet::kY},
                                                                  {"xz", BasisSet::kXZ},
                                                                  {"xyz", BasisSet::kXYZ}};
std::vector<std::pair<absl::string_view, BasisSet>> BasisWords() {
  return {std::begin(kBasisWords), std::end(kBasisWords)};
}

struct Errors {
  std::string source;
  std::vector<std::string> list;
  void Add(std::string message) { list.push_back(std::move(message)); }
};

bool ValidName(absl::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

// A value from the file, bounded and printable, for an error message.
std::string Printable(absl::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < 40; ++i) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    out += absl::ascii_isprint(c) ? static_cast<char>(c) : '?';
  }
  if (v.size() > 40) out += "...";
  return out;
}

std::string Quote(absl::string_view v) { return absl::StrCat("'", Printable(v), "'"); }

// Reads the attributes of one element, recording errors against it.
class ElementReader {
 public:
  // `extra`: when set, unknown attributes land there (in file order) instead of
  // being refused (TOPO-33, <app> parameters).
  ElementReader(Errors* errors, const tinyxml2::XMLElement* e,
                std::initializer_list<absl::string_view> known,
                std::vector<std::pair<std::string, std::string>>* extra = nullptr)
      : errors_(errors), e_(e) {
    const char* name = e->Attribute("name");
    where_ = absl::StrCat(errors->source, ":", e->GetLineNum(), ": <", e->Name());
    if (name != nullptr) absl::StrAppend(&where_, " name=\"", Printable(name), "\"");
    absl::StrAppend(&where_, ">");
    std::set<absl::string_view> seen;
    for (const tinyxml2::XMLAttribute* a = e->FirstAttribute(); a != nullptr; a = a->Next()) {
      const absl::string_view attr = a->Name();
      if (!seen.insert(attr).second) {
        Error(attr, "attribute given twice");
        continue;
      }
      bool ok = false;
      for (absl::string_view k : known) ok = ok || k == attr;
      if (!ok && extra != nullptr) {
        if (ValidName(attr)) {
          extra->emplace_back(std::string(attr), a->Value());
        } else {
          Error(attr, "a parameter name must be 1-64 letters, digits, '_', '-' or '.'");
        }
      } else if (!ok) {
        Error(attr, absl::StrCat("unknown attribute of <", e->Name(),
                                 "> (known: ", absl::StrJoin(known, ", "), ")"));
      }
    }
  }

  int line() const { return e_->GetLineNum(); }
  const std::string& where() const { return where_; }
  bool Has(const char* attr) const { return e_->Attribute(attr) != nullptr; }

  void Error(absl::string_view attr, absl::string_view message) {
    errors_->Add(absl::StrCat(where_, ": attribute '", Printable(attr), "': ", message));
  }

  std::optional<std::string> String(const char* attr, bool required) {
    const char* v = e_->Attribute(attr);
    if (v == nullptr) {
      if (required) Error(attr, "required attribute is missing");
      return std::nullopt;
    }
    return std::string(v);
  }

  // A name or a reference to one (TOPO-6).
  std::optional<std::string> Name(const char* attr, bool required) {
    std::optional<std::string> v = String(attr, required);
    if (v && !ValidName(*v)) {
      Error(attr, absl::StrCat("expected a name of 1-64 letters, digits, '_', '-' or '.' "
                               "(not starting with '.' or '-'), got ",
                               Quote(*v)));
      return std::nullopt;
    }
    return v;
  }

  // Writes the attribute into *out if present and valid; returns false on error.
  bool Number(const char* attr, const Range& range, double* out, double scale = 1.0) {
    const char* raw = e_->Attribute(attr);
    if (raw == nullptr) return true;
    const absl::string_view s = absl::StripAsciiWhitespace(raw);
    double v = 0;
    bool parsed = false;
    if (s == "inf" || s == "infinity") {
      v = kInf;
      parsed = range.allow_inf;
    } else {
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      parsed = ec == std::errc() && end == s.data() + s.size() && std::isfinite(v);
      if (parsed) {
        v *= scale;
        parsed = (range.lo_open ? v > range.lo : v >= range.lo) &&
                 (range.hi_open ? v < range.hi : v <= range.hi);
      }
    }
    if (!parsed) {
      Error(attr, absl::StrCat("expected ", range.text, ", got ", Quote(raw)));
      return false;
    }
    if (v > range.cap && !std::isinf(v)) {
      Error(attr, absl::StrCat("expected at most ", range.cap / scale, ", got ", Quote(raw)));
      return false;
    }
    *out = v;
    return true;
  }

  bool OptionalNumber(const char* attr, const Range& range, std::optional<double>* out,
                      double scale = 1.0) {
    if (!Has(attr)) return true;
    double v = 0;
    if (!Number(attr, range, &v, scale)) return false;
    *out = v;
    return true;
  }

  template <typename Int>
  bool Integer(const char* attr, uint64_t lo, uint64_t hi, Int* out) {
    const char* raw = e_->Attribute(attr);
    if (raw == nullptr) return true;
    const absl::string_view s = absl::StripAsciiWhitespace(raw);
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty() || v < lo || v > hi) {
      Error(attr, absl::StrCat("expected an integer in [", lo, ", ", hi, "], got ", Quote(raw)));
      return false;
    }
    *out = static_cast<Int>(v);
    return true;
  }

  template <typename E>
  bool Keyword(const char* attr, const std::vector<std::pair<absl::string_view, E>>& words,
               E* out) {
    const char* raw = e_->Attribute(attr);
    if (raw == nullptr) return true;
    std::vector<absl::string_view> names;
    for (const auto& [word, value] : words) {
      if (word == raw) {
        *out = value;
        return true;
      }
      names.push_back(word);
    }
    Error(attr,
          absl::StrCat("expected one of ", absl::StrJoin(names, " | "), ", got ", Quote(raw)));
    return false;
  }

 private:
  Errors* errors_;
  const tinyxml2::XMLElement* e_;
  std::string where_;
};

void ReadNetwork(ElementReader& r, Topology* t) {
  if (auto name = r.Name("name", false)) t->name = *name;
  r.Integer("seed", 0, UINT32_MAX, &t->seed);
  r.Number("duration-s", kPositiveTime, &t->duration_s);
  r.Number("time-dilation", kDilation, &t->time_dilation);
  r.Keyword<RoutingMetricSpec>("routing-metric",
                               {{"hops", RoutingMetricSpec::kHops},
                                {"pair-time", RoutingMetricSpec::kPairTime},
                                {"fidelity", RoutingMetricSpec::kFidelity}},
                               &t->routing_metric);
}

// TOPO-10: t2 <= 2 t1; an absent t2 defaults to 2 t1 (pure amplitude damping).
void ReadHardware(ElementReader& r, HardwareSpec* h) {
  if (auto name = r.Name("name", true)) h->name = *name;
  r.Integer("memories", 1, 4096, &h->memories);
  r.Number("t1-s", kPositiveTimeOrInf, &h->t1_s);
  const bool t2_ok = r.Number("t2-s", kPositiveTimeOrInf, &h->t2_s);
  if (!r.Has("t2-s")) h->t2_s = 2 * h->t1_s;
  if (t2_ok && r.Has("t2-s") && h->t2_s > 2 * h->t1_s) {
    r.Error("t2-s", absl::StrCat("t2 must be <= 2 t1 = ", 2 * h->t1_s, " s, got ", h->t2_s, " s"));
  }
  r.Number("depolar-s", kPositiveTimeOrInf, &h->depolar_s);
  r.Number("readout-error", kProbability, &h->readout_error);
  h->line = r.line();
}

void ReadNode(ElementReader& r, NodeSpec* n) {
  if (auto name = r.Name("name", true)) n->name = *name;
  if (auto hw = r.Name("hardware", true)) n->hardware = *hw;
  n->line = r.line();
}

// TOPO-9: scheme-specific attributes; TOPO-13: the link must be able to herald.
void ReadLink(ElementReader& r, LinkSpec* l) {
  if (auto name = r.Name("name", true)) l->name = *name;
  if (auto a = r.Name("a", true)) l->a = *a;
  if (auto b = r.Name("b", true)) l->b = *b;
  if (!r.Has("length-km")) r.Error("length-km", "required attribute is missing");
  bool physics_ok = r.Number("length-km", kLength, &l->length_km);
  physics_ok &= r.Number("loss-db-km", kLoss, &l->loss_db_km);
  physics_ok &= r.Keyword<HeraldingScheme>("scheme",
                                           {{"single-click", HeraldingScheme::kSingleClick},
                                            {"double-click", HeraldingScheme::kDoubleClick},
                                            {"werner", HeraldingScheme::kWerner}},
                                           &l->scheme);
  physics_ok &= r.Number("attempt-us", kPositiveTime, &l->attempt_s, 1e-6);
  physics_ok &= r.Number("efficiency", kProbability, &l->efficiency);
  physics_ok &= r.Number("dark-count-prob", kProbability, &l->dark_count_prob);
  physics_ok &= r.Number("visibility", kProbability, &l->visibility);
  physics_ok &= r.OptionalNumber("alpha", kAlpha, &l->alpha);
  physics_ok &= r.Number("p-success", kPositiveProbability, &l->p_success);
  physics_ok &= r.Number("fidelity", kWernerFidelity, &l->fidelity);
  physics_ok &= r.Number("midpoint", kFraction, &l->midpoint_fraction);
  physics_ok &=
      r.OptionalNumber("classical-delay-us", kNonNegativeTime, &l->classical_delay_s, 1e-6);
  physics_ok &= r.Number("memory-poll-us", kPositiveTime, &l->memory_poll_s, 1e-6);
  // TOPO-37: the link's attacker; a fraction without one is refused.
  const bool eve_ok = r.Keyword<LinkSpec::Eavesdropper>(
      "eavesdropper",
      {{"none", LinkSpec::Eavesdropper::kNone},
       {"intercept-resend", LinkSpec::Eavesdropper::kInterceptResend}},
      &l->eavesdropper);
  r.Number("intercept-fraction", kFraction, &l->intercept_fraction);
  if (eve_ok && r.Has("intercept-fraction") && l->eavesdropper == LinkSpec::Eavesdropper::kNone) {
    r.Error("intercept-fraction", "applies only with eavesdropper=\"intercept-resend\"");
  }
  l->line = r.line();

  const char* scheme = r.Has("scheme") ? nullptr : "single-click (the default)";
  auto not_for = [&](const char* attr, absl::string_view which) {
    if (!r.Has(attr)) return;
    r.Error(attr, absl::StrCat("does not apply to scheme ", scheme ? scheme : which));
    physics_ok = false;
  };
  switch (l->scheme) {
    case HeraldingScheme::kWerner:
      if (!r.Has("p-success")) {
        r.Error("p-success", "required for scheme werner");
        physics_ok = false;
      }
      for (const char* attr :
           {"loss-db-km", "efficiency", "dark-count-prob", "visibility", "alpha"})
        not_for(attr, "werner (p-success and fidelity describe it)");
      break;
    case HeraldingScheme::kDoubleClick:
      for (const char* attr : {"alpha", "p-success", "fidelity"}) not_for(attr, "double-click");
      break;
    case HeraldingScheme::kSingleClick:
      for (const char* attr : {"p-success", "fidelity"}) not_for(attr, "single-click");
      break;
  }
  if (physics_ok && l->scheme != HeraldingScheme::kWerner &&
      SuccessProbability(*l, l->alpha.value_or(0.5)) <= 0) {
    r.Error("efficiency", "the link can never herald: success probability per attempt is 0");
  }
}

void ReadRequest(ElementReader& r, RequestSpec* q) {
  if (auto from = r.Name("from", true)) q->from = *from;
  if (auto to = r.Name("to", true)) q->to = *to;
  r.Integer("pairs", 1, UINT32_MAX, &q->pairs);
  r.Keyword<RequestKind>("type", {{"keep", RequestKind::kKeep}, {"measure", RequestKind::kMeasure}},
                         &q->kind);
  r.Number("min-fidelity", kProbability, &q->min_fidelity);
  r.Keyword<BasisSet>("basis", BasisWords(), &q->basis);
  r.Number("max-time-s", kNonNegativeTime, &q->max_time_s);
  r.Integer("priority", 0, UINT32_MAX, &q->priority);
  r.Integer("purpose", 0, UINT32_MAX, &q->purpose_id);
  r.Number("start-s", kNonNegativeTime, &q->start_s);
  r.Number("hold-s", kNonNegativeTime, &q->hold_s);
  if (q->kind == RequestKind::kMeasure && r.Has("hold-s")) {
    r.Error("hold-s", "applies only to type keep (measured pairs hold no memory)");
  }
  q->line = r.line();
}

// TOPO-30..TOPO-32: an end-to-end workload item.
void ReadConnection(ElementReader& r, ConnectionSpec* c) {
  if (auto name = r.Name("name", false)) c->name = *name;
  if (auto from = r.Name("from", true)) c->from = *from;
  if (auto to = r.Name("to", true)) c->to = *to;
  r.Integer("port", 0, 65535, &c->port);
  r.Integer("pairs", 0, UINT32_MAX, &c->pairs);
  r.Keyword<RequestKind>("type", {{"keep", RequestKind::kKeep}, {"measure", RequestKind::kMeasure}},
                         &c->kind);
  r.Number("min-fidelity", kProbability, &c->min_fidelity);
  r.Keyword<BasisSet>("basis", BasisWords(), &c->basis);
  r.Number("min-rate", kRate, &c->min_rate_hz);
  r.Number("cutoff-s", kNonNegativeTimeOrInf, &c->cutoff_s);
  r.Integer("window", 1, 4096, &c->window);
  r.Number("start-s", kNonNegativeTime, &c->start_s);
  r.Number("hold-s", kNonNegativeTime, &c->hold_s);
  if (c->kind == RequestKind::kMeasure && r.Has("hold-s")) {
    r.Error("hold-s", "applies only to type keep (measured pairs hold no memory)");
  }
  c->line = r.line();
}

// TOPO-33, TOPO-34: an application pair; other attributes are its parameters.
void ReadApp(ElementReader& r, AppSpec* a) {
  if (auto name = r.Name("name", false)) a->name = *name;
  if (auto kind = r.Name("kind", true)) a->kind = *kind;
  if (auto node = r.Name("node", true)) a->node = *node;
  if (auto peer = r.Name("peer", true)) a->peer = *peer;
  r.Integer("port", 0, 65535, &a->port);
  r.Integer("pairs", 1, UINT32_MAX, &a->pairs);
  r.Number("min-fidelity", kProbability, &a->min_fidelity);
  r.Number("start-s", kNonNegativeTime, &a->start_s);
  a->line = r.line();
}

// TOPO-38: a secure application entity at a node.
void ReadSae(ElementReader& r, SaeSpec* sae) {
  if (auto name = r.Name("name", true)) sae->name = *name;
  if (auto node = r.Name("node", true)) sae->node = *node;
  sae->line = r.line();
}

// TOPO-35: a failure event: exactly one of cut-link and fail-node.
void ReadEvent(ElementReader& r, EventSpec* e) {
  if (!r.Has("at")) r.Error("at", "required attribute is missing");
  r.Number("at", kNonNegativeTime, &e->at_s);
  const bool cut = r.Has("cut-link"), fail = r.Has("fail-node");
  if (cut && fail) r.Error("fail-node", "give either cut-link or fail-node, not both");
  if (!cut && !fail) r.Error("cut-link", "an <event> needs cut-link or fail-node");
  if (cut) {
    e->kind = EventKind::kCutLink;
    if (auto link = r.Name("cut-link", true)) e->target = *link;
  } else if (fail) {
    e->kind = EventKind::kFailNode;
    if (auto node = r.Name("fail-node", true)) e->target = *node;
  }
  e->line = r.line();
}

// Whether `from` and `to` are joined by a path of links.
bool Connected(const Topology& t, const std::string& from, const std::string& to) {
  std::set<std::string> seen{from};
  std::vector<std::string> todo{from};
  while (!todo.empty()) {
    const std::string n = todo.back();
    todo.pop_back();
    if (n == to) return true;
    for (const LinkSpec& l : t.links) {
      const std::string* next = l.a == n ? &l.b : l.b == n ? &l.a : nullptr;
      if (next != nullptr && !next->empty() && seen.insert(*next).second) todo.push_back(*next);
    }
  }
  return false;
}

// TOPO-31, TOPO-34, TOPO-35: workload references, default names, uniqueness.
void CheckWorkload(Topology& t, const std::map<std::string, int>& nodes,
                   const std::map<std::string, int>& links, Errors* errors) {
  auto ends = [&](const std::string& where,
                  std::initializer_list<std::pair<const char*, const std::string*>> list) {
    bool ok = true;
    for (const auto& [attr, end] : list) {
      if (end->empty()) {
        ok = false;
      } else if (!nodes.contains(*end)) {
        errors->Add(absl::StrCat(where, ": attribute '", attr, "': no <node> named ", Quote(*end)));
        ok = false;
      }
    }
    return ok;
  };
  auto path = [&](const std::string& where, const char* attr, const std::string& x,
                  const std::string& y, const char* what) {
    if (x == y) {
      errors->Add(absl::StrCat(where, ": attribute '", attr, "': ", what, " from node ", Quote(x),
                               " to itself"));
    } else if (!Connected(t, x, y)) {
      errors->Add(absl::StrCat(where, ": attribute '", attr, "': no path of links joins ", Quote(x),
                               " and ", Quote(y)));
    }
  };
  std::map<std::string, int> names;
  std::map<std::pair<std::string, std::string>, int> count;
  auto at = [&](int line, absl::string_view element, const std::string& given) {
    return absl::StrCat(errors->source, ":", line, ": <", element,
                        given.empty() ? "" : absl::StrCat(" name=\"", Printable(given), "\""), ">");
  };
  // A default connection name has a '#', which a given name cannot have (TOPO-6),
  // so only given names can collide.
  for (ConnectionSpec& c : t.connections) {
    const std::string where = at(c.line, "connection", c.name);
    if (ends(where, {{"from", &c.from}, {"to", &c.to}}))
      path(where, "to", c.from, c.to, "a connection");
    const int k = ++count[{c.from, c.to}];
    if (c.name.empty()) c.name = absl::StrCat(c.from, "-", c.to, "#", k);
    auto [it, fresh] = names.emplace(c.name, c.line);
    if (!fresh) {
      errors->Add(absl::StrCat(where, ": attribute 'name': duplicate connection name ",
                               Quote(c.name), " (first on line ", it->second, ")"));
    }
  }
  names.clear();
  for (AppSpec& a : t.apps) {
    const std::string where = at(a.line, "app", a.name);
    if (ends(where, {{"node", &a.node}, {"peer", &a.peer}}))
      path(where, "peer", a.node, a.peer, "an app");
    const bool given = !a.name.empty();
    if (!given) a.name = absl::StrCat(a.kind, "-", a.node, "-", a.peer);
    auto [it, fresh] = names.emplace(a.name, a.line);
    if (!fresh) {
      errors->Add(absl::StrCat(where, ": attribute 'name': duplicate app name ", Quote(a.name),
                               " (first on line ", it->second, ")",
                               given ? "" : "; give each app a name"));
    }
  }
  names.clear();
  for (const SaeSpec& s : t.saes) {  // TOPO-38
    if (s.name.empty()) continue;
    const std::string where = at(s.line, "sae", s.name);
    ends(where, {{"node", &s.node}});
    auto [it, fresh] = names.emplace(s.name, s.line);
    if (!fresh) {
      errors->Add(absl::StrCat(where, ": attribute 'name': duplicate sae name ", Quote(s.name),
                               " (first on line ", it->second, ")"));
    }
  }
  for (const EventSpec& e : t.events) {
    const std::string where = absl::StrCat(errors->source, ":", e.line, ": <event>");
    if (e.target.empty()) continue;
    if (e.kind == EventKind::kCutLink && !links.contains(e.target)) {
      errors->Add(absl::StrCat(where, ": attribute 'cut-link': no <link> named ", Quote(e.target)));
    } else if (e.kind == EventKind::kFailNode && !nodes.contains(e.target)) {
      errors->Add(
          absl::StrCat(where, ": attribute 'fail-node': no <node> named ", Quote(e.target)));
    }
    if (e.at_s > t.duration_s) {
      errors->Add(absl::StrCat(where, ": attribute 'at': ", e.at_s,
                               " s is after the run's end (duration-s ", t.duration_s, ")"));
    }
  }
}

// TOPO-6..TOPO-8, TOPO-11: names are unique per kind, references resolve, links join
// two distinct nodes once, requests join neighbours.
void CheckReferences(Topology& t, Errors* errors) {
  auto at = [&](int line, absl::string_view element, absl::string_view name) {
    return absl::StrCat(errors->source, ":", line, ": <", element, " name=\"", name, "\">");
  };
  std::map<std::string, int> hardware, nodes, links;
  for (const HardwareSpec& h : t.hardware) {
    if (h.name.empty()) continue;
    auto [it, fresh] = hardware.emplace(h.name, h.line);
    if (!fresh) {
      errors->Add(absl::StrCat(at(h.line, "hardware", h.name), ": attribute 'name': duplicate ",
                               "hardware name (first defined on line ", it->second, ")"));
    }
  }
  for (const NodeSpec& n : t.nodes) {
    if (n.name.empty()) continue;
    auto [it, fresh] = nodes.emplace(n.name, n.line);
    if (!fresh) {
      errors->Add(absl::StrCat(at(n.line, "node", n.name), ": attribute 'name': duplicate node ",
                               "name (first defined on line ", it->second, ")"));
    }
    if (!n.hardware.empty() && !hardware.contains(n.hardware)) {
      errors->Add(absl::StrCat(at(n.line, "node", n.name), ": attribute 'hardware': no ",
                               "<hardware> named ", Quote(n.hardware)));
    }
  }
  std::map<std::pair<std::string, std::string>, const LinkSpec*> pairs;
  for (const LinkSpec& l : t.links) {
    const std::string where = at(l.line, "link", l.name);
    if (!l.name.empty()) {
      auto [it, fresh] = links.emplace(l.name, l.line);
      if (!fresh) {
        errors->Add(absl::StrCat(where, ": attribute 'name': duplicate link name (first defined ",
                                 "on line ", it->second, ")"));
      }
    }
    bool ends_ok = true;
    for (const auto& [attr, end] : {std::pair{"a", &l.a}, std::pair{"b", &l.b}}) {
      if (!end->empty() && !nodes.contains(*end)) {
        errors->Add(absl::StrCat(where, ": attribute '", attr, "': no <node> named ", Quote(*end)));
        ends_ok = false;
      }
    }
    if (l.a.empty() || l.b.empty() || !ends_ok) continue;
    if (l.a == l.b) {
      errors->Add(
          absl::StrCat(where, ": attribute 'b': a link from node ", Quote(l.a), " to itself"));
      continue;
    }
    auto key = std::minmax(l.a, l.b);
    auto [it, fresh] = pairs.emplace(std::pair{key.first, key.second}, &l);
    if (!fresh) {
      errors->Add(absl::StrCat(where, ": attribute 'b': a second link between ", Quote(l.a),
                               " and ", Quote(l.b), " (first: ", Quote(it->second->name),
                               " on line ", it->second->line, ")"));
    }
  }
  for (const RequestSpec& q : t.requests) {
    const std::string where = absl::StrCat(errors->source, ":", q.line, ": <request>");
    bool ends_ok = true;
    for (const auto& [attr, end] : {std::pair{"from", &q.from}, std::pair{"to", &q.to}}) {
      if (!end->empty() && !nodes.contains(*end)) {
        errors->Add(absl::StrCat(where, ": attribute '", attr, "': no <node> named ", Quote(*end)));
        ends_ok = false;
      }
    }
    if (q.from.empty() || q.to.empty() || !ends_ok) continue;
    if (q.from == q.to) {
      errors->Add(absl::StrCat(where, ": attribute 'to': a request from node ", Quote(q.from),
                               " to itself"));
    } else if (t.LinkBetween(q.from, q.to) == nullptr) {
      errors->Add(absl::StrCat(where, ": attribute 'to': ", Quote(q.to), " is not a neighbour of ",
                               Quote(q.from), " (the link layer serves neighbours only)"));
    }
  }
  CheckWorkload(t, nodes, links, errors);
}

}  // namespace

absl::StatusOr<Topology> ParseTopology(std::string_view xml, const std::string& source) {
  Errors errors{source, {}};
  tinyxml2::XMLDocument doc(/*processEntities=*/true, tinyxml2::PRESERVE_WHITESPACE);
  if (doc.Parse(xml.data(), xml.size()) != tinyxml2::XML_SUCCESS) {
    // ErrorStr() reads "Error=NAME ErrorID=N (0xN) Line number=L: detail".
    const std::string str = doc.ErrorStr() != nullptr ? doc.ErrorStr() : "";
    const size_t at = str.find("Line number=");
    const size_t colon = at == std::string::npos ? at : str.find(": ", at);
    const std::string detail = colon == std::string::npos ? "" : str.substr(colon + 2);
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", std::max(doc.ErrorLineNum(), 1), ": not well-formed XML (",
                     doc.ErrorName(), detail.empty() ? "" : ": ", Printable(detail), ")"));
  }
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (root == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":1: no <network> element"));
  }
  if (absl::string_view(root->Name()) != "network") {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", root->GetLineNum(),
                                                   ": root element must be <network>, got <",
                                                   Printable(root->Name()), ">"));
  }
  if (const tinyxml2::XMLElement* extra = root->NextSiblingElement()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", extra->GetLineNum(),
                                                   ": only one root element is allowed, got <",
                                                   Printable(extra->Name()), "> after <network>"));
  }
  Topology t;
  t.source = source;
  {
    ElementReader r(&errors, root,
                    {"name", "seed", "duration-s", "time-dilation", "routing-metric"});
    ReadNetwork(r, &t);
  }
  for (const tinyxml2::XMLNode* child = root->FirstChild(); child != nullptr;
       child = child->NextSibling()) {
    if (child->ToComment() != nullptr || child->ToDeclaration() != nullptr) continue;
    if (const tinyxml2::XMLText* text = child->ToText()) {
      if (!absl::StripAsciiWhitespace(text->Value()).empty()) {
        errors.Add(absl::StrCat(source, ":", text->GetLineNum(), ": unexpected text ",
                                Quote(absl::StripAsciiWhitespace(text->Value())),
                                " inside <network>"));
      }
      continue;
    }
    const tinyxml2::XMLElement* e = child->ToElement();
    if (e == nullptr) continue;
    const absl::string_view kind = e->Name();
    if (e->FirstChild() != nullptr) {
      errors.Add(absl::StrCat(source, ":", e->GetLineNum(), ": <", kind,
                              "> must be empty (attributes only)"));
    }
    if (kind == "hardware") {
      ElementReader r(&errors, e,
                      {"name", "memories", "t1-s", "t2-s", "depolar-s", "readout-error"});
      ReadHardware(r, &t.hardware.emplace_back());
    } else if (kind == "node") {
      ElementReader r(&errors, e, {"name", "hardware"});
      ReadNode(r, &t.nodes.emplace_back());
    } else if (kind == "link") {
      ElementReader r(
          &errors, e,
          {"name", "a", "b", "length-km", "loss-db-km", "scheme", "attempt-us", "efficiency",
           "dark-count-prob", "visibility", "alpha", "p-success", "fidelity", "midpoint",
           "classical-delay-us", "memory-poll-us", "eavesdropper", "intercept-fraction"});
      ReadLink(r, &t.links.emplace_back());
    } else if (kind == "request") {
      ElementReader r(&errors, e,
                      {"from", "to", "pairs", "type", "min-fidelity", "basis", "max-time-s",
                       "priority", "purpose", "start-s", "hold-s"});
      ReadRequest(r, &t.requests.emplace_back());
    } else if (kind == "connection") {
      ElementReader r(&errors, e,
                      {"name", "from", "to", "port", "pairs", "type", "min-fidelity", "basis",
                       "min-rate", "cutoff-s", "window", "start-s", "hold-s"});
      ReadConnection(r, &t.connections.emplace_back());
    } else if (kind == "app") {
      AppSpec& app = t.apps.emplace_back();
      ElementReader r(&errors, e,
                      {"name", "kind", "node", "peer", "port", "pairs", "min-fidelity", "start-s"},
                      &app.params);
      ReadApp(r, &app);
    } else if (kind == "event") {
      ElementReader r(&errors, e, {"at", "cut-link", "fail-node"});
      ReadEvent(r, &t.events.emplace_back());
    } else if (kind == "sae") {
      ElementReader r(&errors, e, {"name", "node"});
      ReadSae(r, &t.saes.emplace_back());
    } else {
      errors.Add(absl::StrCat(source, ":", e->GetLineNum(), ": unknown element <", Printable(kind),
                              "> (expected hardware, node, link, request, connection, app, "
                              "event or sae)"));
    }
  }
  if (t.nodes.empty() && errors.list.empty()) {
    errors.Add(absl::StrCat(source, ":", root->GetLineNum(), ": <network> has no <node>"));
  }
  CheckReferences(t, &errors);
  if (!errors.list.empty()) {
    // Every message starts "source:line:"; report in file order.
    auto line_of = [&](const std::string& m) {
      int line = 0;
      const char* p = m.data() + source.size() + 1;
      std::from_chars(p, m.data() + m.size(), line);
      return line;
    };
    std::stable_sort(
        errors.list.begin(), errors.list.end(),
        [&](const std::string& x, const std::string& y) { return line_of(x) < line_of(y); });
    const size_t total = errors.list.size();
    if (total > kMaxErrors) {
      errors.list.resize(kMaxErrors);
      errors.list.push_back(absl::StrCat("... and ", total - kMaxErrors, " more errors"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(errors.list, "\n"));
  }
  return t;
}

absl::StatusOr<Topology> LoadTopologyFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a topology file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open topology file"));
  std::string text;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": topology file larger than ", kMaxFileBytes, " bytes"));
    }
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ParseTopology(text, path);
}

}  // namespace qnet
