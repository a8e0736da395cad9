#include "link/egp.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "link/create_check.h"
#include "link/egp_internal.h"
#include "stack/heralding_model.h"

namespace qnet::link {

using internal::SecondsToDuration;
using internal::TimeFromWire;
using internal::TimeToWire;
using physical::v1::Basis;
using physical::v1::Herald;
using results::v1::DropReason;

namespace {

// LINK-10: the basis of a measure-directly pair at this end.
Basis DrawBasis(const v1::Create& create, Rng& rng) {
  switch (create.basis()) {
    case v1::BASIS_CHOICE_Z:
      return physical::v1::BASIS_Z;
    case v1::BASIS_CHOICE_X:
      return physical::v1::BASIS_X;
    case v1::BASIS_CHOICE_Y:
      return physical::v1::BASIS_Y;
    case v1::BASIS_CHOICE_XYZ: {
      static constexpr Basis kBases[] = {physical::v1::BASIS_Z, physical::v1::BASIS_X,
                                         physical::v1::BASIS_Y};
      return kBases[rng.Below(3)];
    }
    default:  // XZ, and UNSPECIFIED which means XZ
      if (create.has_z_probability()) {
        return rng.Bernoulli(create.z_probability()) ? physical::v1::BASIS_Z
                                                     : physical::v1::BASIS_X;
      }
      return rng.Below(2) == 0 ? physical::v1::BASIS_Z : physical::v1::BASIS_X;
  }
}

bool IsBellState(physical::v1::BellState s) {
  return s == physical::v1::BELL_STATE_PHI_PLUS || s == physical::v1::BELL_STATE_PSI_PLUS ||
         s == physical::v1::BELL_STATE_PHI_MINUS || s == physical::v1::BELL_STATE_PSI_MINUS;
}

}  // namespace

Egp::Egp(const LinkSpec& link, std::string self_node, Runtime* runtime, PhysicalService* physical,
         MemoryPool* memory, std::function<void(const v1::LinkFrame&)> send_to_peer,
         LinkListener* listener, Tracer* tracer, Rng rng, EgpOptions options)
    : spec_(link),
      self_(std::move(self_node)),
      peer_(OtherEnd(spec_, self_)),
      master_(self_ == spec_.a),
      runtime_(runtime),
      physical_(physical),
      memory_(memory),
      send_to_peer_(std::move(send_to_peer)),
      listener_(listener),
      tracer_(tracer),
      rng_(std::move(rng)),
      options_(options),
      cycle_(AttemptCycle(spec_)),
      delay_(SecondsToDuration(spec_.delay_s())),
      margin_(std::max(AttemptCycle(spec_), options.min_margin)) {
  wake_timer_ = runtime_->CreateTimer([this] { OnWake(); });
  herald_timer_ = runtime_->CreateTimer([this] { OnHeraldTimer(); });
  memory_poll_timer_ = runtime_->CreateTimer([this] { OnMemoryPollExpired(); });
  memory_ready_timer_ = runtime_->CreateTimer([this] { OnMemoryReady(); });
}

Egp::~Egp() {
  if (memory_wait_) memory_->CancelWait(*memory_wait_);
  for (uint32_t slot : granted_slots_) (void)memory_->Return(slot);
  for (const auto& [slot, qid] : held_slots_) memory_->SetOwner(slot, nullptr);
}

// ---------------------------------------------------------------- service

absl::StatusOr<uint64_t> Egp::Create(const v1::Create& create) {
  const Time now = runtime_->Now();
  absl::StatusOr<CreatePlan> plan = PlanCreate(spec_, self_, create);
  absl::Status status = plan.status();
  if (status.ok() && TypeAt(create, /*origin=*/true) == v1::REQUEST_TYPE_KEEP &&
      memory_->capacity() == 0) {
    status = LinkError(v1::ERROR_CODE_NORES,
                       absl::StrCat("node ", self_, " has no memory for a keep request"));
  }
  if (status.ok()) {
    const size_t queued = master_ ? queue_.size() : queue_.size() + pending_.size();
    if (queued >= options_.max_queue) {
      status = LinkError(v1::ERROR_CODE_NORES, absl::StrCat("link ", spec_.name, " queue is full (",
                                                            options_.max_queue, " requests)"));
    }
  }
  if (status.ok() && plan->max_time > absl::ZeroDuration()) {
    const absl::Duration expected =
        plan->ExpectedTime(2 * delay_ + margin_, std::max<uint32_t>(create.pairs(), 1));
    if (expected > plan->max_time) {
      status = LinkError(v1::ERROR_CODE_NOTIME,
                         absl::StrCat("expected ", absl::FormatDuration(expected), " for ",
                                      create.pairs(), " pairs at alpha ", plan->alpha,
                                      " exceeds max_time ", absl::FormatDuration(plan->max_time)));
    }
  }
  const uint64_t id = status.ok() ? next_create_id_++ : 0;
  results::v1::TraceRecord record;
  record.set_time_ns(TimeToWire(now));  // RES-4: the time of the CREATE itself
  *record.mutable_create() = create;
  record.set_create_id(id);
  tracer_->Record(std::move(record));
  if (!status.ok()) return status;
  ++stats_.creates;

  if (master_) {
    QueueItem item;
    item.queue_id = next_queue_id_++;
    item.origin = self_;
    item.origin_create_id = id;
    item.create = create;
    item.eligible = now + 2 * delay_ + margin_;
    item.deadline = plan->max_time > absl::ZeroDuration() ? now + plan->max_time : Time::Infinite();
    item.alpha = plan->alpha;
    item.estimated_fidelity = plan->estimated_fidelity;
    item.virtual_start = queue_.virtual_time();
    Enqueue(std::move(item));
  } else {
    pending_[id] = PendingRequest{create, now};
    v1::LinkFrame frame;
    auto* request = frame.mutable_add_request();
    request->set_origin_create_id(id);
    *request->mutable_create() = create;
    request->set_create_time_ns(TimeToWire(now));
    Send(std::move(frame));
  }
  return id;
}

void Egp::Release(uint32_t slot) {
  if (!held_slots_.contains(slot)) {
    return Drop(
        results::v1::DROP_REASON_UNEXPECTED_FRAME,
        absl::StrCat("Release of slot ", slot, ", which holds no pair of link ", spec_.name));
  }
  (void)memory_->Release(slot);  // OnSlotFreed does the bookkeeping
}

void Egp::OnSlotFreed(uint32_t slot) {
  auto it = held_slots_.find(slot);
  if (it == held_slots_.end()) return;
  const uint64_t qid = it->second;
  held_slots_.erase(it);
  auto count = held_count_.find(qid);
  if (count != held_count_.end() && --count->second == 0) held_count_.erase(count);
  // LINK-46: a batch waiting for its item's window to open may go now (not
  // from inside the pool: on a timer at the same time).
  if (phase_ == Phase::kWaitingMemory && window_wait_ && batch_.queue_id == qid) {
    memory_ready_timer_->ArmAt(runtime_->Now());
  }
}

uint32_t Egp::held(uint64_t queue_id) const {
  auto it = held_count_.find(queue_id);
  return it == held_count_.end() ? 0 : it->second;
}

absl::Status Egp::Cancel(uint64_t create_id) {
  QueueItem* item = nullptr;
  for (const auto& [qid, i] : queue_.items()) {
    if (i.origin == self_ && i.origin_create_id == create_id && !i.cancelled && !i.refused) {
      item = queue_.Find(qid);
      break;
    }
  }
  const bool requested = !master_ && pending_.contains(create_id);
  if (item == nullptr && !requested) {
    return absl::NotFoundError(absl::StrCat("no request with create id ", create_id, " of ",
                                            self_, " is served on link ", spec_.name));
  }
  ++stats_.cancels;
  if (master_) {
    CancelItem(*item);
    return absl::OkStatus();
  }
  // LINK-48: the master decides when the item leaves, for both ends. A
  // request still unanswered is cancelled after the master queued it (the
  // frames arrive in order).
  if (item != nullptr) item->cancelled = true;
  v1::LinkFrame frame;
  frame.mutable_cancel()->set_origin_create_id(create_id);
  Send(std::move(frame));
  return absl::OkStatus();
}

// ---------------------------------------------------------------- scheduling

bool Egp::KeepsHere(const QueueItem& item) const {
  return TypeAt(item.create, item.origin == self_) == v1::REQUEST_TYPE_KEEP;
}

uint32_t Egp::BatchPairs(const QueueItem& item) const {
  uint64_t k = std::max<uint32_t>(options_.max_batch_pairs, 1);
  // LINK-49: no more pairs than the item would win before weighted fair
  // queueing (LINK-26) selects another eligible item: 1 + the charges m >= 1
  // after which (F_i + m s_i, queue id) is still the smallest.
  for (const auto& [qid, other] : queue_.items()) {
    if (qid == item.queue_id || other.eligible > last_reference_) continue;
    const uint64_t f = item.finish(), s = item.stride(), fo = other.finish();
    uint64_t wins = 0;  // m >= 1 with f + m s < fo, or == fo and item's id smaller
    if (fo > f) wins = (fo - f - 1) / s + ((fo - f) % s == 0 && item.queue_id < qid ? 1 : 0);
    k = std::min<uint64_t>(k, 1 + wins);
  }
  if (item.create.pairs() != 0) {
    k = std::min<uint64_t>(k, item.create.pairs() > item.successes
                                  ? item.create.pairs() - item.successes
                                  : 1);
  }
  if (KeepsHere(item) && item.create.window() != 0) {
    const uint32_t in_use = held(item.queue_id);
    k = std::min<uint64_t>(k, item.create.window() > in_use ? item.create.window() - in_use : 0);
  }
  return static_cast<uint32_t>(k);
}

void Egp::ArmWake() {
  if (phase_ != Phase::kIdle) return;
  const Time now = runtime_->Now();
  std::optional<Time> at = queue_.NextChangeAfter(last_reference_);
  if (queue_.AnyEligible(now)) at = now;  // an item that arrived late
  if (at) {
    wake_timer_->ArmAt(std::max(*at, now));
  } else {
    wake_timer_->Cancel();
  }
}

void Egp::Decide(Time reference) {
  last_reference_ = reference;
  wake_timer_->Cancel();
  for (QueueItem& item : queue_.RemoveDue(reference)) {
    if (item.cancelled) continue;  // LINK-48: no ERR at either end
    if (item.refused) {
      if (item.origin == self_)
        DeliverErr(v1::ERROR_CODE_REJECTED, self_, item.origin_create_id, item.refusal_detail);
      continue;
    }
    DeliverErr(v1::ERROR_CODE_TIMEOUT, item.origin, item.origin_create_id,
               absl::StrCat("max_time passed with ", item.successes, " of ", item.create.pairs(),
                            " pairs heralded"));
  }
  // LINK-29: an item that waited for memory in vain steps aside for memory_poll_s
  // if others can use the link meanwhile.
  if (idle_item_ != 0) {
    QueueItem* idle = queue_.Find(idle_item_);
    if (idle != nullptr && queue_.AnyEligibleExcept(reference, idle_item_)) {
      idle->eligible = reference + SecondsToDuration(spec_.memory_poll_s);
    }
    idle_item_ = 0;
  }
  QueueItem* item = queue_.Select(reference);
  SetBusy(item != nullptr, reference);
  if (item == nullptr) {
    phase_ = Phase::kIdle;
    ArmWake();
    return;
  }
  StartBatch(*item, reference);
}

void Egp::StartBatch(QueueItem& item, Time reference) {
  batch_ = Batch{};
  batch_.queue_id = item.queue_id;
  batch_.start = reference;
  window_wait_ = false;
  const uint32_t pairs = BatchPairs(item);
  if (!KeepsHere(item)) {
    for (uint32_t j = 0; j < pairs; ++j) batch_.bases.push_back(DrawBasis(item.create, rng_));
    return SendGenerate(0);
  }
  for (uint32_t j = 0; j < pairs; ++j) {
    std::optional<uint32_t> slot = memory_->Allocate();
    if (!slot) break;
    batch_.slots.push_back(*slot);
  }
  if (!batch_.slots.empty()) return SendGenerate(0);
  ++stats_.memory_waits;
  // LINK-29: with other work eligible, end the batch at once; else hold the
  // Generate until a slot frees (in the pool, or of the item's own pairs when
  // its window is full, LINK-46), other work becomes eligible or
  // memory_poll_s passes.
  if (queue_.AnyEligibleExcept(last_reference_, item.queue_id)) return SendGenerate(1);
  phase_ = Phase::kWaitingMemory;
  window_wait_ = pairs == 0;
  if (!window_wait_) {
    memory_wait_ = memory_->WaitForSlot([this](uint32_t slot) { OnMemoryGranted(slot); });
    memory_poll_timer_->ArmAt(runtime_->Now() + SecondsToDuration(spec_.memory_poll_s));
  }
  // A full window opens only when the item's own pairs are freed (LINK-46):
  // no poll then, only the other items' eligibility.
  if (std::optional<Time> next = queue_.NextChangeAfter(last_reference_)) wake_timer_->ArmAt(*next);
}

void Egp::OnWake() {
  const Time now = runtime_->Now();
  if (phase_ == Phase::kIdle) return Decide(now);
  if (phase_ != Phase::kWaitingMemory) return;
  if (queue_.AnyEligibleExcept(now, batch_.queue_id)) {
    // Other work became eligible while this end held its Generate.
    memory_poll_timer_->Cancel();
    return OnMemoryPollExpired();
  }
  if (std::optional<Time> next = queue_.NextChangeAfter(now)) wake_timer_->ArmAt(*next);
}

void Egp::OnMemoryGranted(uint32_t slot) {
  memory_wait_.reset();
  granted_slots_.push_back(slot);
  // Not from inside the pool's Release: continue on a timer at the same time.
  memory_ready_timer_->ArmAt(runtime_->Now());
}

void Egp::OnMemoryReady() {
  if (phase_ != Phase::kWaitingMemory) return;
  const QueueItem* item = queue_.Find(batch_.queue_id);
  const uint32_t pairs = item != nullptr ? BatchPairs(*item) : 0;
  batch_.slots = std::move(granted_slots_);
  granted_slots_.clear();
  while (batch_.slots.size() < pairs) {
    std::optional<uint32_t> slot = memory_->Allocate();
    if (!slot) break;
    batch_.slots.push_back(*slot);
  }
  if (batch_.slots.empty()) {
    if (pairs == 0 || memory_wait_) return;  // the window is still full, or already waiting
    window_wait_ = false;  // the window opened but the pool is empty: wait for the pool
    memory_wait_ = memory_->WaitForSlot([this](uint32_t slot) { OnMemoryGranted(slot); });
    return;
  }
  if (memory_wait_) memory_->CancelWait(*memory_wait_);
  memory_wait_.reset();
  memory_poll_timer_->Cancel();
  wake_timer_->Cancel();
  window_wait_ = false;
  batch_.start = runtime_->Now();  // PHYS-B4a: the Generate goes out now
  SendGenerate(0);
}

void Egp::OnMemoryPollExpired() {
  if (phase_ != Phase::kWaitingMemory) return;
  wake_timer_->Cancel();
  if (!granted_slots_.empty()) {
    memory_ready_timer_->Cancel();
    return OnMemoryReady();
  }
  if (memory_wait_) memory_->CancelWait(*memory_wait_);
  memory_wait_.reset();
  window_wait_ = false;
  batch_.start = runtime_->Now();
  SendGenerate(1);
}

void Egp::SendGenerate(uint32_t idle_cycles) {
  const QueueItem* item = queue_.Find(batch_.queue_id);
  batch_.number = ++batch_counter_;
  physical::v1::Generate generate;
  generate.set_link(spec_.name);
  generate.set_batch(batch_.number);
  generate.set_queue_id(batch_.queue_id);
  if (batch_.slots.size() == 1) {
    generate.set_slot(batch_.slots[0]);
  } else {
    for (uint32_t slot : batch_.slots) generate.add_slots(slot);
  }
  const uint32_t pairs =
      static_cast<uint32_t>(batch_.bases.empty() ? batch_.slots.size() : batch_.bases.size());
  if (pairs > 1) generate.set_pairs(pairs);
  generate.set_alpha(item != nullptr ? item->alpha : 0);
  if (!batch_.bases.empty()) {
    generate.set_measure_basis(batch_.bases[0]);
    if (batch_.bases.size() > 1) {
      for (physical::v1::Basis b : batch_.bases) generate.add_measure_bases(b);
    }
  }
  generate.set_deadline_ns(item != nullptr ? TimeToWire(item->deadline) : 0);
  generate.set_idle_cycles(idle_cycles);
  generate.set_start_ns(TimeToWire(batch_.start));
  phase_ = Phase::kBatchOutstanding;
  ++stats_.batches;
  physical_->Generate(generate);
}

void Egp::OnHerald(const Herald& herald) {
  if (herald.link() != spec_.name) {
    return Drop(
        results::v1::DROP_REASON_UNKNOWN_LINK,
        absl::StrCat("herald for link '", herald.link(), "' reached the end of ", spec_.name));
  }
  if (phase_ != Phase::kBatchOutstanding || herald.batch() != batch_.number) {
    return Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
                absl::StrCat("herald for batch ", herald.batch(), "; ",
                             phase_ == Phase::kBatchOutstanding || phase_ == Phase::kHeraldPending
                                 ? absl::StrCat("batch ", batch_.number, " runs")
                                 : std::string("no batch runs")));
  }
  // PHYS-B18: a success with `more` is followed by another herald of the batch.
  const bool last = herald.outcome() != physical::v1::OUTCOME_SUCCESS || !herald.more();
  if (last) phase_ = Phase::kHeraldPending;
  const Time now = runtime_->Now();
  QueuedHerald q{herald, TimeFromWire(herald.time_ns()), std::nullopt};
  if (q.at.is_infinite() || q.at > now + cycle_) {
    // LINK-44: no physical layer heralds more than a cycle before its time;
    // waiting for such a time_ns would stall the link. Act now.
    q.bad_time = herald.time_ns();
    q.herald.set_time_ns(TimeToWire(now));
    q.at = now;
  }
  // Heralds are acted on in the order they came.
  if (!heralds_.empty()) q.at = std::max(q.at, heralds_.back().at);
  heralds_.push_back(std::move(q));
  // LINK-30: act at the herald's time, which both ends share.
  herald_timer_->ArmAt(std::max(heralds_.front().at, now));
}

void Egp::OnHeraldTimer() {
  const Time now = runtime_->Now();
  while (!heralds_.empty() && heralds_.front().at <= now) {
    const QueuedHerald q = std::move(heralds_.front());
    heralds_.pop_front();
    // LINK-24/30: the reference is the herald's time, even when a real-time
    // runtime fires this timer a little late.
    ProcessHerald(q, TimeFromWire(q.herald.time_ns()));
  }
  if (!heralds_.empty()) herald_timer_->ArmAt(heralds_.front().at);
}

void Egp::OnPhysicalError(const physical::v1::Error& error) {
  ++stats_.physical_errors;
  const bool running = error.link() == spec_.name && phase_ == Phase::kBatchOutstanding &&
                       error.batch() == batch_.number && batch_.heralded == 0 && heralds_.empty();
  Drop(results::v1::DROP_REASON_PHYSICS_ERROR,
       absl::StrCat("physical error ", physical::v1::ErrorCode_Name(error.code()), " for link '",
                    error.link(), "' batch ", error.batch(),
                    running ? " (ends the running batch): " : ": ", error.detail()));
  if (!running) return;
  // LINK-43: the batch produced nothing; its slots go back without a Free. A
  // refused Generate changed nothing at the physical layer (PHYS-E1), so its
  // batch number is used again; a BAD_BATCH one (superseded, or behind the
  // peer) is not.
  ReturnBatchSlots();
  if (error.code() != physical::v1::ERROR_CODE_BAD_BATCH) --batch_counter_;
  const Time now = runtime_->Now();
  // After an earlier failed batch with no herald since, retry no sooner than
  // one cycle after that failure: at most two refusals per cycle, however
  // fast the physical layer answers.
  const Time at = last_failed_batch_ ? std::max(now, *last_failed_batch_ + cycle_) : now;
  last_failed_batch_ = now;
  if (at == now) return Decide(now);
  phase_ = Phase::kIdle;
  wake_timer_->ArmAt(at);
}

void Egp::ProcessHerald(const QueuedHerald& queued, Time reference) {
  const Herald& herald = queued.herald;
  if (queued.bad_time && herald.outcome() != physical::v1::OUTCOME_SUCCESS) {
    Drop(results::v1::DROP_REASON_MALFORMED_FRAME,
         absl::StrCat("herald of batch ", herald.batch(), " names time_ns ", *queued.bad_time,
                      ", more than a cycle after its arrival"));
  }
  switch (herald.outcome()) {
    case physical::v1::OUTCOME_SUCCESS:
      ++stats_.successes;
      ProcessSuccess(queued, reference);
      if (herald.more()) return;  // the batch goes on
      break;
    case physical::v1::OUTCOME_IDLE:
      ++stats_.idle_batches;
      queue_.Charge(batch_.queue_id);
      idle_item_ = batch_.queue_id;
      break;
    case physical::v1::OUTCOME_DEADLINE:
      ++stats_.deadline_batches;
      break;
    case physical::v1::OUTCOME_QUEUE_MISMATCH:
      ++stats_.mismatches;
      Drop(results::v1::DROP_REASON_QUEUE_MISMATCH,
           absl::StrCat("batch ", herald.batch(), ": the peer served another queue item than ",
                        batch_.queue_id));
      {
        v1::LinkFrame frame;
        frame.mutable_check()->set_queue_id(batch_.queue_id);
        frame.mutable_check()->set_batch(herald.batch());
        Send(std::move(frame));
      }
      break;
    default:
      Drop(results::v1::DROP_REASON_MALFORMED_FRAME,
           absl::StrCat("herald of batch ", herald.batch(), " with outcome ", herald.outcome()));
      break;
  }
  EndBatch(reference);
}

void Egp::EndBatch(Time reference) {
  ReturnBatchSlots();
  last_failed_batch_.reset();
  Decide(reference);
}

void Egp::ProcessSuccess(const QueuedHerald& queued, Time reference) {
  const Herald& herald = queued.herald;
  const uint64_t qid = batch_.queue_id;
  const uint32_t j = batch_.heralded++;  // this pair's place in the batch
  const bool has_slot = j < batch_.slots.size();
  const uint32_t slot = has_slot ? batch_.slots[j] : 0;
  QueueItem* item = queue_.Find(qid);
  if (item == nullptr) {  // items leave only at decisions and when complete; defensive
    Drop(results::v1::DROP_REASON_UNEXPECTED_FRAME,
         absl::StrCat("success for queue id ", qid, ", not queued"));
    if (has_slot) (void)memory_->Release(slot);
    return;
  }
  queue_.Charge(qid);
  ++item->successes;
  const uint64_t seq = ++last_sequence_[item->origin];
  const bool keep = KeepsHere(*item);
  const uint32_t asked = static_cast<uint32_t>(keep ? batch_.slots.size() : batch_.bases.size());
  const physical::v1::Basis basis =
      j < batch_.bases.size() ? batch_.bases[j] : physical::v1::BASIS_UNSPECIFIED;
  std::string problem;
  if (queued.bad_time) {
    problem = absl::StrCat("herald names time_ns ", *queued.bad_time,
                           ", more than a cycle after its arrival");
  } else if (j >= asked || herald.index() != j + 1) {
    problem = absl::StrCat("herald ", herald.index(), " is success ", j + 1, " of a batch of ",
                           asked, " pairs");
  } else if (herald.queue_id() != qid) {
    problem = absl::StrCat("herald names queue id ", herald.queue_id(), ", the Generate ", qid);
  } else if (!IsBellState(herald.bell_state())) {
    problem = absl::StrCat("herald names Bell state ", herald.bell_state());
  } else if (keep && (!herald.has_slot() || !has_slot || herald.slot() != slot)) {
    problem = herald.has_slot()
                  ? absl::StrCat("herald names slot ", herald.slot(), ", not the slot requested")
                  : std::string("herald names no slot for a kept qubit");
  } else if (!keep && (herald.basis() != basis || herald.result() > 1)) {
    problem = absl::StrCat("herald names basis ", herald.basis(), " result ", herald.result(),
                           " for basis ", basis);
  }
  const std::string origin = item->origin;
  const uint64_t create_id = item->origin_create_id;
  if (!problem.empty()) {
    // LINK-14, LINK-37: the pair cannot be delivered here; both ends expire it.
    if (has_slot) (void)memory_->Release(slot);
    Drop(results::v1::DROP_REASON_PAIR_EXPIRED,
         absl::StrCat("pair ", origin, "#", seq, ": ", problem));
    ReportExpired(origin, create_id, seq, seq, problem);
    v1::LinkFrame frame;
    auto* expire = frame.mutable_expire();
    expire->set_queue_id(qid);
    expire->set_origin(origin);
    expire->set_sequence_from(seq);
    expire->set_sequence_to(seq);
    expire->set_origin_create_id(create_id);
    expire->set_detail(problem);
    Send(std::move(frame));
  } else {
    v1::Ok ok;
    ok.set_create_id(create_id);
    ok.mutable_pair()->set_origin(origin);
    ok.mutable_pair()->set_partner(OtherEnd(spec_, origin));
    ok.mutable_pair()->set_sequence(seq);
    ok.set_bell_state(herald.bell_state());
    ok.set_estimated_fidelity(item->estimated_fidelity);
    ok.set_time_ns(TimeToWire(reference));
    ok.set_purpose_id(item->create.purpose_id());
    ok.set_remote_node(peer_);
    if (keep) {
      ok.set_slot(slot);
      // LINK-46: the pair counts against the item's window until freed.
      held_slots_[slot] = qid;
      ++held_count_[qid];
      memory_->SetOwner(slot, this);
    } else {
      ok.set_basis(herald.basis());
      ok.set_result(herald.result());
    }
    ok.set_herald_seq(herald.pair_seq());
    ok.set_link(spec_.name);
    ++stats_.oks;
    results::v1::TraceRecord record;
    record.set_time_ns(ok.time_ns());
    *record.mutable_ok() = ok;
    record.set_attempts(herald.attempts());
    tracer_->Record(std::move(record));
    listener_->OnOk(ok);
  }
  // LINK-32. Look the item up again: the listener may have queued more items.
  item = queue_.Find(qid);
  if (item != nullptr && item->complete()) queue_.Remove(qid);
}

void Egp::ReturnBatchSlots() {
  for (size_t j = batch_.heralded; j < batch_.slots.size(); ++j) {
    (void)memory_->Return(batch_.slots[j]);
  }
  batch_.slots.resize(std::min<size_t>(batch_.heralded, batch_.slots.size()));
  heralds_.clear();
  herald_timer_->Cancel();
}

void Egp::SetBusy(bool busy, Time reference) {
  if (busy == busy_) return;
  busy_ = busy;
  results::v1::TraceRecord record;
  record.set_time_ns(TimeToWire(reference));  // LINK-16: at the decision's reference time
  record.mutable_link_busy()->set_link(spec_.name);
  record.mutable_link_busy()->set_busy(busy);
  tracer_->Record(std::move(record));
}

// ------------------------------------------------------------------- upward

void Egp::DeliverErr(v1::ErrorCode code, const std::string& origin, uint64_t create_id,
                     const std::string& detail, uint64_t expired_from, uint64_t expired_to) {
  v1::Err err;
  err.set_create_id(create_id);
  err.set_code(code);
  err.set_detail(detail);
  err.set_origin(origin);
  err.set_link(spec_.name);
  err.set_expired_from(expired_from);
  err.set_expired_to(expired_to);
  err.set_time_ns(TimeToWire(runtime_->Now()));
  ++stats_.errs;
  results::v1::TraceRecord record;
  *record.mutable_err() = err;
  tracer_->Record(std::move(record));
  listener_->OnErr(err);
}

void Egp::ReportExpired(const std::string& origin, uint64_t create_id, uint64_t from, uint64_t to,
                        const std::string& detail) {
  std::set<uint64_t>& done = expired_[origin];
  uint64_t run_start = 0;
  auto flush = [&](uint64_t run_end) {
    if (run_start != 0)
      DeliverErr(v1::ERROR_CODE_EXPIRED, origin, create_id, detail, run_start, run_end);
    run_start = 0;
  };
  for (uint64_t s = from; s <= to; ++s) {
    if (done.insert(s).second) {
      if (run_start == 0) run_start = s;
    } else {
      flush(s - 1);
    }
  }
  flush(to);
}

void Egp::Drop(DropReason reason, std::string detail) {
  ++stats_.drops;
  tracer_->Drop(reason, std::move(detail), spec_.name);
}

}  // namespace qnet::link
