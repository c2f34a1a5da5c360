// Hostile names through the whole downloader: URLs crafted to escape the output directory, hide files,
// smuggle control bytes or overflow NAME_MAX are fetched from the loopback server in one run, and every
// file must land directly in the output directory under the name the naming rule gives (see
// lib/src/naming.hpp). Expectations are written out by hand from the rule; the private naming functions
// are used only to cross-check them.

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "imgdl/downloader.hpp"
#include "naming.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::test::read_file;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

namespace {

/// The rule's fallback name, computed independently: "<host>_" and the top 32 bits of FNV-1a-64 of
/// the normalized URL, in lowercase hex.
std::string host_hash_name(const std::string& host, const std::string& normalized) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : normalized) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(h >> 32));
  return host + "_" + hex;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

enum class Outcome { Ok, Skipped, Failed };

struct Row {
  std::string url;
  std::string name;  // the expected final name (planned name for failures)
  Outcome outcome = Outcome::Ok;
  std::string bytes;      // when not empty: the file's exact content
  bool numbered = false;  // renamed for a collision within the run
};

}  // namespace

TEST_CASE("hostile URLs all land inside the output directory, each under the name the naming rule gives") {
  TestServer server;
  const std::string base = server.base_url();
  auto url = [&](const std::string& path) { return base + path; };
  auto hashed = [&](const std::string& path) { return host_hash_name("127.0.0.1", base + path); };
  const std::string a296(296, 'a');
  const std::string e_acute = "%C3%A9";  // é: 2 bytes once decoded

  const std::vector<Row> rows = {
      {url("/img/plain.jpg?size=3000"), "plain.jpg", Outcome::Ok,
       TestServer::image_bytes("jpeg", 3000, "/img/plain.jpg")},
      // Traversal, literal and encoded: decoded once, '/' becomes '_', leading dots go.
      {url("/img/..%2f..%2fescape.jpg"), "_.._escape.jpg"},
      {url("/img/%2e%2e%2fescape2.jpg"), "_escape2.jpg"},
      {url("/img/%2e%2e%2F%2e%2e%2Fetc%2Fpasswd"), "_.._etc_passwd.jpg"},  // "._etc_passwd" is no extension
      {url("/img/%2e%2e%2f"), "_.jpg"},                      // nothing but "_" is left: sniffed extension
      {url("/img/%2e%2e"), hashed("/img/%2e%2e") + ".jpg"},  // nothing left at all: host and hash
      {url("/img/a/../dots.jpg"), "dots.jpg"},               // curl removes the dot segment
      {url("/img/.."), hashed("/"), Outcome::Failed},        // ... and this one leaves "/", a 404
      // Separators.
      {url("/img/sl%2Fash.jpg"), "sl_ash.jpg"},
      {url("/img/back%5Cslash.jpg"), "back_slash.jpg"},
      {url("/img/raw\\bs.jpg"), "raw_bs.jpg"},
      // Control characters, C0, DEL, C1 and a bidi override.
      {url("/img/nul%00byte.jpg"), "nul_byte.jpg"},
      // The test server's routes cannot match a decoded LF or CR (a 404), but the name is planned all the
      // same.
      {url("/img/lf%0Aline.jpg"), "lf_line.jpg", Outcome::Failed},
      {url("/img/cr%0Dret.jpg"), "cr_ret.jpg", Outcome::Failed},
      {url("/img/esc%1B%5B31m.jpg"), "esc_[31m.jpg"},
      {url("/img/del%7F.jpg"), "del_.jpg"},
      {url("/img/%01%02.png"), "__.png"},
      {url("/img/c1%C2%85.jpg"), "c1_.jpg"},
      {url("/img/rtl%E2%80%AEgpj.exe"), "rtl_gpj.exe"},  // an existing extension is kept, even a wrong one
      // Invalid UTF-8: each bad byte becomes '_'.
      {url("/img/bad%FFutf.jpg"), "bad_utf.jpg"},
      {url("/img/ov%C0%AFer.jpg"), "ov__er.jpg"},  // an overlong '/'
      // Length: 255 bytes at most, the extension kept, never inside a UTF-8 sequence.
      {url("/img/" + a296 + ".jpg"), std::string(251, 'a') + ".jpg"},
      {url("/img/" + repeat(e_acute, 126) + ".gif?size=2000"), repeat("\xC3\xA9", 125) + ".gif"},
      {url("/img/" + std::string(250, 'x') + e_acute + e_acute + ".png"), std::string(250, 'x') + ".png"},
      {url("/img/" + std::string(300, 'b')), std::string(250, 'b') + ".jpg"},  // room kept for the extension
      // Hidden files.
      {url("/img/.bashrc"), "bashrc.jpg"},
      {url("/img/...hidden.png"), "hidden.png"},
      {url("/img/%2Essh"), "ssh.jpg"},
      // Query, fragment and trailing slash: never part of the name.
      {url("/img/qname.jpg?name=../../evil.png"), "qname.jpg"},
      {url("/img/frag.jpg#/../../x.png"), "frag.jpg"},
      {url("/?a=b"), hashed("/?a=b"), Outcome::Failed},  // query-only: a 404 here, but the name is planned
      {url("/img/q/?id=3"), hashed("/img/q/?id=3") + ".jpg"},
      {url("/img/dir/"), hashed("/img/dir/") + ".jpg"},
      // Decoded exactly once.
      {url("/img/%252e%252e%252fx.jpg"), "%2e%2e%2fx.jpg"},
      {url("/img/%25zz.jpg"), "%zz.jpg"},
      // Harmless but surprising characters are kept.
      {url("/img/my%20cat.jpg"), "my cat.jpg"},
      {url("/img/%24(rm%20-rf).jpg"), "$(rm -rf).jpg"},
      {url("/img/-rf.jpg"), "-rf.jpg"},
      {url("/img/%C3%A9t%C3%A9.png"), "\xC3\xA9t\xC3\xA9.png"},
      // Colliding basenames, numbered in input order; an extensionless name reserves its sniffed form.
      {url("/img/same.jpg?size=1000"), "same.jpg", Outcome::Ok,
       TestServer::image_bytes("jpeg", 1000, "/img/same.jpg")},
      {url("/img/same.jpg?size=2000"), "same.1.jpg", Outcome::Ok,
       TestServer::image_bytes("jpeg", 2000, "/img/same.jpg"), true},
      {url("/img/sub/same.jpg?size=3000"), "same.2.jpg", Outcome::Ok,
       TestServer::image_bytes("jpeg", 3000, "/img/sub/same.jpg"), true},
      {url("/gzip/same.jpg?size=4000"), "same.3.jpg", Outcome::Ok,
       TestServer::image_bytes("jpeg", 4000, "/gzip/same.jpg"), true},
      {url("/img/photo?type=png&size=2000"), "photo.png"},
      {url("/img/photo.png?size=2500"), "photo.1.png", Outcome::Ok, {}, true},
      // The same URL twice (even spelled differently) is fetched once.
      {url("/img/same.jpg?size=1000"), "same.jpg", Outcome::Skipped},
      {"http://127.0.0.1:" + std::to_string(server.port()) + "/img/./same.jpg?size=1000#top", "same.jpg",
       Outcome::Skipped},
      {url("/img/same.jpg?size=2000"), "same.1.jpg", Outcome::Skipped},  // its result names the earlier file
  };
  REQUIRE(rows.size() >= 30);

  TempDir sentinel;  // the parent: nothing may appear in it besides the nested output directory
  std::ofstream(sentinel.path / "sentinel.txt") << "untouched";
  const fs::path out = sentinel.path / "nest" / "out";
  DownloadOptions o;
  o.output_dir = out;
  o.max_workers = 8;
  o.retries = 0;
  o.timeout = 60s;

  std::vector<std::string> urls;
  for (const auto& row : rows)
    urls.push_back(row.url);
  Downloader downloader(o);
  const auto results = downloader.download_all(urls);
  REQUIRE(results.size() == rows.size());

  std::set<std::string> expected_files;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const auto& r = results[i];
    CAPTURE(i);
    CAPTURE(row.url);
    CAPTURE(r.message);
    if (row.outcome == Outcome::Skipped) {
      // A duplicate names no file: the earlier URL's may have been renamed.
      CHECK(r.path.empty());
    } else {
      CHECK(r.path.parent_path() == out);
      CHECK(r.path.filename().string() == row.name);
    }
    switch (row.outcome) {
      case Outcome::Ok:
        CHECK(r.status == DownloadStatus::Ok);
        CHECK(fs::is_regular_file(out / row.name));
        if (!row.bytes.empty())
          CHECK(read_file(out / row.name) == row.bytes);
        expected_files.insert(row.name);
        break;
      case Outcome::Skipped:
        CHECK(r.status == DownloadStatus::Skipped);
        break;
      case Outcome::Failed:
        CHECK(r.status == DownloadStatus::Failed);
        CHECK(r.error == ErrorKind::HttpStatus);
        break;
    }

    // Cross-check against the private naming rule: the planned name, plus the sniffed extension.
    std::string error;
    const auto parsed = imgdl::detail::parse_url(row.url, &error);
    REQUIRE(parsed.has_value());
    const std::string planned = imgdl::detail::filename_from_url(*parsed);
    if (row.outcome == Outcome::Ok && !row.numbered)
      CHECK(imgdl::detail::with_extension_for(planned, imgdl::extension_for(r.image_type)) == row.name);
  }

  // Walk the sentinel parent: exactly the expected files, all directly in `out`, and nothing else.
  std::set<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(sentinel.path)) {
    const auto rel = fs::relative(e.path(), sentinel.path);
    if (rel == "sentinel.txt" || rel == "nest" || rel == fs::path("nest") / "out")
      continue;
    CAPTURE(rel.string());
    CHECK(e.path().parent_path() == out);
    CHECK_FALSE(e.is_symlink());
    CHECK(e.is_regular_file());
    found.insert(e.path().filename().string());
  }
  CHECK(found == expected_files);
  CHECK(read_file(sentinel.path / "sentinel.txt") == "untouched");
}

// "x.jpg.part" as a final name would be x.jpg's part file: such names become "x.jpg_part" (and then
// get their sniffed extension), so one URL's file can never be taken for another's stale part file.
TEST_CASE("a URL whose name ends in .part cannot destroy another URL's file") {
  TestServer server;
  TempDir dir;
  DownloadOptions o;
  o.output_dir = dir.path;
  o.retries = 0;
  Downloader downloader(o);
  // Sequential: "x.jpg.part" is published first, then x.jpg streams to its own "x.jpg.part".
  const auto results = downloader.download_all(
      {server.url("/img/x.jpg.part?size=1000"), server.url("/img/x.jpg?size=2000")}, imgdl::Mode::Sequential);
  REQUIRE(results.size() == 2);
  for (const auto& r : results) {
    CAPTURE(r.url);
    CHECK(r.status == DownloadStatus::Ok);
    CHECK(fs::is_regular_file(r.path));
  }
  CHECK(results[0].path.filename() == "x.jpg_part.jpg");
  CHECK(fs::file_size(dir.path / "x.jpg_part.jpg") == 1000);
  CHECK(fs::file_size(dir.path / "x.jpg") == 2000);
}
