// Lists longer than the name planner's window: memory that stays flat, and names that stay apart when
// the planner has forgotten the earlier URL (the output directory is then the record of names taken).
// A window of a few URLs makes a short list behave as a long one.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "imgdl/downloader.hpp"
#include "naming.hpp"
#include "output_dir.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadStatus;
using imgdl::OnExists;
using imgdl::detail::NamePlanner;
using imgdl::detail::ParsedUrl;
using imgdl::test::read_file;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

namespace {

ParsedUrl parsed(const std::string& url) {
  auto p = imgdl::detail::parse_url(url, nullptr);
  REQUIRE(p.has_value());
  return *p;
}

DownloadOptions options_for(const TempDir& dir, std::size_t window) {
  DownloadOptions o;
  o.output_dir = dir.path;
  o.max_workers = 1;  // one URL at a time: each is done before the next starts
  o.retries = 0;
  o.name_window = window;
  return o;
}

/// Waits until a file made now in `dir` would have a later ctime than `path` has: the file at `path`
/// is then older than a run started after this returns. Counts on the filesystem's own clock ticking
/// (a tick is at most a few milliseconds), never on a sleep of a guessed length.
void wait_until_older(const fs::path& dir, const fs::path& path) {
  struct stat made {};
  REQUIRE(::stat(path.c_str(), &made) == 0);
  const imgdl::detail::OutputDir out(dir);
  const imgdl::detail::DiskTime then{made.st_ctim.tv_sec, made.st_ctim.tv_nsec};
  while (!(out.now() > then)) {
  }
}

}  // namespace

TEST_CASE("the planner remembers a window of URLs: within it a URL is fetched once, beyond it again") {
  NamePlanner planner(4);
  CHECK(planner.assign(parsed("http://h/a.jpg")) == "a.jpg");
  CHECK(planner.assign(parsed("http://h/a.jpg")) == std::nullopt);  // a duplicate within the window
  for (int i = 0; i < 3; ++i)
    CHECK(planner.assign(parsed("http://h/f" + std::to_string(i) + ".jpg")).has_value());
  CHECK_FALSE(planner.has_forgotten());  // 4 URLs: one generation, full
  CHECK(planner.is_duplicate(parsed("http://h/a.jpg")));
  for (int i = 3; i < 8; ++i)
    CHECK(planner.assign(parsed("http://h/f" + std::to_string(i) + ".jpg")).has_value());
  // 9 URLs in: a.jpg's generation was dropped when the third began.
  CHECK(planner.has_forgotten());
  CHECK_FALSE(planner.is_duplicate(parsed("http://h/a.jpg")));
  CHECK(planner.assign(parsed("http://h/a.jpg")) == "a.jpg");  // planned again: the directory decides
  CHECK(planner.size() == 10);
}

TEST_CASE("a name that keeps coming keeps counting across the planner's generations") {
  NamePlanner planner(3);
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i) {
    // image.jpg every other URL: never out of the window for long enough to be forgotten.
    names.push_back(*planner.assign(parsed("http://h" + std::to_string(i) + "/image.jpg")));
    CHECK(planner.assign(parsed("http://h/other" + std::to_string(i) + ".jpg")).has_value());
  }
  CHECK(names.front() == "image.jpg");
  for (std::size_t i = 1; i < names.size(); ++i)
    CHECK(names[i] == "image." + std::to_string(i) + ".jpg");
}

TEST_CASE("the planner's memory is the same for a thousand URLs as for two hundred thousand") {
  NamePlanner planner(1000);
  for (int i = 0; i < 2000; ++i)
    planner.assign(parsed("http://h/a" + std::to_string(i) + ".jpg"));
  const std::size_t after_window = planner.memory_bytes();
  for (int i = 2000; i < 200000; ++i)
    planner.assign(parsed("http://h/a" + std::to_string(i) + ".jpg"));
  CHECK(planner.memory_bytes() == after_window);
  CHECK(after_window < 200 * 1024);  // two generations of 1,000: well under a byte per URL listed
  CHECK(planner.size() == 200000);
}

TEST_CASE("a URL listed again beyond the window is fetched again, and never onto the file this run made") {
  TestServer server;
  // cat.jpg first, three other URLs, then cat.jpg of another size and the first URL again: with a
  // window of 2 the planner has forgotten the first by then, so only the directory tells them apart.
  const std::vector<std::string> urls{
      server.url("/img/cat.jpg?size=1000"), server.url("/img/f1.jpg?size=500"),
      server.url("/img/f2.jpg?size=500"),   server.url("/img/f3.jpg?size=500"),
      server.url("/img/f4.jpg?size=500"),   server.url("/img/cat.jpg?size=2000"),
      server.url("/img/f5.jpg?size=500"),   server.url("/img/cat.jpg?size=1000")};
  for (const OnExists mode : {OnExists::Rename, OnExists::Skip, OnExists::Overwrite, OnExists::Resume}) {
    CAPTURE(static_cast<int>(mode));
    TempDir dir;
    auto o = options_for(dir, 2);
    o.on_exists = mode;
    Downloader d(o);
    const auto results = d.download_all(urls);
    REQUIRE(results.size() == urls.size());
    for (const auto& r : results) {
      CAPTURE(r.url);
      CAPTURE(r.message);
      CHECK(r.status == DownloadStatus::Ok);
    }
    // All names are planned before the first transfer: the planner had forgotten the first cat.jpg
    // when it planned the second (cat.jpg again) but not the second when it planned the third
    // (cat.1.jpg). The second finds cat.jpg made by this run and moves on, past cat.1.jpg (planned for
    // the third), to cat.2.jpg; the third URL, the first listed again, is fetched again.
    CHECK(results[0].path.filename() == "cat.jpg");
    CHECK(results[5].path.filename() == "cat.2.jpg");
    CHECK(results[7].path.filename() == "cat.1.jpg");
    CHECK(fs::file_size(dir.path / "cat.jpg") == 1000);
    CHECK(fs::file_size(dir.path / "cat.2.jpg") == 2000);
    CHECK(fs::file_size(dir.path / "cat.1.jpg") == 1000);
    CHECK(server.hits("/img/cat.jpg") == 3);
    server.reset_counters();
  }
}

TEST_CASE("beyond the window, a file older than the run keeps its on_exists meaning") {
  TestServer server;
  const std::vector<std::string> urls{
      server.url("/img/f1.jpg?size=500"), server.url("/img/f2.jpg?size=500"),
      server.url("/img/f3.jpg?size=500"), server.url("/img/f4.jpg?size=500"),
      server.url("/img/f5.jpg?size=500"), server.url("/img/old.jpg?size=3000")};
  const auto expected = TestServer::image_bytes("jpeg", 3000, "/img/old.jpg");
  for (const OnExists mode : {OnExists::Rename, OnExists::Skip, OnExists::Overwrite}) {
    CAPTURE(static_cast<int>(mode));
    TempDir dir;
    std::ofstream(dir.path / "old.jpg") << "old";
    wait_until_older(dir.path, dir.path / "old.jpg");
    auto o = options_for(dir, 2);
    o.on_exists = mode;
    Downloader d(o);
    const auto results = d.download_all(urls);
    const auto& last = results.back();
    CAPTURE(last.message);
    switch (mode) {
      case OnExists::Rename:
        CHECK(last.path.filename() == "old.1.jpg");
        CHECK(read_file(dir.path / "old.jpg") == "old");
        break;
      case OnExists::Skip:
        CHECK(last.status == DownloadStatus::Skipped);
        CHECK(read_file(dir.path / "old.jpg") == "old");
        break;
      default:
        CHECK(last.path.filename() == "old.jpg");
        CHECK(read_file(dir.path / "old.jpg") == expected);
        break;
    }
  }
}
