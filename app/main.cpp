// imgdl: the command-line front end of the imgdl library. It parses arguments, hands the run to the
// runner of its mode (runners.hpp, compare.hpp) and prints; every download decision (naming, retries,
// checks, .part files, publishing) is in lib/.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
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
#include "imgdl/run_journal.hpp"
#include "imgdl/webdataset.hpp"
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

std::string_view format_name(InputFormat format) {
  switch (format) {
    case InputFormat::Auto:
      return "auto";
    case InputFormat::Lines:
      return "lines";
    case InputFormat::Csv:
      return "csv";
    case InputFormat::Tsv:
      return "tsv";
    case InputFormat::Jsonl:
      return "jsonl";
  }
  return "auto";
}

/// What a rerun must share with the run that started the journal: the list (the file's checksum, and
/// the URL arguments before it) and the options that change names or outcomes. Throws JournalError
/// when the list cannot be read.
JournalManifest journal_manifest(const AppSettings& s) {
  JournalManifest m;
  m.input_checksum = RunJournal::checksum_file(*s.input);
  m.settings = journal_settings(s.download);
  auto add = [&m](std::string name, std::string value) {
    m.settings.emplace_back(std::move(name), std::move(value));
  };
  if (!s.urls.empty()) {
    std::string joined;
    for (const auto& url : s.urls)
      joined += url + "\n";
    add("url_arguments", RunJournal::checksum_text(joined));
  }
  add("output_format", s.shard_size ? "webdataset" : "files");
  if (s.shard_size)
    add("shard_size", std::to_string(*s.shard_size));
  if (s.shard)  // the journal's name holds K and N; another block size would own other positions
    add("shard_block", std::to_string(s.shard->block_size));
  add("input_format", std::string(format_name(s.table.format)));
  add("url_col", s.table.url_column);
  add("caption_col", s.table.caption_column);
  std::string keep = s.table.keep_all_columns ? "(all)" : "";
  for (const auto& column : s.table.keep_columns)
    keep += (keep.empty() ? "" : ",") + column;
  add("keep_cols", keep);
  return m;
}

/// For WebDataset output, whether a journal's record of a position still holds: only once its shard is
/// published is its sample kept (a run stopped earlier left the shard unpublished, to be fetched again).
/// Positions come in increasing order: one look at the directory per shard.
std::function<bool(std::size_t)> published_shard_test(const std::filesystem::path& dir,
                                                      std::size_t shard_size) {
  return [dir, shard_size, shard = static_cast<std::size_t>(-1), published = false](std::size_t p) mutable {
    if (p / shard_size != shard) {
      shard = p / shard_size;
      published = WebDatasetWriter::published(dir, shard);
    }
    return published;
  };
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

  // The run journal, for a list read from a file: opened (locked, checked against its manifest) before
  // anything is fetched, so a refusal costs nothing.
  std::optional<RunJournal> journal;
  // Only a regular file can be read twice (its checksum, then its rows): a pipe (`-i <(zcat ...)`),
  // like stdin, keeps no journal.
  std::error_code not_regular;
  const bool regular_input = settings.input && *settings.input != "-" &&
                             std::filesystem::is_regular_file(*settings.input, not_regular);
  const bool journaled = regular_input && !settings.no_journal && !settings.compare;
  if (!journaled && (settings.retry_failed || settings.force)) {
    std::cerr
        << "imgdl: --retry-failed and --force work on the run journal, kept only for a list read from a "
           "regular file (-i FILE)\n";
    return exit_usage;
  }
  if (journaled) {
    try {
      JournalOptions options;
      options.output_dir = settings.download.output_dir;
      options.id = settings.journal_id;
      options.force = settings.force;
      options.retry_failed = settings.retry_failed;
      options.manifest = journal_manifest(settings);
      if (settings.shard_size)
        options.still_done = published_shard_test(settings.download.output_dir, *settings.shard_size);
      journal.emplace(std::move(options));
    } catch (const std::exception& e) {
      std::cerr << "imgdl: " << e.what() << "\n";
      return exit_usage;
    }
    if (planned)  // the bar counts what this run fetches
      *planned -= std::min(*planned, journal->done_count());
    if (journal->dropped_bytes() > 0)
      std::cerr << "imgdl: " << journal->path().string() << ": dropped " << journal->dropped_bytes()
                << " bytes of a record cut short (an earlier run was killed while writing it)\n";
  }

  RunContext ctx{settings.download, *source, report ? &*report : nullptr, *output, watcher, planned};
  ctx.journal = journal ? &*journal : nullptr;
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
  if (journal) {
    journal->flush();
    if (const std::string error = journal->error(); !error.empty())
      std::cerr << "imgdl: run journal: " << error << " (a rerun will fetch the URLs it misses again)\n";
  }

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
