// The link-layer service (specs/link.md): one Egp per link end, composed per
// node by emulator/node. Sans-I/O: driven by method calls, output through the
// injected runtime, physical service, peer sender, listener and tracer.
#ifndef QNET_LINK_LINK_H_
#define QNET_LINK_LINK_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "qnet/link/v1/link.pb.h"

namespace qnet::link {

// The layer above (or a workload driver) receives OK and ERR through this.
class LinkListener {
 public:
  virtual ~LinkListener() = default;
  virtual void OnOk(const link::v1::Ok& ok) = 0;
  virtual void OnErr(const link::v1::Err& err) = 0;
};

// What the layer above can ask of one end of a link.
class LinkService {
 public:
  virtual ~LinkService() = default;
  // CREATE. Returns the create id, or an error status for a CREATE refused at
  // once (UNSUPPORTED, NOTIME, NORES, CREATE; the status message starts with
  // the ErrorCode name); no Err is delivered for those. Everything after
  // acceptance (including REJECTED by the peer) arrives as Ok / Err.
  virtual absl::StatusOr<uint64_t> Create(const link::v1::Create& create) = 0;
  // The layer above is done with a kept pair: its memory slot is freed.
  virtual void Release(uint32_t slot) = 0;
  // Ends an accepted CREATE of this end before all its pairs came (LINK-48):
  // pairs heralded until the cancel takes effect are still delivered; no ERR
  // follows. NotFound if the create id names no request of this end that is
  // still served.
  virtual absl::Status Cancel(uint64_t create_id) = 0;
};

}  // namespace qnet::link

#endif  // QNET_LINK_LINK_H_
