// Being polite to hosts, proven at the server: per_host_rate spaces the requests one host receives, a
// 429's Retry-After holds off that host's other URLs (and no other host's), and a host that cannot be
// reached costs a few timeouts, not one per URL. A host is an origin: two test servers on 127.0.0.1
// are two hosts. Times are the server's own arrival times, never the test's wall clock.

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

#include "imgdl/downloader.hpp"
#include "support/loopback_listener.hpp"
#include "support/sanitizer.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::test::TempDir;
using imgdl::test::TestServer;
using Clock = std::chrono::steady_clock;

using imgdl::test::SilentListener;

namespace {

/// Arrival times at `server` of requests whose path starts with `prefix`, in order.
std::vector<Clock::time_point> arrivals(const TestServer& server, const std::string& prefix) {
  std::vector<Clock::time_point> times;
  for (const auto& a : server.arrivals())
    if (a.path.starts_with(prefix))
      times.push_back(a.at);
  return times;
}

/// Tells when the first retry is scheduled (its attempt's response has been judged).
struct FirstRetry : imgdl::DownloadObserver {
  std::promise<void> seen;
  std::once_flag once;
  void on_retrying(const Transfer&, int, std::chrono::milliseconds, std::string_view) override {
    std::call_once(once, [&] { seen.set_value(); });
  }
};

std::vector<std::string> urls_of(const TestServer& server, const std::string& prefix, int count) {
  std::vector<std::string> urls;
  for (int i = 0; i < count; ++i)
    urls.push_back(server.url("/img/" + prefix + std::to_string(i) + ".jpg?size=2000"));
  return urls;
}

}  // namespace

TEST_CASE("per_host_rate spaces the requests each host receives, across transfer threads") {
  TestServer a;
  TestServer b;  // same address, another port: another host, with its own spacing
  TempDir dir;
  DownloadOptions options;
  options.output_dir = dir.path;
  options.max_workers = 8;
  options.transfer_threads = 2;
  options.per_host_rate = 4;  // one start per 250 ms
  options.compute_sha256 = false;
  std::vector<std::string> urls;
  const auto from_a = urls_of(a, "a", 5);
  const auto from_b = urls_of(b, "b", 5);
  for (int i = 0; i < 5; ++i) {
    urls.push_back(from_a[static_cast<std::size_t>(i)]);
    urls.push_back(from_b[static_cast<std::size_t>(i)]);
  }
  {
    // A server's first request can reach its handler late (its first connection, under a sanitizer by
    // a few hundred ms): have that happen before the measured run.
    DownloadOptions warm = options;
    warm.per_host_rate = 0;
    (void)Downloader(warm).download_all({a.url("/img/warm.jpg?size=2000"), b.url("/img/warm.jpg?size=2000")});
    a.reset_counters();
    b.reset_counters();
  }
  Downloader downloader(options);
  for (const auto& r : downloader.download_all(urls))
    CHECK_MESSAGE(r.ok(), r.url, ": ", r.message);
  for (const TestServer* server : {&a, &b}) {
    const auto times = arrivals(*server, "/img/");
    REQUIRE(times.size() == 5);
    // Starts are 250 ms apart at the client; a request may still reach the server late and shorten one
    // gap, so the typical gap and the whole span are checked: without spacing, both are near 0.
    std::vector<Clock::duration> gaps;
    for (std::size_t i = 1; i < times.size(); ++i)
      gaps.push_back(times[i] - times[i - 1]);
    std::sort(gaps.begin(), gaps.end());
    CHECK(gaps[gaps.size() / 2] >= 200ms);
    CHECK(times.back() - times.front() >= 800ms);
  }
  // The hosts are spaced apart, not after each other: b's first request did not wait for a's.
  CHECK(arrivals(b, "/img/").front() < arrivals(a, "/img/")[1]);
}

TEST_CASE("a 429 with Retry-After holds off its host's other URLs, and no other host's") {
  for (const bool pauses_host : {true, false}) {
    CAPTURE(pauses_host);
    TestServer a;
    TestServer b;
    TempDir dir;
    auto observer = std::make_shared<FirstRetry>();
    DownloadOptions options;
    options.output_dir = dir.path;
    options.max_workers = 8;
    options.transfer_threads = 2;
    options.retry_after_pauses_host = pauses_host;
    options.observer = observer;
    options.compute_sha256 = false;
    Downloader downloader(options);
    auto limited = downloader.submit(a.url("/flaky/limited.jpg?fails=1&code=429&retry_after=3&size=2000"));
    REQUIRE(observer->seen.get_future().wait_for(30s) == std::future_status::ready);
    std::vector<imgdl::Future<DownloadResult>> futures;
    for (const auto& url : urls_of(a, "a", 3))
      futures.push_back(downloader.submit(url));
    for (const auto& url : urls_of(b, "b", 3))
      futures.push_back(downloader.submit(url));
    for (auto& f : futures)
      CHECK(f.result().ok());
    const DownloadResult r = limited.result();
    CHECK(r.ok());
    CHECK(r.attempts == 2);

    const Clock::time_point told = arrivals(a, "/flaky/").front();  // the 429 left after this
    const auto from_a = arrivals(a, "/img/");
    const auto from_b = arrivals(b, "/img/");
    REQUIRE(from_a.size() == 3);
    REQUIRE(from_b.size() == 3);
    for (const auto t : from_b)
      CHECK(t - told < 2s);  // host b never waited
    for (const auto t : from_a) {
      if (pauses_host)
        CHECK(t - told >= 3s);  // host a waited out the whole Retry-After
      else
        CHECK(t - told < 2s);
    }
  }
}

TEST_CASE(
    "a host that never answers costs a few connect timeouts, not one per URL; another host is unharmed") {
  SilentListener silent;
  TestServer live;
  TempDir dir;
  DownloadOptions options;
  options.output_dir = dir.path;
  options.max_workers = 8;
  options.transfer_threads = 2;
  options.connect_timeout = 1s;
  options.retries = 1;
  options.retry_backoff = 100ms;
  options.compute_sha256 = false;
  REQUIRE(options.unreachable_after == 5);  // the default
  const std::string dead = "http://127.0.0.1:" + std::to_string(silent.port());
  std::vector<std::string> urls;
  const auto live_urls = urls_of(live, "live", 20);
  for (int i = 0; i < 40; ++i) {
    urls.push_back(dead + "/img/dead" + std::to_string(i) + ".jpg");
    if (i % 2 == 0)
      urls.push_back(live_urls[static_cast<std::size_t>(i / 2)]);
  }
  Downloader downloader(options);
  const auto start = Clock::now();
  const auto results = downloader.download_all(urls);
  const auto took = Clock::now() - start;

  int unreachable = 0, never_tried = 0, dead_attempts = 0;
  for (const auto& r : results) {
    if (!r.url.starts_with(dead)) {
      CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.url, ": ", r.message);
      continue;
    }
    CHECK(r.status == DownloadStatus::Failed);
    CHECK((r.error == ErrorKind::HostUnreachable || r.error == ErrorKind::Timeout));
    dead_attempts += r.attempts;
    if (r.error != ErrorKind::HostUnreachable)
      continue;
    ++unreachable;
    CHECK(
        r.message.starts_with("host " + dead + " unreachable: 5 consecutive connect failures or timeouts; "));
    if (r.attempts == 0) {
      ++never_tried;
      CHECK(r.message.ends_with("; not tried"));
    }
  }
  // Every live URL reached its server exactly once.
  for (const auto& url : live_urls)
    CHECK(live.hits(url.substr(live.base_url().size(), url.find('?') - live.base_url().size())) == 1);
  // At most the first wave of transfers (max_workers) waited out a timeout; the rest were not tried.
  CHECK(dead_attempts >= 5);
  CHECK(dead_attempts <= 16);
  CHECK(unreachable >= 30);
  CHECK(never_tried >= 24);
  MESSAGE("40 URLs to a silent host: ", dead_attempts, " attempts, ", unreachable, " host_unreachable (",
          never_tried, " not tried), in ", std::chrono::duration<double>(took).count(), " s");
  if (!imgdl::test::sanitized)
    CHECK(took < 5s);  // one connect timeout and change; before, 40 × 2 attempts / 8 workers × 1 s
}

TEST_CASE("a refused port is unreachable after K attempts, with K configurable") {
  int port = 0;
  {
    TestServer temporary;  // a port that was free a moment ago: nothing listens there now
    port = temporary.port();
  }
  TempDir dir;
  DownloadOptions options;
  options.output_dir = dir.path;
  options.max_workers = 4;
  options.transfer_threads = 1;
  options.retries = 3;
  options.retry_backoff = 10ms;
  options.unreachable_after = 3;
  std::vector<std::string> urls;
  const std::string dead = "http://127.0.0.1:" + std::to_string(port);
  for (int i = 0; i < 40; ++i)
    urls.push_back(dead + "/img/" + std::to_string(i) + ".jpg");
  Downloader downloader(options);
  int attempts = 0, unreachable = 0;
  for (const auto& r : downloader.download_all(urls)) {
    attempts += r.attempts;
    unreachable += r.error == ErrorKind::HostUnreachable;
  }
  // Without the breaker: 40 URLs × 4 attempts.
  CHECK(attempts >= 3);
  CHECK(attempts <= 3 + 4);
  CHECK(unreachable >= 36);
  CHECK(dir.entries().empty());
}

TEST_CASE("a response resets the count of failures: only K in a row make a host unreachable") {
  TestServer server;
  TempDir dir;
  DownloadOptions options;
  options.output_dir = dir.path;
  options.timeout = 300ms;
  options.retries = 0;
  options.unreachable_after = 3;
  options.compute_sha256 = false;
  const auto stall = [&](int i) { return server.url("/stall-headers?ms=5000&n=" + std::to_string(i)); };
  const auto image = [&](int i) { return server.url("/img/ok" + std::to_string(i) + ".jpg?size=2000"); };
  Downloader downloader(options);

  // Two timeouts, a success, two timeouts, a success: never three in a row.
  const auto first = downloader.download_all({stall(1), stall(2), image(1), stall(3), stall(4), image(2)},
                                             imgdl::Mode::Sequential);
  for (const auto& r : first)
    CHECK(r.error != ErrorKind::HostUnreachable);
  CHECK(first[2].ok());
  CHECK(first[5].ok());

  // Three in a row: the host is unreachable, and its next URLs are not tried.
  const auto second =
      downloader.download_all({stall(5), stall(6), stall(7), image(3), image(4)}, imgdl::Mode::Sequential);
  CHECK(second[2].error == ErrorKind::Timeout);
  for (const std::size_t i : {3u, 4u}) {
    CHECK(second[i].error == ErrorKind::HostUnreachable);
    CHECK(second[i].attempts == 0);
  }
  CHECK(server.hits("/img/ok3.jpg") == 0);
  CHECK(server.hits("/stall-headers") == 7);
}

TEST_CASE("URLs that make no request (files already there, duplicates) do not wait for their host's rate") {
  TestServer server;
  TempDir dir;
  DownloadOptions options;
  options.output_dir = dir.path;
  options.max_workers = 2;
  options.per_host_rate = 0.5;  // one request every 2 s
  options.on_exists = imgdl::OnExists::Skip;
  std::vector<std::string> urls = urls_of(server, "there", 5);
  for (int i = 0; i < 5; ++i)
    std::ofstream(dir.path / ("there" + std::to_string(i) + ".jpg")) << "x";
  urls.push_back(server.url("/img/new.jpg?size=2000"));
  urls.push_back(urls.back());  // a duplicate
  Downloader downloader(options);
  const auto start = Clock::now();
  const auto results = downloader.download_all(urls);
  for (const auto& r : results)
    CHECK(r.ok());
  CHECK(results[5].status == DownloadStatus::Ok);
  CHECK(server.requests() == 1);
  // Rate-limited, the seven would take 12 s.
  CHECK(Clock::now() - start < 6s);
}

TEST_CASE("a host that accepts and never answers is given up on too; only its URLs fail, and leave no file") {
  TestServer silent;  // answers nothing before the timeout
  TestServer live;
  TempDir dir;
  DownloadOptions options;
  options.output_dir = dir.path;
  options.max_workers = 4;
  options.transfer_threads = 2;
  options.timeout = 500ms;
  options.retries = 2;
  options.retry_backoff = 50ms;
  options.compute_sha256 = false;
  std::vector<std::string> urls;
  const auto live_urls = urls_of(live, "live", 10);
  for (int i = 0; i < 20; ++i) {
    urls.push_back(silent.url("/stall-headers?ms=5000&n=" + std::to_string(i)));
    if (i % 2 == 0)
      urls.push_back(live_urls[static_cast<std::size_t>(i / 2)]);
  }
  Downloader downloader(options);
  int unreachable = 0;
  for (const auto& r : downloader.download_all(urls)) {
    if (r.url.starts_with(live.base_url())) {
      CHECK_MESSAGE(r.ok(), r.url, ": ", r.message);
      continue;
    }
    CHECK((r.error == ErrorKind::Timeout || r.error == ErrorKind::HostUnreachable));
    unreachable += r.error == ErrorKind::HostUnreachable;
  }
  // The silent host saw about one wave of requests (5 in a row give it up), not 20 × 3 attempts.
  CHECK(silent.hits("/stall-headers") <= 5 + 4);
  CHECK(unreachable >= 12);
  CHECK(dir.entries().size() == 10);  // the live host's files, nothing of the silent one's
}
