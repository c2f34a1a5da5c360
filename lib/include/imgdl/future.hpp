#pragma once
// imgdl::Future<R>: the result of a task submitted to imgdl::ThreadPoolExecutor, with the contract of
// Python's concurrent.futures.Future (result, exception, done, running, cancelled, cancel,
// add_done_callback), plus cooperative stop of running tasks through std::stop_token.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

namespace imgdl {

/// Thrown by Future::result(timeout), Future::exception(timeout), as_completed and map when a
/// deadline passes first. Python's concurrent.futures.TimeoutError.
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by Future::result() and Future::exception() of a cancelled future. A task that was asked to
/// stop (through its std::stop_token) may also throw it to end up cancelled rather than failed.
class CancelledError : public std::runtime_error {
 public:
  CancelledError() : std::runtime_error("the future was cancelled") {}
  using std::runtime_error::runtime_error;
};

/// The life of a future: Pending (queued) → Running → Finished, or Pending → Cancelled, or
/// Running → Cancelled when a task asked to stop throws CancelledError.
enum class FutureStatus : std::uint8_t { Pending, Running, Cancelled, Finished };

namespace detail {

class ExecutorCore;

/// The shared, type-independent part of a task and its future. All members are thread-safe;
/// the status is atomic so done()/running()/cancelled() never block.
class StateBase {
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
  // word_ holds the FutureStatus in its low byte and a flag, so that completing a task that nobody
  // waits on and nobody watches costs one atomic exchange, no lock and no wake-up: watched_bit says
  // that done-callbacks or waiters are registered under mutex_, and the completer must take it.
  static constexpr std::uint32_t status_mask = 0xff;
  static constexpr std::uint32_t watched_bit = 0x100;
  static constexpr FutureStatus status_of(std::uint32_t word) noexcept {
    return static_cast<FutureStatus>(word & status_mask);
  }
  static constexpr bool done_word(std::uint32_t word) noexcept {
    const auto s = status_of(word);
    return s == FutureStatus::Finished || s == FutureStatus::Cancelled;
  }
  /// from -> to, keeping the flags; on failure `from` holds the status seen.
  bool transition(FutureStatus& from, FutureStatus to) noexcept;
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

}  // namespace detail

/// A handle to the eventual result of a submitted task. Cheap to copy: copies share one state, like
/// Python futures passed around. Every member is thread-safe and may be called from any thread,
/// including from inside tasks and done-callbacks. A default-constructed Future is empty (valid()
/// is false) and every other member throws std::logic_error on it.
template <class R>
class Future {
 public:
  using value_type = R;

  Future() = default;
  explicit Future(std::shared_ptr<detail::ResultState<R>> state) : state_(std::move(state)) {}

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

  /// The shared state; for the library's own algorithms (map, wait, as_completed).
  const std::shared_ptr<detail::ResultState<R>>& state() const noexcept { return state_; }

  /// Moves the value out; for single consumers such as map() that own the only handle.
  R take() requires(!std::is_void_v<R>) {
    checked().wait();
    (void)value();  // rethrows the task's exception, if any
    return std::move(*state_->slot.value);
  }

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }

 private:
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
  [[nodiscard]] Future<R> get_future() const { return Future<R>(state_); }
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
