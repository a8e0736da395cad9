#include "stack/topology.h"

namespace qnet {

const NodeSpec* Topology::FindNode(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

const LinkSpec* Topology::FindLink(const std::string& name) const {
  for (const auto& l : links)
    if (l.name == name) return &l;
  return nullptr;
}

const LinkSpec* Topology::LinkBetween(const std::string& x, const std::string& y) const {
  for (const auto& l : links)
    if ((l.a == x && l.b == y) || (l.a == y && l.b == x)) return &l;
  return nullptr;
}

const HardwareSpec* Topology::HardwareOf(const std::string& node) const {
  const NodeSpec* n = FindNode(node);
  if (n == nullptr) return nullptr;
  for (const auto& h : hardware)
    if (h.name == n->hardware) return &h;
  return nullptr;
}

}  // namespace qnet
