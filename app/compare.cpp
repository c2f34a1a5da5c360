#include "compare.hpp"

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <functional>
#include <queue>
#include <system_error>

#include "format.hpp"
#include "imgdl/executor.hpp"
#include "report.hpp"

namespace imgdl::app {
namespace fs = std::filesystem;

ScratchDir::ScratchDir(const fs::path& parent) {
  fs::create_directories(parent);
  std::string templ = (parent / ".imgdl-compare-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot create a scratch directory in " + parent.string());
  }
  path_ = templ;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

double percentile(std::vector<double> values, double p) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

double lpt_makespan(std::vector<double> durations, std::size_t workers) {
  if (durations.empty() || workers == 0)
    return 0;
  std::sort(durations.begin(), durations.end(), std::greater<>());
  std::priority_queue<double, std::vector<double>, std::greater<>> loads;  // the least loaded on top
  for (std::size_t i = 0; i < std::min(workers, durations.size()); ++i)
    loads.push(0.0);
  double makespan = 0;
  for (double d : durations) {
    const double load = loads.top() + d;
    loads.pop();
    loads.push(load);
    makespan = std::max(makespan, load);
  }
  return makespan;
}

RunRow summarize_run(std::string mode, std::size_t workers, const std::vector<DownloadResult>& results,
                     double elapsed_s) {
  RunRow row;
  row.mode = std::move(mode);
  row.workers = workers;
  row.elapsed_s = elapsed_s;
  // The counts are the summary's (Totals); only the per-file times are the table's own.
  Totals totals;
  std::vector<double> times;
  for (const auto& r : results) {
    totals.add(r);
    if (r.status == DownloadStatus::Ok)
      times.push_back(to_seconds(r.elapsed));
  }
  row.files = totals.urls;
  row.files_ok = totals.ok + totals.skipped;
  row.bytes = totals.bytes;
  if (elapsed_s > 0) {
    row.files_per_s = static_cast<double>(row.files_ok) / elapsed_s;
    row.mb_per_s = static_cast<double>(row.bytes) / 1e6 / elapsed_s;
  }
  row.p50_s = percentile(times, 50);
  row.p95_s = percentile(times, 95);
  return row;
}

CompareTable make_compare_table(const std::vector<TimedRun>& runs, std::size_t ideal_workers) {
  CompareTable t;
  if (runs.empty())
    return t;
  const double baseline_s = runs.front().elapsed_s;
  for (const auto& run : runs) {
    t.runs.push_back(summarize_run(run.mode, run.workers, run.results, run.elapsed_s));
    if (&run != &runs.front())
      t.runs.back().speedup = run.elapsed_s > 0 ? baseline_s / run.elapsed_s : 0;
  }
  std::vector<double> times;
  for (const auto& r : runs.front().results) {
    if (r.status != DownloadStatus::Cancelled)
      times.push_back(to_seconds(r.elapsed));
  }
  t.ideal_workers = ideal_workers;
  t.ideal_pooled_s = lpt_makespan(times, ideal_workers);
  t.ideal_speedup = t.ideal_pooled_s > 0 ? baseline_s / t.ideal_pooled_s : 0;
  return t;
}

std::string format_compare_table(const CompareTable& t) {
  auto cell = [](const std::string& s, int width) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%*s", width, s.c_str());
    return std::string(buf);
  };
  auto fixed = [](double v, int decimals) { return format_seconds(v, decimals); };
  // The first column fits the longest label (at least "ideal pooled" and a space).
  int label_width = 13;
  for (const auto& row : t.runs)
    label_width = std::max(label_width, static_cast<int>(row.mode.size()) + 1);
  auto row_text = [&](const RunRow& r) {
    return cell(r.mode, -label_width) + cell(std::to_string(r.workers), 7) +
           cell(std::to_string(r.files_ok) + "/" + std::to_string(r.files), 10) +
           cell(format_bytes(r.bytes), 11) + cell(fixed(r.elapsed_s, 3) + " s", 11) +
           cell(fixed(r.files_per_s, 2), 9) + cell(fixed(r.mb_per_s, 2), 8) +
           cell(fixed(r.p50_s, 3) + " s", 10) + cell(fixed(r.p95_s, 3) + " s", 10) +
           cell(fixed(r.speedup, 2) + "x", 9) + "\n";
  };
  std::string s = cell("mode", -label_width) + cell("workers", 7) + cell("files ok", 10) + cell("bytes", 11) +
                  cell("elapsed", 11) + cell("files/s", 9) + cell("MB/s", 8) + cell("p50 file", 10) +
                  cell("p95 file", 10) + cell("speedup", 9) + "\n";
  for (const auto& row : t.runs)
    s += row_text(row);
  s += cell("ideal pooled", -label_width) + cell(std::to_string(t.ideal_workers), 7) + cell("-", 10) +
       cell("-", 11) + cell(fixed(t.ideal_pooled_s, 3) + " s", 11) + cell("-", 9) + cell("-", 8) +
       cell("-", 10) + cell("-", 10) + cell(fixed(t.ideal_speedup, 2) + "x", 9) + "\n";
  s +=
      "ideal pooled: the sequential run's per-file times scheduled longest-first onto " +
      std::to_string(t.ideal_workers) +
      " workers,\neach to the first one free (LPT): what a pool without contention or overhead would take.\n";
  return s;
}

nlohmann::ordered_json to_json(const RunRow& r) {
  return {{"mode", r.mode},
          {"workers", r.workers},
          {"files_ok", r.files_ok},
          {"files", r.files},
          {"bytes", r.bytes},
          {"elapsed_s", r.elapsed_s},
          {"files_per_s", r.files_per_s},
          {"mb_per_s", r.mb_per_s},
          {"p50_s", r.p50_s},
          {"p95_s", r.p95_s},
          {"speedup", r.speedup}};
}

nlohmann::ordered_json to_json(const CompareTable& t) {
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const auto& row : t.runs)
    runs.push_back(to_json(row));
  return {{"runs", std::move(runs)},
          {"ideal_pooled",
           {{"workers", t.ideal_workers},
            {"elapsed_s", t.ideal_pooled_s},
            {"speedup", t.ideal_speedup},
            {"definition",
             "LPT makespan: the sequential run's per-file times, longest first, each onto the worker that "
             "frees up "
             "first"}}}};
}

namespace {

/// A row of the table to time: the header printed before it, and how it downloads the whole list
/// with `options` (output_dir already chosen for it).
struct CompareRow {
  std::string header;
  std::function<TimedRun(const DownloadOptions& options)> run;
};

}  // namespace

RunOutcome run_compare(RunContext& ctx) {
  // Every row needs the whole list, so it is held in memory: lists for comparisons are small.
  std::vector<std::string> urls;
  while (auto next = ctx.source.next())
    urls.push_back(std::move(next->url));
  const std::size_t workers = ctx.options.max_workers.value_or(ThreadPoolExecutor::default_max_workers());

  // Timed in a scratch directory each, in this order: the baseline of the speedups first.
  const std::vector<CompareRow> scratch_rows = {
      {"Sequential run (1 worker):",
       [&](const DownloadOptions& o) { return run_list(ctx, o, urls, Mode::Sequential, "sequential"); }},
      // The seed's design: a blocking fetch per URL on each of as many threads as the pooled run has
      // transfer slots, so the rows differ only in how the transfers are driven.
      {"Thread-per-URL run (" + std::to_string(workers) + " threads, executor.map(download_image, urls)):",
       [&](const DownloadOptions& o) { return run_thread_per_url(ctx, o, urls, workers); }},
  };
  // Last, the row whose files are kept: a plain pooled run into the output directory, so the
  // library publishes them by its one rule (input-order names, --on-exists against files already
  // there, names planned for other URLs never taken), exactly as without --compare.
  const CompareRow kept_row = {
      "Pooled run (" + std::to_string(workers) + " workers):",
      [&](const DownloadOptions& o) { return run_list(ctx, o, urls, Mode::Pooled, "pooled"); }};

  std::vector<TimedRun> runs;
  for (const auto& row : scratch_rows) {
    if (!runs.empty() && ctx.watcher.interrupted())
      break;
    ctx.output.print_info(std::string(runs.empty() ? "" : "\n") + row.header);
    ScratchDir scratch(ctx.options.output_dir);
    DownloadOptions options = ctx.options;
    options.output_dir = scratch.path();
    runs.push_back(row.run(options));
  }
  const bool kept_row_ran = !ctx.watcher.interrupted();
  if (kept_row_ran) {
    ctx.output.print_info("\n" + kept_row.header);
    runs.push_back(kept_row.run(ctx.options));
  }

  // The summary and the report are the kept row's; interrupted before it, the last row's that ran,
  // and there is no table.
  const TimedRun& kept = runs.back();
  RunOutcome outcome;
  outcome.totals = compute_totals(kept.results, 0, kept.elapsed_s);
  if (ctx.report) {
    ctx.report->begin("compare", kept.workers, ctx.options.output_dir);
    for (std::size_t i = 0; i < kept.results.size(); ++i)
      ctx.report->add_result(i, kept.results[i]);
  }
  if (!kept_row_ran)
    return outcome;
  for (std::size_t i = 0; i + 1 < runs.size(); ++i)
    outcome.other_runs_ok = outcome.other_runs_ok && compute_totals(runs[i].results, 0, 0).all_ok();
  const CompareTable table = make_compare_table(runs, workers);
  outcome.table = format_compare_table(table);
  outcome.compare = to_json(table);
  nlohmann::ordered_json sequential_results = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < runs.front().results.size(); ++i)
    sequential_results.push_back(to_json(runs.front().results[i], i));
  (*outcome.compare)["sequential_results"] = std::move(sequential_results);
  return outcome;
}

}  // namespace imgdl::app
