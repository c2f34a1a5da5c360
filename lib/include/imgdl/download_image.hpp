#pragma once
// imgdl::download_image: the seed's own design, one blocking fetch per call, meant to be run on a
// thread pool (`executor.map(imgdl::download_image, urls)`), with the Downloader's naming, checks and
// atomic publishing.

#include <stop_token>
#include <string>

#include "imgdl/download_result.hpp"
#include "imgdl/downloader.hpp"
#include "imgdl/export.hpp"

namespace imgdl {

/// The type of imgdl::download_image. A function object rather than a function, so that
/// `executor.map(imgdl::download_image, urls)` and `executor.submit(imgdl::download_image, url)` work
/// as the seed's `executor.map(download_image, urls)` does: a function with a defaulted parameter
/// cannot be passed by name to a template that calls it with one argument.
struct IMGDL_API DownloadImage {
  /// Downloads `url` into options.output_dir, blocking the calling thread until its result is
  /// known, and returns it.
  ///
  /// Threading: one blocking fetch (curl_easy_perform) on an easy handle of its own, made and freed by
  /// the call, so every call is independent and safe from any thread, any number at once. Nothing is
  /// shared between calls: each opens its own connection (no keep-alive, DNS cache or TLS session
  /// reuse across calls), as the seed's urlopen() does. That is what the design costs against the
  /// Downloader's event loop, and what `imgdl --compare`'s "thread per URL" row measures.
  ///
  /// The same rules as the Downloader, from the same code: the file is named from the URL's basename
  /// (the sniffed type's extension added when it has none), the body streams to an unnamed file (or
  /// `<name>.part` under OnExists::Resume and Overwrite) that is linked in under its final name only
  /// once its status, size and image checks pass, nothing is ever written outside output_dir, and
  /// retries, backoff, Retry-After, timeouts and size limits follow `options`. Retries sleep on the
  /// calling thread. Ignored: max_workers, per_host, transfer_threads and executor (there is no loop).
  ///
  /// Names: there is no planner across calls, so no duplicate detection (the same URL twice is fetched
  /// twice) and no reservation of names for later URLs. Under OnExists::Rename (the default), calls
  /// that land on the same name, concurrently or not, still never overwrite each other: publishing
  /// moves each to the next free name (name.1.jpg, name.2.jpg, ...), so which call gets which name
  /// follows completion order, not input order. Under Resume, two concurrent calls for one name meet
  /// at its `.part` file and the second fails (ErrorKind::Write).
  ///
  /// Observer (options.observer): the calls a Downloader makes, in the same order, all on the calling
  /// thread: on_queued, on_started (when a request is made), on_progress, on_retrying, and exactly one
  /// on_finished. Transfer::index counts download_image calls in this process from 0. Observer calls
  /// of every download_image in the process are serialised by one lock, so an observer written for a
  /// Downloader (one call at a time) can be shared by concurrent calls; they must return quickly, as
  /// every concurrent download_image waits for them. An exception an observer throws is rethrown by
  /// the call once the URL is settled (its file published or removed).
  ///
  /// A failed download is a value (DownloadResult::status and error), never an exception. Throws
  /// std::invalid_argument for contradictory options (negative retries or max_redirects) and
  /// std::system_error when output_dir cannot be created or opened.
  [[nodiscard]] DownloadResult operator()(std::string url, const DownloadOptions& options = {}) const;

  /// The same, stopped by `stop`: a running transfer aborts within a progress tick, a retry's wait
  /// ends at once, and the result is Cancelled (its file removed, or its .part kept under Resume).
  [[nodiscard]] DownloadResult operator()(std::string url, const DownloadOptions& options,
                                          std::stop_token stop) const;
};

/// See DownloadImage::operator().
inline constexpr DownloadImage download_image{};

}  // namespace imgdl
