// The topology generators write files the loader accepts (specs/topology.md).
#include "emulator/scenarios/topology_gen.h"

#include "gtest/gtest.h"
#include "stack/topology_loader.h"

namespace qnet::scenarios {
namespace {

TEST(TopologyGenTest, GeneratedTopologiesLoad) {
  ChainGen chain;
  chain.links = {{0.1, 0.9}, {0.05, 0.95}, {0.2, 0.99}};
  chain.depolar_s = 0.5;
  auto c = ParseTopology(ChainXml(chain), "chain.xml");
  ASSERT_TRUE(c.ok()) << c.status() << "\n" << ChainXml(chain);
  EXPECT_EQ(c->nodes.size(), 4u);
  EXPECT_EQ(c->links.size(), 3u);
  ASSERT_EQ(c->connections.size(), 1u);
  EXPECT_EQ(c->connections[0].from, "n0");
  EXPECT_EQ(c->connections[0].to, "n3");
  EXPECT_DOUBLE_EQ(c->links[1].p_success, 0.05);
  EXPECT_DOUBLE_EQ(c->hardware[0].depolar_s, 0.5);
  EXPECT_NEAR(*c->links[0].classical_delay_s, 1e-9, 1e-15);

  MeshGen mesh;
  mesh.connections = {{"a", GridNodeName(0, 0), GridNodeName(3, 3), 10}};
  mesh.cuts = {{0.5, "h0_0"}};
  auto g = ParseTopology(GridXml(mesh, 4, 4), "grid.xml");
  ASSERT_TRUE(g.ok()) << g.status() << "\n" << GridXml(mesh, 4, 4);
  EXPECT_EQ(g->nodes.size(), 16u);
  EXPECT_EQ(g->links.size(), 24u);
  EXPECT_EQ(g->events.size(), 1u);
  EXPECT_EQ(g->routing_metric, RoutingMetricSpec::kHops);

  mesh.connections = {{"a", "r0", "r4", 10}};
  mesh.cuts = {{0.5, "l1"}};
  auto ring = ParseTopology(RingXml(mesh, 8), "ring.xml");
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->links.size(), 8u);
  EXPECT_EQ(ring->links[7].b, "r0");
}

}  // namespace
}  // namespace qnet::scenarios
