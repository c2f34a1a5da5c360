// SHA-256 over OpenSSL's EVP API.
#include <doctest/doctest.h>

#include <string>
#include <utility>

#include "sha256.hpp"

using imgdl::detail::Sha256;

TEST_CASE("Sha256 matches the FIPS 180-2 test vectors") {
  CHECK(Sha256::of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Sha256::of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256::of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("Sha256 fed in pieces equals the one-shot digest") {
  const std::string data(100000, 'a');
  Sha256 hasher;
  for (std::size_t i = 0; i < data.size(); i += 997) {
    hasher.update(std::string_view(data).substr(i, 997));
  }
  CHECK(hasher.hex_digest() == Sha256::of(data));
  CHECK(hasher.hex_digest().size() == 64);
}

TEST_CASE("Sha256::hex_digest does not finalize: hashing may continue") {
  Sha256 hasher;
  hasher.update("a");
  const std::string partial = hasher.hex_digest();
  CHECK(partial == Sha256::of("a"));
  hasher.update("bc");
  CHECK(hasher.hex_digest() == Sha256::of("abc"));
}

TEST_CASE("Sha256 hashes bytes and moves") {
  const std::byte abc[] = {std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
  Sha256 first;
  first.update(std::span<const std::byte>(abc));
  Sha256 second = std::move(first);
  CHECK(second.hex_digest() == Sha256::of("abc"));
  CHECK(Sha256::to_hex(Sha256::digest_of("abc")) == Sha256::of("abc"));
  Sha256 third;
  third = std::move(second);
  CHECK(third.hex_digest() == Sha256::of("abc"));
}
