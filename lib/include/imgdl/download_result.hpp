#pragma once
// imgdl::DownloadResult: what became of one URL. A failed download is a value, not an exception.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "imgdl/export.hpp"
#include "imgdl/image_type.hpp"

namespace imgdl {

/// The outcome of one URL. Skipped counts as success (the file was already there, or the URL was a
/// duplicate of an earlier one in the same run).
enum class DownloadStatus { Ok, Skipped, Failed, Cancelled };

/// Why a download failed; ErrorKind::None when it did not.
enum class ErrorKind {
  None,
  InvalidUrl,         ///< not an http(s) URL
  Dns,                ///< the host name did not resolve
  Connect,            ///< connection refused or unreachable
  Tls,                ///< certificate verification or handshake failed
  Timeout,            ///< connect timeout, whole-transfer timeout or the low-speed limit
  HttpStatus,         ///< the server answered with a non-success status
  TooManyRedirects,   ///< more redirects than max_redirects (or a loop)
  ForbiddenRedirect,  ///< a redirect to a scheme other than http or https
  TooLarge,           ///< Content-Length or the streamed body exceeded max_file_size
  NotImage,           ///< the body's magic bytes are not a known image format
  CorruptImage,       ///< the image's own structure is cut short or broken (transient: retried)
  Filtered,           ///< the image's size is outside min_width/min_height, max_pixels or max_aspect
  Empty,              ///< the server sent no body
  Truncated,          ///< the connection ended before the announced body did
  Network,            ///< any other transport failure (reset, protocol error)
  Write,              ///< the file could not be created or written (permissions, full disk)
  Cancelled,          ///< stopped on request
  HostUnreachable,    ///< its host failed DownloadOptions::unreachable_after connects in a row: not
                      ///< tried (or not retried); the message names the host
};

/// The result of one URL, complete whatever happened. Plain data: copy and share freely.
struct DownloadResult {
  std::string url;             ///< as given
  std::filesystem::path path;  ///< the final file (or the planned one when none was kept)
  DownloadStatus status = DownloadStatus::Failed;
  long http_status = 0;  ///< the last response's status, 0 if none arrived
  /// The HTTP version the last response came over: "1.0", "1.1", "2" or "3"; empty if none arrived.
  std::string http_version;
  std::uint64_t bytes = 0;  ///< bytes in the final file (or received, on failure)
  ImageType image_type = ImageType::Unknown;
  std::uint32_t width = 0;   ///< from the image's header; 0 when unknown (or no image arrived)
  std::uint32_t height = 0;  ///< from the image's header; 0 when unknown
  int orientation =
      0;  ///< a JPEG's EXIF orientation (1–8, as stored: width and height are not swapped), else 0
  std::string sha256;  ///< hex SHA-256 of the kept file; empty when none was kept or hashing is off
  int attempts = 0;    ///< transfers tried (1 + retries used)
  std::chrono::steady_clock::duration elapsed{};  ///< from the first attempt's start to the end
  ErrorKind error = ErrorKind::None;
  std::string message;  ///< a human sentence: "HTTP 404 Not Found", ...

  /// Ok or Skipped.
  bool ok() const noexcept { return status == DownloadStatus::Ok || status == DownloadStatus::Skipped; }
};

/// "ok", "skipped", "failed", "cancelled". Thread-safe.
[[nodiscard]] IMGDL_API std::string_view to_string(DownloadStatus status) noexcept;
/// "none", "invalid_url", "dns", "connect", "tls", "timeout", "http_status", "too_many_redirects",
/// "forbidden_redirect", "too_large", "not_image", "corrupt_image", "filtered", "empty", "truncated",
/// "network", "write", "cancelled", "host_unreachable". Thread-safe.
[[nodiscard]] IMGDL_API std::string_view to_string(ErrorKind kind) noexcept;

/// Every field of `result` as one compact JSON object's text, in this order: "url", "path", "status",
/// "http_status", "http_version", "bytes", "image_type", "width", "height", "orientation", "sha256",
/// "attempts", "elapsed_s" (seconds), "error", "message"; enums as to_string() names them. Bytes that are
/// not UTF-8 (a URL or path may carry any) become U+FFFD. The run journal and imgdl's report share it.
/// Thread-safe: reads `result` only.
[[nodiscard]] IMGDL_API std::string to_json_text(const DownloadResult& result);

}  // namespace imgdl
