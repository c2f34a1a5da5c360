#pragma once
// --compare: the runs it times, their scratch directories, and the timing table.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgdl/downloader.hpp"
#include "runners.hpp"

namespace imgdl::app {

/// A fresh directory `<parent>/.imgdl-compare-XXXXXX` (mkdtemp), removed with everything in it by the
/// destructor: a timed run there finds no files already downloaded, by the user or by another run.
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
  std::vector<RunRow> runs;  ///< the first, sequential, is the baseline of every speedup
  std::size_t ideal_workers = 0;
  double ideal_pooled_s = 0;  ///< lpt_makespan of the sequential run's per-file times
  double ideal_speedup = 1;
};

/// Builds the table, a row per run in order; speedups and the ideal (on `ideal_workers`) are relative
/// to the first run, the sequential one.
CompareTable make_compare_table(const std::vector<TimedRun>& runs, std::size_t ideal_workers);

/// The table as aligned text lines, with a note defining "ideal pooled".
std::string format_compare_table(const CompareTable& table);

nlohmann::ordered_json to_json(const RunRow& row);
nlohmann::ordered_json to_json(const CompareTable& table);

/// --compare: reads the whole list, times it sequentially in a scratch directory (removed after),
/// then runs it pooled into the output directory exactly as a plain pooled run would (same naming,
/// same --on-exists against files already there), and keeps those files. Runs the rows one after
/// the other, so none competes with another for the machine.
RunOutcome run_compare(RunContext& ctx);

}  // namespace imgdl::app
