#include "format.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <utility>

namespace imgdl::app {

std::string format_bytes(std::uint64_t bytes) {
  static constexpr std::array<const char*, 5> units = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024)
    return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  // Switch unit before printf would round 1023.96 up to "1024.0".
  while (value >= 1023.95 && unit + 1 < units.size()) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, units[unit]);
  return buf;
}

std::string cli_message(std::string_view message) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 2> flags = {{
      {"DownloadOptions::ca_file", "--cacert FILE"},
      {"DownloadOptions::insecure", "--insecure"},
  }};
  std::string out(message);
  for (const auto& [option, flag] : flags) {
    for (auto at = out.find(option); at != std::string::npos; at = out.find(option, at + flag.size()))
      out.replace(at, option.size(), flag);
  }
  return out;
}

std::string format_rate(double bytes, double seconds) {
  if (seconds <= 0.0)
    return "-";
  const double rate = bytes / seconds;
  return format_bytes(rate <= 0.0 ? 0 : static_cast<std::uint64_t>(std::llround(rate))) + "/s";
}

std::string format_seconds(double seconds, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, seconds);
  return buf;
}

std::string format_clock(double seconds) {
  const long total = seconds <= 0.0 ? 0 : std::lround(seconds);
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", total / 60, total % 60);
  }
  return buf;
}

double to_seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

namespace {
bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}
}  // namespace

std::size_t display_width(std::string_view text) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
      // A CSI sequence (colour) takes no columns: skip to its final byte.
      i += 2;
      while (i < text.size() && !(text[i] >= '@' && text[i] <= '~'))
        ++i;
      continue;
    }
    if (!is_continuation(text[i]))
      ++width;
  }
  return width;
}

std::string fit_width(std::string_view text, std::size_t width) {
  if (display_width(text) <= width)
    return std::string(text);
  if (width <= 3)
    return std::string(width, '.');
  std::size_t columns = 0;
  std::size_t end = 0;
  while (end < text.size()) {
    std::size_t next = end + 1;
    while (next < text.size() && is_continuation(text[next]))
      ++next;
    if (columns + 1 > width - 3)
      break;
    ++columns;
    end = next;
  }
  return std::string(text.substr(0, end)) + "...";
}

}  // namespace imgdl::app
