// imgdl: the command-line front end of the imgdl library. It parses arguments, hands the run to the
// runner of its mode (runners.hpp, compare.hpp) and prints; every download decision (naming, retries,
// checks, .part files, publishing) is in lib/.

#include <unistd.h>

#include <algorithm>
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
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "cli_options.hpp"
#include "compare.hpp"
#include "format.hpp"
#include "imgdl/downloader.hpp"
#include "interrupt.hpp"
#include "merge.hpp"
#include "report.hpp"
#include "runners.hpp"
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
    const InputFormat format = settings.table.format == InputFormat::Auto
                                   ? input_format_for_name(*settings.input)
                                   : settings.table.format;
    // A shard takes blocks of the list's URLs, whose count the cheap pass cannot tell: no total.
    const auto lines = style.bars && format == InputFormat::Lines && !settings.shard
                           ? count_list_lines(*settings.input)
                           : std::nullopt;
    planned = lines ? std::optional(*lines + settings.urls.size()) : std::nullopt;
  }
  if (settings.shard)
    planned.reset();

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

  RunContext ctx{settings.download, *source, report ? &*report : nullptr, *output, watcher, planned};
  ctx.options.observer = output;
  ctx.options.compute_sha256 = report.has_value();  // only the report shows digests
  if (settings.shard_size) {
    if (settings.compare) {
      std::cerr << "imgdl: --output-format webdataset does not combine with --compare\n";
      return exit_usage;
    }
    ctx.shard_size = settings.shard_size;
    ctx.options.compute_sha256 = true;  // each sample's JSON records it
  }
  ctx.shard = settings.shard;
  RunOutcome outcome;
  try {
    outcome = settings.compare      ? run_compare(ctx)
              : settings.sequential ? run_sequential(ctx)
                                    : run_pooled(ctx);
  } catch (const std::system_error& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::invalid_argument& e) {
    std::cerr << "imgdl: " << e.what() << "\n";
    return exit_usage;
  }
  Totals& totals = outcome.totals;
  totals.invalid_lines = source->invalid_count();

  const bool interrupted = watcher.interrupted();
  const bool all_ok = totals.all_ok() && outcome.other_runs_ok;
  int exit_code = interrupted ? watcher.exit_code() : all_ok ? exit_ok : exit_some_failed;
  if (!source->read_error().empty()) {
    // The list ended early; what was read still ran, but the command failed as an input error.
    std::cerr << "imgdl: " << source->read_error() << "\n";
    if (!interrupted)
      exit_code = exit_usage;
  }

  if (!outcome.table.empty())
    output->print_info("\n" + outcome.table);
  output->print_summary(totals, interrupted);
  output->print_info("It took " + format_seconds(to_seconds(Clock::now() - start), 3) +
                     " second(s) to finish.");

  if (report) {
    if (!report->finish(totals, interrupted, exit_code, outcome.compare)) {
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
  if (argc > 1 && std::string_view(argv[1]) == "merge")
    return run_merge(argc, argv);  // a subcommand of its own: no downloads, no signal handling
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
