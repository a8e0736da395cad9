// Small builders shared by the conformance tests: topology <request>s, link
// frames the harness sends as the neighbour, and trace lookups.
#ifndef QNET_INTEROP_TESTS_TEST_UTIL_H_
#define QNET_INTEROP_TESTS_TEST_UTIL_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "interop-tests/harness.h"
#include "interop-tests/spec_model.h"

namespace qnet::interop {

using link::v1::LinkFrame;
using physical::v1::Generate;
using physical::v1::Herald;
using physical::v1::NodeToWorld;
using results::v1::TraceRecord;

// Generous bounds for a loaded 2-core machine: how long to wait for a frame
// that must come, and how long to watch for one that must not.
inline constexpr Ms kWait(3000);
inline constexpr Ms kQuiet(300);

// One <request> of the topology (specs/topology.md, TOPO-26).
struct Request {
  std::string from = "iut";
  std::string to = "peer";
  uint32_t pairs = 1;
  std::string type = "measure";  // keep | measure
  double min_fidelity = 0;
  std::string basis{};  // measure: z x y xz xyz
  double max_time_s = 0;
  uint32_t priority = 0;
  uint32_t purpose = 0;
  double start_s = 0;
  double hold_s = 0;

  std::string Xml() const {
    std::ostringstream out;
    out.precision(17);
    out << "  <request from=\"" << from << "\" to=\"" << to << "\" pairs=\"" << pairs
        << "\" type=\"" << type << "\" min-fidelity=\"" << min_fidelity << "\"";
    if (!basis.empty()) out << " basis=\"" << basis << "\"";
    if (max_time_s > 0) out << " max-time-s=\"" << max_time_s << "\"";
    out << " priority=\"" << priority << "\" purpose=\"" << purpose << "\" start-s=\"" << start_s
        << "\"";
    if (hold_s > 0) out << " hold-s=\"" << hold_s << "\"";
    out << "/>\n";
    return out.str();
  }
};

inline std::string Requests(const std::vector<Request>& requests) {
  std::string out;
  for (const Request& r : requests) out += r.Xml();
  return out;
}

inline HarnessOptions Options(const model::LinkParams& link,
                              const std::vector<Request>& requests = {}) {
  HarnessOptions o;
  o.link_attributes = link.Attributes();
  o.requests = Requests(requests);
  return o;
}

inline link::v1::Create MakeCreate(const std::string& remote, uint32_t pairs,
                                   link::v1::RequestType type = link::v1::REQUEST_TYPE_MEASURE,
                                   link::v1::BasisChoice basis = link::v1::BASIS_CHOICE_Z) {
  link::v1::Create c;
  c.set_remote_node(remote);
  c.set_pairs(pairs);
  c.set_type(type);
  if (type == link::v1::REQUEST_TYPE_MEASURE) c.set_basis(basis);
  return c;
}

inline LinkFrame AddRequestFrame(uint64_t create_id, const link::v1::Create& create,
                                 uint64_t create_time_ns, const std::string& link = "L") {
  LinkFrame f;
  f.set_link(link);
  auto* r = f.mutable_add_request();
  r->set_origin_create_id(create_id);
  *r->mutable_create() = create;
  r->set_create_time_ns(create_time_ns);
  return f;
}

struct AddFields {
  uint64_t queue_id = 1;
  std::string origin = "peer";
  uint64_t origin_create_id = 1;
  link::v1::Create create{};
  uint64_t eligible_ns = 0;
  uint64_t deadline_ns = 0;
  double alpha = 0;
  double estimated_fidelity = 0.9;
  uint64_t virtual_start = 0;
};

inline LinkFrame AddFrame(const AddFields& a, const std::string& link = "L") {
  LinkFrame f;
  f.set_link(link);
  auto* q = f.mutable_add();
  q->set_queue_id(a.queue_id);
  q->set_origin(a.origin);
  q->set_origin_create_id(a.origin_create_id);
  *q->mutable_create() = a.create;
  q->set_eligible_ns(a.eligible_ns);
  q->set_deadline_ns(a.deadline_ns);
  q->set_alpha(a.alpha);
  q->set_estimated_fidelity(a.estimated_fidelity);
  q->set_virtual_start(a.virtual_start);
  return f;
}

inline LinkFrame RejectFrame(uint64_t queue_id, uint64_t origin_create_id, link::v1::ErrorCode code,
                             const std::string& detail, const std::string& link = "L") {
  LinkFrame f;
  f.set_link(link);
  auto* r = f.mutable_reject();
  r->set_queue_id(queue_id);
  r->set_origin_create_id(origin_create_id);
  r->set_code(code);
  r->set_detail(detail);
  return f;
}

inline LinkFrame ExpireFrame(uint64_t queue_id, const std::string& origin, uint64_t from,
                             uint64_t to, const std::string& link = "L") {
  LinkFrame f;
  f.set_link(link);
  auto* e = f.mutable_expire();
  e->set_queue_id(queue_id);
  e->set_origin(origin);
  e->set_sequence_from(from);
  e->set_sequence_to(to);
  e->set_detail("harness discarded the pair");
  return f;
}

inline LinkFrame CheckFrame(uint64_t queue_id, uint64_t batch, const std::string& link = "L") {
  LinkFrame f;
  f.set_link(link);
  f.mutable_check()->set_queue_id(queue_id);
  f.mutable_check()->set_batch(batch);
  return f;
}

// QueueCancel (LINK-48): from the origin peer {origin_create_id}; from the
// master {queue_id, origin_create_id, deadline_ns}.
inline LinkFrame CancelFrame(uint64_t queue_id, uint64_t origin_create_id, uint64_t deadline_ns,
                             const std::string& link = "L") {
  LinkFrame f;
  f.set_link(link);
  auto* c = f.mutable_cancel();
  c->set_queue_id(queue_id);
  c->set_origin_create_id(origin_create_id);
  c->set_deadline_ns(deadline_ns);
  return f;
}

// The node's "now" at the CREATE of a master's item with max_time > 0, as the
// node itself states it: deadline_ns = now + max_time (LINK-18, LINK-39).
inline uint64_t CreateTimeOf(const link::v1::QueueAdd& add, uint64_t max_time_ns) {
  return add.deadline_ns() - max_time_ns;
}
// The scheduling margin m of LINK-20 used for a master's own item with max_time
// > 0: eligible = now + 2 d + m and deadline = now + max_time (LINK-18).
inline int64_t MarginOf(const link::v1::QueueAdd& add, uint64_t max_time_ns,
                        const model::LinkParams& link) {
  return static_cast<int64_t>(add.eligible_ns()) -
         static_cast<int64_t>(CreateTimeOf(add, max_time_ns)) - 2 * model::DelayNs(link);
}

// The basis a fixed BasisChoice measures in (LINK-10).
inline physical::v1::Basis BasisOf(link::v1::BasisChoice choice) {
  switch (choice) {
    case link::v1::BASIS_CHOICE_Z:
      return physical::v1::BASIS_Z;
    case link::v1::BASIS_CHOICE_X:
      return physical::v1::BASIS_X;
    case link::v1::BASIS_CHOICE_Y:
      return physical::v1::BASIS_Y;
    default:
      return physical::v1::BASIS_UNSPECIFIED;
  }
}

// The Generates and Frees in a physics log.
inline std::vector<Timed<Generate>> GeneratesIn(const std::vector<Timed<NodeToWorld>>& log) {
  std::vector<Timed<Generate>> out;
  for (const auto& m : log)
    if (m.msg.has_generate()) out.push_back({m.msg.generate(), m.at_ns});
  return out;
}
inline std::vector<Timed<uint32_t>> FreesIn(const std::vector<Timed<NodeToWorld>>& log) {
  std::vector<Timed<uint32_t>> out;
  for (const auto& m : log)
    if (m.msg.has_free()) out.push_back({m.msg.free().slot(), m.at_ns});
  return out;
}
// The link frames of a body case in a peer log.
inline std::vector<Timed<LinkFrame>> LinkFramesIn(const std::vector<Timed<wire::v1::Frame>>& log,
                                                  LinkFrame::BodyCase body) {
  std::vector<Timed<LinkFrame>> out;
  for (const auto& f : log)
    if (f.msg.has_link() && f.msg.link().body_case() == body)
      out.push_back({f.msg.link(), f.at_ns});
  return out;
}

// Reads everything the node sends on every channel for `duration` (frames go
// to the logs), for checks that something did NOT happen.
inline void Watch(Harness& h, Ms duration, int peers = 2) {
  const auto end = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < end) {
    while (h.NextPhysics(Ms(0))) {
    }
    for (int i = 0; i < peers; ++i)
      while (h.NextPeer(Ms(0), i)) {
      }
    std::this_thread::sleep_for(Ms(5));
  }
}

// The first frame from `peer` at or after index `from` of its log that
// satisfies `pred`, waiting up to `timeout` for it. Unlike ExpectNet this also
// finds frames an earlier wait skipped over.
template <typename Pred>
std::optional<Timed<wire::v1::Frame>> AwaitPeer(Harness& h, int peer, size_t from, Pred pred,
                                                Ms timeout = kWait) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto& log = h.peer_log(peer);
    for (size_t i = from; i < log.size(); ++i)
      if (pred(log[i].msg)) return log[i];
    from = log.size();
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    h.NextPeer(std::min(left, Ms(50)), peer);
  }
}

// The first link frame of a body case from `peer` at or after `from`.
inline std::optional<Timed<LinkFrame>> AwaitLink(Harness& h, int peer, size_t from,
                                                 LinkFrame::BodyCase body, Ms timeout = kWait) {
  auto f = AwaitPeer(
      h, peer, from,
      [body](const wire::v1::Frame& m) { return m.has_link() && m.link().body_case() == body; },
      timeout);
  if (!f) return std::nullopt;
  return Timed<LinkFrame>{f->msg.link(), f->at_ns};
}

// The first physics request at or after index `from` of the log satisfying `pred`.
template <typename Pred>
std::optional<Timed<NodeToWorld>> AwaitPhysics(Harness& h, size_t from, Pred pred,
                                               Ms timeout = kWait) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto& log = h.physics_log();
    for (size_t i = from; i < log.size(); ++i)
      if (pred(log[i].msg)) return log[i];
    from = log.size();
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    h.NextPhysics(std::min(left, Ms(50)));
  }
}

inline std::optional<Timed<Generate>> AwaitGenerate(Harness& h, size_t from,
                                                    const std::string& link, Ms timeout = kWait) {
  auto m = AwaitPhysics(
      h, from,
      [&](const NodeToWorld& n) { return n.has_generate() && n.generate().link() == link; },
      timeout);
  if (!m) return std::nullopt;
  return Timed<Generate>{m->msg.generate(), m->at_ns};
}

// The first physics request at or after index *cursor of the log that
// satisfies `pred`, waiting up to `timeout`; *cursor moves past it, so that
// successive calls walk the log in order.
template <typename Pred>
std::optional<Timed<NodeToWorld>> NextPhysicsMatching(Harness& h, size_t* cursor, Pred pred,
                                                      Ms timeout = kWait) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto& log = h.physics_log();
    for (size_t i = *cursor; i < log.size(); ++i) {
      if (pred(log[i].msg)) {
        *cursor = i + 1;
        return log[i];
      }
    }
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    h.NextPhysics(std::min(left, Ms(50)));
  }
}

// The next Generate on `link` from *cursor on (see NextPhysicsMatching).
inline std::optional<Timed<Generate>> NextGenerateOn(Harness& h, size_t* cursor,
                                                     const std::string& link, Ms timeout = kWait) {
  auto m = NextPhysicsMatching(
      h, cursor,
      [&](const NodeToWorld& n) { return n.has_generate() && n.generate().link() == link; },
      timeout);
  if (!m) return std::nullopt;
  return Timed<Generate>{m->msg.generate(), m->at_ns};
}

// The records of a trace stamped before `end_ns`: what the node did during
// the test, without what a node may trace while the run ends (frames it could
// not send any more once its neighbours hung up, for instance).
inline Trace Until(const Trace& trace, uint64_t end_ns) {
  Trace out;
  for (const auto& r : trace)
    if (r.time_ns() < end_ns) out.push_back(r);
  return out;
}

// Starts the harness or fails the test with the reason.
#define QNET_START(h)                                            \
  do {                                                           \
    const std::string why = (h).Start();                         \
    ASSERT_EQ(why, "") << "log of the node:\n" << (h).NodeLog(); \
  } while (0)

// Ends the run and reads the trace; fails if the node did not exit cleanly.
#define QNET_STOP_AND_TRACE(h, trace)                                                          \
  ASSERT_TRUE((h).StopNode()) << "exit status " << (h).exit_status() << "\n" << (h).NodeLog(); \
  const Trace trace = (h).Trace();                                                             \
  ASSERT_EQ((h).trace_malformed_lines(), 0)

}  // namespace qnet::interop

#endif  // QNET_INTEROP_TESTS_TEST_UTIL_H_
