// The reference peer of the QKD conformance suite: plays either role of the
// BBM92 session protocol of specs/qkd.md (qkd.proto) against the program under
// test, through the fake network (fake_node.h). It follows the protocol by
// default; "bug" switches (BoringSSL's BoGo style) make it misbehave on
// purpose at one frame so that a test can check that the program under test
// detects it.
//
// The peer's math is the project's own post-processing (apps/qkd/postproc:
// Cascade, Toeplitz, secure length, verification hash) and authentication
// (apps/qkd/auth: PolyHash64 tags, pads), linked as "the reference peer"
// (interop-tests/README.md): the program under test is still only seen over
// the wire. Where specs/qkd.md leaves a choice to the sender (which positions
// Alice samples, the seeds) the peer draws from its own seeded generator.
#ifndef QNET_INTEROP_TESTS_QKD_QKD_PEER_H_
#define QNET_INTEROP_TESTS_QKD_QKD_PEER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "apps/qkd/auth/authenticator.h"
#include "apps/qkd/postproc/bits.h"
#include "apps/qkd/postproc/cascade.h"
#include "interop-tests/qkd/fake_node.h"
#include "qnet/qkd/v1/qkd.pb.h"

namespace qnet::interop::qkd {

using ::qnet::qkd::BitVector;
namespace v1 = ::qnet::qkd::v1;

enum class Bug {
  kNone,
  kBadTag,             // the frame at bug_seq has its tag's lowest bit flipped
  kReplaySeq,          // before the frame at bug_seq, the frame bug_seq - 1 is sent again
  kSkipSeq,            // the frame at bug_seq carries seq bug_seq + 1 (a gap; tag valid for it)
  kWrongVersion,       // the frame at bug_seq has version 2
  kGarbageMessage,     // the frame at bug_seq authenticates bytes that are no QkdMessage
  kGarbageFrame,       // the Send at bug_seq is bytes that are no AuthenticatedFrame
  kUnknownOneof,       // the frame at bug_seq carries a QkdMessage with only field 99
  kHelloParamsDiffer,  // Alice: Hello with block_bits + 1
  kWrongParityCount,   // Alice: the first ParityReply has one parity byte too many
  kParityOutOfRange,   // Bob: the first ParityRequest asks for a range past the key's end
  kAbort,              // the message at bug_seq is replaced by Abort{"scripted abort"}
  kWrongDirection,     // the message at bug_seq is replaced by one of the other direction
  kBadVerify,          // Alice: block 1's Verify carries a wrong hash
};

struct PeerConfig {
  bool alice = false;
  std::string session = "qkd";
  v1::SessionParams params;  // what this end uses (and, as Alice, sends in Hello)
  std::string psk;
  uint64_t seed = 1;
  uint32_t sift_chunk = 16384;  // Alice: pair ids per Sift (QKD-S12's maximum)
  Bug bug = Bug::kNone;
  uint64_t bug_seq = 2;
};

// Counters and outputs of one run of the peer.
struct PeerResult {
  bool aborted = false;  // this peer aborted (its reason)
  std::string abort_reason;
  bool got_abort = false;         // the other end sent Abort
  std::string peer_abort_reason;  // its reason
  uint64_t blocks = 0, blocks_failed_verification = 0;
  uint64_t sifted_bits = 0, x_test_bits = 0;
  double qber_z = 0, qber_x = 0;  // last block
  uint64_t disclosed_bits = 0, secret_bits = 0;
  uint64_t secure_length_mismatches = 0;
  uint64_t abort_replies = 0;  // Aborts the other end sent after this peer aborted  // Bob: Amplify
                               // lengths not QKD-S25's
  std::vector<std::string> violations;  // protocol errors of the other end
};

class QkdPeer : public ScriptedApp {
 public:
  // `pairs`: the scripted pairs; this peer sees index 0 (Alice) or 1 (Bob).
  QkdPeer(PeerConfig config, const std::vector<ScriptedPair>& pairs);
  ~QkdPeer() override;

  std::vector<std::string> OnConnected() override;
  std::vector<std::string> OnData(const std::string& data) override;
  void OnClosed() override { closed_ = true; }
  bool WantsClose() const override { return wants_close_; }

  bool closed() const { return closed_; }
  const PeerResult& result() const { return result_; }
  // The key stream this end appended to its store (specs/qkd.md QKD-K*),
  // packed as in the key file.
  std::string KeyStreamBytes() const { return key_stream_.ToBytes(); }
  uint64_t key_stream_bits() const { return key_stream_.size(); }
  // Every message the other end sent (opened), in order.
  const std::vector<v1::QkdMessage>& received() const { return received_; }

 private:
  struct View {
    bool held = false, basis_x = false;
    uint8_t result = 0;
  };
  struct Block;

  void Send(const v1::QkdMessage& message);
  void Abort(const std::string& reason);
  void Violation(const std::string& what);
  void Handle(const v1::QkdMessage& m);
  void SiftRange(uint64_t first, uint32_t count, const std::string& other_held,
                 const std::string& other_x);
  void SendNextSift();
  void MaybeStartBlock();
  void AfterEstimate(uint64_t z_errors, uint64_t z_sampled, uint64_t x_errors, uint64_t x_count);
  void Finish(uint64_t block, uint32_t secret_bits, const BitVector& seed);
  void MaybeDone();

  PeerConfig config_;
  std::map<uint64_t, View> pairs_;
  uint64_t max_pair_id_ = 0;
  std::optional<::qnet::qkd::Authenticator> auth_;
  std::mt19937_64 rng_;
  std::vector<std::string> out_;
  std::vector<v1::QkdMessage> received_;
  std::vector<std::string> sent_frames_;  // serialized, by seq - 1
  PeerResult result_;
  bool hello_done_ = false, closed_ = false, wants_close_ = false, finished_ = false;
  bool bug_parity_done_ = false;
  // Sifting.
  uint64_t next_sift_ = 1;         // Alice: next id to send; Bob: next id expected
  uint64_t sift_replies_due_ = 0;  // Alice: ranges sent and not yet answered
  uint64_t next_to_send_ = 1;      // Alice: first id of the next Sift
  BitVector z_stream_, x_stream_;
  uint64_t z_used_ = 0, x_used_ = 0;
  uint64_t next_block_ = 1;  // block ids start at 1
  std::unique_ptr<Block> block_;
  // Authentication refill accounting (seq of the last frame counted, per direction).
  uint64_t refilled_upto_[2] = {0, 0};
  uint64_t last_seq_[2] = {0, 0};  // highest seq sent/received per direction (0: a->b)
  BitVector key_stream_;
};

}  // namespace qnet::interop::qkd

#endif  // QNET_INTEROP_TESTS_QKD_QKD_PEER_H_
