// BitVector: a packed string of bits for QKD post-processing (specs/qkd.md).
// Bit i lives in word i / 64 at position i % 64; bits past size() in the last
// word are always 0 (so word-wise parity and comparison are exact). The byte
// form (ToBytes/FromBytes) is the wire packing of specs/qkd.md QKD-W2: bit i
// is (bytes[i / 8] >> (i % 8)) & 1.
#ifndef QNET_APPS_QKD_POSTPROC_BITS_H_
#define QNET_APPS_QKD_POSTPROC_BITS_H_

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qnet::qkd {

class BitVector {
 public:
  BitVector() = default;
  explicit BitVector(size_t size) : size_(size), words_((size + 63) / 64, 0) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool Get(size_t i) const { return (words_[i >> 6] >> (i & 63)) & 1u; }
  void Set(size_t i, bool v) {
    const uint64_t m = uint64_t{1} << (i & 63);
    if (v) {
      words_[i >> 6] |= m;
    } else {
      words_[i >> 6] &= ~m;
    }
  }
  void Flip(size_t i) { words_[i >> 6] ^= uint64_t{1} << (i & 63); }
  void PushBack(bool v) {
    if ((size_ & 63) == 0) words_.push_back(0);
    ++size_;
    Set(size_ - 1, v);
  }
  void Append(const BitVector& other) {
    for (size_t i = 0; i < other.size_; ++i) PushBack(other.Get(i));
  }
  // Bits [begin, end).
  BitVector Slice(size_t begin, size_t end) const {
    BitVector out(end - begin);
    for (size_t i = begin; i < end; ++i) out.Set(i - begin, Get(i));
    return out;
  }
  // Parity of bits [begin, end).
  bool Parity(size_t begin, size_t end) const {
    uint64_t acc = 0;
    size_t i = begin;
    for (; i < end && (i & 63) != 0; ++i) acc ^= Get(i);
    for (; i + 64 <= end; i += 64) acc ^= static_cast<uint64_t>(std::popcount(words_[i >> 6]) & 1);
    for (; i < end; ++i) acc ^= Get(i);
    return acc & 1u;
  }
  size_t Count() const {
    size_t n = 0;
    for (uint64_t w : words_) n += std::popcount(w);
    return n;
  }
  // Number of positions where the two differ (sizes must match).
  size_t HammingDistance(const BitVector& other) const {
    size_t n = 0;
    for (size_t w = 0; w < words_.size(); ++w) n += std::popcount(words_[w] ^ other.words_[w]);
    return n;
  }
  const std::vector<uint64_t>& words() const { return words_; }
  std::vector<uint64_t>& mutable_words() { return words_; }

  std::string ToBytes() const {
    std::string out((size_ + 7) / 8, '\0');
    for (size_t b = 0; b < out.size(); ++b) {
      out[b] = static_cast<char>((words_[b / 8] >> (8 * (b % 8))) & 0xFF);
    }
    return out;
  }
  // `size` bits from `bytes`; bits beyond `size` are ignored. Returns false
  // (and leaves *out untouched) when `bytes` is too short.
  static bool FromBytes(std::string_view bytes, size_t size, BitVector* out) {
    if (bytes.size() < (size + 7) / 8) return false;
    BitVector v(size);
    for (size_t b = 0; b < (size + 7) / 8; ++b) {
      v.words_[b / 8] |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[b])) << (8 * (b % 8));
    }
    if (size & 63) v.words_.back() &= (uint64_t{1} << (size & 63)) - 1;
    *out = std::move(v);
    return true;
  }

  bool operator==(const BitVector& o) const { return size_ == o.size_ && words_ == o.words_; }

 private:
  size_t size_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace qnet::qkd

#endif  // QNET_APPS_QKD_POSTPROC_BITS_H_
