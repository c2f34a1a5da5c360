#pragma once
// Reading fixed-width integers from raw bytes, as file formats store them: for the image sniffer and
// the image inspector. The caller checks the bounds. Thread-safe: pure.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace imgdl::detail {

inline std::uint8_t byte_at(std::string_view s, std::size_t i) noexcept {
  return static_cast<std::uint8_t>(s[i]);
}
inline std::uint32_t be16(std::string_view s, std::size_t i) noexcept {
  return (std::uint32_t{byte_at(s, i)} << 8) | byte_at(s, i + 1);
}
inline std::uint32_t le16(std::string_view s, std::size_t i) noexcept {
  return std::uint32_t{byte_at(s, i)} | (std::uint32_t{byte_at(s, i + 1)} << 8);
}
inline std::uint32_t le24(std::string_view s, std::size_t i) noexcept {
  return le16(s, i) | (std::uint32_t{byte_at(s, i + 2)} << 16);
}
inline std::uint32_t be32(std::string_view s, std::size_t i) noexcept {
  return (be16(s, i) << 16) | be16(s, i + 2);
}
inline std::uint32_t le32(std::string_view s, std::size_t i) noexcept {
  return le16(s, i) | (le16(s, i + 2) << 16);
}
inline std::uint64_t be64(std::string_view s, std::size_t i) noexcept {
  return (std::uint64_t{be32(s, i)} << 32) | be32(s, i + 4);
}

/// XML's white space (the SVG sniffer and the inspector's attribute reading share it).
inline bool is_xml_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/// `s` without XML white space at either end.
inline std::string_view trim_xml_space(std::string_view s) noexcept {
  while (!s.empty() && is_xml_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_xml_space(s.back()))
    s.remove_suffix(1);
  return s;
}

}  // namespace imgdl::detail
