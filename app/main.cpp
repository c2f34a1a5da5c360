// imgdl: the command-line front end of the imgdl library. It parses arguments, runs the library's
// Downloader and prints; every download decision (naming, retries, checks, .part files) is in lib/.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "cli_options.hpp"
#include "compare.hpp"
#include "format.hpp"
#include "imgdl/downloader.hpp"
#include "imgdl/executor.hpp"
#include "interrupt.hpp"
#include "report.hpp"
#include "terminal_output.hpp"

namespace imgdl::app {
namespace {

using Clock = std::chrono::steady_clock;

OutputStyle make_style(const AppSettings& s, std::FILE* out) {
  const bool tty = isatty(fileno(out)) == 1;
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  const bool dumb = term != nullptr && std::string(term) == "dumb";
  OutputStyle style;
  style.color = tty && !dumb && (no_color == nullptr || *no_color == '\0');
  if (s.quiet) {
    style.lines = false;
    style.summary = false;
    return style;
  }
  switch (s.progress) {
    case ProgressMode::Auto:
      style.bars = tty && !dumb;
      break;
    case ProgressMode::Bars:
      style.bars = true;
      break;
    case ProgressMode::Lines:
      break;
    case ProgressMode::None:
      style.lines = false;
      break;
  }
  return style;
}

/// One Downloader run's wall time and worker count.
struct RunInfo {
  double elapsed_s = 0;
  std::size_t workers = 1;
};

/// Runs `body` on a fresh Downloader that Ctrl-C cancels (from the watcher's thread), with the
/// progress display started for `files` URLs. Throws what the Downloader's constructor throws (the
/// output directory cannot be created, contradictory options).
RunInfo run_downloader(const DownloadOptions& options, Mode mode, std::optional<std::size_t> files,
                       InterruptWatcher& watcher, TerminalOutput& output,
                       const std::function<void(Downloader&, std::size_t workers)>& body) {
  RunInfo run;
  auto downloader = std::make_unique<Downloader>(options);
  run.workers = mode == Mode::Sequential ? 1 : downloader->options().max_workers.value_or(1);
  watcher.on_interrupt([&] {
    output.print("imgdl: interrupted, stopping (Ctrl-C again to quit at once)");
    downloader->cancel();
  });
  // Later signals only mark the run interrupted (the summary and report still get written); and the
  // callback above must not outlive `downloader`, whatever happens below.
  struct Disarm {
    InterruptWatcher& w;
    ~Disarm() {
      w.on_interrupt([] {});
    }
  } disarm{watcher};
  // A signal that came before the callback was installed (e.g. between two --compare runs).
  if (watcher.interrupted())
    downloader->cancel();
  output.begin_run(files);
  const auto start = Clock::now();
  body(*downloader, run.workers);
  run.elapsed_s = to_seconds(Clock::now() - start);
  output.end_run();
  return run;
}

/// A run of a whole list in memory (--compare's two runs): its results in input order.
struct ListRun {
  RunInfo info;
  std::vector<DownloadResult> results;
};

ListRun run_list(const DownloadOptions& options, const std::vector<std::string>& urls, Mode mode,
                 InterruptWatcher& watcher, TerminalOutput& output) {
  ListRun run;
  run.info = run_downloader(options, mode, urls.size(), watcher, output,
                            [&](Downloader& d, std::size_t) { run.results = d.download_all(urls, mode); });
  return run;
}

int run_app(AppSettings& settings, InterruptWatcher& watcher) {
  const auto start = Clock::now();
  std::FILE* human = settings.json ? stderr : stdout;
  const OutputStyle style = make_style(settings, human);
  auto output = std::make_shared<TerminalOutput>(human, style);

  // The overall bar's total: the URL arguments plus, for a regular file, its candidate lines (counted
  // in a cheap first pass, only when there is a bar to show), less the lines found invalid; unknown
  // for stdin until it ends.
  std::optional<std::size_t> planned = settings.urls.size();
  if (settings.input) {
    const auto lines = style.bars ? count_list_lines(*settings.input) : std::nullopt;
    planned = lines ? std::optional(*lines + settings.urls.size()) : std::nullopt;
  }

  std::optional<ReportWriter> report;
  std::optional<UrlSource> source;
  std::optional<std::ofstream> report_file;
  try {
    source.emplace(settings, std::cerr, [&](const UrlLineError& e) {
      if (report)
        report->add_invalid_line(e);
      if (planned)
        output->set_expected(*planned - std::min(*planned, source->invalid_count()));
    });
    if (settings.report_file)
      report_file = open_report_file(*settings.report_file);
  } catch (const std::exception& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  }
  if (report_file || settings.json) {
    std::vector<std::ostream*> sinks;
    if (report_file)
      sinks.push_back(&*report_file);
    if (settings.json)
      sinks.push_back(&std::cout);
    report.emplace(std::move(sinks));
  }

  DownloadOptions options = settings.download;
  options.observer = output;
  options.compute_sha256 = report.has_value();  // only the report shows digests

  RunInfo run;
  Totals totals;
  std::optional<ListRun> sequential_run;
  std::optional<CompareTable> table;
  const Mode mode = settings.sequential ? Mode::Sequential : Mode::Pooled;
  const std::string mode_name = settings.compare ? "compare" : settings.sequential ? "sequential" : "pooled";
  try {
    if (settings.compare) {
      // Lists for comparisons are small: both runs need the whole list, so it is held in memory.
      std::vector<std::string> urls;
      while (auto url = source->next())
        urls.push_back(std::move(*url));
      ScratchDir scratch(options.output_dir);
      DownloadOptions scratch_options = options;
      scratch_options.output_dir = scratch.path() / "sequential";
      output->print_info("Sequential run (1 worker):");
      sequential_run = run_list(scratch_options, urls, Mode::Sequential, watcher, *output);
      ListRun kept;
      if (!watcher.interrupted()) {
        scratch_options.output_dir = scratch.path() / "pooled";
        const std::size_t workers = options.max_workers.value_or(ThreadPoolExecutor::default_max_workers());
        output->print_info("\nPooled run (" + std::to_string(workers) + " workers):");
        kept = run_list(scratch_options, urls, Mode::Pooled, watcher, *output);
        keep_files(kept.results, options.output_dir, options.on_exists);
        table = make_compare_table(sequential_run->results, sequential_run->info.elapsed_s, kept.results,
                                   kept.info.elapsed_s, kept.info.workers);
      } else {
        kept = std::move(*sequential_run);
        sequential_run.reset();
      }
      run = kept.info;
      totals = compute_totals(kept.results, 0, run.elapsed_s);
      if (report) {
        report->begin(mode_name, run.workers, options.output_dir);
        for (std::size_t i = 0; i < kept.results.size(); ++i)
          report->add_result(i, kept.results[i]);
      }
    } else {
      // Stream: URLs are pulled as workers free up and each result is counted and reported as it
      // completes, so memory does not grow with the list.
      run = run_downloader(options, mode, planned, watcher, *output, [&](Downloader& d, std::size_t workers) {
        if (report)
          report->begin(mode_name, workers, options.output_dir);
        std::size_t pulled = 0;
        d.download_stream(
            [&]() -> std::optional<std::string> {
              auto url = source->next();
              if (url)
                ++pulled;
              else
                output->set_expected(pulled);  // the exact total, now that the list has ended
              return url;
            },
            [&](std::size_t index, DownloadResult&& r) {
              totals.add(r);
              if (report)
                report->add_result(index, r);
            },
            mode);
      });
      totals.elapsed_s = run.elapsed_s;
    }
  } catch (const std::system_error& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::invalid_argument& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  }
  totals.invalid_lines = source->invalid_count();

  const bool interrupted = watcher.interrupted();
  bool all_ok = totals.all_ok();
  if (sequential_run)
    all_ok = all_ok && compute_totals(sequential_run->results, 0, 0).all_ok();
  int exit_code = interrupted ? watcher.exit_code() : all_ok ? exit_ok : exit_some_failed;
  if (!source->read_error().empty()) {
    // The list ended early; what was read still ran, but the command failed as an input error.
    std::cerr << "imgdl: " << source->read_error() << "\n";
    if (!interrupted)
      exit_code = exit_usage;
  }

  if (table)
    output->print_info("\n" + format_compare_table(*table));
  output->print_summary(totals, interrupted);
  output->print_info("It took " + format_seconds(to_seconds(Clock::now() - start), 3) +
                     " second(s) to finish.");

  if (report) {
    std::optional<nlohmann::ordered_json> compare;
    if (table) {
      compare = to_json(*table);
      nlohmann::ordered_json sequential_results = nlohmann::ordered_json::array();
      for (std::size_t i = 0; i < sequential_run->results.size(); ++i)
        sequential_results.push_back(to_json(sequential_run->results[i], i));
      (*compare)["sequential_results"] = std::move(sequential_results);
    }
    if (!report->finish(totals, interrupted, exit_code, compare)) {
      std::cerr << "imgdl: cannot write report '"
                << (settings.report_file ? settings.report_file->string() : std::string("<stdout>")) << "'\n";
      return exit_code == exit_ok ? exit_some_failed : exit_code;
    }
  }
  return exit_code;
}

}  // namespace
}  // namespace imgdl::app

int main(int argc, char** argv) {
  using namespace imgdl::app;
  try {
    // First, before any thread exists: every later thread inherits the blocked SIGINT/SIGTERM.
    InterruptWatcher watcher;
    auto parsed = parse_command_line(argc, argv);
    if (const int* code = std::get_if<int>(&parsed))
      return *code;
    return run_app(std::get<AppSettings>(parsed), watcher);
  } catch (const std::exception& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_some_failed;
  }
}
