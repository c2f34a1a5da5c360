#pragma once
// Which transfer loop takes a URL. Each loop has its own libcurl connection cache, so a host whose
// URLs are spread over two loops keeps two sets of connections and pays a TLS handshake in each: a
// host's URLs go to one loop (its origin's hash picks it), unless the host is busy enough to need
// connections in every loop anyway. A loop whose hosts have more URLs than its share of slots does
// not hand them to another loop: it borrows that loop's free slots (SlotPool).

#include <cstddef>
#include <deque>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>

namespace imgdl::detail {

struct LoopLoad {
  std::size_t unfinished = 0;  // queued or running on the loop
};

/// Thread-safe: route() may be called from several submitting threads at once.
class LoopRouter {
 public:
  /// `recent`: how many of the last routed URLs tell a busy host from a quiet one (the Downloader's
  /// window of URLs in flight); `busy_above`: a host with more of those is busy.
  LoopRouter(std::size_t recent, std::size_t busy_above) : recent_(recent), busy_above_(busy_above) {}

  /// The index into `loads` of the loop for a URL of `origin` ("scheme://host:port").
  std::size_t route(std::string_view origin, std::span<const LoopLoad> loads);

 private:
  /// Records the origin among the recent ones; returns how often it is there now.
  std::size_t note(std::size_t hash);

  const std::size_t recent_;
  const std::size_t busy_above_;
  std::mutex mutex_;
  std::deque<std::size_t> order_;                       // hashes of the last `recent_` origins
  std::unordered_map<std::size_t, std::size_t> count_;  // hash -> occurrences in order_
};

}  // namespace imgdl::detail
