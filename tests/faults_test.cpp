// The fault matrix: every way a server can misbehave, one row each, through the public Downloader API.
// Each row runs in the same download_all() as two good URLs, which must come out byte-identical: a fault
// stays confined to its own URL. Every row also proves the run ends in bounded time and leaves neither a
// final file nor a `.part` behind for the failed URL. What is already covered in depth by
// downloader_test.cpp (resume, cancel, symlinks, observers) is not repeated here.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "imgdl/downloader.hpp"
#include "support/loopback_listener.hpp"
#include "support/sanitizer.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::test::read_file;
using imgdl::test::ServerOptions;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

namespace {

/// Only catches hangs: every row normally ends within a few seconds.
constexpr auto kHangBound = imgdl::test::sanitized ? 180s : 60s;

/// Records retry delays, to prove a Retry-After was honoured.
struct RetryRecorder : imgdl::DownloadObserver {
  std::mutex mutex;
  std::vector<std::pair<std::size_t, std::chrono::milliseconds>> delays;  // (index, delay)
  void on_retrying(const Transfer& t, int, std::chrono::milliseconds delay, std::string_view) override {
    std::lock_guard lock(mutex);
    delays.emplace_back(t.index, delay);
  }
};

enum class Match { Exact, Prefix, Contains };

/// One fault: the URL to fetch, option tweaks, and everything expected of its result.
struct Row {
  std::string fault;
  std::string url;  // absolute
  std::function<void(DownloadOptions&)> tweak = [](DownloadOptions&) {};
  DownloadStatus status = DownloadStatus::Failed;
  ErrorKind error = ErrorKind::None;
  std::string message;
  Match match = Match::Exact;
  int attempts = 1;       // with retries = 1: 2 means the fault was retried
  long http_status = -1;  // -1: not checked
  std::string ok_name;    // Ok rows: the file's name and exact content
  std::string ok_bytes;
  std::chrono::milliseconds min_elapsed{0};  // a Retry-After that must have been waited for
  std::chrono::milliseconds max_elapsed{15000};
};

DownloadOptions base_options(const fs::path& dir) {
  DownloadOptions o;
  o.output_dir = dir;
  o.max_workers = 3;
  o.retries = 1;  // one retry shows which faults are retried (attempts 2) and which are not (attempts 1)
  o.retry_backoff = 10ms;
  o.retry_max_delay = 5s;
  o.connect_timeout = 5s;
  o.timeout = 30s;
  return o;
}

bool message_matches(const std::string& actual, const std::string& expected, Match match) {
  switch (match) {
    case Match::Exact:
      return actual == expected;
    case Match::Prefix:
      return actual.rfind(expected, 0) == 0;
    case Match::Contains:
      return actual.find(expected) != std::string::npos;
  }
  return false;
}

/// Runs `row` together with two good URLs in one download_all() and checks all three outcomes.
void run_row(const TestServer& good_server, const Row& row, std::size_t index) {
  CAPTURE(row.fault);
  CAPTURE(row.url);
  TempDir dir;
  auto recorder = std::make_shared<RetryRecorder>();
  auto options = base_options(dir.path);
  options.observer = recorder;
  row.tweak(options);

  const std::string tag = "good_" + std::to_string(index);
  const std::string good_a = "/img/" + tag + "_a.jpg";
  const std::string good_b = "/img/" + tag + "_b.png";
  const std::vector<std::string> urls = {good_server.url(good_a + "?size=6000"), row.url,
                                         good_server.url(good_b + "?size=9000")};

  Downloader downloader(options);
  const auto start = std::chrono::steady_clock::now();
  auto running = std::async(std::launch::async, [&] { return downloader.download_all(urls); });
  if (running.wait_for(kHangBound) != std::future_status::ready) {
    FAIL_CHECK("the run hung");
    downloader.cancel();
  }
  const auto results = running.get();
  const auto wall = std::chrono::steady_clock::now() - start;
  REQUIRE(results.size() == 3);

  // The neighbours are unaffected, byte for byte.
  CHECK(results[0].status == DownloadStatus::Ok);
  CHECK(read_file(dir.path / (tag + "_a.jpg")) == TestServer::image_bytes("jpeg", 6000, good_a));
  CHECK(results[2].status == DownloadStatus::Ok);
  CHECK(read_file(dir.path / (tag + "_b.png")) == TestServer::image_bytes("png", 9000, good_b));

  const DownloadResult& r = results[1];
  CAPTURE(r.message);
  CAPTURE(to_string(r.error));
  CHECK(r.status == row.status);
  CHECK(r.error == row.error);
  CHECK(message_matches(r.message, row.message, row.match));
  CHECK(r.attempts == row.attempts);
  if (row.http_status >= 0)
    CHECK(r.http_status == row.http_status);
  CHECK(wall < row.max_elapsed);
  CHECK(r.elapsed >= row.min_elapsed);
  if (row.min_elapsed > 0ms) {
    std::lock_guard lock(recorder->mutex);
    REQUIRE(recorder->delays.size() == 1);
    CHECK(recorder->delays[0].first == 1);
    CHECK(recorder->delays[0].second >= row.min_elapsed);
  }

  // Nothing but the good files (and the row's own, when it succeeds): no final file, no .part.
  std::set<std::string> expected = {tag + "_a.jpg", tag + "_b.png"};
  if (row.status == DownloadStatus::Ok) {
    expected.insert(row.ok_name);
    CHECK(r.path == dir.path / row.ok_name);
    CHECK(read_file(dir.path / row.ok_name) == row.ok_bytes);
    CHECK(r.bytes == row.ok_bytes.size());
  } else {
    CHECK(r.sha256.empty());
  }
  CHECK(dir.entries() == expected);
}

void run_rows(const TestServer& good_server, const std::vector<Row>& rows) {
  for (std::size_t i = 0; i < rows.size(); ++i)
    run_row(good_server, rows[i], i);
}

Row http_error(const TestServer& server, int code, std::string message, bool retried) {
  Row row;
  row.fault = "HTTP " + std::to_string(code);
  row.url = server.url("/status/" + std::to_string(code));
  row.error = ErrorKind::HttpStatus;
  row.message = std::move(message);
  row.attempts = retried ? 2 : 1;
  row.http_status = code;
  return row;
}

}  // namespace

TEST_CASE("redirect chains of every code land the image; loops, long chains and non-http targets fail") {
  TestServer server;
  const std::string redirected = TestServer::image_bytes("jpeg", 20000, "/img/redirected.jpg");
  std::vector<Row> rows;
  for (int code : {301, 302, 303, 307, 308}) {
    Row row;
    row.fault = "a chain of 3 redirects with " + std::to_string(code);
    row.url = server.url("/redirect/3?code=" + std::to_string(code));
    row.status = DownloadStatus::Ok;
    row.http_status = 200;
    row.ok_name = "3.jpg";  // named from the first URL, extension from the sniffed type
    row.ok_bytes = redirected;
    rows.push_back(row);
  }
  rows.push_back({.fault = "a redirect loop",
                  .url = server.url("/redirect-loop"),
                  .error = ErrorKind::TooManyRedirects,
                  .message = "more than 10 redirects: Maximum (10) redirects followed"});
  rows.push_back({.fault = "a chain longer than max_redirects",
                  .url = server.url("/redirect/5"),
                  .tweak = [](DownloadOptions& o) { o.max_redirects = 4; },
                  .error = ErrorKind::TooManyRedirects,
                  .message = "more than 4 redirects: Maximum (4) redirects followed"});
  for (std::string target : {"file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://127.0.0.1/x"}) {
    rows.push_back({.fault = "a redirect to " + target,
                    .url = server.url("/redirect-to?url=" + target),
                    .error = ErrorKind::ForbiddenRedirect,
                    .message = "refused a redirect to a scheme other than http or https: ",
                    .match = Match::Prefix});
  }
  run_rows(server, rows);
}

TEST_CASE(
    "4xx and 5xx statuses fail with their status line; only 408, 429 and 5xx gateway errors are retried") {
  TestServer server;
  const std::vector<Row> rows = {
      http_error(server, 400, "HTTP 400 Bad Request", false),
      http_error(server, 401, "HTTP 401 Unauthorized", false),
      http_error(server, 403, "HTTP 403 Forbidden", false),
      http_error(server, 404, "HTTP 404 Not Found", false),
      http_error(server, 405, "HTTP 405 Method Not Allowed", false),
      http_error(server, 408, "HTTP 408 Request Timeout", true),
      http_error(server, 410, "HTTP 410 Gone", false),
      http_error(server, 418, "HTTP 418 I'm a teapot", false),
      http_error(server, 451, "HTTP 451 Unavailable For Legal Reasons", false),
      http_error(server, 500, "HTTP 500 Internal Server Error", true),
      http_error(server, 501, "HTTP 501 Not Implemented", false),
      http_error(server, 502, "HTTP 502 Bad Gateway", true),
      http_error(server, 503, "HTTP 503 Service Unavailable", true),
      http_error(server, 504, "HTTP 504 Gateway Timeout", true),
      http_error(server, 599, "HTTP 599 Internal Server Error", false),  // the server's own phrase
      // A 3xx without Location is not followed: it is an error status like any other.
      http_error(server, 300, "HTTP 300 Multiple Choice", false),
      http_error(server, 304, "HTTP 304 Not Modified", false),
  };
  run_rows(server, rows);
}

TEST_CASE("429 and 503 with Retry-After are waited for, then recover") {
  TestServer server;
  const std::string bytes = TestServer::image_bytes("jpeg", 7000, "/flaky/ra429.jpg");
  const std::vector<Row> rows = {
      {.fault = "429 with Retry-After: 1",
       .url = server.url("/flaky/ra429.jpg?fails=1&code=429&retry_after=1&size=7000"),
       .status = DownloadStatus::Ok,
       .attempts = 2,
       .http_status = 200,
       .ok_name = "ra429.jpg",
       .ok_bytes = bytes,
       .min_elapsed = 1000ms},
      {.fault = "503 with Retry-After as an HTTP date",
       .url = server.url("/flaky/ra503.png?fails=1&code=503&retry_after=2&retry_after_date=1&size=7000"),
       .status = DownloadStatus::Ok,
       .attempts = 2,
       .http_status = 200,
       .ok_name = "ra503.png",
       .ok_bytes = TestServer::image_bytes("png", 7000, "/flaky/ra503.png"),
       .min_elapsed = 500ms},  // the date has whole-second precision: 2 s ahead is 1-2 s away
  };
  run_rows(server, rows);
}

TEST_CASE("transport faults: refused, reset, short and cut bodies fail as their kinds and are retried") {
  TestServer server;
  int dead_port = 0;
  {
    TestServer temporary;  // a port that was free a moment ago: nothing listens there now
    dead_port = temporary.port();
  }
  const std::vector<Row> rows = {
      {.fault = "connection refused",
       .url = "http://127.0.0.1:" + std::to_string(dead_port) + "/img/x.jpg",
       .error = ErrorKind::Connect,
       .message = "Failed to connect to 127.0.0.1 port " + std::to_string(dead_port),
       .match = Match::Prefix,
       .attempts = 2,
       .http_status = 0},
      {.fault = "reset before the headers",
       .url = server.url("/reset-before-headers"),
       .error = ErrorKind::Network,
       .message = "Connection reset by peer",
       .match = Match::Contains,
       .attempts = 2,
       .http_status = 0},
      {.fault = "reset mid-body",
       .url = server.url("/reset-mid-body?size=50000&sent=20000"),
       .error = ErrorKind::Network,
       .message = "Connection reset by peer",
       .match = Match::Contains,
       .attempts = 2,
       .http_status = 200},
      {.fault = "a body shorter than its Content-Length",
       .url = server.url("/truncated/t.jpg?size=50000&sent=20000"),
       .error = ErrorKind::Truncated,
       .message = "transfer closed with 30000 bytes remaining to read",
       .attempts = 2,
       .http_status = 200},
      {.fault = "a chunked body cut before its last chunk",
       .url = server.url("/chunked-cut?sent=10000"),
       .error = ErrorKind::Truncated,
       .message = "transfer closed with outstanding read data remaining",
       .attempts = 2,
       .http_status = 200},
  };
  run_rows(server, rows);
}

TEST_CASE("stalls and drips end at the whole-transfer timeout or the low-speed limit") {
  TestServer server;
  auto whole = [](DownloadOptions& o) { o.timeout = 1000ms; };
  auto low_speed = [](DownloadOptions& o) {
    o.low_speed_limit = 1000;
    o.low_speed_time = 1s;
  };
  const std::vector<Row> rows = {
      {.fault = "a stall before the headers, whole-transfer timeout",
       .url = server.url("/stall-headers?ms=20000"),
       .tweak = whole,
       .error = ErrorKind::Timeout,
       .message = "Operation timed out after",
       .match = Match::Prefix,
       .attempts = 2},
      {.fault = "a stall before the headers, low-speed limit",
       .url = server.url("/stall-headers?ms=20000"),
       .tweak = low_speed,
       .error = ErrorKind::Timeout,
       .message = "Operation too slow",
       .match = Match::Prefix,
       .attempts = 2},
      {.fault = "a stall mid-body, whole-transfer timeout",
       .url = server.url("/stall-body?size=50000&sent=20000&ms=20000"),
       .tweak = whole,
       .error = ErrorKind::Timeout,
       .message = "Operation timed out after",
       .match = Match::Prefix,
       .attempts = 2},
      {.fault = "a stall mid-body, low-speed limit",
       .url = server.url("/stall-body?size=50000&sent=20000&ms=20000"),
       .tweak = low_speed,
       .error = ErrorKind::Timeout,
       .message = "Operation too slow",
       .match = Match::Prefix,
       .attempts = 2},
      {.fault = "a slow drip under the low-speed limit",
       .url = server.url("/drip?size=100000&bytes_per_sec=300"),
       .tweak = low_speed,
       .error = ErrorKind::Timeout,
       .message = "Operation too slow. Less than 1000 bytes/sec transferred the last 1 seconds",
       .attempts = 2,
       .http_status = 200},
  };
  run_rows(server, rows);
}

TEST_CASE("max_file_size refuses a large Content-Length before the body and cuts an unbounded one") {
  TestServer server;
  auto limit = [](DownloadOptions& o) { o.max_file_size = 10000; };
  const std::vector<Row> rows = {
      {.fault = "Content-Length over max_file_size",
       .url = server.url("/img/big.jpg?size=5000000"),
       .tweak = limit,
       .error = ErrorKind::TooLarge,
       .message = "larger than the 9.8 KiB limit (5000000 bytes)",
       .http_status = 200},
      {.fault = "an unbounded body without Content-Length",
       .url = server.url("/unbounded"),
       .tweak = limit,
       .error = ErrorKind::TooLarge,
       .message = "larger than the 9.8 KiB limit (",
       .match = Match::Prefix,
       .http_status = 200},
      // The limit applies to the decoded bytes: this SVG's gzip body (Content-Length ~9,100) is under it.
      {.fault = "a gzip body that inflates past max_file_size",
       .url = server.url("/gzip/bomb.svg?size=12000&force=1"),
       .tweak = limit,
       .error = ErrorKind::TooLarge,
       .message = "larger than the 9.8 KiB limit (",
       .match = Match::Prefix,
       .http_status = 200},
  };
  run_rows(server, rows);

  SUBCASE("the oversized body is refused before it is sent, not after") {
    TempDir dir;
    auto o = base_options(dir.path);
    o.max_file_size = 10000;
    Downloader d(o);
    const auto r = d.submit(server.url("/img/big.jpg?size=5000000")).result();
    CHECK(r.error == ErrorKind::TooLarge);
    CHECK(r.bytes == 0);  // not a byte of the body was written
  }
}

TEST_CASE("bodies: HTML and empty 200s fail; a wrong Content-Type and gzip are accepted") {
  TestServer server;
  const std::vector<Row> rows = {
      {.fault = "HTML with 200",
       .url = server.url("/html"),
       .error = ErrorKind::NotImage,
       .message = "not an image (server sent text/html)",
       .http_status = 200},
      {.fault = "an empty 200",
       .url = server.url("/empty"),
       .error = ErrorKind::Empty,
       .message = "the server sent an empty body: could not download the image",
       .http_status = 200},
      {.fault = "a 204 No Content",
       .url = server.url("/status/204"),
       .error = ErrorKind::Empty,
       .message = "the server sent an empty body: could not download the image",
       .http_status = 204},
      {.fault = "image bytes with Content-Type text/plain",
       .url = server.url("/img/wrong.png?size=8000&content_type=text/plain"),
       .status = DownloadStatus::Ok,
       .http_status = 200,
       .ok_name = "wrong.png",
       .ok_bytes = TestServer::image_bytes("png", 8000, "/img/wrong.png")},
      {.fault = "gzip Content-Encoding",
       .url = server.url("/gzip/z.jpg?size=30000&force=1"),
       .status = DownloadStatus::Ok,
       .http_status = 200,
       .ok_name = "z.jpg",
       .ok_bytes = TestServer::image_bytes("jpeg", 30000, "/gzip/z.jpg")},
  };
  run_rows(server, rows);
}

TEST_CASE(
    "HTTPS with a self-signed certificate: refused by default, trusted with ca_file, insecure on request") {
  TestServer server;
  TestServer tls(ServerOptions{.tls = true});
  const std::string ca = tls.ca_file();
  const std::string bytes = TestServer::image_bytes("jpeg", 20000, "/img/tls.jpg");
  const std::vector<Row> rows = {
      {.fault = "self-signed, default options",
       .url = tls.url("/img/tls.jpg"),
       .error = ErrorKind::Tls,
       .message =
           "TLS verification failed: SSL certificate problem: self-signed certificate (trust the server's CA "
           "with DownloadOptions::ca_file, or skip verification with DownloadOptions::insecure)",
       .http_status = 0},
      {.fault = "self-signed, trusted through ca_file",
       .url = tls.url("/img/tls.jpg"),
       .tweak = [ca](DownloadOptions& o) { o.ca_file = ca; },
       .status = DownloadStatus::Ok,
       .http_status = 200,
       .ok_name = "tls.jpg",
       .ok_bytes = bytes},
      {.fault = "self-signed, insecure",
       .url = tls.url("/img/tls.jpg"),
       .tweak = [](DownloadOptions& o) { o.insecure = true; },
       .status = DownloadStatus::Ok,
       .http_status = 200,
       .ok_name = "tls.jpg",
       .ok_bytes = bytes},
  };
  run_rows(server, rows);
}

namespace {

/// A listener on 127.0.0.1 that resets every connection once the client's first bytes (a TLS
/// ClientHello) arrive: a server that breaks off the handshake. Counts the connections it reset.
class ResetDuringHandshake {
 public:
  ResetDuringHandshake() {
    thread_ = std::thread([this] {
      for (;;) {
        const int client = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0)
          return;  // the listener was shut down
        char hello[512];
        if (::recv(client, hello, sizeof hello, 0) > 0)
          ++resets_;
        const linger reset{1, 0};  // close with RST instead of FIN
        ::setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        ::close(client);
      }
    });
  }
  ~ResetDuringHandshake() {
    ::shutdown(listener_.fd(), SHUT_RDWR);
    thread_.join();
  }
  ResetDuringHandshake(const ResetDuringHandshake&) = delete;
  ResetDuringHandshake& operator=(const ResetDuringHandshake&) = delete;

  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(listener_.port()) + path;
  }
  int resets() const { return resets_.load(); }

 private:
  imgdl::test::LoopbackListener listener_{64};
  std::atomic<int> resets_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("a server that resets during the TLS handshake fails only its own URLs, at once, leaving nothing") {
  ResetDuringHandshake broken;
  TestServer live;
  TempDir dir;
  DownloadOptions o;
  o.output_dir = dir.path;
  o.max_workers = 4;
  o.retries = 1;
  o.retry_backoff = 10ms;
  o.connect_timeout = 60s;  // a wait for a timeout would show as a stuck test, not as a pass
  std::vector<std::string> urls;
  for (int i = 0; i < 3; ++i) {
    urls.push_back(broken.url("/b" + std::to_string(i) + ".jpg"));
    urls.push_back(live.url("/img/ok" + std::to_string(i) + ".jpg"));
  }
  Downloader d(o);
  const auto results = d.download_all(urls);
  for (std::size_t i = 0; i < results.size(); i += 2) {
    CAPTURE(results[i].message);
    CHECK(results[i].status == DownloadStatus::Failed);
    CHECK((results[i].error == ErrorKind::Tls || results[i].error == ErrorKind::Network));
    CHECK(results[i].message.find("reset") != std::string::npos);
    CHECK(results[i + 1].status == DownloadStatus::Ok);
  }
  CHECK(broken.resets() >= 3);  // each URL's handshake was reached and broken off
  CHECK(dir.entries() == std::set<std::string>{"ok0.jpg", "ok1.jpg", "ok2.jpg"});
}
