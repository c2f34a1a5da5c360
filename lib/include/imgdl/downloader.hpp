#pragma once
// imgdl::Downloader: fetches URLs concurrently on libcurl event loops that run as tasks on a
// ThreadPoolExecutor, and writes each to a file named from the URL's basename, which it gets only once
// the body checks out. Its futures are imgdl::Future, made by an imgdl::Promise.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgdl/download_result.hpp"
#include "imgdl/executor.hpp"
#include "imgdl/export.hpp"
#include "imgdl/future.hpp"

namespace imgdl {

/// What to do when the file a URL maps to already exists in the output directory.
enum class OnExists {
  Rename,     ///< keep both: the new file becomes name.1.jpg, name.2.jpg, ...
  Skip,       ///< do not fetch; the result is Skipped
  Overwrite,  ///< replace it (atomically, by rename; a symlink there is replaced, never followed)
  Resume,     ///< continue `<name>.part` with a Range request; Skipped if the final file exists
};

/// How download_all() runs the list.
enum class Mode {
  Pooled,      ///< up to max_workers transfers at once
  Sequential,  ///< one transfer at a time, in input order, on the same machinery
};

/// Where the Downloader reports progress. Every method has an empty default, so override only what
/// you need. on_queued runs on the thread calling submit()/download_all()/download_stream(); all the
/// others run on one of the Downloader's transfer threads, one call at a time across all of them (the
/// Downloader serialises them), so they may race only with on_queued and your own threads. Calls for
/// one URL come from one thread, in order. They must not throw, and should return quickly: while one
/// runs, no transfer of that Downloader moves, on any of its threads.
class IMGDL_API DownloadObserver {
 public:
  /// Identifies a transfer in every call: `index` counts submissions from 0, `name` is the planned
  /// file name. The views are valid only during the call.
  struct Transfer {
    std::size_t index;
    std::string_view url;
    std::string_view name;
  };

  virtual ~DownloadObserver() = default;
  /// The URL was accepted and is waiting for a free transfer slot.
  virtual void on_queued(const Transfer&) {}
  /// Its first attempt has started (a slot was free): called as its request goes out, before any
  /// on_progress. At most max_workers URLs are between on_started and on_finished at any time.
  virtual void on_started(const Transfer&) {}
  /// Body bytes so far, and the expected total when known. At most 10 calls a second per transfer,
  /// plus one final call with the complete count.
  virtual void on_progress(const Transfer&, std::uint64_t /*bytes*/, std::optional<std::uint64_t> /*total*/) {
  }
  /// Attempt `attempt` failed for `reason` and the next starts after `delay`.
  virtual void on_retrying(const Transfer&, int /*attempt*/, std::chrono::milliseconds /*delay*/,
                           std::string_view /*reason*/) {}
  /// The transfer ended (ok, skipped, failed or cancelled). Called exactly once per submission; for
  /// a URL cancelled before it started, when its transfer thread reaches it or on cancel().
  virtual void on_finished(const Transfer&, const DownloadResult&) {}
};

/// How a Downloader behaves. Read once, by the constructor.
struct DownloadOptions {
  /// Where files go; created (with parents) if missing. Nothing is ever written outside it.
  std::filesystem::path output_dir = ".";
  /// URLs in progress at once, as worker threads would hold them: from the first attempt to the
  /// result, backoffs included, so at most this many part files are open. Unset means Python's
  /// executor default, min(32, hardware threads + 4).
  std::optional<std::size_t> max_workers;
  /// Most concurrent transfers to one host; 0 means unlimited. A host, here and in the options below,
  /// is an origin: scheme, name and port, so two servers on one address are two hosts, and
  /// http://a.example and https://a.example are too.
  std::size_t per_host = 0;
  /// Most attempts started per second to one host (retries included); 0 means no limit; fractions are
  /// allowed (0.5: one every 2 s). Fixed spacing, no bursts: each attempt starts at least 1/N seconds
  /// after the previous one to its host, across all transfer threads. A URL waiting for its host's turn
  /// holds no transfer slot (a retry keeps the one it has), so other hosts go on. Negative or not
  /// finite: std::invalid_argument.
  double per_host_rate = 0;
  /// A 429 or 503 response with Retry-After pauses its whole host, not only its URL: no attempt to that
  /// host starts, on any transfer thread, until the time given (capped by retry_max_delay); other
  /// hosts go on. Attempts already running are not stopped.
  bool retry_after_pauses_host = true;
  /// After this many consecutive attempts to one host that fail to reach it (ErrorKind::Connect, or
  /// ErrorKind::Timeout before any response), the host is unreachable for the Downloader's life: its
  /// URLs still waiting (queued, or backing off for a retry) and those submitted later fail at once
  /// with ErrorKind::HostUnreachable, instead of each waiting out its own timeouts. Any response from
  /// the host resets the count. Attempts already running end on their own. 0 never gives up on a host.
  std::size_t unreachable_after = 5;
  /// Threads that drive the transfers, each with its own libcurl multi handle and connection cache,
  /// sharing max_workers between them. 0 means one per 16 workers, at most one per hardware thread,
  /// and 1 when per_host is set. A second thread pays off on a long list of small files, where one
  /// thread's turnaround (wake-ups, file work) limits the rate. More than 1 with per_host set is
  /// refused (std::invalid_argument): each thread counts only its own transfers.
  std::size_t transfer_threads = 0;
  /// Limit on connecting (DNS, TCP and TLS); 0 means libcurl's default (300 s).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
  /// Limit on a whole attempt; 0 means none.
  std::chrono::milliseconds timeout{0};
  /// Abort an attempt that moves fewer than low_speed_limit bytes/s for low_speed_time (0 disables).
  std::uint64_t low_speed_limit = 1;
  std::chrono::seconds low_speed_time{std::chrono::seconds(30)};
  /// Further attempts after a transient failure (connect, timeout, reset, 408, 429, 5xx).
  int retries = 3;
  /// Backoff before retry n is retry_backoff × 2^(n-1), with ±50% jitter, capped by retry_max_delay.
  /// A Retry-After header (seconds or HTTP date) on 429/503 replaces it, under the same cap.
  std::chrono::milliseconds retry_backoff{500};
  std::chrono::milliseconds retry_max_delay{std::chrono::seconds(30)};
  /// Redirects followed per attempt (http and https only).
  int max_redirects = 10;
  /// Largest body accepted, in bytes; 0 means unlimited. Checked against Content-Length before the
  /// body and while streaming.
  std::uint64_t max_file_size = 0;
  /// Empty means `imgdl/<version> (+<project URL>) libcurl/<version>`: Wikimedia and others refuse
  /// generic agents.
  std::string user_agent;
  OnExists on_exists = OnExists::Rename;
  /// How many recent URLs the Downloader remembers (at least this many, at most twice) to fetch a URL
  /// listed twice only once and to keep names in input order: memory is bounded by it, not by the
  /// list (about 64 bytes per URL of the window: 8 MiB at the default 131,072, for ten URLs or ten
  /// million). A URL listed again further apart is fetched again, as a new URL; a name planned further
  /// back is told apart by the output directory: a file this run made (its inode change time is at or
  /// after the Downloader was made) is never replaced nor taken for "already there" (Skip, Resume),
  /// so the later URL gets the next free `name.N.ext`. Keep it well above 2 × max_workers (the URLs in
  /// flight). Must be at least 1 (else std::invalid_argument).
  std::size_t name_window = std::size_t{1} << 17;
  /// Refuse bodies whose magic bytes are not a known image format (ErrorKind::NotImage).
  bool require_image = true;
  /// Size limits, read from each image's header as it arrives (the transfer stops there): an image
  /// outside them fails as ErrorKind::Filtered, is not retried and leaves no file. An image whose size
  /// is unknown (an SVG sized in relative units) passes them. 0 turns each off.
  std::uint32_t min_width = 0;
  std::uint32_t min_height = 0;
  /// Most pixels (width × height): the bound common decoders use against decompression bombs.
  std::uint64_t max_pixels = 178'956'970;
  /// Largest ratio of the longer side to the shorter one.
  double max_aspect = 0;
  /// Compute each kept file's SHA-256 (DownloadResult::sha256) while it streams. About 1 CPU-second
  /// per GB: turn it off when nobody reads the digest.
  bool compute_sha256 = true;
  /// A PEM bundle of CA certificates to trust instead of the system's.
  std::filesystem::path ca_file;
  /// Skip TLS certificate and host verification. Only ever an explicit opt-in.
  bool insecure = false;
  /// Progress reports; may be null. Shared so it outlives every transfer that calls it.
  std::shared_ptr<DownloadObserver> observer;
  /// The pool the Downloader runs on: each transfer loop is one long-lived task on it, holding a worker
  /// for the Downloader's whole life, so one pool can serve an application. It needs at least
  /// transfer_threads workers (else the constructor throws std::invalid_argument), and more for any
  /// other task meant to run meanwhile; it must outlive the Downloader, and a shutdown of it with
  /// cancel_running closes the loops early (they drain first). Null: the Downloader makes its own, with
  /// one worker per transfer thread.
  std::shared_ptr<ThreadPoolExecutor> executor;
};

/// A snapshot of a Downloader's URLs, for progress displays. Each count is read atomically, but the set
/// is not one instant: a URL may be seen moving between two counts.
struct DownloaderStats {
  std::size_t pending = 0;           ///< submitted, waiting for a transfer slot
  std::size_t running = 0;           ///< started (retries waiting out their backoff included)
  std::size_t completed = 0;         ///< ended with a result (ok, skipped, failed, or stopped while running)
  std::size_t cancelled = 0;         ///< cancelled before they started
  std::size_t callback_errors = 0;   ///< done-callbacks of its futures that threw
  std::size_t digests_on_pool = 0;   ///< large bodies hashed by another worker of its own pool
  std::size_t transfer_threads = 0;  ///< transfer loops running on the executor
};

/// Downloads URLs concurrently into one directory.
///
/// Hosts: per_host_rate, retry_after_pauses_host and unreachable_after keep one table of host state
/// per Downloader, shared by its transfer threads under one mutex (held for a lookup per attempt start
/// and end), so the rules hold across threads; two Downloaders do not share it. per_host is counted by
/// each transfer thread, which is why it needs a single one.
///
/// Threading: submit(), download_all(), download_stream() and cancel() are thread-safe. Every
/// transfer runs in one of the Downloader's transfer loops, each a long-lived task on its executor
/// (DownloadOptions::executor, or a pool of its own whose workers are named "imgdl-net", "imgdl-net-1",
/// ... while they run a loop; see DownloadOptions::transfer_threads), each driving its share of
/// max_workers at once through its own libcurl multi handle (its own connection cache, so keep-alive
/// connections are reused; easy handles are recycled; DNS and TLS sessions are shared by all), and doing
/// the file work too: creating files, hashing, writing and publishing them (docs/architecture.md says
/// why). A URL is handed to the loop with the fewest unfinished URLs and stays there, even if another
/// loop frees a slot first: with many URLs submitted at once, a loop whose URLs are slow can keep its
/// share waiting while another is idle (download_all and download_stream submit a window at a time,
/// which limits this). A thread per transfer would cost a sleep and a wake-up per file, which on a long
/// list of small files costs more than the transfers (download_image() is that design, kept for
/// comparison). Several Downloaders may live in one process, on one pool or each on its own. The
/// destructor waits for every submitted URL (call cancel() first to abort them). Observers and
/// done-callbacks run on the loops' workers, so they must not wait for this Downloader's futures nor
/// destroy it (download_all and download_stream throw std::logic_error there); an exception an observer
/// throws fails that URL's future.
///
/// Files: a body streams to an unnamed file (O_TMPFILE) that is linked in under its final name only
/// after its status, size and image checks pass; nothing is left if it fails or the process dies.
/// Under OnExists::Resume and Overwrite, or where the filesystem has no O_TMPFILE, it streams to
/// `<name>.part` instead (created exclusively, never through a symlink, held under flock), renamed at
/// the end; on failure the `.part` is removed (kept for a later resume with OnExists::Resume when the
/// failure was transient). Without Resume, a `.part` file left by an earlier run is not touched.
class IMGDL_API Downloader {
 public:
  /// Creates the output directory if needed. Throws std::system_error if it cannot be created or
  /// opened, std::invalid_argument for contradictory options (e.g. max_workers 0).
  explicit Downloader(DownloadOptions options);
  ~Downloader();
  Downloader(const Downloader&) = delete;
  Downloader& operator=(const Downloader&) = delete;

  /// Plans the URL's file name now (so names follow submission order) and schedules the transfer.
  /// The future always holds a DownloadResult; it is cancelled only if it, or the Downloader, was
  /// cancelled before its transfer started; Future::cancel() on a started transfer stops it, and its
  /// result is Cancelled. A URL equal to one submitted earlier is not fetched again: its result is Skipped.
  /// Throws ExecutorShutdownError after cancel().
  [[nodiscard]] Future<DownloadResult> submit(std::string url);

  /// Downloads every URL and returns their results in input order. Names are all planned before the
  /// first transfer starts. Sequential mode runs one transfer at a time on the same machinery, for
  /// honest timing comparisons. After cancel(), unfinished URLs come back Cancelled.
  [[nodiscard]] std::vector<DownloadResult> download_all(const std::vector<std::string>& urls,
                                                         Mode mode = Mode::Pooled);

  /// Downloads a list of any length with memory that does not grow with it: pulls the next URL
  /// from `next_url` (on this thread) only when a transfer slot will soon be free, keeping at most
  /// 2 × max_workers transfers submitted (1 in Sequential mode), and hands each result to
  /// `on_result` on this thread (in batches while many are in flight), with the URL's 0-based
  /// position in this stream. Names are planned as URLs are pulled, so they still follow input order.
  /// `next_url` returns nullopt at the end; after cancel() no further URL is pulled. Returns the number of
  /// URLs pulled. An exception thrown by either callback propagates, and the transfers still in
  /// flight are cancelled (queued ones) or asked to stop (running ones).
  std::size_t download_stream(const std::function<std::optional<std::string>()>& next_url,
                              const std::function<void(std::size_t, DownloadResult&&)>& on_result,
                              Mode mode = Mode::Pooled);

  /// Stops everything: queued transfers are cancelled and running ones abort promptly (their files
  /// are removed, or their .part files kept under OnExists::Resume). Returns at once; the transfer threads
  /// cancel within milliseconds (after the observer call it may be in). Idempotent; no more work is
  /// accepted: submit() throws ExecutorShutdownError.
  void cancel();
  /// True once cancel() was called.
  bool cancelled() const noexcept;

  /// The options in force, with defaults resolved (user agent, worker count).
  const DownloadOptions& options() const noexcept;
  /// Live counts of this Downloader's URLs. Any thread; never blocks.
  [[nodiscard]] DownloaderStats stats() const noexcept;

  /// The User-Agent used when DownloadOptions::user_agent is empty.
  [[nodiscard]] static std::string default_user_agent();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgdl
