// qkd[] of summary.json and the report's QKD table on hand-written result and
// key files (specs/topology.md RES-34..RES-39): every expected value is the
// file's value or the definition applied by hand.
#include "emulator/results/qkd_summary.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "emulator/results/summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stack/topology_loader.h"

namespace qnet::results {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kChain[] = R"(<network name="q" seed="1" duration-s="1">
  <hardware name="hw" memories="4"/>
  <node name="a" hardware="hw"/>
  <node name="b" hardware="hw"/>
  <node name="c" hardware="hw"/>
  <link name="ab" a="a" b="b" length-km="1" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.97"/>
  <link name="bc" a="b" b="c" length-km="1" scheme="werner" attempt-us="10" p-success="0.1" fidelity="0.97"/>
  <app name="good" kind="qkd" node="a" peer="c" pairs="1000" block-bits="2000"/>
  <app name="tele" kind="teleport" node="a" peer="c"/>
  <app name="eve" kind="qkd" node="c" peer="a"/>
  <app name="differ" kind="qkd" node="a" peer="b"/>
  <app name="gone" kind="qkd" node="b" peer="c"/>
</network>
)";

class Folder {
 public:
  explicit Folder(const std::string& name)
      : dir_(absl::StrCat(::testing::TempDir(), "/qnet_qkd_summary_", name, "_", getpid())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/apps");
    std::filesystem::create_directories(dir_ + "/qkd");
  }
  ~Folder() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }
  void Write(const std::string& relative, const std::string& bytes) {
    std::ofstream out(dir_ + "/" + relative, std::ios::binary | std::ios::trunc);
    out << bytes;
  }

 private:
  std::string dir_;
};

// QkdSession::ResultJson's fields (specs/qkd.md QKD-R*), one end.
std::string Result(const std::string& role, bool ok, bool aborted, const std::string& reason,
                   double qber_z, uint64_t secret_bits, uint64_t stored_key_bits = 8000) {
  return absl::StrCat(R"({"session": "good", "role": ")", role, R"(", "ok": )",
                      ok ? "true" : "false", R"(, "aborted": )", aborted ? "true" : "false",
                      R"(, "abort_reason": ")", reason, R"(", "qber_z": )", qber_z,
                      R"(, "qber_x": 0.031, "sifted_bits": 20000, "secret_bits": )", secret_bits,
                      R"(, "key_rate_bps": 1234.5, "ec_efficiency": 1.17, "blocks": 2,
                          "disclosed_bits": 2900, "auth_bits_consumed": 1472,
                          "auth_bits_refilled": 1000, "stored_key_bits": )",
                      stored_key_bits, R"(, "error": ")", aborted ? reason : "", R"("})");
}

// RES-34..RES-38 on one file set per case: a good session (Alice's figures,
// identical keys), an aborted one (the reason, empty keys), keys that differ,
// and files that are missing or malformed.
TEST(QkdSummaryTest, ResultAndKeyFilesGiveTheDefinedFigures) {
  absl::StatusOr<Topology> topology = ParseTopology(kChain, "q.xml");
  ASSERT_TRUE(topology.ok()) << topology.status();
  Folder f("figures");
  f.Write("apps/good.json", Result("a", true, false, "", 0.0295, 9472));
  f.Write("apps/good.b.json", Result("b", true, false, "", 0.5, 1));  // Bob's figures unused
  const std::string key(1000, '\x5a');
  f.Write("qkd/good.a.key", key);
  f.Write("qkd/good.b.key", key);
  f.Write("apps/eve.json", Result("a", false, true, "QBER Z 0.25 above 0.11", 0.25, 0));
  f.Write("apps/eve.b.json", Result("b", false, true, "peer aborted", 0.25, 0));
  f.Write("qkd/eve.a.key", "");
  f.Write("qkd/eve.b.key", "");
  f.Write("apps/differ.json", Result("a", true, false, "", 0.01, 64, 64));
  f.Write("apps/differ.b.json", "{not json");
  f.Write("qkd/differ.a.key", "abcdefgh");
  f.Write("qkd/differ.b.key", "abcdefgX");
  f.Write("apps/tele.json", R"({"ok": true})");

  absl::StatusOr<v1::Summary> s = Summarize(*topology, f.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->qkd_size(), 4);  // the qkd apps only, in topology order (RES-34)

  const v1::QkdSummary& good = s->qkd(0);
  EXPECT_EQ(good.name(), "good");
  EXPECT_EQ(good.from(), "a");
  EXPECT_EQ(good.to(), "c");
  EXPECT_DOUBLE_EQ(good.qber_z(), 0.0295);  // RES-35: Alice's file
  EXPECT_DOUBLE_EQ(good.qber_x(), 0.031);
  EXPECT_EQ(good.sifted_bits(), 20000u);
  EXPECT_EQ(good.secret_bits(), 9472u);
  EXPECT_DOUBLE_EQ(good.key_rate_bps(), 1234.5);
  EXPECT_DOUBLE_EQ(good.ec_efficiency(), 1.17);
  EXPECT_EQ(good.blocks(), 2u);
  EXPECT_EQ(good.disclosed_bits(), 2900u);
  EXPECT_EQ(good.auth_bits_consumed(), 1472u);
  EXPECT_EQ(good.stored_key_bits(), 8000u);
  EXPECT_EQ(good.auth_bits_refilled(), 1000u);
  EXPECT_EQ(good.net_key_bits(), 8000 + 1000 - 1472);  // RES-35a
  EXPECT_EQ(s->qkd(2).net_key_bits(), 64 + 1000 - 1472);
  EXPECT_FALSE(good.aborted());
  EXPECT_EQ(good.abort_reason(), "");
  EXPECT_TRUE(good.keys_match());  // RES-37
  EXPECT_EQ(good.key_bits(), 8000u);
  EXPECT_EQ(good.error(), "");

  const v1::QkdSummary& eve = s->qkd(1);
  EXPECT_EQ(eve.from(), "c");
  EXPECT_TRUE(eve.aborted());  // RES-36: Alice's reason first
  EXPECT_EQ(eve.abort_reason(), "QBER Z 0.25 above 0.11");
  EXPECT_DOUBLE_EQ(eve.qber_z(), 0.25);
  EXPECT_EQ(eve.secret_bits(), 0u);
  EXPECT_FALSE(eve.keys_match());  // empty key files never match
  EXPECT_EQ(eve.key_bits(), 0u);
  EXPECT_EQ(eve.error(), "");  // an abort is not an error of the files

  const v1::QkdSummary& differ = s->qkd(2);
  EXPECT_FALSE(differ.keys_match());
  EXPECT_EQ(differ.key_bits(), 64u);
  EXPECT_DOUBLE_EQ(differ.qber_z(), 0.01);
  EXPECT_THAT(differ.error(), HasSubstr("apps/differ.b.json: not a JSON object"));
  EXPECT_THAT(differ.error(),
              HasSubstr("qkd/differ.a.key and qkd/differ.b.key differ (8 and 8 bytes)"));

  const v1::QkdSummary& gone = s->qkd(3);
  EXPECT_FALSE(gone.aborted());
  EXPECT_FALSE(gone.keys_match());
  EXPECT_EQ(gone.secret_bits(), 0u);
  EXPECT_EQ(gone.error(),
            "apps/gone.json: cannot open; apps/gone.b.json: cannot open; qkd/gone.a.key: cannot "
            "open; qkd/gone.b.key: cannot open");

  // RES-6: snake_case keys, counts as JSON numbers.
  const std::string json = SummaryJson(*s);
  EXPECT_THAT(json, HasSubstr("\"keys_match\": true"));
  EXPECT_THAT(json, HasSubstr("\"secret_bits\": 9472"));
  EXPECT_THAT(json, HasSubstr("\"abort_reason\": \"QBER Z 0.25 above 0.11\""));

  // RES-39: the report's QKD table.
  const std::string report = RenderReport(*s);
  EXPECT_THAT(report, HasSubstr("qkd"));
  EXPECT_THAT(report, HasSubstr("a -> c"));
  EXPECT_THAT(report, HasSubstr("2.95"));  // QBER Z in %
  EXPECT_THAT(report, HasSubstr("1234.5"));
  EXPECT_THAT(report, HasSubstr("1.170"));
  EXPECT_THAT(report, HasSubstr("yes (8000 bits)"));
  EXPECT_THAT(report, HasSubstr("eve: aborted: QBER Z 0.25 above 0.11"));
  EXPECT_THAT(report, HasSubstr("gone: apps/gone.json: cannot open"));
  // RES-33: the app table points to the QKD table instead of repeating every field.
  EXPECT_THAT(report, HasSubstr("see the QKD table"));
  // RES-35a: the net key, and a note when the tags cost more than the session made.
  EXPECT_THAT(report, HasSubstr("7528"));
  EXPECT_THAT(report, HasSubstr("differ: authentication used 408 pre-shared bits more"));
  EXPECT_THAT(report, Not(HasSubstr("good: authentication used")));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("secret_bits 9472")));
}

// RES-35: values out of range or of the wrong type do not reach the summary.
TEST(QkdSummaryTest, UntrustedFieldsAreClampedOrIgnored) {
  absl::StatusOr<Topology> topology = ParseTopology(kChain, "q.xml");
  ASSERT_TRUE(topology.ok()) << topology.status();
  Folder f("untrusted");
  f.Write("apps/good.json", R"({"ok": true, "aborted": "yes", "sifted_bits": -5,
      "secret_bits": 1e30, "qber_z": "0.1", "blocks": 2.6})");
  absl::StatusOr<v1::Summary> s = Summarize(*topology, f.dir(), "sim");
  ASSERT_TRUE(s.ok()) << s.status();
  const v1::QkdSummary& good = s->qkd(0);
  EXPECT_EQ(good.sifted_bits(), 0u);
  EXPECT_EQ(good.secret_bits(), 4294967295u);
  EXPECT_DOUBLE_EQ(good.qber_z(), 0.0);
  EXPECT_EQ(good.blocks(), 3u);
  EXPECT_FALSE(good.aborted());  // "yes" is not a boolean
  EXPECT_THAT(good.error(), HasSubstr("apps/good.b.json: cannot open"));
  EXPECT_THAT(good.error(), Not(HasSubstr("apps/good.json")));
}

}  // namespace
}  // namespace qnet::results
