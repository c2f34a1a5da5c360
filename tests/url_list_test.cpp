// URL list parsing: one URL per line, comments, errors with line numbers, bounded memory.
#include <doctest/doctest.h>

#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "imgdl/url_list.hpp"

using imgdl::parse_url_list;
using imgdl::UrlLine;
using imgdl::UrlLineError;
using imgdl::UrlListReader;

namespace {

std::vector<std::string> urls_of(const std::vector<UrlLine>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    out.push_back(l.url);
  }
  return out;
}

// Generates "http://h/<i>.jpg\n" lines on the fly, so a huge list never exists in memory.
class GeneratedList : public std::streambuf {
 public:
  explicit GeneratedList(std::size_t lines) : lines_(lines) {}

 protected:
  int_type underflow() override {
    if (next_ >= lines_) {
      return traits_type::eof();
    }
    current_ = "http://h/" + std::to_string(next_++) + ".jpg\n";
    setg(current_.data(), current_.data(), current_.data() + current_.size());
    return traits_type::to_int_type(current_[0]);
  }

 private:
  std::size_t lines_;
  std::size_t next_ = 0;
  std::string current_;
};

}  // namespace

TEST_CASE("parse_url_list reads one URL per line, skipping blanks and comments") {
  std::vector<UrlLineError> errors;
  const auto lines = parse_url_list(
      "http://a/1.jpg\n"
      "\n"
      "# a comment\n"
      "   # an indented comment\n"
      "  https://b/2.png  \n"
      "\t\n"
      "http://c/3.gif",
      &errors);
  CHECK(errors.empty());
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].line_number == 1);
  CHECK(lines[0].url == "http://a/1.jpg");
  CHECK(lines[1].line_number == 5);
  CHECK(lines[1].url == "https://b/2.png");
  CHECK(lines[2].line_number == 7);  // the last line needs no LF
  CHECK(lines[2].url == "http://c/3.gif");
}

TEST_CASE("parse_url_list handles a BOM, CRLF and fragments") {
  SUBCASE("BOM at the start") {
    const auto lines = parse_url_list("\xEF\xBB\xBFhttp://a/1.jpg\n", nullptr);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].url == "http://a/1.jpg");
  }
  SUBCASE("a BOM elsewhere is not skipped") {
    std::vector<UrlLineError> errors;
    const auto lines = parse_url_list("http://a/1.jpg\n\xEF\xBB\xBFhttp://a/2.jpg\n", &errors);
    CHECK(lines.size() == 1);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line_number == 2);
  }
  SUBCASE("CRLF") {
    const auto lines = parse_url_list("http://a/1.jpg\r\n\r\nhttp://a/2.jpg\r\n", nullptr);
    CHECK(urls_of(lines) == std::vector<std::string>{"http://a/1.jpg", "http://a/2.jpg"});
    REQUIRE(lines.size() == 2);
    CHECK(lines[1].line_number == 3);
  }
  SUBCASE("'#' inside a URL is its fragment; only whole-line comments exist") {
    std::vector<UrlLineError> errors;
    const auto lines = parse_url_list("http://a/1.jpg#top\nhttp://a/2.jpg # cat\n", &errors);
    CHECK(urls_of(lines) == std::vector<std::string>{"http://a/1.jpg#top"});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line_number == 2);
    CHECK(errors[0].message == "whitespace in URL");
  }
}

TEST_CASE("parse_url_list reports invalid lines with their numbers and parses the rest") {
  std::vector<UrlLineError> errors;
  const auto lines = parse_url_list(
      "http://a/1.jpg\n"
      "foo\n"
      "ftp://a/2.jpg\n"
      "http://a/3.jpg\n"
      "http://\n"
      "http://a/4.jpg\n",
      &errors);
  CHECK(urls_of(lines) == std::vector<std::string>{"http://a/1.jpg", "http://a/3.jpg", "http://a/4.jpg"});
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].line_number == 2);
  CHECK(errors[0].text == "foo");
  CHECK(errors[0].message == "not a URL: foo");
  CHECK(errors[1].line_number == 3);
  CHECK(errors[1].message == "unsupported scheme 'ftp' (only http and https)");
  CHECK(errors[2].line_number == 5);
  CHECK(errors[2].message == "missing host");
}

TEST_CASE("parse_url_list rejects NUL bytes and escapes control bytes in the error text") {
  std::vector<UrlLineError> errors;
  using namespace std::string_literals;
  const std::string text = "http://a/1\0.jpg\nhttp://a/\x1b[31m.jpg\nhttp://a/2.jpg\n"s;
  const auto lines = parse_url_list(text, &errors);
  CHECK(urls_of(lines) == std::vector<std::string>{"http://a/2.jpg"});
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].line_number == 1);
  CHECK(errors[0].message == "control character in URL");
  CHECK(errors[0].text == "http://a/1\\x00.jpg");
  CHECK(errors[1].text == "http://a/\\x1b[31m.jpg");
}

TEST_CASE("parse_url_list rejects a line over 8 KiB without keeping it and goes on") {
  std::vector<UrlLineError> errors;
  const std::string long_url = "http://a/" + std::string(20000, 'x') + ".jpg";
  const auto lines = parse_url_list("http://a/1.jpg\n" + long_url + "\nhttp://a/2.jpg\n", &errors);
  CHECK(urls_of(lines) == std::vector<std::string>{"http://a/1.jpg", "http://a/2.jpg"});
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].line_number == 2);
  CHECK(errors[0].message == "line too long (" + std::to_string(long_url.size()) + " bytes)");
  CHECK(errors[0].text.size() < 256);
  SUBCASE("also as the last line without LF") {
    errors.clear();
    CHECK(parse_url_list("http://a/1.jpg\n" + long_url, &errors).size() == 1);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "line too long (" + std::to_string(long_url.size()) + " bytes)");
  }
  SUBCASE("exactly at the limit, with or without CR, is fine") {
    const std::string at_limit = "http://a/" + std::string(UrlListReader::max_line_bytes - 9, 'y');
    REQUIRE(at_limit.size() == UrlListReader::max_line_bytes);
    errors.clear();
    CHECK(parse_url_list(at_limit + "\n" + at_limit + "\r\n" + at_limit, &errors).size() == 3);
    CHECK(errors.empty());
    CHECK(parse_url_list(at_limit + "z\n", &errors).empty());
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message == "line too long (8193 bytes)");
  }
}

TEST_CASE("parse_url_list of empty or comment-only input is empty") {
  std::vector<UrlLineError> errors;
  CHECK(parse_url_list("", &errors).empty());
  CHECK(parse_url_list("\n\n\r\n", &errors).empty());
  CHECK(parse_url_list("\xEF\xBB\xBF", &errors).empty());
  CHECK(parse_url_list("# only\n#comments", &errors).empty());
  CHECK(errors.empty());
}

TEST_CASE("UrlListReader hands errors to a handler in line order, interleaved with URLs") {
  std::istringstream in("foo\nhttp://a/1.jpg\nbar\n\nhttp://a/2.jpg\n");
  std::vector<std::string> events;
  UrlListReader reader(in, [&](const UrlLineError& e) {
    events.push_back("line " + std::to_string(e.line_number) + ": " + e.message);
  });
  while (auto line = reader.next()) {
    events.push_back("url " + std::to_string(line->line_number));
  }
  CHECK(events ==
        std::vector<std::string>{"line 1: not a URL: foo", "url 2", "line 3: not a URL: bar", "url 5"});
  CHECK(reader.errors().empty());  // a handler means nothing is collected
  CHECK(reader.error_count() == 2);
  CHECK(reader.lines_read() == 5);
  CHECK_FALSE(reader.next().has_value());  // stays at the end
}

TEST_CASE("UrlListReader streams a 1,000,000-line list without storing the lines") {
  GeneratedList source(1000000);
  std::istream in(&source);
  UrlListReader reader(in);
  std::size_t count = 0;
  std::size_t last_line = 0;
  while (auto line = reader.next()) {
    ++count;
    last_line = line->line_number;
  }
  CHECK(count == 1000000);
  CHECK(last_line == 1000000);
  CHECK(reader.error_count() == 0);
}
