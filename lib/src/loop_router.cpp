#include "loop_router.hpp"

#include <algorithm>
#include <functional>

namespace imgdl::detail {

std::size_t LoopRouter::note(std::size_t hash) {
  std::lock_guard lock(mutex_);
  if (order_.size() >= recent_ && !order_.empty()) {
    const auto old = count_.find(order_.front());
    if (--old->second == 0)
      count_.erase(old);
    order_.pop_front();
  }
  order_.push_back(hash);
  return ++count_[hash];
}

std::size_t LoopRouter::route(std::string_view origin, std::span<const LoopLoad> loads) {
  if (loads.size() <= 1)
    return 0;
  const std::size_t hash = std::hash<std::string_view>{}(origin);
  const bool busy = note(hash) > busy_above_;
  const auto lightest = static_cast<std::size_t>(
      std::min_element(loads.begin(), loads.end(),
                       [](const LoopLoad& a, const LoopLoad& b) { return a.unfinished < b.unfinished; }) -
      loads.begin());
  if (busy)
    return lightest;  // it has connections in every loop soon anyway: balance the loops
  const std::size_t home = hash % loads.size();
  // A loop left nearly idle while the home loop has twice its slots of URLs takes the URL
  // (one more connection for its host): on a machine short of CPU one loop can fall behind for
  // seconds. Spilling any sooner cost more handshakes than it saved time (measured on 500 hosts).
  const bool home_has_queue = loads[home].unfinished >= 2 * loads[home].slots;
  const bool lightest_has_room = loads[lightest].unfinished < loads[lightest].slots / 4;
  return home_has_queue && lightest_has_room ? lightest : home;
}

}  // namespace imgdl::detail
