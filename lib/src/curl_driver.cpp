#include "curl_driver.hpp"

#include <exception>
#include <variant>

namespace imgdl::detail {

CurlDriver::CurlDriver(const TransferSettings& settings) : settings_(settings) {}

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
  CURL* handle = easy->get();
  auto begun = begin_attempt(handle, settings_, url, sink, std::move(stop), report);
  if (auto* outcome = std::get_if<AttemptOutcome>(&begun)) {
    idle_.push_back(std::move(*easy));
    return std::move(*outcome);
  }
  curl_easy_setopt(handle, CURLOPT_PRIVATE, owner);
  active.attempt = std::move(std::get<AttemptPtr>(begun));
  if (const CURLMcode code = curl_multi_add_handle(multi_.get(), handle); code != CURLM_OK) {
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
  release(active);
  return outcome;
}

void CurlDriver::abort(ActiveAttempt& active) {
  curl_multi_remove_handle(multi_.get(), active.easy->get());
  release(active);
}

void CurlDriver::release(ActiveAttempt& active) {
  CURL* handle = active.easy->get();
  detach_attempt(handle);  // the handle goes idle: libcurl keeps no pointer into the attempt
  curl_easy_setopt(handle, CURLOPT_PRIVATE, static_cast<void*>(nullptr));
  active.attempt.reset();
  idle_.push_back(std::move(*active.easy));
  active.easy.reset();
}

}  // namespace imgdl::detail
