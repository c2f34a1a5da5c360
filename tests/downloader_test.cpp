// The Downloader against a real HTTP server on loopback (tests/support/test_server.hpp): every
// concurrency claim is proven from the server's own counters, never from the clock.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "imgdl/downloader.hpp"
#include "output_dir.hpp"
#include "scoped_env.hpp"
#include "sha256.hpp"
#include "support/loopback_listener.hpp"
#include "test_files.hpp"
#include "test_options.hpp"
#include "test_server.hpp"
#include "transfer.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::test::has_part_files;
using imgdl::test::read_file;
using imgdl::test::ScopedEnv;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

namespace {

DownloadOptions options_for(const TempDir& dir) {
  DownloadOptions o = imgdl::test::local_server_options(dir.path);
  o.max_workers = 4;
  return o;
}

DownloadResult fetch_one(DownloadOptions o, const std::string& url) {
  Downloader d(std::move(o));
  return d.submit(url).result();
}

/// Records every observer call; thread-safe.
struct Recorder : imgdl::DownloadObserver {
  std::mutex mutex;
  std::map<std::size_t, int> queued, started, finished;
  std::map<std::size_t, int> progress_calls;
  std::vector<std::pair<int, std::chrono::milliseconds>> retries;
  std::atomic<int> started_count{0};
  int running = 0;       // started and not yet finished
  int peak_running = 0;  // the most URLs started and unfinished at once

  void on_queued(const Transfer& t) override {
    std::lock_guard lock(mutex);
    ++queued[t.index];
  }
  void on_started(const Transfer& t) override {
    std::lock_guard lock(mutex);
    ++started[t.index];
    ++started_count;
    peak_running = std::max(peak_running, ++running);
  }
  void on_progress(const Transfer& t, std::uint64_t, std::optional<std::uint64_t>) override {
    std::lock_guard lock(mutex);
    ++progress_calls[t.index];
  }
  void on_retrying(const Transfer&, int attempt, std::chrono::milliseconds delay, std::string_view) override {
    std::lock_guard lock(mutex);
    retries.emplace_back(attempt, delay);
  }
  void on_finished(const Transfer& t, const DownloadResult&) override {
    std::lock_guard lock(mutex);
    ++finished[t.index];
    if (started.count(t.index) > 0)
      --running;
  }
};

}  // namespace

TEST_CASE("an image is streamed to a file named from the URL, with its sha256, type and size") {
  TestServer server;
  TempDir dir;
  const auto url = server.url("/img/photo.jpg?size=123456");
  const auto r = fetch_one(options_for(dir), url);
  REQUIRE(r.status == DownloadStatus::Ok);
  const auto expected = TestServer::image_bytes("jpeg", 123456, "/img/photo.jpg");
  CHECK(r.path == dir.path / "photo.jpg");
  CHECK(read_file(r.path) == expected);
  CHECK(r.bytes == 123456);
  CHECK(r.http_status == 200);
  CHECK(r.image_type == imgdl::ImageType::Jpeg);
  CHECK(r.sha256 == imgdl::detail::Sha256::of(expected));
  CHECK(r.attempts == 1);
  CHECK(r.error == ErrorKind::None);
  CHECK(r.elapsed > 0ns);
  CHECK(dir.entries() == std::set<std::string>{"photo.jpg"});
}

TEST_CASE("compute_sha256 off leaves the digest empty and the file intact") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.compute_sha256 = false;
  const auto r = fetch_one(o, server.url("/img/nohash.png?size=5000"));
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(r.sha256.empty());
  CHECK(read_file(r.path) == TestServer::image_bytes("png", 5000, "/img/nohash.png"));
}

TEST_CASE("the output directory is created with its parents when missing") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.output_dir = dir.path / "a" / "b";
  const auto r = fetch_one(o, server.url("/img/x.png?size=3000"));
  CHECK(r.status == DownloadStatus::Ok);
  CHECK(fs::exists(dir.path / "a" / "b" / "x.png"));
}

TEST_CASE(
    "with W workers and more slow URLs than W, the server sees exactly W requests in flight at its peak") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 4;
  Downloader d(o);
  const auto results = d.download_all(server.image_urls(12, 2000, "slow", 300ms));
  for (const auto& r : results)
    REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(server.peak_in_flight() == 4);
  CHECK(server.requests() == 12);
  SUBCASE("and reuses kept-alive connections: at most W connections for N requests") {
    CHECK(server.connections() <= 4);
  }
}

TEST_CASE("sequential mode keeps one request in flight and one connection") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  SUBCASE("with one transfer thread") {
    o.transfer_threads = 1;
  }
  SUBCASE("with three transfer threads") {
    o.transfer_threads = 3;
  }
  Downloader d(o);
  const auto results = d.download_all(server.image_urls(5, 1000, "seq", 50ms), imgdl::Mode::Sequential);
  for (const auto& r : results)
    CHECK(r.status == DownloadStatus::Ok);
  CHECK(server.peak_in_flight() == 1);
  CHECK(server.connections() == 1);
}

TEST_CASE("per_host caps concurrent transfers to each host while other hosts proceed") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 8;
  o.per_host = 2;
  std::vector<std::string> urls;
  const auto port = std::to_string(server.port());
  for (int i = 0; i < 6; ++i) {
    urls.push_back("http://127.0.0.1:" + port + "/img/a" + std::to_string(i) + ".jpg?latency_ms=300");
    urls.push_back("http://localhost:" + port + "/img/b" + std::to_string(i) + ".jpg?latency_ms=300");
  }
  Downloader d(o);
  for (const auto& r : d.download_all(urls))
    REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(server.peak_in_flight_for_host("127.0.0.1") == 2);
  CHECK(server.peak_in_flight_for_host("localhost") == 2);
  CHECK(server.peak_in_flight() == 4);
}

namespace {

/// Notes which thread makes each call, and whether two calls ever overlapped.
struct ThreadWatcher : imgdl::DownloadObserver {
  std::mutex mutex;
  std::map<std::size_t, std::set<std::thread::id>> threads_per_url;
  std::set<std::thread::id> threads;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};

  void note(const Transfer& t) {
    if (inside.fetch_add(1) != 0)
      overlapped = true;
    {
      std::lock_guard lock(mutex);
      threads_per_url[t.index].insert(std::this_thread::get_id());
      threads.insert(std::this_thread::get_id());
    }
    std::this_thread::sleep_for(200us);  // widens the window another thread's call would overlap in
    inside.fetch_sub(1);
  }
  void on_started(const Transfer& t) override { note(t); }
  void on_progress(const Transfer& t, std::uint64_t, std::optional<std::uint64_t>) override { note(t); }
  void on_finished(const Transfer& t, const DownloadResult&) override { note(t); }
};

}  // namespace

TEST_CASE("several transfer threads share max_workers: the server's peak is exactly max_workers") {
  TestServer server;
  TempDir dir;
  auto watcher = std::make_shared<ThreadWatcher>();
  auto o = options_for(dir);
  o.max_workers = 12;
  o.transfer_threads = 3;
  o.observer = watcher;
  Downloader d(o);
  REQUIRE(d.stats().transfer_threads == 3);
  const auto results = d.download_all(server.image_urls(60, 2000, "tt", 100ms));
  std::set<fs::path> paths;
  for (const auto& r : results) {
    CHECK(r.status == DownloadStatus::Ok);
    paths.insert(r.path);
  }
  CHECK(paths.size() == 60);
  CHECK(server.peak_in_flight() == 12);
  CHECK(server.requests() == 60);
  CHECK(server.connections() <= 12);
  SUBCASE("every thread takes URLs, each URL's calls come from one thread, and never two at once") {
    CHECK(watcher->threads.size() == 3);
    for (const auto& [index, threads] : watcher->threads_per_url)
      CHECK(threads.size() == 1);
    CHECK_FALSE(watcher->overlapped.load());
  }
}

TEST_CASE("the Downloader runs its transfer loops as tasks on an executor the application shares") {
  TestServer server;
  TempDir dir;
  auto pool = std::make_shared<imgdl::ThreadPoolExecutor>(4);
  auto o = options_for(dir);
  o.max_workers = 6;
  o.transfer_threads = 2;
  o.executor = pool;
  {
    Downloader d(o);
    // Each loop holds one of the pool's workers for the Downloader's life (taken as the workers start)...
    for (int i = 0; i < 500 && pool->stats().running < 2; ++i)
      std::this_thread::sleep_for(10ms);
    CHECK(pool->stats().running == 2);
    // ...and the rest of the pool still runs the application's own tasks meanwhile.
    CHECK(pool->submit([] { return 6 * 7; }).result() == 42);
    const auto results = d.download_all(server.image_urls(12, 1000, "pooled", 20ms));
    for (const auto& r : results)
      CHECK(r.status == DownloadStatus::Ok);
    CHECK(server.peak_in_flight() == 6);
    const auto stats = d.stats();
    CHECK(stats.completed == 12);
    CHECK(stats.pending == 0);
    CHECK(stats.running == 0);
  }
  // Destroying the Downloader ends its loops' tasks and gives the workers back.
  CHECK(pool->stats().running == 0);
  CHECK(pool->stats().completed >= 3);
}

TEST_CASE("large bodies are hashed by other workers of the Downloader's pool, small ones by the loop") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 4;
  o.transfer_threads = 1;
  Downloader d(o);
  const auto results =
      d.download_all({server.url("/img/big1.jpg?size=3000000"), server.url("/img/big2.png?size=2000000"),
                      server.url("/img/small.gif?size=5000")});
  for (const auto& r : results) {
    REQUIRE(r.status == DownloadStatus::Ok);
    CHECK(r.sha256 == imgdl::detail::Sha256::of(read_file(r.path)));
  }
  CHECK(d.stats().digests_on_pool == 2);
}

TEST_CASE("on a shared pool, digests stay on the loop: a spare worker there may never come") {
  TestServer server;
  TempDir dir;
  auto pool = std::make_shared<imgdl::ThreadPoolExecutor>(2);
  auto o = options_for(dir);
  o.max_workers = 2;
  o.transfer_threads = 1;
  o.executor = pool;
  Downloader d(o);
  // A pool task that waits for the download: with the digest queued behind it, neither would end.
  auto waiting = pool->submit([&] { return d.submit(server.url("/img/big.jpg?size=2000000")).result(); });
  const auto& r = waiting.result(std::chrono::seconds(60));
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(r.sha256 == imgdl::detail::Sha256::of(read_file(r.path)));
  CHECK(d.stats().digests_on_pool == 0);
}

TEST_CASE("a shared pool that cancels the loop's task before it ran still gets every URL answered") {
  TestServer server;
  TempDir dir;
  auto pool = std::make_shared<imgdl::ThreadPoolExecutor>(1);
  std::latch release(1);
  auto blocker = pool->submit([&] { release.wait(); });
  auto o = options_for(dir);
  o.max_workers = 1;
  o.transfer_threads = 1;
  o.executor = pool;
  imgdl::Future<DownloadResult> f;
  {
    Downloader d(o);  // its loop's task waits behind the blocker
    f = d.submit(server.url("/img/late.jpg?size=700"));
    pool->shutdown(false, /*cancel_futures=*/true);
    release.count_down();
  }  // the destructor drains the loop itself
  CHECK(f.result().status == DownloadStatus::Ok);
}

TEST_CASE("an executor with fewer workers than transfer loops is refused, since the loops would never run") {
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 8;
  o.transfer_threads = 3;
  o.executor = std::make_shared<imgdl::ThreadPoolExecutor>(2);
  CHECK_THROWS_AS(Downloader{o}, std::invalid_argument);
}

TEST_CASE("a Downloader's own pool names each loop's worker after its transfer thread") {
  struct NameRecorder : imgdl::DownloadObserver {
    std::string name;
    void on_started(const Transfer&) override {
      char buffer[16] = {};
      pthread_getname_np(pthread_self(), buffer, sizeof buffer);
      name = buffer;
    }
  };
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<NameRecorder>();
  auto o = options_for(dir);
  o.max_workers = 2;
  o.transfer_threads = 1;
  o.observer = recorder;
  Downloader d(o);
  CHECK(d.submit(server.url("/img/a.jpg?size=500")).result().status == DownloadStatus::Ok);
  CHECK(recorder->name == "imgdl-net");
}

TEST_CASE(
    "transfer_threads: 0 picks one per 16 workers up to the hardware threads; never more than workers") {
  TempDir dir;
  auto o = options_for(dir);
  const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
  SUBCASE("a few workers get one thread") {
    o.max_workers = 15;
    CHECK(Downloader(o).options().transfer_threads == 1);
  }
  SUBCASE("64 workers get four threads where the hardware has them") {
    o.max_workers = 64;
    CHECK(Downloader(o).options().transfer_threads == std::min<std::size_t>(4, hardware));
  }
  SUBCASE("per_host keeps one thread, and refuses more") {
    o.max_workers = 64;
    o.per_host = 4;
    CHECK(Downloader(o).options().transfer_threads == 1);
    o.transfer_threads = 2;
    CHECK_THROWS_AS(Downloader{o}, std::invalid_argument);
  }
  SUBCASE("an explicit count is capped by the workers") {
    o.max_workers = 3;
    o.transfer_threads = 8;
    Downloader d(o);
    CHECK(d.options().transfer_threads == 3);
    CHECK(d.stats().transfer_threads == 3);
  }
}

TEST_CASE(
    "URLs waiting for their host's per_host slot or for a retry never take more than max_workers slots") {
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.observer = recorder;
  std::vector<imgdl::Future<DownloadResult>> futures;
  SUBCASE("a URL whose host is full is not started, so it holds no part file") {
    o.max_workers = 4;
    o.per_host = 1;
    Downloader d(o);
    for (int i = 0; i < 12; ++i)
      futures.push_back(d.submit(server.url("/img/h" + std::to_string(i) + ".jpg?latency_ms=30")));
    for (auto& f : futures)
      CHECK(f.result().status == DownloadStatus::Ok);
    CHECK(server.peak_in_flight() == 1);
    CHECK(recorder->peak_running == 1);
  }
  SUBCASE("a URL waiting out a retry's backoff keeps its slot") {
    o.max_workers = 2;
    o.retry_backoff = 100ms;
    Downloader d(o);
    for (int i = 0; i < 8; ++i)
      futures.push_back(d.submit(server.url("/flaky/r" + std::to_string(i) + "?fails=1&code=503&size=1000")));
    for (auto& f : futures) {
      const auto& r = f.result();
      CHECK(r.status == DownloadStatus::Ok);
      CHECK(r.attempts == 2);
    }
    CHECK(recorder->peak_running == 2);
  }
}

TEST_CASE("an observer that throws fails its own URL's future with that exception, and no other") {
  struct ThrowingObserver : imgdl::DownloadObserver {
    void on_started(const Transfer& t) override {
      if (t.name.starts_with("bad"))
        throw std::runtime_error("observer failed");
    }
  };
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.observer = std::make_shared<ThrowingObserver>();
  Downloader d(o);
  auto bad = d.submit(server.url("/img/bad.jpg"));
  auto good = d.submit(server.url("/img/good.jpg"));
  CHECK_THROWS_WITH_AS(bad.result(), "observer failed", std::runtime_error);
  CHECK(good.result().status == DownloadStatus::Ok);
}

TEST_CASE("download_all called from the Downloader's own observer throws instead of waiting for itself") {
  struct Reentrant : imgdl::DownloadObserver {
    Downloader* downloader = nullptr;
    void on_finished(const Transfer&, const DownloadResult&) override { (void)downloader->download_all({}); }
  };
  TestServer server;
  TempDir dir;
  auto observer = std::make_shared<Reentrant>();
  auto o = options_for(dir);
  o.observer = observer;
  Downloader d(o);
  observer->downloader = &d;
  CHECK_THROWS_AS(d.submit(server.url("/img/self.jpg")).result(), std::logic_error);
}

TEST_CASE("results come back in input order whatever order transfers finish in") {
  TestServer server;
  TempDir dir;
  Downloader d(options_for(dir));
  std::vector<std::string> urls;
  for (int i = 0; i < 6; ++i)
    urls.push_back(
        server.url("/img/o" + std::to_string(i) + ".jpg?latency_ms=" + std::to_string(300 - 50 * i)));
  const auto results = d.download_all(urls);
  REQUIRE(results.size() == urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i)
    CHECK(results[i].url == urls[i]);
}

TEST_CASE("error statuses fail with the status line and never write their body") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  for (int code : {400, 401, 403, 404, 410, 500, 503}) {
    CAPTURE(code);
    const auto r = fetch_one(o, server.url("/status/" + std::to_string(code)));
    CHECK(r.status == DownloadStatus::Failed);
    CHECK(r.error == ErrorKind::HttpStatus);
    CHECK(r.http_status == code);
    CHECK(r.message.rfind("HTTP " + std::to_string(code), 0) == 0);
  }
  CHECK(fetch_one(o, server.url("/status/404")).message == "HTTP 404 Not Found");
  CHECK(dir.entries().empty());
}

TEST_CASE("transient failures are retried with backoff until they succeed") {
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.observer = recorder;
  o.retries = 3;
  const auto r = fetch_one(o, server.url("/flaky/k1?fails=2&code=503&size=5000"));
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(r.attempts == 3);
  CHECK(server.hits("/flaky/k1") == 3);
  REQUIRE(recorder->retries.size() == 2);
  CHECK(recorder->retries[0].first == 1);
  CHECK(recorder->retries[1].first == 2);
  // Backoff doubles per attempt around retry_backoff (10 ms) with ±50% jitter.
  CHECK(recorder->retries[0].second <= 15ms);
  CHECK(recorder->retries[1].second <= 30ms);

  SUBCASE("and give up after `retries` further attempts") {
    o.retries = 1;
    const auto failed = fetch_one(o, server.url("/flaky/k2?fails=5&code=500"));
    CHECK(failed.status == DownloadStatus::Failed);
    CHECK(failed.attempts == 2);
    CHECK(failed.http_status == 500);
  }
  SUBCASE("but a 404 is not retried") {
    const auto failed = fetch_one(o, server.url("/status/404"));
    CHECK(failed.attempts == 1);
  }
}

TEST_CASE("Retry-After on 429 and 503 sets the delay, capped by retry_max_delay") {
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.observer = recorder;
  o.retry_max_delay = 1500ms;
  SUBCASE("in seconds") {
    const auto r = fetch_one(o, server.url("/flaky/r1?fails=1&code=429&retry_after=1"));
    CHECK(r.status == DownloadStatus::Ok);
    REQUIRE(recorder->retries.size() == 1);
    CHECK(recorder->retries[0].second == 1000ms);
  }
  SUBCASE("capped") {
    const auto r = fetch_one(o, server.url("/flaky/r2?fails=1&code=503&retry_after=120"));
    CHECK(r.status == DownloadStatus::Ok);
    REQUIRE(recorder->retries.size() == 1);
    CHECK(recorder->retries[0].second == 1500ms);
  }
}

TEST_CASE("Retry-After parses delta-seconds and HTTP dates") {
  using imgdl::detail::parse_retry_after;
  CHECK(parse_retry_after("5") == std::chrono::milliseconds(5000));
  CHECK(parse_retry_after(" 0 ") == std::chrono::milliseconds(0));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == std::chrono::milliseconds(0));  // past
  const auto future = parse_retry_after("Fri, 31 Dec 2100 23:59:59 GMT");
  REQUIRE(future.has_value());
  CHECK(*future > std::chrono::hours(24));
  CHECK_FALSE(parse_retry_after("soon").has_value());
  CHECK_FALSE(parse_retry_after("").has_value());
}

TEST_CASE("redirects are followed up to max_redirects and only to http or https") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  SUBCASE("a chain within the limit lands the image under the first URL's name") {
    const auto r = fetch_one(o, server.url("/redirect/3"));
    CHECK(r.status == DownloadStatus::Ok);
    CHECK(r.http_status == 200);
  }
  SUBCASE("a chain past the limit") {
    o.max_redirects = 2;
    const auto r = fetch_one(o, server.url("/redirect/3"));
    CHECK(r.error == ErrorKind::TooManyRedirects);
  }
  SUBCASE("a loop") {
    const auto r = fetch_one(o, server.url("/redirect-loop"));
    CHECK(r.error == ErrorKind::TooManyRedirects);
  }
  SUBCASE("to file://, ftp:// and gopher:// is refused") {
    for (std::string target : {"file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://127.0.0.1/x"}) {
      CAPTURE(target);
      const auto r = fetch_one(o, server.url("/redirect-to?url=" + target));
      CHECK(r.error == ErrorKind::ForbiddenRedirect);
    }
  }
  CHECK_FALSE(has_part_files(dir.path));
}

TEST_CASE("max_file_size refuses a large Content-Length before the body and aborts an unbounded body") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_file_size = 10000;
  o.retries = 0;
  SUBCASE("Content-Length over the limit") {
    const auto r = fetch_one(o, server.url("/img/big.jpg?size=5000000"));
    CHECK(r.error == ErrorKind::TooLarge);
    CHECK(r.bytes == 0);
  }
  SUBCASE("no Content-Length, aborted at the limit") {
    const auto r = fetch_one(o, server.url("/unbounded"));
    CHECK(r.error == ErrorKind::TooLarge);
  }
  SUBCASE("a body exactly at the limit is fine") {
    const auto r = fetch_one(o, server.url("/img/edge.jpg?size=10000"));
    CHECK(r.status == DownloadStatus::Ok);
  }
  CHECK_FALSE(has_part_files(dir.path));
}

TEST_CASE("require_image refuses HTML served with 200 and keeps nothing, unless turned off") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  const auto r = fetch_one(o, server.url("/html"));
  CHECK(r.error == ErrorKind::NotImage);
  CHECK(r.message == "not an image (server sent text/html)");
  CHECK(dir.entries().empty());
  o.require_image = false;
  const auto kept = fetch_one(o, server.url("/html"));
  CHECK(kept.status == DownloadStatus::Ok);
}

TEST_CASE("valid image bytes with a wrong Content-Type are accepted") {
  TestServer server;
  TempDir dir;
  const auto r = fetch_one(options_for(dir), server.url("/img/w.png?content_type=text/plain"));
  CHECK(r.status == DownloadStatus::Ok);
  CHECK(r.image_type == imgdl::ImageType::Png);
}

TEST_CASE("an empty 200 fails as empty, the seed's 'could not download the image'") {
  TestServer server;
  TempDir dir;
  const auto r = fetch_one(options_for(dir), server.url("/empty"));
  CHECK(r.error == ErrorKind::Empty);
  CHECK(r.message.find("could not download the image") != std::string::npos);
  CHECK(dir.entries().empty());
}

TEST_CASE("a cut body fails as truncated and leaves no file") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  const auto r = fetch_one(o, server.url("/truncated/t.jpg?size=50000&sent=20000"));
  CHECK(r.status == DownloadStatus::Failed);
  CHECK((r.error == ErrorKind::Truncated || r.error == ErrorKind::Network));
  CHECK(dir.entries().empty());
}

TEST_CASE("connection failures and invalid URLs are reported as their kinds") {
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  SUBCASE("connection refused") {
    // A port that was just free: bind, read it back, close.
    int port = 0;
    {
      TestServer temporary;
      port = temporary.port();
    }
    const auto r = fetch_one(o, "http://127.0.0.1:" + std::to_string(port) + "/x.jpg");
    CHECK(r.error == ErrorKind::Connect);
  }
  SUBCASE("not http(s)") {
    const auto r = fetch_one(o, "ftp://127.0.0.1/x.jpg");
    CHECK(r.error == ErrorKind::InvalidUrl);
    CHECK(r.attempts == 0);
  }
  SUBCASE("not a URL") {
    const auto r = fetch_one(o, "not a url");
    CHECK(r.error == ErrorKind::InvalidUrl);
  }
}

TEST_CASE("a transfer that ends inside the call that started it is settled without another event") {
  // A connection to the broadcast address fails inside the libcurl call that starts it (the kernel
  // refuses it at once), and the loop makes that call right after settling the previous file. The loop sleeps
  // without an idle timeout, so a completion it failed to read there would hang this test instead of costing
  // a silent second.
  TestServer server;
  TempDir dir;
  ScopedEnv no_proxy(imgdl::test::proxy_variables);  // a proxy would take the broadcast address's URLs
  auto o = options_for(dir);
  o.max_workers = 1;
  o.retries = 0;
  o.unreachable_after = 0;  // every refused URL must make its own attempt, not end as host_unreachable
  Downloader d(o);
  std::vector<imgdl::Future<DownloadResult>> fetched, refused;
  for (int i = 0; i < 20; ++i) {
    fetched.push_back(d.submit(server.url("/img/f" + std::to_string(i) + ".jpg?size=100")));
    refused.push_back(d.submit("http://255.255.255.255:9/r" + std::to_string(i) + ".jpg"));
  }
  // One worker takes them in order: the last URL ends last.
  bool all_settled = true;
  try {
    (void)refused.back().result(30s);
  } catch (const imgdl::TimeoutError&) {
    all_settled = false;
    d.cancel();  // wakes the loop for good, so the Downloader's destructor drains instead of hanging
  }
  REQUIRE(all_settled);
  for (std::size_t i = 0; i < fetched.size(); ++i) {
    CAPTURE(i);
    CHECK(fetched[i].result().status == DownloadStatus::Ok);
    CHECK(refused[i].result().error == ErrorKind::Connect);
  }
}

TEST_CASE("timeouts: the whole-transfer limit and the low-speed limit") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  SUBCASE("a stall before the headers") {
    o.timeout = 500ms;
    const auto r = fetch_one(o, server.url("/stall-headers?ms=10000"));
    CHECK(r.error == ErrorKind::Timeout);
  }
  SUBCASE("a slow drip under the low-speed limit") {
    o.low_speed_limit = 100000;
    o.low_speed_time = 1s;
    const auto r = fetch_one(o, server.url("/drip?size=100000&bytes_per_sec=1000"));
    CHECK(r.error == ErrorKind::Timeout);
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("connect_timeout bounds a connection the server never accepts") {
  // A listener with a full accept queue leaves further SYNs unanswered: connect() hangs, as it does
  // towards a host that drops packets, without leaving loopback.
  const imgdl::test::SilentListener silent;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  o.connect_timeout = 300ms;
  const auto r = fetch_one(o, silent.url("/x.jpg"));
  CHECK(r.error == ErrorKind::Timeout);
  CHECK(r.message.find("onnect") != std::string::npos);
  CHECK(r.elapsed < 10s);
}

TEST_CASE("a proxy from the environment is used, as libcurl reads it") {
  // The test server plays the proxy: with http_proxy set, libcurl sends it the request for a host
  // that does not exist (.invalid never resolves) instead of resolving that host itself.
  TestServer proxy;
  TempDir dir;
  ScopedEnv env(imgdl::test::proxy_variables);
  env.set("http_proxy", proxy.base_url());
  auto o = options_for(dir);
  o.retries = 0;
  const auto r = fetch_one(o, "http://imgdl-proxy-test.invalid/img/p.jpg");
  CHECK(proxy.requests() == 1);
  CHECK(r.error != ErrorKind::Dns);
  CHECK(r.http_status != 0);
}

TEST_CASE("the default User-Agent names imgdl, its home page and libcurl; a custom one is sent as is") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  fetch_one(o, server.url("/img/ua.jpg"));
  const auto agent = server.last_user_agent();
  CHECK(agent == Downloader::default_user_agent());
  CHECK(agent.rfind("imgdl/", 0) == 0);
  CHECK(agent.find("(+http") != std::string::npos);
  CHECK(agent.find("libcurl/") != std::string::npos);
  o.user_agent = "custom/1.0";
  o.on_exists = imgdl::OnExists::Overwrite;
  fetch_one(o, server.url("/img/ua.jpg"));
  CHECK(server.last_user_agent() == "custom/1.0");
}

TEST_CASE("names: same basenames get distinct names in input order and a repeated URL is fetched once") {
  TestServer server;
  TempDir dir;
  Downloader d(options_for(dir));
  const auto results =
      d.download_all({server.url("/img/same.jpg?size=1000"), server.url("/img/same.jpg?size=2000"),
                      server.url("/img/same.jpg?size=1000"), server.url("/img/same.jpg?size=3000")});
  REQUIRE(results.size() == 4);
  CHECK(results[0].path.filename() == "same.jpg");
  CHECK(results[1].path.filename() == "same.1.jpg");
  CHECK(results[2].status == DownloadStatus::Skipped);
  CHECK(results[3].path.filename() == "same.2.jpg");
  CHECK(fs::file_size(dir.path / "same.jpg") == 1000);
  CHECK(fs::file_size(dir.path / "same.1.jpg") == 2000);
  CHECK(fs::file_size(dir.path / "same.2.jpg") == 3000);
  CHECK(server.hits("/img/same.jpg") == 3);
}

TEST_CASE("a file already on disk never pushes a URL onto a name planned for a later URL") {
  TestServer server;
  TempDir dir;
  std::ofstream(dir.path / "cat.jpg") << "old";
  Downloader d(options_for(dir));
  // The first URL finds cat.jpg taken; cat.1.jpg is planned for the second URL, so it takes cat.2.jpg.
  const auto results = d.download_all(
      {server.url("/img/cat.jpg?size=1000"), server.url("/img/cat.jpg?size=2000")}, imgdl::Mode::Sequential);
  REQUIRE(results.size() == 2);
  CHECK(results[0].path.filename() == "cat.2.jpg");
  CHECK(results[1].path.filename() == "cat.1.jpg");
  CHECK(fs::file_size(dir.path / "cat.1.jpg") == 2000);
  CHECK(read_file(dir.path / "cat.jpg") == "old");
}

TEST_CASE("a name without an extension gets the detected type's") {
  TestServer server;
  TempDir dir;
  const auto r = fetch_one(options_for(dir), server.url("/img/noext?type=png&size=2000"));
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(r.path.filename() == "noext.png");
}

TEST_CASE("no URL can make a file appear outside the output directory") {
  TestServer server;
  TempDir outer;
  const auto dir = outer.path / "out";
  auto o = options_for(outer);
  o.output_dir = dir;
  Downloader d(o);
  for (const auto& r : d.download_all(server.escaping_urls())) {
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

TEST_CASE("on_exists decides what happens to a file already there") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  const auto url = server.url("/img/e.jpg?size=4000");
  const auto expected = TestServer::image_bytes("jpeg", 4000, "/img/e.jpg");
  std::ofstream(dir.path / "e.jpg") << "old";
  SUBCASE("rename keeps both") {
    const auto r = fetch_one(o, url);
    CHECK(r.path.filename() == "e.1.jpg");
    CHECK(read_file(dir.path / "e.jpg") == "old");
  }
  SUBCASE("skip does not fetch") {
    o.on_exists = imgdl::OnExists::Skip;
    const auto r = fetch_one(o, url);
    CHECK(r.status == DownloadStatus::Skipped);
    CHECK(server.hits("/img/e.jpg") == 0);
    CHECK(read_file(dir.path / "e.jpg") == "old");
  }
  SUBCASE("overwrite replaces it") {
    o.on_exists = imgdl::OnExists::Overwrite;
    const auto r = fetch_one(o, url);
    CHECK(r.path.filename() == "e.jpg");
    CHECK(read_file(dir.path / "e.jpg") == expected);
  }
}

TEST_CASE("a symlink sitting at the target name is never followed") {
  TestServer server;
  TempDir dir;
  TempDir elsewhere;
  const auto victim = elsewhere.path / "victim.txt";
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, dir.path / "s.jpg");
  fs::create_symlink(victim, dir.path / "p.jpg.part");
  auto o = options_for(dir);
  SUBCASE("rename moves on to the next free name") {
    const auto r = fetch_one(o, server.url("/img/s.jpg"));
    CHECK(r.path.filename() == "s.1.jpg");
  }
  SUBCASE("overwrite replaces the link itself") {
    o.on_exists = imgdl::OnExists::Overwrite;
    const auto r = fetch_one(o, server.url("/img/s.jpg"));
    CHECK(r.status == DownloadStatus::Ok);
    CHECK_FALSE(fs::is_symlink(dir.path / "s.jpg"));
  }
  SUBCASE("a planted .part symlink is not written through") {
    const auto r = fetch_one(o, server.url("/img/p.jpg"));
    CHECK(r.status == DownloadStatus::Ok);
  }
  SUBCASE("resume refuses to continue through a .part symlink") {
    o.on_exists = imgdl::OnExists::Resume;
    const auto r = fetch_one(o, server.url("/img/p.jpg"));
    CHECK(r.status == DownloadStatus::Failed);
    CHECK(r.error == ErrorKind::Write);
  }
  CHECK(read_file(victim) == "precious");
}

TEST_CASE("resume continues a .part file with a Range request and checks Content-Range") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.on_exists = imgdl::OnExists::Resume;
  const auto expected = TestServer::image_bytes("jpeg", 60000, "/img/r.jpg");
  std::ofstream(dir.path / "r.jpg.part", std::ios::binary) << expected.substr(0, 25000);
  SUBCASE("the server honours the range") {
    const auto r = fetch_one(o, server.url("/img/r.jpg?size=60000"));
    REQUIRE(r.status == DownloadStatus::Ok);
    CHECK(read_file(dir.path / "r.jpg") == expected);
    CHECK(r.sha256 == imgdl::detail::Sha256::of(expected));
    REQUIRE(server.range_headers().size() == 1);
    CHECK(server.range_headers()[0] == "bytes=25000-");
    CHECK_FALSE(fs::exists(dir.path / "r.jpg.part"));
  }
  SUBCASE("the server ignores the range: the file restarts cleanly") {
    const auto r = fetch_one(o, server.url("/img/r.jpg?size=60000&ignore_range=1"));
    REQUIRE(r.status == DownloadStatus::Ok);
    CHECK(read_file(dir.path / "r.jpg") == expected);
    CHECK_FALSE(fs::exists(dir.path / "r.jpg.part"));
  }
  SUBCASE("an existing final file is skipped") {
    std::ofstream(dir.path / "r.jpg") << "done";
    const auto r = fetch_one(o, server.url("/img/r.jpg?size=60000"));
    CHECK(r.status == DownloadStatus::Skipped);
    CHECK(server.requests() == 0);
  }
}

TEST_CASE("resume keeps the .part of a transfer cut short, holding exactly the bytes received") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.on_exists = imgdl::OnExists::Resume;
  o.retries = 0;
  const auto cut = fetch_one(o, server.url("/truncated/t.jpg?size=50000&sent=20000"));
  CHECK(cut.status == DownloadStatus::Failed);
  REQUIRE(fs::exists(dir.path / "t.jpg.part"));
  CHECK(read_file(dir.path / "t.jpg.part") ==
        TestServer::image_bytes("jpeg", 50000, "/truncated/t.jpg").substr(0, 20000));
  CHECK_FALSE(fs::exists(dir.path / "t.jpg"));

  SUBCASE("without resume the same cut adds nothing, and the part file stays for a later resume") {
    o.on_exists = imgdl::OnExists::Rename;
    fetch_one(o, server.url("/truncated/t.jpg?size=50000&sent=20000"));
    CHECK(dir.entries() == std::set<std::string>{"t.jpg.part"});
    CHECK(read_file(dir.path / "t.jpg.part").size() == 20000);
  }
}

TEST_CASE(
    "TLS is verified by default, trusted through ca_file, and skipped only when insecure is asked for") {
  TestServer server(imgdl::test::ServerOptions{.tls = true});
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  const auto url = server.url("/img/tls.jpg");
  const auto refused = fetch_one(o, url);
  CHECK(refused.error == ErrorKind::Tls);
  CHECK(refused.message.find("TLS verification failed") != std::string::npos);
  o.ca_file = server.ca_file();
  CHECK(fetch_one(o, url).status == DownloadStatus::Ok);
  o.ca_file.clear();
  o.insecure = true;
  o.on_exists = imgdl::OnExists::Overwrite;
  CHECK(fetch_one(o, url).status == DownloadStatus::Ok);
}

TEST_CASE("the observer hears queued, started, progress and exactly one finished per URL") {
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.observer = recorder;
  o.retries = 0;
  Downloader d(o);
  (void)d.download_all({server.url("/img/a.jpg?size=200000"), server.url("/status/404"), "bad url"});
  std::lock_guard lock(recorder->mutex);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(recorder->queued[i] == 1);
    CHECK(recorder->finished[i] == 1);
  }
  CHECK(recorder->started[0] == 1);
  CHECK(recorder->progress_calls[0] >= 1);
}

TEST_CASE("progress reports are throttled to at most 10 a second per transfer") {
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.observer = recorder;
  const auto start = std::chrono::steady_clock::now();
  const auto r = fetch_one(o, server.url("/drip?size=20000&bytes_per_sec=20000"));
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(r.status == DownloadStatus::Ok);
  std::lock_guard lock(recorder->mutex);
  CHECK(recorder->progress_calls[0] >= 2);
  CHECK(recorder->progress_calls[0] <= static_cast<int>(seconds * 10) + 2);
}

TEST_CASE("cancel aborts queued and in-flight transfers promptly and leaves no .part behind") {
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.max_workers = 2;
  o.observer = recorder;
  Downloader d(o);
  auto all = std::async(std::launch::async,
                        [&] { return d.download_all(server.image_urls(6, 1000, "c", 20000ms)); });
  while (recorder->started_count < 2)
    std::this_thread::sleep_for(5ms);
  while (server.in_flight() < 2)
    std::this_thread::sleep_for(5ms);
  d.cancel();
  REQUIRE(all.wait_for(10s) == std::future_status::ready);
  for (const auto& r : all.get()) {
    CHECK(r.status == DownloadStatus::Cancelled);
    CHECK(r.error == ErrorKind::Cancelled);
  }
  CHECK(d.cancelled());
  CHECK(dir.entries().empty());
  CHECK_THROWS_AS(d.submit(server.url("/img/late.jpg")), imgdl::ExecutorShutdownError);
  std::lock_guard lock(recorder->mutex);
  for (std::size_t i = 0; i < 6; ++i)
    CHECK(recorder->finished[i] == 1);
}

TEST_CASE("cancel stops a transfer whose body never ends, however fast it streams") {
  // libcurl asks to be run again at once while a fast transfer has data waiting: the loop must still
  // come back to its own work (here, cancel()) between those runs.
  TestServer server;
  TempDir dir;
  auto recorder = std::make_shared<Recorder>();
  auto o = options_for(dir);
  o.observer = recorder;
  o.max_file_size = 0;  // unlimited: only cancel() can end it
  Downloader d(o);
  auto endless = d.submit(server.url("/unbounded"));
  auto streaming = [&] {
    std::lock_guard lock(recorder->mutex);
    return recorder->progress_calls[0] > 0;
  };
  while (!streaming() && !endless.done())
    std::this_thread::sleep_for(5ms);
  REQUIRE_FALSE(endless.done());
  d.cancel();
  const DownloadResult r = endless.result(30s);  // throws TimeoutError if cancel() was not seen
  CHECK(r.status == DownloadStatus::Cancelled);
  CHECK(dir.entries().empty());
}

TEST_CASE("download_stream keeps at most 2 x workers URLs pulled and unfinished, and delivers each once") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 2;
  Downloader d(o);
  const auto urls = server.image_urls(20, 500, "stream", 50ms);
  std::size_t pulled = 0, delivered = 0, widest = 0;
  std::vector<int> seen(urls.size(), 0);
  const auto count = d.download_stream(
      [&]() -> std::optional<std::string> {
        if (pulled == urls.size())
          return std::nullopt;
        widest = std::max(widest, ++pulled - delivered);
        return urls[pulled - 1];
      },
      [&](std::size_t index, DownloadResult&& r) {
        ++delivered;
        REQUIRE(index < urls.size());
        ++seen[index];
        CHECK(r.url == urls[index]);
        CHECK(r.status == DownloadStatus::Ok);
      });
  CHECK(count == urls.size());
  CHECK(delivered == urls.size());
  CHECK(widest <= 4);
  CHECK(server.peak_in_flight() == 2);
  for (int n : seen)
    CHECK(n == 1);
}

TEST_CASE("download_stream stops pulling URLs once cancelled") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 2;
  Downloader d(o);
  std::size_t pulled = 0, delivered = 0;
  d.download_stream(
      [&]() -> std::optional<std::string> {
        if (pulled == 3)
          d.cancel();  // e.g. Ctrl-C while the list is still being read
        return server.url("/img/endless" + std::to_string(pulled++) + ".jpg?latency_ms=100");
      },
      [&](std::size_t, DownloadResult&&) { ++delivered; });
  CHECK(pulled == 4);  // the call that cancelled still returned a URL; nothing was pulled after it
  CHECK(delivered == 4);
  CHECK_FALSE(has_part_files(dir.path));
}

TEST_CASE("an exception from a download_stream callback propagates and stops the transfers in flight") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_workers = 2;
  Downloader d(o);
  const auto urls = server.image_urls(6, 500, "throw", 3000ms);
  std::size_t pulled = 0;
  CHECK_THROWS_AS(d.download_stream(
                      [&]() -> std::optional<std::string> {
                        if (pulled == 3)
                          throw std::runtime_error("input failed");
                        return urls[pulled++];
                      },
                      [](std::size_t, DownloadResult&&) {}),
                  std::runtime_error);
}

TEST_CASE("download_all returns its own results in input order while another thread submits") {
  TestServer server;
  TempDir dir;
  Downloader d(options_for(dir));
  const auto urls = server.image_urls(30, 300, "mine");
  // The other thread's submissions take Downloader-wide indexes in between this call's.
  std::thread other([&] {
    for (int i = 0; i < 30; ++i)
      (void)d.submit(server.url("/img/theirs" + std::to_string(i) + ".jpg?size=300"));
  });
  const auto results = d.download_all(urls);
  other.join();
  REQUIRE(results.size() == urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i)
    CHECK(results[i].url == urls[i]);
}

TEST_CASE("a part file another writer holds is never taken over; a stale one is reused") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  SUBCASE("two Downloaders resuming the same name into one directory") {
    o.on_exists = imgdl::OnExists::Resume;
    Downloader first(o), second(o);
    const auto url = server.url("/drip?size=20000&bytes_per_sec=20000");  // about a second of body
    auto slow = first.submit(url);
    // The part file exists, locked, from before the first body byte until the rename.
    while (!fs::exists(dir.path / "drip.part"))
      std::this_thread::sleep_for(5ms);
    const auto refused = second.submit(url).result();
    CHECK(refused.status == DownloadStatus::Failed);
    CHECK(refused.error == ErrorKind::Write);
    CHECK(refused.message.find("another transfer is writing") != std::string::npos);
    const auto& kept = slow.result();
    REQUIRE(kept.status == DownloadStatus::Ok);
    CHECK(imgdl::detail::Sha256::of(read_file(kept.path)) == kept.sha256);
  }
  SUBCASE("a stale part file from an interrupted run, overwriting") {
    o.on_exists = imgdl::OnExists::Overwrite;
    std::ofstream(dir.path / "stale.jpg.part") << "left over by a run that died";
    const auto r = fetch_one(o, server.url("/img/stale.jpg?size=3000"));
    REQUIRE(r.status == DownloadStatus::Ok);
    CHECK(read_file(r.path) == TestServer::image_bytes("jpeg", 3000, "/img/stale.jpg"));
  }
  CHECK_FALSE(has_part_files(dir.path));
}

TEST_CASE("without resume, a download has no name in the directory until it is whole") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  SUBCASE("two Downloaders writing the same name both finish, under two names") {
    Downloader first(o), second(o);
    const auto url = server.url("/drip?size=20000&bytes_per_sec=40000");  // about half a second of body
    auto a = first.submit(url);
    auto b = second.submit(url);
    const auto& ra = a.result();
    const auto& rb = b.result();
    REQUIRE(ra.status == DownloadStatus::Ok);
    REQUIRE(rb.status == DownloadStatus::Ok);
    CHECK(ra.path != rb.path);
    CHECK(imgdl::detail::Sha256::of(read_file(ra.path)) == ra.sha256);
    CHECK(imgdl::detail::Sha256::of(read_file(rb.path)) == rb.sha256);
    CHECK(dir.entries().size() == 2);
  }
  SUBCASE("mid-transfer the directory holds nothing, and a stale part file is left for a later resume") {
    std::ofstream(dir.path / "drip.part") << "left over by a resumable run that died";
    auto recorder = std::make_shared<Recorder>();
    o.observer = recorder;
    Downloader d(o);
    auto slow = d.submit(server.url("/drip?size=20000&bytes_per_sec=20000"));  // about a second of body
    while (recorder->started_count.load() == 0)
      std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(100ms);  // into the body
    CHECK(dir.entries() == std::set<std::string>{"drip.part"});
    const auto& r = slow.result();
    REQUIRE(r.status == DownloadStatus::Ok);
    CHECK(imgdl::detail::Sha256::of(read_file(r.path)) == r.sha256);
    CHECK(read_file(dir.path / "drip.part") == "left over by a resumable run that died");
  }
}

TEST_CASE("skip and resume find a file saved under its sniffed extension") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  const auto url = server.url("/img/bare?type=png&size=2000");
  REQUIRE(fetch_one(o, url).path.filename() == "bare.png");
  for (auto mode : {imgdl::OnExists::Skip, imgdl::OnExists::Resume}) {
    o.on_exists = mode;
    CHECK(fetch_one(o, url).status == DownloadStatus::Skipped);
  }
  CHECK(server.hits("/img/bare") == 1);
  CHECK(dir.entries() == std::set<std::string>{"bare.png"});
}

TEST_CASE("several Downloaders live in one process side by side") {
  TestServer server;
  TempDir a, b;
  Downloader da(options_for(a)), db(options_for(b));
  auto fa = da.submit(server.url("/img/one.jpg"));
  auto fb = db.submit(server.url("/img/one.jpg"));
  CHECK(fa.result().status == DownloadStatus::Ok);
  CHECK(fb.result().status == DownloadStatus::Ok);
  CHECK(fs::exists(a.path / "one.jpg"));
  CHECK(fs::exists(b.path / "one.jpg"));
}

TEST_CASE("a full disk fails the file with a write error and leaves no .part") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 0;
  // RLIMIT_FSIZE stands in for a full disk: writes past it fail with EFBIG (SIGXFSZ ignored).
  struct rlimit saved {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* previous = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 10000;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  const auto r = fetch_one(o, server.url("/img/huge.jpg?size=200000"));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous);
  CHECK(r.status == DownloadStatus::Failed);
  CHECK(r.error == ErrorKind::Write);
  CHECK(dir.entries().empty());
}

namespace {

/// This process's environment plus `extra` ("NAME=value"), less every sanitizer option that names a
/// file (suppressions=): a process re-run as another user may be unable to read the checkout they are
/// in. ThreadSanitizer's suppressions are compiled into the binary (cmake/tsan_suppressions.cmake).
std::vector<std::string> environment_for_another_user(const std::string& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    const std::string_view name = std::string_view(entry).substr(0, entry.find('='));
    if (name == "ASAN_OPTIONS" || name == "LSAN_OPTIONS" || name == "TSAN_OPTIONS" ||
        name == "UBSAN_OPTIONS") {
      std::string kept;
      std::istringstream options(entry.substr(name.size() + 1));
      for (std::string option; std::getline(options, option, ':');) {
        if (!option.empty() && !option.starts_with("suppressions="))
          kept += (kept.empty() ? "" : ":") + option;
      }
      entry = std::string(name) + "=" + kept;
    }
    env.push_back(std::move(entry));
  }
  env.push_back(extra);
  return env;
}

}  // namespace

TEST_CASE("a read-only output directory fails each file with a write error") {
  // Root ignores permissions, so as root this test re-runs itself as "nobody" in a fresh process
  // (exec, not just fork: sanitizers do not support carrying on after fork in a threaded process).
  // The re-run must read nothing under the checkout, which may sit in a directory only root can enter:
  // it is exec'd through /proc/self/exe and given no file-valued sanitizer options.
  constexpr const char* child_marker = "IMGDL_TEST_READ_ONLY_DIR";
  if (const char* dir_from_parent = std::getenv(child_marker)) {
    TestServer server;
    DownloadOptions o;
    o.output_dir = dir_from_parent;
    o.retries = 0;
    const auto r = fetch_one(o, server.url("/img/ro.jpg"));
    CHECK(r.status == DownloadStatus::Failed);
    CHECK(r.error == ErrorKind::Write);
    CHECK(r.message.find("Permission denied") != std::string::npos);
    return;
  }
  TempDir dir;
  fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  if (::geteuid() != 0) {
    TestServer server;
    const auto r = fetch_one(options_for(dir), server.url("/img/ro.jpg"));
    CHECK(r.error == ErrorKind::Write);
  } else {
    // Everything the child needs is prepared here: after fork, only async-signal-safe calls.
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    const uid_t uid = nobody->pw_uid;
    const gid_t gid = nobody->pw_gid;
    const auto env = environment_for_another_user(std::string(child_marker) + "=" + dir.path.string());
    std::vector<char*> envp;
    for (const auto& e : env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const char* argv[] = {"downloader_test", "--test-case=a read-only output directory*", "--no-version",
                          nullptr};
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
        ::_exit(3);
      ::execve("/proc/self/exe", const_cast<char* const*>(argv), envp.data());
      ::_exit(4);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("an output directory that cannot be created is a setup error") {
  TempDir dir;
  std::ofstream(dir.path / "file") << "x";
  DownloadOptions o;
  o.output_dir = dir.path / "file" / "sub";
  CHECK_THROWS_AS(Downloader{o}, std::system_error);
  o.output_dir = dir.path;
  o.max_workers = 0;
  CHECK_THROWS_AS(Downloader{o}, std::invalid_argument);
}
