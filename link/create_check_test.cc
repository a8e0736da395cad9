#include "link/create_check.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "stack/heralding_model.h"

namespace qnet::link {
namespace {

LinkSpec Link() {
  LinkSpec l;
  l.name = "ab";
  l.a = "a";
  l.b = "b";
  l.length_km = 2;
  l.efficiency = 0.1;
  l.attempt_s = 10e-6;
  return l;
}

v1::Create Valid() {
  v1::Create c;
  c.set_remote_node("b");
  c.set_pairs(3);
  c.set_min_fidelity(0.8);
  c.set_type(v1::REQUEST_TYPE_MEASURE);
  return c;
}

TEST(CreateCheckTest, LINK_01_MalformedIsCreate) {
  const LinkSpec link = Link();
  auto expect_create = [&](v1::Create c) {
    auto plan = PlanCreate(link, "a", c);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(ErrorCodeOf(plan.status()), v1::ERROR_CODE_CREATE) << plan.status();
  };
  v1::Create c = Valid();
  c.set_type(v1::REQUEST_TYPE_UNSPECIFIED);
  expect_create(c);
  c = Valid();
  c.set_min_fidelity(std::numeric_limits<double>::quiet_NaN());
  expect_create(c);
  c = Valid();
  c.set_min_fidelity(-0.1);
  expect_create(c);
  c = Valid();
  c.set_min_fidelity(1.5);
  expect_create(c);
  c = Valid();
  c.mutable_max_time()->set_seconds(-1);
  expect_create(c);
  c = Valid();
  c.set_basis(static_cast<v1::BasisChoice>(42));
  expect_create(c);
  c = Valid();
  c.set_partner_type(static_cast<v1::RequestType>(3));
  expect_create(c);
  for (double z : {-0.1, 1.5, std::nan("")}) {
    c = Valid();
    c.set_z_probability(z);
    expect_create(c);
  }
  EXPECT_TRUE(PlanCreate(link, "a", Valid()).ok());
  c = Valid();
  c.set_partner_type(v1::REQUEST_TYPE_MEASURE);
  c.set_z_probability(0.7);
  EXPECT_TRUE(PlanCreate(link, "a", c).ok());
  EXPECT_EQ(TypeAt(c, true), c.type());
  EXPECT_EQ(TypeAt(c, false), v1::REQUEST_TYPE_MEASURE);
}

TEST(CreateCheckTest, LINK_02_Unsupported) {
  const LinkSpec link = Link();
  auto code = [&](const std::string& origin, v1::Create c) {
    return ErrorCodeOf(PlanCreate(link, origin, c).status());
  };
  v1::Create c = Valid();
  c.set_remote_node("z");
  EXPECT_EQ(code("a", c), v1::ERROR_CODE_UNSUPPORTED);
  c = Valid();
  EXPECT_EQ(code("b", c), v1::ERROR_CODE_UNSUPPORTED);  // from b the remote is a
  c.set_remote_node("a");
  EXPECT_TRUE(PlanCreate(link, "b", c).ok());
  c = Valid();
  c.set_pairs(0);  // LINK-45: a standing request, not a refusal
  EXPECT_TRUE(PlanCreate(link, "a", c).ok());
  c = Valid();
  c.set_min_fidelity(
      0.9999999);  // single-click with visibility 1 reaches 1 - alpha only as alpha -> 0
  LinkSpec lossy = link;
  lossy.visibility = 0.8;
  EXPECT_EQ(ErrorCodeOf(PlanCreate(lossy, "a", c).status()), v1::ERROR_CODE_UNSUPPORTED);
  LinkSpec dead = link;
  dead.scheme = HeraldingScheme::kWerner;
  dead.p_success = 0;
  dead.fidelity = 0.9;
  EXPECT_EQ(ErrorCodeOf(PlanCreate(dead, "a", Valid()).status()), v1::ERROR_CODE_UNSUPPORTED);
}

TEST(CreateCheckTest, LINK_04_ExpectedTime) {
  const LinkSpec link = Link();
  auto plan = PlanCreate(link, "a", Valid());
  ASSERT_TRUE(plan.ok());
  const double alpha = *ChooseAlpha(link, 0.8);
  EXPECT_DOUBLE_EQ(plan->alpha, alpha);
  EXPECT_DOUBLE_EQ(plan->p_success, SuccessProbability(link, alpha));
  EXPECT_GE(plan->estimated_fidelity, 0.8 - 1e-9);
  const absl::Duration e = plan->ExpectedTime(absl::Microseconds(30), 3);
  const double expected_s = 30e-6 + 3 * absl::ToDoubleSeconds(AttemptCycle(link)) / plan->p_success;
  EXPECT_NEAR(absl::ToDoubleSeconds(e), expected_s, 1e-9);
}

TEST(CreateCheckTest, ErrorStatusesNameTheirCode) {
  for (auto code : {v1::ERROR_CODE_UNSUPPORTED, v1::ERROR_CODE_NOTIME, v1::ERROR_CODE_NORES,
                    v1::ERROR_CODE_CREATE, v1::ERROR_CODE_REJECTED}) {
    const absl::Status s = LinkError(code, "x");
    EXPECT_EQ(ErrorCodeOf(s), code);
    EXPECT_EQ(s.message().substr(0, v1::ErrorCode_Name(code).size()), v1::ErrorCode_Name(code));
  }
}

}  // namespace
}  // namespace qnet::link
