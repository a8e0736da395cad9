// Tracing and drop counting. Layers report events as qnet.results.v1.TraceRecord
// (the JSON-lines schema of specs/topology.md); the sink stamps node and time.
#ifndef QNET_STACK_TRACE_H_
#define QNET_STACK_TRACE_H_

#include <string>

#include "qnet/results/v1/results.pb.h"

namespace qnet {

class Tracer {
 public:
  virtual ~Tracer() = default;
  // `record.time_ns` and `record.node` are filled in by the tracer if unset.
  virtual void Record(results::v1::TraceRecord record) = 0;

  // Counts and traces a drop with its reason (CONVENTIONS: typed drop points).
  void Drop(results::v1::DropReason reason, std::string detail, std::string link = "") {
    results::v1::TraceRecord r;
    auto* d = r.mutable_drop();
    d->set_reason(reason);
    d->set_detail(std::move(detail));
    d->set_link(std::move(link));
    Record(std::move(r));
  }
};

// Discards everything; for tests that do not look at traces.
class NullTracer : public Tracer {
 public:
  void Record(results::v1::TraceRecord) override {}
};

}  // namespace qnet

#endif  // QNET_STACK_TRACE_H_
