#include "apps/qkd/auth/key_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qnet::qkd {
namespace {

void PutBe(std::string* out, uint64_t v, int bytes) {
  for (int b = bytes - 1; b >= 0; --b) out->push_back(static_cast<char>((v >> (8 * b)) & 0xFF));
}

void PutString(std::string* out, const std::string& s) {
  PutBe(out, s.size(), 4);
  out->append(s);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The 16 bytes of a UUID text (8-4-4-4-12 hex, either case); false otherwise.
bool ParseUuid(const std::string& text, uint8_t bytes[16]) {
  if (text.size() != 36) return false;
  int n = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return false;
      ++i;
      continue;
    }
    const int hi = HexValue(text[i]), lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes[n++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return n == 16;
}

}  // namespace

KeyStore::KeyStore(std::string session, bool self_is_alice, std::string mac_key)
    : session_(std::move(session)), self_is_alice_(self_is_alice), mac_key_(std::move(mac_key)) {}

void KeyStore::Append(const BitVector& key) {
  const uint64_t len = key.size() / 16 * 16;
  if (len == 0) return;
  const uint64_t begin = stream_.size();
  const uint64_t split = begin + len / 2;  // first half (bytes): Alice's (QKD-K3)
  for (uint64_t i = 0; i < len; ++i) stream_.PushBack(key.Get(i));
  Range alice{begin, split, begin}, bob{split, begin + len, split};
  own_.push_back(self_is_alice_ ? alice : bob);
  peer_.push_back(self_is_alice_ ? bob : alice);
}

uint64_t KeyStore::available_bits() const {
  uint64_t n = 0;
  for (const Range& r : own_) n += r.end - r.next;
  return n;
}

uint64_t KeyStore::peer_unfetched_bits() const {
  uint64_t n = 0;
  for (const Range& r : peer_) n += r.end - r.begin;
  return n - fetched_bits_;
}

uint64_t KeyStore::Mac60(uint64_t offset_bytes, uint32_t length_bytes,
                         const std::string& master_sae, const std::string& slave_sae) const {
  std::string data;
  PutString(&data, session_);
  PutBe(&data, offset_bytes, 8);
  PutBe(&data, length_bytes, 4);
  PutString(&data, master_sae);
  PutString(&data, slave_sae);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), mac_key_.data(), static_cast<int>(mac_key_.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &mac_len);
  uint64_t v = 0;
  for (int b = 0; b < 8; ++b) v = v << 8 | mac[b];
  return v >> 4;
}

std::string KeyStore::KeyIdOf(uint64_t offset, uint32_t length, const std::string& master_sae,
                              const std::string& slave_sae) const {
  const uint64_t offset_bytes = offset / 8;
  const uint32_t length_bytes = length / 8;
  const uint64_t mac = Mac60(offset_bytes, length_bytes, master_sae, slave_sae);
  uint8_t b[16];
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(mac >> (12 + 8 * (5 - i)));
  b[6] = static_cast<uint8_t>(0x80 | ((mac >> 8) & 0x0F));
  b[7] = static_cast<uint8_t>(mac & 0xFF);
  b[8] = static_cast<uint8_t>(0x80 | ((length_bytes >> 8) & 0x3F));
  b[9] = static_cast<uint8_t>(length_bytes & 0xFF);
  for (int i = 0; i < 6; ++i) b[10 + i] = static_cast<uint8_t>(offset_bytes >> (8 * (5 - i)));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
    text.push_back(kHex[b[i] >> 4]);
    text.push_back(kHex[b[i] & 0xF]);
  }
  return text;
}

absl::StatusOr<ReservedKey> KeyStore::Reserve(uint32_t bits, const std::string& master_sae,
                                              const std::string& slave_sae) {
  if (bits == 0 || bits % 8 != 0 || bits > kMaxKeyBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("key size ", bits, " bits: a multiple of 8 from 8 to ", kMaxKeyBits));
  }
  for (Range& r : own_) {
    if (r.end - r.next < bits) continue;
    ReservedKey key;
    key.offset = r.next;
    key.length = bits;
    key.key = stream_.Slice(r.next, r.next + bits).ToBytes();
    key.master_sae = master_sae;
    key.slave_sae = slave_sae;
    key.key_id = KeyIdOf(key.offset, bits, master_sae, slave_sae);
    r.next += bits;
    reserved_bits_ += bits;
    ++reserved_keys_;
    return key;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no ", bits, "-bit key available (", available_bits(), " bits left)"));
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> KeyStore::Check(const std::string& key_id,
                                                              const std::string& caller_sae,
                                                              const std::string& master_sae) const {
  uint8_t b[16];
  if (!ParseUuid(key_id, b)) return absl::NotFoundError("key id is not a UUID");
  if ((b[6] & 0xF0) != 0x80 || (b[8] & 0xC0) != 0x80) {
    return absl::NotFoundError("key id of another KME");
  }
  uint64_t mac = 0, offset_bytes = 0;
  for (int i = 0; i < 6; ++i) mac = mac << 8 | b[i];
  mac = (mac << 4 | (b[6] & 0x0F)) << 8 | b[7];
  const uint32_t length_bytes = static_cast<uint32_t>(b[8] & 0x3F) << 8 | b[9];
  for (int i = 0; i < 6; ++i) offset_bytes = offset_bytes << 8 | b[10 + i];
  const uint64_t expected = Mac60(offset_bytes, length_bytes, master_sae, caller_sae);
  // Constant-time comparison of the 60-bit MACs.
  uint8_t got_mac[8], want_mac[8];
  for (int i = 0; i < 8; ++i) {
    got_mac[i] = static_cast<uint8_t>(mac >> (8 * i));
    want_mac[i] = static_cast<uint8_t>(expected >> (8 * i));
  }
  if (length_bytes == 0 || CRYPTO_memcmp(got_mac, want_mac, 8) != 0) {
    return absl::NotFoundError("key id not issued for this master and slave SAE");
  }
  const uint64_t begin = offset_bytes * 8, end = begin + uint64_t{length_bytes} * 8;
  const bool in_peer_share = std::any_of(
      peer_.begin(), peer_.end(), [&](const Range& r) { return r.begin <= begin && end <= r.end; });
  if (!in_peer_share) {
    return absl::NotFoundError(end > stream_.size() ? "key not here yet"
                                                    : "key id not from the peer KME");
  }
  // Any overlap with bits served before refuses the id.
  auto next = fetched_.lower_bound(end);
  if (next != fetched_.begin() && std::prev(next)->second > begin) {
    return absl::NotFoundError("key already delivered");
  }
  return std::make_pair(begin, end);
}

ReservedKey KeyStore::Serve(const std::string& key_id, uint64_t begin, uint64_t end,
                            const std::string& caller_sae, const std::string& master_sae) {
  fetched_[begin] = end;
  ++fetched_keys_;
  fetched_bits_ += end - begin;
  ReservedKey key;
  key.key_id = key_id;
  key.offset = begin;
  key.length = static_cast<uint32_t>(end - begin);
  key.key = stream_.Slice(begin, end).ToBytes();
  key.master_sae = master_sae;
  key.slave_sae = caller_sae;
  return key;
}

absl::Status KeyStore::CheckFetch(const std::string& key_id, const std::string& caller_sae,
                                  const std::string& master_sae) const {
  return Check(key_id, caller_sae, master_sae).status();
}

absl::StatusOr<ReservedKey> KeyStore::Fetch(const std::string& key_id,
                                            const std::string& caller_sae,
                                            const std::string& master_sae) {
  auto range = Check(key_id, caller_sae, master_sae);
  if (!range.ok()) {
    ++refused_fetches_;
    return range.status();
  }
  return Serve(key_id, range->first, range->second, caller_sae, master_sae);
}

absl::StatusOr<std::vector<ReservedKey>> KeyStore::FetchAll(const std::vector<std::string>& key_ids,
                                                            const std::string& caller_sae,
                                                            const std::string& master_sae) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const std::string& id : key_ids) {
    auto range = Check(id, caller_sae, master_sae);
    // Two ids of the request naming overlapping bits: the second is refused.
    if (range.ok()) {
      for (const auto& [b, e] : ranges) {
        if (b < range->second && range->first < e) {
          range = absl::NotFoundError("key named twice in the request");
          break;
        }
      }
    }
    if (!range.ok()) {
      ++refused_fetches_;
      return absl::NotFoundError(absl::StrCat(id, ": ", range.status().message()));
    }
    ranges.push_back(*range);
  }
  std::vector<ReservedKey> keys;
  keys.reserve(key_ids.size());
  for (size_t i = 0; i < key_ids.size(); ++i) {
    keys.push_back(Serve(key_ids[i], ranges[i].first, ranges[i].second, caller_sae, master_sae));
  }
  return keys;
}

absl::StatusOr<std::vector<ReservedKey>> KeyStore::ReserveMany(uint32_t number, uint32_t bits,
                                                               const std::string& master_sae,
                                                               const std::string& slave_sae) {
  const std::vector<Range> own_before = own_;
  const uint64_t reserved_bits_before = reserved_bits_, reserved_keys_before = reserved_keys_;
  std::vector<ReservedKey> keys;
  keys.reserve(number);
  for (uint32_t i = 0; i < number; ++i) {
    auto key = Reserve(bits, master_sae, slave_sae);
    if (!key.ok()) {
      own_ = own_before;
      reserved_bits_ = reserved_bits_before;
      reserved_keys_ = reserved_keys_before;
      return key.status();
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

}  // namespace qnet::qkd
