#pragma once
// imgdl::Future<R>: the result of a task submitted to imgdl::ThreadPoolExecutor, with the contract of
// Python's concurrent.futures.Future (result, exception, done, running, cancelled, cancel,
// add_done_callback), plus cooperative stop of running tasks through std::stop_token.

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "imgdl/detail/future_state.hpp"
#include "imgdl/future_status.hpp"

namespace imgdl {

/// A handle to the eventual result of a submitted task. Cheap to copy: copies share one state, like
/// Python futures passed around. Every member is thread-safe and may be called from any thread,
/// including from inside tasks and done-callbacks. A default-constructed Future is empty (valid()
/// is false) and every other member throws std::logic_error on it.
template <class R>
class [[nodiscard]] Future {
 public:
  using value_type = R;

  Future() = default;

  /// True if this handle refers to a task.
  bool valid() const noexcept { return state_ != nullptr; }

  /// Blocks until done, then returns the value (a reference into the shared state, valid as long as
  /// any handle lives) or rethrows the task's exception; throws CancelledError if cancelled.
  typename detail::ResultRef<R>::type result() const {
    checked().wait();
    return value();
  }
  /// As result(), but throws TimeoutError if the task is not done within `timeout`.
  template <class Rep, class Period>
  typename detail::ResultRef<R>::type result(std::chrono::duration<Rep, Period> timeout) const {
    wait_or_throw(timeout);
    return value();
  }

  /// Blocks until done; returns the task's exception, or null if it returned normally. Throws
  /// CancelledError if cancelled (Python does the same).
  std::exception_ptr exception() const {
    checked().wait();
    return state_->error();
  }
  /// As exception(), but throws TimeoutError if the task is not done within `timeout`.
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    wait_or_throw(timeout);
    return state_->error();
  }

  /// Finished or cancelled. Never blocks.
  bool done() const { return checked().done(); }
  /// Currently executing on a worker. Never blocks.
  bool running() const { return checked().status() == FutureStatus::Running; }
  /// Cancelled while pending, or stopped on request by throwing CancelledError. Never blocks.
  bool cancelled() const { return checked().status() == FutureStatus::Cancelled; }
  /// The current status. Never blocks.
  FutureStatus status() const { return checked().status(); }

  /// Python's cancel(): a pending task is cancelled and true is returned (also when it already was).
  /// A running task cannot be cancelled, so false is returned, but beyond Python the task is asked
  /// to stop: if it takes a std::stop_token, that token's stop_requested() turns true.
  bool cancel() const { return checked().cancel(); }
  /// True once a stop was requested for this task (by cancel() or a shutdown that asked for it).
  bool stop_requested() const { return checked().stop_requested(); }

  /// Calls `callback(*this)` once the future is done, on the thread that completes it (a worker, or
  /// whoever cancels it), or right away on this thread if it is already done. Callbacks run in the
  /// order added. A callback that throws is reported to the executor's on_callback_error handler and
  /// counted in its stats; it never kills a worker nor stops the other callbacks.
  void add_done_callback(std::function<void(const Future&)> callback) const {
    checked().add_callback([self = *this, cb = std::move(callback)] { cb(self); });
  }

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }

 private:
  friend struct detail::FutureAccess;
  explicit Future(std::shared_ptr<detail::ResultState<R>> state) : state_(std::move(state)) {}

  const std::shared_ptr<detail::ResultState<R>>& state() const noexcept { return state_; }

  /// Moves the value out; for single consumers such as map() that own the only handle.
  R take() requires(!std::is_void_v<R>) {
    checked().wait();
    (void)value();  // rethrows the task's exception, if any
    return std::move(*state_->slot.value);
  }

  detail::ResultState<R>& checked() const {
    if (!state_)
      throw std::logic_error("imgdl::Future has no state");
    return *state_;
  }
  template <class Rep, class Period>
  void wait_or_throw(std::chrono::duration<Rep, Period> timeout) const {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
    if (!checked().wait_until(deadline))
      throw TimeoutError("the future did not finish within the timeout");
  }
  typename detail::ResultRef<R>::type value() const {
    if (auto error = state_->error())
      std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>)
      return *state_->slot.value;
  }

  std::shared_ptr<detail::ResultState<R>> state_;
};

/// The producing side of a Future whose work runs outside any executor, driven by an engine of its own,
/// as Python drives a bare concurrent.futures.Future through set_running_or_notify_cancel() and
/// set_result(). The Downloader's futures are made this way. Not copyable; movable. Thread-safe like
/// Future. Non-void R only.
template <class R>
class Promise {
 public:
  /// `on_callback_error` receives exceptions thrown by the future's done-callbacks (on the thread
  /// that ran them); without one they are dropped.
  explicit Promise(std::function<void(std::exception_ptr)> on_callback_error = {})
      : state_(std::make_shared<detail::PromiseState<R>>(std::move(on_callback_error))) {}

  /// The future this promise completes; may be called any number of times.
  [[nodiscard]] Future<R> get_future() const { return detail::FutureAccess::make<R>(state_); }
  /// Pending -> Running, before the work starts; false if the future was cancelled first (then drop
  /// the work and do not call the setters).
  [[nodiscard]] bool set_running_or_notify_cancel() noexcept { return state_->start(); }
  /// Running -> Finished with `value`; runs the done-callbacks on this thread.
  void set_result(R value) noexcept { state_->set(std::move(value)); }
  /// Running -> Finished with an exception, which result() rethrows.
  void set_exception(std::exception_ptr error) noexcept { state_->fail(std::move(error)); }
  /// Hands an error that no result can carry (the future was cancelled) to the callback-error handler.
  void report_error(std::exception_ptr error) noexcept { state_->report(std::move(error)); }
  /// Turns stop_requested() on Future::cancel() while running.
  std::stop_token stop_token() const noexcept { return state_->token(); }
  /// Future::cancel() of a pending future, from the engine's side (it will never run).
  void cancel() const { state_->cancel(); }
  /// True once the future asked the work to stop.
  bool stop_requested() const noexcept { return state_->stop_requested(); }

 private:
  std::shared_ptr<detail::PromiseState<R>> state_;
};

}  // namespace imgdl
