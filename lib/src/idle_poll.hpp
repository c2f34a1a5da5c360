#pragma once
// How an idle executor worker and a thread waiting for a result poll before they sleep. Its rules
// read a clock and yield the core through template parameters, so tests drive them with a fake
// clock (tests/idle_poll_test.cpp).

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace imgdl::detail {

/// Tells the core that this thread is polling (a PAUSE on x86), which frees the sibling hyperthread.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct YieldCore {
  void operator()() const noexcept { sched_yield(); }
};

/// Polling saves a wake-up (a futex call, and a slow return from idle for a core that went idle)
/// only while the polling thread has a core: one that lost it is not asleep, so nobody wakes it, and
/// whatever waits on it waits for another thread's time slice to end. Thread-safe: one object serves
/// an executor's polling worker and all its waiters.
template <class Clock = std::chrono::steady_clock, class Yield = YieldCore>
class BasicIdlePoll {
 public:
  using clock = Clock;
  /// A look and a yield take about a microsecond on a core of its own: a longer gap means that
  /// another thread ran there.
  static constexpr std::chrono::microseconds descheduled{20};
  /// How long waiters sleep at once after one of them found itself descheduled: a few time slices.
  static constexpr std::chrono::milliseconds pause{50};

  explicit BasicIdlePoll(std::chrono::nanoseconds budget) noexcept : budget_(budget) {}

  bool enabled() const noexcept { return budget_.count() > 0; }

  /// A worker's poll for a task: up to the budget, writing a heartbeat at each look that on_core()
  /// reads. Yields the core between looks, so a submitter on the same core runs at once.
  template <class Ready>
  bool poll_for_work(Ready ready) noexcept {
    auto now = clock::now();
    const auto deadline = now + budget_;
    for (;;) {
      heartbeat_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
      if (look(ready))
        return true;
      Yield{}();
      now = clock::now();
      if (now >= deadline)
        return ready();
    }
  }

  /// Whether the polling worker looked a moment ago: if not, it lost its core, and a task must not
  /// count on it.
  bool on_core() const noexcept {
    return clock::now().time_since_epoch().count() - heartbeat_.load(std::memory_order_relaxed) <
           std::chrono::duration_cast<typename clock::duration>(descheduled).count();
  }

  /// A thread waiting for a result: polls up to the budget, and at most `limit`. The first poll that
  /// finds itself descheduled stops, and every waiter sleeps at once for `pause`: with more runnable
  /// threads than cores, a sleeping waiter is woken sooner than a polling one gets its core back.
  template <class Ready>
  bool wait_for(Ready ready, std::chrono::nanoseconds limit = std::chrono::nanoseconds::max()) noexcept {
    auto now = clock::now();
    if (!enabled() || limit <= limit.zero() ||
        now.time_since_epoch().count() < paused_until_.load(std::memory_order_relaxed))
      return ready();
    const auto deadline = now + std::min(budget_, limit);
    for (;;) {
      if (look(ready))
        return true;
      Yield{}();
      const auto after = clock::now();
      if (after - now > descheduled) {
        paused_until_.store((after + pause).time_since_epoch().count(), std::memory_order_relaxed);
        return ready();
      }
      if (after >= deadline)
        return ready();
      now = after;
    }
  }

 private:
  template <class Ready>
  static bool look(Ready& ready) noexcept {
    for (int i = 0; i < 16; ++i) {
      if (ready())
        return true;
      cpu_relax();
    }
    return false;
  }

  const std::chrono::nanoseconds budget_;
  alignas(64) std::atomic<typename clock::rep> heartbeat_{0};
  alignas(64) std::atomic<typename clock::rep> paused_until_{0};
};

using IdlePoll = BasicIdlePoll<>;

}  // namespace imgdl::detail
