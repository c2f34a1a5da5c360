// Tests of imgdl::ThreadPoolExecutor, imgdl::Future, as_completed and wait against the contract of
// Python's concurrent.futures. Orderings are forced with latches, promises and gates, never with
// sleeps; time only appears as deadlines (timeouts under test) and generous upper bounds that catch
// hangs.

#include <doctest/doctest.h>
#include <sched.h>
#include <imgdl/executor.hpp>
#include <imgdl/wait.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "support/sanitizer.hpp"

using namespace std::chrono_literals;
using imgdl::ExecutorOptions;
using imgdl::Future;
using imgdl::FutureStatus;
using imgdl::ThreadPoolExecutor;

namespace {

/// Blocks tasks until opened. Tasks capture `waiter()` by value, and destroying the gate releases them
/// (a broken promise makes the shared state ready), so declaring a gate after the executor guarantees a
/// failed check can never leave the executor's destructor waiting on a blocked task.
class Gate {
 public:
  void open() { promise_.set_value(); }
  std::shared_future<void> waiter() const { return future_; }

 private:
  std::promise<void> promise_;
  std::shared_future<void> future_ = promise_.get_future().share();
};

/// Polls an observable condition (never used to order events, only to observe counters settle).
template <class Predicate>
bool eventually(Predicate predicate) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Runs a scenario that could deadlock on another thread; if it does not end within 30 s the process
/// exits, since a deadlocked thread cannot be unwound.
template <class Scenario>
auto with_watchdog(Scenario scenario) {
  auto done = std::async(std::launch::async, std::move(scenario));
  if (done.wait_for(30s) != std::future_status::ready) {
    std::fputs("executor_test: watchdog expired, the scenario deadlocked\n", stderr);
    std::_Exit(EXIT_FAILURE);
  }
  return done.get();
}

/// Blocks until `token` is asked to stop.
void wait_for_stop(std::stop_token token) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  cv.wait(lock, token, [] { return false; });
}

std::vector<std::string> thread_names() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (std::getline(comm, name))
      names.push_back(name);  // a thread may exit meanwhile
  }
  return names;
}

std::size_t count_threads_named(const std::string& prefix) {
  const auto names = thread_names();
  return static_cast<std::size_t>(
      std::count_if(names.begin(), names.end(), [&](const std::string& n) { return n.starts_with(prefix); }));
}

std::string current_thread_name() {
  std::ifstream comm("/proc/thread-self/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

std::string message_of(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace

// ---- Future basics ----

TEST_CASE("A default-constructed Future is empty and its members throw std::logic_error") {
  Future<int> empty;
  CHECK_FALSE(empty.valid());
  CHECK_THROWS_AS(empty.result(), std::logic_error);
  CHECK_THROWS_AS(empty.result(1ms), std::logic_error);
  CHECK_THROWS_AS(empty.exception(), std::logic_error);
  CHECK_THROWS_AS(empty.done(), std::logic_error);
  CHECK_THROWS_AS(empty.running(), std::logic_error);
  CHECK_THROWS_AS(empty.cancelled(), std::logic_error);
  CHECK_THROWS_AS(empty.cancel(), std::logic_error);
  CHECK_THROWS_AS(empty.add_done_callback([](const Future<int>&) {}), std::logic_error);
  Future<void> empty_void;
  CHECK_FALSE(empty_void.valid());
  CHECK_THROWS_AS(empty_void.result(), std::logic_error);
}

TEST_CASE("submit runs the callable with its arguments and result() returns its value") {
  ThreadPoolExecutor executor(2);
  SUBCASE("a function with arguments") {
    auto f = executor.submit([](int a, const std::string& b) { return b + std::to_string(a); }, 7, "x");
    REQUIRE(f.valid());
    CHECK(f.result() == "x7");
    CHECK(f.result(30s) == "x7");
    CHECK(f.exception() == nullptr);
    CHECK(f.done());
    CHECK_FALSE(f.running());
    CHECK_FALSE(f.cancelled());
    CHECK(f.status() == FutureStatus::Finished);
  }
  SUBCASE("a void function") {
    std::atomic<bool> ran{false};
    auto f = executor.submit([&] { ran = true; });
    f.result();
    CHECK(ran);
    CHECK(f.exception() == nullptr);
  }
  SUBCASE("copies of a future share one state") {
    auto f = executor.submit([] { return 5; });
    Future<int> g = f;
    CHECK(g == f);
    CHECK(g.result() == 5);
    CHECK(&g.result() == &f.result());
  }
}

TEST_CASE("A task's exception is rethrown by result() and returned by exception()") {
  ThreadPoolExecutor executor(1);
  auto f = executor.submit([]() -> int { throw std::runtime_error("task failed"); });
  CHECK_THROWS_WITH_AS(f.result(), "task failed", std::runtime_error);
  CHECK_THROWS_WITH_AS(f.result(30s), "task failed", std::runtime_error);
  auto error = f.exception();
  REQUIRE(error != nullptr);
  CHECK(message_of(error) == "task failed");
  CHECK(f.exception(30s) == error);
  CHECK(f.done());
  CHECK_FALSE(f.cancelled());
  CHECK(executor.stats().completed == 1);
}

TEST_CASE("result(timeout) and exception(timeout) throw TimeoutError while the task is unfinished") {
  ThreadPoolExecutor executor(1);
  Gate gate;
  auto f = executor.submit([w = gate.waiter()] {
    w.wait();
    return 1;
  });
  CHECK_THROWS_AS(f.result(10ms), imgdl::TimeoutError);
  CHECK_THROWS_AS(f.exception(10ms), imgdl::TimeoutError);
  CHECK_FALSE(f.done());
  gate.open();
  CHECK(f.result(30s) == 1);
}

TEST_CASE("done(), running() and status() follow a task from pending through running to finished") {
  ThreadPoolExecutor executor(1);
  Gate gate;
  std::latch started(1);
  auto first = executor.submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
    return 1;
  });
  auto second = executor.submit([] { return 2; });
  started.wait();
  CHECK(first.running());
  CHECK(first.status() == FutureStatus::Running);
  CHECK_FALSE(first.done());
  CHECK(second.status() == FutureStatus::Pending);
  CHECK_FALSE(second.running());
  CHECK_FALSE(second.done());
  gate.open();
  CHECK(second.result() == 2);
  CHECK(first.done());  // one worker runs tasks in submission order
  CHECK(first.status() == FutureStatus::Finished);
  CHECK_FALSE(first.running());
}

// ---- cancel ----

TEST_CASE("cancel() on a pending future cancels it: result() throws CancelledError and the task never runs") {
  std::atomic<int> ran{0};
  std::atomic<int> callbacks{0};
  {
    ThreadPoolExecutor executor(1);
    Gate gate;
    std::latch started(1);
    auto blocker = executor.submit([&started, w = gate.waiter()] {
      started.count_down();
      w.wait();
    });
    auto pending = executor.submit([&] { ++ran; });
    started.wait();
    REQUIRE(pending.status() == FutureStatus::Pending);
    pending.add_done_callback([&](const Future<void>& f) {
      if (f.cancelled())
        ++callbacks;
    });

    CHECK(pending.cancel());
    CHECK(pending.cancelled());
    CHECK(pending.done());
    CHECK_FALSE(pending.running());
    CHECK(callbacks == 1);  // run by cancel() itself
    CHECK_THROWS_AS(pending.result(), imgdl::CancelledError);
    CHECK_THROWS_AS(pending.result(1s), imgdl::CancelledError);
    CHECK_THROWS_AS(pending.exception(), imgdl::CancelledError);
    CHECK(pending.cancel());  // Python: cancelling a cancelled future is still true
    auto stats = executor.stats();
    CHECK(stats.pending == 0);
    CHECK(stats.cancelled == 1);
    CHECK(stats.running == 1);
    gate.open();
    blocker.result();
  }
  CHECK(ran == 0);
  CHECK(callbacks == 1);
}

TEST_CASE("cancel() on a running future returns false and asks its stop_token to stop") {
  ThreadPoolExecutor executor(1);
  std::latch started(1);

  SUBCASE("a task that answers the stop with CancelledError ends cancelled") {
    auto f = executor.submit([&started](std::stop_token token) -> int {
      started.count_down();
      wait_for_stop(token);
      throw imgdl::CancelledError("stopped on request");
    });
    started.wait();
    REQUIRE(f.running());
    CHECK_FALSE(f.stop_requested());
    CHECK_FALSE(f.cancel());
    CHECK(f.stop_requested());
    CHECK_THROWS_AS(f.result(), imgdl::CancelledError);
    CHECK(f.cancelled());
    CHECK(f.status() == FutureStatus::Cancelled);
    CHECK(eventually([&] { return executor.stats().cancelled == 1; }));
    CHECK(executor.stats().completed == 0);
  }
  SUBCASE("a task that returns after the stop ends finished with its value") {
    auto f = executor.submit([&started](std::stop_token token) {
      started.count_down();
      wait_for_stop(token);
      return std::string("partial");
    });
    started.wait();
    CHECK_FALSE(f.cancel());
    CHECK(f.result() == "partial");
    CHECK_FALSE(f.cancelled());
  }
  SUBCASE("a task without a stop_token cannot be stopped, and cancel() is still false") {
    Gate gate;
    auto f = executor.submit([&started, w = gate.waiter()] {
      started.count_down();
      w.wait();
      return 3;
    });
    started.wait();
    CHECK_FALSE(f.cancel());
    CHECK_FALSE(f.stop_requested());
    gate.open();
    CHECK(f.result() == 3);
  }
}

TEST_CASE("A task that throws CancelledError without a stop request ends failed, not cancelled") {
  ThreadPoolExecutor executor(1);
  auto f = executor.submit([](std::stop_token) -> int { throw imgdl::CancelledError("unasked"); });
  CHECK_THROWS_AS(f.result(), imgdl::CancelledError);
  CHECK_FALSE(f.cancelled());
  CHECK(f.exception() != nullptr);
}

TEST_CASE("cancel() on a finished future returns false and leaves its result") {
  ThreadPoolExecutor executor(1);
  auto f = executor.submit([] { return 9; });
  REQUIRE(f.result() == 9);
  CHECK_FALSE(f.cancel());
  CHECK_FALSE(f.cancelled());
  CHECK(f.result() == 9);
  auto failed = executor.submit([]() -> int { throw std::runtime_error("x"); });
  REQUIRE(failed.exception() != nullptr);
  CHECK_FALSE(failed.cancel());
}

// ---- map ----

TEST_CASE("map yields results in submission order even when tasks finish in reverse order") {
  constexpr int n = 4;
  ThreadPoolExecutor executor(n);
  // Task i finishes only after task i + 1 has: completion order is n-1, ..., 0.
  std::vector<std::promise<void>> finished(n);
  std::vector<std::shared_future<void>> finished_futures;
  for (auto& p : finished)
    finished_futures.push_back(p.get_future().share());
  std::mutex mutex;
  std::vector<int> completion_order;
  auto task = [&](int i) {
    if (i + 1 < n)
      finished_futures[static_cast<std::size_t>(i + 1)].wait();
    {
      std::lock_guard lock(mutex);
      completion_order.push_back(i);
    }
    finished[static_cast<std::size_t>(i)].set_value();
    return i * 10;
  };
  std::vector<int> results;
  for (int value : executor.map(task, std::vector{0, 1, 2, 3}))
    results.push_back(value);
  CHECK(results == std::vector{0, 10, 20, 30});
  CHECK(completion_order == std::vector{3, 2, 1, 0});
}

TEST_CASE("map over a void function yields one monostate per item, and over move-only results moves them") {
  ThreadPoolExecutor executor(2);
  std::atomic<int> sum{0};
  int count = 0;
  for ([[maybe_unused]] auto nothing : executor.map([&](int i) { sum += i; }, std::vector{1, 2, 3}))
    ++count;
  CHECK(count == 3);
  CHECK(sum == 6);

  std::vector<int> values;
  for (auto& p : executor.map([](int i) { return std::make_unique<int>(i); }, std::vector{4, 5}))
    values.push_back(*p);
  CHECK(values == std::vector{4, 5});
}

TEST_CASE(
    "map's timeout counts from the call: TimeoutError is thrown and the remaining tasks are cancelled") {
  std::atomic<int> late_runs{0};
  ThreadPoolExecutor executor(1);
  Gate gate;
  auto task = [&late_runs, w = gate.waiter()](int i) {
    if (i == 1)
      w.wait();  // item 0 finishes at once, item 1 outlives the deadline
    if (i >= 2)
      ++late_runs;
    return i;
  };
  auto results = executor.map(task, std::vector{0, 1, 2, 3}, {.timeout = 50ms});
  // Let the deadline pass before consuming anything: a timeout counted per next() would not fire.
  REQUIRE(eventually([&] { return executor.stats().running == 1 && executor.stats().completed == 1; }));
  std::this_thread::sleep_for(100ms);
  auto first = results.next();
  REQUIRE(first.has_value());
  CHECK(*first == 0);  // already done, so returned even past the deadline (as Python)
  CHECK_THROWS_AS(results.next(), imgdl::TimeoutError);
  CHECK(results.in_flight() == 0);
  gate.open();
  executor.shutdown();
  auto stats = executor.stats();
  // Items 2 and 3 were queued behind item 1 on the single worker: cancelled instead of run.
  CHECK(stats.cancelled == 2);
  CHECK(late_runs == 0);
  CHECK(stats.pending == 0);
}

TEST_CASE("map rethrows a task's exception at its position and cancels the tasks after it") {
  std::atomic<int> ran_last{0};
  ThreadPoolExecutor executor(1);
  Gate gate;
  std::latch third_started(1);
  auto task = [&, w = gate.waiter()](int i) {
    if (i == 2)
      throw std::runtime_error("item 2 failed");
    if (i == 3) {
      third_started.count_down();
      w.wait();
    }
    if (i == 4)
      ++ran_last;
    return i;
  };
  auto results = executor.map(task, std::vector{0, 1, 2, 3, 4});
  // One worker: item 3 runs (blocked) and item 4 is queued when the failure is reached.
  third_started.wait();
  std::vector<int> seen;
  try {
    for (int v : results)
      seen.push_back(v);
    FAIL("map did not rethrow");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "item 2 failed");
  }
  CHECK(seen == std::vector{0, 1});
  CHECK(results.in_flight() == 0);
  CHECK(executor.stats().cancelled == 1);  // item 4
  gate.open();
  executor.shutdown();
  CHECK(ran_last == 0);
}

TEST_CASE("map with buffersize keeps at most buffersize tasks submitted and not yet consumed") {
  ThreadPoolExecutor executor(3);
  std::atomic<long> produced{0};
  SUBCASE("over an endless range, stopping after K results") {
    constexpr std::size_t buffersize = 8;
    constexpr long k = 2000;
    auto endless = std::views::iota(0L) | std::views::transform([&produced](long i) {
                     ++produced;
                     return i;
                   });
    auto results = executor.map([](long i) { return i * 2; }, std::move(endless), {.buffersize = buffersize});
    CHECK(produced == static_cast<long>(buffersize));  // filled up front, lazily afterwards
    long consumed = 0;
    long max_in_flight = 0;
    for (long v : results) {
      CHECK(v == consumed * 2);
      ++consumed;
      max_in_flight = std::max(max_in_flight, produced.load() - consumed);
      CHECK(results.in_flight() <= buffersize);
      if (consumed == k)
        break;
    }
    CHECK(consumed == k);
    CHECK(max_in_flight <= static_cast<long>(buffersize));
    CHECK(produced <= k + static_cast<long>(buffersize));
  }
  SUBCASE("over a finite range, every result arrives") {
    std::vector<int> input(100);
    std::iota(input.begin(), input.end(), 0);
    std::vector<int> output;
    for (int v : executor.map([](int i) { return i + 1; }, input, {.buffersize = 3}))
      output.push_back(v);
    REQUIRE(output.size() == 100);
    CHECK(output.front() == 1);
    CHECK(output.back() == 100);
    CHECK(std::is_sorted(output.begin(), output.end()));
  }
}

TEST_CASE("Destroying map's results early cancels the tasks not consumed") {
  std::atomic<int> ran{0};
  ThreadPoolExecutor executor(1);
  Gate gate;
  std::latch started(1);
  {
    auto results = executor.map(
        [&, w = gate.waiter()](int i) {
          if (i == 0) {
            started.count_down();
            w.wait();
          }
          ++ran;
          return i;
        },
        std::vector{0, 1, 2, 3});
    started.wait();
  }
  CHECK(executor.stats().cancelled == 3);
  gate.open();
  executor.shutdown();
  CHECK(ran == 1);
}

// ---- as_completed and wait ----

TEST_CASE("as_completed yields each distinct future once, in the order they complete") {
  ThreadPoolExecutor executor(4);  // three blocked tasks and one that must still run
  std::vector<Gate> gates(3);
  std::vector<Future<int>> futures;
  for (int i = 0; i < 3; ++i)
    futures.push_back(executor.submit([w = gates[static_cast<std::size_t>(i)].waiter(), i] {
      w.wait();
      return i;
    }));
  auto done_already = executor.submit([] { return 99; });
  REQUIRE(done_already.result() == 99);
  // Duplicates are yielded once, and a future that is already done comes first.
  std::vector<Future<int>> input{futures[0], futures[1], done_already, futures[2], futures[1], futures[0]};

  auto completed = imgdl::as_completed(input);
  auto it = completed.begin();
  REQUIRE(it != completed.end());
  CHECK(*it == done_already);
  for (int i : {2, 0, 1}) {
    gates[static_cast<std::size_t>(i)].open();
    ++it;
    REQUIRE(it != completed.end());
    CHECK(*it == futures[static_cast<std::size_t>(i)]);
    CHECK(it->result() == i);
  }
  ++it;
  CHECK(it == completed.end());
}

TEST_CASE("as_completed throws TimeoutError saying how many futures are unfinished") {
  ThreadPoolExecutor executor(3);
  Gate gate;
  auto blocked = [w = gate.waiter()] {
    w.wait();
    return 0;
  };
  std::vector<Future<int>> futures{executor.submit([] { return 1; }), executor.submit(blocked),
                                   executor.submit(blocked)};
  REQUIRE(futures[0].result() == 1);
  int yielded = 0;
  try {
    for (const auto& f : imgdl::as_completed(futures, 50ms)) {
      CHECK(f == futures[0]);
      ++yielded;
    }
    FAIL("as_completed did not time out");
  } catch (const imgdl::TimeoutError& e) {
    CHECK(std::string(e.what()).find("2 (of 3)") != std::string::npos);
  }
  CHECK(yielded == 1);
  gate.open();
}

TEST_CASE("wait returns done and not_done as soon as its ReturnWhen condition holds") {
  ThreadPoolExecutor executor(3);
  std::vector<Gate> gates(3);
  std::vector<Future<int>> futures;
  for (std::size_t i = 0; i < 3; ++i)
    futures.push_back(executor.submit([w = gates[i].waiter(), i]() -> int {
      w.wait();
      if (i == 1)
        throw std::runtime_error("second failed");
      return static_cast<int>(i);
    }));

  SUBCASE("FirstCompleted returns at the first completion") {
    gates[2].open();
    auto [done, not_done] = imgdl::wait(futures, imgdl::ReturnWhen::FirstCompleted);
    REQUIRE(done.size() == 1);
    CHECK(done[0] == futures[2]);
    CHECK(not_done == std::vector{futures[0], futures[1]});
  }
  SUBCASE("FirstException ignores normal completions and returns at the first exception") {
    auto waiting = std::async(std::launch::async,
                              [&] { return imgdl::wait(futures, imgdl::ReturnWhen::FirstException); });
    gates[0].open();
    REQUIRE(futures[0].result() == 0);
    CHECK(waiting.wait_for(50ms) == std::future_status::timeout);  // a success is not enough
    gates[1].open();
    REQUIRE(waiting.wait_for(30s) == std::future_status::ready);
    auto [done, not_done] = waiting.get();
    CHECK(done == std::vector{futures[0], futures[1]});
    CHECK(not_done == std::vector{futures[2]});
  }
  SUBCASE("FirstException without any exception waits for all") {
    std::vector<Future<int>> fine{futures[0], futures[2]};
    gates[0].open();
    gates[2].open();
    auto [done, not_done] = imgdl::wait(fine, imgdl::ReturnWhen::FirstException);
    CHECK(done.size() == 2);
    CHECK(not_done.empty());
  }
  SUBCASE("AllCompleted waits for every future, duplicates counted once") {
    for (auto& g : gates)
      g.open();
    auto [done, not_done] = imgdl::wait(std::vector{futures[0], futures[1], futures[2], futures[0]});
    CHECK(done == futures);
    CHECK(not_done.empty());
  }
  SUBCASE("a timeout returns what is done so far without throwing") {
    gates[0].open();
    REQUIRE(futures[0].result() == 0);
    auto [done, not_done] = imgdl::wait(futures, 20ms);
    CHECK(done == std::vector{futures[0]});
    CHECK(not_done == std::vector{futures[1], futures[2]});
  }
}

// ---- workers: options, lazy start, idle reuse ----

TEST_CASE("max_workers of 0 throws std::invalid_argument and the default is min(32, hardware threads + 4)") {
  CHECK_THROWS_AS(ThreadPoolExecutor(0), std::invalid_argument);
  CHECK_THROWS_AS(ThreadPoolExecutor(ExecutorOptions{.max_workers = 0}), std::invalid_argument);
  const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t expected = std::min<std::size_t>(32, hardware + 4);
  CHECK(ThreadPoolExecutor::default_max_workers() == expected);
  ThreadPoolExecutor executor;
  CHECK(executor.max_workers() == expected);
  CHECK(ThreadPoolExecutor(7).max_workers() == 7);
}

TEST_CASE("Workers start lazily and an idle worker is reused instead of starting another") {
  ThreadPoolExecutor executor(ExecutorOptions{.max_workers = 8, .thread_name_prefix = "lazyreuse"});
  CHECK(executor.stats().workers == 0);
  CHECK(count_threads_named("lazyreuse_") == 0);
  for (int i = 0; i < 100; ++i)
    REQUIRE(executor.submit([i] { return i; }).result() == i);
  CHECK(executor.stats().workers == 1);
  CHECK(count_threads_named("lazyreuse_") == 1);
}

TEST_CASE("N blocked tasks with max_workers M start exactly min(N, M) threads") {
  struct Case {
    std::size_t tasks, max_workers;
  };
  Case c{};
  SUBCASE("fewer tasks than workers") {
    c = {3, 5};
  }
  SUBCASE("more tasks than workers") {
    c = {6, 3};
  }
  SUBCASE("as many tasks as workers") {
    c = {4, 4};
  }
  const std::size_t expected = std::min(c.tasks, c.max_workers);
  CAPTURE(c.tasks);
  CAPTURE(c.max_workers);

  ThreadPoolExecutor executor(ExecutorOptions{.max_workers = c.max_workers, .thread_name_prefix = "minnm"});
  Gate gate;
  std::atomic<std::size_t> started{0};
  std::vector<Future<void>> futures;
  for (std::size_t i = 0; i < c.tasks; ++i)
    futures.push_back(executor.submit([&started, w = gate.waiter()] {
      ++started;
      w.wait();
    }));
  CHECK(executor.stats().workers == expected);
  REQUIRE(eventually([&] { return started == expected; }));
  CHECK(count_threads_named("minnm_") == expected);
  CHECK(executor.stats().running == expected);
  CHECK(executor.stats().pending == c.tasks - expected);
  gate.open();
  for (auto& f : futures)
    f.result();
  CHECK(started == c.tasks);

  // Every worker is idle again: as many new blocked tasks reuse them without starting threads.
  Gate second_gate;
  std::latch all_running(static_cast<std::ptrdiff_t>(expected));
  std::vector<Future<void>> again;
  for (std::size_t i = 0; i < expected; ++i)
    again.push_back(executor.submit([&all_running, w = second_gate.waiter()] {
      all_running.count_down();
      w.wait();
    }));
  all_running.wait();
  CHECK(executor.stats().workers == expected);
  second_gate.open();
  for (auto& f : again)
    f.result();
}

TEST_CASE(
    "Tasks that wait for each other always each get a worker, whether workers sleep, poll or are on "
    "their way back") {
  // Workers are signalled only for queued tasks beyond those that idle workers will take, by the
  // submitter or by a worker that pops a task (the only one when a worker is polling); a busy
  // worker's task may block, so it is never counted on. Each round needs all its tasks running at
  // once; the rounds follow each other closely, catching workers asleep, polling, returning from a
  // task, or just woken.
  constexpr std::size_t workers = 4;
  ExecutorOptions options{.max_workers = workers};
  SUBCASE("with an idle worker polling before it sleeps (the default)") {}
  SUBCASE("with idle workers sleeping at once") {
    options.idle_spin = std::chrono::microseconds(0);
  }
  CAPTURE(options.idle_spin.count());
  ThreadPoolExecutor executor(options);
  for (int round = 0; round < 300; ++round) {
    CAPTURE(round);
    std::latch all_running(static_cast<std::ptrdiff_t>(workers));
    std::vector<Future<void>> futures;
    for (std::size_t i = 0; i < workers; ++i)
      futures.push_back(executor.submit([&all_running] { all_running.arrive_and_wait(); }));
    for (auto& f : futures)
      f.result();
  }
  CHECK(executor.stats().workers == workers);
  CHECK(executor.stats().completed == 300 * workers);
}

TEST_CASE("A task goes to a sleeping worker rather than wait for another thread's slow initializer") {
  // Worker 3's initializer blocks until the end, while workers 1 and 2 sleep. Two tasks come, the
  // first waiting for the second: each must wake a sleeper. A thread still in its initializer must
  // not be counted as an idle worker about to take a queued task, or they would wait for it.
  with_watchdog([] {
    Gate third_initializer;
    std::atomic<int> initializers{0};
    ThreadPoolExecutor executor(
        ExecutorOptions{.max_workers = 3,
                        .initializer =
                            [&initializers, w = third_initializer.waiter()] {
                              if (++initializers == 3)
                                w.wait();
                            },
                        .idle_spin = std::chrono::microseconds(0)});  // idle workers sleep at once
    Gate gate;
    auto first = executor.submit([w = gate.waiter()] { w.wait(); });   // starts worker 1
    auto second = executor.submit([w = gate.waiter()] { w.wait(); });  // starts worker 2
    auto third = executor.submit([] {});  // starts worker 3, which stays in its initializer
    REQUIRE(eventually([&] { return initializers == 3; }));
    gate.open();
    first.result();
    second.result();
    third.result();  // taken by worker 1 or 2
    // Lets workers 1 and 2 reach their sleep: one still on its way back would take a task anyway, so
    // this can only hide the fault, never invent it.
    std::this_thread::sleep_for(20ms);

    std::promise<void> needed_ran;
    auto needed_ran_future = needed_ran.get_future();
    auto waiter = executor.submit(
        [&needed_ran_future] { return needed_ran_future.wait_for(30s) == std::future_status::ready; });
    auto needed = executor.submit([&needed_ran] { needed_ran.set_value(); });
    CHECK(waiter.result());
    needed.result();
    CHECK(executor.stats().workers == 3);
    third_initializer.open();
  });
}

TEST_CASE("The initializer runs once in each worker, before its tasks") {
  constexpr std::size_t workers = 3;
  std::mutex mutex;
  std::multiset<std::thread::id> initialized;
  std::set<std::thread::id> ran_on;
  {
    ThreadPoolExecutor executor(ExecutorOptions{.max_workers = workers, .initializer = [&] {
                                                  std::lock_guard lock(mutex);
                                                  initialized.insert(std::this_thread::get_id());
                                                }});
    // Force every worker to start: each task waits until all three run at once.
    std::latch all_running(workers);
    for (std::size_t i = 0; i < workers; ++i)
      (void)executor.submit([&] { all_running.arrive_and_wait(); });
    std::vector<Future<void>> more;
    for (int i = 0; i < 50; ++i)
      more.push_back(executor.submit([&] {
        std::lock_guard lock(mutex);
        CHECK(initialized.count(std::this_thread::get_id()) == 1);  // initializer ran before the task
        ran_on.insert(std::this_thread::get_id());
      }));
    for (auto& f : more)
      f.result();
    CHECK(executor.stats().workers == workers);
  }
  CHECK(initialized.size() == workers);
  CHECK(std::set(initialized.begin(), initialized.end()).size() == workers);  // once per thread
  for (const auto& id : ran_on)
    CHECK(initialized.count(id) == 1);
}

TEST_CASE(
    "A throwing initializer breaks the executor: pending futures fail and submit throws BrokenExecutor") {
  Gate gate;
  ThreadPoolExecutor executor(ExecutorOptions{.max_workers = 1, .initializer = [w = gate.waiter()] {
                                                w.wait();
                                                throw std::runtime_error("no database");
                                              }});
  std::atomic<int> ran{0};
  std::vector<Future<int>> futures;
  for (int i = 0; i < 3; ++i)
    futures.push_back(executor.submit([&ran, i] {
      ++ran;
      return i;
    }));
  gate.open();
  for (auto& f : futures) {
    CHECK_THROWS_AS(f.result(), imgdl::BrokenExecutor);
    auto error = f.exception();
    REQUIRE(error != nullptr);
    CHECK(message_of(error).find("no database") != std::string::npos);
  }
  CHECK_THROWS_AS(executor.submit([] { return 0; }), imgdl::BrokenExecutor);
  CHECK(ran == 0);
  CHECK(executor.stats().pending == 0);
  executor.shutdown();  // still fine on a broken executor
}

TEST_CASE("Worker threads are named prefix_N as seen in /proc/self/task/*/comm") {
  std::string prefix;
  std::vector<std::string> expected;
  SUBCASE("a short prefix") {
    prefix = "dlpool";
    expected = {"dlpool_0", "dlpool_1"};
  }
  SUBCASE("a long prefix is cut to Linux's 15 bytes") {
    prefix = "averyverylongprefix";
    expected = {"averyverylongpr", "averyverylongpr"};
  }
  SUBCASE("the default prefix") {
    prefix = "";
    expected = {"imgdl_0", "imgdl_1"};
  }
  ThreadPoolExecutor executor(ExecutorOptions{.max_workers = 2, .thread_name_prefix = prefix});
  std::latch both_running(2);
  Gate gate;
  std::vector<Future<std::string>> futures;
  for (int i = 0; i < 2; ++i)
    futures.push_back(executor.submit([&both_running, w = gate.waiter()] {
      both_running.count_down();
      w.wait();
      return current_thread_name();
    }));
  both_running.wait();
  auto names = thread_names();
  for (const auto& name : expected)
    CHECK(std::count(names.begin(), names.end(), name) >= (expected[0] == expected[1] ? 2 : 1));
  gate.open();
  std::vector<std::string> seen{futures[0].result(), futures[1].result()};
  std::sort(seen.begin(), seen.end());
  CHECK(seen == expected);
}

TEST_CASE(
    "batch_scheduling runs the workers, initializer included, under SCHED_BATCH; by default they "
    "inherit the creating thread's policy") {
  const int own_policy = sched_getscheduler(0);
  std::atomic<int> initializer_policy{-1};
  ThreadPoolExecutor batch(ExecutorOptions{.max_workers = 1,
                                           .initializer = [&] { initializer_policy = sched_getscheduler(0); },
                                           .batch_scheduling = true});
  CHECK(batch.submit([] { return sched_getscheduler(0); }).result() == SCHED_BATCH);
  CHECK(initializer_policy == SCHED_BATCH);
  CHECK(sched_getscheduler(0) == own_policy);  // the submitting thread is left alone

  ThreadPoolExecutor normal(1);
  CHECK(normal.submit([] { return sched_getscheduler(0); }).result() == own_policy);
}

// ---- shutdown ----

TEST_CASE("shutdown(cancel_futures) cancels the queued tasks and lets the running one finish") {
  std::atomic<int> queued_ran{0};
  ThreadPoolExecutor executor(1);
  Gate gate;
  std::latch started(1);
  auto running = executor.submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
    return 1;
  });
  std::vector<Future<void>> queued;
  for (int i = 0; i < 5; ++i)
    queued.push_back(executor.submit([&] { ++queued_ran; }));
  started.wait();
  executor.shutdown(false, true);
  for (auto& f : queued) {
    CHECK(f.cancelled());
    CHECK_THROWS_AS(f.result(), imgdl::CancelledError);
  }
  CHECK(running.running());
  gate.open();
  executor.shutdown(true);
  CHECK(running.result() == 1);
  CHECK(queued_ran == 0);
  auto stats = executor.stats();
  CHECK(stats.cancelled == 5);
  CHECK(stats.completed == 1);
  CHECK(stats.pending == 0);
}

TEST_CASE("shutdown is idempotent and submit afterwards throws ExecutorShutdownError") {
  ThreadPoolExecutor executor(2);
  auto f = executor.submit([] { return 1; });
  REQUIRE(f.result() == 1);  // so cancel_futures below has nothing to cancel
  SUBCASE("waiting") {
    executor.shutdown();
    executor.shutdown();
    executor.shutdown(false);
  }
  SUBCASE("not waiting, then waiting") {
    executor.shutdown(false);
    executor.shutdown(false, true, true);
    executor.shutdown(true);
  }
  CHECK_THROWS_AS(executor.submit([] { return 2; }), imgdl::ExecutorShutdownError);
  CHECK_THROWS_AS(executor.map([](int i) { return i; }, std::vector{1}), imgdl::ExecutorShutdownError);
}

TEST_CASE("The destructor waits for every queued task to run") {
  constexpr int n = 200;
  std::atomic<int> ran{0};
  SUBCASE("after shutdown(wait=false)") {
    ThreadPoolExecutor executor(1);
    Gate gate;
    std::latch started(1);
    (void)executor.submit([&started, w = gate.waiter()] {
      started.count_down();
      w.wait();
    });
    for (int i = 0; i < n; ++i)
      (void)executor.submit([&] { ++ran; });
    started.wait();
    executor.shutdown(false);  // tasks stay queued behind the blocked one
    CHECK(ran < n);
    gate.open();
  }
  SUBCASE("without an explicit shutdown") {
    ThreadPoolExecutor executor(2);
    for (int i = 0; i < n; ++i)
      (void)executor.submit([&] { ++ran; });
  }
  CHECK(ran == n);
}

TEST_CASE("shutdown(wait=true) from inside a task does not deadlock") {
  SUBCASE("the only worker") {
    auto [value, later_ran] = with_watchdog([] {
      std::atomic<int> later{0};
      int result = 0;
      {
        ThreadPoolExecutor executor(1);
        auto f = executor.submit([&executor] {
          executor.shutdown(true);
          return 42;
        });
        // Queued before the shutdown took effect? Either way it must run or have been refused.
        try {
          (void)executor.submit([&later] { ++later; });
        } catch (const imgdl::ExecutorShutdownError&) {
          ++later;
        }
        result = f.result();
      }
      return std::pair{result, later.load()};
    });
    CHECK(value == 42);
    CHECK(later_ran == 1);
  }
  SUBCASE("while other workers still run tasks") {
    auto value = with_watchdog([] {
      ThreadPoolExecutor executor(3);
      Gate gate;
      std::latch others_running(2);
      std::vector<Future<int>> others;
      for (int i = 0; i < 2; ++i)
        others.push_back(executor.submit([&others_running, w = gate.waiter()] {
          others_running.count_down();
          w.wait();
          return 1;
        }));
      others_running.wait();
      std::latch shutting_down(1);
      auto f = executor.submit([&] {
        shutting_down.count_down();
        executor.shutdown(true);  // returns once the other two workers have exited
        return others[0].done() && others[1].done() ? 10 : -1;
      });
      shutting_down.wait();
      gate.open();
      return f.result() + others[0].result() + others[1].result();
    });
    CHECK(value == 12);
  }
}

// ---- callables, callbacks, stop tokens, stats ----

TEST_CASE("Move-only callables and arguments are accepted") {
  ThreadPoolExecutor executor(2);
  auto owned = executor.submit([p = std::make_unique<int>(5)] { return *p; });
  auto by_arg = executor.submit([](std::unique_ptr<int> p) { return *p * 2; }, std::make_unique<int>(21));
  auto both = executor.submit([q = std::make_unique<int>(1)](std::unique_ptr<int> p) { return *p + *q; },
                              std::make_unique<int>(2));
  auto returns_owner = executor.submit([](std::unique_ptr<int> p) { return p; }, std::make_unique<int>(7));
  CHECK(owned.result() == 5);
  CHECK(by_arg.result() == 42);
  CHECK(both.result() == 3);
  REQUIRE(returns_owner.result() != nullptr);
  CHECK(*returns_owner.result() == 7);
}

TEST_CASE(
    "add_done_callback runs callbacks in order, at once when already done, and survives throwing ones") {
  std::mutex mutex;
  std::vector<std::string> errors;
  ThreadPoolExecutor executor(
      ExecutorOptions{.max_workers = 1, .on_callback_error = [&](std::exception_ptr e) {
                        std::lock_guard lock(mutex);
                        errors.push_back(message_of(e));
                      }});

  SUBCASE("in order, on the worker, once the task is done") {
    Gate gate;
    auto f = executor.submit([w = gate.waiter()] {
      w.wait();
      return 1;
    });
    std::vector<int> order;
    std::latch last_ran(1);
    for (int i = 1; i <= 3; ++i)
      f.add_done_callback([&order, i, f](const Future<int>& done) {
        CHECK(done == f);
        CHECK(done.done());
        order.push_back(i);  // all run on one thread, one after another
      });
    f.add_done_callback([&](const Future<int>&) { last_ran.count_down(); });
    CHECK(order.empty());
    gate.open();
    last_ran.wait();
    CHECK(order == std::vector{1, 2, 3});
  }
  SUBCASE("at once, on the calling thread, when already done") {
    auto f = executor.submit([] { return 1; });
    REQUIRE(f.result() == 1);
    std::thread::id ran_on;
    f.add_done_callback([&](const Future<int>&) { ran_on = std::this_thread::get_id(); });
    CHECK(ran_on == std::this_thread::get_id());
    f.add_done_callback([](const Future<int>&) { throw std::runtime_error("late callback"); });
    CHECK(executor.stats().callback_errors == 1);
    std::lock_guard lock(mutex);
    CHECK(errors == std::vector<std::string>{"late callback"});
  }
  SUBCASE("a throwing callback is reported and counted, later callbacks and the worker keep going") {
    Gate gate;
    auto f = executor.submit([w = gate.waiter()] {
      w.wait();
      return 1;
    });
    std::latch after_ran(1);
    f.add_done_callback([](const Future<int>&) { throw std::runtime_error("callback failed"); });
    f.add_done_callback([&](const Future<int>&) { after_ran.count_down(); });
    gate.open();
    after_ran.wait();
    CHECK(f.result() == 1);
    CHECK(executor.stats().callback_errors == 1);
    {
      std::lock_guard lock(mutex);
      CHECK(errors == std::vector<std::string>{"callback failed"});
    }
    // The single worker survived: it runs the next task.
    CHECK(executor.submit([] { return 2; }).result() == 2);
    CHECK(executor.stats().workers == 1);
  }
}

TEST_CASE("A task submitted while a done-callback runs gets a thread, even when the callback waits for it") {
  // As in Python, a worker counts as idle only once its task's callbacks have run: the task below
  // must start a second thread rather than wait for the worker stuck in the callback.
  ThreadPoolExecutor executor(2);
  Gate gate;
  std::promise<void> second_ran;
  auto second_ran_future = second_ran.get_future();
  std::latch callback_running(1);
  std::latch callback_done(1);
  bool callback_saw_second = false;
  auto first = executor.submit([w = gate.waiter()] { w.wait(); });
  first.add_done_callback([&](const Future<void>&) {
    callback_running.count_down();
    callback_saw_second = second_ran_future.wait_for(30s) == std::future_status::ready;
    callback_done.count_down();
  });
  gate.open();
  callback_running.wait();
  auto second = executor.submit([&second_ran] { second_ran.set_value(); });
  second.result();
  callback_done.wait();
  CHECK(callback_saw_second);
  CHECK(executor.stats().workers == 2);
}

TEST_CASE("shutdown(wait, cancel_futures, cancel_running=true) asks running tasks to stop") {
  ThreadPoolExecutor executor(3);
  std::latch started(3);
  auto returns = executor.submit([&started](std::stop_token token) {
    started.count_down();
    wait_for_stop(token);
    return std::string("stopped");
  });
  auto throws = executor.submit([&started](std::stop_token token) -> std::string {
    started.count_down();
    wait_for_stop(token);
    throw imgdl::CancelledError();
  });
  Gate gate;
  auto plain = executor.submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
    return std::string("plain");
  });
  started.wait();
  with_watchdog([&] {
    executor.shutdown(false, false, true);
    gate.open();  // a task without a stop_token cannot be stopped: it is let go
    executor.shutdown(true);
  });
  CHECK(returns.stop_requested());
  CHECK(returns.result() == "stopped");
  CHECK(throws.cancelled());
  CHECK(plain.result() == "plain");
  CHECK(executor.stats().cancelled == 1);
  CHECK(executor.stats().completed == 2);
}

TEST_CASE("stats() counts pending, running, completed and cancelled tasks at controlled points") {
  ThreadPoolExecutor executor(2);
  CHECK(executor.stats().workers == 0);
  Gate gate;
  std::latch started(2);
  std::vector<Future<int>> futures;
  for (int i = 0; i < 2; ++i)
    futures.push_back(executor.submit([&started, w = gate.waiter()] {
      started.count_down();
      w.wait();
      return 1;
    }));
  for (int i = 0; i < 3; ++i)
    futures.push_back(executor.submit([i]() -> int {
      if (i == 0)
        throw std::runtime_error("counted as completed");
      return 1;
    }));
  started.wait();
  auto stats = executor.stats();
  CHECK(stats.running == 2);
  CHECK(stats.pending == 3);
  CHECK(stats.completed == 0);
  CHECK(stats.cancelled == 0);
  CHECK(stats.workers == 2);
  CHECK(stats.callback_errors == 0);

  REQUIRE(futures[4].cancel());
  stats = executor.stats();
  CHECK(stats.pending == 2);
  CHECK(stats.cancelled == 1);

  gate.open();
  executor.shutdown();
  stats = executor.stats();
  CHECK(stats.pending == 0);
  CHECK(stats.running == 0);
  CHECK(stats.completed == 4);
  CHECK(stats.cancelled == 1);
  CHECK(stats.workers == 2);
}

TEST_CASE("A million tiny tasks from four producer threads all run and return their values") {
  constexpr int producers = 4;
  // Scaled down under sanitizers, which slow each task by an order of magnitude.
  constexpr long per_producer = imgdl::test::sanitized ? 62'500 : 250'000;
  constexpr long batch = 10'000;  // bounds the futures alive at once
  ThreadPoolExecutor executor(4);
  std::atomic<long> ran{0};
  std::vector<long> sums(producers);
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&, p] {
        std::vector<Future<long>> futures;
        futures.reserve(batch);
        long sum = 0;
        for (long start = 0; start < per_producer; start += batch) {
          for (long i = start; i < std::min(start + batch, per_producer); ++i)
            futures.push_back(executor.submit([&ran, i] {
              ran.fetch_add(1, std::memory_order_relaxed);
              return i;
            }));
          for (auto& f : futures)
            sum += f.result();
          futures.clear();
        }
        sums[static_cast<std::size_t>(p)] = sum;
      });
  }
  const long expected = per_producer * (per_producer - 1) / 2;
  for (long sum : sums)
    CHECK(sum == expected);
  CHECK(ran.load() == producers * per_producer);
  executor.shutdown();
  CHECK(executor.stats().completed == static_cast<std::size_t>(producers * per_producer));
  CHECK(executor.stats().workers <= 4);
}

TEST_CASE("wait and as_completed on no futures return at once") {
  const std::vector<imgdl::Future<int>> none;
  for (auto mode : {imgdl::ReturnWhen::FirstCompleted, imgdl::ReturnWhen::FirstException,
                    imgdl::ReturnWhen::AllCompleted}) {
    const auto result = imgdl::wait(none, mode);
    CHECK(result.done.empty());
    CHECK(result.not_done.empty());
  }
  int yielded = 0;
  for (const auto& f : imgdl::as_completed(none)) {
    (void)f;
    ++yielded;
  }
  CHECK(yielded == 0);
}
