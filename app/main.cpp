// imgdl: the command-line front end of the imgdl library. It parses arguments, runs the library's
// Downloader and prints; every download decision (naming, retries, checks, .part files) is in lib/.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
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

/// One Downloader run: its results and wall time.
struct Run {
  std::vector<DownloadResult> results;
  double elapsed_s = 0;
  std::size_t workers = 1;
};

/// Runs `urls` on a fresh Downloader. Ctrl-C cancels it (from the watcher's thread). Throws what the
/// Downloader's constructor throws (the output directory cannot be created, contradictory options).
Run run_downloader(const DownloadOptions& options, const std::vector<std::string>& urls, Mode mode,
                   InterruptWatcher& watcher, TerminalOutput& output) {
  Run run;
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
  output.begin_run(urls.size());
  const auto start = Clock::now();
  run.results = downloader->download_all(urls, mode);
  run.elapsed_s = to_seconds(Clock::now() - start);
  output.end_run();
  return run;
}

int run_app(AppSettings& settings, InterruptWatcher& watcher) {
  const auto start = Clock::now();
  std::FILE* human = settings.json ? stderr : stdout;

  LoadedUrls loaded;
  std::optional<std::ofstream> report_file;
  try {
    loaded = load_urls(settings, std::cerr);
    if (settings.report_file)
      report_file = open_report_file(*settings.report_file);
  } catch (const std::exception& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  }

  auto output = std::make_shared<TerminalOutput>(human, make_style(settings, human));
  DownloadOptions options = settings.download;
  options.observer = output;

  Run run;
  std::optional<Run> sequential_run;
  std::optional<CompareTable> table;
  std::string mode_name = settings.compare ? "compare" : settings.sequential ? "sequential" : "pooled";
  try {
    if (settings.compare) {
      ScratchDir scratch(options.output_dir);
      DownloadOptions scratch_options = options;
      scratch_options.output_dir = scratch.path() / "sequential";
      output->print_info("Sequential run (1 worker):");
      sequential_run = run_downloader(scratch_options, loaded.urls, Mode::Sequential, watcher, *output);
      if (!watcher.interrupted()) {
        scratch_options.output_dir = scratch.path() / "pooled";
        const std::size_t workers = options.max_workers.value_or(ThreadPoolExecutor::default_max_workers());
        output->print_info("\nPooled run (" + std::to_string(workers) + " workers):");
        run = run_downloader(scratch_options, loaded.urls, Mode::Pooled, watcher, *output);
        keep_files(run.results, options.output_dir, options.on_exists);
        table = make_compare_table(sequential_run->results, sequential_run->elapsed_s, run.results,
                                   run.elapsed_s, run.workers);
      } else {
        run = std::move(*sequential_run);
        sequential_run.reset();
      }
    } else {
      run = run_downloader(options, loaded.urls, settings.sequential ? Mode::Sequential : Mode::Pooled,
                           watcher, *output);
    }
  } catch (const std::system_error& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::invalid_argument& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  }

  const bool interrupted = watcher.interrupted();
  const Totals totals = compute_totals(run.results, loaded.invalid.size(), run.elapsed_s);
  bool all_ok = totals.all_ok();
  if (sequential_run)
    all_ok = all_ok && compute_totals(sequential_run->results, 0, 0).all_ok();
  const int exit_code = interrupted ? watcher.exit_code() : all_ok ? exit_ok : exit_some_failed;

  if (table)
    output->print_info("\n" + format_compare_table(*table));
  output->print_summary(totals, interrupted);
  output->print_info("It took " + format_seconds(to_seconds(Clock::now() - start), 3) +
                     " second(s) to finish.");

  if (report_file || settings.json) {
    ReportInput input;
    input.mode = mode_name;
    input.workers = run.workers;
    input.output_dir = options.output_dir;
    input.results = &run.results;
    input.invalid_lines = &loaded.invalid;
    input.totals = totals;
    input.interrupted = interrupted;
    input.exit_code = exit_code;
    if (table) {
      nlohmann::ordered_json compare = to_json(*table);
      nlohmann::ordered_json sequential_results = nlohmann::ordered_json::array();
      for (const auto& r : sequential_run->results)
        sequential_results.push_back(to_json(r));
      compare["sequential_results"] = std::move(sequential_results);
      input.compare = std::move(compare);
    }
    const nlohmann::ordered_json report = build_report(input);
    if (report_file && !write_report(*report_file, report)) {
      std::cerr << "imgdl: cannot write report '" << settings.report_file->string() << "'\n";
      return exit_code == exit_ok ? exit_some_failed : exit_code;
    }
    if (settings.json)
      write_report(std::cout, report);
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
