// Tests of the executor's idle polling rules (lib/src/idle_poll.hpp) on a fake clock: each yield of
// the core advances it by a chosen amount, so "descheduled" is a yield that took long.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <deque>

#include "idle_poll.hpp"

using namespace std::chrono_literals;

namespace {

struct FakeClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<FakeClock>;
  static constexpr bool is_steady = true;

  static inline duration current = 1s;  // not 0: the heartbeat starts at 0
  static time_point now() noexcept { return time_point(current); }
};

/// Yielding the core costs 1 µs of fake time, or the next of `costs` when some are queued.
struct FakeYield {
  static inline int count = 0;
  static inline std::deque<std::chrono::nanoseconds> costs;
  void operator()() const {
    ++count;
    auto cost = std::chrono::nanoseconds(1us);
    if (!costs.empty()) {
      cost = costs.front();
      costs.pop_front();
    }
    FakeClock::current += cost;
  }
};

using Poll = imgdl::detail::BasicIdlePoll<FakeClock, FakeYield>;

struct FreshClock {
  FreshClock() {
    FakeClock::current = 1s;
    FakeYield::count = 0;
    FakeYield::costs.clear();
  }
};

auto never() {
  return [] { return false; };
}

}  // namespace

TEST_CASE_FIXTURE(FreshClock,
                  "A worker's poll ends as soon as a task is queued, and after its budget when none is") {
  Poll poll(50us);
  CHECK(poll.poll_for_work([] { return FakeYield::count == 3; }));
  CHECK(FakeYield::count == 3);

  const auto start = FakeClock::current;
  CHECK_FALSE(poll.poll_for_work(never()));
  CHECK(FakeClock::current - start >= 50us);
  CHECK(FakeClock::current - start < 52us);
}

TEST_CASE_FIXTURE(FreshClock,
                  "The polling worker is counted on only while it looked at the queue a moment ago") {
  Poll poll(50us);
  bool seen_on_core = false;
  CHECK(poll.poll_for_work([&] {
    seen_on_core = poll.on_core();
    return true;
  }));
  CHECK(seen_on_core);
  FakeClock::current += 19us;
  CHECK(poll.on_core());
  FakeClock::current += 2us;  // 21 µs without a look: it lost its core
  CHECK_FALSE(poll.on_core());
}

TEST_CASE_FIXTURE(FreshClock, "A waiter polls for the result, and stops at its budget or at its deadline") {
  Poll poll(50us);
  CHECK(poll.wait_for([] { return FakeYield::count == 2; }));

  auto start = FakeClock::current;
  CHECK_FALSE(poll.wait_for(never()));
  CHECK(FakeClock::current - start >= 50us);
  CHECK(FakeClock::current - start < 52us);

  start = FakeClock::current;
  CHECK_FALSE(poll.wait_for(never(), 5us));
  CHECK(FakeClock::current - start >= 5us);
  CHECK(FakeClock::current - start < 7us);

  // A deadline already passed (result(0s)): one look, no yield.
  FakeYield::count = 0;
  CHECK_FALSE(poll.wait_for(never(), 0us));
  CHECK_FALSE(poll.wait_for(never(), -1us));
  CHECK(poll.wait_for([] { return true; }, 0us));
  CHECK(FakeYield::count == 0);
}

TEST_CASE_FIXTURE(
    FreshClock,
    "A waiter that finds itself descheduled stops, and every waiter then sleeps at once for a while") {
  Poll poll(50us);
  FakeYield::costs = {1us, 1us, 30us};  // the third yield let another thread run for 30 µs
  const auto start = FakeClock::current;
  CHECK_FALSE(poll.wait_for(never()));
  CHECK(FakeYield::count == 3);
  CHECK(FakeClock::current - start == 32us);  // well inside the 50 µs budget

  FakeYield::count = 0;
  CHECK_FALSE(poll.wait_for(never()));  // paused: no look beyond ready(), no yield
  CHECK(FakeYield::count == 0);
  CHECK(poll.wait_for([] { return true; }));  // a result already there is still seen

  FakeClock::current += Poll::pause;
  CHECK_FALSE(poll.wait_for(never()));  // the pause is over: it polls again
  CHECK(FakeYield::count > 0);
}

TEST_CASE_FIXTURE(FreshClock, "An idle_spin of zero turns polling off for waiters") {
  Poll poll(0us);
  CHECK_FALSE(poll.enabled());
  CHECK_FALSE(poll.wait_for(never()));
  CHECK(poll.wait_for([] { return true; }));
  CHECK(FakeYield::count == 0);
}
