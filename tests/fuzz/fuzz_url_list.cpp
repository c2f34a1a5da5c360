// libFuzzer: arbitrary bytes as a URL list; accepted lines must be in order, non-empty, blank-free URLs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "imgdl/url_list.hpp"

namespace {

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<imgdl::UrlLineError> errors;
  const auto lines = imgdl::parse_url_list(text, &errors);
  std::size_t last = 0;
  for (const auto& line : lines) {
    check(line.line_number > last);
    last = line.line_number;
    check(!line.url.empty());
    check(line.url.size() <= imgdl::UrlListReader::max_line_bytes);
    for (const char c : line.url) {
      const auto u = static_cast<unsigned char>(c);
      check(u > 0x20 && u != 0x7F);
    }
  }
  std::size_t last_error = 0;
  for (const auto& e : errors) {
    check(e.line_number > last_error);
    last_error = e.line_number;
    check(!e.message.empty());
    for (const char c : e.text) {
      const auto u = static_cast<unsigned char>(c);
      check(u >= 0x20 && u != 0x7F);  // display-safe
    }
  }
  return 0;
}
