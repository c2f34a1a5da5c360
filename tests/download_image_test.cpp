// imgdl::download_image, the seed's design (one blocking fetch per call, run on a pool), against a real
// HTTP server on loopback: the same names, checks and publishing as the Downloader.

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "imgdl/download_image.hpp"
#include "imgdl/executor.hpp"
#include "sha256.hpp"
#include "test_files.hpp"
#include "test_options.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using imgdl::download_image;
using imgdl::DownloadOptions;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::test::local_server_options;
using imgdl::test::read_file;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

namespace {

/// Every observer call but on_progress, in order, as "<call> <name>"; on_progress is counted. Thread-safe.
struct CallLog : imgdl::DownloadObserver {
  std::mutex mutex;
  std::vector<std::string> calls;
  std::vector<std::chrono::milliseconds> delays;
  int progress_calls = 0;

  void note(const char* what, const Transfer& t) {
    std::lock_guard lock(mutex);
    calls.push_back(std::string(what) + " " + std::string(t.name));
  }
  void on_queued(const Transfer& t) override { note("queued", t); }
  void on_started(const Transfer& t) override { note("started", t); }
  void on_progress(const Transfer&, std::uint64_t, std::optional<std::uint64_t>) override {
    std::lock_guard lock(mutex);
    ++progress_calls;
  }
  void on_retrying(const Transfer& t, int, std::chrono::milliseconds delay, std::string_view) override {
    note("retrying", t);
    std::lock_guard lock(mutex);
    delays.push_back(delay);
  }
  void on_finished(const Transfer& t, const DownloadResult&) override { note("finished", t); }
};

}  // namespace

TEST_CASE("download_image saves an image under the URL's basename, with its type, size and sha256") {
  TestServer server;
  TempDir dir;
  const auto r = download_image(server.url("/img/photo.jpg?size=54321"), local_server_options(dir.path));
  REQUIRE(r.status == DownloadStatus::Ok);
  const auto expected = TestServer::image_bytes("jpeg", 54321, "/img/photo.jpg");
  CHECK(r.path == dir.path / "photo.jpg");
  CHECK(read_file(r.path) == expected);
  CHECK(r.bytes == 54321);
  CHECK(r.http_status == 200);
  CHECK(r.image_type == imgdl::ImageType::Jpeg);
  CHECK(r.sha256 == imgdl::detail::Sha256::of(expected));
  CHECK(r.attempts == 1);
  CHECK(r.elapsed > 0ns);
  CHECK(dir.entries() == std::set<std::string>{"photo.jpg"});
}

TEST_CASE("download_image adds the sniffed type's extension to a name that has none") {
  TestServer server;
  TempDir dir;
  const auto r = download_image(server.url("/img/noext?type=png&size=2000"), local_server_options(dir.path));
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(r.path.filename() == "noext.png");
  CHECK(r.image_type == imgdl::ImageType::Png);
}

TEST_CASE("download_image returns a 404 as a failed result with its status, and keeps nothing") {
  TestServer server;
  TempDir dir;
  const auto r = download_image(server.url("/status/404"), local_server_options(dir.path));
  CHECK(r.status == DownloadStatus::Failed);
  CHECK(r.error == ErrorKind::HttpStatus);
  CHECK(r.http_status == 404);
  CHECK(r.message == "HTTP 404 Not Found");
  CHECK(r.attempts == 1);  // not a transient failure
  CHECK(dir.entries().empty());
}

TEST_CASE("download_image refuses a body that is not an image and leaves no file") {
  TestServer server;
  TempDir dir;
  const auto r = download_image(server.url("/html"), local_server_options(dir.path));
  CHECK(r.status == DownloadStatus::Failed);
  CHECK(r.error == ErrorKind::NotImage);
  CHECK(r.message == "not an image (server sent text/html)");
  CHECK(dir.entries().empty());
}

TEST_CASE("download_image reports an invalid URL as a value, without a request") {
  TempDir dir;
  const auto r = download_image("ftp://example.invalid/a.jpg", local_server_options(dir.path));
  CHECK(r.status == DownloadStatus::Failed);
  CHECK(r.error == ErrorKind::InvalidUrl);
  CHECK(r.attempts == 0);
  CHECK(dir.entries().empty());
}

TEST_CASE("download_image retries a 503 after a backoff and then succeeds, telling the observer in order") {
  TestServer server;
  TempDir dir;
  auto log = std::make_shared<CallLog>();
  auto o = local_server_options(dir.path);
  o.observer = log;
  o.retries = 3;
  const auto r = download_image(server.url("/flaky/k.jpg?fails=2&code=503&size=5000"), o);
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(r.attempts == 3);
  CHECK(server.hits("/flaky/k.jpg") == 3);
  CHECK(r.path == dir.path / "k.jpg");
  CHECK(log->calls == std::vector<std::string>{"queued k.jpg", "started k.jpg", "retrying k.jpg",
                                               "retrying k.jpg", "finished k.jpg"});
  CHECK(log->progress_calls >= 1);  // at least the final count
  REQUIRE(log->delays.size() == 2);
  CHECK(log->delays[0] <= 15ms);  // retry_backoff (10 ms) with ±50% jitter, then doubled
  CHECK(log->delays[1] <= 30ms);

  SUBCASE("and gives up after `retries` further attempts") {
    o.retries = 1;
    const auto failed = download_image(server.url("/flaky/k2.jpg?fails=5&code=503"), o);
    CHECK(failed.status == DownloadStatus::Failed);
    CHECK(failed.attempts == 2);
    CHECK(failed.http_status == 503);
    CHECK(!fs::exists(dir.path / "k2.jpg"));
  }
}

TEST_CASE("download_image waits as long as Retry-After says, under retry_max_delay") {
  TestServer server;
  TempDir dir;
  auto log = std::make_shared<CallLog>();
  auto o = local_server_options(dir.path);
  o.observer = log;
  o.retry_max_delay = 300ms;
  const auto r = download_image(server.url("/flaky/ra.jpg?fails=1&code=429&retry_after=60"), o);
  CHECK(r.status == DownloadStatus::Ok);
  REQUIRE(log->delays.size() == 1);
  CHECK(log->delays[0] == 300ms);
}

TEST_CASE("download_image stops a retry's wait when its stop token is requested") {
  TestServer server;
  TempDir dir;
  auto o = local_server_options(dir.path);
  o.retry_backoff = 30s;
  o.retry_max_delay = 30s;
  std::stop_source stop;
  std::jthread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto r = download_image(server.url("/flaky/slow.jpg?fails=3&code=503"), o, stop.get_token());
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(r.status == DownloadStatus::Cancelled);
  CHECK(r.error == ErrorKind::Cancelled);
  CHECK(dir.entries().empty());
}

TEST_CASE("download_image calls on a pool's map with the same basenames get distinct names on disk") {
  TestServer server;
  TempDir dir;
  const auto o = local_server_options(dir.path);
  std::vector<std::string> urls;
  for (int i = 0; i < 8; ++i)
    urls.push_back(server.url("/img/same.jpg?size=" + std::to_string(1000 + i)));
  std::vector<DownloadResult> results;
  {
    imgdl::ThreadPoolExecutor executor(8);
    for (auto& r : executor.map([&o](const std::string& url) { return download_image(url, o); }, urls))
      results.push_back(std::move(r));
  }
  REQUIRE(results.size() == urls.size());
  std::set<std::string> names;
  std::set<std::uintmax_t> sizes;
  for (const auto& r : results) {
    CAPTURE(r.message);
    REQUIRE(r.status == DownloadStatus::Ok);
    names.insert(r.path.filename().string());
    sizes.insert(fs::file_size(r.path));
    CHECK(fs::file_size(r.path) == r.bytes);  // each call's own file, not another's
  }
  CHECK(names == std::set<std::string>{"same.jpg", "same.1.jpg", "same.2.jpg", "same.3.jpg", "same.4.jpg",
                                       "same.5.jpg", "same.6.jpg", "same.7.jpg"});
  CHECK(sizes.size() == urls.size());
  CHECK(dir.entries() == names);
}

TEST_CASE("download_image is passed to map by name, as the seed passes its function") {
  TestServer server;
  TempDir dir;
  const fs::path previous = fs::current_path();
  fs::current_path(dir.path);  // the default options write into the working directory, as the seed
  std::vector<DownloadResult> results;
  {
    imgdl::ThreadPoolExecutor executor;
    for (auto& r :
         executor.map(download_image, std::vector{server.url("/img/a.jpg"), server.url("/img/b.gif")}))
      results.push_back(std::move(r));
  }
  fs::current_path(previous);
  REQUIRE(results.size() == 2);
  CHECK(results[0].ok());
  CHECK(results[1].ok());
  CHECK(dir.entries() == std::set<std::string>{"a.jpg", "b.gif"});
}

TEST_CASE("no URL makes download_image write outside the output directory") {
  TestServer server;
  TempDir outer;
  const auto dir = outer.path / "out";
  const auto o = local_server_options(dir);
  for (const auto& url : server.escaping_urls()) {
    const auto r = download_image(url, o);
    CAPTURE(r.url);
    CAPTURE(r.message);
    if (r.status == DownloadStatus::Ok) {
      CHECK(r.path.parent_path() == dir);
      CHECK(r.path.filename().string().front() != '.');
    }
  }
  for (const auto& e : fs::directory_iterator(outer.path))
    CHECK(e.path() == dir);
}

TEST_CASE("download_image under Skip leaves a file already there and fetches nothing") {
  TestServer server;
  TempDir dir;
  std::ofstream(dir.path / "cat.jpg") << "mine";
  auto o = local_server_options(dir.path);
  o.on_exists = imgdl::OnExists::Skip;
  const auto r = download_image(server.url("/img/cat.jpg"), o);
  CHECK(r.status == DownloadStatus::Skipped);
  CHECK(server.hits("/img/cat.jpg") == 0);
  CHECK(read_file(dir.path / "cat.jpg") == "mine");
}

TEST_CASE("download_image throws for bad options and an output directory it cannot create") {
  TempDir dir;
  auto o = local_server_options(dir.path);
  o.retries = -1;
  CHECK_THROWS_AS(download_image("http://127.0.0.1:1/a.jpg", o), std::invalid_argument);
  std::ofstream(dir.path / "file") << "x";
  o = local_server_options(dir.path / "file" / "sub");  // a directory under a regular file
  CHECK_THROWS_AS(download_image("http://127.0.0.1:1/a.jpg", o), std::system_error);
}

TEST_CASE("download_image rethrows an observer's exception once the file is settled") {
  TestServer server;
  TempDir dir;
  struct Throwing : imgdl::DownloadObserver {
    void on_started(const Transfer&) override { throw std::runtime_error("observer failed"); }
  };
  auto o = local_server_options(dir.path);
  o.observer = std::make_shared<Throwing>();
  CHECK_THROWS_WITH_AS(download_image(server.url("/img/t.jpg"), o), "observer failed", std::runtime_error);
  CHECK(dir.entries() == std::set<std::string>{"t.jpg"});
}
