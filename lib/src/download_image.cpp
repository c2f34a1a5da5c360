// download_image: one URL on one easy handle, run by curl_easy_perform on the calling thread. Naming
// (make_plan), what ends a URL before any request (ending_without_fetch), the attempt (begin_attempt,
// end_attempt), the retry rule and delay, and the file (BodySink) are the Downloader's own code; only
// the driving differs: a blocking perform and a sleep instead of the event loop and its scheduler.
#include "imgdl/download_image.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <variant>

#include "body_sink.hpp"
#include "curl_handles.hpp"
#include "naming.hpp"
#include "observer_call.hpp"
#include "output_dir.hpp"
#include "plan.hpp"
#include "scheduler.hpp"
#include "transfer.hpp"

namespace imgdl {

namespace {

using Clock = std::chrono::steady_clock;
using detail::AttemptOutcome;
using detail::Ending;

/// Numbers the calls, for DownloadObserver::Transfer::index.
std::atomic<std::size_t> next_call_index{0};

/// One observer call at a time across every download_image in the process, as a Downloader serialises
/// its own. Recursive: an observer may itself call download_image.
std::recursive_mutex observer_mutex;

/// One call's URL and its observer calls.
class Call {
 public:
  Call(const DownloadOptions& options, detail::Plan plan) : options_(options), plan_(std::move(plan)) {}

  const detail::Plan& plan() const noexcept { return plan_; }
  detail::Plan& plan() noexcept { return plan_; }

  /// Runs `call` on the observer, if any; keeps the first exception for rethrow().
  template <class F>
  void observe(F&& call) noexcept {
    if (options_.observer)
      detail::call_observer(observer_mutex, error_,
                            [&] { call(*options_.observer, detail::transfer_of(plan_)); });
  }

  void rethrow_observer_error() const {
    if (error_)
      std::rethrow_exception(error_);
  }

 private:
  const DownloadOptions& options_;
  detail::Plan plan_;
  std::exception_ptr error_;
};

/// Waits `delay`, or less if `stop` is requested. False when stopped.
bool sleep_unless_stopped(std::chrono::milliseconds delay, const std::stop_token& stop) {
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_for(lock, stop, delay, [] { return false; });
  return !stop.stop_requested();
}

/// One attempt on `easy`: begun, performed to its end on this thread, and judged.
AttemptOutcome perform_attempt(CURL* easy, const detail::TransferSettings& settings, const std::string& url,
                               detail::BodySink& sink, const std::stop_token& stop,
                               const detail::ProgressReport& report) {
  auto begun = detail::begin_attempt(easy, settings, url, sink, stop, report);
  if (auto* outcome = std::get_if<AttemptOutcome>(&begun))
    return std::move(*outcome);
  auto& attempt = std::get<detail::AttemptPtr>(begun);
  const CURLcode code = curl_easy_perform(easy);
  AttemptOutcome outcome = detail::end_attempt(easy, *attempt, code);
  detail::detach_attempt(easy);
  return outcome;
}

/// The URL's transfer, from on_started to the end of its last attempt, and its file.
Ending fetch(Call& call, const detail::OutputRules& rules, const detail::TransferSettings& settings,
             const std::stop_token& stop, DownloadResult& result) {
  const DownloadOptions& options = *rules.options;
  const detail::Plan& plan = call.plan();
  detail::BodySink sink(rules, plan.name);
  call.observe([](DownloadObserver& o, const auto& t) { o.on_started(t); });
  // Opened before the first request (the event loop opens it once the request is out): there is no
  // other transfer for this thread to get going meanwhile.
  if (auto failure = sink.open())
    return sink.finish(std::move(*failure), result);
  detail::ProgressReport report;
  if (options.observer) {
    report = [&call](std::uint64_t bytes, std::optional<std::uint64_t> total) {
      call.observe([&](DownloadObserver& o, const auto& t) { o.on_progress(t, bytes, total); });
    };
  }
  std::optional<detail::CurlEasy> easy;
  try {
    easy.emplace();
  } catch (const std::exception& e) {
    return sink.finish(AttemptOutcome{ErrorKind::Network, e.what()}, result);
  }
  detail::configure_handle(easy->get(), settings);
  while (true) {
    ++result.attempts;
    AttemptOutcome outcome = perform_attempt(easy->get(), settings, plan.fetch_url, sink, stop, report);
    result.http_status = outcome.http_status;
    result.http_version = outcome.http_version;
    if (!detail::retries_after(outcome, result.attempts, options.retries))
      return sink.finish(std::move(outcome), result);
    if (auto failure = sink.prepare_retry(outcome.restart_from_scratch))
      return sink.finish(std::move(*failure), result);
    const auto delay = detail::retry_delay(options.retry_backoff, options.retry_max_delay, result.attempts,
                                           outcome.retry_after, detail::random_jitter());
    call.observe([&](DownloadObserver& o, const auto& t) {
      o.on_retrying(t, result.attempts, delay, outcome.message);
    });
    if (!sleep_unless_stopped(delay, stop))
      return sink.finish(AttemptOutcome{ErrorKind::Cancelled, "cancelled"}, result);
  }
}

DownloadResult run(std::string url, const DownloadOptions& given, const std::stop_token& stop) {
  const DownloadOptions options = detail::resolve_transfer_options(given);
  const detail::OutputDir dir(options.output_dir);
  // No planner: the name is the URL's basename, and publishing makes it unique on disk.
  const detail::OutputRules rules{&options, &dir, {}};
  const detail::TransferSettings settings{&options, nullptr, options.user_agent};
  const std::size_t index = next_call_index.fetch_add(1, std::memory_order_relaxed);
  Call call(options, detail::make_plan(
                         std::move(url),
                         [index](const detail::ParsedUrl& parsed, detail::Plan& p) {
                           p.index = index;
                           return std::optional<std::string>(detail::filename_from_url(parsed));
                         },
                         [index](detail::Plan& p) { p.index = index; }));
  call.observe([](DownloadObserver& o, const auto& t) { o.on_queued(t); });

  DownloadResult result;
  result.url = call.plan().url;
  const auto start = Clock::now();
  std::optional<Ending> ending = detail::ending_without_fetch(rules, call.plan());
  if (!ending && stop.stop_requested())
    ending = Ending{DownloadStatus::Cancelled, ErrorKind::Cancelled, "cancelled"};
  if (!ending)
    ending = fetch(call, rules, settings, stop, result);
  detail::settle_result(result, std::move(*ending), call.plan(), options, start);
  call.observe([&](DownloadObserver& o, const auto& t) { o.on_finished(t, result); });
  call.rethrow_observer_error();
  return result;
}

}  // namespace

DownloadResult DownloadImage::operator()(std::string url, const DownloadOptions& options) const {
  return run(std::move(url), options, {});
}

DownloadResult DownloadImage::operator()(std::string url, const DownloadOptions& options,
                                         std::stop_token stop) const {
  return run(std::move(url), options, stop);
}

}  // namespace imgdl
