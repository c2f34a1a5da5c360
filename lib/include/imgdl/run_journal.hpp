#pragma once
// imgdl::RunJournal: what became of each input position of a run, kept in the output directory so a
// rerun of the same list skips what is done (and, when asked, tries the transient failures again).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgdl/download_result.hpp"
#include "imgdl/downloader.hpp"
#include "imgdl/export.hpp"

namespace imgdl {

/// True for a failure a later run may well not see again: Dns, Connect, Tls, Timeout, Truncated,
/// Network, CorruptImage, Write, HostUnreachable, and HttpStatus 408, 425, 429 or 5xx. Every other
/// failure (InvalidUrl, another HTTP status such as 404 or 410, TooManyRedirects, ForbiddenRedirect,
/// TooLarge, NotImage, Filtered, Empty) is permanent: the same request would fail the same way. False
/// for a result that did not fail. Thread-safe: pure.
[[nodiscard]] IMGDL_API bool is_transient_failure(const DownloadResult& result) noexcept;

/// What must not change between the runs that share a journal: the input's checksum, and settings that
/// change names or outcomes, each as a (name, value) pair in the caller's words ("--on-exists",
/// "skip"). Compared as text, pair by pair.
struct JournalManifest {
  std::string input_checksum;
  std::vector<std::pair<std::string, std::string>> settings;
};

/// The DownloadOptions that change names or outcomes, for a JournalManifest: on_exists, require_image,
/// max_file_size, min_width, min_height, max_pixels, max_aspect. Thread-safe: pure.
[[nodiscard]] IMGDL_API std::vector<std::pair<std::string, std::string>> journal_settings(
    const DownloadOptions& options);

/// How a RunJournal is opened.
struct JournalOptions {
  /// The run's output directory (created if missing); the journal lives in its `.imgdl/` directory.
  std::filesystem::path output_dir = ".";
  /// Names the journal, `.imgdl/journal-<id>`, and its manifest, `.imgdl/manifest-<id>.json`: "all"
  /// for a whole list, e.g. "shard-3-of-8" for one part of it. ASCII letters, digits, '.', '_', '-',
  /// not starting with '.', at most 100 characters (else std::invalid_argument).
  std::string id = "all";
  JournalManifest manifest;
  /// Start a new journal, whatever the old one holds and whatever its manifest says.
  bool force = false;
  /// Transient failures recorded earlier are not done: this run fetches them again.
  bool retry_failed = false;
  /// When set, a recorded position counts as done only if this returns true for it: e.g. WebDataset
  /// output, where a sample is kept only once its shard is published, so the positions of a shard a
  /// killed run left unpublished must be fetched again. Called once per recorded position, in
  /// increasing order, by the constructor (cache per shard: positions come in order).
  std::function<bool(std::size_t position)> still_done;
};

/// Why a journal cannot be used. what() is a sentence for the user that names the file.
class IMGDL_API JournalError : public std::runtime_error {
 public:
  enum class Kind {
    Locked,    ///< another process holds the journal
    Mismatch,  ///< the list or a manifest setting changed since the journal was started
    Io,        ///< the directory or a file cannot be created, read or written
  };
  JournalError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  [[nodiscard]] Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

/// One record: an input position's result, and what the caller attached to it (`extra`: a JSON object
/// as text, or empty; the CLI keeps the row's caption and columns there).
struct JournalEntry {
  std::size_t position = 0;
  DownloadResult result;
  std::string extra;
};

/// An append-only record of each input position's outcome, for resuming a run.
///
/// Files: `<output_dir>/.imgdl/journal-<id>` holds one record per line, `<crc32> <json>\n`, where the CRC-32
/// (8 lowercase hex digits, zlib's) covers the JSON text, and the JSON holds the position ("position")
/// and every DownloadResult field under its report name (url, path, status, http_status, http_version,
/// bytes, image_type, width, height, orientation, sha256, attempts, elapsed_s, error, message), plus
/// "extra" when given. The first line is a header, {"imgdl_journal": 1, "id": ...}. A line that is cut
/// short or fails its CRC ends the journal: opening it truncates it there (dropped_bytes()), so a run
/// killed while writing loses at most the records it had not written whole. `manifest-<id>.json`
/// beside it holds the JournalManifest the journal was started with.
///
/// Opening: the journal file is locked (flock, exclusive, not waiting) for the object's life, so a
/// second process on the same journal gets JournalError::Kind::Locked and touches nothing. An empty or
/// new journal (or `force`) starts over with this manifest; a journal with records must have been
/// started with an equal manifest, else JournalError::Kind::Mismatch, which names what changed.
///
/// Done: a position is done when its latest record is Ok, Skipped or a permanent failure, or a
/// transient one unless `retry_failed` (see is_transient_failure()). Cancelled results are never
/// recorded. Memory: 2 bits per position up to the highest one recorded (2.5 MB for 10 million);
/// records are read from the file, never held.
///
/// Writing: record() appends to a buffer written out when it reaches 1 MiB or a second after the last
/// write, and made durable (fdatasync) at least every 2 seconds while records come, and by flush() and
/// the destructor. A process killed without flush() (SIGKILL) may lose its last second of records:
/// those URLs are fetched again by the next run. A write error is kept (error()) and later records are
/// dropped: the run goes on.
///
/// Threading: the constructor and for_each_done() run on one thread before the run; record() and
/// flush() may be called from any thread (one mutex), e.g. record() on the thread that receives results
/// and flush() from a signal-handling thread; done() and the other const members are safe from any
/// thread once constructed.
class IMGDL_API RunJournal {
 public:
  /// Creates `.imgdl/` if needed (never through a symlink), opens and locks the journal, reads it,
  /// truncates a torn tail and checks the manifest. Throws JournalError, std::invalid_argument for a bad id.
  explicit RunJournal(JournalOptions options);
  /// Flushes.
  ~RunJournal();
  RunJournal(const RunJournal&) = delete;
  RunJournal& operator=(const RunJournal&) = delete;

  /// True if an earlier run finished this position (see "Done" above).
  [[nodiscard]] bool done(std::size_t position) const noexcept;
  /// True if an earlier run's latest record of this position is a transient failure that this run
  /// fetches again (`retry_failed`).
  [[nodiscard]] bool retrying(std::size_t position) const noexcept;
  /// How many positions are done.
  [[nodiscard]] std::size_t done_count() const noexcept { return done_count_; }
  /// Records read from earlier runs (every record, superseded ones included).
  [[nodiscard]] std::size_t earlier_records() const noexcept { return earlier_records_; }
  /// Bytes of a torn tail cut off when opening (0 when the journal ended on a whole record).
  [[nodiscard]] std::uint64_t dropped_bytes() const noexcept { return dropped_bytes_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Calls `fn` with the latest record of each done position, as earlier runs wrote it, read back
  /// from the file (newest first). Throws JournalError::Kind::Io if the file cannot be read.
  void for_each_done(const std::function<void(const JournalEntry&)>& fn) const;

  /// Records `result` for input `position` (a Cancelled one is ignored). `extra`: a JSON object's text
  /// or empty. Never throws for I/O (see error()).
  void record(std::size_t position, const DownloadResult& result, std::string_view extra = {});
  /// Writes what is buffered and makes it durable. Never throws for I/O (see error()).
  void flush();
  /// The first write error, e.g. "cannot write DIR/.imgdl/journal-all: No space left on device"; empty if
  /// none.
  [[nodiscard]] std::string error() const;

  /// "sha256:<hex>" of a file's bytes, read in full. Throws JournalError::Kind::Io.
  [[nodiscard]] static std::string checksum_file(const std::filesystem::path& file);
  /// "sha256:<hex>" of `text`. Thread-safe: pure.
  [[nodiscard]] static std::string checksum_text(std::string_view text);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path path_;
  std::size_t done_count_ = 0;
  std::size_t earlier_records_ = 0;
  std::uint64_t dropped_bytes_ = 0;
};

}  // namespace imgdl
