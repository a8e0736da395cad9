// One app result file of a results folder (OUT/apps/*.json, specs/topology.md
// RES-31, RES-35), read as an untrusted JSON object: the summary's app and
// QKD sections both read app results through this.
#ifndef QNET_EMULATOR_RESULTS_APP_RESULT_FILE_H_
#define QNET_EMULATOR_RESULTS_APP_RESULT_FILE_H_

#include <optional>
#include <string>

#include "google/protobuf/struct.pb.h"

namespace qnet::results {

struct AppResultFile {
  std::string name;  // "apps/<file>", as errors name it
  bool readable = false;
  std::string error;  // "<name>: cannot open" or "<name>: not a JSON object: ..."
  google::protobuf::Struct object;

  // A field of the object: nullopt (or "") when absent or of another type;
  // non-finite numbers count as absent.
  std::optional<double> Number(const std::string& key) const;
  std::optional<bool> Bool(const std::string& key) const;
  std::string Text(const std::string& key) const;
};

// Reads `apps_dir`/`file` (apps_dir is OUT/apps).
AppResultFile ReadAppResultFile(const std::string& apps_dir, const std::string& file);

}  // namespace qnet::results

#endif  // QNET_EMULATOR_RESULTS_APP_RESULT_FILE_H_
