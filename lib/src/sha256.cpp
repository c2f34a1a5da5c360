#include "sha256.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace imgdl::detail {
namespace {

// OpenSSL 3 resolves sha256_md() in the provider store, under a lock, on every digest init unless
// the algorithm was fetched explicitly. Fetch it once per process; it lives until exit on purpose.
const EVP_MD* sha256_md() {
  static EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) {
      throw std::runtime_error("sha256: EVP_MD_fetch(SHA256) failed");
    }
    return fetched;
  }();
  return md;
}

}  // namespace

void Sha256::CtxDeleter::operator()(evp_md_ctx_st* ctx) const noexcept {
  EVP_MD_CTX_free(ctx);
}

// The context is made at the first update(): a Downloader keeps a hasher per URL, and most runs never
// hash (the CLI hashes only for a report).
Sha256::Sha256() = default;

evp_md_ctx_st* Sha256::context() {
  if (!ctx_) {
    std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx) {
      throw std::runtime_error("sha256: EVP_MD_CTX_new failed");
    }
    if (EVP_DigestInit_ex(ctx.get(), sha256_md(), nullptr) != 1) {
      throw std::runtime_error("sha256: EVP_DigestInit_ex failed");
    }
    ctx_ = std::move(ctx);
  }
  return ctx_.get();
}

void Sha256::update(std::string_view data) {
  if (EVP_DigestUpdate(context(), data.data(), data.size()) != 1) {
    throw std::runtime_error("sha256: EVP_DigestUpdate failed");
  }
}

void Sha256::update(std::span<const std::byte> data) {
  if (EVP_DigestUpdate(context(), data.data(), data.size()) != 1) {
    throw std::runtime_error("sha256: EVP_DigestUpdate failed");
  }
}

Sha256::Digest Sha256::digest() const {
  if (!ctx_) {
    return digest_of({});
  }
  // Finalize a copy so this hasher can keep going (e.g. a digest of a partial download).
  const std::unique_ptr<evp_md_ctx_st, CtxDeleter> copy(EVP_MD_CTX_new());
  if (!copy || EVP_MD_CTX_copy_ex(copy.get(), ctx_.get()) != 1) {
    throw std::runtime_error("sha256: EVP_MD_CTX_copy_ex failed");
  }
  Digest out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(copy.get(), out.data(), &len) != 1 || len != out.size()) {
    throw std::runtime_error("sha256: EVP_DigestFinal_ex failed");
  }
  return out;
}

std::string Sha256::hex_digest() const {
  return to_hex(digest());
}

Sha256::Digest Sha256::digest_of(std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, sha256_md(), nullptr) != 1 ||
      len != out.size()) {
    throw std::runtime_error("sha256: EVP_Digest failed");
  }
  return out;
}

std::string Sha256::of(std::string_view data) {
  return to_hex(digest_of(data));
}

std::string Sha256::to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0F]);
  }
  return out;
}

}  // namespace imgdl::detail
