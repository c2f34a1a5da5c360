#include "curl_handles.hpp"

#include <stdexcept>
#include <utility>

namespace imgdl::detail {

void ensure_curl_global_init() {
  static const CURLcode result = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (result != CURLE_OK)
    throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(result));
}

CurlEasy::CurlEasy() : handle_(curl_easy_init()) {
  if (!handle_)
    throw std::runtime_error("curl_easy_init failed");
}

CurlEasy& CurlEasy::operator=(CurlEasy&& other) noexcept {
  if (this != &other) {
    if (handle_)
      curl_easy_cleanup(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

CurlEasy::~CurlEasy() {
  if (handle_)
    curl_easy_cleanup(handle_);
}

CurlMulti::CurlMulti() : handle_(curl_multi_init()) {
  if (!handle_)
    throw std::runtime_error("curl_multi_init failed");
}

CurlMulti& CurlMulti::operator=(CurlMulti&& other) noexcept {
  if (this != &other) {
    if (handle_)
      curl_multi_cleanup(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

CurlMulti::~CurlMulti() {
  if (handle_)
    curl_multi_cleanup(handle_);
}

CurlShare::CurlShare() : handle_(curl_share_init()) {
  if (!handle_)
    throw std::runtime_error("curl_share_init failed");
  curl_share_setopt(handle_, CURLSHOPT_LOCKFUNC, &CurlShare::lock);
  curl_share_setopt(handle_, CURLSHOPT_UNLOCKFUNC, &CurlShare::unlock);
  curl_share_setopt(handle_, CURLSHOPT_USERDATA, this);
  curl_share_setopt(handle_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(handle_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

CurlShare::~CurlShare() {
  curl_share_cleanup(handle_);
}

void CurlShare::lock(CURL*, curl_lock_data data, curl_lock_access, void* self) noexcept {
  static_cast<CurlShare*>(self)->mutexes_.at(static_cast<std::size_t>(data)).lock();
}

void CurlShare::unlock(CURL*, curl_lock_data data, void* self) noexcept {
  static_cast<CurlShare*>(self)->mutexes_.at(static_cast<std::size_t>(data)).unlock();
}

}  // namespace imgdl::detail
