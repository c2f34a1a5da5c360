#pragma once
// WebDataset output: downloaded images packed into numbered tar shards with a JSON record (and a
// caption) per sample, each shard published whole.

#include <cstddef>
#include <filesystem>
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
/// a result (or finish() is called), with `<NNNNN>_stats.json` beside it (counts by status and error kind,
/// bytes, elapsed seconds): a killed run leaves only whole shards (and `.part` files). Shards are
/// replaced when a later run writes the same numbers.
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

  /// The result of input position `index`. A successful one's file (result.path) moves into its shard
  /// and is removed. Throws std::system_error when the shard cannot be written (disk full): the run
  /// cannot go on writing shards.
  void add(std::size_t index, const DownloadResult& result, const std::optional<std::string>& caption = {},
           const std::vector<std::pair<std::string, std::string>>& columns = {});

  /// Publishes every shard still open: the list ended, or the run stops. Idempotent; the destructor
  /// calls it (ignoring errors).
  void finish();

  /// The sample key of input position `index`. Thread-safe: pure.
  [[nodiscard]] static std::string key(std::size_t index, std::size_t shard_size);

  /// Shards published so far.
  std::size_t shards_written() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgdl
