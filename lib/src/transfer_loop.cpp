#include "transfer_loop.hpp"

#include <pthread.h>

#include <cassert>
#include <string>

#include "observer_call.hpp"

namespace imgdl::detail {

namespace {

using Clock = std::chrono::steady_clock;

/// Names the worker while it runs a loop (top and /proc show which thread moves the bytes), and
/// gives it back its pool name afterwards.
class ThreadName {
 public:
  explicit ThreadName(const std::string& name) {
    if (pthread_getname_np(pthread_self(), saved_, sizeof saved_) != 0)
      saved_[0] = '\0';
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  }
  ~ThreadName() {
    if (saved_[0] != '\0')
      pthread_setname_np(pthread_self(), saved_);
  }
  ThreadName(const ThreadName&) = delete;
  ThreadName& operator=(const ThreadName&) = delete;

 private:
  char saved_[16] = {};
};

}  // namespace

TransferLoop::TransferLoop(const EngineContext& context, std::size_t number)
    : context_(context),
      options_(*context.options),
      number_(number),
      driver_(*context.settings, context.slots->slots(number)),
      // Under Resume a part file is opened before its request (for the Range), so a slot is reused
      // only once its URL is published: at most max_workers part files are open.
      scheduler_(*context.slots, number, options_.per_host, options_.on_exists != OnExists::Resume,
                 Clock::now, context.hosts) {}

void TransferLoop::enqueue(JobPtr job) {
  bool was_empty = false;
  {
    std::lock_guard lock(queue_mutex_);
    // A done-callback or observer submitting while the destructor drains the loop: refuse it, as an
    // executor refuses work after shutdown, rather than drop it unanswered.
    if (closing_)
      throw ExecutorShutdownError();
    unfinished_.fetch_add(1, std::memory_order_relaxed);
    was_empty = incoming_.empty();
    incoming_.push_back(std::move(job));
  }
  // The loop drains the whole queue per wake-up, so only the first URL of a batch needs one.
  if (was_empty)
    wake();
}

void TransferLoop::close() noexcept {
  {
    std::lock_guard lock(queue_mutex_);
    closing_ = true;
  }
  wake();
}

/// Each pass takes new URLs, settles cancellations and due retries, starts what the scheduler allows,
/// lets libcurl move the bytes, and publishes what finished. One thread, one multi handle: a long list
/// of small files costs a wake-up per batch of ready sockets rather than per file.
void TransferLoop::run(std::stop_token stop) noexcept {
  // noexcept: a loop that failed (out of memory) would leave its URLs' futures waiting for ever;
  // ending the process says so, as the thread it replaced did.
  const ThreadName name(number_ == 0 ? "imgdl-net" : "imgdl-net-" + std::to_string(number_));
  thread_.store(std::this_thread::get_id());
  const std::stop_callback on_stop(stop, [this] { close(); });
  while (true) {
    bool closing = false;
    take_incoming(closing);
    if (context_.cancelled->load())
      cancel_jobs([](const Job&) { return true; });
    if (stop_seen_.exchange(false))
      cancel_jobs([](const Job& job) { return job.promise.stop_requested(); });
    scheduler_.release_due();
    start_ready();
    driver_.run_due_timers();
    read_completions();
    bool unread_completions = false;
    if (!settled_.empty()) {
      // The next requests go out before the finished files are published: a connection waits for the
      // loop's file work only once it has its next response to wait for anyway.
      if (options_.on_exists != OnExists::Resume) {
        start_ready();
        driver_.run_due_timers();
        // A transfer can end inside that call (a refused connect, a response already there), and
        // libcurl then reports nothing more about it: it is read on the next pass, without sleeping.
        unread_completions = true;
      }
      publish_settled();
    }
    announce_pending();
    retired_.clear();
    if (closing && scheduler_.unfinished() == 0)
      break;
    if (unread_completions || scheduler_.can_start())
      continue;
    driver_.wait(scheduler_.next_deadline());
  }
  thread_.store(std::thread::id());
}

void TransferLoop::take_incoming(bool& closing) {
  std::vector<JobPtr> taken;
  {
    // Once closing_ is read true here, enqueue() refuses work: nothing can arrive after this drain.
    std::lock_guard lock(queue_mutex_);
    taken.swap(incoming_);
    closing = closing_;
  }
  const bool host_rules = context_.hosts && context_.hosts->active();
  for (auto& job : taken) {
    Job& j = *job;
    // A URL that will make no request (invalid, duplicate, file already there) must not wait for its
    // host's rate or pause, nor fail with it: it has no host for the scheduler.
    if (host_rules && ending_without_fetch(*context_.output, j.plan))
      j.host.clear();
    jobs_.emplace(&j, std::move(job));
    scheduler_.add(j);
  }
}

/// Starts attempts while the scheduler allows: retries first, then new URLs while a slot is free.
void TransferLoop::start_ready() {
  while (!context_.cancelled->load()) {
    Scheduled* next = scheduler_.next_start();
    if (!next)
      break;
    Job& job = static_cast<Job&>(*next);
    if (!job.sink && !begin(job))
      continue;  // ended without a transfer (skip, duplicate, ...)
    // A resumed transfer's Range needs its part file first; any other opens it once its request is
    // out (announce_pending), and its body waits in memory until then.
    if (job.sink->resumes() && !job.sink->is_open()) {
      if (auto failure = announce_and_open(job)) {
        scheduler_.attempt_ended(job);
        complete(job, std::move(*failure));
        continue;
      }
    }
    start_attempt(job);
  }
  end_unreachable();
}

/// URLs of hosts found unreachable end now, without a request (or without their retry).
void TransferLoop::end_unreachable() {
  for (Scheduled* s : scheduler_.take_unreachable()) {
    Job& job = static_cast<Job&>(*s);
    if (job.sink) {  // begun: it was backing off, or waiting for its host
      complete(job, unreachable_outcome(job, job.result.message));
      continue;
    }
    if (!set_running(job))
      continue;
    // A duplicate or a file already there needs no request, so its host does not matter.
    std::optional<Ending> ending = ending_without_fetch(*context_.output, job.plan);
    if (!ending) {
      AttemptOutcome outcome = unreachable_outcome(job, {});
      ending = Ending{DownloadStatus::Failed, outcome.error, std::move(outcome.message)};
    }
    deliver(job, std::move(*ending));
  }
}

AttemptOutcome TransferLoop::unreachable_outcome(const Job& job, const std::string& after) const {
  AttemptOutcome outcome{ErrorKind::HostUnreachable,
                         unreachable_message(job.host, options_.unreachable_after, after)};
  outcome.retryable = true;  // a later run may reach it: under Resume, a .part is kept for it
  return outcome;
}

/// A URL's first step: whatever needs no request (plan errors, duplicates, files already there). False
/// when the URL ended here.
bool TransferLoop::begin(Job& job) {
  if (!set_running(job)) {
    scheduler_.attempt_ended(job);
    return false;
  }
  std::optional<Ending> ending = ending_without_fetch(*context_.output, job.plan);
  if (!ending && job.promise.stop_requested())
    ending = Ending{DownloadStatus::Cancelled, ErrorKind::Cancelled, "cancelled"};
  if (ending) {
    scheduler_.attempt_ended(job);
    deliver(job, std::move(*ending));
    return false;
  }
  job.sink.emplace(*context_.output, job.plan.name, job.plan.past_window);
  // Future::cancel() on a running transfer: wake the loop to stop it now, not at its next callback.
  job.on_stop.emplace(job.promise.stop_token(), [this] {
    stop_seen_.store(true);
    wake();
  });
  return true;
}

/// Its future turns Running and its result starts; false when Future::cancel() came first, and the
/// URL has ended here.
bool TransferLoop::set_running(Job& job) {
  if (!job.promise.set_running_or_notify_cancel()) {
    drop_cancelled(job);
    return false;
  }
  context_.counters->started.fetch_add(1, std::memory_order_relaxed);
  job.start = Clock::now();
  job.result.url = job.plan.url;
  return true;
}

void TransferLoop::start_attempt(Job& job) {
  ++job.result.attempts;
  if (auto failure = driver_.start(job.active, &job, job.plan.fetch_url, *job.sink, job.promise.stop_token(),
                                   job.report)) {
    scheduler_.attempt_ended(job);
    attempt_done(job, std::move(*failure));
    return;
  }
  if (!job.announced)
    unannounced_.push_back(&job);
}

/// Judges every attempt libcurl finished; they are published after the next requests are out.
void TransferLoop::read_completions() {
  take_hashed();
  driver_.for_each_completion([this](void* owner, CURLcode code) {
    Job& job = *static_cast<Job*>(owner);
    AttemptOutcome outcome = driver_.finish(job.active, code);
    const auto hosts = context_.hosts;
    const std::uint64_t unreachable = hosts ? hosts->unreachable_count() : 0;
    scheduler_.attempt_ended(job, &outcome);  // the host table learns what it says of its host
    if (hosts && hosts->unreachable_count() != unreachable && context_.wake_loops)
      context_.wake_loops();  // their waiting URLs of that host end now, not at their turn
    if (hash_on_pool(job, outcome))
      return;  // back through take_hashed(), its slot held meanwhile as by a transfer
    if (!retries_after(job, outcome))
      scheduler_.finishing(job);  // its slot takes the next request, sent before this is published
    job.settled = std::move(outcome);
    settled_.push_back(&job);
  });
}

/// A whole body of more than hash_on_loop_limit bytes whose digest is asked for is hashed by another
/// pool worker (from its file, in the page cache) while this loop moves other transfers' bytes: on
/// one loop, hashing as the bytes stream costs the loop as much time as it spends on the transfers
/// (bench/README.md). Smaller bodies are hashed here, at publication: a hand-off would cost more.
bool TransferLoop::hash_on_pool(Job& job, AttemptOutcome& outcome) {
  constexpr std::uint64_t hash_on_loop_limit = 256 * 1024;
  if (!context_.cpu_pool || outcome.error != ErrorKind::None || !job.sink->needs_hash() ||
      !job.sink->is_open() || job.sink->part().size() + outcome.held_body.size() <= hash_on_loop_limit)
    return false;
  job.settled = std::move(outcome);
  try {
    // The job is in no list of the loop until it is back: only the worker touches its sink. The
    // pool is the Downloader's own: nothing cancels this task, and it does not throw.
    (void)context_.cpu_pool->submit([this, &job] {
      if (auto failure = job.sink->hash_file(*job.settled))
        job.settled = std::move(*failure);
      context_.counters->digests_on_pool.fetch_add(1, std::memory_order_relaxed);
      // Woken under the lock: once it is released the loop may publish the job, finish and be
      // destroyed, so nothing of the loop is touched after that.
      std::lock_guard lock(queue_mutex_);
      hashed_.push_back(&job);
      wake();
    });
  } catch (const std::exception&) {  // the pool was shut down: hash it here, at publication
    outcome = std::move(*job.settled);
    job.settled.reset();
    return false;
  }
  return true;
}

/// Bodies whose digest the pool computed: published with the ones libcurl just finished.
void TransferLoop::take_hashed() {
  std::vector<Job*> back;
  {
    std::lock_guard lock(queue_mutex_);
    back.swap(hashed_);
  }
  for (Job* job : back) {
    // Cancelled while it was hashed: it ends as any running transfer would, its file removed.
    if (context_.cancelled->load() || job->promise.stop_requested())
      job->settled = AttemptOutcome{ErrorKind::Cancelled, "cancelled"};
    if (!retries_after(*job, *job->settled))
      scheduler_.finishing(*job);
    settled_.push_back(job);
  }
}

void TransferLoop::publish_settled() {
  for (Job* job : settled_) {
    AttemptOutcome outcome = std::move(*job->settled);
    job->settled.reset();
    // Ended within the call that sent its request: its on_started comes now, just before its end.
    if (!job->sink->is_open()) {
      if (auto failure = announce_and_open(*job))
        outcome = std::move(*failure);
    }
    attempt_done(*job, std::move(outcome));
  }
  settled_.clear();
}

/// on_started and a file for the transfers started without them; one that cannot get a file ends.
void TransferLoop::announce_pending() {
  for (Job* job : unannounced_) {
    if (job->state != JobState::Running || !job->active.in_libcurl() || job->sink->is_open())
      continue;  // ended meanwhile
    if (auto failure = announce_and_open(*job)) {
      driver_.abort(job->active);
      scheduler_.attempt_ended(*job);
      attempt_done(*job, std::move(*failure));
    }
  }
  unannounced_.clear();
}

/// The URL's on_started and its file. After publish_settled(), a slot's previous URL has had its
/// on_finished, so the scheduler always has room to announce here.
std::optional<AttemptOutcome> TransferLoop::announce_and_open(Job& job) {
  [[maybe_unused]] const bool announced = scheduler_.try_announce(job);
  assert(announced);
  const auto& observer = options_.observer;
  if (observer)
    observe(job, [&] { observer->on_started(transfer_of(job.plan)); });
  if (auto failure = job.sink->open())
    return failure;
  if (observer) {
    // Runs inside libcurl's callbacks, where an exception must not pass.
    job.report = [this, &job](std::uint64_t bytes, std::optional<std::uint64_t> total) {
      observe(job, [&] { options_.observer->on_progress(transfer_of(job.plan), bytes, total); });
    };
  }
  return std::nullopt;
}

bool TransferLoop::retries_after(const Job& job, const AttemptOutcome& outcome) const {
  return detail::retries_after(outcome, job.result.attempts, options_.retries) &&
         !scheduler_.host_unreachable(job);
}

/// After each attempt: done, or retried after a backoff.
void TransferLoop::attempt_done(Job& job, AttemptOutcome outcome) {
  job.result.http_status = outcome.http_status;
  job.result.http_version = outcome.http_version;
  if (!retries_after(job, outcome)) {
    // A retry its host's state forbids: the URL ends saying why, with its own failure.
    if (detail::retries_after(outcome, job.result.attempts, options_.retries))
      outcome = unreachable_outcome(job, outcome.message);
    complete(job, std::move(outcome));
    return;
  }
  job.result.message = outcome.message;  // the last failure, for a message if its host turns unreachable
  if (auto failure = job.sink->prepare_retry(outcome.restart_from_scratch)) {
    complete(job, std::move(*failure));
    return;
  }
  const auto delay = retry_delay(options_.retry_backoff, options_.retry_max_delay, job.result.attempts,
                                 outcome.retry_after, random_jitter());
  if (options_.observer)
    observe(job, [&] {
      options_.observer->on_retrying(transfer_of(job.plan), job.result.attempts, delay, outcome.message);
    });
  scheduler_.back_off(job, delay);
}

void TransferLoop::complete(Job& job, AttemptOutcome outcome) {
  Ending ending = job.sink->finish(std::move(outcome), job.result);
  deliver(job, std::move(ending));
}

/// Delivers the result: observer first, then the future.
void TransferLoop::deliver(Job& job, Ending ending) {
  auto& result = job.result;
  settle_result(result, std::move(ending), job.plan, options_, job.start);
  if (options_.observer)
    observe(job, [&] { options_.observer->on_finished(transfer_of(job.plan), result); });
  scheduler_.done(job);
  context_.counters->completed.fetch_add(1, std::memory_order_relaxed);
  // An observer's exception travels through the future, as it would from a worker's task.
  if (job.observer_error) {
    job.promise.set_exception(job.observer_error);
  } else {
    job.promise.set_result(std::move(result));
  }
  retire(job);
}

/// A URL cancelled before it began: on_finished, then its future cancelled (already, if its Future
/// was); an observer's exception goes where a throwing done-callback's would.
void TransferLoop::drop_cancelled(Job& job) {
  if (options_.observer) {
    DownloadResult cancelled = cancelled_before_start(options_, job.plan.url, job.plan.name);
    observe(job, [&] { options_.observer->on_finished(transfer_of(job.plan), cancelled); });
    if (job.observer_error)
      job.promise.report_error(job.observer_error);
  }
  job.promise.cancel();  // Pending -> Cancelled, or cancelled already by its Future
  scheduler_.done(job);
  context_.counters->cancelled.fetch_add(1, std::memory_order_relaxed);
  retire(job);
}

void TransferLoop::retire(Job& job) {
  job.on_stop.reset();
  auto node = jobs_.extract(&job);
  retired_.push_back(std::move(node.mapped()));
  unfinished_.fetch_sub(1, std::memory_order_relaxed);
}

/// Ends every job `matches` picks, wherever it is: an attempt is taken out of libcurl, a begun URL
/// completes Cancelled (its file removed, or its .part kept under Resume), a URL not begun has its
/// future cancelled. Waiting URLs are ended in the order they wait.
void TransferLoop::cancel_jobs(const std::function<bool(const Job&)>& matches) {
  const AttemptOutcome cancelled{ErrorKind::Cancelled, "cancelled"};
  std::vector<Job*> running;
  for (const auto& [job, owned] : jobs_)
    if (job->active.in_libcurl() && matches(*job))
      running.push_back(job);
  for (Job* job : running) {
    driver_.abort(job->active);
    scheduler_.attempt_ended(*job);
    attempt_done(*job, cancelled);
  }
  const auto waiting =
      scheduler_.take_waiting([&](const Scheduled& s) { return matches(static_cast<const Job&>(s)); });
  for (Scheduled* s : waiting) {
    Job& job = static_cast<Job&>(*s);
    if (job.sink) {
      complete(job, cancelled);
    } else {
      // The observer first, as deliver() does: whoever waits on the future may look at what the
      // observer saw as soon as the future is ready.
      drop_cancelled(job);
    }
  }
}

/// Observer calls, one at a time across all loops (the observer's contract): an exception (observers
/// must not throw) is kept, the first one, for deliver() to hand to the URL's future.
template <class Call>
void TransferLoop::observe(Job& job, Call&& call) noexcept {
  call_observer(*context_.observer_mutex, job.observer_error, std::forward<Call>(call));
}

}  // namespace imgdl::detail
