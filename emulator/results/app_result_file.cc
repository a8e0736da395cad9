#include "emulator/results/app_result_file.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace qnet::results {

std::optional<double> AppResultFile::Number(const std::string& key) const {
  auto it = object.fields().find(key);
  if (it == object.fields().end() || !it->second.has_number_value()) return std::nullopt;
  const double v = it->second.number_value();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

std::optional<bool> AppResultFile::Bool(const std::string& key) const {
  auto it = object.fields().find(key);
  if (it == object.fields().end() || !it->second.has_bool_value()) return std::nullopt;
  return it->second.bool_value();
}

std::string AppResultFile::Text(const std::string& key) const {
  auto it = object.fields().find(key);
  if (it == object.fields().end() || !it->second.has_string_value()) return "";
  return it->second.string_value();
}

AppResultFile ReadAppResultFile(const std::string& apps_dir, const std::string& file) {
  AppResultFile f;
  f.name = absl::StrCat("apps/", file);
  std::ifstream in(absl::StrCat(apps_dir, "/", file), std::ios::binary);
  if (!in) {
    f.error = absl::StrCat(f.name, ": cannot open");
    return f;
  }
  std::stringstream text;
  text << in.rdbuf();
  const auto status = google::protobuf::util::JsonStringToMessage(text.str(), &f.object);
  if (!status.ok()) {
    f.error = absl::StrCat(f.name, ": not a JSON object: ", std::string(status.message()));
    return f;
  }
  f.readable = true;
  return f;
}

}  // namespace qnet::results
