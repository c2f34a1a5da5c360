// HTTPS and HTTP/2 against a real TLS server (tests/support/tls_server.js under Node) with certificates
// made for this run: verification and its failures, ALPN, the HTTP version in each result, multiplexing
// on one connection, what an h2 stream reset or a GOAWAY costs, and encoded bodies. Every claim about
// connections and streams is proved from the server's own counters.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "imgdl/download_image.hpp"
#include "imgdl/downloader.hpp"
#include "test_files.hpp"
#include "tls_server.hpp"

using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::test::read_file;
using imgdl::test::TempDir;
using imgdl::test::TestCerts;
using imgdl::test::TlsServer;
using imgdl::test::TlsServerOptions;

namespace {

/// Made once per run: a CA and its leaves take a python3 start-up.
const TestCerts& certs() {
  static const TestCerts made;
  return made;
}

/// Trusts the test CA; no retries unless a test asks; one transfer thread, so one connection cache.
DownloadOptions options_for(const TempDir& dir) {
  DownloadOptions o;
  o.output_dir = dir.path;
  o.ca_file = certs().ca_file();
  o.retries = 0;
  o.retry_backoff = 1ms;
  o.max_workers = 8;
  o.transfer_threads = 1;
  return o;
}

std::vector<DownloadResult> fetch(const DownloadOptions& options, const std::vector<std::string>& urls) {
  Downloader downloader(options);
  return downloader.download_all(urls);
}

/// "/img/a.jpg" from "https://127.0.0.1:1234/img/a.jpg?size=9".
std::string path_of(const std::string& url) {
  const auto start = url.find('/', url.find("//") + 2);
  return url.substr(start, url.find('?') == std::string::npos ? std::string::npos : url.find('?') - start);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a server whose CA is not trusted fails as tls, with a message naming the options that fix it") {
  TempDir dir;
  TlsServer server(certs());
  DownloadOptions o = options_for(dir);
  o.ca_file.clear();  // the system's CAs, which never signed the test CA's leaf
  const auto results = fetch(o, {server.url("/img/untrusted.jpg")});
  REQUIRE(results.size() == 1);
  const DownloadResult& r = results[0];
  CHECK(r.status == DownloadStatus::Failed);
  CHECK(r.error == ErrorKind::Tls);
  CHECK_MESSAGE(r.message.starts_with("TLS verification failed: "), r.message);
  CHECK_MESSAGE(contains(r.message, "DownloadOptions::ca_file"), r.message);
  CHECK_MESSAGE(contains(r.message, "DownloadOptions::insecure"), r.message);
  CHECK(r.http_version.empty());
  CHECK(dir.entries().empty());
  CHECK(server.stats().requests == 0);
}

TEST_CASE("ca_file trusts a private CA, and the result records HTTP/2") {
  TempDir dir;
  TlsServer server(certs());
  const auto results = fetch(options_for(dir), {server.url("/img/trusted.jpg?size=30000")});
  REQUIRE(results.size() == 1);
  CHECK_MESSAGE(results[0].status == DownloadStatus::Ok, results[0].message);
  CHECK(results[0].http_status == 200);
  CHECK(results[0].http_version == "2");
  CHECK(read_file(dir.path / "trusted.jpg") == TlsServer::image_bytes("/img/trusted.jpg", 30000));
  CHECK(server.stats().requests_h2 == 1);
}

TEST_CASE(
    "a certificate for another host, an expired one and a self-signed one fail as tls; insecure "
    "accepts them") {
  struct Case {
    std::string cert;
    std::string detail;  // what libcurl (OpenSSL) says, so each case fails for its own reason
  };
  const std::vector<Case> cases = {
      {"other", "no alternative certificate subject name matches"},
      {"expired", "certificate has expired"},
      {"self", "self-signed certificate"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cert);
    TlsServer server(certs(), TlsServerOptions{.cert = c.cert});
    const std::string url = server.url("/img/" + c.cert + ".jpg");
    {
      TempDir dir;
      const auto refused = fetch(options_for(dir), {url});
      CHECK(refused[0].error == ErrorKind::Tls);
      CHECK_MESSAGE(contains(refused[0].message, c.detail), refused[0].message);
      CHECK(dir.entries().empty());
    }
    {
      TempDir dir;
      DownloadOptions o = options_for(dir);
      o.insecure = true;
      const auto accepted = fetch(o, {url});
      CHECK_MESSAGE(accepted[0].status == DownloadStatus::Ok, accepted[0].message);
      CHECK(read_file(dir.path / (c.cert + ".jpg")) ==
            TlsServer::image_bytes("/img/" + c.cert + ".jpg", 20000));
    }
    CHECK(server.stats().requests == 1);  // the refused one never got to send its request
  }
}

TEST_CASE("ALPN picks h2 where the server offers it and HTTP/1.1 where it does not") {
  for (const bool h1_only : {false, true}) {
    CAPTURE(h1_only);
    TempDir dir;
    TlsServer server(certs(), TlsServerOptions{.h1_only = h1_only});
    std::vector<std::string> urls;
    for (int i = 0; i < 4; ++i)
      urls.push_back(server.url("/img/alpn_" + std::to_string(i) + ".jpg"));
    const auto results = fetch(options_for(dir), urls);
    for (const auto& r : results) {
      CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
      CHECK(r.http_version == (h1_only ? "1.1" : "2"));
    }
    const auto stats = server.stats();
    CHECK(stats.requests_h2 == (h1_only ? 0 : 4));
    CHECK(stats.requests_h1 == (h1_only ? 4 : 0));
  }
}

TEST_CASE("download_image records the HTTP version too") {
  TempDir dir;
  TlsServer server(certs());
  DownloadOptions o = options_for(dir);
  const DownloadResult r = imgdl::download_image(server.url("/img/single.jpg"), o);
  CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
  CHECK(r.http_version == "2");
}

TEST_CASE("transfers started together to one h2 host share one connection") {
  TempDir dir;
  TlsServer server(certs());
  // Each response waits until all 8 requests are in flight on its connection: only multiplexing on one
  // connection lets them all through (otherwise each waits out the server's 10 s and max_streams < 8).
  constexpr int count = 8;
  std::vector<std::string> urls;
  for (int i = 0; i < count; ++i)
    urls.push_back(server.url("/img/mux_" + std::to_string(i) + ".jpg?together=" + std::to_string(count)));
  DownloadOptions o = options_for(dir);
  o.max_workers = count;
  const auto results = fetch(o, urls);
  for (const auto& r : results) {
    CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
    CHECK(r.http_version == "2");
  }
  const auto stats = server.stats();
  CHECK(stats.tcp_connections == 1);
  CHECK(stats.tls_handshakes == 1);
  CHECK(stats.max_streams == count);
  CHECK(stats.requests_h2 == count);
}

TEST_CASE("with two transfer threads, an h2 host gets one connection per thread") {
  TempDir dir;
  TlsServer server(certs());
  std::vector<std::string> urls;
  for (int i = 0; i < 32; ++i)
    urls.push_back(server.url("/img/two_" + std::to_string(i) + ".jpg?size=2000"));
  DownloadOptions o = options_for(dir);
  o.max_workers = 32;
  o.transfer_threads = 2;  // each has its own multi handle, so its own connection cache
  const auto results = fetch(o, urls);
  for (const auto& r : results)
    CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
  const auto stats = server.stats();
  CHECK(stats.requests_h2 == 32);
  CHECK(stats.tcp_connections <= 2);
  CHECK(stats.tls_handshakes == stats.tcp_connections);
}

TEST_CASE("the URLs of a host whose handshake stalls do not wait for each other's connections") {
  // They wait for the first connection, to share it if it speaks h2; once it fails, the others start
  // over at once on their own, rather than one after another, a connect timeout each.
  TempDir dir;
  TlsServer server(certs(), TlsServerOptions{.stall = true});
  constexpr std::size_t count = 6;
  std::vector<std::string> urls;
  for (std::size_t i = 0; i < count; ++i)
    urls.push_back(server.url("/img/stalled_" + std::to_string(i) + ".jpg"));
  DownloadOptions o = options_for(dir);
  o.max_workers = count;
  o.connect_timeout = 1s;
  const auto results = fetch(o, urls);
  for (const auto& r : results) {
    CHECK(r.error == ErrorKind::Timeout);
    CHECK(r.attempts == 1);
  }
  const auto stats = server.stats();
  CHECK(stats.max_open >= count - 1);  // all but the first were trying at once
  // One more when libcurl had already let one of them try before they all started over.
  CHECK(stats.tcp_connections <= count + 1);
  CHECK(dir.entries().empty());
}

TEST_CASE("many transfers to an HTTP/1.1-only HTTPS host still run side by side") {
  TempDir dir;
  TlsServer server(certs(), TlsServerOptions{.h1_only = true});
  std::vector<std::string> urls;
  for (int i = 0; i < 8; ++i)
    urls.push_back(server.url("/img/h1_" + std::to_string(i) + ".jpg"));
  const auto results = fetch(options_for(dir), urls);
  for (const auto& r : results)
    CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
  const auto stats = server.stats();
  CHECK(stats.requests_h1 == 8);
  CHECK(stats.max_streams == 1);  // one request per connection at a time: no multiplexing was attempted
}

TEST_CASE("an h2 stream reset fails or retries only its own URL") {
  TlsServer server(certs());
  std::vector<std::string> urls;
  for (int i = 0; i < 6; ++i)
    urls.push_back(server.url("/img/calm_" + std::to_string(i) + ".jpg"));
  const std::set<std::string> reset_paths = {"/reset/r1.jpg", "/reset/r2.jpg"};
  for (const auto& path : reset_paths)
    urls.push_back(server.url(path + "?fails=1"));

  SUBCASE("without retries the reset URLs fail as network errors and the rest succeed") {
    TempDir dir;
    const auto results = fetch(options_for(dir), urls);
    for (const auto& r : results) {
      CAPTURE(r.url);
      if (reset_paths.contains(path_of(r.url))) {
        CHECK(r.status == DownloadStatus::Failed);
        CHECK(r.error == ErrorKind::Network);
        CHECK_MESSAGE(contains(r.message, "HTTP/2 stream"), r.message);
      } else {
        CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
        CHECK(r.attempts == 1);
      }
    }
    CHECK(server.stats().resets == 2);
  }
  SUBCASE("with retries the reset URLs are tried again and succeed; the others are fetched once") {
    TempDir dir;
    DownloadOptions o = options_for(dir);
    o.retries = 2;
    const auto results = fetch(o, urls);
    const auto stats = server.stats();
    for (const auto& r : results) {
      CAPTURE(r.url);
      CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
      const bool reset = reset_paths.contains(path_of(r.url));
      CHECK(r.attempts == (reset ? 2 : 1));
      CHECK(stats.hits_for(path_of(r.url)) == (reset ? 2u : 1u));
    }
    CHECK(stats.resets == 2);
  }
}

TEST_CASE("a GOAWAY mid-run fails or retries only the requests it cut off") {
  TlsServer server(certs());
  // Four held requests and the GOAWAY trigger are cut off together; the four others are answered before.
  std::vector<std::string> urls;
  for (int i = 0; i < 4; ++i)
    urls.push_back(server.url("/img/quick_" + std::to_string(i) + ".jpg"));
  for (int i = 0; i < 4; ++i)
    urls.push_back(server.url("/img/held_" + std::to_string(i) + ".jpg?hold=1"));
  urls.push_back(server.url("/goaway/g.jpg?held=4&requests=9"));

  // libcurl itself may send a cut-off request again when nothing of its answer had arrived (a reused
  // connection that died): then the server sees it twice and the URL succeeds in one attempt. What may
  // never happen is a URL the GOAWAY did not cut off failing, or being asked for twice.
  SUBCASE("without retries only cut-off URLs fail, as network or truncated") {
    TempDir dir;
    DownloadOptions o = options_for(dir);
    o.max_workers = urls.size();
    const auto results = fetch(o, urls);
    const auto stats = server.stats();
    REQUIRE(stats.goaways == 1);
    const std::set<std::string> killed(stats.killed.begin(), stats.killed.end());
    CHECK(killed.size() == 5);
    for (const auto& r : results) {
      CAPTURE(r.url);
      CAPTURE(r.message);
      const std::string path = path_of(r.url);
      if (!killed.contains(path)) {
        CHECK(r.status == DownloadStatus::Ok);
        CHECK(stats.hits_for(path) == 1);
      } else if (r.status == DownloadStatus::Failed) {
        CHECK((r.error == ErrorKind::Network || r.error == ErrorKind::Truncated));
        CHECK(stats.hits_for(path) == 1);
        CHECK(!std::filesystem::exists(dir.path / path.substr(path.rfind('/') + 1)));
      } else {
        CHECK(r.status == DownloadStatus::Ok);
        CHECK(stats.hits_for(path) == 2);  // libcurl's own resend
      }
      CHECK(r.attempts == 1);
    }
  }
  SUBCASE("with retries every URL succeeds, and only the cut-off ones are asked for twice") {
    TempDir dir;
    DownloadOptions o = options_for(dir);
    o.max_workers = urls.size();
    o.retries = 2;
    const auto results = fetch(o, urls);
    const auto stats = server.stats();
    REQUIRE(stats.goaways == 1);
    const std::set<std::string> killed(stats.killed.begin(), stats.killed.end());
    CHECK(killed.size() == 5);
    for (const auto& r : results) {
      CAPTURE(r.url);
      CHECK_MESSAGE(r.status == DownloadStatus::Ok, r.message);
      const bool cut = killed.contains(path_of(r.url));
      CHECK(r.attempts <= (cut ? 2 : 1));
      CHECK(stats.hits_for(path_of(r.url)) == (cut ? 2u : 1u));
    }
    CHECK(stats.tcp_connections >= 2);  // the second requests went out on a new connection
  }
}

TEST_CASE("gzip and brotli bodies are decoded over HTTPS, and max_file_size counts decoded bytes") {
  TlsServer server(certs());
  constexpr std::size_t size = 200000;  // the pattern compresses to a few KB, well under the limit below
  for (const std::string encoding : {"gzip", "br"}) {
    CAPTURE(encoding);
    const std::string path = "/" + encoding + "/enc.jpg";
    const std::string url = server.url(path + "?size=" + std::to_string(size));
    {
      TempDir dir;
      DownloadOptions o = options_for(dir);
      o.max_file_size = size;  // exactly the decoded size: allowed
      const auto results = fetch(o, {url});
      CHECK_MESSAGE(results[0].status == DownloadStatus::Ok, results[0].message);
      CHECK(results[0].bytes == size);
      CHECK(read_file(dir.path / "enc.jpg") == TlsServer::image_bytes(path, size));
    }
    {
      TempDir dir;
      DownloadOptions o = options_for(dir);
      o.max_file_size = size / 2;  // above the encoded size, below the decoded one
      const auto results = fetch(o, {url});
      CHECK(results[0].error == ErrorKind::TooLarge);
      CHECK(dir.entries().empty());
    }
  }
}

TEST_CASE("an encoded body larger than the image it decodes to is judged by the image's size") {
  // Stored (uncompressed) gzip: Content-Length is the image plus gzip's framing, over the limit.
  TlsServer server(certs());
  TempDir dir;
  DownloadOptions o = options_for(dir);
  o.max_file_size = 30000;
  const auto results = fetch(o, {server.url("/gzip/stored.jpg?size=30000&stored=1")});
  CHECK_MESSAGE(results[0].status == DownloadStatus::Ok, results[0].message);
  CHECK(read_file(dir.path / "stored.jpg") == TlsServer::image_bytes("/gzip/stored.jpg", 30000));
}
