#pragma once
// Command-line parsing: argv -> imgdl::DownloadOptions plus the app's own settings. No downloading.

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "imgdl/downloader.hpp"
#include "imgdl/url_list.hpp"

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
  DownloadOptions download;          ///< observer left null: main() installs it
  std::vector<std::string> urls;     ///< positional URLs, in order
  std::optional<std::string> input;  ///< -i FILE; "-" is stdin
  bool sequential = false;
  bool compare = false;
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

/// The URLs of a list file (or stdin for "-"), after the positional ones.
struct LoadedUrls {
  std::vector<std::string> urls;
  std::vector<UrlLineError> invalid;  ///< bad lines, already reported on `errors`
};

/// Reads settings.input (if any) with imgdl::UrlListReader, reporting each invalid line on `errors`
/// as "imgdl: FILE:LINE: MESSAGE: TEXT". Throws std::runtime_error (with a user-facing message) if
/// the file is missing, unreadable or a directory.
LoadedUrls load_urls(const AppSettings& settings, std::ostream& errors);

}  // namespace imgdl::app
