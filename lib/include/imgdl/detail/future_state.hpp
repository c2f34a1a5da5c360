#pragma once
// The shared state behind imgdl::Future: implementation, not API. Public templates (Future, Promise,
// the executor's tasks) need its definition; nothing here is meant to be called by users.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "imgdl/export.hpp"
#include "imgdl/future_status.hpp"

namespace imgdl {

template <class R>
class Future;

namespace detail {

class ExecutorCore;

/// The shared, type-independent part of a task and its future. All members are thread-safe;
/// the status is atomic so done()/running()/cancelled() never block.
class IMGDL_API StateBase {
 public:
  explicit StateBase(std::shared_ptr<ExecutorCore> core, bool stoppable);
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  virtual ~StateBase();

  /// Runs the task on a worker thread; never throws (the task's exception lands in the state).
  virtual void run() noexcept = 0;

  FutureStatus status() const noexcept { return status_of(word_.load(std::memory_order_acquire)); }
  bool done() const noexcept {
    const auto s = status();
    return s == FutureStatus::Finished || s == FutureStatus::Cancelled;
  }
  /// Pending → Cancelled (true, callbacks run); a running task is asked to stop instead (false).
  bool cancel();
  /// Asks a running task to stop; no-op for tasks that take no std::stop_token.
  void request_stop() noexcept;
  bool stop_requested() const noexcept { return stop_.stop_requested(); }
  /// Fails a still-pending task with `error` (a broken executor); false if it had left Pending.
  bool fail_pending(std::exception_ptr error);

  void wait() const;
  /// False if the deadline passed first.
  bool wait_until(std::chrono::steady_clock::time_point deadline) const;
  /// Runs `callback` once the state is done: right away, on this thread, if it already is.
  void add_callback(std::function<void()> callback);
  /// The task's exception, or null; throws CancelledError when cancelled. Only valid once done().
  std::exception_ptr error() const;

 protected:
  /// Pending → Running; false when the task was cancelled while queued.
  bool try_start() noexcept;
  /// Counts `error` as a callback error and hands it to the executor's on_callback_error (or, for a
  /// state no executor counts, to callback_failed()).
  void report_callback_error(std::exception_ptr error) noexcept;
  /// Where a done-callback's exception goes when no executor counts this state (a Promise's).
  virtual void callback_failed(std::exception_ptr) noexcept {}
  /// Running → Finished with a value already stored (error == nullptr) or with an exception.
  void finish(std::exception_ptr error) noexcept;
  std::stop_token stop_token() const noexcept { return stop_.get_token(); }

 private:
  // word_ holds the FutureStatus in its low byte and flags, so that completing a task that nobody
  // waits on and nobody watches costs one atomic exchange, no lock and no wake-up: watched_bit says
  // that done-callbacks or waiters are registered under mutex_, and the completer must take it;
  // callback_bit, set with it, that callbacks are, so the worker will run user code after the task.
  static constexpr std::uint32_t status_mask = 0xff;
  static constexpr std::uint32_t watched_bit = 0x100;
  static constexpr std::uint32_t callback_bit = 0x200;
  static constexpr FutureStatus status_of(std::uint32_t word) noexcept {
    return static_cast<FutureStatus>(word & status_mask);
  }
  static constexpr bool done_word(std::uint32_t word) noexcept {
    const auto s = status_of(word);
    return s == FutureStatus::Finished || s == FutureStatus::Cancelled;
  }
  /// from -> to, keeping the flags; on failure `from` holds the status seen.
  bool transition(FutureStatus& from, FutureStatus to) noexcept;
  /// Publishes the final status and wakes the waiters; returns the callbacks left to run.
  std::vector<std::function<void()>> publish(FutureStatus final_status, std::exception_ptr error) noexcept;
  void run_callbacks(std::vector<std::function<void()>>& callbacks) noexcept;
  void complete(FutureStatus final_status, std::exception_ptr error) noexcept;

  std::shared_ptr<ExecutorCore> core_;  // null for a Promise's state: no executor counts it
  mutable std::atomic<std::uint32_t> word_{static_cast<std::uint32_t>(FutureStatus::Pending)};
  mutable std::mutex mutex_;
  mutable std::condition_variable done_cv_;
  std::exception_ptr error_;  // written once, before the status turns done; read after
  std::vector<std::function<void()>> callbacks_;
  std::stop_source stop_;
};

template <class R>
struct ValueSlot {
  std::optional<R> value;
};
template <>
struct ValueSlot<void> {};

/// A state that also holds the task's value once it finished.
template <class R>
class ResultState : public StateBase {
 public:
  using StateBase::StateBase;
  ValueSlot<R> slot;
};

/// The state behind a Promise: counted by no executor; callback errors go to its handler.
template <class R>
class PromiseState final : public ResultState<R> {
 public:
  explicit PromiseState(std::function<void(std::exception_ptr)> on_callback_error)
      : ResultState<R>(nullptr, true), on_callback_error_(std::move(on_callback_error)) {}
  void run() noexcept override {}  // never queued on a worker
  bool start() noexcept { return this->try_start(); }
  void set(R value) noexcept {
    this->slot.value.emplace(std::move(value));
    this->finish(nullptr);
  }
  void fail(std::exception_ptr error) noexcept { this->finish(std::move(error)); }
  void report(std::exception_ptr error) noexcept { this->report_callback_error(std::move(error)); }
  std::stop_token token() const noexcept { return this->stop_token(); }

 private:
  void callback_failed(std::exception_ptr error) noexcept override {
    if (on_callback_error_)
      on_callback_error_(std::move(error));
  }
  std::function<void(std::exception_ptr)> on_callback_error_;
};

template <class R>
struct ResultRef {
  using type = const R&;
};
template <>
struct ResultRef<void> {
  using type = void;
};

template <class F, class... Args>
inline constexpr bool takes_stop_token_v = std::is_invocable_v<F, std::stop_token, Args...>;

template <class F, class... Args>
struct TaskResult {
  using type = std::invoke_result_t<F, Args...>;
};
template <class F, class... Args>
requires takes_stop_token_v<F, Args...>
struct TaskResult<F, Args...> {
  using type = std::invoke_result_t<F, std::stop_token, Args...>;
};

/// What submit(fn, args...) returns a Future of: fn's result, decayed; fn may take a leading
/// std::stop_token that the executor supplies.
template <class F, class... Args>
using task_result_t = std::remove_cvref_t<typename TaskResult<std::decay_t<F>, std::decay_t<Args>...>::type>;

/// The library's own way into a Future (map, wait, as_completed, Promise, the Downloader): its state
/// and a single consumer's move of the value stay out of the public API.
struct FutureAccess {
  template <class R>
  static Future<R> make(std::shared_ptr<ResultState<R>> state) {
    return Future<R>(std::move(state));
  }
  template <class R>
  static const std::shared_ptr<ResultState<R>>& state(const Future<R>& future) noexcept {
    return future.state_;
  }
  /// Moves the value out; for a single consumer that owns the only handle.
  template <class R>
  static R take(Future<R>& future) {
    return future.take();
  }
};

}  // namespace detail

}  // namespace imgdl
