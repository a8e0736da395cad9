// Per-QKD-session figures of summary.json (specs/topology.md RES-34..RES-39):
// each <app kind="qkd"> leaves two result files, OUT/apps/NAME.json (Alice,
// the app's node) and OUT/apps/NAME.b.json (Bob, its peer), written from
// QkdSession::ResultJson (specs/qkd.md QKD-R*), and two key files,
// OUT/qkd/NAME.a.key and OUT/qkd/NAME.b.key (each end's key stream bytes).
// All three backends leave the same files (the sim backend's in-process apps,
// the launcher's qnet-qkd processes), so this reads only files.
//
// Promises: deterministic; files are untrusted: a missing or malformed result
// file, a field of the wrong type or out of range is reported in the entry's
// `error` (or ignored), never fails the summary. keys_match is computed from
// the key files themselves, not from what the programs say about them.
#ifndef QNET_EMULATOR_RESULTS_QKD_SUMMARY_H_
#define QNET_EMULATOR_RESULTS_QKD_SUMMARY_H_

#include <string>

#include "qnet/results/v1/results.pb.h"
#include "stack/topology.h"

namespace qnet::results {

// The kind of <app> that is a QKD session.
inline constexpr char kQkdAppKind[] = "qkd";

// Appends one QkdSummary per <app kind="qkd"> of `topology`, in topology order.
void SummarizeQkd(const Topology& topology, const std::string& out_dir, v1::Summary* summary);

// The key file of one end: OUT_DIR/qkd/NAME.ROLE.key, ROLE "a" or "b".
std::string QkdKeyPath(const std::string& out_dir, const std::string& name,
                       const std::string& role);

}  // namespace qnet::results

#endif  // QNET_EMULATOR_RESULTS_QKD_SUMMARY_H_
