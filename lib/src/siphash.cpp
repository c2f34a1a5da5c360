#include "siphash.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace imgdl::detail {
namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) noexcept {
  return (x << b) | (x >> (64 - b));
}

struct State {
  std::uint64_t v0, v1, v2, v3;

  void round() noexcept {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
  void absorb(std::uint64_t m) noexcept {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t squeeze(std::uint64_t marker) noexcept {
    v2 ^= marker;
    for (int i = 0; i < 4; ++i)
      round();
    return v0 ^ v1 ^ v2 ^ v3;
  }
};

std::uint64_t load_le(const char* p, std::size_t n) noexcept {
  std::uint64_t m = 0;
  for (std::size_t i = 0; i < n; ++i)
    m |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return m;
}

}  // namespace

SipKey SipKey::random() {
  SipKey key;
  std::uint64_t words[2];
  std::size_t got = 0;
  while (got < sizeof words) {
    const auto n = ::getrandom(reinterpret_cast<char*>(words) + got, sizeof words - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  key.k0 = words[0];
  key.k1 = words[1];
  return key;
}

SipDigest siphash128(const SipKey& key, std::string_view data) noexcept {
  State s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL ^ 0xee,
          key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
  const char* p = data.data();
  std::size_t left = data.size();
  for (; left >= 8; p += 8, left -= 8)
    s.absorb(load_le(p, 8));
  s.absorb(load_le(p, left) | (static_cast<std::uint64_t>(data.size() & 0xff) << 56));
  SipDigest d;
  d.first = s.squeeze(0xee);
  s.v1 ^= 0xdd;
  d.second = s.squeeze(0);
  return d;
}

}  // namespace imgdl::detail
