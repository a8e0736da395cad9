// NetworkLayer: the service, frame dispatch and datagrams (specs/network.md
// NET-C-60 .. NET-C-73); circuits in circuit_table.cc, link pairs, swaps and
// delivery in pair_stream.cc.
#include "network/network_layer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "network/circuit_state.h"
#include "network/circuit_table.h"
#include "network/pair_stream.h"

namespace qnet::network {

using results::v1::DROP_REASON_MALFORMED_FRAME;
using results::v1::DROP_REASON_UNEXPECTED_FRAME;
using results::v1::DROP_REASON_UNKNOWN_LINK;

namespace {

// Hop limit of a new datagram: 64, or twice the current path length on larger
// networks (NET-C-70), so that long chains are reachable while a transient
// routing loop still ends.
constexpr uint32_t kDatagramTtl = 64;

}  // namespace

v1::CircuitKey ToProto(const CircuitKey& key) {
  v1::CircuitKey k;
  k.set_head(key.head);
  k.set_number(key.number);
  return k;
}

CircuitKey FromProto(const v1::CircuitKey& key) { return CircuitKey{key.head(), key.number()}; }

std::string PairName(const link::v1::PairId& p) {
  return absl::StrCat(p.origin(), "->", p.partner(), "#", p.sequence());
}

void NetworkContext::Drop(results::v1::DropReason reason, std::string detail, std::string link) {
  ++stats.drops;
  tracer->Drop(reason, std::move(detail), std::move(link));
}

link::LinkService* NetworkContext::ServiceOf(const std::string& link) const {
  auto it = links.find(link);
  return it == links.end() ? nullptr : it->second.service;
}

std::string NetworkContext::LinkTo(const std::string& neighbour) const {
  auto it = neighbour_link.find(neighbour);
  return it == neighbour_link.end() ? "" : it->second;
}

void NetworkContext::ReleasePair(const std::string& link, const LinkPair& pair) {
  if (pair.measured) return;  // a measured pair holds no qubit
  if (link::LinkService* service = ServiceOf(link)) service->Release(pair.slot);
}

class NetworkLayer::Impl {
 public:
  Impl(std::string node, std::vector<NetworkLink> links, Runtime* runtime,
       PhysicalService* physical, link::MemoryPool* memory, SendFn send, NetworkListener* listener,
       Tracer* tracer, NetworkOptions options) {
    ctx_.node = std::move(node);
    ctx_.runtime = runtime;
    ctx_.physical = physical;
    ctx_.memory = memory;
    ctx_.send = std::move(send);
    ctx_.listener = listener;
    ctx_.tracer = tracer;
    ctx_.options = std::move(options);
    std::vector<LocalLink> local;
    for (auto& l : links) {
      local.push_back(l.local);
      ctx_.neighbour_link[l.local.neighbour] = l.local.link;
      ctx_.links[l.local.link] = std::move(l);
    }
    LinkStateRouter::Output output;
    output.send = [this](const std::string& neighbour, const v1::NetworkFrame& frame) {
      ctx_.send(neighbour, frame);
    };
    output.on_link_change = [this](const std::string& link, bool up) {
      if (!up) table_->OnLinkDown(link);
    };
    output.on_routes_changed = [] {};
    router_ = std::make_unique<LinkStateRouter>(ctx_.node, std::move(local), runtime, tracer,
                                                std::move(output), ctx_.options.router);
    table_ = std::make_unique<CircuitTable>(&ctx_, router_.get());
    stream_ = std::make_unique<PairStream>(&ctx_, table_.get());
    table_->set_stream(stream_.get());
  }

  void Start() { router_->Start(); }
  void OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame);
  void OnNeighbourDown(const std::string& neighbour);
  absl::Status SendDatagram(const std::string& destination, std::string payload);
  void HandleDatagram(const std::string& neighbour, const v1::NetDatagram& datagram);

  NetworkContext ctx_;
  std::unique_ptr<LinkStateRouter> router_;
  std::unique_ptr<CircuitTable> table_;
  std::unique_ptr<PairStream> stream_;
};

void NetworkLayer::Impl::OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame) {
  if (!ctx_.neighbour_link.contains(neighbour)) {  // NET-C-60
    ctx_.Drop(DROP_REASON_UNKNOWN_LINK,
              absl::StrCat("network frame from non-neighbour ", neighbour));
    return;
  }
  switch (frame.body_case()) {
    case v1::NetworkFrame::kHello:
      return router_->OnHello(neighbour, frame.hello());
    case v1::NetworkFrame::kAdvert:
      return router_->OnAdvert(neighbour, frame.advert());
    case v1::NetworkFrame::kDatagram:
      return HandleDatagram(neighbour, frame.datagram());
    case v1::NetworkFrame::kSetup:
      return table_->HandleSetup(neighbour, frame.setup());
    case v1::NetworkFrame::kAccept:
      return table_->HandleAccept(neighbour, frame.accept());
    case v1::NetworkFrame::kRefuse:
      return table_->HandleRefuse(neighbour, frame.refuse());
    case v1::NetworkFrame::kTeardown:
      return table_->HandleTeardown(neighbour, frame.teardown());
    case v1::NetworkFrame::kTrack:
      return stream_->HandleTrack(neighbour, frame.track());
    case v1::NetworkFrame::kDeliver:
      return stream_->HandleDeliver(neighbour, frame.deliver());
    case v1::NetworkFrame::kDeliverAck:
      return stream_->HandleDeliverAck(neighbour, frame.deliver_ack());
    case v1::NetworkFrame::kDeliverNack:
      return stream_->HandleDeliverNack(neighbour, frame.deliver_nack());
    case v1::NetworkFrame::kRelease:
      return stream_->HandleRelease(neighbour, frame.release());
    case v1::NetworkFrame::BODY_NOT_SET:
      break;
  }
  ctx_.Drop(DROP_REASON_MALFORMED_FRAME,
            absl::StrCat("network frame without a known body from ", neighbour));
}

void NetworkLayer::Impl::OnNeighbourDown(const std::string& neighbour) {
  const std::string link = ctx_.LinkTo(neighbour);
  if (link.empty()) {
    ctx_.Drop(DROP_REASON_UNKNOWN_LINK, absl::StrCat("neighbour down: ", neighbour, " is not one"));
    return;
  }
  router_->SetLinkDown(link);
  table_->OnLinkDown(link);  // idempotent if the router already reported it
}

// ---- Datagrams (NET-C-70 .. NET-C-73) ----

absl::Status NetworkLayer::Impl::SendDatagram(const std::string& destination, std::string payload) {
  if (destination.empty() || destination == ctx_.node) {
    return absl::InvalidArgumentError(absl::StrCat("datagram destination '", destination, "'"));
  }
  std::optional<std::string> next = router_->NextHop(destination);
  if (!next.has_value()) {
    return absl::UnavailableError(absl::StrCat("no route to ", destination));
  }
  v1::NetworkFrame frame;
  v1::NetDatagram* d = frame.mutable_datagram();
  d->set_source(ctx_.node);
  d->set_destination(destination);
  uint32_t ttl = kDatagramTtl;
  if (std::optional<Route> route = router_->RouteTo(destination); route.has_value()) {
    ttl = std::max<uint32_t>(ttl, 2 * static_cast<uint32_t>(route->path.size()));
  }
  d->set_ttl(ttl);
  d->set_payload(std::move(payload));
  ctx_.Send(*next, frame);
  return absl::OkStatus();
}

void NetworkLayer::Impl::HandleDatagram(const std::string& neighbour,
                                        const v1::NetDatagram& datagram) {
  if (datagram.source().empty() || datagram.destination().empty() || datagram.ttl() == 0) {
    ctx_.Drop(DROP_REASON_MALFORMED_FRAME,
              absl::StrCat("datagram from ", neighbour, " without source, destination or ttl"));
    return;
  }
  if (datagram.destination() == ctx_.node) {
    ctx_.listener->OnDatagram(datagram.source(), datagram.payload());
    return;
  }
  if (datagram.ttl() <= 1) {  // NET-C-72
    ctx_.Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("datagram ", datagram.source(), " -> ",
                                                         datagram.destination(), ": ttl exhausted"));
    return;
  }
  std::optional<std::string> next = router_->NextHop(datagram.destination());
  if (!next.has_value()) {  // NET-C-73
    ctx_.Drop(DROP_REASON_UNEXPECTED_FRAME, absl::StrCat("datagram ", datagram.source(), " -> ",
                                                         datagram.destination(), ": no route"));
    return;
  }
  v1::NetworkFrame frame;
  *frame.mutable_datagram() = datagram;
  frame.mutable_datagram()->set_ttl(datagram.ttl() - 1);
  ctx_.Send(*next, frame);
}

// ---- NetworkLayer ----

NetworkLayer::NetworkLayer(std::string node, std::vector<NetworkLink> links, Runtime* runtime,
                           PhysicalService* physical, link::MemoryPool* memory, SendFn send,
                           NetworkListener* listener, Tracer* tracer, Rng /*rng*/,
                           NetworkOptions options)
    : impl_(std::make_unique<Impl>(std::move(node), std::move(links), runtime, physical, memory,
                                   std::move(send), listener, tracer, std::move(options))) {}
NetworkLayer::~NetworkLayer() = default;

void NetworkLayer::Start() { impl_->Start(); }
void NetworkLayer::OnFrame(const std::string& neighbour, const v1::NetworkFrame& frame) {
  impl_->OnFrame(neighbour, frame);
}
void NetworkLayer::OnLinkOk(const link::v1::Ok& ok) { impl_->stream_->OnLinkOk(ok); }
void NetworkLayer::OnLinkErr(const link::v1::Err& err) { impl_->stream_->OnLinkErr(err); }
void NetworkLayer::OnBellMeasureResult(const physical::v1::BellMeasureResult& result) {
  impl_->stream_->OnBellMeasureResult(result);
}
void NetworkLayer::OnNeighbourDown(const std::string& neighbour) {
  impl_->OnNeighbourDown(neighbour);
}
absl::StatusOr<CircuitKey> NetworkLayer::OpenCircuit(const CircuitRequest& request) {
  return impl_->table_->Open(request);
}
void NetworkLayer::CloseCircuit(const CircuitKey& key, const std::string& detail) {
  impl_->table_->Close(key, detail);
}
absl::Status NetworkLayer::SendDatagram(const std::string& destination, std::string payload) {
  return impl_->SendDatagram(destination, std::move(payload));
}
std::optional<Route> NetworkLayer::RouteTo(const std::string& destination) const {
  return impl_->router_->RouteTo(destination);
}
const NetworkStats& NetworkLayer::stats() const { return impl_->ctx_.stats; }
const LinkStateRouter& NetworkLayer::router() const { return *impl_->router_; }

}  // namespace qnet::network
