#pragma once
// One HTTP attempt: a libcurl easy transfer streaming its body into a PartFile, with the checks that
// decide whether the body may become a file (status, size, magic bytes).

#include <chrono>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>

#include "curl_handles.hpp"
#include "imgdl/downloader.hpp"
#include "output_dir.hpp"
#include "sha256.hpp"

namespace imgdl::detail {

/// Everything an attempt needs besides the easy handle; fixed for the Downloader's life.
struct TransferSettings {
  const DownloadOptions* options = nullptr;
  CURLSH* share = nullptr;
  std::string user_agent;
};

/// What one attempt produced.
struct AttemptOutcome {
  ErrorKind error = ErrorKind::None;
  std::string message;
  long http_status = 0;
  bool retryable = false;
  std::optional<std::chrono::milliseconds> retry_after;  // from a Retry-After header
  ImageType image_type = ImageType::Unknown;
  /// Content-Range did not continue our part file, or the server refused the range: start over.
  bool restart_from_scratch = false;
};

/// Runs one attempt for `url` on `easy` (owned by the calling thread), appending to `part` (which may
/// already hold a resumed prefix when `use_range`). `hash` must hold the hash of the part's current
/// content; it is reset when the server restarts the body. Progress goes to `report` at most 10 times
/// a second. Never throws for transfer failures: they are the outcome's error.
AttemptOutcome run_attempt(CurlEasy& easy, const TransferSettings& settings, const std::string& url, PartFile& part,
                           Sha256& hash, bool use_range, std::stop_token stop,
                           const std::function<void(std::uint64_t, std::optional<std::uint64_t>)>& report);

/// Parses a Retry-After value: delta-seconds or an HTTP date. nullopt when unparseable.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value);

}  // namespace imgdl::detail
