// libFuzzer: arbitrary bytes as a URL; whatever parse_url accepts must get a safe file name, and its
// fast path must parse exactly as CURLU does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "naming.hpp"

namespace {

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = b0 < 0x80                    ? 1
                      : (b0 >= 0xC2 && b0 <= 0xDF) ? 2
                      : (b0 >= 0xE0 && b0 <= 0xEF) ? 3
                      : (b0 >= 0xF0 && b0 <= 0xF4) ? 4
                                                   : 0;
    if (len == 0 || i + len > s.size()) {
      return false;
    }
    const auto b1 = len > 1 ? static_cast<unsigned char>(s[i + 1]) : 0x80;
    if ((b0 == 0xE0 && b1 < 0xA0) || (b0 == 0xED && b1 > 0x9F) || (b0 == 0xF0 && b1 < 0x90) ||
        (b0 == 0xF4 && b1 > 0x8F)) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        return false;
      }
    }
    i += len;
  }
  return true;
}

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

void check_name(const std::string& name, std::size_t max_bytes) {
  check(!name.empty());
  check(name.size() <= max_bytes);
  check(name.front() != '.');
  check(name.find('/') == std::string::npos);
  check(name.find('\\') == std::string::npos);
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    check(u >= 0x20 && u != 0x7F);
  }
  check(valid_utf8(name));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string error;
  // The fast path must agree with CURLU on every URL it accepts.
  if (const auto simple = imgdl::detail::parse_simple_url(input)) {
    check(imgdl::detail::parse_url_with_curlu(input, nullptr) == simple);
  }
  const auto url = imgdl::detail::parse_url(input, &error);
  if (!url) {
    check(!error.empty());
    return 0;
  }
  const std::string name = imgdl::detail::filename_from_url(*url);
  check_name(name, imgdl::detail::max_name_bytes);
  if (!imgdl::detail::has_extension(name)) {
    check(name.size() <= imgdl::detail::max_bare_name_bytes);
  }
  check_name(imgdl::detail::with_extension_for(name, ".webp"), imgdl::detail::max_name_bytes);
  check_name(imgdl::detail::next_free_name(name, 123), imgdl::detail::max_name_bytes);
  // Deterministic: the same URL always gets the same name.
  check(imgdl::detail::filename_from_url(*url) == name);
  return 0;
}
