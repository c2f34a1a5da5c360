#pragma once
// What one HTTP attempt produced, and whether it is tried again: the value the attempt hands the
// body sink and the scheduling rules. Plain data, no libcurl.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "imgdl/download_result.hpp"

namespace imgdl::detail {

/// What one attempt produced.
struct AttemptOutcome {
  ErrorKind error = ErrorKind::None;
  std::string message;
  long http_status = 0;
  std::string http_version;  // "1.1", "2", ...; empty when no response arrived
  bool retryable = false;
  std::optional<std::chrono::milliseconds> retry_after;  // from a Retry-After header
  ImageType image_type = ImageType::Unknown;
  std::uint32_t width = 0;  // from the image's header, when it arrived
  std::uint32_t height = 0;
  int orientation = 0;
  /// Content-Range did not continue our part file, or the server refused the range: start over.
  bool restart_from_scratch = false;
  /// On success, the end of the body not yet in the part file (all of it for a small file): the caller
  /// writes it, with write_held_body(), before publishing.
  std::string held_body;
};

/// Bodies up to this size stay in memory until the transfer ends (see AttemptOutcome::held_body).
inline constexpr std::size_t held_body_limit = 32 * 1024;

/// Whether a failed attempt is tried again: a transient failure while retries are left (`attempts`
/// counts the attempts made, this one included). Pure.
inline bool retries_after(const AttemptOutcome& outcome, int attempts, int retries) noexcept {
  return outcome.error != ErrorKind::None && outcome.retryable && attempts <= retries;
}

}  // namespace imgdl::detail
