// The loopback HTTP(S) server every imgdl test, demo and benchmark talks to: deterministic images of any
// size, every fault a downloader must survive, and counters that let tests prove concurrency and connection
// reuse without looking at clocks. It binds loopback addresses only.
//
// Routes (query parameters override the defaults; every body is deterministic, and every image body is
// TestServer::image_bytes(type, size, <request path without query>)):
//   GET|HEAD /img/<name>       An image. Type from <name>'s extension (jpg/jpeg/png/gif/webp/bmp/svg; else
//                              jpeg) or type=png. size=N bytes (default 20000; rounded up to the type's
//                              minimum, see image_bytes.hpp), latency_ms=L before responding (default: the
//                              server's latency), content_type=... to send a wrong Content-Type, chunked=1
//                              for no Content-Length. Single ranges "bytes=a-", "a-b", "-n" get a 206 with
//                              Content-Range (a 416 past the end) unless ignore_range=1 or chunked=1. Bytes
//                              are TestServer::image_bytes(type, size, <path>), e.g. seed "/img/a.jpg".
//                              cut=M sends a whole response of only the image's first M bytes (what a
//                              connection-delimited body closed early leaves); /flaky takes cut=M too, for
//                              its failing requests.
//   GET /status/<code>         That status with a small HTML body. retry_after=S adds "Retry-After: S";
//                              with retry_after_date=1 it is an HTTP-date S seconds ahead.
//   GET /flaky/<key>           The first fails=N (default 1) requests for <key> get code=C (default 503, with
//                              Retry-After if retry_after=S), later ones an image as /img serves it (type
//                              from <key>'s extension, size=N, latency_ms=L). Counts per key.
//   GET /redirect/<n>          code=302 redirects to /redirect/<n-1> (same query) ... then to to=<path or
//                              URL> (default /img/redirected.jpg).
//   GET /redirect-loop         Redirects to itself.
//   GET /redirect-to           Redirects to url=<any URL> (file:, ftp:, ...) with code=302.
//   GET /truncated/<name>      Declares Content-Length size=N (default 20000) but sends only sent=M (default
//                              N/2) bytes of the image, then closes the connection (FIN).
//   GET /reset-before-headers  The connection is reset (RST) before any response byte.
//   GET /reset-mid-body        Headers (Content-Length size=N) and sent=M bytes, then a reset (RST).
//   GET /chunked-cut           Chunked image body cut after sent=M (default 10000) bytes, no last chunk.
//   GET /stall-headers         Waits ms=T (default 30000) before responding (a small text body).
//   GET /stall-body            Content-Length size=N, sends sent=M bytes (default N/2), stalls ms=T (default
//                              30000), then the rest.
//   GET /drip                  size=N (default 20000) image bytes at bytes_per_sec=B (default 10000).
//   GET /unbounded             A chunked body starting with JPEG magic that never ends (until the client
//                              goes away or the server stops); bytes_per_sec=B throttles it.
//   GET /html                  A 200 text/html page.      GET /empty  A 200 with an empty body.
//   GET /gzip/<name>           The image of /img/<name> with Content-Encoding: gzip when Accept-Encoding
//                              allows gzip (or force=1); identity otherwise.
//   GET /list                  text/plain list of n=N (default 10) image URLs on this server:
//                              <base>/img/<prefix>_<i>.<ext>?size=S[&latency_ms=L] (prefix=img, ext=jpg,
//                              size=20000); alternate_hosts=1 alternates 127.0.0.1 and localhost.
//   GET /file/<name>           The bytes given to serve_file(name, ...) (a 404 before); cut=M sends only
//                              the first M.
//   GET /echo-headers          The request line and headers as text/plain.
//   GET /hits                  The requests each path got so far (as hits(); this one's own included), as a
//                              JSON object {"/img/a.jpg": 2, ...}: counters for drivers outside the process.
//   Anything else is a 404.
// Waits (latency, stalls, drips, unbounded) end early when the server stops, so destruction is prompt.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgdl::test {

/// How to start a TestServer. Plain value type.
struct ServerOptions {
  /// Loopback only: 127.0.0.0/8, "localhost" or "::1"; anything else is refused.
  std::string host = "127.0.0.1";
  /// 0 picks a free ephemeral port.
  int port = 0;
  /// Default delay of image routes before responding (inside the handler, so it counts as in flight).
  std::chrono::milliseconds latency{0};
  /// Worker threads; each open connection holds one while it is kept alive.
  std::size_t threads = 64;
  /// HTTPS with a self-signed certificate (CN 127.0.0.1, SAN 127.0.0.1, ::1, localhost) made at start-up;
  /// clients trust it through ca_file().
  bool tls = false;
};

/// A running loopback server (see the route list above). Construction and destruction must not race with
/// each other; every other member may be called from any thread at any time while the object lives.
class TestServer {
 public:
  /// Binds and starts serving on a background thread; returns once the server accepts connections.
  /// Throws std::invalid_argument for a non-loopback host and std::runtime_error if binding fails.
  explicit TestServer(ServerOptions options = {});
  /// Stops: wakes every waiting handler, drops open connections and joins all server threads.
  ~TestServer();

  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  /// The bound port. Thread-safe.
  int port() const;
  /// "http://127.0.0.1:PORT" ("https://" with tls; the host as given, IPv6 in brackets). Thread-safe.
  std::string base_url() const;
  /// base_url() + path, e.g. url("/img/a.jpg?size=10"). Thread-safe.
  std::string url(std::string_view path) const;
  /// Image URLs whose names try to leave the output directory (encoded `..`, `/`, `\`, a leading dot,
  /// NUL and newline bytes), for tests that nothing is written outside it. Thread-safe.
  std::vector<std::string> escaping_urls() const;
  /// PEM file of the self-signed certificate, to pass as a CA file; empty without tls. Thread-safe.
  const std::string& ca_file() const;

  /// Serves `bytes` at /file/<name> from now on (replacing any earlier body). Thread-safe.
  void serve_file(std::string name, std::string bytes);

  // Counters. All thread-safe; reset_counters() zeroes them (peaks restart from the current values).

  /// Requests received on any route.
  std::size_t requests() const;
  /// Handlers currently running; an image response leaves it just before its last byte is sent.
  std::size_t in_flight() const;
  /// Largest in_flight() since start or reset_counters().
  std::size_t peak_in_flight() const;
  /// Distinct client connections that carried at least one request since start or reset_counters().
  std::size_t connections() const;
  /// peak_in_flight() counting only requests whose Host header names `host` ("127.0.0.1", "localhost";
  /// a ":port" suffix on either side is ignored).
  std::size_t peak_in_flight_for_host(std::string_view host) const;
  /// Requests for exactly this path (no query string), e.g. hits("/img/a.jpg").
  std::size_t hits(std::string_view path) const;
  /// User-Agent headers received, in arrival order ("" when a request had none).
  std::vector<std::string> user_agents() const;
  /// The last User-Agent received ("" if none yet).
  std::string last_user_agent() const;
  /// Range headers received, in arrival order (requests without one are not listed).
  std::vector<std::string> range_headers() const;
  /// One request as the server saw it arrive: its path (no query) and when, on the steady clock.
  struct Arrival {
    std::string path;
    std::chrono::steady_clock::time_point at;
  };
  /// Every request's arrival, in arrival order: spacing measured here is the server's, not the client's.
  std::vector<Arrival> arrivals() const;
  /// Zeroes the counters and forgets /flaky keys.
  void reset_counters();

  /// URLs of `count` images on this server: url("/img/<prefix>_<i>.jpg?size=<size>[&latency_ms=L]") for
  /// i in [0, count). Thread-safe.
  std::vector<std::string> image_urls(std::size_t count, std::size_t size, std::string_view prefix = "img",
                                      std::optional<std::chrono::milliseconds> latency = std::nullopt) const;

  /// The exact body /img serves for type ("jpeg", "jpg", "png", "gif", "webp", "bmp", "svg"), size and
  /// seed (the request path, e.g. "/img/a.jpg"). Throws std::invalid_argument for an unknown type.
  /// Thread-safe.
  static std::string image_bytes(std::string_view type, std::size_t size, std::string_view seed);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// True for 127.0.0.0/8, "localhost" and "::1". Thread-safe.
bool is_loopback_host(std::string_view host);

}  // namespace imgdl::test
