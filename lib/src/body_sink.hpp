#pragma once
// The output side of one URL: where its body goes until it checks out (held in memory, an unnamed
// file or `<name>.part`), its hash, and how it becomes a file. The one implementation behind both the
// Downloader and download_image(): they name, check and publish the same way.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "attempt_outcome.hpp"
#include "imgdl/downloader.hpp"
#include "output_dir.hpp"
#include "sha256.hpp"

namespace imgdl::detail {

struct Plan;

/// What every URL of one run shares on the output side. Thread-safe: read-only after construction,
/// and OutputDir only holds a descriptor.
struct OutputRules {
  const DownloadOptions* options = nullptr;
  const OutputDir* dir = nullptr;
  /// Names planned for other URLs of the run, which Rename must pass over; may be empty (none).
  std::function<bool(const std::string&)> reserved;
  /// Hash a body once it is whole, from its file, instead of while it streams: the Downloader sets it
  /// when it can hand large bodies' digests to other pool workers (see BodySink::hash_file).
  bool hash_after = false;
  /// When the run started, on the directory's clock (OutputDir::now()). A file whose ctime is at or
  /// after it was made by this run (or by a process writing beside it) and is a name taken: Skip and
  /// Resume do not take it for "already there", Overwrite does not replace it; the URL moves on to
  /// the next free name. That is what keeps names apart beyond the planner's window. Unset (as for
  /// download_image, whose every call is a run of its own): every existing file counts as older.
  std::optional<DiskTime> run_start;
};

/// How a URL ended, before it is written into its DownloadResult.
struct Ending {
  DownloadStatus status = DownloadStatus::Ok;
  ErrorKind error = ErrorKind::None;
  std::string message;
};

/// Appends body bytes to the part file and, when hashing, to the hash: the one path every byte of a
/// body takes to disk. Never throws: it runs inside libcurl's callbacks.
std::error_code append_body(PartFile& part, Sha256* hash, std::string_view data) noexcept;

/// Appends a successful attempt's held bytes to `part` (and `hash`, when hashing). An error code
/// (ENOSPC, EFBIG, ...) on failure.
std::error_code write_held_body(AttemptOutcome& outcome, PartFile& part, Sha256* hash);

/// Whether a URL ends before any request: a plan error, a duplicate, or (under Skip and Resume) a
/// file already there. nullopt means fetch it. Settles the plan's name first (settle_name). Any thread
/// that owns the plan.
std::optional<Ending> ending_without_fetch(const OutputRules& rules, Plan& plan);

/// Under Skip, Resume and Overwrite with a run start, for a plan made past the planner's window: moves the
/// plan's name past files this run made (see OutputRules::run_start), to the first of name, name.1, name.2,
/// ... (passing over names planned for other URLs) that is free or holds an older file. Done once per plan; a
/// no-op under Rename, whose exclusive publishing already moves on. Any thread that owns the plan.
void settle_name(const OutputRules& rules, Plan& plan);

/// Writes how a URL ended into its result, with the time since `start`. A file that was not published
/// names its planned file; a duplicate names none, since the earlier URL's file may have been renamed.
/// Any thread.
void settle_result(DownloadResult& result, Ending ending, const Plan& plan, const DownloadOptions& options,
                   std::chrono::steady_clock::time_point start);

/// The result of a URL cancelled before it started. Any thread.
DownloadResult cancelled_before_start(const DownloadOptions& options, const std::string& url,
                                      const std::string& name);

/// Whether `name` already has its file: a name without an extension is saved with the sniffed type's,
/// so any image extension counts. Any thread.
bool final_file_exists(const OutputDir& dir, const std::string& name);

/// final_file_exists() with ages: Newer if any of the name's files was made at or after `since`, else
/// Older if one exists, else Absent. Any thread.
EntryAge final_file_age(const OutputDir& dir, const std::string& name, DiskTime since);

/// One URL's body on its way to a file. Used by one thread at a time; never moved while an attempt
/// writes to it (libcurl's callbacks hold its part file and hash).
class BodySink {
 public:
  /// `past_window`: the plan's (Plan::past_window): Overwrite then never replaces a file this run made.
  BodySink(const OutputRules& rules, std::string name, bool past_window = false);
  BodySink(const BodySink&) = delete;
  BodySink& operator=(const BodySink&) = delete;

  /// Opens where the body goes: an unnamed file, or `<name>.part` under Resume and Overwrite (or
  /// without O_TMPFILE); a resumed part file's content is hashed first. The failure that ends the URL,
  /// if nothing can be opened.
  [[nodiscard]] std::optional<AttemptOutcome> open();
  bool is_open() const noexcept { return opened_; }

  /// Under Resume, bytes go to the part file as they arrive (a cut transfer keeps them) and the next
  /// attempt asks for the rest with a Range; otherwise a small body waits in memory until publish.
  bool resumes() const noexcept { return resume_; }
  bool holds_small_bodies() const noexcept { return !resume_; }
  bool use_range() const noexcept { return use_range_; }

  /// What an attempt writes to.
  PartFile& part() noexcept { return part_; }
  Sha256& hash_state() noexcept { return hash_; }
  /// Whether the attempt hashes bytes as it writes them (a digest is asked for, and not deferred).
  bool hashes_while_streaming() const noexcept { return hash_mode_ == HashMode::Streaming; }
  /// A digest is asked for and not computed yet: hash_file() must run before publication.
  bool needs_hash() const noexcept { return hash_mode_ == HashMode::After && !hashed_; }

  /// For a body hashed after the fact: writes the attempt's held bytes to the file, then hashes the
  /// whole file. Any thread, while no attempt writes to the sink (the loop hands it to a pool worker
  /// and does not touch the job until it is back). The failure that ends the URL, if the file cannot
  /// be written or read.
  [[nodiscard]] std::optional<AttemptOutcome> hash_file(AttemptOutcome& outcome);

  /// After a failed attempt that will be retried: keeps a resumable prefix, else starts over. The
  /// failure that ends the URL instead, if the file cannot be emptied.
  [[nodiscard]] std::optional<AttemptOutcome> prepare_retry(bool restart_from_scratch);

  /// The URL's end: writes any held bytes, then publishes the file under its final name (with the
  /// sniffed type's extension when the name has none), or removes it (keeps a resumable `.part`).
  /// Fills `result`'s bytes, image type, digest and path.
  Ending finish(AttemptOutcome outcome, DownloadResult& result);

 private:
  [[nodiscard]] std::optional<AttemptOutcome> open_file();

  enum class HashMode : std::uint8_t { None, Streaming, After };

  const OutputRules& rules_;
  std::string name_;
  bool past_window_;
  HashMode hash_mode_;
  bool hashed_ = false;
  bool resume_;
  bool use_range_;
  bool opened_ = false;
  PartFile part_;
  Sha256 hash_;
};

}  // namespace imgdl::detail
