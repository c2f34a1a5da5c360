#pragma once
// URL lists as tables: CSV, TSV or JSON Lines (each optionally gzip- or zstd-compressed), with a URL
// column, an optional caption column and other columns kept with each row, read one row at a time.

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgdl/export.hpp"
#include "imgdl/url_list.hpp"

namespace imgdl {

/// How an input list is laid out.
enum class InputFormat {
  Auto,  ///< by the name's suffix (".csv", ".tsv", ".jsonl"/".ndjson", each maybe + ".gz"/".zst"), else Lines
  Lines,  ///< one URL per line (UrlListReader's rules)
  Csv,    ///< RFC 4180: a header row, comma-separated, quoted fields with "" and line breaks
  Tsv,    ///< as Csv, tab-separated
  Jsonl,  ///< one JSON object per line
};

/// "lines", "csv", "tsv", "jsonl" (also "ndjson"); nullopt otherwise. Thread-safe: pure.
[[nodiscard]] IMGDL_API std::optional<InputFormat> input_format_from_name(std::string_view name) noexcept;

/// The format a file name's suffix says, compression suffixes (".gz", ".zst", ".zstd") skipped; Lines
/// when it says none. Thread-safe: pure.
[[nodiscard]] IMGDL_API InputFormat input_format_for_name(std::string_view file_name) noexcept;

/// Which columns a table's rows give.
struct UrlTableOptions {
  InputFormat format = InputFormat::Auto;
  std::string url_column = "url";
  std::string caption_column;  ///< empty: no caption
  /// Columns kept with each row (besides the URL and caption). Empty keeps every other column.
  std::vector<std::string> keep_columns;
  bool keep_all_columns = true;  ///< false with an empty keep_columns keeps none
};

/// One row: its URL, caption and kept columns (in the table's order; JSON values that are not
/// strings are kept as their JSON text).
struct UrlRow {
  std::size_t line_number = 0;  ///< the row's first line, from 1 (a CSV row may span lines)
  std::string url;
  std::optional<std::string> caption;
  std::vector<std::pair<std::string, std::string>> columns;
};

/// Reads a URL table one row at a time, so a list of any length costs one row (rows are capped at
/// max_row_bytes). gzip and zstd input is found by its magic bytes and decompressed as it is read.
/// A bad row (an unterminated quote, a line that is not a JSON object, a missing or invalid URL) is
/// reported with its line number and skipped; a compressed input cut short or corrupt is reported
/// (with its byte offset) and ends the rows. The header's lack of the URL column (a CSV or TSV
/// header, or the first JSON object) is a usage error thrown by the constructor, before any row.
///
/// Thread-safety: none; one reader per stream, used from one thread. The stream must outlive it.
class IMGDL_API UrlTableReader {
 public:
  /// Largest row, in bytes, before it is refused (and, for CSV, parsing resumes on its next line).
  static constexpr std::size_t max_row_bytes = 1 << 20;

  using ErrorHandler = std::function<void(const UrlLineError&)>;

  /// `name` is the input's file name, for InputFormat::Auto. Throws std::invalid_argument when the
  /// URL column is missing (message names the column and the columns there are).
  UrlTableReader(std::istream& in, UrlTableOptions options, std::string_view name, ErrorHandler on_error);
  ~UrlTableReader();
  UrlTableReader(const UrlTableReader&) = delete;
  UrlTableReader& operator=(const UrlTableReader&) = delete;

  /// The next valid row, or nullopt at the end of the input.
  [[nodiscard]] std::optional<UrlRow> next();

  /// The format being read (Auto resolved).
  InputFormat format() const noexcept;
  /// Bad rows so far (each also given to the handler).
  std::size_t error_count() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imgdl
