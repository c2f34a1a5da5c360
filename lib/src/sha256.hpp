#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace imgdl::detail {

/// Incremental SHA-256 over OpenSSL 3's EVP API.
/// Thread-safety: one object per thread (or external locking); distinct objects are independent.
/// Errors (allocation failure inside OpenSSL) throw std::runtime_error. A moved-from hasher may only be
/// assigned to or destroyed.
class Sha256 {
 public:
  using Digest = std::array<std::uint8_t, 32>;

  /// Cheap: the OpenSSL context is made at the first update() (throws std::runtime_error if it cannot be).
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;
  ~Sha256() = default;

  /// Feeds more data.
  void update(std::string_view data);
  void update(std::span<const std::byte> data);

  /// The digest of everything fed so far. Does not finalize: update() may continue afterwards.
  Digest digest() const;

  /// digest() as 64 lowercase hex characters.
  std::string hex_digest() const;

  /// One-shot helpers. Thread-safe.
  static Digest digest_of(std::string_view data);
  static std::string of(std::string_view data);

  /// Lowercase hex of any byte string. Thread-safe: pure.
  static std::string to_hex(std::span<const std::uint8_t> bytes);

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const noexcept;
  };
  evp_md_ctx_st* context();
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
};

}  // namespace imgdl::detail
