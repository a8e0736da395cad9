#include "emulator/scenarios/topology_gen.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace qnet::scenarios {
namespace {

std::string Seconds(double s) { return std::isinf(s) ? "inf" : absl::StrFormat("%.9g", s); }

std::string Header(const std::string& name, uint64_t seed, double duration_s,
                   const std::string& metric) {
  std::string xml = absl::StrFormat(R"(<network name="%s" seed="%d" duration-s="%s")", name, seed,
                                    Seconds(duration_s));
  if (!metric.empty()) absl::StrAppend(&xml, " routing-metric=\"", metric, "\"");
  absl::StrAppend(&xml, ">\n");
  return xml;
}

std::string Hardware(uint32_t memories, double depolar_s) {
  std::string xml = absl::StrFormat(R"(  <hardware name="hw" memories="%d")", memories);
  if (!std::isinf(depolar_s)) absl::StrAppend(&xml, " depolar-s=\"", Seconds(depolar_s), "\"");
  absl::StrAppend(&xml, "/>\n");
  return xml;
}

std::string Link(const std::string& name, const std::string& a, const std::string& b,
                 const LinkGen& l, double attempt_us, double delay_us) {
  return absl::StrFormat(
      R"(  <link name="%s" a="%s" b="%s" length-km="0" scheme="werner" attempt-us="%s" )"
      R"(p-success="%.9g" fidelity="%.9g" classical-delay-us="%s"/>)"
      "\n",
      name, a, b, Seconds(attempt_us), l.p, l.fidelity, Seconds(delay_us));
}

std::string Connection(const ConnectionGen& c) {
  std::string xml = "  <connection";
  if (!c.name.empty()) absl::StrAppend(&xml, " name=\"", c.name, "\"");
  absl::StrAppend(
      &xml, absl::StrFormat(R"( from="%s" to="%s" pairs="%d" type="keep" hold-s="%s" start-s="%s")",
                            c.from, c.to, c.pairs, Seconds(c.hold_s), Seconds(c.start_s)));
  if (c.cutoff_s > 0) absl::StrAppend(&xml, " cutoff-s=\"", Seconds(c.cutoff_s), "\"");
  if (c.min_fidelity > 0)
    absl::StrAppend(&xml, absl::StrFormat(" min-fidelity=\"%.9g\"", c.min_fidelity));
  absl::StrAppend(&xml, "/>\n");
  return xml;
}

std::string Workload(const MeshGen& mesh) {
  std::string xml;
  for (const ConnectionGen& c : mesh.connections) absl::StrAppend(&xml, Connection(c));
  for (const auto& [at, link] : mesh.cuts)
    absl::StrAppend(&xml,
                    absl::StrFormat("  <event at=\"%s\" cut-link=\"%s\"/>\n", Seconds(at), link));
  return xml;
}

}  // namespace

std::string ChainNodeName(int index, int links) {
  const int width = static_cast<int>(std::to_string(links).size());
  return absl::StrFormat("n%0*d", width, index);
}

std::string ChainLinkName(int index, int links) {
  const int width = static_cast<int>(std::to_string(links).size());
  return absl::StrFormat("l%0*d", width, index);
}

std::string ChainXml(const ChainGen& chain) {
  const int n = static_cast<int>(chain.links.size());
  std::string xml = Header(chain.name, chain.seed, chain.duration_s, chain.routing_metric);
  absl::StrAppend(&xml, Hardware(chain.memories, chain.depolar_s));
  for (int i = 0; i <= n; ++i)
    absl::StrAppend(&xml, "  <node name=\"", ChainNodeName(i, n), "\" hardware=\"hw\"/>\n");
  for (int i = 0; i < n; ++i)
    absl::StrAppend(&xml, Link(ChainLinkName(i, n), ChainNodeName(i, n), ChainNodeName(i + 1, n),
                               chain.links[i], chain.attempt_us, chain.classical_delay_us));
  if (chain.connections.empty()) {
    ConnectionGen c;
    c.name = "e2e";
    c.from = ChainNodeName(0, n);
    c.to = ChainNodeName(n, n);
    c.pairs = chain.pairs;
    c.cutoff_s = chain.cutoff_s;
    c.start_s = chain.start_s;
    absl::StrAppend(&xml, Connection(c));
  } else {
    for (const ConnectionGen& c : chain.connections) absl::StrAppend(&xml, Connection(c));
  }
  absl::StrAppend(&xml, "</network>\n");
  return xml;
}

std::string GridNodeName(int row, int col) { return absl::StrFormat("g%d_%d", row, col); }

std::string GridXml(const MeshGen& mesh, int rows, int cols) {
  std::string xml = Header(mesh.name, mesh.seed, mesh.duration_s, mesh.routing_metric);
  absl::StrAppend(&xml, Hardware(mesh.memories, std::numeric_limits<double>::infinity()));
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      absl::StrAppend(&xml, "  <node name=\"", GridNodeName(r, c), "\" hardware=\"hw\"/>\n");
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      if (c + 1 < cols)
        absl::StrAppend(
            &xml, Link(absl::StrFormat("h%d_%d", r, c), GridNodeName(r, c), GridNodeName(r, c + 1),
                       mesh.link, mesh.attempt_us, mesh.classical_delay_us));
      if (r + 1 < rows)
        absl::StrAppend(
            &xml, Link(absl::StrFormat("v%d_%d", r, c), GridNodeName(r, c), GridNodeName(r + 1, c),
                       mesh.link, mesh.attempt_us, mesh.classical_delay_us));
    }
  }
  absl::StrAppend(&xml, Workload(mesh), "</network>\n");
  return xml;
}

std::string RingXml(const MeshGen& mesh, int nodes) {
  std::string xml = Header(mesh.name, mesh.seed, mesh.duration_s, mesh.routing_metric);
  absl::StrAppend(&xml, Hardware(mesh.memories, std::numeric_limits<double>::infinity()));
  for (int i = 0; i < nodes; ++i)
    absl::StrAppend(&xml, absl::StrFormat("  <node name=\"r%d\" hardware=\"hw\"/>\n", i));
  for (int i = 0; i < nodes; ++i)
    absl::StrAppend(&xml, Link(absl::StrFormat("l%d", i), absl::StrFormat("r%d", i),
                               absl::StrFormat("r%d", (i + 1) % nodes), mesh.link, mesh.attempt_us,
                               mesh.classical_delay_us));
  absl::StrAppend(&xml, Workload(mesh), "</network>\n");
  return xml;
}

}  // namespace qnet::scenarios
