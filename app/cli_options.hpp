#pragma once
// Command-line parsing: argv -> imgdl::DownloadOptions plus the app's own settings. No downloading.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "imgdl/downloader.hpp"
#include "imgdl/shard.hpp"
#include "imgdl/url_list.hpp"
#include "imgdl/url_table.hpp"

namespace imgdl::app {

/// Exit codes of the program.
inline constexpr int exit_ok = 0;
inline constexpr int exit_some_failed = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_interrupted = 130;

/// How progress is shown: Auto picks Bars on a terminal and Lines otherwise.
enum class ProgressMode { Auto, Bars, Lines, None };

/// Everything the command line asked for.
struct AppSettings {
  DownloadOptions download;               ///< observer left null: main() installs it
  std::vector<std::string> urls;          ///< positional URLs, in order
  std::optional<std::string> input;       ///< -i FILE; "-" is stdin
  UrlTableOptions table;                  ///< --input-format, --url-col, --caption-col, --keep-cols
  std::optional<std::size_t> shard_size;  ///< --output-format webdataset: samples per shard
  std::optional<Shard> shard;             ///< --shard K/N (or auto) and --shard-block: this process's share
  bool sequential = false;
  bool compare = false;
  /// The run journal (.imgdl/journal-<journal_id> in the output directory), kept for a list read from a
  /// file unless --no-journal; --retry-failed and --force are its flags.
  bool no_journal = false;
  bool retry_failed = false;
  bool force = false;
  std::string journal_id = "all";
  std::optional<std::filesystem::path> report_file;
  bool json = false;  ///< report on stdout, human output on stderr
  bool quiet = false;
  ProgressMode progress = ProgressMode::Auto;
};

/// Either settings to run with, or an exit code when parsing already finished the job (--help,
/// --version: 0; a usage error: 2, after printing it to stderr).
using ParseOutcome = std::variant<AppSettings, int>;

/// Parses argv with CLI11. Prints help, version and errors itself.
ParseOutcome parse_command_line(int argc, char** argv);

/// "10M" -> 10485760: a non-negative number (decimals allowed) with an optional K, M, G or T suffix
/// (powers of 1024; "KiB", "MB" and lowercase forms are accepted too). nullopt if malformed or too big.
std::optional<std::uint64_t> parse_size(std::string_view text);

/// "256x192" (or "256X192", "256×192") -> {256, 192}; each side 0 to 2^32-1. nullopt if malformed.
std::optional<std::pair<std::uint32_t, std::uint32_t>> parse_dimensions(std::string_view text);

/// A row's caption and kept columns, carried from the list to the URL's report entry.
struct RowExtras {
  std::optional<std::string> key;  ///< WebDataset output: the sample's key (set by the runner)
  std::optional<std::string> caption;
  std::vector<std::pair<std::string, std::string>> columns;
};

/// A URL of the list and its position in it (from 0, URL arguments first: the report's index).
struct SourceUrl {
  std::size_t position = 0;
  std::string url;
};

/// The URLs of a run, pulled one at a time so a list of any length costs only its current row:
/// the positional URLs first, then the rows of settings.input (a file, or stdin for "-": a list, CSV,
/// TSV or JSON Lines, maybe compressed) read with imgdl::UrlTableReader. Each invalid row is printed
/// on `errors` as "imgdl: FILE:LINE: skipped invalid line ...: MESSAGE" and passed to `on_invalid` as
/// it is read. A row's caption and columns wait in take_extras() until its result is reported, so
/// memory holds only the rows in flight.
///
/// With settings.shard, every URL of the input is still read and numbered (positions are the whole
/// input's), but next() gives only the shard's (imgdl::Shard::owns), and an invalid row is printed
/// and passed on only by the shard that owns the position the next valid row takes.
class UrlSource {
 public:
  using InvalidHandler = std::function<void(const UrlLineError&)>;

  /// Opens settings.input now, so a bad path fails before any download: throws std::runtime_error
  /// (with a user-facing message) if it is missing, unreadable or a directory.
  UrlSource(const AppSettings& settings, std::ostream& errors, InvalidHandler on_invalid = {});
  ~UrlSource();
  UrlSource(const UrlSource&) = delete;
  UrlSource& operator=(const UrlSource&) = delete;

  /// The next URL (of the shard's, with one), or nullopt at the end. A read error also ends the list
  /// (see read_error()).
  std::optional<SourceUrl> next();

  /// The caption and columns of the URL at `position`, once; nullopt when it had none.
  std::optional<RowExtras> take_extras(std::size_t position);

  std::size_t invalid_count() const noexcept { return invalid_count_; }
  /// "cannot read 'FILE': read error" once reading failed mid-way; empty otherwise.
  const std::string& read_error() const noexcept { return read_error_; }

 private:
  std::vector<std::string> positional_;
  std::size_t next_positional_ = 0;
  std::string display_;
  std::ostream& errors_;
  InvalidHandler on_invalid_;
  std::unique_ptr<std::istream> file_;  // null for stdin
  std::istream* in_ = nullptr;
  std::unique_ptr<UrlTableReader> reader_;  // reset at the end of the list
  bool keep_extras_ = false;
  std::optional<Shard> shard_;
  std::size_t positions_ = 0;                             // URLs read so far, this shard's or not
  std::size_t given_ = 0;                                 // URLs next() gave
  std::unordered_map<std::size_t, RowExtras> extras_;     // rows in flight with a caption or columns
  std::unordered_map<std::size_t, std::size_t> sharded_;  // with a shard: given index -> position
  std::size_t invalid_count_ = 0;
  std::string read_error_;
};

/// How many URLs the list `input` holds at most, counted cheaply (its non-blank lines that are not
/// comments; no URL parsing), for a progress total. nullopt for stdin ("-") or anything that is not a
/// regular file: reading those twice is impossible or unwise.
std::optional<std::size_t> count_list_lines(const std::string& input);

}  // namespace imgdl::app
