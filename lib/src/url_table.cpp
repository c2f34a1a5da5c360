#include "imgdl/url_table.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <istream>
#include <stdexcept>

#include "decompress.hpp"
#include "display_text.hpp"
#include "naming.hpp"

namespace imgdl {
namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

std::string_view trim(std::string_view s) noexcept {
  auto blank = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  };
  while (!s.empty() && blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && blank(s.back()))
    s.remove_suffix(1);
  return s;
}

/// Bytes from a replay buffer (a CSV row given back after an error) first, then the stream.
struct CharSource {
  std::streambuf* buf;
  std::string replay;
  std::size_t replay_pos = 0;

  int get() {
    if (replay_pos < replay.size())
      return static_cast<unsigned char>(replay[replay_pos++]);
    return buf->sbumpc();
  }
  static bool eof(int c) { return c == std::char_traits<char>::eof(); }

  /// Gives `text` back to be read again before anything not yet read.
  void put_back(std::string_view text) {
    replay = std::string(text) + replay.substr(replay_pos);
    replay_pos = 0;
  }
};

}  // namespace

std::optional<InputFormat> input_format_from_name(std::string_view name) noexcept {
  if (name == "lines")
    return InputFormat::Lines;
  if (name == "csv")
    return InputFormat::Csv;
  if (name == "tsv")
    return InputFormat::Tsv;
  if (name == "jsonl" || name == "ndjson")
    return InputFormat::Jsonl;
  return std::nullopt;
}

InputFormat input_format_for_name(std::string_view file_name) noexcept {
  std::string name;
  try {
    name = lowercase(file_name);
  } catch (...) {
    return InputFormat::Lines;
  }
  std::string_view n = name;
  for (const std::string_view compressed : {".gz", ".zst", ".zstd"}) {
    if (n.ends_with(compressed)) {
      n.remove_suffix(compressed.size());
      break;
    }
  }
  if (n.ends_with(".csv"))
    return InputFormat::Csv;
  if (n.ends_with(".tsv") || n.ends_with(".tab"))
    return InputFormat::Tsv;
  if (n.ends_with(".jsonl") || n.ends_with(".ndjson"))
    return InputFormat::Jsonl;
  return InputFormat::Lines;
}

struct UrlTableReader::Impl {
  detail::DecompressingStream stream;
  UrlTableOptions options;
  InputFormat format;
  ErrorHandler on_error;
  std::size_t errors = 0;
  bool ended = false;
  bool input_error_reported = false;

  // Lines
  std::unique_ptr<UrlListReader> lines;
  // CSV and TSV
  CharSource source{nullptr, {}, 0};
  char delimiter = ',';
  std::size_t line = 0;  // lines read so far
  std::vector<std::string> header;
  std::size_t url_index = 0;
  std::optional<std::size_t> caption_index;
  std::vector<bool> keep;  // per column
  // JSON Lines
  std::optional<UrlRow> pending;  // the first row, read by the constructor to check its columns

  Impl(std::istream& in, UrlTableOptions o, std::string_view name, ErrorHandler handler)
      : stream(in), options(std::move(o)), on_error(std::move(handler)) {
    format = options.format == InputFormat::Auto ? input_format_for_name(name) : options.format;
    source.buf = stream.rdbuf();
    switch (format) {
      case InputFormat::Auto:
      case InputFormat::Lines:
        lines = std::make_unique<UrlListReader>(stream, [this](const UrlLineError& e) { report(e); });
        break;
      case InputFormat::Tsv:
        delimiter = '\t';
        [[fallthrough]];
      case InputFormat::Csv:
        read_header();
        break;
      case InputFormat::Jsonl:
        pending = next_json(true);
        break;
    }
  }

  void report(UrlLineError e) {
    ++errors;
    if (on_error)
      on_error(e);
  }
  void report(std::size_t at, std::string_view text, std::string message) {
    report(UrlLineError{at, detail::display_text(text), std::move(message)});
  }

  /// The input's own fault, once, after its last row.
  void report_input_error() {
    if (!stream.buf().error().empty() && !input_error_reported)
      report(line, "", stream.buf().error());
    input_error_reported = true;
  }

  bool kept(std::string_view column) const {
    if (options.keep_columns.empty())
      return options.keep_all_columns;
    return std::find(options.keep_columns.begin(), options.keep_columns.end(), column) !=
           options.keep_columns.end();
  }

  // ------------------------------------------------------------------------------------ CSV, TSV

  enum class Read { Row, End, Bad };

  /// One RFC 4180 row into `fields`. A row over max_row_bytes, or a quote still open at the end of
  /// the input, is Bad: reading resumes on the line after the row's first.
  Read read_row(std::vector<std::string>& fields, std::size_t& first_line, std::string& error) {
    enum class State { Start, Unquoted, Quoted, QuoteSeen };
    fields.clear();
    std::string field;
    std::string raw;
    State state = State::Start;
    first_line = line + 1;
    auto end_field = [&] {
      fields.push_back(std::move(field));
      field.clear();
      state = State::Start;
    };
    for (;;) {
      const int c = source.get();
      if (CharSource::eof(c)) {
        if (raw.empty())
          return Read::End;
        if (state == State::Quoted) {
          error = "unterminated quoted field";
          return give_back(raw);
        }
        ++line;  // the last line, without a line break
        end_field();
        return Read::Row;
      }
      const char ch = static_cast<char>(c);
      raw.push_back(ch);
      if (raw.size() > UrlTableReader::max_row_bytes) {
        error = state == State::Quoted ? "unterminated quoted field (the row passed 1 MiB)"
                                       : "row longer than 1 MiB";
        return give_back(raw);
      }
      if (ch == '\n')
        ++line;
      switch (state) {
        case State::Start:
          if (ch == '"') {
            state = State::Quoted;
            break;
          }
          [[fallthrough]];
        case State::Unquoted:
          if (ch == delimiter) {
            end_field();
          } else if (ch == '\n') {
            if (!field.empty() && field.back() == '\r')
              field.pop_back();
            end_field();
            return Read::Row;
          } else {
            field.push_back(ch);
            state = State::Unquoted;
          }
          break;
        case State::Quoted:
          if (ch == '"')
            state = State::QuoteSeen;
          else
            field.push_back(ch);
          break;
        case State::QuoteSeen:
          if (ch == '"') {
            field.push_back('"');
            state = State::Quoted;
          } else if (ch == delimiter) {
            end_field();
          } else if (ch == '\n') {
            end_field();
            return Read::Row;
          } else if (ch != '\r') {
            field.push_back(ch);  // text after a closing quote: kept, as common readers do
            state = State::Unquoted;
          }
          break;
      }
    }
  }

  /// A bad row's text after its first line is read again, so one stray quote costs one line.
  Read give_back(const std::string& raw) {
    const std::size_t first_break = raw.find('\n');
    if (first_break == std::string::npos) {
      // One overlong line: skip the rest of it.
      int c = source.get();
      while (!CharSource::eof(c) && c != '\n')
        c = source.get();
      if (c == '\n')
        ++line;
    } else {
      source.put_back(std::string_view(raw).substr(first_break + 1));
      line = line - static_cast<std::size_t>(std::count(
                        raw.begin() + static_cast<std::ptrdiff_t>(first_break) + 1, raw.end(), '\n'));
    }
    return Read::Bad;
  }

  void read_header() {
    std::size_t first_line = 0;
    std::string error;
    for (;;) {
      const Read r = read_row(header, first_line, error);
      if (r == Read::End) {
        report_input_error();
        throw std::invalid_argument("no header row: the input is empty");
      }
      if (r == Read::Bad)
        throw std::invalid_argument("the header row (line " + std::to_string(first_line) +
                                    ") is bad: " + error);
      if (header.size() == 1 && trim(header[0]).empty())
        continue;  // blank lines before the header
      break;
    }
    if (!header.empty() && header[0].starts_with("\xEF\xBB\xBF"))
      header[0].erase(0, 3);
    auto column = [&](const std::string& name) -> std::optional<std::size_t> {
      for (std::size_t i = 0; i < header.size(); ++i) {
        if (trim(header[i]) == name)
          return i;
      }
      return std::nullopt;
    };
    const auto url = column(options.url_column);
    if (!url)
      throw std::invalid_argument(missing_column("URL", options.url_column));
    url_index = *url;
    if (!options.caption_column.empty()) {
      caption_index = column(options.caption_column);
      if (!caption_index)
        throw std::invalid_argument(missing_column("caption", options.caption_column));
    }
    keep.resize(header.size());
    for (std::size_t i = 0; i < header.size(); ++i)
      keep[i] = i != url_index && i != caption_index && kept(std::string(trim(header[i])));
  }

  std::string missing_column(std::string_view what, const std::string& name) const {
    std::string columns;
    for (const auto& h : header)
      columns += (columns.empty() ? "" : ", ") + std::string(trim(h));
    return "no " + std::string(what) + " column '" + name + "' in the header (its columns: " + columns + ")";
  }

  std::optional<UrlRow> next_table_row() {
    std::vector<std::string> fields;
    std::size_t first_line = 0;
    std::string error;
    for (;;) {
      const Read r = read_row(fields, first_line, error);
      if (r == Read::End) {
        report_input_error();
        return std::nullopt;
      }
      if (r == Read::Bad) {
        report(first_line, "", error);
        continue;
      }
      if (fields.size() == 1 && trim(fields[0]).empty())
        continue;  // a blank line
      if (url_index >= fields.size()) {
        report(first_line, fields.empty() ? "" : fields[0],
               "no " + options.url_column + " field (the row has " + std::to_string(fields.size()) +
                   " fields, the header " + std::to_string(header.size()) + ")");
        continue;
      }
      UrlRow row;
      row.line_number = first_line;
      if (!accept_url(trim(fields[url_index]), first_line, row.url))
        continue;
      if (caption_index && *caption_index < fields.size())
        row.caption = std::move(fields[*caption_index]);
      for (std::size_t i = 0; i < fields.size() && i < header.size(); ++i) {
        if (keep[i])
          row.columns.emplace_back(std::string(trim(header[i])), std::move(fields[i]));
      }
      return row;
    }
  }

  bool accept_url(std::string_view url, std::size_t at, std::string& out) {
    std::string error;
    if (url.empty()) {
      report(at, "", "empty " + options.url_column + " field");
      return false;
    }
    if (!detail::parse_url(url, &error)) {
      report(at, url, std::move(error));
      return false;
    }
    out = std::string(url);
    return true;
  }

  // ------------------------------------------------------------------------------------ JSON Lines

  /// One line (without its LF), at most max_row_bytes kept; false at the end of the input.
  bool read_line(std::string& out, bool& too_long) {
    out.clear();
    too_long = false;
    int c = source.get();
    if (CharSource::eof(c))
      return false;
    for (; !CharSource::eof(c) && c != '\n'; c = source.get()) {
      if (out.size() < UrlTableReader::max_row_bytes)
        out.push_back(static_cast<char>(c));
      else
        too_long = true;
    }
    ++line;
    return true;
  }

  std::optional<UrlRow> next_json(bool first) {
    std::string text;
    bool too_long = false;
    while (read_line(text, too_long)) {
      if (too_long) {
        report(line, "", "line longer than 1 MiB");
        continue;
      }
      std::string_view body = trim(text);
      if (line == 1 && body.starts_with("\xEF\xBB\xBF"))
        body.remove_prefix(3);
      if (body.empty())
        continue;
      auto value = nlohmann::json::parse(body, nullptr, false);
      if (value.is_discarded()) {
        report(line, body, "not valid JSON");
        continue;
      }
      if (!value.is_object()) {
        report(line, body, "not a JSON object");
        continue;
      }
      const auto url = value.find(options.url_column);
      if (url == value.end()) {
        if (first) {
          std::string keys;
          for (const auto& [key, v] : value.items())
            keys += (keys.empty() ? "" : ", ") + key;
          throw std::invalid_argument("no URL field '" + options.url_column +
                                      "' in the first JSON object (line " + std::to_string(line) +
                                      "; its fields: " + keys + ")");
        }
        report(line, body, "no '" + options.url_column + "' field");
        continue;
      }
      if (!url->is_string()) {
        report(line, body, "'" + options.url_column + "' is not a string");
        continue;
      }
      if (first && !options.caption_column.empty() && !value.contains(options.caption_column))
        throw std::invalid_argument("no caption field '" + options.caption_column +
                                    "' in the first JSON object (line " + std::to_string(line) + ")");
      UrlRow row;
      row.line_number = line;
      if (!accept_url(trim(url->get_ref<const std::string&>()), line, row.url)) {
        first = false;
        continue;
      }
      for (const auto& [key, v] : value.items()) {
        if (key == options.url_column)
          continue;
        std::string text_value = v.is_string() ? v.get<std::string>() : v.dump();
        if (!options.caption_column.empty() && key == options.caption_column)
          row.caption = std::move(text_value);
        else if (kept(key))
          row.columns.emplace_back(key, std::move(text_value));
      }
      return row;
    }
    report_input_error();
    return std::nullopt;
  }

  std::optional<UrlRow> next() {
    if (ended)
      return std::nullopt;
    std::optional<UrlRow> row;
    switch (format) {
      case InputFormat::Auto:
      case InputFormat::Lines:
        if (auto l = lines->next()) {
          row = UrlRow{l->line_number, std::move(l->url), std::nullopt, {}};
        } else {
          line = lines->lines_read();
          report_input_error();
        }
        break;
      case InputFormat::Csv:
      case InputFormat::Tsv:
        row = next_table_row();
        break;
      case InputFormat::Jsonl:
        if (pending) {
          row = std::move(pending);
          pending.reset();
        } else {
          row = next_json(false);
        }
        break;
    }
    ended = !row;
    return row;
  }
};

UrlTableReader::UrlTableReader(std::istream& in, UrlTableOptions options, std::string_view name,
                               ErrorHandler on_error)
    : impl_(std::make_unique<Impl>(in, std::move(options), name, std::move(on_error))) {}

UrlTableReader::~UrlTableReader() = default;

std::optional<UrlRow> UrlTableReader::next() {
  return impl_->next();
}

InputFormat UrlTableReader::format() const noexcept {
  return impl_->format;
}

std::size_t UrlTableReader::error_count() const noexcept {
  return impl_->errors;
}

}  // namespace imgdl
