#include "cli_options.hpp"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include "imgdl/executor.hpp"
#include "imgdl/version.hpp"
#include "merge.hpp"
#include "option_docs.hpp"

namespace imgdl::app {
namespace {

std::string version_text() {
  return "imgdl " + std::string(imgdl::version()) + " (libcurl " + std::string(imgdl::libcurl_version()) +
         ")";
}

std::chrono::milliseconds seconds_to_ms(double seconds) {
  return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

/// Shows each option's placeholder (FILE, N, ...) and nothing else: CLI11's type, validator and
/// "Excludes:" annotations made the help hard to read; the descriptions say the same in words.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* opt) const override {
    return opt->get_option_text().empty() ? std::string() : " " + opt->get_option_text();
  }
};

/// A value that must be one of `names`' keys (in any case), mapped to its value. The validator's name
/// lists the keys (choices_validator_prefix), which is how the man page and completion learn them.
template <class T>
CLI::Validator one_of(const std::map<std::string, T>& names) {
  std::string listed(choices_validator_prefix);
  for (const auto& entry : names)
    listed += " " + entry.first;
  return CLI::CheckedTransformer(names, CLI::ignore_case).description("").name(listed);
}

/// --workers' help: with this machine's default when there is one (--help), without it in the
/// generated man page, which must not depend on the machine that built it.
std::string workers_description(bool with_this_machine) {
  return "Concurrent transfers (default: min(32, CPUs + 4)" +
         (with_this_machine ? " = " + std::to_string(ThreadPoolExecutor::default_max_workers()) : "") +
         ", as Python's)";
}

constexpr std::string_view footer_text = R"(Examples:
  imgdl https://upload.wikimedia.org/wikipedia/commons/4/48/Python_Regius.jpg
  imgdl -i sample_urls/wikipedia.txt -o downloads/ -j 8
  imgdl --compare -i sample_urls/wikipedia.txt -o downloads/
  grep -v '^#' urls.txt | imgdl -i - --json > report.json
  imgdl -c -i urls.txt --max-size 10M     # resume what an interrupted run left

Input lists hold one http(s) URL per line; blank lines and lines starting with '#' are skipped.
Files are named after the URL's last path segment; names already taken get .1, .2, ... (--on-exists).
--compare times the list sequentially in a scratch directory (removed after), then pooled into
the output directory exactly as without --compare, and prints a timing table.
Lists of any length are read as the downloads go, so memory stays bounded. The report (--report,
--json) is written as results arrive: "results" is in completion order (input order with --compare)
and each entry's "index" is its position in the input, from 0, URL arguments first. Files' SHA-256
digests are computed only when a report is asked for.

A list read from a file (-i FILE) keeps a run journal in DIR/.imgdl/: rerunning the same command
skips what is done (successes and permanent failures such as 404) and fetches the rest;
--retry-failed also fetches the transient failures again. A changed list or option is refused
unless --force.

--shard K/N splits one list over N processes (machines, Slurm array tasks, pods) by blocks of
--shard-block URLs; each writes its own --report, and 'imgdl merge' joins the reports into the one a
single run would have written ('imgdl merge --help'). See docs/scale.md.

Exit status: 0 all ok (skips count as ok), 1 some failed, 2 usage or input error, 130 interrupted.
Set NO_COLOR to disable colours.)";

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  std::size_t pos = 0;
  while (pos < text.size() && ((text[pos] >= '0' && text[pos] <= '9') || text[pos] == '.'))
    ++pos;
  const std::string number(text.substr(0, pos));
  if (number.empty() || number == "." || number.find('.') != number.rfind('.'))
    return std::nullopt;
  std::string unit(text.substr(pos));
  for (char& c : unit)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // "k", "kb", "kib" all mean 1024: sizes here are file sizes, and curl counts them the same way.
  static const std::map<std::string, int, std::less<>> shifts = {
      {"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
      {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40}};
  const auto shift = shifts.find(unit);
  if (shift == shifts.end())
    return std::nullopt;
  const double value = std::strtod(number.c_str(), nullptr) * std::ldexp(1.0, shift->second);
  // 2^63 keeps the conversion below exact and well-defined.
  if (!(value >= 0.0) || value >= std::ldexp(1.0, 63))
    return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(value));
}

std::optional<std::pair<std::uint32_t, std::uint32_t>> parse_dimensions(std::string_view text) {
  std::size_t sep = text.find_first_of("xX");
  std::size_t sep_len = 1;
  if (sep == std::string_view::npos) {
    sep = text.find("\u00d7");
    sep_len = std::string_view("\u00d7").size();
  }
  if (sep == std::string_view::npos)
    return std::nullopt;
  auto side = [](std::string_view digits) -> std::optional<std::uint32_t> {
    std::uint32_t value = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
      return std::nullopt;
    return value;
  };
  const auto width = side(text.substr(0, sep));
  const auto height = side(text.substr(sep + sep_len));
  if (!width || !height)
    return std::nullopt;
  return std::pair(*width, *height);
}

ParseOutcome parse_command_line(int argc, char** argv) {
  AppSettings settings;
  DownloadOptions& dl = settings.download;

  CLI::App app{"imgdl: download images concurrently, one file per URL.", "imgdl"};
  app.footer(std::string(footer_text));
  app.formatter(std::make_shared<HelpFormatter>());
  app.get_formatter()->column_width(26);
  app.set_version_flag("--version", version_text(), "Print the version (and libcurl's) and exit");

  app.add_option("URL", settings.urls, "URLs to download, before those of --input")->option_text("...");
  std::string input;
  auto* input_opt = app.add_option("-i,--input", input,
                                   "Read URLs from FILE: a list, one per line, or a table (--input-format); "
                                   "gzip or zstd compressed or not ('-' reads stdin)")
                        ->option_text("FILE");
  std::string output_dir = ".";
  app.add_option("-o,--output-dir", output_dir, "Save files in DIR, created if missing (default: .)")
      ->option_text("DIR");

  std::size_t workers = 0;
  auto* workers_opt = app.add_option("-j,--workers", workers, workers_description(true))
                          ->option_text("N")
                          ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  app.add_option("--per-host", dl.per_host,
                 "Most concurrent transfers to one host, a host being scheme, name and port (default: 0, "
                 "no limit)")
      ->option_text("N")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--per-host-rate", dl.per_host_rate,
                 "Most requests started per second to one host, evenly spaced; fractions allowed, e.g. 0.5 "
                 "(default: 0, no limit)")
      ->option_text("N")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--unreachable-after", dl.unreachable_after,
                 "After N connect failures or timeouts in a row to one host, fail its remaining URLs at once "
                 "as host_unreachable (default: 5; 0: never)")
      ->option_text("N")
      ->check(CLI::NonNegativeNumber);
  bool no_host_pause = false;
  app.add_flag("--no-host-pause", no_host_pause,
               "A 429/503 Retry-After delays only its URL (default: it pauses the whole host)");
  app.add_option("--transfer-threads", dl.transfer_threads,
                 "Threads driving the transfers, sharing --workers (default: 0, one per 16 workers, at most "
                 "one per CPU; 1 with --per-host)")
      ->option_text("N")
      ->check(CLI::Range(std::size_t{0}, std::size_t{64}));
  auto* sequential_opt =
      app.add_flag("--sequential", settings.sequential, "One transfer at a time, in input order");
  app.add_flag("--compare", settings.compare, "Run sequentially, then pooled; print a timing table")
      ->excludes(sequential_opt);

  app.add_option("--retries", dl.retries, "Further attempts after a transient failure (default: 3)")
      ->option_text("N")
      ->check(CLI::Range(0, 100));
  double timeout_s = 0;
  app.add_option("--timeout", timeout_s, "Limit on each attempt, in seconds (default: 0, none)")
      ->option_text("SECONDS")
      ->check(CLI::NonNegativeNumber);
  double connect_timeout_s = 30;
  app.add_option("--connect-timeout", connect_timeout_s, "Limit on connecting, in seconds (default: 30)")
      ->option_text("SECONDS")
      ->check(CLI::NonNegativeNumber);
  std::string max_size;
  app.add_option("--max-size", max_size, "Refuse files larger than SIZE (e.g. 500K, 10M, 1G)")
      ->option_text("SIZE")
      ->check(
          [](const std::string& s) { return parse_size(s) ? std::string() : "not a size (e.g. 10M): " + s; },
          "SIZE");
  app.add_option("--user-agent", dl.user_agent, "User-Agent header (default: imgdl/VERSION (+URL) libcurl/V)")
      ->option_text("TEXT");

  const std::map<std::string, OnExists> on_exists_names = {{"rename", OnExists::Rename},
                                                           {"skip", OnExists::Skip},
                                                           {"overwrite", OnExists::Overwrite},
                                                           {"resume", OnExists::Resume}};
  auto* on_exists_opt = app.add_option("--on-exists", dl.on_exists,
                                       "If a file exists: rename (default), skip, overwrite, resume")
                            ->option_text("MODE")
                            ->transform(one_of(on_exists_names));
  bool resume = false;
  bool no_clobber = false;
  auto* resume_opt =
      app.add_flag("-c,--continue", resume, "Same as --on-exists resume")->excludes(on_exists_opt);
  app.add_flag("--no-clobber", no_clobber, "Same as --on-exists skip")
      ->excludes(on_exists_opt)
      ->excludes(resume_opt);
  bool any_type = false;
  app.add_flag("--any-type", any_type, "Keep bodies that are not images (default: refuse them)");
  const std::map<std::string, InputFormat> format_names = {{"auto", InputFormat::Auto},
                                                           {"lines", InputFormat::Lines},
                                                           {"csv", InputFormat::Csv},
                                                           {"tsv", InputFormat::Tsv},
                                                           {"jsonl", InputFormat::Jsonl}};
  app.add_option(
         "--input-format", settings.table.format,
         "auto (by the file's suffix: .csv, .tsv, .jsonl, each maybe .gz or .zst; else lines), lines, "
         "csv, tsv, jsonl")
      ->option_text("FORMAT")
      ->transform(one_of(format_names));
  app.add_option("--url-col", settings.table.url_column, "The URL column of a table (default: url)")
      ->option_text("NAME");
  app.add_option("--caption-col", settings.table.caption_column, "A table's caption column (default: none)")
      ->option_text("NAME");
  std::string keep_cols;
  auto* keep_cols_opt =
      app.add_option("--keep-cols", keep_cols,
                     "Columns kept with each result, comma-separated (default: every other column; '' none)")
          ->option_text("LIST");
  std::string output_format = "files";
  auto* output_format_opt =
      app.add_option("--output-format", output_format,
                     "files (default: one file per URL), webdataset (tar shards of --shard-size samples)")
          ->option_text("FORMAT")
          ->transform(
              one_of(std::map<std::string, std::string>{{"files", "files"}, {"webdataset", "webdataset"}}));
  std::size_t shard_size = 10000;
  app.add_option("--shard-size", shard_size, "Samples per WebDataset shard (default: 10000)")
      ->option_text("N")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}));
  std::string shard;
  auto* shard_opt =
      app.add_option("--shard", shard,
                     "Take only shard K of N of the list (K from 0), by blocks of --shard-block URLs: "
                     "K/N, auto (from a Slurm array, Open MPI, PMI or a Slurm step), auto/N (also a "
                     "Kubernetes Indexed Job's JOB_COMPLETION_INDEX)")
          ->option_text("K/N|auto");
  std::size_t shard_block = Shard::default_block_size;
  auto* shard_block_opt =
      app.add_option("--shard-block", shard_block,
                     "URLs per block of --shard; with webdataset a multiple of --shard-size (default: " +
                         std::to_string(Shard::default_block_size) + ")")
          ->option_text("N")
          ->check(CLI::Range(std::size_t{1}, std::numeric_limits<std::size_t>::max()));
  std::string min_size;
  app.add_option("--min-size", min_size, "Refuse images narrower or shorter than WxH (e.g. 256x256)")
      ->option_text("WxH")
      ->check(
          [](const std::string& s) {
            return parse_dimensions(s) ? std::string() : "not WxH (e.g. 256x256): " + s;
          },
          "WxH");
  app.add_option("--max-pixels", dl.max_pixels,
                 "Refuse images of more than N pixels, width x height (default: 178956970; 0: no limit)")
      ->option_text("N")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-aspect", dl.max_aspect,
                 "Refuse images whose longer side is over R times the shorter (e.g. 3; default: none)")
      ->option_text("R")
      ->check(CLI::Range(1.0, 1e9));
  std::string ca_file;
  app.add_option("--cacert", ca_file, "Trust these PEM CA certificates instead of the system's")
      ->option_text("FILE")
      ->check(CLI::ExistingFile);
  app.add_flag("-k,--insecure", dl.insecure, "Do not verify TLS certificates (unsafe)");

  app.add_flag("--retry-failed", settings.retry_failed,
               "Rerunning a list: also fetch again the URLs an earlier run failed for a transient reason "
               "(timeouts, connection errors, 5xx, ...)");
  app.add_flag("--force", settings.force,
               "Start a new run journal even though the list or options changed since the last run");
  auto* no_journal_opt =
      app.add_flag("--no-journal", settings.no_journal,
                   "Keep no run journal (DIR/.imgdl/): a rerun then fetches the whole list again");
  std::string report_file;
  auto* report_opt = app.add_option("--report", report_file, "Write a JSON report of every URL to FILE")
                         ->option_text("FILE");
  app.add_flag("--json", settings.json, "Print the JSON report on stdout (human output goes to stderr)");
  auto* quiet_opt = app.add_flag("-q,--quiet", settings.quiet, "Print only failures and errors");
  const std::map<std::string, ProgressMode> progress_names = {{"auto", ProgressMode::Auto},
                                                              {"bars", ProgressMode::Bars},
                                                              {"lines", ProgressMode::Lines},
                                                              {"none", ProgressMode::None}};
  app.add_option("--progress", settings.progress, "auto (bars on a terminal, else lines), bars, lines, none")
      ->option_text("MODE")
      ->transform(one_of(progress_names))
      ->excludes(quiet_opt);

  // Hidden (group ""): the build runs it to make the man page's options and the shell completion
  // from this very table (app/CMakeLists.txt, cmake/generate_docs.cmake).
  std::string generate_doc;
  app.add_option("--generate-doc", generate_doc, "Print the man page's options or a completion script")
      ->group("")
      ->check(
          CLI::IsMember({std::string(doc_kind_man), std::string(doc_kind_bash), std::string(doc_kind_zsh)}));

  try {
    app.parse(argc, argv);
    if (!generate_doc.empty()) {
      workers_opt->description(workers_description(false));
      const auto docs = option_docs(app);
      const std::vector<SubcommandDoc> subcommands = {merge_doc()};
      std::cout << (generate_doc == doc_kind_man    ? render_man_options(docs)
                    : generate_doc == doc_kind_bash ? render_bash_completion(docs, subcommands)
                                                    : render_zsh_completion(docs, subcommands));
      return exit_ok;
    }
    if (settings.urls.empty() && input_opt->count() == 0) {
      throw CLI::ValidationError("no URLs: give URL arguments or --input FILE");
    }
    if (shard_block_opt->count() > 0 && shard_opt->count() == 0)
      throw CLI::ValidationError("--shard-block needs --shard");
    // The journal is kept for a list read from a file: only that can be read again and checked.
    if ((settings.retry_failed || settings.force) &&
        (input_opt->count() == 0 || input == "-" || no_journal_opt->count() > 0 || settings.compare)) {
      throw CLI::ValidationError(std::string(settings.retry_failed ? "--retry-failed" : "--force") +
                                 " works on the run journal, kept only for a list read from a file "
                                 "(-i FILE), without --no-journal and --compare");
    }
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
      return app.exit(e);
    std::cerr << "imgdl: " << e.what() << "\nRun 'imgdl --help' for usage.\n";
    return exit_usage;
  }

  if (input_opt->count() > 0)
    settings.input = input;
  if (report_opt->count() > 0)
    settings.report_file = report_file;
  dl.ca_file = ca_file;
  dl.output_dir = output_dir;
  if (workers_opt->count() > 0)
    dl.max_workers = workers;
  dl.timeout = seconds_to_ms(timeout_s);
  dl.connect_timeout = seconds_to_ms(connect_timeout_s);
  if (!max_size.empty())
    dl.max_file_size = *parse_size(max_size);
  if (resume)
    dl.on_exists = OnExists::Resume;
  if (no_clobber)
    dl.on_exists = OnExists::Skip;
  dl.require_image = !any_type;
  dl.retry_after_pauses_host = !no_host_pause;
  if (!min_size.empty())
    std::tie(dl.min_width, dl.min_height) = *parse_dimensions(min_size);
  if (output_format_opt->count() > 0 && output_format == "webdataset")
    settings.shard_size = shard_size;
  if (shard_opt->count() > 0) {
    try {
      settings.shard = parse_shard(shard, shard_block);
      settings.journal_id = settings.shard->id();  // each shard's run keeps its own journal
    } catch (const std::invalid_argument& e) {
      std::cerr << "imgdl: " << e.what() << "\nRun 'imgdl --help' for usage.\n";
      return exit_usage;
    }
    std::string conflict;
    if (settings.compare)
      conflict = "--shard does not combine with --compare";
    else if (settings.shard_size && !settings.shard->fits_tar_shards(*settings.shard_size))
      conflict = "--shard-block " + std::to_string(shard_block) + " is not a multiple of --shard-size " +
                 std::to_string(*settings.shard_size) +
                 ": each WebDataset tar must fall inside one block, or two shards would write it";
    if (!conflict.empty()) {
      std::cerr << "imgdl: " << conflict << "\nRun 'imgdl --help' for usage.\n";
      return exit_usage;
    }
  }
  if (keep_cols_opt->count() > 0) {
    settings.table.keep_all_columns = false;
    std::string_view rest = keep_cols;
    while (!rest.empty()) {
      const std::size_t comma = std::min(rest.find(','), rest.size());
      if (comma > 0)
        settings.table.keep_columns.emplace_back(rest.substr(0, comma));
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
  }
  return settings;
}

UrlSource::UrlSource(const AppSettings& settings, std::ostream& errors, InvalidHandler on_invalid)
    : positional_(settings.urls),
      errors_(errors),
      on_invalid_(std::move(on_invalid)),
      shard_(settings.shard) {
  if (!settings.input)
    return;
  const std::string& input = *settings.input;
  display_ = input == "-" ? "<stdin>" : input;
  if (input == "-") {
    in_ = &std::cin;
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(input, ec))
      throw std::runtime_error("cannot read '" + input + "': is a directory");
    errno = 0;
    auto file = std::make_unique<std::ifstream>(input, std::ios::binary);
    if (!*file) {
      const int err = errno;
      throw std::runtime_error("cannot read '" + input +
                               "': " + (err != 0 ? std::strerror(err) : "cannot open"));
    }
    file_ = std::move(file);
    in_ = file_.get();
  }
  keep_extras_ = !settings.compare;  // --compare reads the whole list first, and reports no columns
  auto on_error = [this](const UrlLineError& e) {
    if (shard_ && !shard_->owns(positions_))
      return;  // another shard's: the one that owns the next valid row's position reports it
    errors_ << "imgdl: " << display_ << ":" << e.line_number << ": skipped invalid line";
    if (!e.text.empty())
      errors_ << " \"" << e.text << "\"";
    errors_ << ": " << e.message << "\n";
    ++invalid_count_;
    if (on_invalid_)
      on_invalid_(e);
  };
  try {
    reader_ = std::make_unique<UrlTableReader>(*in_, settings.table, input, on_error);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(display_ + ": " + e.what() +
                             " (choose the columns with --url-col and --caption-col)");
  }
}

UrlSource::~UrlSource() = default;

std::optional<SourceUrl> UrlSource::next() {
  for (;;) {
    std::optional<std::string> url;
    std::optional<RowExtras> extras;
    if (next_positional_ < positional_.size()) {
      url = std::move(positional_[next_positional_++]);
    } else if (!reader_) {
      return std::nullopt;
    } else if (auto row = reader_->next()) {
      url = std::move(row->url);
      if (keep_extras_ && (row->caption || !row->columns.empty()))
        extras = RowExtras{std::nullopt, std::move(row->caption), std::move(row->columns)};
    } else {
      if (in_->bad() && read_error_.empty())
        read_error_ = "cannot read '" + display_ + "': read error";
      reader_.reset();  // the list has ended: never read past it again
      return std::nullopt;
    }
    const std::size_t position = positions_++;
    if (shard_ && !shard_->owns(position))
      continue;  // another shard's
    if (extras)
      extras_.emplace(position, std::move(*extras));
    return SourceUrl{position, std::move(*url)};
  }
}

std::optional<RowExtras> UrlSource::take_extras(std::size_t position) {
  const auto it = extras_.find(position);
  if (it == extras_.end())
    return std::nullopt;
  RowExtras extras = std::move(it->second);
  extras_.erase(it);
  return extras;
}

std::optional<std::size_t> count_list_lines(const std::string& input) {
  std::error_code ec;
  if (input == "-" || !std::filesystem::is_regular_file(input, ec))
    return std::nullopt;
  std::ifstream in(input, std::ios::binary);
  if (!in)
    return std::nullopt;
  // UrlListReader's rules without its URL parsing: skip a leading BOM, blank lines and comments.
  std::size_t count = 0;
  bool line_start = true;  // nothing but blanks seen on this line yet
  std::vector<char> buffer(std::size_t{1} << 16);
  bool first_chunk = true;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::string_view chunk(buffer.data(), static_cast<std::size_t>(in.gcount()));
    if (first_chunk && (chunk.starts_with("\x1f\x8b") || chunk.starts_with("\x28\xb5\x2f\xfd")))
      return std::nullopt;  // compressed: counting would need a second decompression
    if (first_chunk && chunk.starts_with("\xEF\xBB\xBF"))
      chunk.remove_prefix(3);
    first_chunk = false;
    for (const char c : chunk) {
      if (c == '\n') {
        line_start = true;
      } else if (line_start && c != ' ' && c != '\t' && c != '\r' && c != '\v' && c != '\f') {
        line_start = false;
        if (c != '#')
          ++count;
      }
    }
  }
  return count;
}

}  // namespace imgdl::app
