// Admission checks of a CREATE (specs/link.md LINK-01 .. LINK-05) and the
// error-status convention of LinkService::Create: the status message starts
// with the ErrorCode name ("ERROR_CODE_NOTIME: ..."). Pure functions of the
// link's calibration (stack/heralding_model.h) and the request.
#ifndef QNET_LINK_CREATE_CHECK_H_
#define QNET_LINK_CREATE_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "qnet/link/v1/link.pb.h"
#include "stack/topology.h"

namespace qnet::link {

// A status carrying a link-layer error code (message "<ErrorCode name>: detail").
absl::Status LinkError(v1::ErrorCode code, absl::string_view detail);
// The error code a LinkError status carries; ERROR_CODE_CREATE if none does.
v1::ErrorCode ErrorCodeOf(const absl::Status& status);

// LINK-01: the CREATE is well formed (type KEEP or MEASURE; partner_type
// UNSPECIFIED, KEEP or MEASURE; min_fidelity a number in [0, 1]; max_time a
// valid non-negative duration; basis a known BasisChoice; z_probability, if
// set, a number in [0, 1]). Error code CREATE otherwise.
absl::Status CheckWellFormed(const v1::Create& create);

// What the end at the request's origin (`origin` true) or partner does with
// its qubit (LINK-47): `type`, or `partner_type` at the partner when set.
v1::RequestType TypeAt(const v1::Create& create, bool origin);

// How the link will serve an accepted CREATE.
struct CreatePlan {
  double alpha = 0;               // heralding parameter (LINK-21)
  double p_success = 0;           // per attempt, at alpha at both ends
  double estimated_fidelity = 0;  // HeraldedFidelity(link, alpha) (LINK-11)
  absl::Duration cycle;           // AttemptCycle(link)
  absl::Duration max_time;        // 0: none
  // Expected time to deliver every pair: latency + pairs * cycle / p (LINK-04).
  absl::Duration ExpectedTime(absl::Duration latency, uint32_t pairs) const;
};

// LINK-01, LINK-02: a CREATE issued by `origin` (one end of `link`). Errors:
// CREATE (malformed), UNSUPPORTED (remote node not the other end of the link,
// min_fidelity above what the link reaches, no success possible). Zero pairs
// is a standing request (LINK-45).
absl::StatusOr<CreatePlan> PlanCreate(const LinkSpec& link, const std::string& origin,
                                      const v1::Create& create);

// The other end of `link` seen from `node` ("" if `node` is not an end).
std::string OtherEnd(const LinkSpec& link, const std::string& node);

}  // namespace qnet::link

#endif  // QNET_LINK_CREATE_CHECK_H_
