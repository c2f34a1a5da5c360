#pragma once
// SIGINT/SIGTERM without async-signal-unsafe handlers: the signals are blocked in every thread and
// taken by sigwait() on one dedicated thread, where ordinary code (mutexes, Downloader::cancel) is fine.

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

namespace imgdl::app {

class InterruptWatcher {
 public:
  /// Blocks SIGINT and SIGTERM in the calling thread, so every thread started afterwards (the
  /// Downloader's workers included) inherits the mask, then starts the waiting thread. Construct it
  /// first thing in main(), before any other thread exists.
  InterruptWatcher();
  /// Stops the waiting thread. Signals stay blocked.
  ~InterruptWatcher();
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  /// What the first signal does (runs on the waiting thread). Without one, the first signal exits
  /// at once with 128 + signal: there is nothing to clean up yet. A second signal always exits at once.
  /// Clear it (pass {}) before destroying what it refers to: this waits for a running call to end.
  void on_interrupt(std::function<void()> action);

  bool interrupted() const noexcept { return signal_.load() != 0; }
  /// 128 + the signal's number (130 for SIGINT), or 0 if none came.
  int exit_code() const noexcept;

 private:
  void run();

  std::mutex mutex_;
  std::function<void()> action_;
  std::atomic<int> signal_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace imgdl::app
