#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>

#include "imgdl/image_type.hpp"

namespace imgdl::detail {

/// How many leading bytes sniff_image_type() wants to see: enough for an SVG's XML prolog and a comment
/// or two. Binary formats need far fewer, so a shorter head (a small file) is fine. Thread-safe: pure.
std::size_t sniff_bytes_needed() noexcept;

/// Detects the image type from a file's first bytes (magic numbers; for SVG, the first element).
/// Bytes past sniff_bytes_needed() are ignored. A head too short to be sure of gives Unknown, never a
/// guess. Thread-safe: pure.
ImageType sniff_image_type(std::string_view head) noexcept;

/// Same as above, for raw bytes. Thread-safe: pure.
ImageType sniff_image_type(std::span<const std::byte> head) noexcept;

/// Every type a saved file can have, i.e. each with an extension_for(): a file planned without an
/// extension may be saved under any of theirs, so naming and on_exists look for each.
inline constexpr std::array image_types_with_extension{
    ImageType::Jpeg, ImageType::Png, ImageType::Gif,  ImageType::Webp, ImageType::Bmp,
    ImageType::Tiff, ImageType::Ico, ImageType::Avif, ImageType::Heic, ImageType::Svg};

/// The extensions extension_for() can return, i.e. what NamePlanner must reserve for a name that will
/// get its extension only after sniffing. Thread-safe: pure.
bool is_image_extension(std::string_view ext) noexcept;

/// The longest string extension_for() returns (".webp", ".tiff", ".avif", ".heic": 5 bytes).
inline constexpr std::size_t max_image_extension_bytes = 5;

}  // namespace imgdl::detail
