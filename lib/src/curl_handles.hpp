#pragma once
// RAII owners for libcurl's C handles. Copy is deleted and move is noexcept, as cpr's CurlHolder.
// Private: libcurl never appears in imgdl's public headers.

#include <curl/curl.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace imgdl::detail {

/// Runs curl_global_init exactly once per process, before the first handle exists. Must be called
/// before any worker thread touches libcurl (the Downloader constructor does). Thread-safe. libcurl is
/// never globally cleaned up: other libraries in the process may still be using it.
void ensure_curl_global_init();

/// A CURL* easy handle. Owned by one thread at a time (libcurl's rule: never shared concurrently).
class CurlEasy {
 public:
  CurlEasy();  // throws std::runtime_error if libcurl cannot allocate one
  CurlEasy(CurlEasy&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  CurlEasy& operator=(CurlEasy&& other) noexcept;
  CurlEasy(const CurlEasy&) = delete;
  CurlEasy& operator=(const CurlEasy&) = delete;
  ~CurlEasy();
  CURL* get() const noexcept { return handle_; }

 private:
  CURL* handle_;
};

/// A CURLM* multi handle: runs many easy transfers on the one thread that owns it, sharing its
/// connection cache between them. curl_multi_wakeup() is the only call other threads may make.
class CurlMulti {
 public:
  CurlMulti();  // throws std::runtime_error if libcurl cannot allocate one
  CurlMulti(CurlMulti&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  CurlMulti& operator=(CurlMulti&& other) noexcept;
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;
  /// Every easy handle must have been removed first.
  ~CurlMulti();
  CURLM* get() const noexcept { return handle_; }

 private:
  CURLM* handle_;
};

/// A CURLSH* share handle that shares the DNS cache and TLS sessions between the easy handles of
/// several threads, with one mutex per shared data kind (libcurl-share's lock callbacks). Connections
/// are not shared: libcurl does not support sharing them across threads. Not movable, because
/// libcurl keeps a pointer to it for the lock callbacks.
class CurlShare {
 public:
  CurlShare();
  CurlShare(const CurlShare&) = delete;
  CurlShare& operator=(const CurlShare&) = delete;
  ~CurlShare();
  CURLSH* get() const noexcept { return handle_; }

 private:
  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) noexcept;
  static void unlock(CURL*, curl_lock_data data, void* self) noexcept;

  std::array<std::mutex, CURL_LOCK_DATA_LAST> mutexes_;
  CURLSH* handle_;
};

}  // namespace imgdl::detail
