#pragma once
// Caps concurrent transfers per host: a counting semaphore per host name, woken by stop requests.

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>

namespace imgdl::detail {

/// Thread-safe. A limit of 0 means unlimited (acquire never waits).
class HostLimiter {
 public:
  explicit HostLimiter(std::size_t per_host) : per_host_(per_host) {}

  /// Releases its host's slot when destroyed.
  class Slot {
   public:
    Slot(HostLimiter* owner, std::string host) : owner_(owner), host_(std::move(host)) {}
    Slot(Slot&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), host_(std::move(other.host_)) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (owner_) owner_->release(host_);
    }

   private:
    HostLimiter* owner_;
    std::string host_;
  };

  /// Waits for a free slot for `host`; nullopt if a stop was requested first.
  std::optional<Slot> acquire(const std::string& host, const std::stop_token& stop) {
    if (per_host_ == 0) return Slot(nullptr, {});
    std::unique_lock lock(mutex_);
    if (!cv_.wait(lock, stop, [&] { return active_[host] < per_host_; })) return std::nullopt;
    ++active_[host];
    return Slot(this, host);
  }

 private:
  void release(const std::string& host) {
    {
      std::lock_guard lock(mutex_);
      if (--active_[host] == 0) active_.erase(host);
    }
    cv_.notify_all();
  }

  const std::size_t per_host_;
  std::mutex mutex_;
  std::condition_variable_any cv_;
  std::unordered_map<std::string, std::size_t> active_;
};

}  // namespace imgdl::detail
