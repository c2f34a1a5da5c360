#pragma once
// One transfer loop: a long-lived task on the Downloader's executor that drives its share of the
// transfers. It joins the parts: the Scheduler says which URL may start, the CurlDriver moves its
// bytes, the BodySink turns them into a file, and the loop tells the observer and fulfils the future.

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <unordered_map>
#include <vector>

#include "body_sink.hpp"
#include "curl_driver.hpp"
#include "host_table.hpp"
#include "plan.hpp"
#include "scheduler.hpp"
#include "transfer.hpp"

namespace imgdl::detail {

/// Live counts of a Downloader's URLs, raised by its loops and read by stats().
struct EngineCounters {
  std::atomic<std::size_t> queued{0};     // handed to a loop
  std::atomic<std::size_t> started{0};    // taken by a loop (its future Running)
  std::atomic<std::size_t> completed{0};  // started and ended with a result
  std::atomic<std::size_t> cancelled{0};  // ended before it started
  std::atomic<std::size_t> callback_errors{0};
  std::atomic<std::size_t> digests_on_pool{0};  // large bodies hashed by another pool worker
};

/// What every loop of a Downloader shares; all of it outlives the loops.
struct EngineContext {
  const DownloadOptions* options = nullptr;
  const TransferSettings* settings = nullptr;
  const OutputRules* output = nullptr;
  const std::atomic<bool>* cancelled = nullptr;
  /// One observer call at a time across the loops (the observer's contract). Recursive: an
  /// on_finished made on a caller's thread may itself start a download_all.
  std::recursive_mutex* observer_mutex = nullptr;
  EngineCounters* counters = nullptr;
  /// Where large bodies' digests are computed while the loop goes on (OutputRules::hash_after); null:
  /// on the loop.
  ThreadPoolExecutor* cpu_pool = nullptr;
  /// Host state every loop shares (rate, pauses, unreachable hosts); may be null.
  HostTable* hosts = nullptr;
  /// Wakes every loop: a host found unreachable on one ends the waiting URLs of all.
  std::function<void()> wake_loops;
  /// The slots every loop shares, loop i's share being its own: a loop takes its slots from here.
  SlotPool* slots = nullptr;
};

/// One URL on a transfer loop, from its submission to its result. Heap-held and never moved:
/// libcurl's callbacks, CURLOPT_PRIVATE and the stop callback hold its address.
struct Job : Scheduled {
  Plan plan;
  Promise<DownloadResult> promise;
  DownloadResult result;
  std::chrono::steady_clock::time_point start;
  std::optional<BodySink> sink;  // from begin(): a URL that ends before any request has none
  ProgressReport report;
  ActiveAttempt active;
  std::optional<AttemptOutcome> settled;  // read from libcurl, delivered at the next publish
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  std::exception_ptr observer_error;  // the first exception an observer threw for this URL

  Job(Plan p, Promise<DownloadResult> pr) : plan(std::move(p)), promise(std::move(pr)) { host = plan.host; }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
};
using JobPtr = std::unique_ptr<Job>;

/// Threading: enqueue(), unfinished(), wake() and close() from any thread; run() on one executor
/// worker, once; everything private on that worker only.
class TransferLoop {
 public:
  /// Loop `number` of context.slots, whose share of slots sizes its connection cache.
  TransferLoop(const EngineContext& context, std::size_t number);
  TransferLoop(const TransferLoop&) = delete;
  TransferLoop& operator=(const TransferLoop&) = delete;

  /// Queues a job. Throws ExecutorShutdownError once the loop is closing.
  void enqueue(JobPtr job);
  /// URLs queued on this loop and not finished yet; a moment's snapshot.
  std::size_t unfinished() const noexcept { return unfinished_.load(std::memory_order_relaxed); }
  /// Interrupts the loop's wait.
  void wake() noexcept { driver_.wake(); }
  /// Once every queued URL has finished, run() returns; later enqueue() calls throw.
  void close() noexcept;
  /// Drives the transfers until closed (or `stop` is requested, which closes it) and drained.
  void run(std::stop_token stop) noexcept;
  /// True on the thread inside run().
  bool runs_on_this_thread() const noexcept { return std::this_thread::get_id() == thread_.load(); }

 private:
  void take_incoming(bool& closing);
  void start_ready();
  bool begin(Job& job);
  bool set_running(Job& job);
  void end_unreachable();
  AttemptOutcome unreachable_outcome(const Job& job, const std::string& after) const;
  void start_attempt(Job& job);
  void read_completions();
  void take_hashed();
  bool hash_on_pool(Job& job, AttemptOutcome& outcome);
  void publish_settled();
  void announce_pending();
  [[nodiscard]] std::optional<AttemptOutcome> announce_and_open(Job& job);
  void attempt_done(Job& job, AttemptOutcome outcome);
  bool retries_after(const Job& job, const AttemptOutcome& outcome) const;
  void complete(Job& job, AttemptOutcome outcome);
  void deliver(Job& job, Ending ending);
  void drop_cancelled(Job& job);
  void retire(Job& job);
  void cancel_jobs(const std::function<bool(const Job&)>& matches);
  template <class Call>
  void observe(Job& job, Call&& call) noexcept;

  const EngineContext& context_;
  const DownloadOptions& options_;
  const std::size_t number_;
  std::atomic<std::size_t> unfinished_{0};
  std::atomic<std::thread::id> thread_{};

  // Shared with other threads, under queue_mutex_.
  std::mutex queue_mutex_;
  std::vector<JobPtr> incoming_;
  bool closing_ = false;
  std::atomic<bool> stop_seen_{false};
  std::vector<Job*> hashed_;  // digests computed on the pool, back for publication

  // The loop's own.
  CurlDriver driver_;
  Scheduler scheduler_;
  std::unordered_map<Job*, JobPtr> jobs_;  // every job taken in and not retired
  std::vector<Job*> settled_;              // read from libcurl (or hashed) this pass, published at its end
  std::vector<Job*> unannounced_;          // started without on_started and a file, in start order
  std::vector<JobPtr> retired_;            // done this pass; freed once no list can name them
};

}  // namespace imgdl::detail
