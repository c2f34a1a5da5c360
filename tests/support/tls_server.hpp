// A real HTTPS server for the TLS and HTTP/2 tests: tls_server.js (Node's http2 module, h2 by ALPN with an
// HTTP/1.1 fallback, or https for HTTP/1.1 only) in a child process on 127.0.0.1 port 0, with certificates
// make_certs.py makes fresh in a private temporary directory. Its routes are listed in tls_server.js; its
// counters (connections, handshakes, requests per protocol, streams at once, what a GOAWAY cut off) come
// from the server itself, so tests prove connection use without clocks.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace imgdl::test {

/// The certificates of make_certs.py (ca.pem; good, other, expired and self leaves, .pem and .key) in a
/// fresh 0700 temporary directory, removed by the destructor. Throws std::runtime_error if they cannot be
/// made.
class TestCerts {
 public:
  TestCerts();
  ~TestCerts();
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  /// The CA that signed the good, other and expired leaves.
  std::string ca_file() const { return file("ca.pem"); }
  /// dir/name, e.g. file("good.pem").
  std::string file(std::string_view name) const;

 private:
  std::filesystem::path dir_;
};

struct TlsServerOptions {
  /// The leaf the server presents: "good" (127.0.0.1 by the CA), "other" (another host's name), "expired"
  /// or "self" (self-signed).
  std::string cert = "good";
  /// HTTP/1.1 only (no h2 in ALPN).
  bool h1_only = false;
  /// No TLS at all: accepts TCP connections and never answers (a handshake that stalls).
  bool stall = false;
};

/// The server's counters since start or reset(); see tls_server.js.
struct TlsServerStats {
  std::size_t tcp_connections = 0;
  std::size_t max_open = 0;  ///< most TCP connections open at once
  std::size_t tls_handshakes = 0;
  std::size_t tls_resumed = 0;
  std::size_t requests = 0;
  std::size_t requests_h2 = 0;
  std::size_t requests_h1 = 0;
  std::size_t max_streams = 0;  ///< most requests in flight at once on one connection
  std::size_t resets = 0;
  std::size_t goaways = 0;
  std::vector<std::string> killed;  ///< paths of the requests a GOAWAY cut off
  std::map<std::string, std::size_t> hits;

  std::size_t hits_for(const std::string& path) const {
    const auto it = hits.find(path);
    return it == hits.end() ? 0 : it->second;
  }
};

/// One running tls_server.js. Not thread-safe: use it from the test's thread.
class TlsServer {
 public:
  /// Starts the server and waits for its port. Throws std::runtime_error if it does not start.
  explicit TlsServer(const TestCerts& certs, TlsServerOptions options = {});
  /// Stops the server (closing its stdin ends it) and reaps it.
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  int port() const { return port_; }
  /// "https://127.0.0.1:PORT" + path.
  std::string url(std::string_view path) const;
  TlsServerStats stats();
  /// Zeroes the counters and forgets the per-path state of /reset and /goaway.
  void reset();

  /// The body /img/<name> serves for `path` (e.g. "/img/a.jpg", no query) and `size`.
  static std::string image_bytes(std::string_view path, std::size_t size);

 private:
  std::string command(std::string_view line);
  void stop() noexcept;

  pid_t pid_ = -1;
  int to_server_ = -1;
  std::FILE* from_server_ = nullptr;
  int port_ = 0;
};

}  // namespace imgdl::test
