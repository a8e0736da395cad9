// KeyStore: the secret key shared by the two ends of one QKD session (a pair
// of endpoints), as the KME hands it out (specs/qkd.md QKD-K*, KME-*).
// Sans-I/O, no clock.
//
// The store is one append-only bit stream, identical at both ends: each
// block's key (after the authentication refill) is appended in block order.
// Ownership avoids double spending without any message between the KMEs: of
// each appended block, the first floor(len/16)*8 bits may be handed out only
// by Alice's KME (the session initiator), the rest only by Bob's (QKD-K*).
// Reserve() takes bits from this end's share in stream order.
//
// Key ids are self-describing and authenticated, so the peer KME can serve a
// key by its id alone, also after the session has ended (QKD-K6..K9): a UUID
// (8-4-4-4-12 lower-case hex of 16 bytes) holding a 60-bit truncated
// HMAC-SHA256 keyed with the session's PSK over (session, offset, length,
// master SAE, slave SAE), the length (14 bits, bytes) and the offset (48 bits,
// bytes of the stream); version nibble 8, variant 10. The exact byte layout is
// specs/qkd.md QKD-K7. Fetch() at the peer decodes the id, checks the MAC
// against the calling slave SAE and the master SAE of the request, checks
// that the bits lie in the reserving end's share and are present, and serves
// each id once.
#ifndef QNET_APPS_QKD_AUTH_KEY_STORE_H_
#define QNET_APPS_QKD_AUTH_KEY_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "apps/qkd/postproc/bits.h"

namespace qnet::qkd {

struct ReservedKey {
  std::string key_id;
  uint64_t offset = 0;  // bits from the start of the stream (a multiple of 8)
  uint32_t length = 0;  // bits
  std::string key;      // length / 8 bytes (QKD-W2 packing of the bits)
  std::string master_sae, slave_sae;
};

class KeyStore {
 public:
  // `mac_key`: the session's PSK (never leaves the process).
  KeyStore(std::string session, bool self_is_alice, std::string mac_key);

  // Longest key one id can name (14-bit length in bytes, QKD-K7).
  static constexpr uint32_t kMaxKeyBits = 16383 * 8;

  // Appends one block's key (both ends, same order). Only the first
  // floor(size/16)*16 bits are kept (the session appends multiples of 16).
  void Append(const BitVector& key);

  // This end hands out `bits` (a multiple of 8, > 0, <= kMaxKeyBits;
  // INVALID_ARGUMENT otherwise) to `master_sae` for `slave_sae`:
  // RESOURCE_EXHAUSTED when no unused part of this end's share in one block
  // is that long (nothing is taken then). The reserved bits are contiguous in
  // the stream: the first block (stream order) with room serves them.
  absl::StatusOr<ReservedKey> Reserve(uint32_t bits, const std::string& master_sae,
                                      const std::string& slave_sae);
  // The slave SAE fetches a key the peer reserved for it, once: NOT_FOUND if
  // the id does not decode, its MAC does not match (caller_sae as slave,
  // master_sae as master), its bits are not in the peer's share or not here
  // yet, or it was fetched already. Nothing changes on an error.
  absl::StatusOr<ReservedKey> Fetch(const std::string& key_id, const std::string& caller_sae,
                                    const std::string& master_sae);

  // The id of `length` bits at bit `offset` (both multiples of 8).
  // All or nothing (for ETSI requests of several keys, no copy of the store):
  // `number` reservations as by Reserve(), or none and the first error.
  absl::StatusOr<std::vector<ReservedKey>> ReserveMany(uint32_t number, uint32_t bits,
                                                       const std::string& master_sae,
                                                       const std::string& slave_sae);
  // All or nothing: every id as by Fetch() (an id repeated in `key_ids` fails
  // its second time), or nothing served and NOT_FOUND naming the first id
  // refused. Each refused request counts once in refused_fetches().
  absl::StatusOr<std::vector<ReservedKey>> FetchAll(const std::vector<std::string>& key_ids,
                                                    const std::string& caller_sae,
                                                    const std::string& master_sae);
  // Whether Fetch() would serve the id now; changes nothing, counts nothing.
  absl::Status CheckFetch(const std::string& key_id, const std::string& caller_sae,
                          const std::string& master_sae) const;

  std::string KeyIdOf(uint64_t offset, uint32_t length, const std::string& master_sae,
                      const std::string& slave_sae) const;

  uint64_t total_bits() const { return stream_.size(); }
  // Bits of this end's share not yet reserved.
  uint64_t available_bits() const;
  // Bits of the peer's share present here and not fetched yet.
  uint64_t peer_unfetched_bits() const;
  uint64_t reserved_bits() const { return reserved_bits_; }
  uint64_t reserved_keys() const { return reserved_keys_; }
  uint64_t fetched_keys() const { return fetched_keys_; }
  uint64_t refused_fetches() const { return refused_fetches_; }
  // The whole stream as bytes (QKD-W2 packing), for the key file.
  std::string StreamBytes() const { return stream_.ToBytes(); }

 private:
  struct Range {
    uint64_t begin = 0, end = 0;  // [begin, end) of the stream
    uint64_t next = 0;            // first unreserved bit (own ranges)
  };
  std::string session_;
  bool self_is_alice_;
  BitVector stream_;
  std::vector<Range> own_, peer_;
  std::string mac_key_;
  std::map<uint64_t, uint64_t> fetched_;  // begin -> end of peer-reserved bits served already
  // The bits [begin, end) an id names if Fetch() may serve them now.
  absl::StatusOr<std::pair<uint64_t, uint64_t>> Check(const std::string& key_id,
                                                      const std::string& caller_sae,
                                                      const std::string& master_sae) const;
  ReservedKey Serve(const std::string& key_id, uint64_t begin, uint64_t end,
                    const std::string& caller_sae, const std::string& master_sae);

  uint64_t Mac60(uint64_t offset_bytes, uint32_t length_bytes, const std::string& master_sae,
                 const std::string& slave_sae) const;

  uint64_t reserved_bits_ = 0, reserved_keys_ = 0, fetched_keys_ = 0, refused_fetches_ = 0;
  uint64_t fetched_bits_ = 0;
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_AUTH_KEY_STORE_H_
