#pragma once
// SipHash-2-4 with a 128-bit result (Aumasson and Bernstein, 2012): a keyed hash. With a secret random
// key, nobody who sees only the inputs can pick two that collide, which a plain fast hash (FNV, xxHash)
// does not promise, and it costs tens of nanoseconds where a one-shot SHA-256 through OpenSSL's EVP
// layer allocates a context per call.

#include <cstdint>
#include <string_view>

namespace imgdl::detail {

struct SipKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
  /// A key from the system's random source (getrandom). Throws std::runtime_error if it has none.
  static SipKey random();
};

struct SipDigest {
  std::uint64_t first = 0;   ///< the first 8 output bytes, little-endian
  std::uint64_t second = 0;  ///< the last 8 output bytes, little-endian
};

/// SipHash-2-4-128 of `data` under `key`. Pure and thread-safe.
SipDigest siphash128(const SipKey& key, std::string_view data) noexcept;

}  // namespace imgdl::detail
