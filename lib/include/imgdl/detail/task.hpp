#pragma once
// What the executor queues: a callable, its arguments and its future's state in one allocation.
// Implementation, not API.

#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "imgdl/detail/future_state.hpp"

namespace imgdl {

namespace detail {

/// A task: the callable, its arguments and the shared state, in one allocation.
template <class R, class F, class... Args>
class Task final : public ResultState<R> {
 public:
  template <class G, class... A>
  Task(std::shared_ptr<ExecutorCore> core, G&& fn, A&&... args)
      : ResultState<R>(std::move(core), takes_stop_token_v<F, Args...>),
        call_(std::in_place, std::forward<G>(fn), std::forward<A>(args)...) {}

  void run() noexcept override {
    if (!this->try_start())
      return;
    try {
      if constexpr (std::is_void_v<R>) {
        invoke();
      } else {
        this->slot.value.emplace(invoke());
      }
      call_.reset();  // release captured resources before waking waiters
      this->finish(nullptr);
    } catch (...) {
      call_.reset();
      this->finish(std::current_exception());
    }
  }

 private:
  decltype(auto) invoke() {
    return std::apply(
        [this](F& fn, Args&... args) -> decltype(auto) {
          if constexpr (takes_stop_token_v<F, Args...>) {
            return std::invoke(std::move(fn), this->stop_token(), std::move(args)...);
          } else {
            return std::invoke(std::move(fn), std::move(args)...);
          }
        },
        *call_);
  }

  std::optional<std::tuple<F, Args...>> call_;
};

/// The task map() submits per item: fn shared by every task, the item moved in.
template <class F>
auto map_call(std::shared_ptr<F> fn) {
  return [fn = std::move(fn)](auto&& item) -> decltype(auto) {
    return std::invoke(*fn, std::forward<decltype(item)>(item));
  };
}

}  // namespace detail

}  // namespace imgdl
