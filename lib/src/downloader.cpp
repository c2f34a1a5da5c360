#include "imgdl/downloader.hpp"

#include "imgdl/version.hpp"
#include "imgdl/wait.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "curl_handles.hpp"
#include "host_limiter.hpp"
#include "image_type.hpp"
#include "naming.hpp"
#include "output_dir.hpp"
#include "sha256.hpp"
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
  std::string name;       // planned file name; may still lack an extension
  ErrorKind error = ErrorKind::None;
  std::string message;
  bool duplicate = false;
};

/// Sleeps for `delay` unless a stop is requested first; false when stopped.
bool sleep_unless_stopped(std::chrono::milliseconds delay, const std::stop_token& stop) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  return !cv.wait_for(lock, stop, delay, [] { return false; }) && !stop.stop_requested();
}

std::chrono::milliseconds backoff(const DownloadOptions& o, int attempt, std::optional<std::chrono::milliseconds> retry_after) {
  if (retry_after) return std::min(*retry_after, o.retry_max_delay);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const double base = static_cast<double>(o.retry_backoff.count()) * std::pow(2.0, attempt - 1);
  const double jittered = base * std::uniform_real_distribution<double>(0.5, 1.5)(rng);
  const auto capped = std::min(jittered, static_cast<double>(o.retry_max_delay.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped));
}

}  // namespace

std::string_view to_string(DownloadStatus status) noexcept {
  switch (status) {
    case DownloadStatus::Ok: return "ok";
    case DownloadStatus::Skipped: return "skipped";
    case DownloadStatus::Failed: return "failed";
    case DownloadStatus::Cancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::None: return "none";
    case ErrorKind::InvalidUrl: return "invalid_url";
    case ErrorKind::Dns: return "dns";
    case ErrorKind::Connect: return "connect";
    case ErrorKind::Tls: return "tls";
    case ErrorKind::Timeout: return "timeout";
    case ErrorKind::HttpStatus: return "http_status";
    case ErrorKind::TooManyRedirects: return "too_many_redirects";
    case ErrorKind::ForbiddenRedirect: return "forbidden_redirect";
    case ErrorKind::TooLarge: return "too_large";
    case ErrorKind::NotImage: return "not_image";
    case ErrorKind::Empty: return "empty";
    case ErrorKind::Truncated: return "truncated";
    case ErrorKind::Network: return "network";
    case ErrorKind::Write: return "write";
    case ErrorKind::Cancelled: return "cancelled";
  }
  return "unknown";
}

class Downloader::Impl {
 public:
  explicit Impl(DownloadOptions options)
      : options_(resolve(std::move(options))),
        output_(options_.output_dir),
        limiter_(options_.per_host),
        settings_{&options_, share_.get(), options_.user_agent},
        // Declared last: destroyed first, so every worker (and its easy handle) is gone before the
        // share handle and the output directory.
        executor_(ExecutorOptions{.max_workers = options_.max_workers, .thread_name_prefix = "imgdl"}) {}

  ~Impl() { executor_.shutdown(true); }

  Future<DownloadResult> submit(std::string url) {
    return schedule(plan(std::move(url)));
  }

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

  /// Schedules a planned URL. `announce` reports on_queued now; download_all announces every URL
  /// when it plans them instead.
  Future<DownloadResult> schedule(Plan p, bool announce = true) {
    const auto& observer = options_.observer;
    if (observer && announce) observer->on_queued(transfer(p));
    if (observer) {
      auto future = executor_.submit([this, p](std::stop_token stop) { return fetch(p, stop); });
      // A transfer cancelled before any worker took it never runs fetch(): report it from here.
      future.add_done_callback([this, p](const Future<DownloadResult>& f) {
        if (f.cancelled()) options_.observer->on_finished(transfer(p), cancelled_result(p));
      });
      return future;
    }
    return executor_.submit([this, p = std::move(p)](std::stop_token stop) { return fetch(p, stop); });
  }

  std::vector<DownloadResult> download_all(const std::vector<std::string>& urls, Mode mode) {
    std::vector<Plan> plans;
    plans.reserve(urls.size());
    for (const auto& url : urls) plans.push_back(plan(url));  // every name before any transfer
    if (options_.observer)
      for (const auto& p : plans) options_.observer->on_queued(transfer(p));

    std::vector<DownloadResult> results(plans.size());
    std::size_t next = 0;
    run_window([&]() -> std::optional<Plan> {
                 if (next == plans.size()) return std::nullopt;
                 return std::move(plans[next++]);
               },
               [&](std::size_t position, DownloadResult&& r) { results[position] = std::move(r); },
               mode, false);
    return results;
  }

  std::size_t download_stream(const std::function<std::optional<std::string>()>& next_url,
                              const std::function<void(std::size_t, DownloadResult&&)>& on_result, Mode mode) {
    return run_window(
        [&]() -> std::optional<Plan> {
          if (cancelled_.load()) return std::nullopt;  // stop reading the input
          auto url = next_url();
          if (!url) return std::nullopt;
          return plan(std::move(*url));
        },
        on_result, mode, true);
  }

  void cancel() {
    cancelled_.store(true);
    executor_.shutdown(false, true, true);
  }
  bool cancelled() const noexcept { return cancelled_.load(); }
  const DownloadOptions& options() const noexcept { return options_; }
  ExecutorStats stats() const noexcept { return executor_.stats(); }

 private:
  static DownloadOptions resolve(DownloadOptions o) {
    detail::ensure_curl_global_init();  // before any worker thread exists
    if (o.max_workers && *o.max_workers == 0) throw std::invalid_argument("max_workers must be greater than 0");
    if (!o.max_workers) o.max_workers = ThreadPoolExecutor::default_max_workers();
    if (o.retries < 0) throw std::invalid_argument("retries must not be negative");
    if (o.max_redirects < 0) throw std::invalid_argument("max_redirects must not be negative");
    if (o.user_agent.empty()) o.user_agent = default_user_agent();
    if (o.output_dir.empty()) o.output_dir = ".";
    return o;
  }

  static DownloadObserver::Transfer transfer(const Plan& p) { return {p.index, p.url, p.name}; }

  DownloadResult base_result(const Plan& p) const {
    DownloadResult r;
    r.url = p.url;
    // A duplicate has no file of its own: the earlier URL's may have been renamed, so name none.
    if (!p.name.empty() && !p.duplicate) r.path = options_.output_dir / p.name;
    return r;
  }

  DownloadResult cancelled_result(const Plan& p) const { return cancelled_result(p.url, p.name); }
  DownloadResult cancelled_result(const std::string& url, const std::string& name) const {
    DownloadResult r;
    r.url = url;
    if (!name.empty()) r.path = options_.output_dir / name;
    r.status = DownloadStatus::Cancelled;
    r.error = ErrorKind::Cancelled;
    r.message = "cancelled before it started";
    return r;
  }

  /// The one scheduling loop behind download_all and download_stream: keeps at most a window of
  /// transfers submitted (2 × workers, so each worker has its next task queued; 1 when sequential),
  /// and hands each result to `sink` on this thread as it completes, with its position among the plans
  /// this call pulled (not the Downloader-wide index: other threads may submit meanwhile). Memory
  /// stays bounded whatever the length of the input. After cancel(), plans still pulled are reported
  /// cancelled unscheduled.
  std::size_t run_window(const std::function<std::optional<Plan>()>& next_plan,
                         const std::function<void(std::size_t, DownloadResult&&)>& sink, Mode mode, bool announce) {
    struct InFlight {
      std::string url;
      std::string name;
      Future<DownloadResult> future;
    };
    const std::size_t window = mode == Mode::Sequential ? 1 : 2 * *options_.max_workers;
    auto completions = std::make_shared<detail::CompletionQueue>();
    std::unordered_map<std::size_t, InFlight> in_flight;
    std::size_t count = 0;
    bool exhausted = false;
    // A throwing callback ends the loop: its transfers are asked to stop rather than left running.
    struct CancelOnExit {
      std::unordered_map<std::size_t, InFlight>& in_flight;
      ~CancelOnExit() {
        for (auto& [index, slot] : in_flight) slot.future.cancel();
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
          slot.future = schedule(std::move(*p), announce);
        } catch (const ExecutorShutdownError&) {
          // cancel() ran before this URL's turn: it ends here, and the observer still hears of it.
          auto cancelled = cancelled_result(slot.url, slot.name);
          if (options_.observer) options_.observer->on_finished({index, slot.url, slot.name}, cancelled);
          sink(position, std::move(cancelled));
          continue;
        }
        slot.future.state()->add_callback([weak = std::weak_ptr<detail::CompletionQueue>(completions), position] {
          if (auto queue = weak.lock()) queue->push(position);
        });
        in_flight.emplace(position, std::move(slot));
      }
      if (in_flight.empty()) return count;
      const std::size_t position = *completions->pop(std::nullopt);
      auto node = in_flight.extract(position);
      auto& done = node.mapped();
      try {
        sink(position, done.future.take());
      } catch (const CancelledError&) {
        sink(position, cancelled_result(done.url, done.name));
      }
    }
  }

  /// Whether a URL planned as `name` already has its file: a name without an extension is saved with
  /// the sniffed type's, so any image extension counts.
  bool final_file_exists(const std::string& name) const {
    if (output_.exists(name)) return true;
    if (detail::has_extension(name)) return false;
    for (auto type : {ImageType::Jpeg, ImageType::Png, ImageType::Gif, ImageType::Webp, ImageType::Bmp, ImageType::Tiff,
                      ImageType::Ico, ImageType::Avif, ImageType::Heic, ImageType::Svg}) {
      if (output_.exists(detail::with_extension_for(name, extension_for(type)))) return true;
    }
    return false;
  }

  /// Runs on a worker: the whole life of one URL, attempts and retries included.
  DownloadResult fetch(const Plan& p, std::stop_token stop) {
    const auto start = Clock::now();
    auto result = base_result(p);
    const auto& observer = options_.observer;
    const auto info = transfer(p);
    auto finish = [&](DownloadStatus status, ErrorKind error, std::string message) {
      result.status = status;
      result.error = error;
      result.message = std::move(message);
      result.elapsed = Clock::now() - start;
      if (observer) observer->on_finished(info, result);
      return result;
    };

    if (p.error != ErrorKind::None) return finish(DownloadStatus::Failed, p.error, p.message);
    if (p.duplicate) return finish(DownloadStatus::Skipped, ErrorKind::None, "duplicate of an earlier URL in this run");
    const bool resume = options_.on_exists == OnExists::Resume;
    if ((options_.on_exists == OnExists::Skip || resume) && final_file_exists(p.name))
      return finish(DownloadStatus::Skipped, ErrorKind::None, "already exists");
    if (stop.stop_requested()) return finish(DownloadStatus::Cancelled, ErrorKind::Cancelled, "cancelled");
    if (observer) observer->on_started(info);

    std::error_code error;
    const std::string stem = detail::part_file_stem(p.name);
    detail::PartFile part = output_.open_part(stem, resume, error);
    if (error == std::errc::device_or_resource_busy)
      return finish(DownloadStatus::Failed, ErrorKind::Write, "another transfer is writing " + stem + ".part in this directory");
    if (error) return finish(DownloadStatus::Failed, ErrorKind::Write, "cannot create " + stem + ".part: " + error.message());
    detail::Sha256 hash;
    if (part.size() > 0 && options_.compute_sha256) {
      if (auto read_error = part.read_all([&](std::string_view chunk) { hash.update(chunk); }))
        return finish(DownloadStatus::Failed, ErrorKind::Write, "cannot read " + part.name() + ": " + read_error.message());
    }

    auto report = [&](std::uint64_t bytes, std::optional<std::uint64_t> total) {
      if (observer) observer->on_progress(info, bytes, total);
    };
    thread_local std::optional<detail::CurlEasy> easy;  // one per worker thread, reused across tasks
    if (!easy) easy.emplace();

    detail::AttemptOutcome outcome;
    bool use_range = resume;
    for (int attempt = 1;; ++attempt) {
      result.attempts = attempt;
      {
        auto slot = limiter_.acquire(p.host, stop);
        if (!slot) {
          outcome = {ErrorKind::Cancelled, "cancelled"};
          break;
        }
        outcome = detail::run_attempt(*easy, settings_, p.fetch_url, part, hash, use_range, stop, report);
      }
      result.http_status = outcome.http_status;
      if (outcome.error == ErrorKind::None || !outcome.retryable || attempt > options_.retries) break;
      if (outcome.restart_from_scratch || !resume) {
        if (auto truncate_error = part.truncate()) {
          outcome = {ErrorKind::Write, "cannot truncate " + part.name() + ": " + truncate_error.message()};
          break;
        }
        hash = detail::Sha256();
        use_range = resume && !outcome.restart_from_scratch;
      }
      const auto delay = backoff(options_, attempt, outcome.retry_after);
      if (observer) observer->on_retrying(info, attempt, delay, outcome.message);
      if (!sleep_unless_stopped(delay, stop)) {
        outcome = {ErrorKind::Cancelled, "cancelled"};
        break;
      }
    }

    result.bytes = part.size();
    if (outcome.error != ErrorKind::None) {
      // Under Resume, a transfer cut short stays as .part for the next run to continue.
      const bool keep = resume && part.size() > 0 &&
                        (outcome.retryable || outcome.error == ErrorKind::Cancelled || outcome.error == ErrorKind::Timeout);
      if (keep) part.keep();
      part.discard();
      const auto status = outcome.error == ErrorKind::Cancelled ? DownloadStatus::Cancelled : DownloadStatus::Failed;
      return finish(status, outcome.error, outcome.message);
    }

    result.image_type = outcome.image_type;
    std::string final_name = p.name;
    if (!detail::has_extension(final_name) && outcome.image_type != ImageType::Unknown)
      final_name = detail::with_extension_for(final_name, extension_for(outcome.image_type));
    if (options_.compute_sha256) result.sha256 = hash.hex_digest();
    // Under Rename, a name taken on disk moves on to name.N.ext, but never onto a name planned for a
    // later URL of this run: names must depend on the input order alone.
    const auto reserved = [this](const std::string& candidate) {
      std::lock_guard lock(plan_mutex_);
      return planner_.is_reserved(candidate);
    };
    const auto published = output_.publish(part, final_name, options_.on_exists, reserved, error);
    if (error) {
      part.discard();
      return finish(DownloadStatus::Failed, ErrorKind::Write, "cannot rename to " + final_name + ": " + error.message());
    }
    result.path = options_.output_dir / published;
    return finish(DownloadStatus::Ok, ErrorKind::None, {});
  }

  const DownloadOptions options_;
  detail::OutputDir output_;
  detail::HostLimiter limiter_;
  detail::CurlShare share_;
  const detail::TransferSettings settings_;
  std::mutex plan_mutex_;
  detail::NamePlanner planner_;
  std::size_t next_index_ = 0;
  std::atomic<bool> cancelled_{false};
  ThreadPoolExecutor executor_;
};

Downloader::Downloader(DownloadOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Downloader::~Downloader() = default;

Future<DownloadResult> Downloader::submit(std::string url) { return impl_->submit(std::move(url)); }

std::vector<DownloadResult> Downloader::download_all(const std::vector<std::string>& urls, Mode mode) {
  return impl_->download_all(urls, mode);
}

std::size_t Downloader::download_stream(const std::function<std::optional<std::string>()>& next_url,
                                        const std::function<void(std::size_t, DownloadResult&&)>& on_result,
                                        Mode mode) {
  return impl_->download_stream(next_url, on_result, mode);
}

void Downloader::cancel() { impl_->cancel(); }
bool Downloader::cancelled() const noexcept { return impl_->cancelled(); }
const DownloadOptions& Downloader::options() const noexcept { return impl_->options(); }
ExecutorStats Downloader::stats() const noexcept { return impl_->stats(); }

std::string Downloader::default_user_agent() {
  return "imgdl/" + std::string(version()) + " (+" + std::string(project_url()) + ") libcurl/" +
         std::string(libcurl_version());
}

}  // namespace imgdl
