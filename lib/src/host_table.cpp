#include "host_table.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace imgdl::detail {

namespace {

std::chrono::steady_clock::duration interval_of(double rate) {
  if (!(rate >= 0) || !std::isfinite(rate))
    throw std::invalid_argument("per_host_rate must be a finite number >= 0");
  if (rate == 0)
    return {};
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(1.0 / rate));
}

}  // namespace

HostTable::HostTable(HostRules rules) : rules_(rules), interval_(interval_of(rules.rate)) {}

bool HostTable::idle(const Host& h, Clock::time_point now) const noexcept {
  return !h.unreachable && h.failures == 0 && h.next_start <= now && h.paused_until <= now;
}

void HostTable::prune(Clock::time_point now) {
  if (hosts_.size() < prune_at_)
    return;
  std::erase_if(hosts_, [&](const auto& entry) { return idle(entry.second, now); });
  prune_at_ = std::max<std::size_t>(1024, 2 * hosts_.size());  // amortized: a sweep per doubling
}

HostGate HostTable::try_start(const std::string& host, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = hosts_.find(host);
  if (it != hosts_.end()) {
    const Host& h = it->second;
    if (h.unreachable)
      return {HostGate::Unreachable};
    const auto ready = std::max(h.next_start, h.paused_until);
    if (ready > now)
      return {HostGate::Wait, ready};
  }
  if (interval_ != Clock::duration::zero()) {
    // Fixed spacing: each start is at least 1/rate after the previous one, with no burst allowance.
    if (it == hosts_.end()) {
      prune(now);
      it = hosts_.emplace(host, Host{}).first;
    }
    it->second.next_start = now + interval_;
  }
  return {HostGate::Go};
}

HostTable::Clock::time_point HostTable::ready_at(const std::string& host, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  const auto it = hosts_.find(host);
  if (it == hosts_.end())
    return now;
  return std::max({now, it->second.next_start, it->second.paused_until});
}

void HostTable::attempt_ended(const std::string& host, const AttemptOutcome& outcome, Clock::time_point now) {
  if (outcome.error == ErrorKind::Cancelled)
    return;  // says nothing about the host
  // Not reached at all: refused, unreachable, or no answer before a timeout. A host that answered
  // anything (even an error status, or a body that then stalled) is reachable.
  const bool not_reached = outcome.error == ErrorKind::Connect ||
                           (outcome.error == ErrorKind::Timeout && outcome.http_status == 0);
  const bool pause = rules_.pause_on_retry_after && outcome.retry_after &&
                     (outcome.http_status == 429 || outcome.http_status == 503);
  const bool counts = rules_.unreachable_after != 0;
  std::lock_guard lock(mutex_);
  auto it = hosts_.find(host);
  if (it == hosts_.end()) {
    if (!pause && !(counts && not_reached))
      return;  // nothing to remember
    prune(now);
    it = hosts_.emplace(host, Host{}).first;
  }
  Host& h = it->second;
  if (pause)
    h.paused_until = std::max(h.paused_until, now + std::min(*outcome.retry_after, rules_.max_pause));
  if (!counts || h.unreachable)
    return;
  if (!not_reached) {
    h.failures = 0;
    return;
  }
  if (++h.failures >= rules_.unreachable_after) {
    h.unreachable = true;
    unreachable_count_.fetch_add(1, std::memory_order_release);
  }
}

bool HostTable::unreachable(const std::string& host) const {
  std::lock_guard lock(mutex_);
  const auto it = hosts_.find(host);
  return it != hosts_.end() && it->second.unreachable;
}

std::string unreachable_message(const std::string& host, std::size_t failures, const std::string& after) {
  std::string message = "host " + host + " unreachable: " + std::to_string(failures) +
                        " consecutive connect failures or timeouts; ";
  if (after.empty())
    return message + "not tried";
  return message + "not retried after: " + after;
}

}  // namespace imgdl::detail
