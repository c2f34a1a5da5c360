#pragma once
// Where ThreadPoolExecutor::map pulls its next item from. Implementation, not API.

#include <memory>
#include <optional>
#include <ranges>

#include "imgdl/detail/task.hpp"
#include "imgdl/future.hpp"

namespace imgdl {

namespace detail {

/// Where map() pulls its next item from; type-erased so MapResults<R> does not carry the range type.
template <class R>
class MapSource {
 public:
  virtual ~MapSource() = default;
  /// Submits the next item; nullopt when the range is exhausted.
  virtual std::optional<Future<R>> submit_next() = 0;
};

/// map()'s source over a range: submits fn(item) for the next item on `executor`.
template <class R, class F, class View, class Executor>
class RangeMapSource final : public MapSource<R> {
 public:
  RangeMapSource(Executor& executor, std::shared_ptr<F> fn, View view)
      : executor_(executor), fn_(std::move(fn)), view_(std::move(view)), it_(std::ranges::begin(view_)) {}

  std::optional<Future<R>> submit_next() override {
    if (it_ == std::ranges::end(view_))
      return std::nullopt;
    auto future = executor_.submit(map_call(fn_), *it_);
    ++it_;
    return future;
  }

 private:
  Executor& executor_;
  std::shared_ptr<F> fn_;  // shared with running tasks, which may outlive the MapResults
  View view_;
  std::ranges::iterator_t<View> it_;
};

}  // namespace detail

}  // namespace imgdl
