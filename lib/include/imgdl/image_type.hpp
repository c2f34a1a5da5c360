#pragma once

#include <string_view>
#include "imgdl/export.hpp"

namespace imgdl {

/// The image formats imgdl recognises from a file's leading bytes (never from its URL or Content-Type).
enum class ImageType { Unknown, Jpeg, Png, Gif, Webp, Bmp, Tiff, Ico, Avif, Heic, Svg };

/// A lowercase name for logs and reports: "jpeg", "png", ..., "unknown". Thread-safe: pure.
[[nodiscard]] IMGDL_API std::string_view to_string(ImageType type) noexcept;

/// The file extension imgdl gives a saved file of this type, dot included: ".jpg", ".png", ".gif",
/// ".webp", ".bmp", ".tiff", ".ico", ".avif", ".heic", ".svg"; "" for Unknown. Thread-safe: pure.
[[nodiscard]] IMGDL_API std::string_view extension_for(ImageType type) noexcept;

}  // namespace imgdl
