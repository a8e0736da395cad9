// Fast paths for the trace files' JSON lines (specs/topology.md RES-1..RES-5).
//
// Protobuf's JSON utilities (MessageToJsonString / JsonStringToMessage) go
// through a binary round trip and a generic object stream per call; for the
// millions of small records a sim run traces they were most of its time. These
// two functions handle the common subset directly through reflection and give
// up (return false) on anything outside it, so that the caller falls back to
// Protobuf's own functions: the output bytes (writer) and the parsed message
// (reader) are always what Protobuf's functions would give.
//
// Subset: scalar, enum, string and nested message fields, repeated or not, no
// maps, bytes, floats, well-known types or unknown fields; strings of printable
// ASCII without the characters Protobuf escapes; finite doubles other than -0.
// The reader also takes only that output's shape: no whitespace, no escapes,
// lowerCamelCase (json_name) keys, each key once, int64 kinds quoted.
#ifndef QNET_STACK_TRACE_JSON_H_
#define QNET_STACK_TRACE_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace qnet {

// Appends `message` as Protobuf's JSON mapping with options add_whitespace =
// false, preserve_proto_field_names = false and the other options at their
// defaults. Returns false, with *out possibly extended, if the message is
// outside the subset.
bool AppendJsonFast(const google::protobuf::Message& message, std::string* out);

// Parses one JSON object into `message` (which must be empty) as
// JsonStringToMessage with ignore_unknown_fields would. Returns false, with
// `message` possibly partly filled, if the text is outside the subset
// (including every text Protobuf would refuse).
bool ParseJsonFast(absl::string_view json, google::protobuf::Message* message);

}  // namespace qnet

#endif  // QNET_STACK_TRACE_JSON_H_
