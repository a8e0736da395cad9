// The fast JSON paths of the trace files (stack/trace_json.h) give exactly
// Protobuf's bytes and messages (RES-1, RES-2: the trace format is Protobuf's
// JSON mapping), and decline everything outside their subset so that the
// callers fall back to Protobuf.
#include "stack/trace_json.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "qnet/results/v1/results.pb.h"
#include "stack/random.h"

namespace qnet {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using results::v1::TraceRecord;

std::string ProtobufJson(const Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = false;
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &json, options).ok());
  return json;
}

// Protobuf's parse of `json` as the trace reader configures it (binary form;
// "" if Protobuf refuses it).
std::string ProtobufParse(const std::string& json) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  TraceRecord r;
  if (!google::protobuf::util::JsonStringToMessage(json, &r, options).ok()) return "";
  return r.SerializeAsString();
}

const std::string kPrintable = [] {
  std::string s;
  for (char c = 0x20; c < 0x7f; ++c) {
    if (c != '"' && c != '\\' && c != '<' && c != '>') s += c;
  }
  return s;
}();

// Random values for every field reachable from TraceRecord (one oneof member
// per message, as a record holds), from a seeded generator.
void Fill(Message* m, Rng& rng, int depth) {
  const Descriptor* d = m->GetDescriptor();
  if (d->file()->package() == "google.protobuf") return;
  const Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->real_containing_oneof() != nullptr &&
        (r->HasOneof(*m, f->real_containing_oneof()) || !rng.Bernoulli(0.3)))
      continue;
    if (f->real_containing_oneof() == nullptr && rng.Bernoulli(0.2)) continue;  // default
    const int n = f->is_repeated() ? static_cast<int>(rng.Below(4)) : 1;
    for (int k = 0; k < n; ++k) {
      const bool add = f->is_repeated();
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32: {
          const auto v = static_cast<int32_t>(rng.Next());
          add ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_UINT32: {
          const auto v = static_cast<uint32_t>(rng.Next() >> rng.Below(33));
          add ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_INT64: {
          const auto v = static_cast<int64_t>(rng.Next());
          add ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_UINT64: {
          const uint64_t v = rng.Next() >> rng.Below(65);
          add ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_DOUBLE: {
          const double scale = std::pow(10.0, static_cast<double>(rng.Below(40)) - 20);
          double v = (rng.Uniform() - 0.3) * scale;
          if (rng.Bernoulli(0.2)) v = static_cast<double>(rng.Below(1000)) / 8;
          add ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_FLOAT: {
          const auto v = static_cast<float>(rng.Uniform());
          add ? r->AddFloat(m, f, v) : r->SetFloat(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_BOOL:
          add ? r->AddBool(m, f, rng.Bernoulli(0.5)) : r->SetBool(m, f, rng.Bernoulli(0.5));
          break;
        case FieldDescriptor::CPPTYPE_ENUM: {
          const auto* e = f->enum_type();
          const int v = e->value(static_cast<int>(rng.Below(e->value_count())))->number();
          add ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
          break;
        }
        case FieldDescriptor::CPPTYPE_STRING: {
          std::string s;
          const uint64_t len = rng.Below(12);
          for (uint64_t j = 0; j < len; ++j) s += kPrintable[rng.Below(kPrintable.size())];
          add ? r->AddString(m, f, s) : r->SetString(m, f, s);
          break;
        }
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 6) Fill(add ? r->AddMessage(m, f) : r->MutableMessage(m, f), rng, depth + 1);
          break;
      }
    }
  }
}

// RES-1: on ten thousand random records of every kind, the fast writer gives
// Protobuf's bytes whenever it accepts the record (it declines only records
// with a float, a google.protobuf type or a value outside its subset), and the
// fast reader gives back Protobuf's message for those bytes.
TEST(TraceJsonTest, RandomRecordsMatchProtobufBothWays) {
  Rng rng(20240607);
  int accepted = 0, parsed_fast = 0;
  for (int i = 0; i < 10000; ++i) {
    TraceRecord record;
    Fill(&record, rng, 0);
    const std::string expected = ProtobufJson(record);
    std::string fast;
    if (AppendJsonFast(record, &fast)) {
      ++accepted;
      ASSERT_EQ(fast, expected) << record.DebugString();
    }
    TraceRecord parsed;
    if (ParseJsonFast(expected, &parsed)) {
      ++parsed_fast;
      ASSERT_EQ(parsed.SerializeAsString(), ProtobufParse(expected)) << expected;
    }
  }
  // Most records have no float or Duration: the fast paths do the work.
  EXPECT_GT(accepted, 5000);
  EXPECT_GT(parsed_fast, 5000);
}

// The records a sim run writes most: exact bytes, accepted by both fast paths.
TEST(TraceJsonTest, CommonRecordsAreWrittenAndReadByTheFastPaths) {
  TraceRecord r;
  r.set_time_ns(50156730);
  r.set_node("b");
  auto* ok = r.mutable_ok();
  ok->set_create_id(1);
  ok->mutable_pair()->set_origin("a");
  ok->mutable_pair()->set_partner("b");
  ok->mutable_pair()->set_sequence(1);
  ok->set_bell_state(physical::v1::BELL_STATE_PSI_PLUS);
  ok->set_estimated_fidelity(0.99);
  ok->set_slot(0);  // optional: printed although 0
  ok->set_herald_seq(1);
  ok->set_link("ab");
  r.set_attempts(5);
  const std::string line =
      "{\"timeNs\":\"50156730\",\"node\":\"b\",\"ok\":{\"createId\":\"1\",\"pair\":{\"origin\":"
      "\"a\",\"partner\":\"b\",\"sequence\":\"1\"},\"bellState\":\"BELL_STATE_PSI_PLUS\","
      "\"estimatedFidelity\":0.99,\"slot\":0,\"heraldSeq\":\"1\",\"link\":\"ab\"},\"attempts\":"
      "\"5\"}";
  std::string fast;
  ASSERT_TRUE(AppendJsonFast(r, &fast));
  EXPECT_EQ(fast, line);
  EXPECT_EQ(ProtobufJson(r), line);
  TraceRecord back;
  ASSERT_TRUE(ParseJsonFast(line, &back));
  EXPECT_EQ(back.SerializeAsString(), r.SerializeAsString());

  TraceRecord truth;
  truth.set_time_ns(50156730);
  truth.set_node("qworld");
  truth.mutable_herald_truth()->set_true_fidelity(0.99000000000000021);
  fast.clear();
  ASSERT_TRUE(AppendJsonFast(truth, &fast));
  EXPECT_EQ(fast,
            "{\"timeNs\":\"50156730\",\"node\":\"qworld\",\"heraldTruth\":{\"trueFidelity\":0."
            "99000000000000021}}");
}

// Values Protobuf prints its own way: the writer declines them.
TEST(TraceJsonTest, WriterDeclinesEscapesNonFiniteAndNegativeZero) {
  for (const std::string& s : {std::string("a\"b"), std::string("a\\b"), std::string("<p>"),
                               std::string("tab\t"), std::string("caf\xc3\xa9")}) {
    TraceRecord r;
    r.set_node(s);
    std::string out;
    EXPECT_FALSE(AppendJsonFast(r, &out)) << s;
  }
  for (double v : {std::nan(""), std::numeric_limits<double>::infinity(), -0.0}) {
    TraceRecord r;
    r.mutable_herald_truth()->set_true_fidelity(v);
    std::string out;
    EXPECT_FALSE(AppendJsonFast(r, &out)) << v;
  }
  TraceRecord r;
  r.mutable_ok()->set_bell_state(static_cast<physical::v1::BellState>(77));  // no name
  std::string out;
  EXPECT_FALSE(AppendJsonFast(r, &out));
}

// RES-2: texts outside the writer's shape are left to Protobuf (which may
// accept them: whitespace, proto field names, unknown fields, escapes, enum
// numbers, nulls; or refuse them: duplicates, bad numbers, trailing text).
TEST(TraceJsonTest, ReaderDeclinesEverythingOutsideTheWritersShape) {
  const std::vector<std::string> texts = {
      "{\"node\": \"a\"}",
      " {\"node\":\"a\"}",
      "{\"node\":\"a\"} ",
      "{\"time_ns\":\"5\"}",
      "{\"unknownField\":1,\"node\":\"a\"}",
      "{\"node\":\"a\\u0062\"}",
      "{\"node\":\"a\",\"node\":\"b\"}",
      "{\"ok\":{},\"err\":{}}",
      "{\"timeNs\":5}",
      "{\"timeNs\":\"05\"}",
      "{\"timeNs\":\"-5\"}",
      "{\"timeNs\":\"18446744073709551616\"}",
      "{\"ok\":{\"slot\":\"3\"}}",
      "{\"ok\":{\"slot\":4294967296}}",
      "{\"ok\":{\"slot\":1.0}}",
      "{\"ok\":{\"bellState\":2}}",
      "{\"ok\":{\"bellState\":\"NO_SUCH_STATE\"}}",
      "{\"ok\":{\"estimatedFidelity\":\"NaN\"}}",
      "{\"ok\":{\"estimatedFidelity\":-0.0}}",
      "{\"ok\":{\"estimatedFidelity\":1e999}}",
      "{\"ok\":{\"estimatedFidelity\":9007199254740993}}",
      "{\"ok\":{\"estimatedFidelity\":.5}}",
      "{\"ok\":null}",
      "{\"node\":\"a\"}x",
      "{\"node\":\"a\"",
      "",
      "[]",
  };
  for (const std::string& text : texts) {
    TraceRecord r;
    EXPECT_FALSE(ParseJsonFast(text, &r)) << text;
  }
}

// Numbers at the edges of their types read as Protobuf reads them.
TEST(TraceJsonTest, ReaderMatchesProtobufAtNumericEdges) {
  const std::vector<std::string> texts = {
      "{\"timeNs\":\"18446744073709551615\",\"createId\":\"0\"}",
      "{\"ok\":{\"slot\":4294967295,\"estimatedFidelity\":1e-7}}",
      "{\"ok\":{\"estimatedFidelity\":123456789012345}}",
      "{\"ok\":{\"estimatedFidelity\":-2.5E+3}}",
      "{\"ok\":{\"estimatedFidelity\":0}}",
      "{\"linkBusy\":{\"busy\":false}}",
      "{\"circuitEvent\":{\"path\":[]}}",
      "{\"circuitEvent\":{\"path\":[\"a\",\"b\",\"c\"],\"up\":true}}",
  };
  for (const std::string& text : texts) {
    TraceRecord r;
    ASSERT_TRUE(ParseJsonFast(text, &r)) << text;
    const std::string expected = ProtobufParse(text);
    EXPECT_EQ(r.SerializeAsString(), expected) << text;
  }
}

}  // namespace
}  // namespace qnet
