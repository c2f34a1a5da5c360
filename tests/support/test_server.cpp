#include "test_server.hpp"

#include "image_bytes.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

namespace imgdl::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kChunk = 64 * 1024;  // bytes per content-provider call
constexpr std::size_t kDefaultImageSize = 20000;
constexpr std::size_t kUnboundedSize = std::size_t{1}
                                       << 40;  // "endless": a 1 TiB JPEG nobody reads to the end
constexpr time_t kKeepAliveSeconds = 10;

// ---------------------------------------------------------------------------------------------- TLS

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, ExtFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void tls_fail(const char* what) {
  throw std::runtime_error(std::string("test server TLS: ") + what);
}

PkeyPtr make_key() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 || EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0) {
    tls_fail("key context");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) <= 0) {
    tls_fail("key generation");
  }
  return PkeyPtr(raw);
}

// Self-signed and its own CA (CA:TRUE, keyCertSign) so a client can load it as the CA file.
X509Ptr make_cert(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::time(nullptr))) != 1 ||
      !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600) ||
      X509_set_pubkey(cert.get(), key) != 1) {
    tls_fail("certificate fields");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : {std::pair{"O", "imgdl test server"}, std::pair{"CN", "127.0.0.1"}}) {
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC, reinterpret_cast<const unsigned char*>(value),
                                   -1, -1, 0) != 1) {
      tls_fail("certificate name");
    }
  }
  if (X509_set_issuer_name(cert.get(), name) != 1) {
    tls_fail("certificate issuer");
  }
  X509V3_CTX v3{};
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::pair<int, const char*> extensions[] = {
      {NID_basic_constraints, "critical,CA:TRUE"},
      {NID_key_usage, "critical,digitalSignature,keyCertSign"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost"},
      {NID_subject_key_identifier, "hash"},
  };
  for (const auto& [nid, value] : extensions) {
    ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &v3, nid, value));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1) {
      tls_fail("certificate extension");
    }
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) {
    tls_fail("certificate signature");
  }
  return cert;
}

// ------------------------------------------------------------------------------------ stop signal

// Every wait in a handler goes through here so that stopping the server ends it at once.
class StopSignal {
 public:
  /// Sleeps for d; false if the server is stopping (now or during the wait).
  bool sleep_for(milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopping_; });
  }
  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// ------------------------------------------------------------------------------ connection registry

// One per accepted connection, owned by the worker thread serving it.
struct ConnSlot {
  int fd = -1;              // httplib's socket, found on the first request
  int dup_fd = -1;          // our own reference to it, so shutdown_all() never hits a recycled descriptor
  bool looked_up = false;   // the /proc scan ran (found or not)
  std::uint64_t epoch = 0;  // counter epoch in which this connection was last counted
};

thread_local ConnSlot* t_slot = nullptr;

// Finds httplib's descriptor for the current request's connection: a socket whose local and peer
// addresses are the request's. httplib does not hand handlers the socket, and the descriptor cannot be
// closed under us while its own handler runs.
int find_connection_fd(const httplib::Request& req) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir("/proc/self/fd"), closedir);
  if (!dir) {
    return -1;
  }
  auto port_and_addr = [](const sockaddr_storage& a) -> std::pair<int, std::string> {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    if (a.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      inet_ntop(AF_INET, &in->sin_addr, buf.data(), buf.size());
      return {ntohs(in->sin_port), buf.data()};
    }
    if (a.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
      inet_ntop(AF_INET6, &in6->sin6_addr, buf.data(), buf.size());
      return {ntohs(in6->sin6_port), buf.data()};
    }
    return {-1, ""};
  };
  while (const dirent* entry = readdir(dir.get())) {
    int fd = -1;
    const std::string_view name(entry->d_name);
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc{}) {
      continue;
    }
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof(local);
    socklen_t peer_len = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    if (port_and_addr(local) == std::pair{req.local_port, req.local_addr} &&
        port_and_addr(peer) == std::pair{req.remote_port, req.remote_addr}) {
      return fd;
    }
  }
  return -1;
}

// Knows every live connection so stop() can wake the ones idling in keep-alive (httplib would otherwise
// wait out the keep-alive timeout) and so fault routes can reset their own connection.
class ConnectionRegistry {
 public:
  void add(ConnSlot* slot) {
    std::lock_guard lock(mu_);
    slots_.insert(slot);
  }
  void remove(ConnSlot* slot) {
    std::lock_guard lock(mu_);
    close_dup(*slot);
    slots_.erase(slot);
  }
  /// On a connection's first request: remember its descriptor. Called on the connection's own thread.
  void attach(const httplib::Request& req) {
    ConnSlot* slot = t_slot;
    if (slot == nullptr || slot->looked_up) {
      return;
    }
    slot->looked_up = true;
    const int fd = find_connection_fd(req);
    std::lock_guard lock(mu_);
    slot->fd = fd;
    if (fd >= 0) {
      slot->dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (stopping_ && slot->dup_fd >= 0) {
        ::shutdown(slot->dup_fd, SHUT_RDWR);
      }
    }
  }
  /// Shuts down every known connection (both directions), waking threads blocked on them.
  void shutdown_all() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (ConnSlot* slot : slots_) {
      if (slot->dup_fd >= 0) {
        ::shutdown(slot->dup_fd, SHUT_RDWR);
      }
    }
  }
  /// Aborts the current connection with a TCP reset. httplib keeps using its descriptor number, so that
  /// number is pointed at /dev/null: its later writes fail harmlessly and its close() closes that instead.
  /// Returns false if the connection is unknown. Called on the connection's own thread.
  bool reset_current() {
    ConnSlot* slot = t_slot;
    if (slot == nullptr || slot->fd < 0) {
      return false;
    }
    const linger abort_on_close{1, 0};
    ::setsockopt(slot->fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
    {
      std::lock_guard lock(mu_);
      close_dup(*slot);
    }
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0) {
      return false;
    }
    ::dup2(null_fd, slot->fd);  // drops the socket's last reference: the kernel sends RST
    ::close(null_fd);
    slot->fd = -1;
    return true;
  }
  /// Waits (up to `limit`) until the peer has acknowledged everything sent on the current connection, so a
  /// following reset does not throw away bytes the test wants delivered.
  void drain_current(milliseconds limit) {
    ConnSlot* slot = t_slot;
    if (slot == nullptr || slot->fd < 0) {
      return;
    }
    const auto deadline = Clock::now() + limit;
    int unsent = 0;
    while (::ioctl(slot->fd, SIOCOUTQ, &unsent) == 0 && unsent > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }

 private:
  static void close_dup(ConnSlot& slot) {
    if (slot.dup_fd >= 0) {
      ::close(slot.dup_fd);
      slot.dup_fd = -1;
    }
  }

  std::mutex mu_;
  std::set<ConnSlot*> slots_;
  bool stopping_ = false;
};

// httplib's ThreadPool, plus a ConnSlot per connection and SIGPIPE blocked (OpenSSL writes with write(),
// and a client hanging up must not kill the test process).
class WorkerPool final : public httplib::TaskQueue {
 public:
  WorkerPool(std::size_t threads, ConnectionRegistry& registry) : registry_(registry) {
    for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
      threads_.emplace_back([this] { run(); });
    }
  }
  ~WorkerPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) {
        t.join();
      }
    }
  }

 private:
  void run();

  ConnectionRegistry& registry_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

// ----------------------------------------------------------------------------------------- counters

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "::1", "LocalHost" -> "localhost".
std::string host_key(std::string_view host) {
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    return lower(host.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
  }
  if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));
  }
  return lower(host);
}

class Counters;

// One request's share of in_flight: released once, by whichever comes first of "the last byte is about
// to be written" and "the response is gone".
class InFlight {
 public:
  InFlight(Counters& counters, std::string host) : counters_(counters), host_(std::move(host)) {}
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() { release(); }
  void release();

 private:
  Counters& counters_;
  std::string host_;
  std::atomic<bool> released_{false};
};

thread_local std::shared_ptr<InFlight> t_request;  // the running request's token

class Counters {
 public:
  std::shared_ptr<InFlight> begin_request(const httplib::Request& req) {
    auto host = host_key(req.get_header_value("Host"));
    std::lock_guard lock(mu_);
    ++requests_;
    ++hits_[req.path];
    arrivals_.push_back({req.path, std::chrono::steady_clock::now()});
    auto user_agent = req.get_header_value("User-Agent");
    last_user_agent_ = user_agent;
    user_agents_.push_back(std::move(user_agent));
    if (req.has_header("Range")) {
      range_headers_.push_back(req.get_header_value("Range"));
    }
    if (t_slot != nullptr && t_slot->epoch != epoch_) {
      t_slot->epoch = epoch_;
      ++connections_;
    }
    peak_ = std::max(peak_, ++in_flight_);
    auto& load = hosts_[host];
    load.peak = std::max(load.peak, ++load.in_flight);
    return std::make_shared<InFlight>(*this, std::move(host));
  }

  void end_request(const std::string& host) {
    std::lock_guard lock(mu_);
    --in_flight_;
    --hosts_[host].in_flight;
  }

  /// Counts a request for a /flaky key; returns its 1-based number.
  std::size_t next_flaky(const std::string& key) {
    std::lock_guard lock(mu_);
    return ++flaky_[key];
  }

  void reset() {
    std::lock_guard lock(mu_);
    ++epoch_;
    requests_ = 0;
    connections_ = 0;
    peak_ = in_flight_;
    for (auto& [host, load] : hosts_) {
      load.peak = load.in_flight;
    }
    hits_.clear();
    user_agents_.clear();
    last_user_agent_.clear();
    range_headers_.clear();
    arrivals_.clear();
    flaky_.clear();
  }

  template <class F>
  auto read(F&& f) const {
    std::lock_guard lock(mu_);
    return f(*this);
  }

  struct HostLoad {
    std::size_t in_flight = 0;
    std::size_t peak = 0;
  };

  mutable std::mutex mu_;
  std::uint64_t epoch_ = 1;
  std::size_t requests_ = 0;
  std::size_t in_flight_ = 0;
  std::size_t peak_ = 0;
  std::size_t connections_ = 0;
  std::map<std::string, std::size_t, std::less<>> hits_;
  std::map<std::string, HostLoad, std::less<>> hosts_;
  std::vector<std::string> user_agents_;
  std::string last_user_agent_;
  std::vector<std::string> range_headers_;
  std::vector<TestServer::Arrival> arrivals_;
  std::map<std::string, std::size_t> flaky_;
};

void InFlight::release() {
  if (!released_.exchange(true)) {
    counters_.end_request(host_);
  }
}

void WorkerPool::run() {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return shutdown_ || !jobs_.empty(); });
      if (jobs_.empty()) {
        return;  // shutting down and drained
      }
      fn = std::move(jobs_.front());
      jobs_.pop_front();
    }
    ConnSlot slot;
    registry_.add(&slot);
    t_slot = &slot;
    try {
      fn();  // serves one connection until it closes
    } catch (...) {
      // A throwing content provider ends its connection, not the test process.
    }
    t_request.reset();
    t_slot = nullptr;
    registry_.remove(&slot);
  }
}

// ------------------------------------------------------------------------------------- parameters

std::optional<std::size_t> uint_param(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) {
    return std::nullopt;
  }
  const std::string v = req.get_param_value(key);
  std::size_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || end != v.data() + v.size()) {
    return std::nullopt;
  }
  return out;
}

std::size_t size_param(const httplib::Request& req, const char* key, std::size_t fallback) {
  return uint_param(req, key).value_or(fallback);
}

bool flag_param(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) {
    return false;
  }
  const auto v = lower(req.get_param_value(key));
  return v.empty() || v == "1" || v == "true" || v == "yes";
}

std::string string_param(const httplib::Request& req, const char* key, std::string fallback) {
  return req.has_param(key) ? req.get_param_value(key) : std::move(fallback);
}

milliseconds ms_param(const httplib::Request& req, const char* key, milliseconds fallback) {
  const auto v = uint_param(req, key);
  return v ? milliseconds(static_cast<milliseconds::rep>(*v)) : fallback;
}

std::string http_date(std::chrono::system_clock::time_point t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::array<char, 40> buf{};
  std::snprintf(buf.data(), buf.size(), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf.data();
}

// Adds Retry-After from retry_after=S (+ retry_after_date=1 for the HTTP-date form).
void add_retry_after(const httplib::Request& req, httplib::Response& res) {
  const auto seconds = uint_param(req, "retry_after");
  if (!seconds) {
    return;
  }
  if (flag_param(req, "retry_after_date")) {
    const auto when = std::chrono::system_clock::now() + std::chrono::seconds(static_cast<long>(*seconds));
    res.set_header("Retry-After", http_date(when));
  } else {
    res.set_header("Retry-After", std::to_string(*seconds));
  }
}

// The one Range form clients send: a single "bytes=" range. Multiple ranges are answered with the whole
// body (allowed by RFC 9110).
struct RangeRequest {
  enum class Kind { None, Satisfiable, Unsatisfiable } kind = Kind::None;
  std::size_t begin = 0;
  std::size_t end = 0;  // exclusive
};

RangeRequest parse_range(std::string_view header, std::size_t size) {
  RangeRequest out;
  constexpr std::string_view kPrefix = "bytes=";
  if (!header.starts_with(kPrefix) || header.find(',') != std::string_view::npos) {
    return out;
  }
  header.remove_prefix(kPrefix.size());
  const auto dash = header.find('-');
  if (dash == std::string_view::npos) {
    return out;
  }
  auto number = [](std::string_view s) -> std::optional<std::size_t> {
    while (!s.empty() && s.front() == ' ') {
      s.remove_prefix(1);
    }
    while (!s.empty() && s.back() == ' ') {
      s.remove_suffix(1);
    }
    std::size_t v = 0;
    if (s.empty() || std::from_chars(s.data(), s.data() + s.size(), v).ptr != s.data() + s.size()) {
      return std::nullopt;
    }
    return v;
  };
  const auto first = number(header.substr(0, dash));
  const auto last = number(header.substr(dash + 1));
  if (!first && last) {  // suffix range: the last N bytes
    if (*last == 0) {
      out.kind = RangeRequest::Kind::Unsatisfiable;
      return out;
    }
    out = {RangeRequest::Kind::Satisfiable, size - std::min(*last, size), size};
    return out;
  }
  if (!first || (last && *last < *first)) {
    return out;
  }
  if (*first >= size) {
    out.kind = RangeRequest::Kind::Unsatisfiable;
    return out;
  }
  out = {RangeRequest::Kind::Satisfiable, *first, last ? std::min(*last + 1, size) : size};
  return out;
}

std::string gzip(std::string_view data) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    throw std::runtime_error("deflate failed");
  }
  return out;
}

// Bodies we size ourselves go through a content provider with a length: httplib then neither compresses
// them nor applies Range to them behind our back.
void set_exact_body(httplib::Response& res, std::shared_ptr<const std::string> body,
                    const std::string& type) {
  if (body->empty()) {
    res.set_content("", type);
    return;
  }
  const std::size_t n = body->size();
  res.set_content_provider(n, type, [body](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
    return sink.write(body->data() + offset, std::min(length, kChunk));
  });
}

}  // namespace

// ------------------------------------------------------------------------------------------ server

struct TestServer::Impl {
  // Exposes the listening socket (protected in httplib) to raise its tiny listen backlog.
  template <class Base>
  class Listener final : public Base {
   public:
    using Base::Base;
    int listen_fd() const { return this->svr_sock_; }
  };

  ServerOptions options;
  std::unique_ptr<httplib::Server> server;
  std::function<int()> listen_fd;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  int port = 0;
  std::string base;
  std::string ca_path;
  std::filesystem::path temp_dir;

  StopSignal stop_signal;
  ConnectionRegistry registry;
  Counters counters;

  explicit Impl(ServerOptions opts);
  ~Impl();
  void add_routes();
  void stop();

  std::string image_url(std::string_view host_base, std::string_view prefix, std::size_t i,
                        std::string_view ext, std::size_t size, std::optional<milliseconds> latency) const {
    std::string u(host_base);
    u += "/img/";
    u += prefix;
    u += '_';
    u += std::to_string(i);
    u += '.';
    u += ext;
    u += "?size=" + std::to_string(size);
    if (latency) {
      u += "&latency_ms=" + std::to_string(latency->count());
    }
    return u;
  }

  // Route helpers.
  void serve_image(const httplib::Request& req, httplib::Response& res, ImageKind kind, std::size_t size,
                   std::size_t cut = 0);

  std::mutex files_mu;
  std::map<std::string, std::string> files;  // /file/<name> bodies, set by serve_file()
  void serve_cut(const httplib::Request& req, httplib::Response& res, bool reset);
};

TestServer::Impl::Impl(ServerOptions opts) : options(std::move(opts)) {
  if (!is_loopback_host(options.host)) {
    throw std::invalid_argument("test server: refusing non-loopback host '" + options.host + "'");
  }
  std::string scheme = "http";
  if (options.tls) {
    scheme = "https";
    const PkeyPtr key = make_key();
    const X509Ptr cert = make_cert(key.get());
    std::string dir_template = (std::filesystem::temp_directory_path() / "imgdl-testserver-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) {
      throw std::runtime_error("test server: mkdtemp failed");
    }
    temp_dir = dir_template;
    ca_path = (temp_dir / "cert.pem").string();
    BioPtr bio(BIO_new_file(ca_path.c_str(), "w"));
    if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) {
      tls_fail("writing the certificate");
    }
    auto tls_server = std::make_unique<Listener<httplib::SSLServer>>(cert.get(), key.get());  // up-refs both
    if (!tls_server->is_valid()) {
      tls_fail("SSL context");
    }
    listen_fd = [s = tls_server.get()] { return s->listen_fd(); };
    server = std::move(tls_server);
  } else {
    auto plain = std::make_unique<Listener<httplib::Server>>();
    listen_fd = [s = plain.get()] { return s->listen_fd(); };
    server = std::move(plain);
  }

  server->new_task_queue = [this] { return new WorkerPool(options.threads, registry); };
  server->set_keep_alive_max_count(100000);
  server->set_keep_alive_timeout(kKeepAliveSeconds);
  server->set_tcp_nodelay(true);
  add_routes();

  if (options.port == 0) {
    port = server->bind_to_any_port(options.host);
  } else if (server->bind_to_port(options.host, options.port)) {
    port = options.port;
  } else {
    port = -1;
  }
  if (port <= 0) {
    throw std::runtime_error("test server: cannot bind " + options.host + ":" + std::to_string(options.port));
  }
  ::listen(listen_fd(), SOMAXCONN);  // httplib listens with a backlog of 5: bursts of connects would stall

  const bool ipv6 = options.host.find(':') != std::string::npos;
  base = scheme + "://" + (ipv6 ? "[" + options.host + "]" : options.host) + ":" + std::to_string(port);

  thread = std::thread([this] {
    server->listen_after_bind();
    listen_returned = true;
  });
  // The socket already queues connections; wait for the accept loop too, so callers can rely on
  // is_running semantics.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!server->is_running() && !listen_returned && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  if (!server->is_running()) {
    stop();
    throw std::runtime_error("test server: failed to start listening");
  }
}

TestServer::Impl::~Impl() {
  stop();
  if (!temp_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir, ignored);
  }
}

void TestServer::Impl::stop() {
  stop_signal.stop();       // ends waits in handlers and providers
  server->stop();           // closes the listening socket; the accept loop then joins the workers
  registry.shutdown_all();  // wakes connections idling in keep-alive
  if (thread.joinable()) {
    thread.join();
  }
}

void TestServer::Impl::serve_image(const httplib::Request& req, httplib::Response& res, ImageKind kind,
                                   std::size_t size, std::size_t cut) {
  const std::shared_ptr<InFlight> token = t_request;
  if (const auto latency = ms_param(req, "latency_ms", options.latency); latency.count() > 0) {
    if (!stop_signal.sleep_for(latency)) {
      res.status = 503;
      res.set_content("test server stopping\n", "text/plain");
      return;
    }
  }
  if (const auto type =
          req.has_param("type") ? image_kind_from_name(req.get_param_value("type")) : std::nullopt) {
    kind = *type;
  }
  auto gen = std::make_shared<const ImageGenerator>(kind, size, req.path);
  const std::string content_type = string_param(req, "content_type", std::string(mime_type(kind)));
  const bool chunked = flag_param(req, "chunked");
  const bool ignore_range = flag_param(req, "ignore_range") || chunked;
  // We answer Range ourselves (httplib 0.11 mishandles ranges past the end); clearing req.ranges stops
  // httplib from slicing the body a second time. The Request object itself is not const, only the view.
  const_cast<httplib::Request&>(req).ranges.clear();

  std::size_t begin = 0;
  std::size_t end = gen->size();
  res.status = 200;
  if (!ignore_range) {
    res.set_header("Accept-Ranges", "bytes");
    const auto range = parse_range(req.get_header_value("Range"), gen->size());
    if (range.kind == RangeRequest::Kind::Unsatisfiable) {
      res.status = 416;
      res.set_header("Content-Range", "bytes */" + std::to_string(gen->size()));
      res.set_content("", content_type);
      return;
    }
    if (range.kind == RangeRequest::Kind::Satisfiable) {
      res.status = 206;
      begin = range.begin;
      end = range.end;
      res.set_header("Content-Range", "bytes " + std::to_string(begin) + "-" + std::to_string(end - 1) + "/" +
                                          std::to_string(gen->size()));
    }
  }
  if (cut != 0 && cut < end)
    end = std::max(begin, cut);  // a whole response holding a cut image, as a closed connection leaves it
  if (req.method == "HEAD" && token) {
    token->release();  // no body will be written
  }
  auto release = [token](bool) {
    if (token) {
      token->release();
    }
  };
  if (chunked) {
    res.set_chunked_content_provider(
        content_type,
        [gen, token](std::size_t offset, httplib::DataSink& sink) {
          std::string buf;
          gen->append(offset, kChunk, buf);
          if (offset + buf.size() >= gen->size()) {
            if (token) {
              token->release();
            }
            const bool ok = sink.write(buf.data(), buf.size());
            sink.done();
            return ok;
          }
          return sink.write(buf.data(), buf.size());
        },
        release);
    return;
  }
  res.set_content_provider(
      end - begin, content_type,
      [gen, token, begin](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        std::string buf;
        gen->append(begin + offset, std::min(length, kChunk), buf);
        if (buf.size() >= length && token) {
          token->release();  // before the last byte: a client can never see its response done while counted
        }
        return sink.write(buf.data(), buf.size());
      },
      release);
}

// /truncated and /reset-mid-body: declare size=N, send sent=M, then close (FIN) or reset (RST).
void TestServer::Impl::serve_cut(const httplib::Request& req, httplib::Response& res, bool reset) {
  const auto kind = image_kind_from_path(req.path).value_or(ImageKind::Jpeg);
  auto gen =
      std::make_shared<const ImageGenerator>(kind, size_param(req, "size", kDefaultImageSize), req.path);
  const std::size_t sent = std::min(size_param(req, "sent", gen->size() / 2), gen->size());
  const_cast<httplib::Request&>(req).ranges.clear();
  res.status = 200;
  res.set_content_provider(
      gen->size(), std::string(mime_type(kind)),
      [this, gen, sent, reset](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        if (offset >= sent) {
          if (reset) {
            registry.drain_current(milliseconds(500));
            registry.reset_current();
          }
          return false;  // httplib gives up on the response and closes the connection
        }
        std::string buf;
        gen->append(offset, std::min({length, kChunk, sent - offset}), buf);
        return sink.write(buf.data(), buf.size());
      });
}

void TestServer::Impl::add_routes() {
  httplib::Server& s = *server;

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
    registry.attach(req);
    t_request = counters.begin_request(req);
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Runs after the handler, before the response is written: bodies set in the handler leave in_flight
  // here; content providers hold their own reference to the token.
  s.set_post_routing_handler([](const httplib::Request&, httplib::Response&) { t_request.reset(); });

  // Handlers must not throw into httplib (0.11 would drop the connection without a response).
  auto route = [&s](const std::string& pattern, auto handler) {
    s.Get(pattern, [handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const std::exception& e) {
        res = httplib::Response();
        res.status = 500;
        res.set_content(std::string("test server error: ") + e.what() + "\n", "text/plain");
      }
    });
  };

  route(R"(/img/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    serve_image(req, res, image_kind_from_path(req.path).value_or(ImageKind::Jpeg),
                size_param(req, "size", kDefaultImageSize), size_param(req, "cut", 0));
  });

  route(R"(/file/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    std::string body;
    {
      std::lock_guard lock(files_mu);
      const auto it = files.find(req.matches[1]);
      if (it == files.end()) {
        res.status = 404;
        res.set_content("no such file\n", "text/plain");
        return;
      }
      body = it->second;
    }
    if (const std::size_t cut = size_param(req, "cut", 0); cut != 0 && cut < body.size())
      body.resize(cut);
    res.set_content(body, "application/octet-stream");
  });

  route(R"(/status/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
    int code = 0;
    const std::string digits = req.matches[1];
    std::from_chars(digits.data(), digits.data() + digits.size(), code);
    if (code < 200 || code > 599) {
      res.status = 400;
      res.set_content("status must be 200-599\n", "text/plain");
      return;
    }
    res.status = code;
    add_retry_after(req, res);
    if (code != 204 && code != 304) {
      res.set_content("<!doctype html><html><body><h1>" + std::to_string(code) + "</h1></body></html>\n",
                      "text/html");
    }
  });

  route(R"(/flaky/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::size_t attempt = counters.next_flaky(req.matches[1]);
    if (attempt <= size_param(req, "fails", 1)) {
      if (req.has_param("cut")) {  // a failure that is a cut image, not a status
        serve_image(req, res, image_kind_from_path(req.path).value_or(ImageKind::Jpeg),
                    size_param(req, "size", kDefaultImageSize), size_param(req, "cut", 0));
        return;
      }
      res.status = static_cast<int>(std::clamp<std::size_t>(size_param(req, "code", 503), 200, 599));
      add_retry_after(req, res);
      res.set_content("flaky: attempt " + std::to_string(attempt) + " fails\n", "text/plain");
      return;
    }
    serve_image(req, res, image_kind_from_path(req.path).value_or(ImageKind::Jpeg),
                size_param(req, "size", kDefaultImageSize));
  });

  auto redirect = [](httplib::Response& res, const std::string& location, std::size_t code) {
    res.status = static_cast<int>(code >= 300 && code < 400 ? code : 302);
    res.set_header("Location", location);
    res.set_content("redirecting to " + location + "\n", "text/plain");
  };
  route(R"(/redirect/(\d+))", [redirect](const httplib::Request& req, httplib::Response& res) {
    std::size_t n = 0;
    const std::string digits = req.matches[1];
    std::from_chars(digits.data(), digits.data() + digits.size(), n);
    const auto q = req.target.find('?');
    const std::string query = q == std::string::npos ? "" : req.target.substr(q);
    const std::string location =
        n > 0 ? "/redirect/" + std::to_string(n - 1) + query : string_param(req, "to", "/img/redirected.jpg");
    redirect(res, location, size_param(req, "code", 302));
  });
  route("/redirect-loop", [redirect](const httplib::Request& req, httplib::Response& res) {
    redirect(res, "/redirect-loop", size_param(req, "code", 302));
  });
  route("/redirect-to", [redirect](const httplib::Request& req, httplib::Response& res) {
    redirect(res, string_param(req, "url", "/img/redirected.jpg"), size_param(req, "code", 302));
  });

  route(R"(/truncated/(.+))",
        [this](const httplib::Request& req, httplib::Response& res) { serve_cut(req, res, false); });
  route("/reset-mid-body",
        [this](const httplib::Request& req, httplib::Response& res) { serve_cut(req, res, true); });
  route("/reset-before-headers", [this](const httplib::Request&, httplib::Response& res) {
    registry.reset_current();
    res.status = 500;  // only reached by a client if the reset failed
    res.set_content("reset failed\n", "text/plain");
  });

  route("/chunked-cut", [this](const httplib::Request& req, httplib::Response& res) {
    const std::size_t sent = size_param(req, "sent", 10000);
    auto gen = std::make_shared<const ImageGenerator>(ImageKind::Jpeg, std::max(sent * 2, kDefaultImageSize),
                                                      req.path);
    res.set_chunked_content_provider("image/jpeg", [gen, sent](std::size_t offset, httplib::DataSink& sink) {
      if (offset >= sent) {
        return false;  // no terminating chunk
      }
      std::string buf;
      gen->append(offset, std::min(kChunk, sent - offset), buf);
      return sink.write(buf.data(), buf.size());
    });
  });

  route("/stall-headers", [this](const httplib::Request& req, httplib::Response& res) {
    const auto ms = ms_param(req, "ms", milliseconds(30000));
    if (!stop_signal.sleep_for(ms)) {
      res.status = 503;
      res.set_content("test server stopping\n", "text/plain");
      return;
    }
    res.set_content("stalled " + std::to_string(ms.count()) + " ms\n", "text/plain");
  });

  route("/stall-body", [this](const httplib::Request& req, httplib::Response& res) {
    auto gen = std::make_shared<const ImageGenerator>(ImageKind::Jpeg,
                                                      size_param(req, "size", kDefaultImageSize), req.path);
    const std::size_t sent = std::min(size_param(req, "sent", gen->size() / 2), gen->size());
    const auto ms = ms_param(req, "ms", milliseconds(30000));
    auto stalled = std::make_shared<bool>(false);
    const_cast<httplib::Request&>(req).ranges.clear();
    res.set_content_provider(
        gen->size(), "image/jpeg",
        [this, gen, sent, ms, stalled](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          if (offset >= sent && !*stalled) {
            *stalled = true;
            if (!stop_signal.sleep_for(ms)) {
              return false;
            }
          }
          const std::size_t limit = offset < sent ? sent - offset : length;
          std::string buf;
          gen->append(offset, std::min({length, kChunk, limit}), buf);
          return sink.write(buf.data(), buf.size());
        });
  });

  route("/drip", [this](const httplib::Request& req, httplib::Response& res) {
    const auto kind =
        req.has_param("type") ? image_kind_from_name(req.get_param_value("type")) : std::nullopt;
    auto gen = std::make_shared<const ImageGenerator>(kind.value_or(ImageKind::Jpeg),
                                                      size_param(req, "size", kDefaultImageSize), req.path);
    const std::size_t rate = std::max<std::size_t>(size_param(req, "bytes_per_sec", 10000), 1);
    const std::size_t step = std::max<std::size_t>(rate / 20, 1);  // about 20 writes a second
    const auto pause = std::chrono::duration_cast<milliseconds>(
        std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(step * 1000000 / rate)));
    const_cast<httplib::Request&>(req).ranges.clear();
    res.set_content_provider(
        gen->size(), std::string(mime_type(gen->kind())),
        [this, gen, step, pause](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          std::string buf;
          gen->append(offset, std::min(length, step), buf);
          if (!sink.write(buf.data(), buf.size())) {
            return false;
          }
          return buf.size() >= length || stop_signal.sleep_for(pause);
        });
  });

  route("/unbounded", [this](const httplib::Request& req, httplib::Response& res) {
    auto gen = std::make_shared<const ImageGenerator>(ImageKind::Jpeg, kUnboundedSize, req.path);
    const auto rate = uint_param(req, "bytes_per_sec");
    res.set_chunked_content_provider(
        "image/jpeg", [this, gen, rate](std::size_t offset, httplib::DataSink& sink) {
          const std::size_t step = rate ? std::clamp<std::size_t>(*rate / 20, 1, kChunk) : kChunk;
          std::string buf;
          gen->append(offset, step, buf);
          if (stop_signal.stopping() || !sink.write(buf.data(), buf.size())) {
            return false;
          }
          if (rate) {
            const auto pause = std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(
                step * 1000000 / std::max<std::size_t>(*rate, 1)));
            return stop_signal.sleep_for(std::chrono::duration_cast<milliseconds>(pause));
          }
          return true;
        });
  });

  route("/html", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "<!doctype html>\n<html><head><title>imgdl test server</title></head>"
        "<body><p>Not an image.</p></body></html>\n",
        "text/html");
  });
  route("/empty", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content("", string_param(req, "content_type", "image/jpeg"));
  });

  route(R"(/gzip/(.+))", [](const httplib::Request& req, httplib::Response& res) {
    const auto kind = image_kind_from_path(req.path).value_or(ImageKind::Jpeg);
    std::string body = test::image_bytes(kind, size_param(req, "size", kDefaultImageSize), req.path);
    const bool accepts = req.get_header_value("Accept-Encoding").find("gzip") != std::string::npos;
    res.set_header("Vary", "Accept-Encoding");
    if (accepts || flag_param(req, "force")) {
      body = gzip(body);
      res.set_header("Content-Encoding", "gzip");
    }
    const_cast<httplib::Request&>(req).ranges.clear();
    set_exact_body(res, std::make_shared<const std::string>(std::move(body)), std::string(mime_type(kind)));
  });

  route("/list", [this](const httplib::Request& req, httplib::Response& res) {
    const std::size_t n = size_param(req, "n", 10);
    const std::size_t size = size_param(req, "size", kDefaultImageSize);
    const std::string prefix = string_param(req, "prefix", "img");
    const std::string ext = string_param(req, "ext", "jpg");
    const auto latency = uint_param(req, "latency_ms");
    const bool alternate = flag_param(req, "alternate_hosts");
    const std::string scheme = options.tls ? "https://" : "http://";
    const std::string other = scheme + "localhost:" + std::to_string(port);
    std::optional<milliseconds> per_image_latency;
    if (latency)
      per_image_latency = milliseconds(static_cast<milliseconds::rep>(*latency));
    std::string body;
    for (std::size_t i = 0; i < n; ++i) {
      body += image_url(alternate && i % 2 == 1 ? other : base, prefix, i, ext, size, per_image_latency);
      body += '\n';
    }
    res.set_content(body, "text/plain");
  });

  route("/hits", [this](const httplib::Request&, httplib::Response& res) {
    std::string body = "{";
    counters.read([&body](const Counters& c) {
      for (const auto& [path, count] : c.hits_) {
        if (body.size() > 1)
          body += ',';
        body += '"';
        for (const char ch : path) {  // paths arrive percent-decoded: escape what JSON needs
          if (ch == '"' || ch == '\\') {
            body += '\\';
            body += ch;
          } else if (static_cast<unsigned char>(ch) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x",
                          static_cast<unsigned>(static_cast<unsigned char>(ch)));
            body += escaped;
          } else {
            body += ch;
          }
        }
        body += "\":" + std::to_string(count);
      }
      return 0;
    });
    body += "}\n";
    res.set_content(body, "application/json");
  });

  route("/echo-headers", [](const httplib::Request& req, httplib::Response& res) {
    std::string body = req.method + " " + req.target + " " + req.version + "\n";
    for (const auto& [name, value] : req.headers) {
      if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" || name == "LOCAL_PORT") {
        continue;  // added by httplib, not sent by the client
      }
      body += name + ": " + value + "\n";
    }
    res.set_content(body, "text/plain");
  });
}

// ------------------------------------------------------------------------------------- public API

TestServer::TestServer(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
TestServer::~TestServer() = default;

int TestServer::port() const {
  return impl_->port;
}
std::string TestServer::base_url() const {
  return impl_->base;
}
void TestServer::serve_file(std::string name, std::string bytes) {
  std::lock_guard lock(impl_->files_mu);
  impl_->files[std::move(name)] = std::move(bytes);
}

std::string TestServer::url(std::string_view path) const {
  return impl_->base + std::string(path);
}
std::vector<std::string> TestServer::escaping_urls() const {
  std::vector<std::string> urls;
  for (const char* path : {"/img/..%2f..%2fescape.jpg", "/img/%2e%2e%2fescape2.jpg", "/img/..%5cwin.jpg",
                           "/img/%2e%2e", "/img/.bashrc", "/img/a%00b.jpg", "/img/a%0ab.jpg"})
    urls.push_back(url(path));
  return urls;
}
const std::string& TestServer::ca_file() const {
  return impl_->ca_path;
}

std::size_t TestServer::requests() const {
  return impl_->counters.read([](const Counters& c) { return c.requests_; });
}
std::size_t TestServer::in_flight() const {
  return impl_->counters.read([](const Counters& c) { return c.in_flight_; });
}
std::size_t TestServer::peak_in_flight() const {
  return impl_->counters.read([](const Counters& c) { return c.peak_; });
}
std::size_t TestServer::connections() const {
  return impl_->counters.read([](const Counters& c) { return c.connections_; });
}
std::size_t TestServer::peak_in_flight_for_host(std::string_view host) const {
  const std::string key = host_key(host);
  return impl_->counters.read([&](const Counters& c) {
    const auto it = c.hosts_.find(key);
    return it == c.hosts_.end() ? std::size_t{0} : it->second.peak;
  });
}
std::size_t TestServer::hits(std::string_view path) const {
  return impl_->counters.read([&](const Counters& c) {
    const auto it = c.hits_.find(path);
    return it == c.hits_.end() ? std::size_t{0} : it->second;
  });
}
std::vector<std::string> TestServer::user_agents() const {
  return impl_->counters.read([](const Counters& c) { return c.user_agents_; });
}
std::string TestServer::last_user_agent() const {
  return impl_->counters.read([](const Counters& c) { return c.last_user_agent_; });
}
std::vector<std::string> TestServer::range_headers() const {
  return impl_->counters.read([](const Counters& c) { return c.range_headers_; });
}
std::vector<TestServer::Arrival> TestServer::arrivals() const {
  return impl_->counters.read([](const Counters& c) { return c.arrivals_; });
}
void TestServer::reset_counters() {
  impl_->counters.reset();
}

std::vector<std::string> TestServer::image_urls(std::size_t count, std::size_t size, std::string_view prefix,
                                                std::optional<std::chrono::milliseconds> latency) const {
  std::vector<std::string> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(impl_->image_url(impl_->base, prefix, i, "jpg", size, latency));
  }
  return out;
}

std::string TestServer::image_bytes(std::string_view type, std::size_t size, std::string_view seed) {
  const auto kind = image_kind_from_name(type);
  if (!kind) {
    throw std::invalid_argument("unknown image type '" + std::string(type) + "'");
  }
  return test::image_bytes(*kind, size, seed);
}

bool is_loopback_host(std::string_view host) {
  const std::string h = lower(host);
  if (h == "localhost" || h == "::1" || h == "[::1]") {
    return true;
  }
  in_addr v4{};
  return inet_pton(AF_INET, h.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

}  // namespace imgdl::test
