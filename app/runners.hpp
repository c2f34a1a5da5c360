#pragma once
// One runner per mode: run_sequential and run_pooled stream the list through one Downloader;
// run_compare (compare.hpp) times several runs of the whole list. A runner drives the library, feeds
// the progress display and the report, and hands main() what it prints at the end.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_options.hpp"
#include "imgdl/downloader.hpp"
#include "imgdl/run_journal.hpp"
#include "interrupt.hpp"
#include "report.hpp"
#include "terminal_output.hpp"

namespace imgdl::app {

/// What every runner works with, set up by main().
struct RunContext {
  DownloadOptions options;  ///< the command line's, with the observer and compute_sha256 set
  UrlSource& source;
  ReportWriter* report = nullptr;  ///< null without --report and --json
  TerminalOutput& output;
  InterruptWatcher& watcher;
  std::optional<std::size_t> planned;     ///< the overall bar's total, when known up front (less done rows)
  std::optional<std::size_t> shard_size;  ///< WebDataset output: samples per shard
  std::optional<Shard> shard;             ///< --shard: this process's share of the list, for the report
  /// The run journal, when one is kept (a list from a file): done positions are not fetched but
  /// reported from it, and each result is recorded in it.
  RunJournal* journal = nullptr;
};

/// What a runner leaves for main(): the summary's totals and, from --compare, the table.
struct RunOutcome {
  Totals totals;
  bool other_runs_ok = true;  ///< --compare: every run whose files were not kept was all ok too
  std::string table;          ///< --compare's table, printed before the summary
  std::optional<nlohmann::ordered_json> compare;  ///< --compare's part of the report
};

/// One timed run of a whole list: a row of the --compare table.
struct TimedRun {
  std::string mode;  ///< the row's label: "sequential", "thread per URL", "pooled"
  std::size_t workers = 1;
  double elapsed_s = 0;
  std::vector<DownloadResult> results;  ///< in input order
};

/// Runs `body` on a fresh Downloader made from `options`, which Ctrl-C cancels (from the watcher's
/// thread), with the progress display started for `files` URLs. Returns the wall time of `body`.
/// Throws what the Downloader's constructor throws (the output directory cannot be created,
/// contradictory options).
double run_downloader(RunContext& ctx, const DownloadOptions& options, std::optional<std::size_t> files,
                      const std::function<void(Downloader&)>& body);

/// Downloads all of `urls` in `mode` into options.output_dir, results held in input order.
TimedRun run_list(RunContext& ctx, const DownloadOptions& options, const std::vector<std::string>& urls,
                  Mode mode, std::string label);

/// --compare's "thread per URL" row: the seed's design, executor.map(download_image, urls) on a pool of
/// `workers` threads, each call one blocking fetch on its own easy handle, into options.output_dir.
/// Ctrl-C stops the calls (running ones abort, the others end Cancelled). Results in input order.
TimedRun run_thread_per_url(RunContext& ctx, const DownloadOptions& options,
                            const std::vector<std::string>& urls, std::size_t workers);

/// --sequential: one transfer at a time, in input order, streamed. With a journal, the positions an
/// earlier run finished are reported from it first (marked earlier_run) and skipped in the list.
RunOutcome run_sequential(RunContext& ctx);
/// The default: the list streamed through the pool, URLs pulled as transfer slots free up, so memory
/// does not grow with the list.
RunOutcome run_pooled(RunContext& ctx);

}  // namespace imgdl::app
