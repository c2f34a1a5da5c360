#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "imgdl/export.hpp"

namespace imgdl {

/// One URL from a list, as written (trimmed), with its 1-based line number.
struct UrlLine {
  std::size_t line_number = 0;
  std::string url;
};

/// A line that is not a valid URL, e.g. {7, "foo", "not a URL: foo"}, so a CLI can print
/// "line 7: not a URL: foo" and keep going.
struct UrlLineError {
  std::size_t line_number = 0;
  std::string text;     ///< the trimmed line for display: control bytes escaped as \xNN, cut to ~200 bytes
  std::string message;  ///< why it was rejected (one line, no trailing period)
};

/// Reads a URL list one line at a time, so a 1,000,000-line list costs only the current line:
///  - a UTF-8 byte-order mark at the very start is skipped;
///  - lines end at LF; a CR before it is dropped (CRLF files work);
///  - leading and trailing spaces, tabs, CR, VT and FF are trimmed;
///  - blank lines and lines whose first non-blank character is '#' are skipped; only whole-line
///    comments exist, because '#' inside a URL starts its fragment (so "http://h/a.jpg # cat" is an
///    invalid line: whitespace in URL);
///  - a line longer than max_line_bytes is an error "line too long (N bytes)"; only its first
///    max_line_bytes are ever buffered, the rest is read and discarded;
///  - every other line must be an absolute http(s) URL with a host and no whitespace or control bytes
///    (NUL included); otherwise it is an error with the reason from the URL parser.
///
/// Errors never stop reading: next() reports them (to the handler, or into errors()) and moves on to
/// the following line. A stream that fails (badbit) ends the list as if at end of file.
///
/// Thread-safety: none; one reader per stream, used from one thread at a time. The stream must
/// outlive the reader and must not be read by anyone else meanwhile.
class IMGDL_API UrlListReader {
 public:
  /// Lines longer than this many bytes (excluding the line ending) are rejected.
  static constexpr std::size_t max_line_bytes = 8192;

  /// Receives each invalid line as it is found, from inside next(), in line order.
  using ErrorHandler = std::function<void(const UrlLineError&)>;

  /// Reads from `in`. Without a handler, errors are collected in errors() (one small entry per bad
  /// line); with one, nothing is collected, so memory stays bounded whatever the input.
  explicit UrlListReader(std::istream& in, ErrorHandler on_error = {});

  /// The next valid URL, or nullopt at the end of the input. Invalid lines before it are reported
  /// and skipped.
  std::optional<UrlLine> next();

  /// Invalid lines so far, when no handler was given (empty otherwise).
  const std::vector<UrlLineError>& errors() const noexcept { return errors_; }

  /// How many invalid lines were found so far, with or without a handler.
  std::size_t error_count() const noexcept { return error_count_; }

  /// How many lines were read so far (the number of the last line read).
  std::size_t lines_read() const noexcept { return line_number_; }

 private:
  void report(std::string_view text, std::string message);

  std::istream& in_;
  ErrorHandler on_error_;
  std::vector<UrlLineError> errors_;
  std::size_t error_count_ = 0;
  std::size_t line_number_ = 0;
  std::string buffer_;  // holds at most max_line_bytes + 1 bytes (room for a CR before the LF)
};

/// Parses a whole list held in memory with the rules of UrlListReader; invalid lines are appended to
/// `*errors` if it is not null. Convenient for small lists, tests and fuzzing. Thread-safe: pure.
[[nodiscard]] IMGDL_API std::vector<UrlLine> parse_url_list(std::string_view text,
                                                            std::vector<UrlLineError>* errors);

}  // namespace imgdl
