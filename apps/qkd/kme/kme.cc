// ETSI GS QKD 014 V1.1.1 over the session's KeyStore (specs/qkd.md section 9).
#include "apps/qkd/kme/kme.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "qnet/qkd/v1/etsi014.pb.h"

namespace qnet::qkd {
namespace {

namespace pb = ::qnet::qkd::v1;

constexpr absl::string_view kPrefix = "/api/v1/keys/";
constexpr absl::string_view kKeysNotFound = "one or more keys specified are not found on KME";

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

google::protobuf::Struct Detail(const std::string& name, double number) {
  google::protobuf::Struct s;
  (*s.mutable_fields())[name].set_number_value(number);
  return s;
}
google::protobuf::Struct Detail(const std::string& name, const std::string& text) {
  google::protobuf::Struct s;
  (*s.mutable_fields())[name].set_string_value(text);
  return s;
}
google::protobuf::Struct Detail(const std::string& name, const std::vector<std::string>& texts) {
  google::protobuf::Struct s;
  auto* list = (*s.mutable_fields())[name].mutable_list_value();
  for (const auto& t : texts) list->add_values()->set_string_value(t);
  return s;
}

HttpResponse Error(int status, const std::string& message,
                   std::vector<google::protobuf::Struct> details = {}) {
  pb::EtsiError error;
  error.set_message(message);
  for (auto& d : details) *error.add_details() = std::move(d);
  return HttpResponse{status, ToJson(error), "application/json"};
}

HttpResponse Unauthorized() { return HttpResponse{401, "", "application/json"}; }

// %XX decoding (and '+' as a space in query values); nullopt on a broken
// escape.
std::optional<std::string> PercentDecode(absl::string_view in, bool plus_is_space = true) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      if (!absl::ascii_isxdigit(in[i + 1]) || !absl::ascii_isxdigit(in[i + 2])) {
        return std::nullopt;
      }
      auto hex = [](char c) { return absl::ascii_isdigit(c) ? c - '0' : (c | 0x20) - 'a' + 10; };
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// name=value pairs of a query string, in order; error text on a bad one.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(
    absl::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  if (query.empty()) return out;
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    if (part.empty()) continue;
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    auto name = PercentDecode(kv.first);
    auto value = PercentDecode(kv.second);
    if (!name || !value) {
      return absl::InvalidArgumentError(absl::StrCat("bad escape in query parameter ", part));
    }
    out.emplace_back(*name, *value);
  }
  return out;
}

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

Kme::Kme(KmeConfig config, KeyStore* store) : config_(std::move(config)), store_(store) {}

HttpResponse Kme::Handle(const HttpRequest& request) {
  HttpResponse response = Dispatch(request);
  ++responses_[response.status];
  return response;
}

HttpResponse Kme::Dispatch(const HttpRequest& request) {
  // KME-1..KME-3: /api/v1/keys/{SAE_ID}/{status|enc_keys|dec_keys}.
  absl::string_view path = request.path;
  if (!absl::StartsWith(path, kPrefix)) {
    return Error(404, "unknown resource", {Detail("path", request.path)});
  }
  path.remove_prefix(kPrefix.size());
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  if (parts.size() != 2 || parts[0].empty() ||
      (parts[1] != "status" && parts[1] != "enc_keys" && parts[1] != "dec_keys")) {
    return Error(404, "unknown resource", {Detail("path", request.path)});
  }
  auto target = PercentDecode(parts[0], /*plus_is_space=*/false);
  if (!target) return Error(404, "unknown resource", {Detail("path", request.path)});
  const std::string operation(parts[1]);
  const bool post_allowed = operation != "status";
  if (request.method != "GET" && !(post_allowed && request.method == "POST")) {
    return Error(405, "method not allowed", {Detail("method", request.method)});
  }

  // KME-4..KME-6: who calls.
  std::string caller = request.client_cn;
  if (caller.empty() && config_.allow_header_identity) {
    auto it = request.headers.find("x-sae-id");
    if (it != request.headers.end()) caller = it->second;
  }
  if (caller.empty() || !Contains(config_.local_saes, caller)) return Unauthorized();
  // KME-7: the SAE in the path (slave for status/enc_keys, master for dec_keys)
  // is at the peer node.
  if (!Contains(config_.peer_saes, *target)) return Unauthorized();

  if (operation == "status") return GetStatus(caller, *target);
  if (operation == "enc_keys") return EncKeys(request, caller, *target);
  return DecKeys(request, caller, *target);
}

HttpResponse Kme::GetStatus(const std::string& master, const std::string& slave) {
  pb::EtsiStatus status;
  status.set_source_kme_id(config_.kme_id);
  status.set_target_kme_id(config_.peer_kme_id);
  status.set_master_sae_id(master);
  status.set_slave_sae_id(slave);
  status.set_key_size(static_cast<int32_t>(config_.key_size));
  status.set_stored_key_count(StoredKeyCount());
  status.set_max_key_count(
      static_cast<int32_t>(std::min<uint64_t>(config_.max_key_count, INT32_MAX)));
  status.set_max_key_per_request(static_cast<int32_t>(config_.max_key_per_request));
  status.set_max_key_size(static_cast<int32_t>(config_.max_key_size));
  status.set_min_key_size(static_cast<int32_t>(config_.min_key_size));
  status.set_max_sae_id_count(0);
  return HttpResponse{200, ToJson(status), "application/json"};
}

int32_t Kme::StoredKeyCount() const {
  if (config_.key_size == 0) return 0;
  return static_cast<int32_t>(
      std::min<uint64_t>(store_->available_bits() / config_.key_size, INT32_MAX));
}

HttpResponse Kme::EncKeys(const HttpRequest& request, const std::string& master,
                          const std::string& slave) {
  pb::EtsiKeyRequest key_request;
  if (request.method == "POST") {
    // KME-9: an empty body asks for the defaults.
    if (!absl::StripAsciiWhitespace(request.body).empty()) {
      auto parsed = google::protobuf::util::JsonStringToMessage(request.body, &key_request);
      if (!parsed.ok()) {
        return Error(400, "malformed key request",
                     {Detail("parse_error", std::string(parsed.message()))});
      }
    }
  } else {
    auto query = ParseQuery(request.query);
    if (!query.ok()) {
      return Error(400, "malformed query",
                   {Detail("parse_error", std::string(query.status().message()))});
    }
    for (const auto& [name, value] : *query) {
      int64_t v = 0;
      if (name != "number" && name != "size") {
        return Error(400, "unknown query parameter", {Detail("parameter", name)});
      }
      if (!absl::SimpleAtoi(value, &v)) {
        return Error(400, absl::StrCat(name, " shall be an integer"), {Detail(name, value)});
      }
      if (name == "number") key_request.set_number(v);
      if (name == "size") key_request.set_size(v);
    }
  }
  const int64_t number = key_request.has_number() ? key_request.number() : 1;
  const int64_t size = key_request.has_size() ? key_request.size() : config_.key_size;
  // KME-10..KME-16, in this order (KME-18).
  if (number < 1) return Error(400, "number shall be at least 1", {Detail("number", number)});
  if (number > config_.max_key_per_request) {
    return Error(
        400, "number exceeds max_key_per_request",
        {Detail("number", number), Detail("max_key_per_request", config_.max_key_per_request)});
  }
  if (size % 8 != 0) return Error(400, "size shall be a multiple of 8", {Detail("size", size)});
  if (size < config_.min_key_size || size > config_.max_key_size) {
    return Error(400, "size shall be between min_key_size and max_key_size",
                 {Detail("size", size), Detail("min_key_size", config_.min_key_size),
                  Detail("max_key_size", config_.max_key_size)});
  }
  if (key_request.additional_slave_sae_ids_size() > 0) {
    return Error(400, "additional_slave_SAE_IDs are not supported",
                 {Detail("max_SAE_ID_count", 0.0)});
  }
  if (key_request.extension_mandatory_size() > 0) {
    std::vector<std::string> names;
    for (const auto& ext : key_request.extension_mandatory()) {
      for (const auto& [name, value] : ext.fields()) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return Error(400, "not all extension_mandatory parameters are supported",
                 {Detail("extension_mandatory_unsupported", names)});
  }
  // extension_optional: ignored (KME-17).

  // KME-20: all keys or none (KeyStore::ReserveMany, QKD-K5).
  const uint64_t requested = static_cast<uint64_t>(number) * static_cast<uint64_t>(size);
  auto keys = store_->ReserveMany(static_cast<uint32_t>(number), static_cast<uint32_t>(size),
                                  master, slave);
  if (absl::IsResourceExhausted(keys.status())) {
    return Error(503, "not enough key material on KME",
                 {Detail("requested_bits", static_cast<double>(requested)),
                  Detail("available_bits", static_cast<double>(store_->available_bits()))});
  }
  if (!keys.ok()) {
    return Error(400, "key request refused",
                 {Detail("reason", std::string(keys.status().message()))});
  }
  return KeyContainer(*keys);
}

HttpResponse Kme::DecKeys(const HttpRequest& request, const std::string& slave,
                          const std::string& master) {
  std::vector<std::string> ids;
  if (request.method == "POST") {
    pb::EtsiKeyIds key_ids;
    auto parsed = google::protobuf::util::JsonStringToMessage(request.body, &key_ids);
    if (!parsed.ok()) {
      return Error(400, "malformed key IDs",
                   {Detail("parse_error", std::string(parsed.message()))});
    }
    for (const auto& id : key_ids.key_ids()) ids.push_back(id.key_id());
  } else {
    auto query = ParseQuery(request.query);
    if (!query.ok()) {
      return Error(400, "malformed query",
                   {Detail("parse_error", std::string(query.status().message()))});
    }
    for (const auto& [name, value] : *query) {
      if (name != "key_ID")
        return Error(400, "unknown query parameter", {Detail("parameter", name)});
      ids.push_back(value);
    }
  }
  // KME-21, KME-22.
  if (ids.empty()) return Error(400, "key_IDs shall name at least one key");
  if (ids.size() > config_.max_key_per_request) {
    return Error(400, "number of key_IDs exceeds max_key_per_request",
                 {Detail("number", static_cast<double>(ids.size())),
                  Detail("max_key_per_request", config_.max_key_per_request)});
  }

  // KME-23/24: all or nothing, each key once (KeyStore::FetchAll, QKD-K9).
  auto keys = store_->FetchAll(ids, slave, master);
  if (keys.ok()) return KeyContainer(*keys);
  ++refused_fetches_;
  // Name the refused ids: those the store would not serve now, and repeats.
  std::vector<std::string> not_found;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool repeated = std::find(ids.begin(), ids.begin() + i, ids[i]) != ids.begin() + i;
    if (repeated || !store_->CheckFetch(ids[i], slave, master).ok()) {
      if (!Contains(not_found, ids[i])) not_found.push_back(ids[i]);
    }
  }
  if (not_found.empty()) not_found = ids;  // ids overlapping each other's bits
  // KME-25: a key made for another SAE of this node -> 401 (CheckFetch
  // changes nothing).
  for (const auto& id : not_found) {
    for (const auto& other : config_.local_saes) {
      if (other != slave && store_->CheckFetch(id, other, master).ok()) return Unauthorized();
    }
  }
  return Error(400, std::string(kKeysNotFound), {Detail("key_IDs_not_found", not_found)});
}

HttpResponse Kme::KeyContainer(const std::vector<ReservedKey>& keys) {
  pb::EtsiKeyContainer container;
  for (const auto& key : keys) {
    auto* k = container.add_keys();
    k->set_key_id(key.key_id);
    k->set_key(absl::Base64Escape(key.key));
  }
  keys_delivered_ += keys.size();
  return HttpResponse{200, ToJson(container), "application/json"};
}

}  // namespace qnet::qkd
