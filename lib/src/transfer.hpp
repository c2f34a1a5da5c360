#pragma once
// One HTTP attempt: a libcurl easy transfer (driven by a multi handle, or by curl_easy_perform in
// download_image), parsing the response and streaming its body into a BodySink, with the checks that
// decide whether the body may become a file (status, size, magic bytes).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <variant>

#include "attempt_outcome.hpp"
#include "curl_handles.hpp"
#include "imgdl/downloader.hpp"
#include "output_dir.hpp"
#include "sha256.hpp"

namespace imgdl::detail {

class BodySink;

/// Everything an attempt needs besides the easy handle; fixed for the Downloader's life.
struct TransferSettings {
  const DownloadOptions* options = nullptr;
  CURLSH* share = nullptr;
  std::string user_agent;
};

/// Receives (bytes so far, expected total) at most 10 times a second during an attempt.
using ProgressReport = std::function<void(std::uint64_t, std::optional<std::uint64_t>)>;

/// The state libcurl's callbacks write to during one attempt. Opaque outside transfer.cpp; it never
/// moves between begin_attempt() and end_attempt(), because libcurl holds its address.
struct Attempt;
struct AttemptDeleter {
  void operator()(Attempt* attempt) const noexcept;
};
using AttemptPtr = std::unique_ptr<Attempt, AttemptDeleter>;

/// Sets the options that stay the same for every attempt of a Downloader, once per new easy handle:
/// setting them again per attempt costs a dozen string copies inside libcurl each time.
void configure_handle(CURL* easy, const TransferSettings& settings);

/// Prepares one attempt for `url` on `easy`, a handle set up by configure_handle() (add it to a multi
/// handle to run it), appending to the sink's part file, which may already hold a resumed prefix when
/// the sink uses a Range. The sink's hash must hold the hash of the part's current content; it is reset
/// when the server restarts the body. `sink` and `report` must outlive the attempt. Returns an outcome
/// instead when the attempt ends before any request (a resumed prefix that is not an image). Call on the
/// thread that runs the transfer; never throws for transfer failures.
std::variant<AttemptPtr, AttemptOutcome> begin_attempt(CURL* easy, const TransferSettings& settings,
                                                       const std::string& url, BodySink& sink,
                                                       std::stop_token stop, const ProgressReport& report);

/// Judges a finished attempt from libcurl's `code` and what the callbacks saw: status, size and image
/// checks, error kind and message, and whether a retry may help. The body is in `part` when it passed.
AttemptOutcome end_attempt(CURL* easy, Attempt& attempt, CURLcode code);

/// Clears the pointers into an attempt that begin_attempt() gave `easy`: call it before the attempt is
/// freed, whether or not end_attempt() judged it.
void detach_attempt(CURL* easy) noexcept;

/// The options every transfer reads, checked and with defaults filled in (user agent, output_dir);
/// libcurl's global init done. Throws std::invalid_argument for negative retries or max_redirects.
/// The Downloader resolves its pool's options on top; download_image uses these as they are.
DownloadOptions resolve_transfer_options(DownloadOptions options);

/// Parses a Retry-After value: delta-seconds or an HTTP date. nullopt when unparseable.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value);

}  // namespace imgdl::detail
