#pragma once
// libcurl's event-driven interface on epoll: libcurl is told which sockets are ready instead of
// checking every transfer's socket on each call, as curl_multi_perform() does (one poll(2) per
// running transfer per call), so a loop serving many connections costs per ready socket, not per
// transfer.

#include <curl/curl.h>

#include <chrono>
#include <optional>

#include "output_dir.hpp"

namespace imgdl::detail {

/// Drives a multi handle with curl_multi_socket_action(). Everything but wake() belongs to the thread
/// that runs the multi handle. Declare it after the CurlMulti it drives: it detaches its callbacks
/// from the multi handle when destroyed, before the multi handle is cleaned up.
class SocketEvents {
 public:
  /// Installs the socket and timer callbacks on `multi`. Throws std::system_error if the kernel
  /// refuses an epoll instance or an eventfd.
  explicit SocketEvents(CURLM* multi);
  SocketEvents(const SocketEvents&) = delete;
  SocketEvents& operator=(const SocketEvents&) = delete;
  ~SocketEvents();

  /// Makes a wait() in progress (or the next one) return. Any thread; async-signal-safe.
  void wake() noexcept;

  /// Runs libcurl's expired timers: new transfers start here, and timeouts fire.
  void run_due_timers();

  /// Waits until a socket is ready, libcurl's next timer expires, wake() is called, or `deadline`
  /// passes, then hands every ready socket and expired timer to libcurl. Without a deadline and with
  /// no timer set it sleeps for as long as nothing happens: no idle polling to hide a missed event.
  void wait(std::optional<std::chrono::steady_clock::time_point> deadline);

 private:
  static int on_socket(CURL* easy, curl_socket_t socket, int what, void* self, void* socket_data);
  static int on_timer(CURLM* multi, long timeout_ms, void* self);
  void act(curl_socket_t socket, int events);

  CURLM* multi_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::optional<std::chrono::steady_clock::time_point> timer_;
};

}  // namespace imgdl::detail
