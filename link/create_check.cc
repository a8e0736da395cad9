#include "link/create_check.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "stack/heralding_model.h"

namespace qnet::link {

absl::Status LinkError(v1::ErrorCode code, absl::string_view detail) {
  const std::string msg = absl::StrCat(v1::ErrorCode_Name(code), ": ", detail);
  switch (code) {
    case v1::ERROR_CODE_UNSUPPORTED:
      return absl::UnimplementedError(msg);
    case v1::ERROR_CODE_NOTIME:
      return absl::DeadlineExceededError(msg);
    case v1::ERROR_CODE_NORES:
      return absl::ResourceExhaustedError(msg);
    case v1::ERROR_CODE_REJECTED:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InvalidArgumentError(msg);
  }
}

v1::ErrorCode ErrorCodeOf(const absl::Status& status) {
  for (int c = v1::ErrorCode_MIN; c <= v1::ErrorCode_MAX; ++c) {
    if (c == 0 || !v1::ErrorCode_IsValid(c)) continue;
    const auto code = static_cast<v1::ErrorCode>(c);
    if (absl::StartsWith(status.message(), absl::StrCat(v1::ErrorCode_Name(code), ":")))
      return code;
  }
  return v1::ERROR_CODE_CREATE;
}

absl::Status CheckWellFormed(const v1::Create& create) {
  if (create.type() != v1::REQUEST_TYPE_KEEP && create.type() != v1::REQUEST_TYPE_MEASURE) {
    return LinkError(v1::ERROR_CODE_CREATE,
                     absl::StrCat("request type ", create.type(), " is neither KEEP nor MEASURE"));
  }
  const double f = create.min_fidelity();
  if (!std::isfinite(f) || f < 0 || f > 1) {
    return LinkError(v1::ERROR_CODE_CREATE, absl::StrCat("min_fidelity ", f, " is not in [0, 1]"));
  }
  const auto& mt = create.max_time();
  if (mt.seconds() < 0 || mt.nanos() < 0 || mt.nanos() > 999999999 || mt.seconds() > 315576000000) {
    return LinkError(v1::ERROR_CODE_CREATE,
                     absl::StrCat("max_time ", mt.seconds(), " s ", mt.nanos(),
                                  " ns is not a valid non-negative duration"));
  }
  if (!v1::BasisChoice_IsValid(create.basis())) {
    return LinkError(v1::ERROR_CODE_CREATE, absl::StrCat("unknown basis choice ", create.basis()));
  }
  if (create.partner_type() != v1::REQUEST_TYPE_UNSPECIFIED &&
      create.partner_type() != v1::REQUEST_TYPE_KEEP &&
      create.partner_type() != v1::REQUEST_TYPE_MEASURE) {
    return LinkError(v1::ERROR_CODE_CREATE,
                     absl::StrCat("partner type ", create.partner_type(),
                                  " is neither KEEP nor MEASURE"));
  }
  if (create.has_z_probability()) {
    const double z = create.z_probability();
    if (!std::isfinite(z) || z < 0 || z > 1) {
      return LinkError(v1::ERROR_CODE_CREATE,
                       absl::StrCat("z_probability ", z, " is not in [0, 1]"));
    }
  }
  return absl::OkStatus();
}

v1::RequestType TypeAt(const v1::Create& create, bool origin) {
  if (!origin && create.partner_type() != v1::REQUEST_TYPE_UNSPECIFIED) {
    return create.partner_type();
  }
  return create.type();
}

absl::Duration CreatePlan::ExpectedTime(absl::Duration latency, uint32_t pairs) const {
  if (p_success <= 0) return absl::InfiniteDuration();
  return latency + cycle * (static_cast<double>(pairs) / p_success);
}

std::string OtherEnd(const LinkSpec& link, const std::string& node) {
  if (node == link.a) return link.b;
  if (node == link.b) return link.a;
  return "";
}

absl::StatusOr<CreatePlan> PlanCreate(const LinkSpec& link, const std::string& origin,
                                      const v1::Create& create) {
  if (absl::Status s = CheckWellFormed(create); !s.ok()) return s;
  const std::string other = OtherEnd(link, origin);
  if (other.empty() || create.remote_node() != other) {
    return LinkError(v1::ERROR_CODE_UNSUPPORTED, absl::StrCat("remote node '", create.remote_node(),
                                                              "' is not the other end of link ",
                                                              link.name, " as seen from ", origin));
  }
  const std::optional<double> alpha = ChooseAlpha(link, create.min_fidelity());
  if (!alpha) {
    return LinkError(v1::ERROR_CODE_UNSUPPORTED,
                     absl::StrFormat("min_fidelity %.6g is above what link %s can reach",
                                     create.min_fidelity(), link.name));
  }
  CreatePlan plan;
  plan.alpha = *alpha;
  plan.p_success = SuccessProbability(link, *alpha);
  plan.estimated_fidelity = HeraldedFidelity(link, *alpha);
  plan.cycle = AttemptCycle(link);
  plan.max_time =
      absl::Seconds(create.max_time().seconds()) + absl::Nanoseconds(create.max_time().nanos());
  if (!(plan.p_success > 0) || !std::isfinite(plan.p_success)) {
    return LinkError(v1::ERROR_CODE_UNSUPPORTED,
                     absl::StrCat("link ", link.name, " cannot herald a success"));
  }
  return plan;
}

}  // namespace qnet::link
