// URL tables: CSV, TSV and JSON Lines, plain or compressed, read a row at a time.
#include <doctest/doctest.h>
#include <zlib.h>
#include <zstd.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "imgdl/url_table.hpp"

using imgdl::InputFormat;
using imgdl::UrlLineError;
using imgdl::UrlRow;
using imgdl::UrlTableOptions;
using imgdl::UrlTableReader;

namespace {

struct Read {
  std::vector<UrlRow> rows;
  std::vector<UrlLineError> errors;
};

Read read_table(const std::string& bytes, std::string_view name, UrlTableOptions options = {}) {
  std::istringstream in(bytes);
  Read out;
  UrlTableReader reader(in, std::move(options), name,
                        [&](const UrlLineError& e) { out.errors.push_back(e); });
  while (auto row = reader.next())
    out.rows.push_back(std::move(*row));
  return out;
}

std::string gzip(const std::string& text) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, text.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3);
  REQUIRE(!ZSTD_isError(n));
  out.resize(n);
  return out;
}

/// A CSV of `rows` data rows: url, caption (with a comma, a quote and a line break every tenth row).
std::string big_csv(int rows) {
  std::string csv = "url,caption,id\n";
  for (int i = 0; i < rows; ++i) {
    const std::string caption = i % 10 == 0 ? "\"a \"\"cat\"\",\nline two\"" : "a dog, small";
    csv += "http://h/" + std::to_string(i) + ".jpg," + (i % 10 == 0 ? caption : "\"" + caption + "\"") + "," +
           std::to_string(i) + "\n";
  }
  return csv;
}

}  // namespace

TEST_CASE("a CSV's rows give their URL, caption and every other column, with quotes and line breaks") {
  const std::string csv =
      "\xEF\xBB\xBFid,url,caption,width\r\n"
      "1,http://h/a.jpg,\"a cat, \"\"Tom\"\"\",640\r\n"
      "2,http://h/b.jpg,\"two\nlines\",480\r\n"
      "\r\n"
      "3,  http://h/c.jpg  ,plain,320";
  UrlTableOptions o;
  o.caption_column = "caption";
  const auto read = read_table(csv, "list.csv", o);
  CHECK(read.errors.empty());
  REQUIRE(read.rows.size() == 3);
  CHECK(read.rows[0].url == "http://h/a.jpg");
  CHECK(read.rows[0].caption == "a cat, \"Tom\"");
  CHECK(read.rows[0].line_number == 2);
  CHECK(read.rows[0].columns ==
        std::vector<std::pair<std::string, std::string>>{{"id", "1"}, {"width", "640"}});
  CHECK(read.rows[1].caption == "two\nlines");
  CHECK(read.rows[2].line_number == 6);  // the blank line counts; the quoted line break too
  CHECK(read.rows[2].url == "http://h/c.jpg");
}

TEST_CASE("kept columns can be chosen, or none kept") {
  const std::string csv = "url,a,b,c\nhttp://h/x.jpg,1,2,3\n";
  UrlTableOptions some;
  some.keep_columns = {"c", "a"};
  CHECK(read_table(csv, "x.csv", some).rows[0].columns ==
        std::vector<std::pair<std::string, std::string>>{{"a", "1"}, {"c", "3"}});
  UrlTableOptions none;
  none.keep_all_columns = false;
  CHECK(read_table(csv, "x.csv", none).rows[0].columns.empty());
}

TEST_CASE("an unterminated quote costs its own line only: the rows after it are read") {
  const std::string csv =
      "url,caption\n"
      "http://h/1.jpg,fine\n"
      "http://h/2.jpg,\"never closed\n"
      "http://h/3.jpg,fine\n"
      "http://h/4.jpg,fine\n";
  const auto read = read_table(csv, "x.csv");
  REQUIRE(read.errors.size() == 1);
  CHECK(read.errors[0].line_number == 3);
  CHECK(read.errors[0].message == "unterminated quoted field");
  REQUIRE(read.rows.size() == 3);
  CHECK(read.rows[1].url == "http://h/3.jpg");
  CHECK(read.rows[1].line_number == 4);
  CHECK(read.rows[2].line_number == 5);
}

TEST_CASE("bad rows are reported with their line and skipped") {
  const std::string csv =
      "url,caption\n"
      "not a url,x\n"
      ",empty\n"
      "http://h/ok.jpg,fine\n"
      "onlyonefield\n";
  UrlTableOptions o;
  o.url_column = "caption";  // every row has a second field but the last
  const auto by_caption = read_table(csv, "x.csv", o);
  CHECK(by_caption.rows.empty());
  const auto read = read_table(csv, "x.csv");
  REQUIRE(read.rows.size() == 1);
  REQUIRE(read.errors.size() == 3);
  CHECK(read.errors[0].line_number == 2);
  CHECK(read.errors[1].line_number == 3);
  CHECK(read.errors[1].message == "empty url field");
  CHECK(read.errors[2].line_number == 5);
  CHECK(read.errors[2].message.starts_with("not a URL"));
}

TEST_CASE("a missing URL or caption column is refused before any row, naming the columns there are") {
  std::istringstream csv("link,text\nhttp://h/a.jpg,x\n");
  CHECK_THROWS_WITH_AS(UrlTableReader(csv, {}, "x.csv", {}),
                       "no URL column 'url' in the header (its columns: link, text)", std::invalid_argument);
  UrlTableOptions o;
  o.url_column = "link";
  o.caption_column = "caption";
  std::istringstream again("link,text\nhttp://h/a.jpg,x\n");
  CHECK_THROWS_WITH_AS(UrlTableReader(again, o, "x.csv", {}),
                       "no caption column 'caption' in the header (its columns: link, text)",
                       std::invalid_argument);
  std::istringstream jsonl("{\"link\": \"http://h/a.jpg\"}\n");
  CHECK_THROWS_AS(UrlTableReader(jsonl, {}, "x.jsonl", {}), std::invalid_argument);
}

TEST_CASE("a TSV is a CSV with tabs") {
  const auto read = read_table("url\tcaption\nhttp://h/a.jpg\ta, b\n", "list.tsv");
  REQUIRE(read.rows.size() == 1);
  CHECK(read.rows[0].columns == std::vector<std::pair<std::string, std::string>>{{"caption", "a, b"}});
}

TEST_CASE("JSON Lines give each object's fields; a line that is not an object is reported and skipped") {
  const std::string jsonl =
      "{\"url\": \"http://h/a.jpg\", \"caption\": \"a cat\", \"width\": 640, \"tags\": [\"x\"]}\n"
      "[1, 2]\n"
      "{\"url\": 5}\n"
      "{not json\n"
      "\n"
      "{\"caption\": \"no url\"}\n"
      "{\"url\": \"http://h/b.jpg\"}\n";
  UrlTableOptions o;
  o.caption_column = "caption";
  const auto read = read_table(jsonl, "list.jsonl", o);
  REQUIRE(read.rows.size() == 2);
  CHECK(read.rows[0].caption == "a cat");
  CHECK(read.rows[0].columns ==
        std::vector<std::pair<std::string, std::string>>{{"tags", "[\"x\"]"}, {"width", "640"}});
  CHECK(read.rows[1].line_number == 7);
  REQUIRE(read.errors.size() == 4);
  CHECK(read.errors[0].line_number == 2);
  CHECK(read.errors[0].message == "not a JSON object");
  CHECK(read.errors[1].message == "'url' is not a string");
  CHECK(read.errors[2].message == "not valid JSON");
  CHECK(read.errors[3].message == "no 'url' field");
  CHECK(read.errors[3].line_number == 6);
}

TEST_CASE("gzip and zstd input is found by its magic bytes and read as it streams") {
  const std::string csv = big_csv(20000);  // well over one 64 KiB buffer, compressed
  const auto plain = read_table(csv, "x.csv");
  REQUIRE(plain.rows.size() == 20000);
  for (const auto& [bytes, name] : {std::pair(gzip(csv), "x.csv.gz"), std::pair(zstd(csv), "x.csv.zst"),
                                    std::pair(gzip(csv), "no-suffix.csv")}) {
    CAPTURE(name);
    const auto read = read_table(bytes, name);
    CHECK(read.errors.empty());
    REQUIRE(read.rows.size() == 20000);
    CHECK(read.rows.back().url == plain.rows.back().url);
    CHECK(read.rows.back().line_number == plain.rows.back().line_number);
    CHECK(read.rows[10].columns == plain.rows[10].columns);
  }
  // Two gzip members, as `cat a.gz b.gz` makes.
  const auto two = read_table(gzip("url\nhttp://h/1.jpg\n") + gzip("http://h/2.jpg\n"), "x.csv.gz");
  CHECK(two.rows.size() == 2);
  CHECK(two.errors.empty());
}

TEST_CASE("a compressed input cut short gives the rows before the cut and an error with its offset") {
  const std::string csv = big_csv(20000);
  for (auto [bytes, kind] : {std::pair(gzip(csv), "gzip"), std::pair(zstd(csv), "zstd")}) {
    CAPTURE(kind);
    bytes.resize(bytes.size() / 2);
    const auto read = read_table(bytes, "x.csv");
    CHECK(read.rows.size() > 1000);
    CHECK(read.rows.size() < 20000);
    REQUIRE(!read.errors.empty());
    CHECK(read.errors.back().message.starts_with(std::string(kind) + " data ends early, after "));
  }
  std::string corrupt = gzip(csv);
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() / 2 + 1] ^= 0x55;
  const auto read = read_table(corrupt, "x.csv");
  REQUIRE(!read.errors.empty());
  CHECK(read.errors.back().message.find("gzip data") != std::string::npos);
}

TEST_CASE("the format comes from the name's suffix unless given") {
  CHECK(imgdl::input_format_for_name("a.CSV") == InputFormat::Csv);
  CHECK(imgdl::input_format_for_name("a.tsv.gz") == InputFormat::Tsv);
  CHECK(imgdl::input_format_for_name("a.jsonl.zst") == InputFormat::Jsonl);
  CHECK(imgdl::input_format_for_name("urls.txt") == InputFormat::Lines);
  CHECK(imgdl::input_format_for_name("-") == InputFormat::Lines);
  CHECK(imgdl::input_format_from_name("ndjson") == InputFormat::Jsonl);
  CHECK(!imgdl::input_format_from_name("parquet"));
  // A plain list, even compressed, is a list.
  const auto lines = read_table(gzip("# comment\nhttp://h/a.jpg\nnot a url\n"), "urls.txt.gz");
  REQUIRE(lines.rows.size() == 1);
  CHECK(lines.rows[0].line_number == 2);
  CHECK(lines.errors.size() == 1);
}
