// SummarizeQkd: qkd[] of summary.json from the QKD apps' result and key files
// (specs/topology.md RES-34..RES-38).
#include "emulator/results/qkd_summary.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "emulator/results/app_result_file.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace qnet::results {
namespace {

using ResultFile = AppResultFile;

ResultFile ReadResult(const std::string& out_dir, const std::string& file) {
  return ReadAppResultFile(absl::StrCat(out_dir, "/apps"), file);
}

// A key file's bytes; nullopt when it cannot be opened.
std::optional<std::string> ReadKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// RES-35: counts are non-negative integers; beyond uint32 they saturate.
uint32_t Count(std::optional<double> v) {
  if (!v || *v <= 0) return 0;
  if (*v >= static_cast<double>(std::numeric_limits<uint32_t>::max()))
    return std::numeric_limits<uint32_t>::max();
  return static_cast<uint32_t>(std::llround(*v));
}

}  // namespace

std::string QkdKeyPath(const std::string& out_dir, const std::string& name,
                       const std::string& role) {
  return absl::StrCat(out_dir, "/qkd/", name, ".", role, ".key");
}

void SummarizeQkd(const Topology& topology, const std::string& out_dir, v1::Summary* summary) {
  for (const AppSpec& app : topology.apps) {
    if (app.kind != kQkdAppKind) continue;
    v1::QkdSummary* out = summary->add_qkd();
    out->set_name(app.name);  // RES-34
    out->set_from(app.node);
    out->set_to(app.peer);
    const ResultFile alice = ReadResult(out_dir, app.name + ".json");
    const ResultFile bob = ReadResult(out_dir, app.name + ".b.json");
    std::vector<std::string> errors;
    for (const ResultFile* f : {&alice, &bob}) {
      if (!f->readable) errors.push_back(f->error);
    }

    // RES-35: the figures from Alice's file, else Bob's.
    const ResultFile* figures = alice.readable ? &alice : bob.readable ? &bob : nullptr;
    if (figures != nullptr) {
      out->set_qber_z(figures->Number("qber_z").value_or(0));
      out->set_qber_x(figures->Number("qber_x").value_or(0));
      out->set_sifted_bits(Count(figures->Number("sifted_bits")));
      out->set_secret_bits(Count(figures->Number("secret_bits")));
      out->set_key_rate_bps(figures->Number("key_rate_bps").value_or(0));
      out->set_ec_efficiency(figures->Number("ec_efficiency").value_or(0));
      out->set_blocks(Count(figures->Number("blocks")));
      out->set_disclosed_bits(Count(figures->Number("disclosed_bits")));
      out->set_auth_bits_consumed(Count(figures->Number("auth_bits_consumed")));
      out->set_stored_key_bits(Count(figures->Number("stored_key_bits")));
      out->set_auth_bits_refilled(Count(figures->Number("auth_bits_refilled")));
      // RES-35a
      out->set_net_key_bits(static_cast<int64_t>(out->stored_key_bits()) +
                            static_cast<int64_t>(out->auth_bits_refilled()) -
                            static_cast<int64_t>(out->auth_bits_consumed()));
    }

    // RES-36: aborted when either end says so; the reason of Alice, else Bob.
    for (const ResultFile* f : {&alice, &bob}) {
      if (!f->readable || !f->Bool("aborted").value_or(false)) continue;
      if (!out->aborted()) out->set_abort_reason(f->Text("abort_reason"));
      out->set_aborted(true);
    }
    // RES-38: an end that is not ok says why (its own error text); an abort
    // is said by abort_reason already.
    for (const ResultFile* f : {&alice, &bob}) {
      if (!f->readable || f->Bool("aborted").value_or(false)) continue;
      const std::string error = f->Text("error");
      if (!error.empty()) {
        errors.push_back(absl::StrCat(f->name, ": ", error));
      } else if (!f->Bool("ok").value_or(false) && !f->Bool("aborted").value_or(false)) {
        errors.push_back(absl::StrCat(f->name, ": not ok"));
      }
    }

    // RES-37: from the key files' bytes.
    const std::optional<std::string> key_a = ReadKey(QkdKeyPath(out_dir, app.name, "a"));
    const std::optional<std::string> key_b = ReadKey(QkdKeyPath(out_dir, app.name, "b"));
    out->set_key_bits(key_a ? Count(static_cast<double>(key_a->size()) * 8) : 0);
    out->set_keys_match(key_a && key_b && !key_a->empty() && *key_a == *key_b);
    if (key_a && key_b && *key_a != *key_b) {
      errors.push_back(absl::StrCat("qkd/", app.name, ".a.key and qkd/", app.name,
                                    ".b.key differ (", key_a->size(), " and ", key_b->size(),
                                    " bytes)"));
    }
    for (const char* role : {"a", "b"}) {
      if (!(role[0] == 'a' ? key_a : key_b))
        errors.push_back(absl::StrCat("qkd/", app.name, ".", role, ".key: cannot open"));
    }
    out->set_error(absl::StrJoin(errors, "; "));
  }
}

}  // namespace qnet::results
