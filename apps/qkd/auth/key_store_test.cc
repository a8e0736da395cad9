// Tests of the key store and its self-describing key ids (specs/qkd.md QKD-K*).
#include "apps/qkd/auth/key_store.h"

#include <cctype>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace qnet::qkd {
namespace {

const std::string kPsk(8200, '\x5a');

BitVector RandomBits(size_t n, uint32_t seed) {
  std::mt19937_64 gen(seed);
  BitVector v(n);
  for (size_t i = 0; i < n; ++i) v.Set(i, gen() & 1);
  return v;
}

struct Ends {
  KeyStore alice{"s1", true, kPsk};
  KeyStore bob{"s1", false, kPsk};
  void Append(const BitVector& key) {
    alice.Append(key);
    bob.Append(key);
  }
};

// QKD-K1, QKD-K2: both ends hold the same stream after the same appends.
TEST(KeyStoreTest, QkdK1StreamEqualAtBothEnds) {
  Ends e;
  const BitVector k1 = RandomBits(1024, 1), k2 = RandomBits(2048, 2);
  e.Append(k1);
  e.Append(k2);
  EXPECT_EQ(e.alice.total_bits(), 3072u);
  EXPECT_EQ(e.alice.StreamBytes(), e.bob.StreamBytes());
  BitVector both = k1;
  both.Append(k2);
  EXPECT_EQ(e.alice.StreamBytes(), both.ToBytes());
  // QKD-K3: half of each block per end.
  EXPECT_EQ(e.alice.available_bits(), 1536u);
  EXPECT_EQ(e.bob.available_bits(), 1536u);
  EXPECT_EQ(e.bob.peer_unfetched_bits(), 1536u);
}

// QKD-K2: a block that is not a multiple of 16 bits is cut to one.
TEST(KeyStoreTest, QkdK2AppendKeepsMultipleOf16) {
  KeyStore s("s1", true, kPsk);
  s.Append(RandomBits(1000 + 15, 3));
  EXPECT_EQ(s.total_bits(), 1008u);
  EXPECT_EQ(s.available_bits(), 504u);
  s.Append(RandomBits(15, 4));
  EXPECT_EQ(s.total_bits(), 1008u);
}

// QKD-K4, QKD-K8: Alice reserves, Bob fetches the same bytes once.
TEST(KeyStoreTest, QkdK8AliceReservesBobFetchesOnce) {
  Ends e;
  const BitVector k = RandomBits(2048, 5);
  e.Append(k);
  auto r = e.alice.Reserve(256, "saeA", "saeB");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->offset, 0u);  // Alice's share starts the block
  EXPECT_EQ(r->length, 256u);
  EXPECT_EQ(r->key, k.Slice(0, 256).ToBytes());
  EXPECT_EQ(r->key.size(), 32u);
  auto f = e.bob.Fetch(r->key_id, "saeB", "saeA");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->key, r->key);
  EXPECT_EQ(f->key_id, r->key_id);
  EXPECT_EQ(f->master_sae, "saeA");
  EXPECT_EQ(f->slave_sae, "saeB");
  EXPECT_EQ(e.bob.fetched_keys(), 1u);
  // QKD-K9: never twice.
  EXPECT_EQ(e.bob.Fetch(r->key_id, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e.bob.refused_fetches(), 1u);
  EXPECT_EQ(e.bob.fetched_keys(), 1u);
  // The next reservation follows in stream order.
  auto r2 = e.alice.Reserve(64, "saeA", "saeB");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->offset, 256u);
  EXPECT_EQ(e.alice.reserved_bits(), 320u);
  EXPECT_EQ(e.alice.available_bits(), 1024u - 320u);
}

// QKD-K3, QKD-K4: Bob reserves from the second half; Alice serves it.
TEST(KeyStoreTest, QkdK4BobReservesAliceFetches) {
  Ends e;
  const BitVector k = RandomBits(2048, 6);
  e.Append(k);
  auto r = e.bob.Reserve(512, "saeB", "saeA");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->offset, 1024u);
  EXPECT_EQ(r->key, k.Slice(1024, 1536).ToBytes());
  auto f = e.alice.Fetch(r->key_id, "saeA", "saeB");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->key, r->key);
}

// QKD-K7: the byte layout of the id.
TEST(KeyStoreTest, QkdK7IdLayout) {
  KeyStore s("s1", true, kPsk);
  const std::string id = s.KeyIdOf(8 * 0x123456789aull, 256, "m", "sl");
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[8], '-');
  EXPECT_EQ(id[13], '-');
  EXPECT_EQ(id[14], '8');                    // version nibble 8
  EXPECT_EQ(id.substr(19, 4), "8020");       // variant 10, 32 bytes
  EXPECT_EQ(id.substr(24), "00123456789a");  // offset in bytes
  // The MAC depends on every input.
  EXPECT_NE(id, s.KeyIdOf(8 * 0x123456789aull, 256, "m", "sl2"));
  EXPECT_NE(id, s.KeyIdOf(8 * 0x123456789aull, 256, "m2", "sl"));
  EXPECT_NE(id.substr(0, 18), s.KeyIdOf(8 * 0x123456789bull, 256, "m", "sl").substr(0, 18));
  EXPECT_NE(id.substr(0, 18), s.KeyIdOf(8 * 0x123456789aull, 264, "m", "sl").substr(0, 18));
  KeyStore other_session("s2", true, kPsk);
  EXPECT_NE(id, other_session.KeyIdOf(8 * 0x123456789aull, 256, "m", "sl"));
  KeyStore other_psk("s1", true, std::string(8200, 'x'));
  EXPECT_NE(id, other_psk.KeyIdOf(8 * 0x123456789aull, 256, "m", "sl"));
  // Length-prefixed SAE names: moving a character between them changes the id.
  EXPECT_NE(s.KeyIdOf(0, 256, "ab", "c"), s.KeyIdOf(0, 256, "a", "bc"));
  // Largest length: 16383 bytes.
  EXPECT_EQ(s.KeyIdOf(0, KeyStore::kMaxKeyBits, "m", "s").substr(19, 4), "bfff");
}

// QKD-K8: another SAE, a wrong master, a tampered id: NOT_FOUND, nothing served.
TEST(KeyStoreTest, QkdK8WrongSaeOrTamperedIdRefused) {
  Ends e;
  e.Append(RandomBits(2048, 7));
  auto r = e.alice.Reserve(256, "saeA", "saeB");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(e.bob.Fetch(r->key_id, "saeC", "saeA").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e.bob.Fetch(r->key_id, "saeB", "saeX").status().code(), absl::StatusCode::kNotFound);
  for (size_t i = 0; i < r->key_id.size(); ++i) {
    if (r->key_id[i] == '-') continue;
    std::string t = r->key_id;
    t[i] = t[i] == '0' ? '1' : '0';
    EXPECT_EQ(e.bob.Fetch(t, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound) << t;
  }
  for (const std::string bad : {"", "not-a-uuid", "00000000-0000-0000-0000-000000000000",
                                "00000000-0000-8000-8020-000000000000"}) {
    EXPECT_EQ(e.bob.Fetch(bad, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
  }
  EXPECT_EQ(e.bob.fetched_keys(), 0u);
  EXPECT_GE(e.bob.refused_fetches(), 2u + 32u + 4u);
  // The genuine id still works once, in either case (QKD-K7), and a replay in
  // the other spelling is refused (QKD-K9).
  std::string upper = r->key_id;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_TRUE(e.bob.Fetch(upper, "saeB", "saeA").ok());
  EXPECT_EQ(e.bob.Fetch(r->key_id, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
}

// QKD-K8: an id from this end's own share is not served here.
TEST(KeyStoreTest, QkdK8OwnShareIdRefused) {
  Ends e;
  e.Append(RandomBits(2048, 8));
  auto r = e.alice.Reserve(256, "saeA", "saeB");
  ASSERT_TRUE(r.ok());
  // Alice's own id, asked at Alice (even by the right slave and master).
  EXPECT_EQ(e.alice.Fetch(r->key_id, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
  // A correctly MAC'd id straddling the two shares is refused too.
  const std::string straddle = e.alice.KeyIdOf(1024 - 64, 128, "saeA", "saeB");
  EXPECT_EQ(e.bob.Fetch(straddle, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
  // Bits past the end of the stream.
  const std::string beyond = e.alice.KeyIdOf(2048, 256, "saeA", "saeB");
  EXPECT_EQ(e.bob.Fetch(beyond, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
}

// QKD-K8: an id reserved ahead of the peer's append is served after it.
TEST(KeyStoreTest, QkdK8FetchBeforeAppendThenAfter) {
  KeyStore alice("s1", true, kPsk), bob("s1", false, kPsk);
  const BitVector k1 = RandomBits(1024, 9), k2 = RandomBits(1024, 10);
  alice.Append(k1);
  bob.Append(k1);
  alice.Append(k2);                             // Bob has not appended block 2 yet
  auto a = alice.Reserve(512, "saeA", "saeB");  // all of Alice's share of block 1
  auto r = alice.Reserve(256, "saeA", "saeB");  // from block 2
  ASSERT_TRUE(a.ok() && r.ok());
  EXPECT_EQ(r->offset, 1024u);
  EXPECT_EQ(bob.Fetch(r->key_id, "saeB", "saeA").status().code(), absl::StatusCode::kNotFound);
  bob.Append(k2);
  auto f = bob.Fetch(r->key_id, "saeB", "saeA");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->key, k2.Slice(0, 256).ToBytes());
}

// QKD-K5: beyond the share RESOURCE_EXHAUSTED and nothing taken.
TEST(KeyStoreTest, QkdK5ReserveBeyondShare) {
  Ends e;
  e.Append(RandomBits(1024, 11));  // 512 bits per end
  EXPECT_EQ(e.alice.Reserve(520, "a", "b").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(e.alice.available_bits(), 512u);
  EXPECT_EQ(e.alice.reserved_bits(), 0u);
  ASSERT_TRUE(e.alice.Reserve(256, "a", "b").ok());
  ASSERT_TRUE(e.alice.Reserve(192, "a", "b").ok());
  EXPECT_EQ(e.alice.Reserve(128, "a", "b").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(e.alice.available_bits(), 64u);
  ASSERT_TRUE(e.alice.Reserve(64, "a", "b").ok());
  EXPECT_EQ(e.alice.available_bits(), 0u);
  EXPECT_EQ(e.alice.reserved_keys(), 3u);
  // Bad sizes.
  EXPECT_EQ(e.bob.Reserve(0, "b", "a").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.bob.Reserve(12, "b", "a").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.bob.Reserve(KeyStore::kMaxKeyBits + 8, "b", "a").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.bob.available_bits(), 512u);
}

// QKD-K4: a request that does not fit the rest of one block takes the next
// block with room; the rest stays for smaller requests.
TEST(KeyStoreTest, QkdK4ReserveFirstFitInStreamOrder) {
  Ends e;
  e.Append(RandomBits(1024, 12));  // Alice: [0, 512)
  e.Append(RandomBits(1024, 13));  // Alice: [1024, 1536)
  ASSERT_TRUE(e.alice.Reserve(384, "a", "b").ok());
  auto big = e.alice.Reserve(256, "a", "b");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->offset, 1024u);
  auto small = e.alice.Reserve(128, "a", "b");
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->offset, 384u);
  // Every reserved key is fetched at Bob with the same bytes.
  for (const auto* k : {&*big, &*small}) {
    auto f = e.bob.Fetch(k->key_id, "b", "a");
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->key, k->key);
  }
}

// Many keys through both KMEs: no byte handed out twice, all match.
TEST(KeyStoreTest, QkdK9ManyKeysEachOnce) {
  Ends e;
  for (uint32_t b = 0; b < 8; ++b) e.Append(RandomBits(4096, 100 + b));
  std::mt19937 gen(1);
  int served = 0;
  for (int i = 0; i < 200; ++i) {
    const bool from_alice = gen() & 1;
    const uint32_t bits = 8 * (1 + gen() % 64);
    KeyStore& master = from_alice ? e.alice : e.bob;
    KeyStore& slave = from_alice ? e.bob : e.alice;
    auto r = master.Reserve(bits, "m", "s");
    if (!r.ok()) continue;
    auto f = slave.Fetch(r->key_id, "s", "m");
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->key, r->key);
    EXPECT_FALSE(slave.Fetch(r->key_id, "s", "m").ok());
    ++served;
  }
  EXPECT_EQ(static_cast<uint64_t>(served), e.alice.fetched_keys() + e.bob.fetched_keys());
  EXPECT_EQ(e.alice.reserved_bits() + e.alice.available_bits(), 8u * 2048);
  EXPECT_EQ(e.bob.peer_unfetched_bits(), e.alice.available_bits());
}

// QKD-K5: several keys all or nothing.
TEST(KeyStoreTest, QkdK5ReserveManyAllOrNothing) {
  Ends e;
  e.Append(RandomBits(2048, 20));  // 1024 bits per end
  EXPECT_EQ(e.alice.ReserveMany(5, 256, "a", "b").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(e.alice.available_bits(), 1024u);
  EXPECT_EQ(e.alice.reserved_keys(), 0u);
  auto keys = e.alice.ReserveMany(4, 256, "a", "b");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 4u);
  EXPECT_EQ((*keys)[3].offset, 768u);
  EXPECT_EQ(e.alice.available_bits(), 0u);
  // QKD-K9: the slave fetches them all at once, and no id twice.
  std::vector<std::string> ids;
  for (const auto& k : *keys) ids.push_back(k.key_id);
  auto got = e.bob.FetchAll(ids, "b", "a");
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ((*got)[i].key, (*keys)[i].key);
  EXPECT_EQ(e.bob.FetchAll({ids[0]}, "b", "a").status().code(), absl::StatusCode::kNotFound);
}

// QKD-K8, QKD-K9: FetchAll serves nothing when one id is refused or repeated.
TEST(KeyStoreTest, QkdK9FetchAllAllOrNothing) {
  Ends e;
  e.Append(RandomBits(2048, 21));
  auto keys = e.alice.ReserveMany(2, 128, "a", "b");
  ASSERT_TRUE(keys.ok());
  const std::string id0 = (*keys)[0].key_id, id1 = (*keys)[1].key_id;
  EXPECT_EQ(e.bob.FetchAll({id0, id0}, "b", "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e.bob.FetchAll({id0, "bogus"}, "b", "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e.bob.fetched_keys(), 0u);
  EXPECT_EQ(e.bob.refused_fetches(), 2u);
  // CheckFetch changes and counts nothing.
  EXPECT_TRUE(e.bob.CheckFetch(id1, "b", "a").ok());
  EXPECT_EQ(e.bob.CheckFetch(id1, "c", "a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e.bob.refused_fetches(), 2u);
  auto got = e.bob.FetchAll({id1, id0}, "b", "a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].key, (*keys)[1].key);
  EXPECT_EQ(e.bob.fetched_keys(), 2u);
  EXPECT_EQ(e.bob.CheckFetch(id1, "b", "a").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qnet::qkd
