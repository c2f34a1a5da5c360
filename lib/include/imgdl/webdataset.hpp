#pragma once
// WebDataset output: downloaded images packed into numbered tar shards with a JSON record (and a
// caption) per sample, each shard published whole.

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "imgdl/download_result.hpp"
#include "imgdl/export.hpp"

namespace imgdl {

/// Packs results into WebDataset shards: input position i goes to shard i / shard_size as sample
/// `<key>.<ext>` (the image), `<key>.json` (url, status, width, height, sha256, the row's columns) and
/// `<key>.txt` (the caption, when there is one), where key is the shard number (5 digits) followed by
/// the position in the shard (at least 4 digits): "000010005" is shard 1's sample 5. Failed URLs take
/// no place in a tar but count in their shard's stats. Keys come from positions, so no names are planned.
///
/// A shard is written to `<NNNNN>.tar.part` and renamed to `<NNNNN>.tar` once every position it covers has
/// a result (or finish() is called: the list ended), with `<NNNNN>_stats.json` beside it (counts by
/// status and error kind, bytes, elapsed seconds, and "failed_rows": the offsets in the shard of the
/// rows that left no sample, by error kind). A shard holds fewer samples than shard_size when some of
/// its URLs failed (its stats list them). Shard
/// numbers and keys come from input positions alone, so they are the same in every run, and runs over
/// different parts of one list never write the same shard. A killed run leaves only whole shards (and `.part`
/// files); a shard that got a cancelled result (the run was stopped) is never published, nor are the open
/// shards of a writer abandoned or destroyed without finish(). A published `<NNNNN>.tar` is never replaced by
/// a new shard: ask published() before fetching a shard's URLs (the CLI skips the rows of a published shard).
/// It can only be repaired (repair()): failed positions fetched again and their samples added.
///
/// Thread-safety: none; call from one thread (e.g. a download_stream result callback).
class IMGDL_API WebDatasetWriter {
 public:
  /// Creates `dir` if missing. Throws std::system_error if it cannot, std::invalid_argument for a
  /// shard_size of 0.
  WebDatasetWriter(std::filesystem::path dir, std::size_t shard_size);
  ~WebDatasetWriter();
  WebDatasetWriter(const WebDatasetWriter&) = delete;
  WebDatasetWriter& operator=(const WebDatasetWriter&) = delete;

  /// The result of input position `index`: a position never given before, or one a repair() awaits. A
  /// successful one's file (result.path) moves into its shard and is removed. Throws std::system_error when
  /// the shard cannot be written (disk full): the run cannot go on writing shards.
  void add(std::size_t index, const DownloadResult& result, const std::optional<std::string>& caption = {},
           const std::vector<std::pair<std::string, std::string>>& columns = {});

  /// Publishes every shard still open: the list ended. A shard holding a cancelled result is dropped
  /// instead. Throws std::system_error when a shard cannot be written, or was published meanwhile by
  /// another writer (this one's copy is dropped). Idempotent.
  void finish();

  /// Drops every shard still open (the run stopped early): nothing of them is published, their `.part`
  /// files are removed, so a later run fetches their URLs again. The destructor does this.
  void abandon() noexcept;

  /// Reopens published shard `shard` to fetch some of its failed positions again: those its stats list
  /// as failed and `retry` returns true for. Returns how many: from now on add() takes exactly those
  /// positions (awaits()), and once each has its result the shard is published again, atomically
  /// replacing the tar with one holding its earlier samples and the new ones, and its stats updated (a
  /// position that fails again stays listed, with its new error). A cancelled result, abandon() or the
  /// destructor drop the repair: the published tar stays as it was. Returns 0, opening nothing, when no
  /// listed failure is to be retried, or when the stats cannot be read or list no failures by position
  /// (imgdl 0.2.0 wrote none). Throws std::system_error when the tar cannot be read or copied,
  /// std::invalid_argument if the shard is not published or already open.
  [[nodiscard]] std::size_t repair(std::size_t shard, const std::function<bool(std::size_t position)>& retry);

  /// Whether input position `index` is one a repair() awaits (its shard is open for repair and it has
  /// no new result yet).
  [[nodiscard]] bool awaits(std::size_t index) const;

  /// Whether shard `shard` is open for repair (some awaited position has no result yet).
  [[nodiscard]] bool repairing(std::size_t shard) const;

  /// Calls `fn` with a shard's number each time one is published (a new shard, or a repair), from
  /// add() or finish(), after its tar and stats are in place: e.g. to record its samples as done.
  void on_published(std::function<void(std::size_t shard)> fn);

  /// Whether shard `shard`'s tar is in the directory (published by this run or an earlier one): its
  /// input positions need not be fetched, and add() must not be given them.
  [[nodiscard]] bool published(std::size_t shard) const;
  /// The same question of directory `dir`, for a caller with no writer yet (the CLI's journal asks
  /// it before the writer is made). Thread-safe.
  [[nodiscard]] static bool published(const std::filesystem::path& dir, std::size_t shard);

  /// The samples per shard this writer was made with.
  std::size_t shard_size() const noexcept;

  /// "00003.tar" for shard 3. Thread-safe: pure.
  [[nodiscard]] static std::string shard_file_name(std::size_t shard);

  /// The sample key of input position `index`. Thread-safe: pure.
  [[nodiscard]] static std::string key(std::size_t index, std::size_t shard_size);

  /// Shards published so far.
  std::size_t shards_written() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgdl
