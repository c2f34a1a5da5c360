#pragma once
// What every transfer loop of a Downloader must agree on about a host (an origin: scheme, name and
// port): when its next attempt may start (per_host_rate), whether it asked to be left alone
// (Retry-After on 429/503), and whether it is unreachable (consecutive connect failures or timeouts).
// No libcurl, no sockets: time comes in as an argument, so tests drive it with a fake clock.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "attempt_outcome.hpp"

namespace imgdl::detail {

/// The politeness rules, from DownloadOptions.
struct HostRules {
  /// Attempts per second to one host; 0 means no limit.
  double rate = 0;
  /// Consecutive connect failures or timeouts before any response that make a host unreachable; 0: never.
  std::size_t unreachable_after = 0;
  /// Whether a 429 or 503 with Retry-After pauses the whole host.
  bool pause_on_retry_after = false;
  /// The longest pause a Retry-After may ask for (the retry delay's cap).
  std::chrono::milliseconds max_pause{std::chrono::seconds(30)};
};

/// Whether an attempt to a host may start now.
struct HostGate {
  enum Kind : std::uint8_t { Go, Wait, Unreachable } kind = Go;
  std::chrono::steady_clock::time_point until{};  // for Wait: when to ask again
};

/// The shared host state. Threading: every member from any thread; one mutex, held for a map lookup.
class HostTable {
 public:
  using Clock = std::chrono::steady_clock;

  explicit HostTable(HostRules rules);

  /// Whether any rule needs the table; when not, the scheduler never asks.
  bool active() const noexcept {
    return rules_.rate > 0 || rules_.unreachable_after > 0 || rules_.pause_on_retry_after;
  }

  /// May an attempt to `host` start at `now`? Go records the start (the next one is spaced after it).
  HostGate try_start(const std::string& host, Clock::time_point now);
  /// When `host` would let an attempt start, without recording one; `now` when it would at once.
  Clock::time_point ready_at(const std::string& host, Clock::time_point now) const;

  /// What an ended attempt says about its host: a failure to reach it counts towards unreachable, any
  /// response resets the count, a 429/503 with Retry-After pauses it. Cancellations say nothing.
  void attempt_ended(const std::string& host, const AttemptOutcome& outcome, Clock::time_point now);

  /// True once `host` was found unreachable; final for the table's life.
  bool unreachable(const std::string& host) const;
  /// How many hosts were found unreachable so far: loops compare it with what they saw to know when to
  /// look for waiting URLs of a newly unreachable host. Lock-free.
  std::uint64_t unreachable_count() const noexcept {
    return unreachable_count_.load(std::memory_order_acquire);
  }
  const HostRules& rules() const noexcept { return rules_; }

 private:
  struct Host {
    Clock::time_point next_start{};  // per rate
    Clock::time_point paused_until{};
    std::size_t failures = 0;  // consecutive
    bool unreachable = false;
  };
  bool idle(const Host& h, Clock::time_point now) const noexcept;
  void prune(Clock::time_point now);

  const HostRules rules_;
  const Clock::duration interval_;  // between attempt starts, from rate
  mutable std::mutex mutex_;
  // Only hosts with something to remember; prune() drops the others, so memory follows the hosts
  // being paused, spaced, failing or unreachable, not every host of a long list.
  std::unordered_map<std::string, Host> hosts_;
  std::size_t prune_at_ = 1024;
  std::atomic<std::uint64_t> unreachable_count_{0};
};

/// The message of a URL failed because its host is unreachable. `after` is the URL's own last failure,
/// empty when it was never tried.
std::string unreachable_message(const std::string& host, std::size_t failures, const std::string& after);

}  // namespace imgdl::detail
