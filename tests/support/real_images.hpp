#pragma once
// The real images tests/data/images holds (made by real encoders: make_images.py there), and PNG chunks
// for images the tests build by hand. A test that includes this needs IMGDL_TEST_IMAGES defined.

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace imgdl::test {

/// The bytes of tests/data/images/<name>; fails the test when the file cannot be read.
inline std::string read_image(std::string_view name) {
  const std::string path = std::string(IMGDL_TEST_IMAGES) + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot open " << path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// One PNG chunk: length, type, data and a zero CRC (imgdl does not check CRCs).
inline std::string png_chunk(std::string_view type, std::string_view data) {
  std::string out;
  const auto n = static_cast<std::uint32_t>(data.size());
  out += {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
  out += type;
  out += data;
  out += std::string(4, '\0');
  return out;
}

}  // namespace imgdl::test
