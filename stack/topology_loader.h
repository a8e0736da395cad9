// Reads a topology file (specs/topology.md) into the Topology model. Every
// error names the file, line and attribute: "topo.xml:12: <link name=\"l1\">:
// attribute 'length-km': expected a number >= 0, got 'ten'".
// Implements TOPO-1..TOPO-13 and TOPO-30..TOPO-36 (validation): unknown elements and attributes,
// missing required attributes, numbers and ranges, names and references, link
// and request shape, scheme-specific attributes are all refused; all errors
// of a file are returned together, in file order, one per line, as
// InvalidArgument (NotFound when the file cannot be opened).
#ifndef QNET_STACK_TOPOLOGY_LOADER_H_
#define QNET_STACK_TOPOLOGY_LOADER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "stack/topology.h"

namespace qnet {

absl::StatusOr<Topology> LoadTopologyFile(const std::string& path);
// `source` names the text in error messages.
absl::StatusOr<Topology> ParseTopology(std::string_view xml, const std::string& source);

}  // namespace qnet

#endif  // QNET_STACK_TOPOLOGY_LOADER_H_
