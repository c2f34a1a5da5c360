#pragma once
// The run's running totals and the JSON report (--report FILE, --json), both kept as results arrive
// so that neither grows with the list.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgdl/download_result.hpp"
#include "imgdl/shard.hpp"
#include "imgdl/url_list.hpp"

namespace imgdl::app {

struct RowExtras;  // cli_options.hpp

/// Counts over one run's results.
struct Totals {
  std::size_t urls = 0;  ///< results (valid list lines and URL arguments)
  std::size_t ok = 0;
  std::size_t skipped = 0;
  std::size_t failed = 0;
  std::size_t host_unreachable = 0;  ///< of the failed: their host was given up on (most not tried)
  std::size_t cancelled = 0;
  std::size_t invalid_lines = 0;  ///< list lines rejected before downloading; they count as failures
  std::size_t earlier_run = 0;    ///< of the results: done by an earlier run, read from the run journal
  std::uint64_t bytes = 0;        ///< bytes of the files downloaded in this run (Ok only)
  double elapsed_s = 0;           ///< wall time of the run

  /// Counts one more result.
  void add(const DownloadResult& result);
  /// Counts a result an earlier run left in the journal (its bytes were not downloaded now).
  void add_earlier(const DownloadResult& result);
  bool all_ok() const noexcept { return failed == 0 && cancelled == 0 && invalid_lines == 0; }
};

Totals compute_totals(const std::vector<DownloadResult>& results, std::size_t invalid_lines,
                      double elapsed_s);

/// Every DownloadResult field, as to_json_text() writes them (the message naming CLI flags, see
/// cli_message); then "index", the URL's position in the input (URL arguments first), and "format" (the
/// image_type again, as dataset tools name it).
nlohmann::ordered_json to_json(const DownloadResult& result, std::size_t index);
nlohmann::ordered_json to_json(const UrlLineError& error);
nlohmann::ordered_json to_json(const Totals& totals);
/// {"index": K, "count": N, "block_size": B}.
nlohmann::ordered_json to_json(const Shard& shard);

/// A row's caption and columns as a JSON object's text, for the run journal ("" when it has neither; a
/// sample's key is not kept: it follows from the position).
std::string extras_json(const RowExtras& extras);

/// Opens (creates or truncates) the report file up front, so a bad path fails before any download.
/// Throws std::runtime_error with a user-facing message.
std::ofstream open_report_file(const std::filesystem::path& file);

/// Writes the report while the run goes, to one or more streams (the --report file, stdout):
///   {"imgdl_version", "mode", "workers", "output_dir"[, "shard"], "results": [...], "invalid_lines": [...],
///    "totals", "interrupted", "exit_code"[, "compare"]}
/// where "shard" ({"index", "count", "block_size"}) says which share of the list a --shard run took, so
/// that `imgdl merge` can tell a missing or doubled shard.
/// The header is written by begin(), each result as it arrives (one object per line, in completion
/// order, with its input "index"), the rest by finish(). Invalid lines are found while results are
/// already being written, so they wait in an anonymous temporary file rather than in memory. Invalid
/// UTF-8 (URLs and names may hold any bytes) is replaced rather than thrown on mid-report.
/// Not thread-safe: results arrive on the thread that runs the Downloader.
class ReportWriter {
 public:
  explicit ReportWriter(std::vector<std::ostream*> sinks);
  ~ReportWriter();
  ReportWriter(const ReportWriter&) = delete;
  ReportWriter& operator=(const ReportWriter&) = delete;

  /// `mode`: "pooled", "sequential" or "compare"; `shard`: the run's share of the list, if it took one.
  void begin(std::string_view mode, std::size_t workers, const std::filesystem::path& output_dir,
             const std::optional<Shard>& shard = std::nullopt);
  /// One result; a WebDataset sample's key and a table row's caption and kept columns go with it
  /// ("key", "caption", "columns").
  void add_result(std::size_t index, const DownloadResult& result, const RowExtras* extras = nullptr);
  /// A result an earlier run recorded in the journal, with the caption and columns it kept
  /// (`extras_json`, from extras_json()), marked "earlier_run": true.
  void add_earlier_result(std::size_t index, const DownloadResult& result, std::string_view extras_json,
                          const std::optional<std::string>& key = std::nullopt);
  void add_invalid_line(const UrlLineError& error);
  /// A result or an invalid line already in the report's JSON form, one line of compact JSON (as
  /// `imgdl merge` reads them from other reports).
  void add_result_text(std::string_view json);
  void add_invalid_line_text(std::string_view json);
  /// Ends the report; `compare` is the --compare table. False if any stream failed along the way.
  bool finish(const Totals& totals, bool interrupted, int exit_code,
              const std::optional<nlohmann::ordered_json>& compare = std::nullopt);

 private:
  void write(std::string_view text);

  std::vector<std::ostream*> sinks_;
  std::size_t results_ = 0;
  std::FILE* spill_ = nullptr;  // the invalid lines, one JSON object per line
  std::string spill_fallback_;  // used only when no temporary file can be created
  bool spill_failed_ = false;
};

}  // namespace imgdl::app
