#include "loop_router.hpp"

#include <algorithm>
#include <functional>

namespace imgdl::detail {

std::size_t LoopRouter::note(std::size_t hash) {
  std::lock_guard lock(mutex_);
  if (order_.size() >= recent_ && !order_.empty()) {
    // Every hash in order_ is counted, so the find cannot fail.
    if (const auto old = count_.find(order_.front()); old != count_.end() && --old->second == 0)
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
  // A busy host has connections in every loop soon anyway: it balances the loops.
  return busy ? lightest : hash % loads.size();
}

}  // namespace imgdl::detail
