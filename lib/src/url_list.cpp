#include "imgdl/url_list.hpp"

#include <istream>
#include <limits>
#include <sstream>

#include "display_text.hpp"
#include "naming.hpp"

namespace imgdl {
namespace {

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_blank(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_blank(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

namespace detail {

std::string display_text(std::string_view s) {
  constexpr std::size_t kMax = 200;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : s) {
    if (out.size() >= kMax) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace detail

using detail::display_text;

UrlListReader::UrlListReader(std::istream& in, ErrorHandler on_error)
    : in_(in), on_error_(std::move(on_error)), buffer_(max_line_bytes + 2, '\0') {}

void UrlListReader::report(std::string_view text, std::string message) {
  ++error_count_;
  UrlLineError error{line_number_, display_text(text), std::move(message)};
  if (on_error_) {
    on_error_(error);
  } else {
    errors_.push_back(std::move(error));
  }
}

std::optional<UrlLine> UrlListReader::next() {
  for (;;) {
    if (!in_.good()) {
      return std::nullopt;
    }
    // getline() stores at most max_line_bytes + 1 bytes (a line of exactly the limit plus its CR).
    // It sets failbit without eofbit only when that many were stored and the line goes on.
    in_.getline(buffer_.data(), static_cast<std::streamsize>(buffer_.size()), '\n');
    const auto extracted = static_cast<std::size_t>(in_.gcount());
    if (extracted == 0) {
      return std::nullopt;  // end of input (or a failed stream): not even an LF was read
    }
    ++line_number_;
    const bool truncated = in_.fail() && !in_.eof();
    // gcount() counts the LF when there was one (neither truncated nor at end of file); it is not stored.
    const std::size_t stored = (truncated || in_.eof()) ? extracted : extracted - 1;
    std::string_view line(buffer_.data(), stored);

    if (truncated) {
      in_.clear();
      in_.ignore(std::numeric_limits<std::streamsize>::max(), '\n');  // discard the rest unbuffered
      std::size_t total = stored + static_cast<std::size_t>(in_.gcount());
      if (!in_.eof()) {
        --total;  // the LF ending the line
      }
      report(line, "line too long (" + std::to_string(total) + " bytes)");
      continue;
    }
    if (line_number_ == 1 && line.starts_with("\xEF\xBB\xBF")) {
      line.remove_prefix(3);
    }
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.size() > max_line_bytes) {
      report(line, "line too long (" + std::to_string(line.size()) + " bytes)");
      continue;
    }
    line = trim(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    std::string error;
    if (!detail::parse_url(line, &error)) {
      report(line, std::move(error));
      continue;
    }
    return UrlLine{line_number_, std::string(line)};
  }
}

std::vector<UrlLine> parse_url_list(std::string_view text, std::vector<UrlLineError>* errors) {
  std::istringstream in{std::string(text)};
  UrlListReader reader(in, errors == nullptr ? UrlListReader::ErrorHandler([](const UrlLineError&) {})
                                             : UrlListReader::ErrorHandler([errors](const UrlLineError& e) {
                                                 errors->push_back(e);
                                               }));
  std::vector<UrlLine> out;
  while (auto line = reader.next()) {
    out.push_back(std::move(*line));
  }
  return out;
}

}  // namespace imgdl
