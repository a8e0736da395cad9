// Fast JSON paths for trace records; see trace_json.h for the subset and why.
#include "stack/trace_json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/strutil.h"

namespace qnet {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// google.protobuf.* messages (Duration, Struct, wrappers...) have their own
// JSON forms: left to Protobuf.
bool Special(const Descriptor* d) {
  return d->file()->package() == "google.protobuf" || d->extension_range_count() > 0;
}

// Printable ASCII that Protobuf's JSON escaping leaves as it is (it escapes
// '"', '\\', '<', '>', controls and some non-ASCII code points).
bool PlainString(const std::string& s) {
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>') return false;
  }
  return true;
}

// Protobuf renders doubles with SimpleDtoa; NaN, infinities and -0 are left
// to it.
bool AppendDouble(double v, std::string* out) {
  if (!std::isfinite(v) || (v == 0 && std::signbit(v))) return false;
  out->append(google::protobuf::SimpleDtoa(v));
  return true;
}

// One value of `f` (element `index` if repeated, else index < 0).
bool AppendValue(const Message& m, const Reflection* r, const FieldDescriptor* f, int index,
                 std::string* out) {
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:  // 64-bit integers are JSON strings
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), "\"");
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f),
                      "\"");
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return AppendDouble(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), out);
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      return true;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int v = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(v);
      if (e == nullptr) return false;  // unknown value: printed as a number by Protobuf
      absl::StrAppend(out, "\"", e->name(), "\"");
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (f->type() == FieldDescriptor::TYPE_BYTES) return false;
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (!PlainString(s)) return false;
      absl::StrAppend(out, "\"", s, "\"");
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return AppendJsonFast(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return false;
  }
  return false;
}

// Fields by json_name (Protobuf 3.21's Descriptor has no such lookup); one
// table per message type and thread, built on first use.
const FieldDescriptor* FieldByJsonName(const Descriptor* d, absl::string_view name) {
  using Table = absl::flat_hash_map<std::string, const FieldDescriptor*>;
  thread_local absl::flat_hash_map<const Descriptor*, Table> tables;
  auto [it, inserted] = tables.try_emplace(d);
  if (inserted) {
    for (int i = 0; i < d->field_count(); ++i)
      it->second.emplace(d->field(i)->json_name(), d->field(i));
  }
  auto f = it->second.find(name);
  return f == it->second.end() ? nullptr : f->second;
}

// A recursive-descent reader of exactly the writer's shape.
class Reader {
 public:
  explicit Reader(absl::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool Top(Message* m) { return Object(m, 0) && p_ == end_; }

 private:
  bool Eat(char c) {
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  bool Literal(absl::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || absl::string_view(p_, word.size()) != word)
      return false;
    p_ += word.size();
    return true;
  }

  // A string of printable ASCII without escapes.
  bool String(absl::string_view* s) {
    if (!Eat('"')) return false;
    const char* begin = p_;
    while (p_ < end_ && *p_ != '"') {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c > 0x7e || c == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *s = absl::string_view(begin, static_cast<size_t>(p_ - begin));
    ++p_;
    return true;
  }

  // -?(0|[1-9][0-9]*), at most 20 digits; quoted when `quoted`.
  bool IntegerText(bool quoted, bool allow_minus, absl::string_view* digits) {
    if (quoted && !Eat('"')) return false;
    const char* begin = p_;
    if (allow_minus) Eat('-');
    const char* first = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    const size_t n = static_cast<size_t>(p_ - first);
    if (n == 0 || n > 20 || (n > 1 && *first == '0') || (n == 1 && *first == '0' && first != begin))
      return false;
    *digits = absl::string_view(begin, static_cast<size_t>(p_ - begin));
    return !quoted || Eat('"');
  }

  bool Signed(bool quoted, int64_t* v) {
    absl::string_view t;
    return IntegerText(quoted, true, &t) && absl::SimpleAtoi(t, v);
  }
  bool Unsigned(bool quoted, uint64_t* v) {
    absl::string_view t;
    return IntegerText(quoted, false, &t) && absl::SimpleAtoi(t, v);
  }

  // A JSON number; integers of more than 15 digits are left to Protobuf (it
  // checks that they convert to a double exactly).
  bool Double(double* v) {
    const char* begin = p_;
    Eat('-');
    const char* first = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    const size_t n = static_cast<size_t>(p_ - first);
    if (n == 0 || (n > 1 && *first == '0')) return false;
    bool integral = true;
    if (Eat('.')) {
      integral = false;
      const char* f = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == f) return false;
    }
    if (Eat('e') || Eat('E')) {
      integral = false;
      if (!Eat('+')) Eat('-');
      const char* e = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == e) return false;
    }
    if (integral && n > 15) return false;
    if (!absl::SimpleAtod(absl::string_view(begin, static_cast<size_t>(p_ - begin)), v))
      return false;
    // Infinities, -0 and values near the subnormal range are left to Protobuf.
    return std::isfinite(*v) && !(*v == 0 && std::signbit(*v)) &&
           (*v == 0 || std::fabs(*v) > 1e-300);
  }

  bool Value(Message* m, const Reflection* r, const FieldDescriptor* f, bool add, int depth) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int64_t v;
        if (!Signed(false, &v) || v < std::numeric_limits<int32_t>::min() ||
            v > std::numeric_limits<int32_t>::max())
          return false;
        add ? r->AddInt32(m, f, static_cast<int32_t>(v))
            : r->SetInt32(m, f, static_cast<int32_t>(v));
        return true;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint64_t v;
        if (!Unsigned(false, &v) || v > std::numeric_limits<uint32_t>::max()) return false;
        add ? r->AddUInt32(m, f, static_cast<uint32_t>(v))
            : r->SetUInt32(m, f, static_cast<uint32_t>(v));
        return true;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!Signed(true, &v)) return false;
        add ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (!Unsigned(true, &v)) return false;
        add ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double v;
        if (!Double(&v)) return false;
        add ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v;
        if (Literal("true")) {
          v = true;
        } else if (Literal("false")) {
          v = false;
        } else {
          return false;
        }
        add ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        absl::string_view name;
        if (!String(&name)) return false;
        key_.assign(name.data(), name.size());
        const EnumValueDescriptor* e = f->enum_type()->FindValueByName(key_);
        if (e == nullptr) return false;
        add ? r->AddEnumValue(m, f, e->number()) : r->SetEnumValue(m, f, e->number());
        return true;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        absl::string_view s;
        if (f->type() == FieldDescriptor::TYPE_BYTES || !String(&s)) return false;
        add ? r->AddString(m, f, std::string(s)) : r->SetString(m, f, std::string(s));
        return true;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return Object(add ? r->AddMessage(m, f) : r->MutableMessage(m, f), depth + 1);
      case FieldDescriptor::CPPTYPE_FLOAT:
        return false;
    }
    return false;
  }

  bool Object(Message* m, int depth) {
    const Descriptor* d = m->GetDescriptor();
    if (depth > 32 || Special(d) || !Eat('{')) return false;
    if (Eat('}')) return true;
    const Reflection* r = m->GetReflection();
    absl::InlinedVector<const FieldDescriptor*, 16> seen;
    do {
      absl::string_view key;
      if (!String(&key) || !Eat(':')) return false;
      const FieldDescriptor* f = FieldByJsonName(d, key);
      if (f == nullptr || f->is_map()) return false;  // unknown or proto names: Protobuf's
      for (const FieldDescriptor* s : seen) {
        if (s == f) return false;  // a key twice
      }
      seen.push_back(f);
      if (const auto* oneof = f->real_containing_oneof();
          oneof != nullptr && r->HasOneof(*m, oneof))
        return false;  // two members of a oneof
      if (!f->is_repeated()) {
        if (!Value(m, r, f, false, depth)) return false;
      } else {
        if (!Eat('[')) return false;
        if (!Eat(']')) {
          do {
            if (!Value(m, r, f, true, depth)) return false;
          } while (Eat(','));
          if (!Eat(']')) return false;
        }
      }
    } while (Eat(','));
    return Eat('}');
  }

  const char* p_;
  const char* end_;
  std::string key_;  // reused lookup key
};

}  // namespace

bool AppendJsonFast(const Message& message, std::string* out) {
  const Descriptor* d = message.GetDescriptor();
  if (Special(d)) return false;
  const Reflection* r = message.GetReflection();
  if (!r->GetUnknownFields(message).empty()) return false;
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(message, &fields);  // set fields, by number: the order Protobuf prints
  out->push_back('{');
  for (size_t i = 0; i < fields.size(); ++i) {
    const FieldDescriptor* f = fields[i];
    if (f->is_map()) return false;
    if (i > 0) out->push_back(',');
    absl::StrAppend(out, "\"", f->json_name(), "\":");
    if (!f->is_repeated()) {
      if (!AppendValue(message, r, f, -1, out)) return false;
      continue;
    }
    out->push_back('[');
    const int n = r->FieldSize(message, f);
    for (int j = 0; j < n; ++j) {
      if (j > 0) out->push_back(',');
      if (!AppendValue(message, r, f, j, out)) return false;
    }
    out->push_back(']');
  }
  out->push_back('}');
  return true;
}

bool ParseJsonFast(absl::string_view json, Message* message) { return Reader(json).Top(message); }

}  // namespace qnet
