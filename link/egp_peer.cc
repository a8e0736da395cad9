// The Egp's distributed-queue half: CREATE forwarding, QueueAdd / QueueReject /
// QueueCheck / Expire frames from the peer end (specs/link.md LINK-17 .. LINK-23,
// LINK-36, LINK-38 .. LINK-42). The scheduling half is in egp.cc.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "link/create_check.h"
#include "link/egp.h"
#include "link/egp_internal.h"

namespace qnet::link {

using internal::InUnitInterval;
using internal::kHistoryLimit;
using internal::kMaxExpireRange;
using internal::TimeFromWire;
using internal::TimeToWire;

// ---------------------------------------------------------- distributed queue

bool Egp::SeenIds::Insert(uint64_t id) {
  if (id < floor || !ids.insert(id).second) return false;
  if (ids.size() > kHistoryLimit) {
    floor = *ids.begin() + 1;
    ids.erase(ids.begin());
  }
  return true;
}

v1::QueueAdd Egp::ToQueueAdd(const QueueItem& item) const {
  v1::QueueAdd add;
  add.set_queue_id(item.queue_id);
  add.set_origin(item.origin);
  add.set_origin_create_id(item.origin_create_id);
  *add.mutable_create() = item.create;
  add.set_eligible_ns(TimeToWire(item.eligible));
  add.set_deadline_ns(TimeToWire(item.deadline));
  add.set_alpha(item.alpha);
  add.set_estimated_fidelity(item.estimated_fidelity);
  add.set_virtual_start(item.virtual_start);
  return add;
}

void Egp::Enqueue(QueueItem item) {
  history_[item.queue_id] = ItemRecord{item.origin, item.origin_create_id};
  if (history_.size() > kHistoryLimit) history_.erase(history_.begin());
  if (master_) {
    v1::LinkFrame frame;
    *frame.mutable_add() = ToQueueAdd(item);
    Send(std::move(frame));
  }
  (void)queue_.Add(std::move(item));
  ArmWake();
}

void Egp::Send(v1::LinkFrame frame) {
  frame.set_link(spec_.name);
  send_to_peer_(frame);
}

void Egp::SendReject(uint64_t queue_id, uint64_t origin_create_id, v1::ErrorCode code,
                     const std::string& detail) {
  v1::LinkFrame frame;
  auto* reject = frame.mutable_reject();
  reject->set_queue_id(queue_id);
  reject->set_origin_create_id(origin_create_id);
  reject->set_code(code);
  reject->set_detail(detail);
  Send(std::move(frame));
}

void Egp::OnPeerFrame(const v1::LinkFrame& frame) {
  if (frame.link() != spec_.name) {
    return Drop(
        results::v1::DROP_REASON_UNKNOWN_LINK,
        absl::StrCat("peer frame for link '", frame.link(), "' reached the end of ", spec_.name));
  }
  switch (frame.body_case()) {
    case v1::LinkFrame::kAddRequest:
      if (!master_) {
        return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                    "QueueAddRequest at the non-master end");
      }
      return HandleAddRequest(frame.add_request());
    case v1::LinkFrame::kAdd:
      if (master_)
        return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME, "QueueAdd at the master end");
      return HandleAdd(frame.add());
    case v1::LinkFrame::kReject:
      if (frame.reject().queue_id() != 0) return HandleRejectOfItem(frame.reject());
      if (master_) {
        return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                    "QueueReject without queue id at the master end");
      }
      return HandleRejectOfRequest(frame.reject());
    case v1::LinkFrame::kCheck:
      return HandleCheck(frame.check());
    case v1::LinkFrame::kExpire:
      return HandleExpire(frame.expire());
    case v1::LinkFrame::kCancel:
      return HandleCancel(frame.cancel());
    default:
      return Drop(results::v1::DROP_REASON_MALFORMED_FRAME, "link frame without a known body");
  }
}

void Egp::HandleAddRequest(const v1::QueueAddRequest& request) {
  const Time now = runtime_->Now();
  const uint64_t id = request.origin_create_id();
  if (!seen_ids_.Insert(id)) {
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("QueueAddRequest for create id ", id, ", which was requested before"));
  }
  absl::StatusOr<CreatePlan> plan = PlanCreate(spec_, peer_, request.create());
  if (!plan.ok()) {
    const v1::ErrorCode code = ErrorCodeOf(plan.status());
    if (code == v1::ERROR_CODE_CREATE) {
      Drop(results::v1::DROP_REASON_MALFORMED_FRAME,
           absl::StrCat("QueueAddRequest ", id, ": ", plan.status().message()));
    }
    return SendReject(0, id, code, std::string(plan.status().message()));
  }
  const v1::Create& create = request.create();
  if (TypeAt(create, /*origin=*/false) == v1::REQUEST_TYPE_KEEP && memory_->capacity() == 0) {
    return SendReject(0, id, v1::ERROR_CODE_REJECTED,
                      absl::StrCat("node ", self_, " has no memory"));
  }
  if (queue_.size() >= options_.max_queue) {
    return SendReject(
        0, id, v1::ERROR_CODE_REJECTED,
        absl::StrCat("link ", spec_.name, " queue is full (", options_.max_queue, " requests)"));
  }
  const Time created = std::min(TimeFromWire(request.create_time_ns()), now);
  QueueItem item;
  item.queue_id = next_queue_id_++;
  item.origin = peer_;
  item.origin_create_id = id;
  item.create = create;
  item.eligible = now + delay_ + margin_;
  item.deadline =
      plan->max_time > absl::ZeroDuration() ? created + plan->max_time : Time::Infinite();
  item.alpha = plan->alpha;
  item.estimated_fidelity = plan->estimated_fidelity;
  item.virtual_start = queue_.virtual_time();
  Enqueue(std::move(item));
}

void Egp::HandleAdd(const v1::QueueAdd& add) {
  const uint64_t qid = add.queue_id();
  if (!seen_ids_.Insert(qid)) {
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("QueueAdd ", qid, ": queue id announced before"));
  }
  std::string bad;
  if (add.origin() != self_ && add.origin() != peer_) {
    bad = absl::StrCat("origin '", add.origin(), "' is not an end of the link");
  } else if (absl::Status s = CheckWellFormed(add.create()); !s.ok()) {
    bad = std::string(s.message());
  } else if (!InUnitInterval(add.alpha()) || !InUnitInterval(add.estimated_fidelity())) {
    bad = absl::StrCat("alpha ", add.alpha(), " or estimated fidelity ", add.estimated_fidelity(),
                       " is not in [0, 1]");
  } else if (TimeFromWire(add.eligible_ns()).is_infinite()) {
    bad = "eligible time out of range";
  }
  if (!bad.empty()) {
    Drop(results::v1::DROP_REASON_MALFORMED_FRAME, absl::StrCat("QueueAdd ", qid, ": ", bad));
    return SendReject(qid, add.origin_create_id(), v1::ERROR_CODE_CREATE, bad);
  }
  if (add.origin() == self_) {
    auto it = pending_.find(add.origin_create_id());
    if (it == pending_.end()) {
      const std::string detail = absl::StrCat("QueueAdd ", qid, " for create id ",
                                              add.origin_create_id(), ", which awaits no answer");
      Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME, detail);
      return SendReject(qid, add.origin_create_id(), v1::ERROR_CODE_CREATE, detail);
    }
    const v1::Create& mine = it->second.create;
    const v1::Create& theirs = add.create();
    if (mine.pairs() != theirs.pairs() || mine.type() != theirs.type() ||
        mine.priority() != theirs.priority() || mine.purpose_id() != theirs.purpose_id() ||
        mine.basis() != theirs.basis() || mine.window() != theirs.window() ||
        mine.partner_type() != theirs.partner_type() ||
        mine.has_z_probability() != theirs.has_z_probability() ||
        mine.z_probability() != theirs.z_probability()) {
      const std::string detail =
          absl::StrCat("QueueAdd ", qid, " does not match create id ", add.origin_create_id());
      Drop(results::v1::DROP_REASON_MALFORMED_FRAME, detail);
      SendReject(qid, add.origin_create_id(), v1::ERROR_CODE_CREATE, detail);
      pending_.erase(it);
      return DeliverErr(v1::ERROR_CODE_REJECTED, self_, add.origin_create_id(), detail);
    }
    pending_.erase(it);
  } else {
    if (TypeAt(add.create(), /*origin=*/false) == v1::REQUEST_TYPE_KEEP &&
        memory_->capacity() == 0) {
      return SendReject(qid, add.origin_create_id(), v1::ERROR_CODE_REJECTED,
                        absl::StrCat("node ", self_, " has no memory"));
    }
    if (queue_.size() >= 2 * options_.max_queue) {
      return SendReject(qid, add.origin_create_id(), v1::ERROR_CODE_REJECTED,
                        absl::StrCat("link ", spec_.name, " queue is full"));
    }
  }
  QueueItem item;
  item.queue_id = qid;
  item.origin = add.origin();
  item.origin_create_id = add.origin_create_id();
  item.create = add.create();
  item.eligible = TimeFromWire(add.eligible_ns());
  item.deadline = add.deadline_ns() == 0 ? Time::Infinite() : TimeFromWire(add.deadline_ns());
  item.alpha = add.alpha();
  item.estimated_fidelity = add.estimated_fidelity();
  item.virtual_start = add.virtual_start();
  if (item.eligible <= last_reference_ || item.eligible < runtime_->Now()) ++stats_.late_adds;
  Enqueue(std::move(item));
}

void Egp::HandleRejectOfItem(const v1::QueueReject& reject) {
  const uint64_t qid = reject.queue_id();
  QueueItem* item = queue_.Find(qid);
  if (item == nullptr || item->refused) {
    if (history_.count(qid)) return;  // answer to a QueueCheck about an item already gone here too
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("QueueReject for queue id ", qid, ", which is not queued"));
  }
  const std::string detail = absl::StrCat("peer ", peer_, " refused queue item ", qid, ": ",
                                          v1::ErrorCode_Name(reject.code()), ": ", reject.detail());
  if (runtime_->Now() < item->eligible) {
    // LINK-23: no decision can have selected it yet at either end: it leaves now.
    QueueItem removed = *queue_.Remove(qid);
    if (removed.origin == self_)
      DeliverErr(v1::ERROR_CODE_REJECTED, self_, removed.origin_create_id, detail);
    ArmWake();
    return;
  }
  item->refused = true;
  item->refusal_code = reject.code();
  item->refusal_detail = detail;
}

void Egp::HandleRejectOfRequest(const v1::QueueReject& reject) {
  auto it = pending_.find(reject.origin_create_id());
  if (it == pending_.end()) {
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("QueueReject for create id ", reject.origin_create_id(),
                             ", which awaits no answer"));
  }
  pending_.erase(it);
  DeliverErr(v1::ERROR_CODE_REJECTED, self_, reject.origin_create_id(),
             absl::StrCat("peer ", peer_, " refused: ", v1::ErrorCode_Name(reject.code()), ": ",
                          reject.detail()));
}

void Egp::HandleCheck(const v1::QueueCheck& check) {
  const QueueItem* item = queue_.Find(check.queue_id());
  if (item != nullptr && !item->refused) return;
  auto rec = history_.find(check.queue_id());
  SendReject(check.queue_id(), rec == history_.end() ? 0 : rec->second.origin_create_id,
             v1::ERROR_CODE_REJECTED,
             absl::StrCat("queue id ", check.queue_id(), " is not queued at ", self_));
}

void Egp::HandleExpire(const v1::Expire& expire) {
  const std::string& origin = expire.origin();
  if (origin != self_ && origin != peer_) {
    return Drop(results::v1::DROP_REASON_MALFORMED_FRAME,
                absl::StrCat("Expire for origin '", origin, "', not an end of the link"));
  }
  const uint64_t from = expire.sequence_from(), to = expire.sequence_to();
  const uint64_t assigned = last_sequence_[origin];
  if (from == 0 || from > to || to > assigned || to - from >= kMaxExpireRange) {
    return Drop(results::v1::DROP_REASON_MALFORMED_FRAME,
                absl::StrCat("Expire of sequence numbers ", from, "..", to, " of ", origin, " (",
                             assigned, " assigned)"));
  }
  auto rec = history_.find(expire.queue_id());
  if (rec == history_.end() || rec->second.origin != origin) {
    return Drop(
        results::v1::DROP_REASON_UNEXPECTED_FRAME,
        absl::StrCat("Expire for queue id ", expire.queue_id(), ", unknown for origin ", origin));
  }
  const size_t before = stats_.errs;
  ReportExpired(origin, rec->second.origin_create_id, from, to,
                absl::StrCat("peer ", peer_, " discarded: ", expire.detail()));
  if (stats_.errs == before) {
    Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("Expire of ", origin, " ", from, "..", to, ": already expired"));
  }
}

void Egp::CancelItem(QueueItem& item) {
  // LINK-48: the item leaves both queues at the first decision at or after
  // now + d + m, when the peer has heard of it; no attempt starts after that.
  const Time deadline = runtime_->Now() + delay_ + margin_;
  item.deadline = std::min(item.deadline, deadline);
  item.cancelled = true;
  v1::LinkFrame frame;
  frame.mutable_cancel()->set_queue_id(item.queue_id);
  frame.mutable_cancel()->set_origin_create_id(item.origin_create_id);
  frame.mutable_cancel()->set_deadline_ns(TimeToWire(item.deadline));
  Send(std::move(frame));
  ArmWake();
}

void Egp::HandleCancel(const v1::QueueCancel& cancel) {
  if (master_) {
    // The peer cancels one of its own requests, by create id.
    for (const auto& [qid, i] : queue_.items()) {
      if (i.origin != peer_ || i.origin_create_id != cancel.origin_create_id()) continue;
      QueueItem* item = queue_.Find(qid);
      if (!item->cancelled && !item->refused) {
        ++stats_.cancels;
        CancelItem(*item);
      }
      return;
    }
    for (const auto& [qid, rec] : history_) {  // already gone: nothing to do
      if (rec.origin == peer_ && rec.origin_create_id == cancel.origin_create_id()) return;
    }
    if (seen_ids_.ids.contains(cancel.origin_create_id())) return;  // refused request
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("QueueCancel for create id ", cancel.origin_create_id(), " of ", peer_,
                             ", which was never requested"));
  }
  QueueItem* item = queue_.Find(cancel.queue_id());
  if (item == nullptr) {
    if (history_.contains(cancel.queue_id())) return;  // already gone here too
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("QueueCancel for queue id ", cancel.queue_id(), ", not queued"));
  }
  const Time deadline = TimeFromWire(cancel.deadline_ns());
  if (cancel.deadline_ns() == 0 || deadline.is_infinite()) {
    return Drop(results::v1::DROP_REASON_MALFORMED_FRAME,
                absl::StrCat("QueueCancel for queue id ", cancel.queue_id(), " without a deadline"));
  }
  if (!item->cancelled) ++stats_.cancels;
  item->deadline = std::min(item->deadline, deadline);
  item->cancelled = true;
  ArmWake();
}

}  // namespace qnet::link
