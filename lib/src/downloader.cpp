#include "imgdl/downloader.hpp"

#include "imgdl/version.hpp"
#include "imgdl/wait.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "body_sink.hpp"
#include "curl_handles.hpp"
#include "loop_router.hpp"
#include "naming.hpp"
#include "observer_call.hpp"
#include "output_dir.hpp"
#include "plan.hpp"
#include "transfer.hpp"
#include "transfer_loop.hpp"

namespace imgdl {

namespace {

using Clock = std::chrono::steady_clock;
using detail::Job;
using detail::JobPtr;
using detail::Plan;
using detail::TransferLoop;

}  // namespace

class Downloader::Impl {
 public:
  explicit Impl(DownloadOptions options)
      : options_(resolve(std::move(options))),
        output_(options_.output_dir),
        settings_{&options_, share_.get(), options_.user_agent},
        executor_(options_.executor ? options_.executor : own_executor(options_)),
        rules_{&options_, &output_, [this](const std::string& name) { return is_reserved(name); },
               // Only the Downloader's own pool surely has a worker free for a digest: on a shared one,
               // a digest queued behind a task that waits for this very URL would never run.
               /*hash_after=*/!options_.executor,
               // Files made from here on are this run's: a far-apart URL's name never lands on one.
               output_.now()},
        context_{&options_,
                 &settings_,
                 &rules_,
                 &cancelled_,
                 &observer_mutex_,
                 &counters_,
                 rules_.hash_after ? executor_.get() : nullptr,
                 &hosts_,
                 [this] {
                   for (auto& loop : loops_)
                     loop->wake();
                 },
                 &slots_} {
    const std::size_t threads = options_.transfer_threads;
    if (executor_->max_workers() < threads)
      throw std::invalid_argument("the executor has " + std::to_string(executor_->max_workers()) +
                                  " workers; the Downloader runs " + std::to_string(threads) +
                                  " transfer loops on it, one worker each, for its whole life");
    loops_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i)
      loops_.push_back(std::make_unique<TransferLoop>(context_, i));
    loop_tasks_.reserve(threads);
    try {
      for (auto& loop : loops_)
        loop_tasks_.push_back(
            executor_->submit([loop = loop.get()](std::stop_token stop) { loop->run(stop); }));
    } catch (...) {
      stop_loops();
      throw;
    }
  }

  /// Must not run on a transfer loop (from an observer or a done-callback): it waits for them.
  ~Impl() { stop_loops(); }

  Future<DownloadResult> submit(std::string url) { return schedule(plan(std::move(url))); }

  Plan plan(std::string url) {
    return detail::make_plan(
        std::move(url),
        [this](const detail::ParsedUrl& parsed, Plan& p) {
          std::lock_guard lock(plan_mutex_);
          p.index = next_index_++;
          auto name = planner_.assign(parsed);
          p.past_window = planner_.has_forgotten();
          return name;
        },
        [this](Plan& p) {
          std::lock_guard lock(plan_mutex_);
          p.index = next_index_++;
        });
  }

  /// Hands a planned URL to a transfer loop: its host's (loop_for), or in Sequential mode always the first
  /// (one connection, as a single worker would keep). `announce` reports on_queued now; download_all
  /// announces every URL when it plans them instead. Throws ExecutorShutdownError after cancel().
  Future<DownloadResult> schedule(Plan p, bool announce = true, Mode mode = Mode::Pooled) {
    const auto& observer = options_.observer;
    if (observer && announce)
      observer->on_queued(detail::transfer_of(p));  // first, even when refused: its on_finished follows
    if (cancelled_.load())
      throw ExecutorShutdownError();
    Promise<DownloadResult> promise([counters = &counters_](std::exception_ptr) {
      counters->callback_errors.fetch_add(1, std::memory_order_relaxed);
    });
    Future<DownloadResult> future = promise.get_future();
    TransferLoop& loop = mode == Mode::Sequential ? *loops_.front() : loop_for(p);
    loop.enqueue(std::make_unique<Job>(std::move(p), std::move(promise)));
    counters_.queued.fetch_add(1, std::memory_order_relaxed);
    return future;
  }

  std::vector<DownloadResult> download_all(const std::vector<std::string>& urls, Mode mode) {
    std::vector<Plan> plans;
    plans.reserve(urls.size());
    for (const auto& url : urls)
      plans.push_back(plan(url));  // every name before any transfer
    if (options_.observer)
      for (const auto& p : plans)
        options_.observer->on_queued(detail::transfer_of(p));

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
    for (auto& loop : loops_)
      loop->wake();
  }
  bool cancelled() const noexcept { return cancelled_.load(); }
  const DownloadOptions& options() const noexcept { return options_; }
  DownloaderStats stats() const noexcept {
    const auto load = [](const std::atomic<std::size_t>& n) { return n.load(std::memory_order_relaxed); };
    DownloaderStats s;
    // Read against the order they rise (a URL is queued, then started, then completed), so a URL moving
    // meanwhile is seen in one count or the next, never in none.
    s.completed = load(counters_.completed);
    s.cancelled = load(counters_.cancelled);
    const std::size_t started = load(counters_.started);
    const std::size_t queued = load(counters_.queued);
    s.running = started - std::min(started, s.completed);
    s.pending = queued - std::min(queued, started + s.cancelled);
    s.callback_errors = load(counters_.callback_errors);
    s.digests_on_pool = load(counters_.digests_on_pool);
    s.transfer_threads = loops_.size();
    return s;
  }

 private:
  /// Below this many workers per thread, a second transfer thread costs more switches than it saves.
  static constexpr std::size_t workers_per_transfer_thread = 16;

  static DownloadOptions resolve(DownloadOptions o) {
    if (o.max_workers && *o.max_workers == 0)
      throw std::invalid_argument("max_workers must be greater than 0");
    if (o.name_window == 0)
      throw std::invalid_argument("name_window must be at least 1");
    if (!o.max_workers)
      o.max_workers = ThreadPoolExecutor::default_max_workers();
    o = detail::resolve_transfer_options(std::move(o));  // shared with download_image
    if (!(o.per_host_rate >= 0) || !std::isfinite(o.per_host_rate))
      throw std::invalid_argument("per_host_rate must be a finite number >= 0");
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

  /// Each loop's share of `workers` slots, as even as it goes.
  static std::vector<std::size_t> split(std::size_t workers, std::size_t threads) {
    std::vector<std::size_t> shares;
    for (std::size_t i = 0; i < threads; ++i)
      shares.push_back(workers / threads + (i < workers % threads));
    return shares;
  }

  /// The pool a Downloader makes when given none: one worker per transfer loop, and one per hardware
  /// thread for the digests of large bodies (started only when one is needed).
  static std::shared_ptr<ThreadPoolExecutor> own_executor(const DownloadOptions& o) {
    const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
    return std::make_shared<ThreadPoolExecutor>(
        ExecutorOptions{.max_workers = o.transfer_threads + hardware, .thread_name_prefix = "imgdl-net"});
  }

  /// Closes every loop and waits for it to drain. A loop whose task never ran (a shared executor shut
  /// down with cancel_futures) is drained here, on this thread, so no URL goes unanswered.
  void stop_loops() noexcept {
    for (auto& loop : loops_)
      loop->close();
    for (std::size_t i = 0; i < loop_tasks_.size(); ++i) {
      detail::FutureAccess::state(loop_tasks_[i])->wait();  // exception() would throw if cancelled
      if (loop_tasks_[i].cancelled())
        loops_[i]->run({});
    }
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
          auto cancelled = detail::cancelled_before_start(options_, slot.url, slot.name);
          if (options_.observer) {
            std::lock_guard lock(observer_mutex_);  // one call at a time, as from the transfer threads
            options_.observer->on_finished({index, slot.url, slot.name}, cancelled);
          }
          sink(position, std::move(cancelled));
          continue;
        }
        detail::FutureAccess::state(slot.future)
            ->add_callback([weak = std::weak_ptr<detail::CompletionQueue>(completions), position] {
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
          sink(position, detail::FutureAccess::take(done.future));
        } catch (const CancelledError&) {
          sink(position, detail::cancelled_before_start(options_, done.url, done.name));
        }
      }
      finished.clear();
    }
  }

  /// Whether a URL of this run has `name` planned. Any thread.
  bool is_reserved(const std::string& name) {
    std::lock_guard lock(plan_mutex_);
    return planner_.is_reserved(name);
  }

  /// The loop for a URL: see LoopRouter.
  TransferLoop& loop_for(const Plan& p) {
    if (loops_.size() == 1)
      return *loops_.front();
    std::vector<detail::LoopLoad> loads(loops_.size());
    for (std::size_t i = 0; i < loops_.size(); ++i)
      loads[i] = {loops_[i]->unfinished()};
    return *loops_[router_.route(detail::origin_of(p.fetch_url), loads)];
  }

  static constexpr std::chrono::milliseconds batch_wait{20};

  const DownloadOptions options_;
  detail::OutputDir output_;
  detail::CurlShare share_;  // DNS and TLS sessions, shared by every loop's easy handles
  const detail::TransferSettings settings_;
  // Before the rules and loops that use it, destroyed after them.
  std::shared_ptr<ThreadPoolExecutor> executor_;
  const detail::OutputRules rules_;
  std::mutex plan_mutex_;
  detail::NamePlanner planner_{options_.name_window};
  std::size_t next_index_ = 0;
  std::atomic<bool> cancelled_{false};
  std::recursive_mutex observer_mutex_;
  detail::EngineCounters counters_;
  detail::HostTable hosts_{{.rate = options_.per_host_rate,
                            .unreachable_after = options_.unreachable_after,
                            .pause_on_retry_after = options_.retry_after_pauses_host,
                            .max_pause = options_.retry_max_delay}};
  // max_workers split between the loops as evenly as it goes: together they never run more. Loops
  // are woken only once running (the pool wakes a loop it gave slots to).
  detail::SlotPool slots_{split(*options_.max_workers, options_.transfer_threads),
                          [this](std::size_t loop) { loops_[loop]->wake(); },
                          [this](std::size_t loop) { return loops_[loop]->unfinished() != 0; }};
  const detail::EngineContext context_;
  // A host is busy when it has more than a quarter of a loop's workers among the last window of URLs
  // (run_window keeps 2 x max_workers in flight).
  detail::LoopRouter router_{
      2 * *options_.max_workers,
      std::max<std::size_t>(2,
                            *options_.max_workers / std::max<std::size_t>(options_.transfer_threads, 1) / 4)};
  std::vector<std::unique_ptr<TransferLoop>> loops_;  // after the executor: destroyed once their tasks end
  std::vector<Future<void>> loop_tasks_;
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
DownloaderStats Downloader::stats() const noexcept {
  return impl_->stats();
}

std::string Downloader::default_user_agent() {
  return "imgdl/" + std::string(version()) + " (+" + std::string(project_url()) + ") libcurl/" +
         std::string(libcurl_version());
}

}  // namespace imgdl
