#pragma once

#include <string_view>
#include "imgdl/export.hpp"

namespace imgdl {

/// The library's version, "MAJOR.MINOR.PATCH", from the one number in CMake's project().
/// Thread-safe: returns a view of a static string.
[[nodiscard]] IMGDL_API std::string_view version() noexcept;

/// The version of the libcurl imgdl runs with, e.g. "7.88.1". Thread-safe.
[[nodiscard]] IMGDL_API std::string_view libcurl_version() noexcept;

/// The project's home page, used in the default User-Agent. Thread-safe.
[[nodiscard]] IMGDL_API std::string_view project_url() noexcept;

}  // namespace imgdl
