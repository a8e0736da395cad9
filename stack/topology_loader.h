// Reads a topology file (specs/topology.md) into the Topology model. Every
// error names the file, line and attribute: "topo.xml:12: <link name=\"l1\">:
// attribute 'length-km': expected a number >= 0, got 'ten'".
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
