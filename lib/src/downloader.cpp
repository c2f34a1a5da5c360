#include "imgdl/downloader.hpp"

#include "imgdl/version.hpp"
#include "imgdl/wait.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <variant>

#include <pthread.h>

#include "curl_handles.hpp"
#include "image_type.hpp"
#include "naming.hpp"
#include "output_dir.hpp"
#include "sha256.hpp"
#include "socket_events.hpp"
#include "transfer.hpp"

namespace imgdl {

namespace {

using Clock = std::chrono::steady_clock;

/// What submit() decided before any transfer: the name, or why there is nothing to fetch.
struct Plan {
  std::size_t index = 0;
  std::string url;
  std::string fetch_url;  // the normalized URL handed to libcurl
  std::string host;
  std::string name;  // planned file name; may still lack an extension
  ErrorKind error = ErrorKind::None;
  std::string message;
  bool duplicate = false;
};

std::chrono::milliseconds backoff(const DownloadOptions& o, int attempt,
                                  std::optional<std::chrono::milliseconds> retry_after) {
  if (retry_after)
    return std::min(*retry_after, o.retry_max_delay);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const double base = static_cast<double>(o.retry_backoff.count()) * std::pow(2.0, attempt - 1);
  const double jittered = base * std::uniform_real_distribution<double>(0.5, 1.5)(rng);
  const auto capped = std::min(jittered, static_cast<double>(o.retry_max_delay.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped));
}

}  // namespace

std::string_view to_string(DownloadStatus status) noexcept {
  switch (status) {
    case DownloadStatus::Ok:
      return "ok";
    case DownloadStatus::Skipped:
      return "skipped";
    case DownloadStatus::Failed:
      return "failed";
    case DownloadStatus::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::None:
      return "none";
    case ErrorKind::InvalidUrl:
      return "invalid_url";
    case ErrorKind::Dns:
      return "dns";
    case ErrorKind::Connect:
      return "connect";
    case ErrorKind::Tls:
      return "tls";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::HttpStatus:
      return "http_status";
    case ErrorKind::TooManyRedirects:
      return "too_many_redirects";
    case ErrorKind::ForbiddenRedirect:
      return "forbidden_redirect";
    case ErrorKind::TooLarge:
      return "too_large";
    case ErrorKind::NotImage:
      return "not_image";
    case ErrorKind::Empty:
      return "empty";
    case ErrorKind::Truncated:
      return "truncated";
    case ErrorKind::Network:
      return "network";
    case ErrorKind::Write:
      return "write";
    case ErrorKind::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

class Downloader::Impl {
 public:
  explicit Impl(DownloadOptions options)
      : options_(resolve(std::move(options))),
        output_(options_.output_dir),
        settings_{&options_, share_.get(), options_.user_agent},
        executor_(ExecutorOptions{.max_workers = 1, .thread_name_prefix = "imgdl"}) {
    // max_workers split as evenly as it goes: the loops together never run more.
    const std::size_t threads = options_.transfer_threads;
    const std::size_t workers = *options_.max_workers;
    loops_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i)
      loops_.push_back(std::make_unique<TransferLoop>(*this, workers / threads + (i < workers % threads), i));
  }

  /// Must not run on a transfer thread (from an observer or a done-callback): it waits for them.
  ~Impl() {
    for (auto& loop : loops_)
      loop->close();
    for (auto& loop : loops_)
      loop->join();
  }

  Future<DownloadResult> submit(std::string url) { return schedule(plan(std::move(url))); }

  Plan plan(std::string url) {
    Plan p;
    p.url = std::move(url);
    std::string error;
    auto parsed = detail::parse_url(p.url, &error);
    std::lock_guard lock(plan_mutex_);
    p.index = next_index_++;
    if (!parsed) {
      p.error = ErrorKind::InvalidUrl;
      p.message = error;
      return p;
    }
    p.fetch_url = parsed->normalized;
    p.host = parsed->host;
    if (auto name = planner_.assign(*parsed)) {
      p.name = std::move(*name);
    } else {
      p.duplicate = true;
      p.name = detail::filename_from_url(*parsed);
    }
    return p;
  }

  /// Hands a planned URL to a transfer loop: the least loaded, or in Sequential mode always the first
  /// (one connection, as a single worker would keep). `announce` reports on_queued now; download_all
  /// announces every URL when it plans them instead. Throws ExecutorShutdownError after cancel().
  Future<DownloadResult> schedule(Plan p, bool announce = true, Mode mode = Mode::Pooled) {
    const auto& observer = options_.observer;
    if (observer && announce)
      observer->on_queued(transfer(p));
    auto task = executor_.external_task<DownloadResult>();
    Future<DownloadResult> future(task);
    auto job = std::make_unique<Job>();
    job->plan = std::move(p);
    job->task = std::move(task);
    TransferLoop& loop = mode == Mode::Sequential ? *loops_.front() : least_loaded();
    loop.enqueue(std::move(job));
    return future;
  }

  std::vector<DownloadResult> download_all(const std::vector<std::string>& urls, Mode mode) {
    std::vector<Plan> plans;
    plans.reserve(urls.size());
    for (const auto& url : urls)
      plans.push_back(plan(url));  // every name before any transfer
    if (options_.observer)
      for (const auto& p : plans)
        options_.observer->on_queued(transfer(p));

    std::vector<DownloadResult> results(plans.size());
    std::size_t next = 0;
    run_window(
        [&]() -> std::optional<Plan> {
          if (next == plans.size())
            return std::nullopt;
          return std::move(plans[next++]);
        },
        [&](std::size_t position, DownloadResult&& r) { results[position] = std::move(r); }, mode, false);
    return results;
  }

  std::size_t download_stream(const std::function<std::optional<std::string>()>& next_url,
                              const std::function<void(std::size_t, DownloadResult&&)>& on_result,
                              Mode mode) {
    return run_window(
        [&]() -> std::optional<Plan> {
          if (cancelled_.load())
            return std::nullopt;  // stop reading the input
          auto url = next_url();
          if (!url)
            return std::nullopt;
          return plan(std::move(*url));
        },
        on_result, mode, true);
  }

  /// Returns at once: waiting for the loops would deadlock any caller holding a lock an observer takes.
  void cancel() {
    cancelled_.store(true);
    executor_.shutdown(false);  // submit() throws from now on
    for (auto& loop : loops_)
      loop->wake();
  }
  bool cancelled() const noexcept { return cancelled_.load(); }
  const DownloadOptions& options() const noexcept { return options_; }
  ExecutorStats stats() const noexcept {
    auto s = executor_.stats();
    s.workers = loops_.size();  // the transfer threads
    return s;
  }

 private:
  /// Below this many workers per thread, a second transfer thread costs more switches than it saves.
  static constexpr std::size_t workers_per_transfer_thread = 16;

  /// One URL's life on the transfer loop, from begin() to finish(). Heap-held and never moved:
  /// libcurl's callbacks and the stop callback hold its address.
  struct Job {
    Plan plan;
    std::shared_ptr<detail::ExternalTask<DownloadResult>> task;
    DownloadResult result;
    Clock::time_point start;
    bool begun = false;
    bool output_open = false;  // on_started given, part file opened (or failed)
    bool resume = false;
    bool use_range = false;
    detail::PartFile part;
    detail::Sha256 hash;
    detail::ProgressReport report;
    std::optional<detail::CurlEasy> easy;  // while an attempt runs
    detail::AttemptPtr attempt;
    Clock::time_point retry_at;
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
    std::exception_ptr observer_error;               // the first exception an observer threw for this URL
    std::atomic<std::size_t>* unfinished = nullptr;  // its transfer loop's count, while it is queued there

    Job() = default;
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;
    ~Job() {
      if (unfinished)
        unfinished->fetch_sub(1, std::memory_order_relaxed);
    }
  };
  using JobPtr = std::unique_ptr<Job>;

  static DownloadOptions resolve(DownloadOptions o) {
    detail::ensure_curl_global_init();  // before the loop thread exists
    if (o.max_workers && *o.max_workers == 0)
      throw std::invalid_argument("max_workers must be greater than 0");
    if (!o.max_workers)
      o.max_workers = ThreadPoolExecutor::default_max_workers();
    if (o.retries < 0)
      throw std::invalid_argument("retries must not be negative");
    if (o.max_redirects < 0)
      throw std::invalid_argument("max_redirects must not be negative");
    if (o.user_agent.empty())
      o.user_agent = default_user_agent();
    if (o.output_dir.empty())
      o.output_dir = ".";
    if (o.per_host != 0 && o.transfer_threads > 1)
      throw std::invalid_argument(
          "per_host needs a single transfer thread: each thread counts its own transfers");
    o.transfer_threads = transfer_thread_count(o);
    return o;
  }

  /// transfer_threads 0: one thread per workers_per_transfer_thread workers, at most one per hardware
  /// thread (a second thread on one core only adds switches); never more threads than workers.
  static std::size_t transfer_thread_count(const DownloadOptions& o) {
    const std::size_t workers = *o.max_workers;
    if (o.transfer_threads != 0)
      return std::min(o.transfer_threads, workers);
    if (o.per_host != 0)
      return 1;
    const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
    return std::clamp<std::size_t>(workers / workers_per_transfer_thread, 1, hardware);
  }

  static DownloadObserver::Transfer transfer(const Plan& p) { return {p.index, p.url, p.name}; }

  DownloadResult cancelled_result(const Plan& p) const { return cancelled_result(p.url, p.name); }
  DownloadResult cancelled_result(const std::string& url, const std::string& name) const {
    DownloadResult r;
    r.url = url;
    if (!name.empty())
      r.path = options_.output_dir / name;
    r.status = DownloadStatus::Cancelled;
    r.error = ErrorKind::Cancelled;
    r.message = "cancelled before it started";
    return r;
  }

  /// The one scheduling loop behind download_all and download_stream: keeps at most a window of
  /// transfers submitted (2 × workers, so the transfer loop always has its next URLs queued; 1 when
  /// sequential), and hands each result to `sink` on this thread, with its position among the plans
  /// this call pulled (not the Downloader-wide index: other threads may submit meanwhile). Memory
  /// stays bounded whatever the length of the input. After cancel(), plans still pulled are reported
  /// cancelled unscheduled.
  std::size_t run_window(const std::function<std::optional<Plan>()>& next_plan,
                         const std::function<void(std::size_t, DownloadResult&&)>& sink, Mode mode,
                         bool announce) {
    struct InFlight {
      std::string url;
      std::string name;
      Future<DownloadResult> future;
    };
    if (std::any_of(loops_.begin(), loops_.end(),
                    [](const auto& loop) { return loop->runs_on_this_thread(); }))
      throw std::logic_error(
          "download_all/download_stream called from an observer or done-callback of the same "
          "Downloader: it would wait for its own transfer thread");
    const std::size_t workers = *options_.max_workers;
    const std::size_t window = mode == Mode::Sequential ? 1 : 2 * workers;
    auto completions = std::make_shared<detail::CompletionQueue>();
    std::unordered_map<std::size_t, InFlight> in_flight;
    std::vector<std::size_t> finished;
    std::size_t count = 0;
    bool exhausted = false;
    // A throwing callback ends the loop: its transfers are asked to stop rather than left running.
    struct CancelOnExit {
      std::unordered_map<std::size_t, InFlight>& in_flight;
      ~CancelOnExit() {
        for (auto& [index, slot] : in_flight)
          slot.future.cancel();
      }
    } cancel_on_exit{in_flight};
    while (true) {
      while (!exhausted && in_flight.size() < window) {
        auto p = next_plan();
        if (!p) {
          exhausted = true;
          break;
        }
        const std::size_t position = count++;
        const std::size_t index = p->index;
        InFlight slot{p->url, p->name, {}};
        try {
          slot.future = schedule(std::move(*p), announce, mode);
        } catch (const ExecutorShutdownError&) {
          // cancel() ran before this URL's turn: it ends here, and the observer still hears of it.
          auto cancelled = cancelled_result(slot.url, slot.name);
          if (options_.observer) {
            std::lock_guard lock(observer_mutex_);  // one call at a time, as from the transfer threads
            options_.observer->on_finished({index, slot.url, slot.name}, cancelled);
          }
          sink(position, std::move(cancelled));
          continue;
        }
        slot.future.state()->add_callback(
            [weak = std::weak_ptr<detail::CompletionQueue>(completions), position] {
              if (auto queue = weak.lock())
                queue->push(position);
            });
        in_flight.emplace(position, std::move(slot));
      }
      if (in_flight.empty())
        return count;
      // Wake for a batch, not for every file: while more than 1.5 × workers are unfinished the loop
      // still has URLs queued, so waiting for the excess to complete costs it nothing and saves this
      // thread a wake-up per file. The deadline bounds the wait when transfers are slow.
      const std::size_t batch =
          in_flight.size() > workers + workers / 2 ? in_flight.size() - workers - workers / 2 : 1;
      completions->pop_batch(batch, Clock::now() + batch_wait, finished);
      for (const std::size_t position : finished) {
        auto node = in_flight.extract(position);
        auto& done = node.mapped();
        try {
          sink(position, done.future.take());
        } catch (const CancelledError&) {
          sink(position, cancelled_result(done.url, done.name));
        }
      }
      finished.clear();
    }
  }

  /// Whether a later URL of this run has `name` planned. Any thread.
  bool is_reserved(const std::string& name) {
    std::lock_guard lock(plan_mutex_);
    return planner_.is_reserved(name);
  }

  /// Whether a URL planned as `name` already has its file: a name without an extension is saved with
  /// the sniffed type's, so any image extension counts.
  bool final_file_exists(const std::string& name) const {
    if (output_.exists(name))
      return true;
    if (detail::has_extension(name))
      return false;
    for (auto type : {ImageType::Jpeg, ImageType::Png, ImageType::Gif, ImageType::Webp, ImageType::Bmp,
                      ImageType::Tiff, ImageType::Ico, ImageType::Avif, ImageType::Heic, ImageType::Svg}) {
      if (output_.exists(detail::with_extension_for(name, extension_for(type))))
        return true;
    }
    return false;
  }

  /// One transfer thread with its own multi handle, connection cache and share of max_workers. The
  /// Downloader hands each URL to the loop with the fewest unfinished ones; a URL stays on its loop.
  class TransferLoop {
   public:
    TransferLoop(Impl& impl, std::size_t slots, std::size_t number)
        : impl_(impl),
          options_(impl.options_),
          output_(impl.output_),
          settings_(impl.settings_),
          cancelled_(impl.cancelled_),
          slots_(slots),
          // Started last, once everything it touches exists.
          loop_thread_([this, number] { loop(number); }) {}
    TransferLoop(const TransferLoop&) = delete;
    TransferLoop& operator=(const TransferLoop&) = delete;
    /// Drains every URL it was given first, as the Downloader's destructor promises.
    ~TransferLoop() {
      close();
      join();
    }

    /// Queues a job; any thread. Throws ExecutorShutdownError once the loop is closing.
    void enqueue(JobPtr job) {
      bool was_empty = false;
      {
        std::lock_guard lock(queue_mutex_);
        // A done-callback or observer submitting while the destructor drains the loop: refuse it, as
        // the executor refuses work after shutdown, rather than drop it unanswered.
        if (closing_)
          throw ExecutorShutdownError();
        job->unfinished = &unfinished_;
        unfinished_.fetch_add(1, std::memory_order_relaxed);
        was_empty = incoming_.empty();
        incoming_.push_back(std::move(job));
      }
      // The loop drains the whole queue per wake-up, so only the first URL of a batch needs one.
      if (was_empty)
        wake();
    }

    /// URLs queued on this loop and not finished yet. Any thread; a moment's snapshot.
    std::size_t unfinished() const noexcept { return unfinished_.load(std::memory_order_relaxed); }

    /// Interrupts the loop's wait; any thread, while the loop exists.
    void wake() noexcept { events_.wake(); }

    /// Once every queued URL has finished, the thread ends; later enqueue() calls throw.
    void close() noexcept {
      {
        std::lock_guard lock(queue_mutex_);
        closing_ = true;
      }
      wake();
    }
    void join() {
      if (loop_thread_.joinable())
        loop_thread_.join();
    }
    bool runs_on_this_thread() const noexcept { return std::this_thread::get_id() == loop_thread_.get_id(); }

   private:
    // Everything below runs on loop_thread_ only.

    /// Drives its transfers: takes queued URLs, starts attempts while fewer than its slots run (and
    /// fewer than per_host on their host), lets libcurl move the bytes, and settles finished attempts,
    /// retries and cancellations. One thread, one multi handle: no thread blocks per transfer, so a long
    /// list of small files costs a wake-up per batch of ready sockets rather than per file.
    void loop(std::size_t number) {
      const std::string name = number == 0 ? "imgdl-net" : "imgdl-net-" + std::to_string(number);
      pthread_setname_np(pthread_self(), name.c_str());
      std::vector<JobPtr> taken;
      while (true) {
        bool closing = false;
        {
          // Once closing_ is read true here, schedule() refuses work: nothing can arrive after this drain.
          std::lock_guard lock(queue_mutex_);
          taken.swap(incoming_);
          closing = closing_;
        }
        for (auto& job : taken)
          ready_.push_back(std::move(job));
        taken.clear();
        if (cancelled_.load())
          abort_all();
        if (stop_seen_.exchange(false))
          settle_stopped();
        release_due_retries();
        start_ready();
        perform();
        settle_finished();
        bool unread_completions = false;
        if (!settled_.empty()) {
          // The next requests go out before the finished files are published: a connection waits for the
          // loop's file work only once it has its next response to wait for anyway. Not under Resume,
          // whose part files must be open before the request (for its Range): they would outnumber
          // max_workers until the finished ones are published.
          if (options_.on_exists != OnExists::Resume) {
            start_ready();
            perform();
            // A transfer can end inside that call (a refused connect, a response already there), and
            // libcurl then reports nothing more about it. It is read on the next pass, not here: its
            // on_started must not come before the on_finished of the URL whose slot it took.
            unread_completions = true;
          }
          publish_settled();
        }
        open_pending_outputs();
        if (closing && ready_.empty() && due_.empty() && waiting_for_host_ == 0 && retrying_.empty() &&
            active_.empty())
          return;
        if (unread_completions || !due_.empty() || (!ready_.empty() && begun_ < slots_))
          continue;  // no sleep: completions to read, or slots just freed
        events_.wait(next_retry());
      }
    }

    /// Lets libcurl start the transfers just added (their requests go out here) and fire its timeouts.
    void perform() { events_.run_due_timers(); }

    /// When the earliest backoff ends, if any URL is waiting for one.
    std::optional<Clock::time_point> next_retry() const {
      if (retrying_.empty())
        return std::nullopt;
      return retrying_.front()->retry_at;
    }

    /// A slot is held from begin() to finish(), backoffs and host waits included, as a worker thread
    /// would hold it: so at most max_workers part files are open, however many URLs are submitted.
    /// Begun jobs (due_) always go first; a URL whose host is at per_host waits without being begun.
    void start_ready() {
      while (!cancelled_.load()) {
        JobPtr job;
        if (!due_.empty()) {
          job = std::move(due_.front());
          due_.pop_front();
        } else if (!ready_.empty() && begun_ - finishing_ < slots_) {
          job = std::move(ready_.front());
          ready_.pop_front();
        } else {
          return;
        }
        if (options_.per_host != 0 && host_count(job->plan.host) >= options_.per_host) {
          host_waiting_[job->plan.host].push_back(std::move(job));
          ++waiting_for_host_;
          continue;
        }
        if (!job->begun && !begin(*job))
          continue;  // ended without a transfer (skip, duplicate, ...)
        // A resumed transfer's Range needs its part file first; any other opens it once its request is
        // out (open_pending_outputs), and its body waits in memory until then.
        if (job->resume && !job->output_open) {
          if (auto failure = open_output(*job)) {
            complete(std::move(job), std::move(*failure));
            continue;
          }
        }
        start_attempt(std::move(job));
      }
    }

    std::size_t host_count(const std::string& host) const {
      const auto it = host_active_.find(host);
      return it == host_active_.end() ? 0 : it->second;
    }

    /// The first step of a URL: whatever needs no request (plan errors, duplicates, files already
    /// there), then the part file. False when the job ended here.
    bool begin(Job& job) {
      if (!job.task->set_running_or_notify_cancel()) {  // Future::cancel() came first
        report_cancelled(job);
        return false;
      }
      job.begun = true;
      ++begun_;
      job.start = Clock::now();
      job.result.url = job.plan.url;
      const Plan& p = job.plan;
      if (p.error != ErrorKind::None)
        return finish(job, DownloadStatus::Failed, p.error, p.message);
      if (p.duplicate)
        return finish(job, DownloadStatus::Skipped, ErrorKind::None,
                      "duplicate of an earlier URL in this run");
      job.resume = options_.on_exists == OnExists::Resume;
      job.use_range = job.resume;
      if ((options_.on_exists == OnExists::Skip || job.resume) && impl_.final_file_exists(p.name))
        return finish(job, DownloadStatus::Skipped, ErrorKind::None, "already exists");
      if (job.task->stop_requested())
        return finish(job, DownloadStatus::Cancelled, ErrorKind::Cancelled, "cancelled");
      // Future::cancel() on a running transfer: wake the loop to stop it now, not at its next callback.
      job.on_stop.emplace(job.task->stop_token(), [this] {
        stop_seen_.store(true);
        wake();
      });
      return true;
    }

    /// A begun URL's on_started and part file: after the slot's previous URL has finished, so at most
    /// max_workers URLs are started and unfinished, and at most max_workers part files are open. The
    /// failure that ends the URL, if the part file cannot be had.
    std::optional<detail::AttemptOutcome> open_output(Job& job) {
      const Plan& p = job.plan;
      job.output_open = true;
      const auto& observer = options_.observer;
      if (observer)
        observe(job, [&] { observer->on_started(transfer(p)); });

      if (auto failure = open_part_file(job))
        return failure;
      if (job.part.size() > 0 && options_.compute_sha256) {
        if (auto read_error = job.part.read_all([&](std::string_view chunk) { job.hash.update(chunk); }))
          return detail::AttemptOutcome{ErrorKind::Write,
                                        "cannot read " + job.part.name() + ": " + read_error.message()};
      }
      if (observer) {
        // Runs inside libcurl's callbacks, where an exception must not pass.
        job.report = [this, &job](std::uint64_t bytes, std::optional<std::uint64_t> total) {
          observe(job, [&] { options_.observer->on_progress(transfer(job.plan), bytes, total); });
        };
      }
      return std::nullopt;
    }

    /// Where the URL's body goes until publication. Only a resumable download needs a part file under a
    /// name another run can find (and Overwrite a rename, to replace atomically); any other is written to
    /// an unnamed file, linked in when whole.
    std::optional<detail::AttemptOutcome> open_part_file(Job& job) {
      const std::string& name = job.plan.name;
      std::error_code error;
      if (!job.resume && options_.on_exists != OnExists::Overwrite) {
        job.part = output_.open_unnamed(name, error);
        if (error)
          return detail::AttemptOutcome{ErrorKind::Write,
                                        "cannot create a file for " + name + ": " + error.message()};
        if (job.part.is_open())
          return std::nullopt;
      }
      const std::string stem = detail::part_file_stem(name);
      job.part = output_.open_part(stem, job.resume, error);
      if (error == std::errc::device_or_resource_busy)
        return detail::AttemptOutcome{ErrorKind::Write,
                                      "another transfer is writing " + stem + ".part in this directory"};
      if (error)
        return detail::AttemptOutcome{ErrorKind::Write,
                                      "cannot create " + stem + ".part: " + error.message()};
      return std::nullopt;
    }

    void start_attempt(JobPtr job) {
      ++job->result.attempts;
      std::optional<detail::CurlEasy> easy;
      try {
        easy.emplace(take_easy());
      } catch (const std::exception& e) {
        complete(std::move(job), {ErrorKind::Network, e.what()});
        return;
      }
      CURL* handle = easy->get();
      auto begun = detail::begin_attempt(handle, settings_, job->plan.fetch_url, job->part, job->hash,
                                         job->use_range, job->task->stop_token(), job->report);
      if (auto* outcome = std::get_if<detail::AttemptOutcome>(&begun)) {
        idle_easy_.push_back(std::move(*easy));
        attempt_done(std::move(job), std::move(*outcome));
        return;
      }
      job->attempt = std::move(std::get<detail::AttemptPtr>(begun));
      if (const CURLMcode code = curl_multi_add_handle(multi_.get(), handle); code != CURLM_OK) {
        job->attempt.reset();
        idle_easy_.push_back(std::move(*easy));
        attempt_done(std::move(job), {ErrorKind::Network, curl_multi_strerror(code)});
        return;
      }
      job->easy = std::move(easy);
      if (!job->output_open)
        pending_outputs_.push_back(handle);
      if (options_.per_host != 0)
        ++host_active_[job->plan.host];
      active_.emplace(handle, std::move(job));
    }

    /// An easy handle from the idle ones (each keeps its DNS and TLS state warm), or a new one.
    detail::CurlEasy take_easy() {
      if (idle_easy_.empty()) {
        detail::CurlEasy easy;
        detail::configure_handle(easy.get(), settings_);
        return easy;
      }
      detail::CurlEasy easy = std::move(idle_easy_.back());
      idle_easy_.pop_back();
      return easy;
    }

    void settle_finished() {
      int left = 0;
      while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
        if (message->msg != CURLMSG_DONE)
          continue;
        CURL* easy = message->easy_handle;
        const CURLcode code = message->data.result;
        std::optional<detail::AttemptOutcome> failure;
        if (Job& ending = *active_.at(easy); !ending.output_open)
          failure = open_output(ending);  // it ended within the perform that sent its request
        auto [job, outcome] = take_transfer(easy, [&](detail::Attempt& attempt) {
          return failure ? std::move(*failure) : detail::end_attempt(easy, attempt, code);
        });
        if (!retries_after(*job, outcome))
          ++finishing_;  // its slot is free for the next request, sent before this one is published
        settled_.emplace_back(std::move(job), std::move(outcome));
      }
    }

    /// Finished attempts taken by settle_finished(): published (or retried) now.
    void publish_settled() {
      for (auto& [job, outcome] : settled_)
        attempt_done(std::move(job), std::move(outcome));
      settled_.clear();
      finishing_ = 0;
    }

    /// on_started and the part file for transfers started without them; a part file that cannot be
    /// created ends its transfer.
    void open_pending_outputs() {
      for (CURL* easy : pending_outputs_) {
        const auto it = active_.find(easy);
        if (it == active_.end() || it->second->output_open)
          continue;  // ended meanwhile, or its handle went on to a job already open
        if (auto failure = open_output(*it->second))
          end_transfer(easy, [&](detail::Attempt&) { return std::move(*failure); });
      }
      pending_outputs_.clear();
    }

    /// Takes an attempt out of libcurl and judges it with `judge`.
    template <class Judge>
    std::pair<JobPtr, detail::AttemptOutcome> take_transfer(CURL* easy, Judge&& judge) {
      auto node = active_.extract(easy);
      JobPtr job = std::move(node.mapped());
      curl_multi_remove_handle(multi_.get(), easy);
      detail::AttemptOutcome outcome = judge(*job->attempt);
      detail::detach_attempt(easy);  // the handle goes idle: libcurl keeps no pointer into the attempt
      job->attempt.reset();
      idle_easy_.push_back(std::move(*job->easy));
      job->easy.reset();
      release_host(job->plan.host);
      return {std::move(job), std::move(outcome)};
    }

    template <class Judge>
    void end_transfer(CURL* easy, Judge&& judge) {
      auto [job, outcome] = take_transfer(easy, std::forward<Judge>(judge));
      attempt_done(std::move(job), std::move(outcome));
    }

    void release_host(const std::string& host) {
      if (options_.per_host == 0)
        return;
      if (auto active = host_active_.find(host); active != host_active_.end() && --active->second == 0)
        host_active_.erase(active);  // memory stays bounded by the hosts in flight, not all hosts seen
      auto waiting = host_waiting_.find(host);
      if (waiting == host_waiting_.end())
        return;
      JobPtr next = std::move(waiting->second.front());
      waiting->second.pop_front();
      --waiting_for_host_;
      if (waiting->second.empty())
        host_waiting_.erase(waiting);
      if (next->begun) {
        due_.push_front(std::move(next));
      } else {
        ready_.push_front(std::move(next));  // it was first in line
      }
    }

    /// After each attempt: done, or retried after a backoff.
    void attempt_done(JobPtr job, detail::AttemptOutcome outcome) {
      auto& result = job->result;
      result.http_status = outcome.http_status;
      if (!retries_after(*job, outcome)) {
        complete(std::move(job), std::move(outcome));
        return;
      }
      if (outcome.restart_from_scratch || !job->resume) {
        if (auto truncate_error = job->part.truncate()) {
          complete(std::move(job), {ErrorKind::Write,
                                    "cannot truncate " + job->part.name() + ": " + truncate_error.message()});
          return;
        }
        job->hash = detail::Sha256();
        job->use_range = job->resume && !outcome.restart_from_scratch;
      }
      const auto delay = backoff(options_, result.attempts, outcome.retry_after);
      if (options_.observer)
        observe(*job, [&] {
          options_.observer->on_retrying(transfer(job->plan), result.attempts, delay, outcome.message);
        });
      job->retry_at = Clock::now() + delay;
      retrying_.push_back(std::move(job));
      std::push_heap(retrying_.begin(), retrying_.end(), later_retry);
    }

    bool retries_after(const Job& job, const detail::AttemptOutcome& outcome) const {
      return outcome.error != ErrorKind::None && outcome.retryable && job.result.attempts <= options_.retries;
    }

    static bool later_retry(const JobPtr& a, const JobPtr& b) { return a->retry_at > b->retry_at; }

    void release_due_retries() {
      const auto now = Clock::now();
      while (!retrying_.empty() && retrying_.front()->retry_at <= now) {
        std::pop_heap(retrying_.begin(), retrying_.end(), later_retry);
        due_.push_back(std::move(retrying_.back()));
        retrying_.pop_back();
      }
    }

    /// The end of a URL that got as far as a transfer: keep or remove the part file, or publish it.
    void complete(JobPtr job, detail::AttemptOutcome outcome) {
      auto& result = job->result;
      auto& part = job->part;
      if (auto error = detail::write_held_body(outcome, part, options_.compute_sha256 ? &job->hash : nullptr))
        outcome = {ErrorKind::Write, "cannot write " + part.name() + ": " + error.message()};
      result.bytes = part.size();
      if (outcome.error != ErrorKind::None) {
        // Under Resume, a transfer cut short stays as .part for the next run to continue.
        const bool keep = job->resume && part.size() > 0 &&
                          (outcome.retryable || outcome.error == ErrorKind::Cancelled ||
                           outcome.error == ErrorKind::Timeout);
        if (keep)
          part.keep();
        part.discard();
        const auto status =
            outcome.error == ErrorKind::Cancelled ? DownloadStatus::Cancelled : DownloadStatus::Failed;
        finish(*job, status, outcome.error, std::move(outcome.message));
        return;
      }

      result.image_type = outcome.image_type;
      std::string final_name = job->plan.name;
      if (!detail::has_extension(final_name) && outcome.image_type != ImageType::Unknown)
        final_name = detail::with_extension_for(final_name, extension_for(outcome.image_type));
      if (options_.compute_sha256)
        result.sha256 = job->hash.hex_digest();
      // Under Rename, a name taken on disk moves on to name.N.ext, but never onto a name planned for a
      // later URL of this run: names must depend on the input order alone.
      const auto reserved = [this](const std::string& candidate) { return impl_.is_reserved(candidate); };
      std::error_code error;
      const auto published = output_.publish(part, final_name, options_.on_exists, reserved, error);
      if (error) {
        part.discard();
        finish(*job, DownloadStatus::Failed, ErrorKind::Write,
               "cannot rename to " + final_name + ": " + error.message());
        return;
      }
      result.path = options_.output_dir / published;
      finish(*job, DownloadStatus::Ok, ErrorKind::None, {});
    }

    /// Delivers the result: observer first, then the future. Always false (the job has ended), so
    /// begin() can return it.
    bool finish(Job& job, DownloadStatus status, ErrorKind error, std::string message) {
      auto& result = job.result;
      result.status = status;
      result.error = error;
      result.message = std::move(message);
      result.elapsed = Clock::now() - job.start;
      // A file that was not published names its planned file; a duplicate names none, since the earlier
      // URL's file may have been renamed.
      if (result.path.empty() && !job.plan.name.empty() && !job.plan.duplicate)
        result.path = options_.output_dir / job.plan.name;
      if (options_.observer)
        observe(job, [&] { options_.observer->on_finished(transfer(job.plan), result); });
      --begun_;
      // An observer's exception travels through the future, as it did from a worker's task.
      if (job.observer_error) {
        job.task->set_exception(job.observer_error);
      } else {
        job.task->set_result(std::move(result));
      }
      return false;
    }

    /// Observer calls on a transfer thread, one at a time across all of them (the observer's contract):
    /// an exception (observers must not throw) would end the thread and the process; keep the first,
    /// for finish() to hand to the URL's future.
    template <class Call>
    void observe(Job& job, Call&& call) noexcept {
      std::lock_guard lock(impl_.observer_mutex_);
      try {
        call();
      } catch (...) {
        if (!job.observer_error)
          job.observer_error = std::current_exception();
      }
    }

    /// on_finished for a URL cancelled before it began; its future is cancelled, so an observer's
    /// exception goes where a throwing done-callback's would.
    void report_cancelled(Job& job) {
      if (!options_.observer)
        return;
      observe(job,
              [&] { options_.observer->on_finished(transfer(job.plan), impl_.cancelled_result(job.plan)); });
      if (job.observer_error)
        job.task->report_error(job.observer_error);
    }

    /// cancel(): every URL ends now.
    void abort_all() {
      cancel_jobs([](const Job&) { return true; });
    }

    /// Future::cancel() reached running transfers: they end Cancelled now.
    void settle_stopped() {
      cancel_jobs([](const Job& job) { return job.task->stop_requested(); });
    }

    /// Ends every job `matches` picks, wherever it is: a transfer is taken out of libcurl, a begun URL
    /// completes Cancelled (its part file removed, or kept under Resume), a URL not begun has its future
    /// cancelled. Waiting URLs are reported in the order they wait.
    template <class Matches>
    void cancel_jobs(Matches&& matches) {
      const detail::AttemptOutcome cancelled{ErrorKind::Cancelled, "cancelled"};
      std::vector<CURL*> stopped;
      for (const auto& [easy, job] : active_)
        if (matches(*job))
          stopped.push_back(easy);
      for (CURL* easy : stopped)
        end_transfer(easy, [&](detail::Attempt&) { return cancelled; });
      auto settle = [&](auto& jobs) {
        const auto ended = std::stable_partition(jobs.begin(), jobs.end(),
                                                 [&](const JobPtr& job) { return !matches(*job); });
        for (auto it = ended; it != jobs.end(); ++it) {
          if ((*it)->begun) {
            complete(std::move(*it), cancelled);
          } else {
            // The observer first, as finish() does: whoever waits on the future may look at what the
            // observer saw as soon as the future is ready.
            report_cancelled(**it);
            (*it)->task->cancel();  // Pending -> Cancelled (or cancelled already by its Future)
          }
        }
        jobs.erase(ended, jobs.end());
      };
      settle(ready_);
      settle(due_);
      settle(retrying_);
      std::make_heap(retrying_.begin(), retrying_.end(), later_retry);
      for (auto it = host_waiting_.begin(); it != host_waiting_.end();) {
        const auto before = it->second.size();
        settle(it->second);
        waiting_for_host_ -= before - it->second.size();
        it = it->second.empty() ? host_waiting_.erase(it) : std::next(it);
      }
    }

    Impl& impl_;
    const DownloadOptions& options_;
    detail::OutputDir& output_;
    const detail::TransferSettings& settings_;
    std::atomic<bool>& cancelled_;
    const std::size_t slots_;  // this loop's share of max_workers
    std::atomic<std::size_t> unfinished_{0};

    // Shared with the loop, under queue_mutex_.
    std::mutex queue_mutex_;
    std::vector<JobPtr> incoming_;
    bool closing_ = false;
    std::atomic<bool> stop_seen_{false};

    // The loop's own. The multi handle outlives the easy handles (and the Impl's share handle
    // outlives both).
    detail::CurlMulti multi_;
    detail::SocketEvents events_{multi_.get()};
    std::vector<detail::CurlEasy> idle_easy_;
    std::deque<JobPtr> ready_;                  // not begun yet, in submission order
    std::deque<JobPtr> due_;                    // begun, ready for their next attempt
    std::size_t begun_ = 0;                     // begun and not finished: the slots in use
    std::unordered_map<CURL*, JobPtr> active_;  // attempts libcurl is running
    std::vector<CURL*> pending_outputs_;        // started, not yet given on_started and a part file
    std::vector<std::pair<JobPtr, detail::AttemptOutcome>> settled_;  // ended, not yet published
    std::size_t finishing_ = 0;     // those of settled_ that will finish: their slots are free
    std::vector<JobPtr> retrying_;  // a min-heap on retry_at
    std::unordered_map<std::string, std::deque<JobPtr>> host_waiting_;  // their host is at per_host
    std::unordered_map<std::string, std::size_t> host_active_;
    std::size_t waiting_for_host_ = 0;
    std::thread loop_thread_;
  };

  /// The loop with the fewest unfinished URLs: the window keeps each loop's slots busy, and a loop
  /// held up by slow transfers is given fewer new ones.
  TransferLoop& least_loaded() {
    return **std::min_element(loops_.begin(), loops_.end(),
                              [](const auto& a, const auto& b) { return a->unfinished() < b->unfinished(); });
  }

  static constexpr std::chrono::milliseconds batch_wait{20};

  const DownloadOptions options_;
  detail::OutputDir output_;
  detail::CurlShare share_;  // DNS and TLS sessions, shared by every loop's easy handles
  const detail::TransferSettings settings_;
  std::mutex plan_mutex_;
  detail::NamePlanner planner_;
  std::size_t next_index_ = 0;
  std::atomic<bool> cancelled_{false};
  // One observer call at a time, whichever thread makes it. Recursive: an on_finished made on the
  // caller's thread (a URL cancelled before it was queued) may itself start a download_all.
  std::recursive_mutex observer_mutex_;

  /// Never runs a task: it counts the Downloader's futures (stats()) and reports errors thrown by
  /// their done-callbacks, as for any executor's futures.
  ThreadPoolExecutor executor_;
  std::vector<std::unique_ptr<TransferLoop>> loops_;  // last: the destructor drains and joins them first
};

Downloader::Downloader(DownloadOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Downloader::~Downloader() = default;

Future<DownloadResult> Downloader::submit(std::string url) {
  return impl_->submit(std::move(url));
}

std::vector<DownloadResult> Downloader::download_all(const std::vector<std::string>& urls, Mode mode) {
  return impl_->download_all(urls, mode);
}

std::size_t Downloader::download_stream(const std::function<std::optional<std::string>()>& next_url,
                                        const std::function<void(std::size_t, DownloadResult&&)>& on_result,
                                        Mode mode) {
  return impl_->download_stream(next_url, on_result, mode);
}

void Downloader::cancel() {
  impl_->cancel();
}
bool Downloader::cancelled() const noexcept {
  return impl_->cancelled();
}
const DownloadOptions& Downloader::options() const noexcept {
  return impl_->options();
}
ExecutorStats Downloader::stats() const noexcept {
  return impl_->stats();
}

std::string Downloader::default_user_agent() {
  return "imgdl/" + std::string(version()) + " (+" + std::string(project_url()) + ") libcurl/" +
         std::string(libcurl_version());
}

}  // namespace imgdl
