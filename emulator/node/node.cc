#include "emulator/node/node.h"

#include <algorithm>

#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "emulator/node/connection_workload.h"
#include "emulator/node/link_metrics.h"
#include "google/protobuf/util/time_util.h"
#include "link/create_check.h"
#include "link/egp.h"
#include "link/memory_pool.h"
#include "network/network_layer.h"
#include "transport/transport_layer.h"

namespace qnet::node {

using results::v1::DropReason;

namespace {

link::v1::BasisChoice ToBasisChoice(BasisSet b) {
  switch (b) {
    case BasisSet::kZ:
      return link::v1::BASIS_CHOICE_Z;
    case BasisSet::kX:
      return link::v1::BASIS_CHOICE_X;
    case BasisSet::kY:
      return link::v1::BASIS_CHOICE_Y;
    case BasisSet::kXZ:
      return link::v1::BASIS_CHOICE_XZ;
    case BasisSet::kXYZ:
      return link::v1::BASIS_CHOICE_XYZ;
  }
  return link::v1::BASIS_CHOICE_XZ;
}

// (link, origin, create id): a CREATE network-wide.
using CreateKey = std::tuple<std::string, std::string, uint64_t>;

// The link service the network layer uses on one link: the Egp, recording the
// create ids it issued so that ERRs (which carry no purpose id) find their way
// back to it.
class NetworkLinkService : public link::LinkService {
 public:
  NetworkLinkService(std::string node, link::Egp* egp, std::set<CreateKey>* issued)
      : node_(std::move(node)), egp_(egp), issued_(issued) {}
  absl::StatusOr<uint64_t> Create(const link::v1::Create& create) override {
    absl::StatusOr<uint64_t> id = egp_->Create(create);
    if (id.ok()) issued_->insert({egp_->link_name(), node_, *id});
    return id;
  }
  void Release(uint32_t slot) override { egp_->Release(slot); }
  absl::Status Cancel(uint64_t create_id) override { return egp_->Cancel(create_id); }

 private:
  std::string node_;
  link::Egp* egp_;
  std::set<CreateKey>* issued_;
};

}  // namespace

// The link-layer workload of this node: issues the topology's <request>s at
// their start times and consumes the kept pairs (holds each for the request's
// hold-s, then releases its slot).
class Node::Impl : public link::LinkListener {
 public:
  Impl(const Topology& topology, std::string name, Env env, Rng rng)
      : topology_(topology), name_(std::move(name)), env_(std::move(env)), rng_(std::move(rng)) {
    const HardwareSpec* hw = topology_.HardwareOf(name_);
    memory_ = std::make_unique<link::MemoryPool>(hw ? hw->memories : 0, env_.physical);
    for (const LinkSpec& spec : topology_.links) {
      if (spec.a != name_ && spec.b != name_) continue;
      const std::string neighbour = spec.a == name_ ? spec.b : spec.a;
      auto send = [this, neighbour](const link::v1::LinkFrame& lf) {
        wire::v1::Frame frame;
        frame.set_version(1);
        frame.set_from_node(name_);
        *frame.mutable_link() = lf;
        env_.send(neighbour, frame);
      };
      auto egp = std::make_unique<link::Egp>(spec, name_, env_.runtime, env_.physical,
                                             memory_.get(), std::move(send), this, env_.tracer,
                                             rng_.Fork("egp/" + spec.name), LinkOptions());
      by_neighbour_[neighbour] = egp.get();
      auto service = std::make_unique<NetworkLinkService>(name_, egp.get(), &network_creates_);
      links_[spec.name] = LinkEnd{neighbour, std::move(egp), std::move(service)};
    }
    for (const RequestSpec& r : topology_.requests)
      if (r.to == name_) request_origins_.insert(r.from);

    // Transport first (the network layer takes it as its listener), then the
    // network layer over the link ends, then the transport's network.
    transport_ = std::make_unique<transport::TransportLayer>(
        name_, env_.runtime, nullptr, env_.physical, memory_.get(), env_.tracer,
        transport::TransportOptions());
    std::vector<network::NetworkLink> net_links;
    for (const LinkSpec& spec : topology_.links) {
      if (spec.a != name_ && spec.b != name_) continue;
      network::NetworkLink nl;
      nl.local = LinkMetricsFor(spec, name_);
      nl.service = links_[spec.name].service.get();
      net_links.push_back(std::move(nl));
    }
    network::NetworkOptions net_options;
    net_options.router = RouterOptionsFor(topology_, name_);
    net_options.router.hello_interval =
        std::max(net_options.router.hello_interval, env_.min_hello_interval);
    net_options.router.min_dead_interval = env_.min_dead_interval;
    auto net_send = [this](const std::string& neighbour, const network::v1::NetworkFrame& nf) {
      wire::v1::Frame frame;
      frame.set_version(1);
      frame.set_from_node(name_);
      *frame.mutable_network() = nf;
      env_.send(neighbour, frame);
    };
    network_ = std::make_unique<network::NetworkLayer>(
        name_, std::move(net_links), env_.runtime, env_.physical, memory_.get(),
        std::move(net_send), transport_.get(), env_.tracer, rng_.Fork("network"), net_options);
    transport_->set_network(network_.get());
    workload_ = std::make_unique<ConnectionWorkload>(topology_, name_, env_.runtime,
                                                     transport_.get(), env_.tracer);
  }

  ~Impl() override {
    // The workload and transport hold pointers into the layers below.
    workload_.reset();
    network_.reset();
    transport_.reset();
  }

  link::EgpOptions LinkOptions() const {
    link::EgpOptions options;
    options.min_margin = env_.link_margin;
    return options;
  }

  void Start() {
    network_->Start();
    workload_->Start();
    for (const RequestSpec& r : topology_.requests) {
      if (r.from != name_) continue;
      auto timer = env_.runtime->CreateTimer([this, &r] { Issue(r); });
      timer->ArmAt(Time::FromSeconds(r.start_s));
      workload_timers_.push_back(std::move(timer));
    }
  }

  void Stop() {
    stopped_ = true;
    workload_timers_.clear();
    workload_->Stop();
  }

  void OnLinkDown(const std::string& link) {
    auto it = links_.find(link);
    if (it == links_.end()) return;
    network_->OnNeighbourDown(it->second.neighbour);
  }

  void Issue(const RequestSpec& r) {
    if (stopped_) return;
    auto it = by_neighbour_.find(r.to);
    if (it == by_neighbour_.end()) {
      env_.tracer->Drop(results::v1::DROP_REASON_UNKNOWN_LINK,
                        absl::StrCat("request to ", r.to, ": not a neighbour of ", name_));
      return;
    }
    link::v1::Create create;
    create.set_remote_node(r.to);
    create.set_pairs(r.pairs);
    create.set_min_fidelity(r.min_fidelity);
    if (r.max_time_s > 0) {
      *create.mutable_max_time() = google::protobuf::util::TimeUtil::NanosecondsToDuration(
          absl::ToInt64Nanoseconds(SecondsToDuration(r.max_time_s)));
    }
    create.set_purpose_id(r.purpose_id);
    create.set_priority(r.priority);
    create.set_type(r.kind == RequestKind::kKeep ? link::v1::REQUEST_TYPE_KEEP
                                                 : link::v1::REQUEST_TYPE_MEASURE);
    if (r.kind == RequestKind::kMeasure) create.set_basis(ToBasisChoice(r.basis));
    absl::StatusOr<uint64_t> id = it->second->Create(create);
    if (id.ok()) {
      own_requests_[{it->second->link_name(), *id}] = &r;
      return;
    }
    // Refused at once (LINK-05): the link layer traced the CREATE; record the refusal as an ERR.
    ++errs_;
    results::v1::TraceRecord rec;
    auto* err = rec.mutable_err();
    err->set_code(link::ErrorCodeOf(id.status()));
    err->set_detail(std::string(id.status().message()));
    err->set_origin(name_);
    err->set_link(it->second->link_name());
    err->set_time_ns(env_.runtime->Now().nanos());
    env_.tracer->Record(std::move(rec));
  }

  // LinkListener: the workload is the layer above the link layer here.
  void OnOk(const link::v1::Ok& ok) override {
    if (network::IsNetworkPurpose(ok.purpose_id())) {
      ++network_oks_;
      network_creates_.insert({ok.link(), ok.pair().origin(), ok.create_id()});
      network_->OnLinkOk(ok);
      return;
    }
    ++oks_;
    if (!ok.has_slot()) return;
    auto lit = links_.find(ok.link());
    if (lit == links_.end()) return;
    link::Egp* egp = lit->second.egp.get();
    const double hold_s = HoldFor(ok);
    const uint32_t slot = ok.slot();
    if (hold_s <= 0) {
      egp->Release(slot);
      return;
    }
    // Hold the pair, then free its memory.
    const uint64_t key = next_hold_++;
    auto timer = env_.runtime->CreateTimer([this, egp, slot, key] {
      egp->Release(slot);
      holds_.erase(key);
    });
    timer->ArmAt(env_.runtime->Now() + SecondsToDuration(hold_s));
    holds_[key] = std::move(timer);
  }

  void OnErr(const link::v1::Err& err) override {
    const bool issued = network_creates_.contains({err.link(), err.origin(), err.create_id()});
    if (issued || (err.origin() != name_ && !request_origins_.contains(err.origin()))) {
      network_->OnLinkErr(err);
      return;
    }
    ++errs_;
  }

  // How long the consumer holds a kept pair: the hold-s of the request it
  // serves. The origin knows its request by create id; the partner by origin,
  // partner and purpose id (the first such request of the topology).
  double HoldFor(const link::v1::Ok& ok) const {
    if (ok.pair().origin() == name_) {
      auto it = own_requests_.find({ok.link(), ok.create_id()});
      if (it != own_requests_.end()) return it->second->hold_s;
    }
    for (const RequestSpec& r : topology_.requests) {
      if (r.from == ok.pair().origin() && r.to == ok.pair().partner() &&
          r.purpose_id == ok.purpose_id())
        return r.hold_s;
    }
    return 0;
  }

  void OnFrame(const std::string& neighbour, const wire::v1::Frame& frame) {
    if (frame.version() != 1) {
      return Drop(DropReason::DROP_REASON_VERSION_MISMATCH,
                  absl::StrCat("frame version ", frame.version(), " from ", neighbour));
    }
    if (frame.from_node() != neighbour) {
      return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                  absl::StrCat("frame claims sender '", frame.from_node(),
                               "' on the connection of ", neighbour));
    }
    switch (frame.body_case()) {
      case wire::v1::Frame::kLink: {
        auto it = links_.find(frame.link().link());
        if (it == links_.end() || it->second.neighbour != neighbour) {
          return Drop(DropReason::DROP_REASON_UNKNOWN_LINK,
                      absl::StrCat("link frame for '", frame.link().link(), "' from ", neighbour));
        }
        it->second.egp->OnPeerFrame(frame.link());
        return;
      }
      case wire::v1::Frame::kNetwork:
        network_->OnFrame(neighbour, frame.network());
        return;
      case wire::v1::Frame::kHello:
        return;  // the connection layer already used it; repeats are harmless
      case wire::v1::Frame::kError:
        return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                    absl::StrCat("peer ", neighbour, " reported error ",
                                 wire::v1::FrameErrorCode_Name(frame.error().code()), ": ",
                                 frame.error().detail()));
      default:
        return Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
                    absl::StrCat("frame with no known body from ", neighbour));
    }
  }

  void OnBadFrame(const std::string& neighbour, bool oversized, const std::string& detail) {
    Drop(oversized ? DropReason::DROP_REASON_OVERSIZED_FRAME
                   : DropReason::DROP_REASON_MALFORMED_FRAME,
         absl::StrCat("from ", neighbour, ": ", detail));
  }

  void OnHerald(const physical::v1::Herald& herald) {
    auto it = links_.find(herald.link());
    if (it == links_.end()) {
      return Drop(DropReason::DROP_REASON_UNKNOWN_LINK,
                  absl::StrCat("herald for link '", herald.link(), "'"));
    }
    it->second.egp->OnHerald(herald);
  }

  void Drop(DropReason reason, std::string detail) {
    ++drops_;
    env_.tracer->Drop(reason, std::move(detail));
  }

  struct LinkEnd {
    std::string neighbour;
    std::unique_ptr<link::Egp> egp;
    std::unique_ptr<NetworkLinkService> service;
  };

  const Topology& topology_;
  std::string name_;
  Env env_;
  Rng rng_;
  std::unique_ptr<link::MemoryPool> memory_;
  std::map<std::string, LinkEnd> links_;  // by link name
  std::map<std::string, link::Egp*> by_neighbour_;
  std::map<std::pair<std::string, uint64_t>, const RequestSpec*>
      own_requests_;  // (link, create id)
  std::vector<std::unique_ptr<Timer>> workload_timers_;
  std::map<uint64_t, std::unique_ptr<Timer>> holds_;
  uint64_t next_hold_ = 1;
  bool stopped_ = false;
  uint64_t oks_ = 0, errs_ = 0, drops_ = 0, network_oks_ = 0;
  // Network-layer CREATEs: issued here, or OK'd here as the partner.
  std::set<CreateKey> network_creates_;
  std::set<std::string> request_origins_;  // nodes with a <request> towards this one
  std::unique_ptr<transport::TransportLayer> transport_;
  std::unique_ptr<network::NetworkLayer> network_;
  std::unique_ptr<ConnectionWorkload> workload_;
};

Node::Node(const Topology& topology, std::string name, Env env, Rng rng)
    : impl_(std::make_unique<Impl>(topology, std::move(name), std::move(env), std::move(rng))) {}
Node::~Node() = default;

const std::string& Node::name() const { return impl_->name_; }
void Node::Start() { impl_->Start(); }
void Node::Stop() { impl_->Stop(); }
void Node::OnFrame(const std::string& neighbour, const wire::v1::Frame& frame) {
  impl_->OnFrame(neighbour, frame);
}
void Node::OnBadFrame(const std::string& neighbour, bool oversized, const std::string& detail) {
  impl_->OnBadFrame(neighbour, oversized, detail);
}
void Node::OnHerald(const physical::v1::Herald& herald) { impl_->OnHerald(herald); }
void Node::OnMeasureResult(const physical::v1::MeasureResult& result) {
  if (transport::TransportLayer::OwnsRequestId(result.request_id())) {
    return impl_->transport_->OnMeasureResult(result);
  }
  impl_->Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
              absl::StrCat("measure result ", result.request_id(), " nobody asked for"));
}
void Node::OnBellMeasureResult(const physical::v1::BellMeasureResult& result) {
  if (network::NetworkLayer::OwnsRequestId(result.request_id())) {
    return impl_->network_->OnBellMeasureResult(result);
  }
  if (transport::TransportLayer::OwnsRequestId(result.request_id())) {
    return impl_->transport_->OnBellMeasureResult(result);
  }
  impl_->Drop(DropReason::DROP_REASON_UNEXPECTED_FRAME,
              absl::StrCat("Bell measurement result ", result.request_id(), " nobody asked for"));
}
void Node::OnLinkDown(const std::string& link) { impl_->OnLinkDown(link); }
transport::TransportService* Node::transport() { return impl_->transport_.get(); }
const ConnectionCounts* Node::connection_counts(const std::string& name) const {
  return impl_->workload_->counts(name);
}
const network::NetworkStats& Node::network_stats() const { return impl_->network_->stats(); }
void Node::OnPhysicalError(const physical::v1::Error& error) {
  if (!error.link().empty()) {
    auto it = impl_->links_.find(error.link());
    if (it != impl_->links_.end()) return it->second.egp->OnPhysicalError(error);  // LINK-43
  }
  impl_->Drop(DropReason::DROP_REASON_PHYSICS_ERROR,
              absl::StrCat(physical::v1::ErrorCode_Name(error.code()), " (link '", error.link(),
                           "'): ", error.detail()));
}
uint64_t Node::oks() const { return impl_->oks_; }
uint64_t Node::errs() const { return impl_->errs_; }
uint64_t Node::drops() const { return impl_->drops_; }

}  // namespace qnet::node
