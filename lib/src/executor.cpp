#include "imgdl/executor.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "idle_poll.hpp"

namespace imgdl {
namespace detail {
namespace {

/// The queue's mutex is held for a few instructions, so a thread that finds it taken tries again a
/// while before it sleeps on it: std::mutex (glibc) sleeps at once, which costs both threads a futex
/// call. 100 tries is glibc's own default for its adaptive mutexes (glibc.pthread.mutex_spin_count).
void lock_briefly_spinning(std::unique_lock<std::mutex>& lock) {
  for (int i = 0; i < 100; ++i) {
    if (lock.try_lock())
      return;
    cpu_relax();
  }
  lock.lock();
}

}  // namespace

/// Everything the workers, the futures and the executor handle share. Futures keep it alive through
/// their state, so a future may outlive its executor.
class ExecutorCore {
 public:
  explicit ExecutorCore(ExecutorOptions options)
      : max_workers_(options.max_workers.value_or(ThreadPoolExecutor::default_max_workers())),
        prefix_(options.thread_name_prefix.empty() ? "imgdl" : std::move(options.thread_name_prefix)),
        initializer_(std::move(options.initializer)),
        on_callback_error_(std::move(options.on_callback_error)),
        batch_scheduling_(options.batch_scheduling),
        idle_poll_(options.idle_spin) {
    if (max_workers_ == 0)
      throw std::invalid_argument("max_workers must be greater than 0");
  }

  void enqueue(const std::shared_ptr<ExecutorCore>& self, std::shared_ptr<StateBase> task) {
    std::unique_lock lock(mutex_, std::defer_lock);
    lock_briefly_spinning(lock);
    if (broken_)
      throw BrokenExecutor(broken_message);
    if (shutdown_)
      throw ExecutorShutdownError();
    queue_.push_back(std::move(task));
    queued_.store(queue_.size(), std::memory_order_relaxed);
    pending_.fetch_add(1, std::memory_order_relaxed);
    if (auto error = start_worker_if_needed(self); error && threads_.empty()) {
      // No thread (e.g. EAGAIN): existing workers would still run the task; with none, nobody would.
      queue_.pop_back();
      queued_.store(queue_.size(), std::memory_order_relaxed);
      pending_.fetch_sub(1, std::memory_order_relaxed);
      std::rethrow_exception(error);
    }
    const bool wake = take_wake_turn();
    lock.unlock();
    if (wake)
      work_cv_.notify_one();
  }

  /// A done-callback was added while its task completed, after the worker had counted itself idle:
  /// it counts as busy again while the callback runs, and the tasks submitted meanwhile, which may
  /// have counted on it, get the thread or the wake-up they would have had.
  void worker_busy_again(const std::shared_ptr<ExecutorCore>& self) noexcept {
    std::unique_lock lock(mutex_);
    running_.fetch_add(1, std::memory_order_relaxed);
    if (!shutdown_ && !broken_)
      (void)start_worker_if_needed(self);  // a failure leaves the other workers to take them
    const bool wake = take_wake_turn();
    lock.unlock();
    if (wake)
      work_cv_.notify_one();
  }

  void shutdown(bool wait, bool cancel_futures, bool cancel_running) {
    std::deque<std::shared_ptr<StateBase>> cancelled;
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
      if (cancel_futures) {
        cancelled.swap(queue_);
        queued_.store(0, std::memory_order_relaxed);
      }
      if (cancel_running) {
        for (auto* running : running_tasks_)
          if (running)
            running->request_stop();
      }
    }
    for (auto& task : cancelled)
      task->cancel();
    work_cv_.notify_all();
    if (!wait)
      return;

    if (current_worker_core == this) {
      // Inside one of our own tasks: joining ourselves would deadlock, so wait for every other worker
      // to exit (or to be inside shutdown() too).
      std::unique_lock lock(mutex_);
      ++waiting_workers_;
      exit_cv_.notify_all();
      exit_cv_.wait(lock, [&] { return live_workers_ == waiting_workers_; });
      --waiting_workers_;
      return;
    }
    std::lock_guard join_lock(join_mutex_);
    // No thread is added once shutdown_ is set, so the vector is stable here.
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }

  /// For the destructor: after shutdown(true), a worker destroying the executor detaches itself.
  void release_threads() {
    std::lock_guard join_lock(join_mutex_);
    for (auto& t : threads_) {
      if (!t.joinable())
        continue;
      if (t.get_id() == std::this_thread::get_id())
        t.detach();
      else
        t.join();
    }
  }

  ExecutorStats stats() const noexcept {
    ExecutorStats s;
    s.pending = pending_.load(std::memory_order_relaxed);
    s.running = running_.load(std::memory_order_relaxed);
    s.completed = completed_.load(std::memory_order_relaxed);
    s.cancelled = cancelled_.load(std::memory_order_relaxed);
    s.callback_errors = callback_errors_.load(std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    s.workers = threads_.size();
    return s;
  }
  std::size_t max_workers() const noexcept { return max_workers_; }
  IdlePoll& idle_poll() noexcept { return idle_poll_; }

  // running_ counts workers busy with a task taken from the queue: running it, or its done-callbacks.
  // It rises under mutex_ (when a worker pops a task, or worker_busy_again()), so enqueue() never
  // mistakes a worker about to run a task for an idle one, and drops without it. A popped task that
  // was cancelled while queued never starts and drops it right away.
  void task_started() noexcept { pending_.fetch_sub(1, std::memory_order_relaxed); }
  void task_skipped() noexcept { running_.fetch_sub(1, std::memory_order_relaxed); }
  void task_done(bool was_cancelled) noexcept {
    (was_cancelled ? cancelled_ : completed_).fetch_add(1, std::memory_order_relaxed);
  }
  /// The worker is done with its task, done-callbacks included: enqueue() may count on it.
  void worker_idle() noexcept { running_.fetch_sub(1, std::memory_order_relaxed); }
  void pending_cancelled() noexcept {
    pending_.fetch_sub(1, std::memory_order_relaxed);
    cancelled_.fetch_add(1, std::memory_order_relaxed);
  }
  void pending_failed() noexcept {
    pending_.fetch_sub(1, std::memory_order_relaxed);
    completed_.fetch_add(1, std::memory_order_relaxed);
  }
  void report_callback_error(std::exception_ptr error) noexcept {
    callback_errors_.fetch_add(1, std::memory_order_relaxed);
    if (!on_callback_error_)
      return;
    try {
      on_callback_error_(error);
    } catch (...) {
      // The handler's own failure has nowhere left to go; the count above still records it.
    }
  }

  static constexpr const char* broken_message =
      "a thread initializer failed, the thread pool is not usable anymore";

 private:
  void worker_main(std::size_t index) {
    current_worker_core = this;
    name_thread(index);
    if (batch_scheduling_) {
#ifdef SCHED_BATCH
      // Priority 0 is the only one SCHED_BATCH takes; failure leaves the thread as it was.
      const sched_param param{};
      pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
#endif
    }
    if (initializer_) {
      try {
        initializer_();
      } catch (...) {
        {
          std::lock_guard lock(mutex_);
          --initializing_;
        }
        break_pool(std::current_exception());
        worker_exit();
        return;
      }
    }
    std::shared_ptr<StateBase> current;
    std::unique_lock lock(mutex_);
    --initializing_;
    for (;;) {
      bool spun = false;
      while (queue_.empty()) {
        if (shutdown_ || broken_) {
          current.reset();
          running_tasks_[index] = nullptr;
          lock.unlock();
          worker_exit();
          return;
        }
        if (!spun && spinning_ == 0 && idle_poll_.enabled()) {
          // One idle worker at a time polls before sleeping: a task submitted meanwhile then needs no
          // wake-up, which is a futex call for the submitter and, on an idle core, a slow exit
          // from the idle state. While it has its core, enqueue() wakes nobody (take_wake_turn).
          spun = true;
          ++spinning_;
          lock.unlock();
          idle_poll_.poll_for_work([this] { return queued_.load(std::memory_order_relaxed) != 0; });
          lock_briefly_spinning(lock);
          --spinning_;
          continue;
        }
        ++sleeping_;
        work_cv_.wait(lock);
        --sleeping_;
        if (signalled_ > 0)
          --signalled_;  // a spurious wakeup may take another's turn: harmless
      }
      // `current` keeps the task alive while it is listed in running_tasks_ (shutdown may stop it).
      // The previous task is released after unlocking: freeing it must not lengthen the critical
      // section every submit and every worker contend for.
      auto previous = std::exchange(current, std::move(queue_.front()));
      queue_.pop_front();
      queued_.store(queue_.size(), std::memory_order_relaxed);
      running_.fetch_add(1, std::memory_order_relaxed);
      running_tasks_[index] = current.get();
      // Tasks remain queued: wake the next sleeper from here, not from the submitting thread.
      const bool wake = take_wake_turn();
      lock.unlock();
      if (wake)
        work_cv_.notify_one();
      previous.reset();
      current->run();
      lock_briefly_spinning(lock);
    }
  }

  /// Under mutex_. Python >= 3.8: each idle worker takes one queued task, so a thread is started
  /// only for tasks beyond what the idle workers will take (while max_workers allows). A worker is
  /// idle once its task and the task's done-callbacks have run; without callbacks, from before the
  /// future turns done, not only once it is back at work_cv_: otherwise a caller that submits right
  /// after result() returns races the worker back to the queue and starts threads that are not
  /// needed. Returns the error when a thread could not be started (e.g. EAGAIN).
  std::exception_ptr start_worker_if_needed(const std::shared_ptr<ExecutorCore>& self) noexcept {
    if (threads_.size() >= max_workers_ ||
        queue_.size() <= threads_.size() - running_.load(std::memory_order_relaxed))
      return nullptr;
    const std::size_t index = threads_.size();
    try {
      running_tasks_.resize(index + 1, nullptr);
      threads_.emplace_back([core = self, index] { core->worker_main(index); });
    } catch (...) {
      running_tasks_.resize(index);
      return std::current_exception();
    }
    ++live_workers_;
    ++initializing_;
    return nullptr;
  }

  /// Under mutex_: whether to signal a sleeping worker (and count it signalled). Never while the
  /// polling worker has its core: it takes the next task, and a worker that pops a task signals
  /// for those left. Otherwise only for queued tasks beyond those that awake workers not running a
  /// task will take: the signalled ones not yet awake, and those done with their task (callbacks
  /// included) on their way back; each looks at the queue before it sleeps. A worker running a task
  /// is never counted, since its task may block. A signal is a futex wake-up that, on a loaded
  /// machine, preempts the thread that sends it; a woken worker keeps taking tasks while any are
  /// queued. A thread still in its initializer is not counted either: that may take long.
  bool take_wake_turn() noexcept {
    if (sleeping_ <= signalled_)
      return false;
    if (spinning_ > 0 && idle_poll_.on_core())
      return false;
    // A poller that lost its core counts for nothing: nobody would wake it. running_ drops outside
    // mutex_: a stale, higher value only makes this wake one more worker.
    const std::size_t running = running_.load(std::memory_order_relaxed);
    const std::size_t not_asleep = threads_.size() - (sleeping_ - signalled_) - spinning_ - initializing_;
    const std::size_t awake_idle = not_asleep > running ? not_asleep - running : 0;
    if (queue_.size() <= awake_idle)
      return false;
    ++signalled_;
    return true;
  }

  void name_thread(std::size_t index) const {
    // Linux keeps 15 bytes of a thread's name; pthread_setname_np fails outright on longer ones.
    std::string name = prefix_ + "_" + std::to_string(index);
    if (name.size() > 15)
      name.resize(15);
    pthread_setname_np(pthread_self(), name.c_str());
  }

  void break_pool(std::exception_ptr cause) {
    std::string message = broken_message;
    try {
      std::rethrow_exception(cause);
    } catch (const std::exception& e) {
      message += std::string(": ") + e.what();
    } catch (...) {
    }
    std::deque<std::shared_ptr<StateBase>> pending;
    {
      std::lock_guard lock(mutex_);
      broken_ = true;
      pending.swap(queue_);
      queued_.store(0, std::memory_order_relaxed);
    }
    work_cv_.notify_all();
    const auto error = std::make_exception_ptr(BrokenExecutor(message));
    for (auto& task : pending)
      task->fail_pending(error);
  }

  void worker_exit() {
    {
      std::lock_guard lock(mutex_);
      --live_workers_;
    }
    exit_cv_.notify_all();
  }

  static thread_local ExecutorCore* current_worker_core;

  const std::size_t max_workers_;
  const std::string prefix_;
  const std::function<void()> initializer_;
  const std::function<void(std::exception_ptr)> on_callback_error_;
  const bool batch_scheduling_;
  IdlePoll idle_poll_;

  // What a submit and a pop touch under mutex_ shares its cache line.
  alignas(64) mutable std::mutex mutex_;
  std::atomic<std::size_t> queued_{0};  // queue_.size(), for the polling worker
  std::size_t sleeping_ = 0;            // workers waiting on work_cv_
  std::size_t signalled_ = 0;           // of those, notified and not yet awake
  std::condition_variable work_cv_;
  std::condition_variable exit_cv_;
  std::deque<std::shared_ptr<StateBase>> queue_;
  std::vector<std::thread> threads_;
  std::vector<StateBase*> running_tasks_;  // per worker index: the task it runs or last ran
  std::size_t spinning_ = 0;               // workers polling queued_ before they sleep
  std::size_t initializing_ = 0;           // workers started and not yet through the initializer
  std::size_t live_workers_ = 0;
  std::size_t waiting_workers_ = 0;
  bool shutdown_ = false;
  bool broken_ = false;
  std::mutex join_mutex_;

  alignas(64) std::atomic<std::size_t> pending_{0};
  alignas(64) std::atomic<std::size_t> running_{0};
  alignas(64) std::atomic<std::size_t> completed_{0};
  std::atomic<std::size_t> cancelled_{0};
  std::atomic<std::size_t> callback_errors_{0};
};

thread_local ExecutorCore* ExecutorCore::current_worker_core = nullptr;

// ---- StateBase ----

StateBase::StateBase(std::shared_ptr<ExecutorCore> core, bool stoppable)
    : core_(std::move(core)), stop_(stoppable ? std::stop_source() : std::stop_source(std::nostopstate)) {}

StateBase::~StateBase() = default;

bool StateBase::transition(FutureStatus& from, FutureStatus to) noexcept {
  auto word = word_.load(std::memory_order_relaxed);
  for (;;) {
    if (status_of(word) != from) {
      from = status_of(word);
      return false;
    }
    if (word_.compare_exchange_weak(word, (word & ~status_mask) | static_cast<std::uint32_t>(to),
                                    std::memory_order_acq_rel, std::memory_order_relaxed))
      return true;
  }
}

bool StateBase::try_start() noexcept {
  auto expected = FutureStatus::Pending;
  if (!transition(expected, FutureStatus::Running)) {
    if (core_)
      core_->task_skipped();
    return false;
  }
  if (core_)
    core_->task_started();
  return true;
}

void StateBase::report_callback_error(std::exception_ptr error) noexcept {
  if (core_)
    core_->report_callback_error(std::move(error));
  else
    callback_failed(std::move(error));
}

bool StateBase::cancel() {
  auto expected = FutureStatus::Pending;
  if (transition(expected, FutureStatus::Cancelled)) {
    if (core_)
      core_->pending_cancelled();
    complete(FutureStatus::Cancelled, nullptr);
    return true;
  }
  if (expected == FutureStatus::Running)
    request_stop();
  return expected == FutureStatus::Cancelled;
}

void StateBase::request_stop() noexcept {
  stop_.request_stop();
}

bool StateBase::fail_pending(std::exception_ptr error) {
  // Claim the task first (a worker's try_start may race), and publish Finished only once the error is
  // stored, so nobody sees a finished future without its exception.
  auto expected = FutureStatus::Pending;
  if (!transition(expected, FutureStatus::Running))
    return false;
  if (core_)
    core_->pending_failed();
  complete(FutureStatus::Finished, std::move(error));
  return true;
}

void StateBase::finish(std::exception_ptr error) noexcept {
  auto final_status = FutureStatus::Finished;
  if (error && stop_.stop_requested()) {
    // A task asked to stop that answers with CancelledError ends cancelled, not failed.
    try {
      std::rethrow_exception(error);
    } catch (const CancelledError&) {
      final_status = FutureStatus::Cancelled;
      error = nullptr;
    } catch (...) {
    }
  }
  if (!core_) {
    complete(final_status, std::move(error));
    return;
  }
  core_->task_done(final_status == FutureStatus::Cancelled);
  // The worker counts as idle once its done-callbacks have run, as in Python: a callback may wait for
  // a task submitted meanwhile, which must then find a thread. Without callbacks it counts as idle
  // before the future turns done, so a caller that submits right after result() reuses it.
  const bool had_callbacks = (word_.load(std::memory_order_acquire) & callback_bit) != 0;
  if (!had_callbacks)
    core_->worker_idle();
  auto callbacks = publish(final_status, std::move(error));
  if (callbacks.empty()) {
    if (had_callbacks)
      core_->worker_idle();
    return;
  }
  if (!had_callbacks)
    core_->worker_busy_again(core_);  // a callback added while the task completed
  run_callbacks(callbacks);
  core_->worker_idle();
}

std::vector<std::function<void()>> StateBase::publish(FutureStatus final_status,
                                                      std::exception_ptr error) noexcept {
  // The caller holds a reference to this state, so waking the waiters after publishing is safe.
  if (error)
    error_ = std::move(error);  // a cancelled future is seen done before this: never write it then
  std::vector<std::function<void()>> callbacks;
  const auto before = word_.exchange(static_cast<std::uint32_t>(final_status), std::memory_order_acq_rel);
  if (!(before & watched_bit))
    return callbacks;
  // Whoever set watched_bit did so under mutex_ and registered its callback or wait there: taking the
  // mutex once makes both visible here.
  {
    std::lock_guard lock(mutex_);
    callbacks.swap(callbacks_);
  }
  done_cv_.notify_all();
  return callbacks;
}

void StateBase::complete(FutureStatus final_status, std::exception_ptr error) noexcept {
  auto callbacks = publish(final_status, std::move(error));
  run_callbacks(callbacks);
}

void StateBase::run_callbacks(std::vector<std::function<void()>>& callbacks) noexcept {
  for (auto& callback : callbacks) {
    try {
      callback();
    } catch (...) {
      report_callback_error(std::current_exception());
    }
  }
}

void StateBase::wait() const {
  if (done())
    return;
  if (core_ && core_->idle_poll().wait_for([this] { return done(); }))
    return;
  // A condition variable, not std::atomic::wait on word_: with the latter, executor_bench once hung
  // in result() with every worker asleep, after about a million round trips (not diagnosed further).
  std::unique_lock lock(mutex_);
  if (done_word(word_.fetch_or(watched_bit, std::memory_order_acq_rel)))
    return;
  done_cv_.wait(lock, [&] { return done(); });
}

bool StateBase::wait_until(std::chrono::steady_clock::time_point deadline) const {
  if (done())
    return true;
  if (core_) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (core_->idle_poll().wait_for([this] { return done(); },
                                    std::max<std::chrono::nanoseconds>(left, left.zero())))
      return true;
  }
  std::unique_lock lock(mutex_);
  // Set under mutex_: complete() then takes the mutex before notifying, so the wake-up is not lost.
  if (done_word(word_.fetch_or(watched_bit, std::memory_order_acq_rel)))
    return true;
  return done_cv_.wait_until(lock, deadline, [&] { return done(); });
}

void StateBase::add_callback(std::function<void()> callback) {
  {
    std::lock_guard lock(mutex_);
    if (!done_word(word_.fetch_or(watched_bit | callback_bit, std::memory_order_acq_rel))) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  try {
    callback();
  } catch (...) {
    report_callback_error(std::current_exception());
  }
}

std::exception_ptr StateBase::error() const {
  if (status() == FutureStatus::Cancelled)
    throw CancelledError();
  return error_;  // written before the status turned done, which the caller saw (acquire)
}

}  // namespace detail

// ---- ThreadPoolExecutor ----

ThreadPoolExecutor::ThreadPoolExecutor() : ThreadPoolExecutor(ExecutorOptions{}) {}

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : ThreadPoolExecutor(ExecutorOptions{.max_workers = max_workers}) {}

ThreadPoolExecutor::ThreadPoolExecutor(ExecutorOptions options)
    : core_(std::make_shared<detail::ExecutorCore>(std::move(options))) {}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  core_->shutdown(true, false, false);
  core_->release_threads();
}

std::size_t ThreadPoolExecutor::default_max_workers() noexcept {
  const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
  return std::min<std::size_t>(32, hardware + 4);
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures, bool cancel_running) {
  core_->shutdown(wait, cancel_futures, cancel_running);
}

ExecutorStats ThreadPoolExecutor::stats() const noexcept {
  return core_->stats();
}

std::size_t ThreadPoolExecutor::max_workers() const noexcept {
  return core_->max_workers();
}

void ThreadPoolExecutor::enqueue(std::shared_ptr<detail::StateBase> task) {
  core_->enqueue(core_, std::move(task));
}

}  // namespace imgdl
