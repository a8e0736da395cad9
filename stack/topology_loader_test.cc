// Topology loader: the example topologies load, every attribute lands in the
// model with its unit, and each kind of bad input is refused with file, line and
// attribute in the message (specs/topology.md TOPO-1..TOPO-13).
#include "stack/topology_loader.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stack/heralding_model.h"

namespace qnet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kTopologies = std::string(QNET_SOURCE_DIR) + "/emulator/topologies/";

// Lines 1-5 are fixed; the body starts on line 6.
std::string Net(const std::string& body, const std::string& network_attrs = "") {
  return absl::StrCat("<network name=\"t\"", network_attrs, ">\n",  // 1
                      "<hardware name=\"hw\"/>\n",                  // 2
                      "<node name=\"a\" hardware=\"hw\"/>\n",       // 3
                      "<node name=\"b\" hardware=\"hw\"/>\n",       // 4
                      "<node name=\"c\" hardware=\"hw\"/>\n",       // 5
                      body, "\n</network>\n");
}

const char kLinkAb[] = "<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\"/>";

TEST(TopologyLoaderTest, ExampleTopologiesLoad) {
  for (const char* name : {"demo.xml", "single-click.xml", "double-click.xml", "werner.xml",
                           "nv-lab.xml", "bench-single-click.xml"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<Topology> t = LoadTopologyFile(kTopologies + name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_GE(t->nodes.size(), 2u);
    EXPECT_GE(t->links.size(), 1u);
    EXPECT_GE(t->requests.size(), 1u);
    EXPECT_EQ(t->source, kTopologies + name);
    for (const LinkSpec& l : t->links) {
      EXPECT_GT(SuccessProbability(l, l.alpha.value_or(0.1)), 0) << l.name;
      EXPECT_NE(t->HardwareOf(l.a), nullptr);
    }
  }
}

// The demo must deliver tens of Hz (README): keep at F >= 0.9 and measure at
// F >= 0.85 on a 1 ms cycle.
TEST(TopologyLoaderTest, DemoRatesAreTensOfHertz) {
  absl::StatusOr<Topology> t = LoadTopologyFile(kTopologies + "demo.xml");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->links.size(), 1u);
  ASSERT_EQ(t->requests.size(), 2u);
  const LinkSpec& link = t->links[0];
  const double cycle = absl::ToDoubleSeconds(AttemptCycle(link));
  EXPECT_DOUBLE_EQ(cycle, 1e-3);
  double busy_s = 0;
  for (const RequestSpec& q : t->requests) {
    std::optional<double> alpha = ChooseAlpha(link, q.min_fidelity);
    ASSERT_TRUE(alpha.has_value());
    const double rate = SuccessProbability(link, *alpha) / cycle;
    EXPECT_GT(rate, 20);
    EXPECT_LT(rate, 100);
    busy_s += q.pairs / rate;
  }
  EXPECT_EQ(t->requests[0].kind, RequestKind::kKeep);
  EXPECT_EQ(t->requests[1].kind, RequestKind::kMeasure);
  EXPECT_LT(busy_s, t->duration_s);
  EXPECT_GT(busy_s, 0.5 * t->duration_s);
}

TEST(TopologyLoaderTest, EveryAttributeMapsIntoTheModelWithItsUnit) {
  const std::string xml = R"(<network name="full" seed="99" duration-s="2.5" time-dilation="4">
  <hardware name="hw" memories="7" t1-s="2" t2-s="3" depolar-s="inf" readout-error="0.03"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="12.5" loss-db-km="0.18" scheme="single-click"
        attempt-us="5.5" efficiency="0.4" dark-count-prob="1e-5" visibility="0.95" alpha="0.2"
        midpoint="0.3" classical-delay-us="70" memory-poll-us="250"/>
  <request from="b" to="a" pairs="12" type="measure" min-fidelity="0.7" basis="xyz"
           max-time-s="1.5" priority="2" purpose="443" start-s="0.25"/>
</network>)";
  absl::StatusOr<Topology> t = ParseTopology(xml, "full.xml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->name, "full");
  EXPECT_EQ(t->seed, 99u);
  EXPECT_DOUBLE_EQ(t->duration_s, 2.5);
  EXPECT_DOUBLE_EQ(t->time_dilation, 4);
  const HardwareSpec& h = t->hardware.at(0);
  EXPECT_EQ(h.memories, 7u);
  EXPECT_DOUBLE_EQ(h.t1_s, 2);
  EXPECT_DOUBLE_EQ(h.t2_s, 3);
  EXPECT_TRUE(std::isinf(h.depolar_s));
  EXPECT_DOUBLE_EQ(h.readout_error, 0.03);
  EXPECT_EQ(h.line, 2);
  const LinkSpec& l = t->links.at(0);
  EXPECT_EQ(l.a, "a");
  EXPECT_EQ(l.b, "b");
  EXPECT_DOUBLE_EQ(l.length_km, 12.5);
  EXPECT_DOUBLE_EQ(l.loss_db_km, 0.18);
  EXPECT_EQ(l.scheme, HeraldingScheme::kSingleClick);
  EXPECT_DOUBLE_EQ(l.attempt_s, 5.5e-6);
  EXPECT_DOUBLE_EQ(l.efficiency, 0.4);
  EXPECT_DOUBLE_EQ(l.dark_count_prob, 1e-5);
  EXPECT_DOUBLE_EQ(l.visibility, 0.95);
  ASSERT_TRUE(l.alpha.has_value());
  EXPECT_DOUBLE_EQ(*l.alpha, 0.2);
  EXPECT_DOUBLE_EQ(l.midpoint_fraction, 0.3);
  ASSERT_TRUE(l.classical_delay_s.has_value());
  EXPECT_DOUBLE_EQ(*l.classical_delay_s, 70e-6);
  EXPECT_DOUBLE_EQ(l.memory_poll_s, 250e-6);
  EXPECT_EQ(l.line, 5);
  const RequestSpec& q = t->requests.at(0);
  EXPECT_EQ(q.from, "b");
  EXPECT_EQ(q.to, "a");
  EXPECT_EQ(q.pairs, 12u);
  EXPECT_EQ(q.kind, RequestKind::kMeasure);
  EXPECT_DOUBLE_EQ(q.min_fidelity, 0.7);
  EXPECT_EQ(q.basis, BasisSet::kXYZ);
  EXPECT_DOUBLE_EQ(q.max_time_s, 1.5);
  EXPECT_EQ(q.priority, 2u);
  EXPECT_EQ(q.purpose_id, 443u);
  EXPECT_DOUBLE_EQ(q.start_s, 0.25);
  EXPECT_EQ(q.line, 8);
}

TEST(TopologyLoaderTest, DefaultsAreTheDocumentedOnes) {
  const std::string xml = R"(<network>
  <hardware name="hw" t1-s="0.5"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="2"/>
  <link name="w" a="b" b="c" length-km="2" scheme="werner" p-success="0.5"/>
  <node name="c" hardware="hw"/>
  <request from="a" to="b"/>
</network>)";
  absl::StatusOr<Topology> t = ParseTopology(xml, "defaults.xml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->name, "qnet");
  EXPECT_EQ(t->seed, 1u);
  EXPECT_DOUBLE_EQ(t->duration_s, 10);
  EXPECT_DOUBLE_EQ(t->time_dilation, 1);
  EXPECT_EQ(t->hardware[0].memories, 4u);
  EXPECT_DOUBLE_EQ(t->hardware[0].t2_s, 1.0);  // TOPO-10: absent t2 is 2 t1
  EXPECT_TRUE(std::isinf(t->hardware[0].depolar_s));
  const LinkSpec& l = t->links[0];
  EXPECT_EQ(l.scheme, HeraldingScheme::kSingleClick);
  EXPECT_DOUBLE_EQ(l.loss_db_km, 0.2);
  EXPECT_DOUBLE_EQ(l.attempt_s, 10e-6);
  EXPECT_DOUBLE_EQ(l.efficiency, 1);
  EXPECT_FALSE(l.alpha.has_value());
  EXPECT_FALSE(l.classical_delay_s.has_value());
  EXPECT_DOUBLE_EQ(l.delay_s(), 2 / kFibreKmPerSecond);
  EXPECT_DOUBLE_EQ(l.midpoint_fraction, 0.5);
  EXPECT_DOUBLE_EQ(l.memory_poll_s, 1e-3);
  EXPECT_EQ(l.eavesdropper, LinkSpec::Eavesdropper::kNone);  // TOPO-37
  EXPECT_DOUBLE_EQ(l.intercept_fraction, 1);
  EXPECT_TRUE(t->saes.empty());
  EXPECT_DOUBLE_EQ(t->links[1].fidelity, 1);
  const RequestSpec& q = t->requests[0];
  EXPECT_EQ(q.pairs, 1u);
  EXPECT_EQ(q.kind, RequestKind::kKeep);
  EXPECT_EQ(q.basis, BasisSet::kXZ);
  EXPECT_DOUBLE_EQ(q.max_time_s, 0);
}

struct BadCase {
  const char* what;
  std::string xml;
  std::vector<std::string> expected;  // substrings of the error
};

std::vector<BadCase> BadCases() {
  return {
      // The example message of the issue, verbatim (TOPO-3, TOPO-5).
      {"bad number",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"x\"/>"),
       {"bad.xml:6: <link name=\"ab\">: attribute 'length-km': expected a number >= 0, got 'x'"}},
      {"NaN",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"nan\"/>"),
       {"bad.xml:6:", "attribute 'length-km'", "got 'nan'"}},
      {"negative length",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"-1\"/>"),
       {"bad.xml:6:", "attribute 'length-km'", "got '-1'"}},
      {"trailing junk",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1km\"/>"),
       {"bad.xml:6:", "attribute 'length-km'"}},
      {"implausibly long link",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1e7\"/>"),
       {"bad.xml:6:", "attribute 'length-km': expected at most"}},
      {"duration beyond the time range",
       Net("", " duration-s=\"1e12\""),
       {"bad.xml:1:", "attribute 'duration-s': expected at most"}},
      {"probability above 1",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" efficiency=\"1.5\"/>"),
       {"bad.xml:6:", "attribute 'efficiency'", "probability in [0, 1]"}},
      {"alpha 0",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" alpha=\"0\"/>"),
       {"bad.xml:6:", "attribute 'alpha'", "(0, 0.5]"}},
      {"alpha above 0.5",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" alpha=\"0.6\"/>"),
       {"bad.xml:6:", "attribute 'alpha'"}},
      {"zero attempt time",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" attempt-us=\"0\"/>"),
       {"bad.xml:6:", "attribute 'attempt-us'", "time > 0"}},
      {"negative duration",
       Net("", " duration-s=\"-1\""),
       {"bad.xml:1: <network name=\"t\">: attribute 'duration-s'"}},
      {"infinite duration",
       Net("", " duration-s=\"inf\""),
       {"bad.xml:1:", "attribute 'duration-s'"}},
      {"t2 above 2 t1",
       Net("<hardware name=\"h2\" t1-s=\"1\" t2-s=\"2.5\"/>"),
       {"bad.xml:6: <hardware name=\"h2\">: attribute 't2-s'", "t2 must be <= 2 t1"}},
      {"zero memories",
       Net("<hardware name=\"h2\" memories=\"0\"/>"),
       {"bad.xml:6:", "attribute 'memories'", "integer in [1, 4096]"}},
      {"fractional pairs",
       Net(absl::StrCat(kLinkAb, "\n<request from=\"a\" to=\"b\" pairs=\"1.5\"/>")),
       {"bad.xml:7: <request>: attribute 'pairs'"}},
      {"negative pairs",
       Net(absl::StrCat(kLinkAb, "\n<request from=\"a\" to=\"b\" pairs=\"-3\"/>")),
       {"bad.xml:7:", "attribute 'pairs'"}},
      {"unknown keyword",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" scheme=\"triple\"/>"),
       {"bad.xml:6:", "attribute 'scheme'", "single-click | double-click | werner", "'triple'"}},
      {"unknown basis",
       Net(absl::StrCat(kLinkAb, "\n<request from=\"a\" to=\"b\" basis=\"zx\"/>")),
       {"bad.xml:7:", "attribute 'basis'"}},
      {"unknown attribute (typo)",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" lenght-km=\"1\"/>"),
       {"bad.xml:6:", "attribute 'lenght-km': unknown attribute of <link>"}},
      {"unknown element",
       Net("<lnk name=\"ab\" a=\"a\" b=\"b\"/>"),
       {"bad.xml:6: unknown element <lnk>"}},
      {"missing required attribute",
       Net("<link name=\"ab\" a=\"a\" length-km=\"1\"/>"),
       {"bad.xml:6: <link name=\"ab\">: attribute 'b': required attribute is missing"}},
      {"missing length",
       Net("<link name=\"ab\" a=\"a\" b=\"b\"/>"),
       {"bad.xml:6:", "attribute 'length-km': required"}},
      {"node without hardware",
       Net("<node name=\"d\"/>"),
       {"bad.xml:6: <node name=\"d\">: attribute 'hardware': required"}},
      {"bad name",
       Net("<node name=\"../x\" hardware=\"hw\"/>"),
       {"bad.xml:6:", "attribute 'name'", "got '../x'"}},
      {"duplicate node",
       Net("<node name=\"b\" hardware=\"hw\"/>"),
       {"bad.xml:6: <node name=\"b\">: attribute 'name': duplicate node name", "line 4"}},
      {"duplicate link",
       Net(absl::StrCat(kLinkAb, "\n<link name=\"ab\" a=\"b\" b=\"c\" length-km=\"1\"/>")),
       {"bad.xml:7:", "attribute 'name': duplicate link name"}},
      {"duplicate hardware",
       Net("<hardware name=\"hw\"/>"),
       {"bad.xml:6:", "attribute 'name': duplicate hardware name"}},
      {"unknown hardware",
       Net("<node name=\"d\" hardware=\"nope\"/>"),
       {"bad.xml:6:", "attribute 'hardware': no <hardware> named 'nope'"}},
      {"unknown link end",
       Net("<link name=\"ad\" a=\"a\" b=\"d\" length-km=\"1\"/>"),
       {"bad.xml:6:", "attribute 'b': no <node> named 'd'"}},
      {"link to itself",
       Net("<link name=\"aa\" a=\"a\" b=\"a\" length-km=\"1\"/>"),
       {"bad.xml:6:", "attribute 'b'", "to itself"}},
      {"two links between one pair",
       Net(absl::StrCat(kLinkAb, "\n<link name=\"ba\" a=\"b\" b=\"a\" length-km=\"1\"/>")),
       {"bad.xml:7:", "attribute 'b'", "a second link between 'b' and 'a'", "'ab' on line 6"}},
      {"request between non-neighbours",
       Net(absl::StrCat(kLinkAb, "\n<request from=\"a\" to=\"c\"/>")),
       {"bad.xml:7: <request>: attribute 'to'", "'c' is not a neighbour of 'a'"}},
      {"request to unknown node",
       Net(absl::StrCat(kLinkAb, "\n<request from=\"a\" to=\"z\"/>")),
       {"bad.xml:7:", "attribute 'to': no <node> named 'z'"}},
      {"werner without p-success",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" scheme=\"werner\"/>"),
       {"bad.xml:6:", "attribute 'p-success': required for scheme werner"}},
      {"werner with optics",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" scheme=\"werner\" p-success=\"0.1\" "
           "efficiency=\"0.5\"/>"),
       {"bad.xml:6:", "attribute 'efficiency': does not apply to scheme werner"}},
      {"werner fidelity below 1/4",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" scheme=\"werner\" p-success=\"0.1\" "
           "fidelity=\"0.2\"/>"),
       {"bad.xml:6:", "attribute 'fidelity'"}},
      {"alpha on double-click",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" scheme=\"double-click\" "
           "alpha=\"0.1\"/>"),
       {"bad.xml:6:", "attribute 'alpha': does not apply to scheme double-click"}},
      {"p-success on the default scheme",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" p-success=\"0.1\"/>"),
       {"bad.xml:6:", "attribute 'p-success': does not apply to scheme single-click"}},
      {"link that can never herald",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" efficiency=\"0\"/>"),
       {"bad.xml:6:", "attribute 'efficiency'", "never herald"}},
      {"hold on a measure request",
       Net(absl::StrCat(kLinkAb, "\n<request from=\"a\" to=\"b\" type=\"measure\" hold-s=\"1\"/>")),
       {"bad.xml:7:", "attribute 'hold-s'", "only to type keep"}},
      {"text inside network", Net("oops"), {"bad.xml:6:", "unexpected text 'oops'"}},
      {"child element inside link",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\"><x/></link>"),
       {"bad.xml:6:", "<link> must be empty"}},
      {"wrong root", "<netwrk/>", {"bad.xml:1:", "root element must be <network>, got <netwrk>"}},
      {"two roots", "<network/>\n<network/>", {"bad.xml:2:", "only one root element"}},
      {"not XML", "<network>\n<node name=\"a\"\n", {"bad.xml:", "not well-formed XML"}},
      {"mismatched tags",
       "<network>\n<node></link>\n</network>",
       {"bad.xml:2:", "not well-formed XML"}},
      {"empty file", "", {"bad.xml:1:", "not well-formed XML"}},
      {"no nodes", "<network/>", {"bad.xml:1:", "no <node>"}},
      // Issue 3 workload (TOPO-30..TOPO-36).
      {"connection to unknown node",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"z\"/>")),
       {"bad.xml:7: <connection>: attribute 'to': no <node> named 'z'"}},
      {"connection without from",
       Net(absl::StrCat(kLinkAb, "\n<connection to=\"b\"/>")),
       {"bad.xml:7: <connection>: attribute 'from': required attribute is missing"}},
      {"connection to itself",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"a\"/>")),
       {"bad.xml:7: <connection>: attribute 'to': a connection from node 'a' to itself"}},
      {"connection without a path",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"c\"/>")),
       {"bad.xml:7: <connection>: attribute 'to': no path of links joins 'a' and 'c'"}},
      {"connection bad number",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" min-fidelity=\"high\"/>")),
       {"bad.xml:7: <connection>: attribute 'min-fidelity': expected a probability in [0, 1], "
        "got 'high'"}},
      {"connection negative rate",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" min-rate=\"-1\"/>")),
       {"bad.xml:7:", "attribute 'min-rate'", "got '-1'"}},
      {"connection window 0",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" window=\"0\"/>")),
       {"bad.xml:7:", "attribute 'window': expected an integer in [1, 4096]"}},
      {"connection port beyond 65535",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" port=\"70000\"/>")),
       {"bad.xml:7:", "attribute 'port'"}},
      {"connection unknown type",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" type=\"hold\"/>")),
       {"bad.xml:7:", "attribute 'type': expected one of keep | measure, got 'hold'"}},
      {"connection unknown basis",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" basis=\"w\"/>")),
       {"bad.xml:7:", "attribute 'basis'", "z | x | y | xz | xyz"}},
      {"connection hold on measure",
       Net(absl::StrCat(kLinkAb,
                        "\n<connection from=\"a\" to=\"b\" type=\"measure\" hold-s=\"1\"/>")),
       {"bad.xml:7:", "attribute 'hold-s'", "only to type keep"}},
      {"connection unknown attribute",
       Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\" fidelity=\"0.9\"/>")),
       {"bad.xml:7:", "attribute 'fidelity': unknown attribute of <connection>"}},
      {"duplicate connection names",
       Net(absl::StrCat(kLinkAb, "\n<connection name=\"k\" from=\"a\" to=\"b\"/>",
                        "\n<connection name=\"k\" from=\"b\" to=\"a\"/>")),
       {"bad.xml:8: <connection name=\"k\">: attribute 'name': duplicate connection name 'k' "
        "(first on line 7)"}},
      {"app to unknown peer",
       Net(absl::StrCat(kLinkAb, "\n<app kind=\"chsh\" node=\"a\" peer=\"q\"/>")),
       {"bad.xml:7: <app>: attribute 'peer': no <node> named 'q'"}},
      {"app without kind",
       Net(absl::StrCat(kLinkAb, "\n<app node=\"a\" peer=\"b\"/>")),
       {"bad.xml:7: <app>: attribute 'kind': required attribute is missing"}},
      {"app with itself",
       Net(absl::StrCat(kLinkAb, "\n<app kind=\"chsh\" node=\"b\" peer=\"b\"/>")),
       {"bad.xml:7:", "attribute 'peer': an app from node 'b' to itself"}},
      {"app zero pairs",
       Net(absl::StrCat(kLinkAb, "\n<app kind=\"chsh\" node=\"a\" peer=\"b\" pairs=\"0\"/>")),
       {"bad.xml:7:", "attribute 'pairs'"}},
      {"app bad parameter name",
       Net(absl::StrCat(kLinkAb, "\n<app kind=\"chsh\" node=\"a\" peer=\"b\" _x:y=\"1\"/>")),
       {"bad.xml:7:", "attribute '_x:y': a parameter name"}},
      {"duplicate default app names",
       Net(absl::StrCat(kLinkAb, "\n<app kind=\"chsh\" node=\"a\" peer=\"b\"/>",
                        "\n<app kind=\"chsh\" node=\"a\" peer=\"b\"/>")),
       {"bad.xml:8:", "duplicate app name 'chsh-a-b' (first on line 7); give each app a name"}},
      {"event on unknown link",
       Net(absl::StrCat(kLinkAb, "\n<event at=\"1\" cut-link=\"xy\"/>")),
       {"bad.xml:7: <event>: attribute 'cut-link': no <link> named 'xy'"}},
      {"event on unknown node",
       Net(absl::StrCat(kLinkAb, "\n<event at=\"1\" fail-node=\"q\"/>")),
       {"bad.xml:7: <event>: attribute 'fail-node': no <node> named 'q'"}},
      {"event with both targets",
       Net(absl::StrCat(kLinkAb, "\n<event at=\"1\" cut-link=\"ab\" fail-node=\"a\"/>")),
       {"bad.xml:7:", "attribute 'fail-node': give either cut-link or fail-node, not both"}},
      {"event without target",
       Net(absl::StrCat(kLinkAb, "\n<event at=\"1\"/>")),
       {"bad.xml:7:", "attribute 'cut-link': an <event> needs cut-link or fail-node"}},
      {"event without time",
       Net(absl::StrCat(kLinkAb, "\n<event cut-link=\"ab\"/>")),
       {"bad.xml:7: <event>: attribute 'at': required attribute is missing"}},
      {"event bad time",
       Net(absl::StrCat(kLinkAb, "\n<event at=\"soon\" cut-link=\"ab\"/>")),
       {"bad.xml:7: <event>: attribute 'at': expected a time >= 0, got 'soon'"}},
      {"event after the run",
       Net(absl::StrCat(kLinkAb, "\n<event at=\"11\" cut-link=\"ab\"/>")),
       {"bad.xml:7:", "attribute 'at': 11 s is after the run's end (duration-s 10)"}},
      // TOPO-37: the link's attacker.
      {"unknown eavesdropper",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" eavesdropper=\"mitm\"/>"),
       {"bad.xml:6: <link name=\"ab\">: attribute 'eavesdropper': expected one of none | "
        "intercept-resend, got 'mitm'"}},
      {"intercept fraction above 1",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" eavesdropper=\"intercept-resend\" "
           "intercept-fraction=\"1.2\"/>"),
       {"bad.xml:6:", "attribute 'intercept-fraction': expected a fraction in [0, 1], got '1.2'"}},
      {"intercept fraction NaN",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" eavesdropper=\"intercept-resend\" "
           "intercept-fraction=\"nan\"/>"),
       {"bad.xml:6:", "attribute 'intercept-fraction'", "got 'nan'"}},
      {"intercept fraction without eavesdropper",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" intercept-fraction=\"0.5\"/>"),
       {"bad.xml:6: <link name=\"ab\">: attribute 'intercept-fraction': applies only with "
        "eavesdropper=\"intercept-resend\""}},
      {"intercept fraction with eavesdropper none",
       Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" eavesdropper=\"none\" "
           "intercept-fraction=\"0.5\"/>"),
       {"bad.xml:6:", "attribute 'intercept-fraction': applies only with"}},
      // TOPO-38: secure application entities.
      {"sae on unknown node",
       Net(absl::StrCat(kLinkAb, "\n<sae name=\"s1\" node=\"q\"/>")),
       {"bad.xml:7: <sae name=\"s1\">: attribute 'node': no <node> named 'q'"}},
      {"duplicate sae name",
       Net(absl::StrCat(kLinkAb, "\n<sae name=\"s1\" node=\"a\"/>\n<sae name=\"s1\" node=\"b\"/>")),
       {"bad.xml:8: <sae name=\"s1\">: attribute 'name': duplicate sae name 's1' (first on line "
        "7)"}},
      {"sae without name",
       Net(absl::StrCat(kLinkAb, "\n<sae node=\"a\"/>")),
       {"bad.xml:7: <sae>: attribute 'name': required attribute is missing"}},
      {"sae without node",
       Net(absl::StrCat(kLinkAb, "\n<sae name=\"s1\"/>")),
       {"bad.xml:7: <sae name=\"s1\">: attribute 'node': required attribute is missing"}},
      {"sae with a bad name",
       Net(absl::StrCat(kLinkAb, "\n<sae name=\"s 1\" node=\"a\"/>")),
       {"bad.xml:7:", "attribute 'name': expected a name", "got 's 1'"}},
      {"sae with an unknown attribute",
       Net(absl::StrCat(kLinkAb, "\n<sae name=\"s1\" node=\"a\" cert=\"x.pem\"/>")),
       {"bad.xml:7:", "attribute 'cert': unknown attribute of <sae> (known: name, node)"}},
      {"unknown routing metric",
       Net("", " routing-metric=\"latency\""),
       {"bad.xml:1: <network name=\"t\">: attribute 'routing-metric': expected one of hops | "
        "pair-time | fidelity, got 'latency'"}},
  };
}

TEST(TopologyLoaderTest, RejectsEachKindOfBadInputNamingFileLineAndAttribute) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(c.what);
    absl::StatusOr<Topology> t = ParseTopology(c.xml, "bad.xml");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(t.status().message());
    for (const std::string& s : c.expected) EXPECT_THAT(message, HasSubstr(s));
  }
}

// TOPO-3: all errors of a file come back at once, one per line.
TEST(TopologyLoaderTest, ReportsAllErrorsTogether) {
  const std::string xml =
      Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"x\" efficiency=\"2\"/>\n"
          "<request from=\"a\" to=\"c\"/>");
  absl::StatusOr<Topology> t = ParseTopology(xml, "bad.xml");
  ASSERT_FALSE(t.ok());
  const std::string message(t.status().message());
  EXPECT_THAT(message, AllOf(HasSubstr("bad.xml:6: <link name=\"ab\">: attribute 'length-km'"),
                             HasSubstr("bad.xml:6: <link name=\"ab\">: attribute 'efficiency'"),
                             HasSubstr("bad.xml:7: <request>: attribute 'to'")));
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2);
}

TEST(TopologyLoaderTest, ManyErrorsAreCappedAndCounted) {
  std::string body;
  for (int i = 0; i < 30; ++i) absl::StrAppend(&body, "<bogus/>\n");
  absl::StatusOr<Topology> t = ParseTopology(Net(body), "bad.xml");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("... and 10 more errors"));
}

TEST(TopologyLoaderTest, UnprintableBytesDoNotReachTheMessage) {
  absl::StatusOr<Topology> t =
      ParseTopology(Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"\x01\x02\"/>"), "bad.xml");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), AllOf(HasSubstr("got '?"
                                                                 "?'"),
                                                       Not(HasSubstr("\x01"))));
}

TEST(TopologyLoaderTest, InfinityOnlyWhereDocumented) {
  EXPECT_TRUE(
      ParseTopology(Net("<hardware name=\"h2\" t1-s=\"inf\" t2-s=\"inf\" depolar-s=\"inf\"/>"),
                    "ok.xml")
          .ok());
  EXPECT_FALSE(
      ParseTopology(Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"inf\"/>"), "bad.xml").ok());
  EXPECT_FALSE(ParseTopology(Net("<hardware name=\"h2\" t1-s=\"1e999\"/>"), "bad.xml").ok());
}

TEST(TopologyLoaderTest, FileErrorsNameThePath) {
  absl::StatusOr<Topology> missing = LoadTopologyFile("/nonexistent/dir/topo.xml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/dir/topo.xml"));

  absl::StatusOr<Topology> dir = LoadTopologyFile(kTopologies);
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(std::string(dir.status().message()), HasSubstr("is a directory"));

  const std::string path = absl::StrCat(::testing::TempDir(), "/not_xml_", getpid(), ".xml");
  std::ofstream(path) << "this is not XML at all\n";
  absl::StatusOr<Topology> junk = LoadTopologyFile(path);
  ASSERT_FALSE(junk.ok());
  EXPECT_THAT(std::string(junk.status().message()),
              AllOf(HasSubstr(path + ":1:"), HasSubstr("XML")));
  std::filesystem::remove(path);
}

// TOPO-30..TOPO-36: the issue 3 workload lands in the model with its units.
TEST(TopologyLoaderTest, ConnectionsAppsAndEventsMapIntoTheModel) {
  const std::string xml = R"(<network duration-s="20" routing-metric="fidelity">
  <hardware name="hw"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1"/>
  <link name="bc" a="b" b="c" length-km="1"/>
  <connection name="k1" from="a" to="c" port="7" pairs="500" type="measure" min-fidelity="0.8"
              basis="xyz" min-rate="2.5" cutoff-s="0.01" window="3" start-s="1.5"/>
  <connection from="c" to="a" hold-s="0.002" cutoff-s="inf"/>
  <app name="t1" kind="teleport" node="a" peer="c" port="9" pairs="40" min-fidelity="0.7"
       start-s="2" states="6" verbose="yes"/>
  <event at="5" cut-link="bc"/>
  <event at="6.5" fail-node="b"/>
</network>)";
  absl::StatusOr<Topology> t = ParseTopology(xml, "w.xml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->routing_metric, RoutingMetricSpec::kFidelity);
  ASSERT_EQ(t->connections.size(), 2u);
  const ConnectionSpec& c = t->connections[0];
  EXPECT_EQ(c.name, "k1");
  EXPECT_EQ(c.from, "a");
  EXPECT_EQ(c.to, "c");
  EXPECT_EQ(c.port, 7u);
  EXPECT_EQ(c.pairs, 500u);
  EXPECT_EQ(c.kind, RequestKind::kMeasure);
  EXPECT_DOUBLE_EQ(c.min_fidelity, 0.8);
  EXPECT_EQ(c.basis, BasisSet::kXYZ);
  EXPECT_DOUBLE_EQ(c.min_rate_hz, 2.5);
  EXPECT_DOUBLE_EQ(c.cutoff_s, 0.01);
  EXPECT_EQ(c.window, 3u);
  EXPECT_DOUBLE_EQ(c.start_s, 1.5);
  EXPECT_EQ(c.line, 8);
  EXPECT_EQ(t->connections[1].name, "c-a#1");
  EXPECT_DOUBLE_EQ(t->connections[1].hold_s, 0.002);
  EXPECT_TRUE(std::isinf(t->connections[1].cutoff_s));
  ASSERT_EQ(t->apps.size(), 1u);
  const AppSpec& app = t->apps[0];
  EXPECT_EQ(app.name, "t1");
  EXPECT_EQ(app.kind, "teleport");
  EXPECT_EQ(app.node, "a");
  EXPECT_EQ(app.peer, "c");
  EXPECT_EQ(app.port, 9u);
  EXPECT_EQ(app.pairs, 40u);
  EXPECT_DOUBLE_EQ(app.min_fidelity, 0.7);
  EXPECT_DOUBLE_EQ(app.start_s, 2);
  using Params = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(app.params, (Params{{"states", "6"}, {"verbose", "yes"}}));
  ASSERT_EQ(t->events.size(), 2u);
  EXPECT_DOUBLE_EQ(t->events[0].at_s, 5);
  EXPECT_EQ(t->events[0].kind, EventKind::kCutLink);
  EXPECT_EQ(t->events[0].target, "bc");
  EXPECT_DOUBLE_EQ(t->events[1].at_s, 6.5);
  EXPECT_EQ(t->events[1].kind, EventKind::kFailNode);
  EXPECT_EQ(t->events[1].target, "b");
  for (const char* metric : {"hops", "pair-time"}) {
    absl::StatusOr<Topology> m =
        ParseTopology(Net(kLinkAb, absl::StrCat(" routing-metric=\"", metric, "\"")), "m.xml");
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->routing_metric, std::string(metric) == "hops" ? RoutingMetricSpec::kHops
                                                               : RoutingMetricSpec::kPairTime);
  }
}

// TOPO-30, TOPO-33, TOPO-36: defaults of <connection>, <app> and the metric.
TEST(TopologyLoaderTest, WorkloadDefaultsAreTheDocumentedOnes) {
  absl::StatusOr<Topology> t =
      ParseTopology(Net(absl::StrCat(kLinkAb, "\n<connection from=\"a\" to=\"b\"/>",
                                     "\n<connection from=\"a\" to=\"b\"/>",
                                     "\n<app kind=\"chsh\" node=\"b\" peer=\"a\"/>")),
                    "d.xml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->routing_metric, RoutingMetricSpec::kPairTime);
  ASSERT_EQ(t->connections.size(), 2u);
  const ConnectionSpec& c = t->connections[0];
  EXPECT_EQ(c.name, "a-b#1");
  EXPECT_EQ(t->connections[1].name, "a-b#2");
  EXPECT_EQ(c.port, 0u);
  EXPECT_EQ(c.pairs, 0u);
  EXPECT_EQ(c.kind, RequestKind::kKeep);
  EXPECT_DOUBLE_EQ(c.min_fidelity, 0);
  EXPECT_EQ(c.basis, BasisSet::kXZ);
  EXPECT_DOUBLE_EQ(c.min_rate_hz, 0);
  EXPECT_DOUBLE_EQ(c.cutoff_s, 0);
  EXPECT_EQ(c.window, 1u);
  EXPECT_DOUBLE_EQ(c.start_s, 0);
  EXPECT_DOUBLE_EQ(c.hold_s, 0);
  ASSERT_EQ(t->apps.size(), 1u);
  EXPECT_EQ(t->apps[0].name, "chsh-b-a");
  EXPECT_EQ(t->apps[0].pairs, 100u);
  EXPECT_EQ(t->apps[0].port, 0u);
  EXPECT_TRUE(t->apps[0].params.empty());
  EXPECT_TRUE(t->events.empty());
}

// TOPO-37, TOPO-38, TOPO-39: the eavesdropper attributes, <sae> elements and
// the qkd app's parameters land in the model; defaults: no attacker, fraction 1.
TEST(TopologyLoaderTest, EavesdropperSaesAndQkdParametersMapIntoTheModel) {
  absl::StatusOr<Topology> t = ParseTopology(
      Net("<link name=\"ab\" a=\"a\" b=\"b\" length-km=\"1\" eavesdropper=\"none\"/>\n"
          "<link name=\"bc\" a=\"b\" b=\"c\" length-km=\"1\" eavesdropper=\"intercept-resend\" "
          "intercept-fraction=\"0.4\"/>\n"
          "<link name=\"ac\" a=\"a\" b=\"c\" length-km=\"1\" eavesdropper=\"intercept-resend\"/>\n"
          "<sae name=\"sae-a\" node=\"a\"/>\n"
          "<sae name=\"sae-a2\" node=\"a\"/>\n"
          "<sae name=\"sae-c\" node=\"c\"/>\n"
          "<app kind=\"qkd\" node=\"a\" peer=\"c\" pairs=\"30000\" block-bits=\"10000\" "
          "z-probability=\"0.9\" sample-fraction=\"0.1\" qber-threshold=\"0.11\" eps-sec=\"1e-10\" "
          "eps-cor=\"1e-15\" cascade-passes=\"4\" key-size=\"256\" kme-http-port=\"8080\" "
          "kme-https-port=\"8443\"/>"),
      "q.xml");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->links.size(), 3u);
  EXPECT_EQ(t->links[0].eavesdropper, LinkSpec::Eavesdropper::kNone);
  EXPECT_DOUBLE_EQ(t->links[0].intercept_fraction, 1.0);
  EXPECT_EQ(t->links[1].eavesdropper, LinkSpec::Eavesdropper::kInterceptResend);
  EXPECT_DOUBLE_EQ(t->links[1].intercept_fraction, 0.4);
  EXPECT_EQ(t->links[2].eavesdropper, LinkSpec::Eavesdropper::kInterceptResend);
  EXPECT_DOUBLE_EQ(t->links[2].intercept_fraction, 1.0);
  ASSERT_EQ(t->saes.size(), 3u);
  EXPECT_EQ(t->saes[0].name, "sae-a");
  EXPECT_EQ(t->saes[0].node, "a");
  EXPECT_EQ(t->saes[0].line, 9);
  EXPECT_EQ(t->saes[1].name, "sae-a2");
  EXPECT_EQ(t->saes[1].node, "a");
  EXPECT_EQ(t->saes[2].name, "sae-c");
  EXPECT_EQ(t->saes[2].node, "c");
  ASSERT_EQ(t->apps.size(), 1u);
  EXPECT_EQ(t->apps[0].name, "qkd-a-c");
  EXPECT_EQ(t->apps[0].pairs, 30000u);
  using Params = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(t->apps[0].params, (Params{{"block-bits", "10000"},
                                       {"z-probability", "0.9"},
                                       {"sample-fraction", "0.1"},
                                       {"qber-threshold", "0.11"},
                                       {"eps-sec", "1e-10"},
                                       {"eps-cor", "1e-15"},
                                       {"cascade-passes", "4"},
                                       {"key-size", "256"},
                                       {"kme-http-port", "8080"},
                                       {"kme-https-port", "8443"}}));
}

// The QKD example topologies load with their attacker and SAEs (TOPO-37, TOPO-38).
TEST(TopologyLoaderTest, QkdExampleTopologiesLoad) {
  for (const char* name : {"qkd-chain3.xml", "qkd-eve.xml"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<Topology> t = LoadTopologyFile(kTopologies + name);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->nodes.size(), 3u);
    ASSERT_EQ(t->links.size(), 2u);
    ASSERT_EQ(t->apps.size(), 1u);
    EXPECT_EQ(t->apps[0].kind, "qkd");
    EXPECT_EQ(t->apps[0].node, "a");
    EXPECT_EQ(t->apps[0].peer, "c");
    EXPECT_EQ(t->apps[0].pairs, 30000u);
    ASSERT_EQ(t->saes.size(), 2u);
    EXPECT_EQ(t->saes[0].name, "sae-a");
    EXPECT_EQ(t->saes[1].name, "sae-c");
    const bool eve = std::string(name) == "qkd-eve.xml";
    EXPECT_EQ(t->FindLink("ab")->eavesdropper, LinkSpec::Eavesdropper::kNone);
    EXPECT_EQ(t->FindLink("bc")->eavesdropper,
              eve ? LinkSpec::Eavesdropper::kInterceptResend : LinkSpec::Eavesdropper::kNone);
    for (const LinkSpec& l : t->links) {
      EXPECT_DOUBLE_EQ(l.fidelity, 0.99);
      EXPECT_DOUBLE_EQ(l.p_success, 0.2);
    }
  }
}

}  // namespace
}  // namespace qnet
