#include "curl_driver.hpp"

#include "plan.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <exception>
#include <variant>

namespace imgdl::detail {

namespace {

/// "https://host:port" of an https URL (as the planner normalised it); empty for any other scheme,
/// which never multiplexes here (no h2c).
std::string https_origin(const std::string& url) {
  return url.starts_with("https://") ? std::string(origin_of(url)) : std::string();
}

/// The attempt failed before any response: its connection never got set up.
bool connection_failed(const AttemptOutcome& outcome) {
  return outcome.http_status == 0 &&
         (outcome.error == ErrorKind::Connect || outcome.error == ErrorKind::Timeout ||
          outcome.error == ErrorKind::Tls || outcome.error == ErrorKind::Dns);
}

// Idle connections kept per driver at most, whatever the number of hosts: each holds a descriptor
// and its TLS state.
constexpr std::size_t max_idle_connections = 1024;

/// Descriptors this process may open, or a conservative guess.
std::size_t descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return 1024;
  return static_cast<std::size_t>(limit.rlim_cur);
}

}  // namespace

CurlDriver::CurlDriver(const TransferSettings& settings, std::size_t slots) : settings_(settings) {
  // libcurl's default cache is 4 connections per easy handle added; a list that rotates over more
  // hosts than that evicts each host's connection before its next URL, and pays a handshake per URL.
  max_connects_ = 4 * std::max<std::size_t>(slots, 1);
  // A quarter of the descriptors for idle connections leaves the rest to files and other loops.
  max_connects_cap_ = std::max(max_connects_, std::min(max_idle_connections, descriptor_limit() / 4));
  curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(max_connects_));
}

void CurlDriver::note_origin(std::string_view url) {
  if (origins_.size() >= max_connects_cap_)
    return;
  if (!origins_.emplace(origin_of(url)).second || origins_.size() <= max_connects_)
    return;
  max_connects_ = origins_.size();
  curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(max_connects_));
}

CurlEasy CurlDriver::take_easy() {
  if (idle_.empty()) {
    CurlEasy easy;
    configure_handle(easy.get(), settings_);
    return easy;
  }
  CurlEasy easy = std::move(idle_.back());
  idle_.pop_back();
  return easy;
}

std::optional<AttemptOutcome> CurlDriver::start(ActiveAttempt& active, void* owner, const std::string& url,
                                                BodySink& sink, std::stop_token stop,
                                                const ProgressReport& report) {
  std::optional<CurlEasy> easy;
  try {
    easy.emplace(take_easy());
  } catch (const std::exception& e) {
    return AttemptOutcome{ErrorKind::Network, e.what()};
  }
  note_origin(url);
  CURL* handle = easy->get();
  auto begun = begin_attempt(handle, settings_, url, sink, std::move(stop), report);
  if (auto* outcome = std::get_if<AttemptOutcome>(&begun)) {
    idle_.push_back(std::move(*easy));
    return std::move(*outcome);
  }
  curl_easy_setopt(handle, CURLOPT_PRIVATE, owner);
  active.attempt = std::move(std::get<AttemptPtr>(begun));
  std::string origin = https_origin(url);
  const bool wait = !origin.empty() && !unreachable_.contains(origin);
  curl_easy_setopt(handle, CURLOPT_PIPEWAIT, wait ? 1L : 0L);
  if (!origin.empty())
    https_.insert_or_assign(handle, Https{std::move(origin), wait});
  if (const CURLMcode code = curl_multi_add_handle(multi_.get(), handle); code != CURLM_OK) {
    https_.erase(handle);
    detach_attempt(handle);
    active.attempt.reset();
    idle_.push_back(std::move(*easy));
    return AttemptOutcome{ErrorKind::Network, curl_multi_strerror(code)};
  }
  active.easy = std::move(easy);
  return std::nullopt;
}

AttemptOutcome CurlDriver::finish(ActiveAttempt& active, CURLcode code) {
  CURL* handle = active.easy->get();
  curl_multi_remove_handle(multi_.get(), handle);
  AttemptOutcome outcome = end_attempt(handle, *active.attempt, code);
  judge_connection(handle, outcome);
  release(active);
  return outcome;
}

void CurlDriver::judge_connection(CURL* handle, const AttemptOutcome& outcome) {
  const auto mine = https_.find(handle);
  if (mine == https_.end())
    return;
  const std::string& origin = mine->second.origin;
  if (!connection_failed(outcome)) {
    if (outcome.http_status != 0)
      unreachable_.erase(origin);
    return;
  }
  unreachable_.insert(origin);
  for (auto& [other, https] : https_) {
    if (other == handle || !https.waits || https.origin != origin)
      continue;
    // Still waiting (no request sent yet): start it over on a connection of its own. One whose request
    // went out on a connection that works is left alone.
    curl_off_t pretransfer = 0;
    curl_easy_getinfo(other, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    if (pretransfer != 0)
      continue;
    curl_multi_remove_handle(multi_.get(), other);
    curl_easy_setopt(other, CURLOPT_PIPEWAIT, 0L);
    curl_multi_add_handle(multi_.get(), other);
    https.waits = false;
  }
}

void CurlDriver::abort(ActiveAttempt& active) {
  curl_multi_remove_handle(multi_.get(), active.easy->get());
  release(active);
}

void CurlDriver::release(ActiveAttempt& active) {
  CURL* handle = active.easy->get();
  https_.erase(handle);
  detach_attempt(handle);  // the handle goes idle: libcurl keeps no pointer into the attempt
  curl_easy_setopt(handle, CURLOPT_PRIVATE, static_cast<void*>(nullptr));
  active.attempt.reset();
  idle_.push_back(std::move(*active.easy));
  active.easy.reset();
}

}  // namespace imgdl::detail
