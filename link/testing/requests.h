// Small builders of CREATE requests for the link layer's tests.
#ifndef QNET_LINK_TESTING_REQUESTS_H_
#define QNET_LINK_TESTING_REQUESTS_H_

#include <string>

#include "absl/time/time.h"
#include "qnet/link/v1/link.pb.h"
#include "stack/topology.h"

namespace qnet::link::testing {

inline v1::Create MeasureRequest(const std::string& remote, uint32_t pairs,
                                 v1::BasisChoice basis = v1::BASIS_CHOICE_XZ, uint32_t priority = 0,
                                 double min_fidelity = 0) {
  v1::Create c;
  c.set_remote_node(remote);
  c.set_pairs(pairs);
  c.set_min_fidelity(min_fidelity);
  c.set_type(v1::REQUEST_TYPE_MEASURE);
  c.set_basis(basis);
  c.set_priority(priority);
  return c;
}

inline v1::Create KeepRequest(const std::string& remote, uint32_t pairs, uint32_t priority = 0,
                              double min_fidelity = 0) {
  v1::Create c;
  c.set_remote_node(remote);
  c.set_pairs(pairs);
  c.set_min_fidelity(min_fidelity);
  c.set_type(v1::REQUEST_TYPE_KEEP);
  c.set_priority(priority);
  return c;
}

inline void SetMaxTime(v1::Create& c, absl::Duration d) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  c.mutable_max_time()->set_seconds(ns / 1000000000);
  c.mutable_max_time()->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

// A symmetric single-click link of 2 km, p about 0.42 per attempt at alpha 0.5,
// cycle 10 us, one-way delay about 9.7 us.
inline LinkSpec SymmetricLink() {
  LinkSpec l;
  l.name = "ab";
  l.a = "a";
  l.b = "b";
  l.length_km = 2;
  l.loss_db_km = 0.2;
  l.efficiency = 0.5;
  l.attempt_s = 10e-6;
  l.memory_poll_s = 1e-3;
  return l;
}

}  // namespace qnet::link::testing

#endif  // QNET_LINK_TESTING_REQUESTS_H_
