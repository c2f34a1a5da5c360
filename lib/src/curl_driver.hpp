#pragma once
// The libcurl side of a transfer loop, as curl's hiperfifo/ephiperfifo examples arrange it: one multi
// handle driven by SocketEvents, easy handles recycled between attempts (each keeps its DNS and TLS
// state warm), and each finished handle led back to its job through CURLINFO_PRIVATE.

#include <cstddef>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "curl_handles.hpp"
#include "socket_events.hpp"
#include "transfer.hpp"

namespace imgdl::detail {

/// One attempt inside libcurl: its easy handle and the state its callbacks write to. Empty between
/// attempts.
struct ActiveAttempt {
  std::optional<CurlEasy> easy;
  AttemptPtr attempt;
  bool in_libcurl() const noexcept { return easy.has_value(); }
};

/// Owns a multi handle and its easy handles. Everything but wake() belongs to the thread that runs
/// the transfer loop; wake() is for any thread.
class CurlDriver {
 public:
  /// `slots`: the most transfers this driver runs at once (sizes its connection cache).
  CurlDriver(const TransferSettings& settings, std::size_t slots);
  CurlDriver(const CurlDriver&) = delete;
  CurlDriver& operator=(const CurlDriver&) = delete;

  /// Adds an attempt at `url` for `owner` (found again through for_each_completion()); its request
  /// goes out at the next run_due_timers(). The outcome that ended it instead, if it could not start.
  [[nodiscard]] std::optional<AttemptOutcome> start(ActiveAttempt& active, void* owner,
                                                    const std::string& url, BodySink& sink,
                                                    std::stop_token stop, const ProgressReport& report);

  /// Calls `on_done(owner, code)` for every attempt libcurl has finished since the last call.
  template <class OnDone>
  void for_each_completion(OnDone&& on_done);

  /// Takes a finished attempt out of libcurl and judges it (status, size, image checks).
  AttemptOutcome finish(ActiveAttempt& active, CURLcode code);
  /// Takes an attempt out of libcurl unjudged (cancelled, or its file could not be opened).
  void abort(ActiveAttempt& active);

  /// Lets libcurl start the attempts just added and fire its timeouts.
  void run_due_timers() { events_.run_due_timers(); }
  /// Sleeps until a socket is ready, libcurl's timer or `deadline` comes, or wake() is called.
  void wait(std::optional<std::chrono::steady_clock::time_point> deadline) { events_.wait(deadline); }
  void wake() noexcept { events_.wake(); }

 private:
  CurlEasy take_easy();
  void release(ActiveAttempt& active);
  void judge_connection(CURL* handle, const AttemptOutcome& outcome);

  // Attempts at https origins wait for an origin's connection being set up (CURLOPT_PIPEWAIT), to
  // share it if it speaks h2, instead of each opening its own. libcurl lets them try one at a time
  // when that connection fails, so a host that never completes a handshake would cost each of them a
  // whole connect timeout in turn: after such a failure, the origin's attempts still waiting start
  // over without waiting, and its later ones do not wait until it answers again.
  struct Https {
    std::string origin;  // "https://host:port"
    bool waits = false;  // CURLOPT_PIPEWAIT is set
  };
  std::unordered_map<CURL*, Https> https_;       // the running attempts at https URLs
  std::unordered_set<std::string> unreachable_;  // origins whose last connection failed to set up
  void note_origin(std::string_view url);

  const TransferSettings& settings_;
  // The multi handle outlives the easy handles; SocketEvents detaches from it first.
  CurlMulti multi_;
  SocketEvents events_{multi_.get()};
  std::vector<CurlEasy> idle_;
  // The origins this driver has fetched from, up to max_connects_cap_: the connection cache keeps one
  // idle connection for each, so a host's next URL finds its connection (and no new TLS handshake).
  std::unordered_set<std::string> origins_;
  std::size_t max_connects_ = 0;
  std::size_t max_connects_cap_ = 0;
};

template <class OnDone>
void CurlDriver::for_each_completion(OnDone&& on_done) {
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
    if (message->msg != CURLMSG_DONE)
      continue;
    void* owner = nullptr;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &owner);
    on_done(owner, message->data.result);
  }
}

}  // namespace imgdl::detail
