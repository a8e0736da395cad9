// QworldClient: a node's physical service over its connection to qworld
// (specs/physical.md; the physics-emulation interface of DESIGN.md). It is the
// qnode counterpart of the sim backend's in-process device.
//
// Session (specs/physical.md PHYS-1, PHYS-2, PHYS-S1, PHYS-S4, PHYS-S7): on
// Attach it sends Hello{node}; qworld answers HelloAck (or Error, which rejects
// the session), later Start (the shared epoch and the time dilation) and
// finally Stop, after which the owner says Bye. Requests of the layers above
// (Generate, Free, Measure, Gate, BellMeasure) are sent as NodeToWorld frames;
// Herald, MeasureResult, BellMeasureResult and Error frames are handed to the
// PhysicalListener on the runtime's thread as they arrive (qworld sends each at
// its emulated time). Every frame from qworld is untrusted: one that does not
// parse, is oversized, has another version, a body this client does not know,
// or comes at the wrong time (Start before HelloAck, a second Start, an
// indication with no listener) is counted and traced with its drop reason and
// otherwise ignored.
#ifndef QNET_EMULATOR_NODE_QWORLD_CLIENT_H_
#define QNET_EMULATOR_NODE_QWORLD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "qnet/physical/v1/physical.pb.h"
#include "stack/physical_service.h"
#include "stack/stream.h"
#include "stack/trace.h"

namespace qnet::node {

class QworldClient : public PhysicalService {
 public:
  struct Callbacks {
    std::function<void(const physical::v1::HelloAck&)> on_hello_ack;
    // qworld refused the Hello (unknown node, version, ...): the session is over.
    std::function<void(const physical::v1::Error&)> on_rejected;
    // The run starts: the owner sets the runtime's epoch and starts the node at
    // emulated time 0.
    std::function<void(const physical::v1::Start&)> on_start;
    std::function<void(const physical::v1::Stop&)> on_stop;
    // The connection to qworld ended (OK: qworld closed it in order).
    std::function<void(absl::Status why)> on_closed;
  };

  QworldClient(std::string node, Tracer* tracer, Callbacks callbacks);
  ~QworldClient() override;

  // Where indications go; may be set after construction (before Start).
  void set_listener(PhysicalListener* listener) { listener_ = listener; }

  // Takes the connected stream to qworld, starts reading and sends Hello.
  void Attach(std::unique_ptr<FramedStream> stream);

  // Sends Bye and closes the connection once it is flushed; `on_done` then runs
  // (also at once if there is no connection).
  void Bye(const std::string& reason, std::function<void()> on_done);

  // PhysicalService.
  void Generate(const physical::v1::Generate& request) override;
  void Free(const physical::v1::Free& request) override;
  void Measure(const physical::v1::Measure& request) override;
  void ApplyGate(const physical::v1::Gate& request) override;
  void BellMeasure(const physical::v1::BellMeasure& request) override;
  void Init(const physical::v1::Init& request) override;
  void Probe(const physical::v1::Probe& request) override;

  bool connected() const { return stream_ != nullptr && stream_->open(); }
  bool acked() const { return acked_; }
  bool started() const { return started_; }
  uint32_t memories() const { return memories_; }
  uint64_t requests_sent() const { return requests_sent_; }
  uint64_t requests_lost() const { return requests_lost_; }  // sent while not connected
  uint64_t indications() const { return indications_; }
  uint64_t dropped_frames() const { return dropped_frames_; }

 private:
  void Send(physical::v1::NodeToWorld message);
  void OnFrame(const std::string& payload);
  void Drop(results::v1::DropReason reason, std::string detail);

  std::string node_;
  Tracer* tracer_;
  Callbacks callbacks_;
  PhysicalListener* listener_ = nullptr;
  std::unique_ptr<FramedStream> stream_;
  bool acked_ = false;
  bool rejected_ = false;
  bool started_ = false;
  bool leaving_ = false;
  uint32_t memories_ = 0;
  uint64_t requests_sent_ = 0;
  uint64_t requests_lost_ = 0;
  uint64_t indications_ = 0;
  uint64_t dropped_frames_ = 0;
};

}  // namespace qnet::node

#endif  // QNET_EMULATOR_NODE_QWORLD_CLIENT_H_
