#pragma once
// imgdl::ThreadPoolExecutor: Python's concurrent.futures.ThreadPoolExecutor in C++ (submit, map,
// shutdown, lazily started workers that are reused while idle, initializer, thread names), plus
// cooperative cancellation of running tasks through std::stop_token and live counts.

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "imgdl/detail/map_source.hpp"
#include "imgdl/detail/task.hpp"
#include "imgdl/export.hpp"
#include "imgdl/future.hpp"

namespace imgdl {

/// The executor can no longer run tasks because a worker's initializer threw (Python's
/// BrokenThreadPool). Pending futures fail with it and submit() throws it.
class IMGDL_API BrokenExecutor : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// submit() after shutdown(): Python's "cannot schedule new futures after shutdown".
class IMGDL_API ExecutorShutdownError : public std::runtime_error {
 public:
  ExecutorShutdownError() : std::runtime_error("cannot schedule new futures after shutdown") {}
};

/// How a ThreadPoolExecutor is set up. All fields are read once, by the constructor.
struct ExecutorOptions {
  /// Most threads ever started; unset means Python's default, min(32, hardware threads + 4).
  /// 0 makes the constructor throw std::invalid_argument.
  std::optional<std::size_t> max_workers;
  /// Workers are named "<prefix>_<N>" (N from 0), cut to the 15 bytes Linux keeps in
  /// /proc/self/task/*/comm. Empty means "imgdl".
  std::string thread_name_prefix;
  /// Runs once at the start of every worker thread, before its first task. If it throws, the
  /// executor is broken: see BrokenExecutor.
  std::function<void()> initializer;
  /// Receives exceptions thrown by done-callbacks, on the thread that ran the callback. Must be
  /// thread-safe. Whether set or not, such errors are counted in ExecutorStats::callback_errors.
  std::function<void(std::exception_ptr)> on_callback_error;
  /// Linux: each worker switches itself to the SCHED_BATCH policy when it starts, before the
  /// initializer (same nice value and CPU share; no privilege needed; a refusal is ignored; no effect
  /// elsewhere). A woken SCHED_BATCH thread does not preempt the running one, so a thread submitting
  /// a burst keeps its core instead of losing it to every worker it wakes; with more workers than
  /// cores, bursts of short tasks may run faster (bench/README.md). The price: when no core is
  /// idle, a worker woken by a task or by I/O inside one waits for the running thread's time
  /// slice, so latency-sensitive tasks (the Downloader's transfer loops) should leave it off.
  bool batch_scheduling = false;
  /// How long an idle worker (one at a time) keeps looking for a task, and a thread waiting for a
  /// Future (result(), exception(), with or without a timeout; map()) for the result, before it
  /// sleeps, never past a timeout; it yields its core between
  /// looks. A task submitted, or a result ready, within that time costs no wake-up: no futex call,
  /// and no return from idle for a core that went idle (tens of microseconds in a VM), so round
  /// trips (submit, then result()) run many times faster, and while the polling worker has its core
  /// a burst of submits wakes nobody. A polling worker that loses its core (more runnable threads
  /// than cores) is no longer counted on, and a waiter that loses its core stops polling, as all
  /// waiters do for a while after: a loaded machine wakes a sleeping thread sooner than it gives a
  /// polling one its core back. Each idle spell costs at most this much CPU. Zero: sleep at once.
  std::chrono::microseconds idle_spin{50};
};

/// A snapshot of live counts, for progress displays. Each count is read atomically, but the set is
/// not one consistent instant: a task may be seen moving between two counts.
struct ExecutorStats {
  std::size_t pending = 0;          ///< queued, not started, not cancelled
  std::size_t running = 0;          ///< taken by a worker and executing now, or its done-callbacks
  std::size_t completed = 0;        ///< finished, with a value or an exception (and in `running`
                                    ///< while its done-callbacks run)
  std::size_t cancelled = 0;        ///< cancelled before running, or stopped on request
  std::size_t workers = 0;          ///< threads started so far (never more than max_workers)
  std::size_t callback_errors = 0;  ///< done-callbacks that threw
};

/// Options of ThreadPoolExecutor::map.
struct MapOptions {
  /// Deadline for the whole iteration, counted from the call to map() (as Python).
  std::optional<std::chrono::steady_clock::duration> timeout;
  /// 0: submit every item at once (Python's default). N > 0: at most N items are submitted and not
  /// yet consumed at any time, so an endless or huge range uses bounded memory (Python 3.14).
  std::size_t buffersize = 0;
};

template <class R>
class MapResults;

/// A pool of worker threads running submitted callables, with Python's ThreadPoolExecutor contract.
///
/// Threading: every member function is thread-safe and may be called from any thread, including
/// from inside a task. Destruction runs shutdown(true) (the RAII form of Python's `with` block):
/// it waits for queued and running tasks. Do not destroy the executor from one of its own tasks.
/// The executor is neither copyable nor movable: futures and workers refer to it.
class IMGDL_API ThreadPoolExecutor {
 public:
  /// Python's defaults: max_workers = min(32, hardware threads + 4).
  ThreadPoolExecutor();
  /// Throws std::invalid_argument when max_workers is 0.
  explicit ThreadPoolExecutor(std::size_t max_workers);
  /// Throws std::invalid_argument when options.max_workers is 0.
  explicit ThreadPoolExecutor(ExecutorOptions options);
  ~ThreadPoolExecutor();
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  /// Python's default worker count: min(32, hardware threads + 4).
  static std::size_t default_max_workers() noexcept;

  /// Schedules fn(args...) and returns its Future. fn and args are decay-copied (moved when given as
  /// rvalues), so move-only callables and arguments work. If fn's first parameter is a
  /// std::stop_token, the task receives one that turns stop_requested() on Future::cancel() while
  /// running, or on shutdown(..., cancel_running = true).
  /// A worker thread is started only when no worker is idle and fewer than max_workers exist.
  /// Throws ExecutorShutdownError after shutdown(), BrokenExecutor once broken.
  template <class F, class... Args>
  [[nodiscard]] Future<detail::task_result_t<F, Args...>> submit(F&& fn, Args&&... args) {
    using R = detail::task_result_t<F, Args...>;
    auto task = std::make_shared<detail::Task<R, std::decay_t<F>, std::decay_t<Args>...>>(
        core_, std::forward<F>(fn), std::forward<Args>(args)...);
    std::shared_ptr<detail::ResultState<R>> state = task;
    enqueue(std::move(task));
    return detail::FutureAccess::make<R>(std::move(state));
  }

  /// Python's map(fn, iterable, timeout, buffersize): runs fn on every element of `range` and returns
  /// a lazily consumed range of the results in input order. Iterating blocks for each result; a task's
  /// exception is rethrown when its position is reached, and the futures after it are cancelled, as
  /// they are when the results object is destroyed early. A MapOptions::timeout counts from this call
  /// and throws TimeoutError. `range` is held by reference if it is an lvalue (it must outlive the
  /// iteration) and moved in otherwise. This executor must outlive the returned object.
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto map(F&& fn, Range&& range, MapOptions options = {});

  /// Python's shutdown(wait, cancel_futures), plus cancel_running. Idempotent; after it, submit()
  /// throws. cancel_futures cancels every task still queued; cancel_running asks running tasks to
  /// stop through their std::stop_token. wait blocks until every worker has exited; from inside a
  /// task it waits for the other workers and does not deadlock.
  void shutdown(bool wait = true, bool cancel_futures = false, bool cancel_running = false);

  /// Live counts. Thread-safe, never blocks on tasks.
  ExecutorStats stats() const noexcept;
  /// The limit on worker threads.
  std::size_t max_workers() const noexcept;

 private:
  void enqueue(std::shared_ptr<detail::StateBase> task);

  std::shared_ptr<detail::ExecutorCore> core_;
};

/// The results of ThreadPoolExecutor::map, consumed once, in input order. Single-threaded: iterate
/// it from one thread. Destroying it cancels the tasks whose results were not consumed.
template <class R>
class MapResults {
 public:
  /// map() over a void function yields std::monostate for each finished call.
  using value_type = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

  MapResults(std::unique_ptr<detail::MapSource<R>> source, MapOptions options)
      : source_(std::move(source)), buffersize_(options.buffersize) {
    if (options.timeout)
      deadline_ = std::chrono::steady_clock::now() + *options.timeout;
    try {
      while (buffersize_ == 0 || in_flight_.size() < buffersize_) {
        auto next = source_->submit_next();
        if (!next) {
          source_.reset();
          break;
        }
        in_flight_.push_back(std::move(*next));
      }
    } catch (...) {
      cancel_all();
      throw;
    }
  }
  MapResults(MapResults&&) noexcept = default;
  MapResults& operator=(MapResults&&) noexcept = default;
  ~MapResults() { cancel_all(); }

  /// The next result, or nullopt at the end. Rethrows a task's exception (then the rest is
  /// cancelled) and throws TimeoutError past the deadline.
  std::optional<value_type> next() {
    if (in_flight_.empty())
      return std::nullopt;
    Future<R> head = std::move(in_flight_.front());
    in_flight_.pop_front();
    try {
      std::optional<value_type> value;
      if (deadline_ && !detail::FutureAccess::state(head)->wait_until(*deadline_)) {
        head.cancel();
        throw TimeoutError("map() did not finish within the timeout");
      }
      if constexpr (std::is_void_v<R>) {
        head.result();
        value.emplace();
      } else {
        value.emplace(detail::FutureAccess::take(head));
      }
      refill();
      return value;
    } catch (...) {
      cancel_all();
      throw;
    }
  }

  /// Submitted and not yet consumed; never more than MapOptions::buffersize when that is set.
  std::size_t in_flight() const noexcept { return in_flight_.size(); }

  /// An input iterator over next(); `for (auto& v : executor.map(...))` works.
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using value_type = MapResults::value_type;

    iterator() = default;
    explicit iterator(MapResults* owner) : owner_(owner) { ++*this; }
    value_type& operator*() const { return *owner_->current_; }
    value_type* operator->() const { return &*owner_->current_; }
    iterator& operator++() {
      owner_->current_ = owner_->next();
      if (!owner_->current_)
        owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.owner_ == nullptr;
    }

   private:
    MapResults* owner_ = nullptr;
  };

  /// Starts consuming; call once.
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  void refill() {
    if (!source_)
      return;
    while (buffersize_ != 0 && in_flight_.size() < buffersize_) {
      auto next = source_->submit_next();
      if (!next) {
        source_.reset();
        return;
      }
      in_flight_.push_back(std::move(*next));
    }
  }
  void cancel_all() noexcept {
    for (auto& f : in_flight_)
      detail::FutureAccess::state(f)->cancel();
    in_flight_.clear();
    source_.reset();
  }

  std::unique_ptr<detail::MapSource<R>> source_;
  std::size_t buffersize_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::deque<Future<R>> in_flight_;
  std::optional<value_type> current_;
};

template <class F, std::ranges::input_range Range>
auto ThreadPoolExecutor::map(F&& fn, Range&& range, MapOptions options) {
  using View = std::views::all_t<Range>;
  using Item = std::ranges::range_reference_t<View>;
  using Fn = std::decay_t<F>;
  using R = detail::task_result_t<decltype(detail::map_call(std::shared_ptr<Fn>())), std::decay_t<Item>>;
  auto source = std::make_unique<detail::RangeMapSource<R, Fn, View, ThreadPoolExecutor>>(
      *this, std::make_shared<Fn>(std::forward<F>(fn)), std::views::all(std::forward<Range>(range)));
  return MapResults<R>(std::move(source), options);
}

}  // namespace imgdl
