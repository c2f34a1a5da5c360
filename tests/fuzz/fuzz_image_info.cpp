// libFuzzer: arbitrary bytes as an image body. The inspector must not crash or read past its input,
// must read the same whatever the chunking, and must never call a prefix shorter than the bytes it
// said it needs complete.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "image_info.hpp"
#include "image_type.hpp"

namespace {

void check(bool ok) {
  if (!ok)
    std::abort();
}

imgdl::detail::ImageInspector inspect(std::string_view bytes, imgdl::ImageType type, std::size_t chunk) {
  imgdl::detail::ImageInspector inspector(type);
  for (std::size_t at = 0; at < bytes.size(); at += chunk)
    inspector.feed(bytes.substr(at, chunk));
  return inspector;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1)
    return 0;
  // The first byte picks the chunk size; the rest is the body, its type told as the engine tells it.
  const std::size_t chunk = 1 + data[0] % 17;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const imgdl::ImageType type = imgdl::detail::sniff_image_type(body);
  const auto whole = inspect(body, type, body.size() + 1);
  const auto pieces = inspect(body, type, chunk);
  check(whole.facts().width == pieces.facts().width && whole.facts().height == pieces.facts().height);
  check(whole.facts().orientation == pieces.facts().orientation);
  check(whole.incompleteness() == pieces.incompleteness());
  check(whole.bytes_seen() == body.size());
  if (const auto needed = whole.needed_bytes(); needed && *needed > 0 && *needed <= body.size())
    check(inspect(body.substr(0, *needed - 1), type, chunk).incompleteness().has_value());
  return 0;
}
