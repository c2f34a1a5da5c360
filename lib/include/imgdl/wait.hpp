#pragma once
// Python's concurrent.futures.as_completed and concurrent.futures.wait over imgdl futures.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "imgdl/detail/completion_queue.hpp"
#include "imgdl/future.hpp"

namespace imgdl {

/// When wait() returns (Python's FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class ReturnWhen { FirstCompleted, FirstException, AllCompleted };

/// wait()'s answer: the futures done and not done when it returned, each in input order.
template <class R>
struct WaitResult {
  std::vector<Future<R>> done;
  std::vector<Future<R>> not_done;
};

/// Python's as_completed(fs, timeout): yields each distinct future once, as it completes (those
/// already done first). The timeout counts from the call; when it passes, iteration throws
/// TimeoutError saying how many futures are unfinished. Iterate from one thread; the futures
/// themselves may complete on any.
template <class R>
class AsCompleted {
 public:
  AsCompleted(const std::vector<Future<R>>& futures,
              std::optional<std::chrono::steady_clock::duration> timeout)
      : futures_(detail::unique_futures(futures)),
        deadline_(detail::deadline_after(timeout)),
        queue_(detail::watch(futures_)) {}

  /// The next completed future, or nullopt once every future was yielded.
  std::optional<Future<R>> next() {
    if (yielded_ == futures_.size())
      return std::nullopt;
    auto index = queue_->pop(deadline_);
    if (!index) {
      throw TimeoutError(std::to_string(futures_.size() - yielded_) + " (of " +
                         std::to_string(futures_.size()) + ") futures unfinished");
    }
    ++yielded_;
    return futures_[*index];
  }

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using value_type = Future<R>;
    iterator() = default;
    explicit iterator(AsCompleted* owner) : owner_(owner) { ++*this; }
    const Future<R>& operator*() const { return *current_; }
    const Future<R>* operator->() const { return &*current_; }
    iterator& operator++() {
      current_ = owner_->next();
      if (!current_)
        owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.owner_ == nullptr;
    }

   private:
    AsCompleted* owner_ = nullptr;
    std::optional<Future<R>> current_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::vector<Future<R>> futures_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::shared_ptr<detail::CompletionQueue> queue_;
  std::size_t yielded_ = 0;
};

/// Python's as_completed without a timeout.
template <class R>
AsCompleted<R> as_completed(const std::vector<Future<R>>& futures) {
  return AsCompleted<R>(futures, std::nullopt);
}

/// Python's as_completed(fs, timeout).
template <class R, class Rep, class Period>
AsCompleted<R> as_completed(const std::vector<Future<R>>& futures,
                            std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<R>(futures, std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
}

/// Python's wait(fs, timeout, return_when): blocks until the condition holds or the timeout (if
/// any) passes, then splits the distinct futures into done and not_done. Never throws TimeoutError.
/// FirstException returns at the first future that finished with an exception, or when all are done.
template <class R>
WaitResult<R> wait(const std::vector<Future<R>>& futures,
                   std::optional<std::chrono::steady_clock::duration> timeout,
                   ReturnWhen return_when = ReturnWhen::AllCompleted) {
  auto unique = detail::unique_futures(futures);
  if (unique.empty())
    return {};  // nothing to wait for: every condition already holds (as Python)
  auto queue = detail::watch(unique);
  auto failed = [&](std::size_t i) {
    const auto& f = unique[i];
    return f.status() == FutureStatus::Finished && detail::FutureAccess::state(f)->error() != nullptr;
  };
  queue->wait_until(detail::deadline_after(timeout), [&](const std::deque<std::size_t>& finished) {
    switch (return_when) {
      case ReturnWhen::FirstCompleted:
        return !finished.empty();
      case ReturnWhen::FirstException:
        for (auto i : finished)
          if (failed(i))
            return true;
        return finished.size() == unique.size();
      case ReturnWhen::AllCompleted:
        return finished.size() == unique.size();
    }
    return true;
  });
  WaitResult<R> result;
  for (auto& f : unique)
    (f.done() ? result.done : result.not_done).push_back(std::move(f));
  return result;
}

/// Python's wait(fs, return_when=...) without a timeout.
template <class R>
WaitResult<R> wait(const std::vector<Future<R>>& futures, ReturnWhen return_when = ReturnWhen::AllCompleted) {
  return wait(futures, std::nullopt, return_when);
}

/// Python's wait(fs, timeout, return_when).
template <class R, class Rep, class Period>
WaitResult<R> wait(const std::vector<Future<R>>& futures, std::chrono::duration<Rep, Period> timeout,
                   ReturnWhen return_when = ReturnWhen::AllCompleted) {
  return wait(futures,
              std::optional<std::chrono::steady_clock::duration>(
                  std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)),
              return_when);
}

}  // namespace imgdl
