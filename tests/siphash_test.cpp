// SipHash-2-4-128, the name planner's keyed digest.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>

#include "siphash.hpp"

using imgdl::detail::SipDigest;
using imgdl::detail::siphash128;
using imgdl::detail::SipKey;

namespace {

// The reference key 00 01 .. 0f, as the two little-endian words SipHash reads.
constexpr SipKey kReferenceKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

std::array<std::uint8_t, 16> bytes_of(const SipDigest& d) {
  std::array<std::uint8_t, 16> out{};
  for (std::size_t i = 0; i < 8; ++i) {
    out[i] = static_cast<std::uint8_t>(d.first >> (8 * i));
    out[8 + i] = static_cast<std::uint8_t>(d.second >> (8 * i));
  }
  return out;
}

std::string message_of_length(std::size_t n) {
  std::string m;
  for (std::size_t i = 0; i < n; ++i)
    m.push_back(static_cast<char>(i));
  return m;
}

}  // namespace

TEST_CASE("siphash128 matches the reference implementation's vectors") {
  using Bytes = std::array<std::uint8_t, 16>;
  SUBCASE("empty message") {
    CHECK(bytes_of(siphash128(kReferenceKey, "")) == Bytes{0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                                           0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93});
  }
  SUBCASE("one byte") {
    CHECK(bytes_of(siphash128(kReferenceKey, message_of_length(1))) ==
          Bytes{0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc,
                0x45});
  }
  SUBCASE("a partial last word") {
    CHECK(bytes_of(siphash128(kReferenceKey, message_of_length(3))) ==
          Bytes{0x9c, 0x70, 0xb6, 0x0c, 0x52, 0x67, 0xa9, 0x4e, 0x5f, 0x33, 0xb6, 0xb0, 0x29, 0x85, 0xed,
                0x51});
  }
  SUBCASE("a whole word and a partial one") {
    CHECK(bytes_of(siphash128(kReferenceKey, message_of_length(15))) ==
          Bytes{0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3,
                0xd9});
  }
}

TEST_CASE("siphash128 depends on the key, and random keys differ") {
  const SipKey a = SipKey::random();
  const SipKey b = SipKey::random();
  REQUIRE((a.k0 != b.k0 || a.k1 != b.k1));
  const SipDigest under_a = siphash128(a, "http://example.com/cat.jpg");
  const SipDigest under_b = siphash128(b, "http://example.com/cat.jpg");
  CHECK((under_a.first != under_b.first || under_a.second != under_b.second));
  const SipDigest again = siphash128(a, "http://example.com/cat.jpg");
  CHECK(again.first == under_a.first);
  CHECK(again.second == under_a.second);
}
