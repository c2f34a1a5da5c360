#pragma once
// --compare: the scratch directories, moving the pooled run's files into place, and the timing table.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgdl/downloader.hpp"

namespace imgdl::app {

/// A fresh directory `<parent>/.imgdl-compare-XXXXXX` (mkdtemp), removed with everything in it by the
/// destructor, so neither run finds the other's files.
class ScratchDir {
 public:
  /// Creates `parent` if needed. Throws std::system_error.
  explicit ScratchDir(const std::filesystem::path& parent);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// Moves every Ok file of `results` from where the run saved it into `output_dir`, honouring
/// `on_exists` against files already there: Rename picks name.1.ext, name.2.ext, ...; Skip keeps the
/// existing file (the result becomes Skipped); Overwrite and Resume replace it. Never overwrites
/// through a race (rename with RENAME_NOREPLACE). Rewrites each result's path to its place in
/// output_dir. A file that cannot be moved makes its result Failed (ErrorKind::Write).
void keep_files(std::vector<DownloadResult>& results, const std::filesystem::path& output_dir,
                OnExists on_exists);

/// One row of the table.
struct RunRow {
  std::string mode;
  std::size_t workers = 0;
  std::size_t files_ok = 0;  ///< Ok or Skipped
  std::size_t files = 0;
  std::uint64_t bytes = 0;
  double elapsed_s = 0;
  double files_per_s = 0;
  double mb_per_s = 0;  ///< decimal megabytes (10^6 bytes) per second
  double p50_s = 0;     ///< per-file time (DownloadResult::elapsed) of the Ok files, nearest rank
  double p95_s = 0;
  double speedup = 1;  ///< sequential elapsed / this elapsed
};

RunRow summarize_run(std::string mode, std::size_t workers, const std::vector<DownloadResult>& results,
                     double elapsed_s);

/// Nearest-rank percentile (p in [0, 100]) of `values`; 0 for none.
double percentile(std::vector<double> values, double p);

/// The makespan of scheduling `durations` onto `workers` identical workers by LPT: longest first, each
/// onto the worker that frees up first. A greedy schedule within 4/3 of the optimum, and what a pool
/// that keeps every worker busy achieves when each file takes the time it took alone.
double lpt_makespan(std::vector<double> durations, std::size_t workers);

struct CompareTable {
  RunRow sequential;
  RunRow pooled;
  std::size_t ideal_workers = 0;
  double ideal_pooled_s = 0;  ///< lpt_makespan of the sequential run's per-file times
  double ideal_speedup = 1;
};

/// Builds the table; the pooled row's speedup and the ideal are relative to the sequential run.
CompareTable make_compare_table(const std::vector<DownloadResult>& sequential, double sequential_s,
                                const std::vector<DownloadResult>& pooled, double pooled_s,
                                std::size_t workers);

/// The table as aligned text lines, with a note defining "ideal pooled".
std::string format_compare_table(const CompareTable& table);

nlohmann::ordered_json to_json(const RunRow& row);
nlohmann::ordered_json to_json(const CompareTable& table);

}  // namespace imgdl::app
