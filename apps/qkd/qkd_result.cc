// QkdSession's result JSON (specs/qkd.md section 10, QKD-R*).
#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "apps/lib/requests.h"
#include "apps/qkd/qkd_session_impl.h"

namespace qnet::qkd {
namespace {

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(size)));
}

}  // namespace

std::string QkdSession::Impl::ResultJson() const {
  const QkdResult& r = session_->result_;
  apps::JsonObject json;
  json.Add("app", "qkd")
      .Add("role", alice() ? "a" : "b")
      .Add("session", options_.session)
      .Add("node", options_.node)
      .Add("peer", options_.peer)
      .Add("from", alice() ? options_.node : options_.peer)
      .Add("to", alice() ? options_.peer : options_.node)
      .AddRaw("ok", session_->status_.ok() && session_->done_ ? "true" : "false")
      .Add("error", std::string(session_->status_.message()))
      .AddRaw("aborted", r.aborted ? "true" : "false")
      .Add("abort_reason", r.abort_reason)
      .Add("pairs", r.pairs)
      .Add("expired_pairs", r.expired_pairs)
      .Add("sift_ranges", r.sift_ranges)
      .Add("sifted_bits", r.sifted_bits)
      .Add("x_test_bits", r.x_test_bits)
      .Add("z_errors", r.z_errors)
      .Add("z_sampled", r.z_sampled)
      .Add("x_errors", r.x_errors)
      .Add("qber_z", r.qber_z)
      .Add("qber_x", r.qber_x)
      .Add("blocks", r.blocks)
      .Add("blocks_failed_verification", r.blocks_failed_verification)
      .Add("blocks_without_x_test", r.blocks_without_x_test)
      .Add("leftover_bits", r.leftover_bits)
      .Add("corrected_bits", r.corrected_bits)
      .Add("bits_flipped", r.bits_flipped)
      .Add("disclosed_bits", r.disclosed_bits)
      .Add("cascade_rounds", uint64_t{r.cascade_rounds})
      .Add("ec_efficiency", r.ec_efficiency)
      .Add("secret_bits", r.secret_bits)
      .Add("secret_fraction",
           r.sifted_bits ? static_cast<double>(r.secret_bits) / static_cast<double>(r.sifted_bits)
                         : 0.0)
      .Add("auth_bits_consumed", r.auth_bits_consumed)
      .Add("auth_bits_refilled", r.auth_bits_refilled)
      .Add("stored_key_bits", r.stored_key_bits)
      .Add("first_pair_s", r.first_pair_s)
      .Add("last_block_s", r.last_block_s)
      .Add("key_rate_bps", r.key_rate_bps)
      .Add("bad_frames", r.bad_frames)
      .Add("key_sha256", Sha256Hex(session_->key_store_->StreamBytes()));
  return json.ToString();
}

}  // namespace qnet::qkd
