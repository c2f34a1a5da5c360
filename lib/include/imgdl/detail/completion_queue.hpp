#pragma once
// How as_completed, wait and the Downloader learn which futures completed: a queue their done-callbacks
// push to. Implementation, not API.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_set>
#include <vector>

#include "imgdl/future.hpp"

namespace imgdl {

namespace detail {

/// Collects completions of a set of futures, in the order they complete. Shared with the futures'
/// done-callbacks through a weak_ptr, so abandoning the waiter leaves only a no-op behind.
class CompletionQueue {
 public:
  void push(std::size_t index) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      finished_.push_back(index);
      wake = finished_.size() >= wanted_;
    }
    if (wake)
      cv_.notify_all();
  }
  /// Waits until `count` indices are queued, or only for one once `deadline` passed, then moves every
  /// queued index to `out`. Pushes wake the waiter only when enough are queued: one wake-up per batch.
  void pop_batch(std::size_t count, std::chrono::steady_clock::time_point deadline,
                 std::vector<std::size_t>& out) {
    std::unique_lock lock(mutex_);
    wanted_ = std::max<std::size_t>(count, 1);
    if (!cv_.wait_until(lock, deadline, [&] { return finished_.size() >= wanted_; })) {
      wanted_ = 1;
      cv_.wait(lock, [&] { return !finished_.empty(); });
    }
    wanted_ = 1;
    out.insert(out.end(), finished_.begin(), finished_.end());
    finished_.clear();
  }
  /// Pops the next completed index; nullopt if the deadline passed first.
  std::optional<std::size_t> pop(const std::optional<std::chrono::steady_clock::time_point>& deadline) {
    std::unique_lock lock(mutex_);
    auto ready = [&] { return !finished_.empty(); };
    if (deadline) {
      if (!cv_.wait_until(lock, *deadline, ready))
        return std::nullopt;
    } else {
      cv_.wait(lock, ready);
    }
    const auto index = finished_.front();
    finished_.pop_front();
    return index;
  }
  template <class Predicate>
  bool wait_until(const std::optional<std::chrono::steady_clock::time_point>& deadline, Predicate done) {
    std::unique_lock lock(mutex_);
    auto ready = [&] { return done(finished_); };
    if (!deadline) {
      cv_.wait(lock, ready);
      return true;
    }
    return cv_.wait_until(lock, *deadline, ready);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::size_t> finished_;
  std::size_t wanted_ = 1;  // queued indices that make push() wake the waiter
};

template <class R>
std::vector<Future<R>> unique_futures(const std::vector<Future<R>>& futures) {
  std::unordered_set<const void*> seen;
  std::vector<Future<R>> unique;
  unique.reserve(futures.size());
  for (const auto& f : futures) {
    if (!f.valid())
      throw std::logic_error("imgdl: cannot wait on an empty Future");
    if (seen.insert(FutureAccess::state(f).get()).second)
      unique.push_back(f);
  }
  return unique;
}

template <class R>
std::shared_ptr<CompletionQueue> watch(const std::vector<Future<R>>& futures) {
  auto queue = std::make_shared<CompletionQueue>();
  for (std::size_t i = 0; i < futures.size(); ++i) {
    FutureAccess::state(futures[i])->add_callback([weak = std::weak_ptr<CompletionQueue>(queue), i] {
      if (auto q = weak.lock())
        q->push(i);
    });
  }
  return queue;
}

inline std::optional<std::chrono::steady_clock::time_point> deadline_after(
    std::optional<std::chrono::steady_clock::duration> timeout) {
  if (!timeout)
    return std::nullopt;
  return std::chrono::steady_clock::now() + *timeout;
}

}  // namespace detail

}  // namespace imgdl
