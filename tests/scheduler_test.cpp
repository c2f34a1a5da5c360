// The scheduling rules, driven by a fake clock: no libcurl, no sockets, no threads.

#include <doctest/doctest.h>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "scheduler.hpp"

using namespace std::chrono_literals;
using imgdl::detail::JobState;
using imgdl::detail::retry_delay;
using imgdl::detail::Scheduled;
using imgdl::detail::Scheduler;

namespace {

/// A clock the test moves by hand.
struct FakeClock {
  Scheduler::Clock::time_point now{std::chrono::hours(1)};
  Scheduler::Now source() {
    return [this] { return now; };
  }
};

/// Jobs that never move in memory (the scheduler holds their addresses).
struct Jobs {
  std::deque<Scheduled> all;
  Scheduled& add(Scheduler& s, std::string host = "a.example") {
    Scheduled& job = all.emplace_back();
    job.host = std::move(host);
    s.add(job);
    return job;
  }
};

/// Starts every job the scheduler allows now.
std::vector<Scheduled*> start_all(Scheduler& s) {
  std::vector<Scheduled*> started;
  while (Scheduled* job = s.next_start())
    started.push_back(job);
  return started;
}

/// A job's whole end: its attempt leaves libcurl, its result is decided and delivered.
void end(Scheduler& s, Scheduled& job) {
  s.attempt_ended(job);
  s.finishing(job);
  s.done(job);
}

}  // namespace

TEST_CASE("no more jobs start than there are slots, and the next starts when one is done") {
  FakeClock clock;
  Scheduler s(2, 0, true, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s);
  Scheduled& b = jobs.add(s);
  Scheduled& c = jobs.add(s);
  CHECK(start_all(s) == std::vector<Scheduled*>{&a, &b});
  CHECK(c.state == JobState::Queued);
  CHECK(s.holding_slots() == 2);
  end(s, a);
  CHECK(a.state == JobState::Done);
  CHECK(start_all(s) == std::vector<Scheduled*>{&c});
  CHECK(s.unfinished() == 2);
}

TEST_CASE(
    "a finishing job's slot takes the next request, but the next on_started waits for its on_finished") {
  FakeClock clock;
  Scheduler s(1, 0, true, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s);
  Scheduled& b = jobs.add(s);
  REQUIRE(s.next_start() == &a);
  REQUIRE(s.try_announce(a));
  s.attempt_ended(a);
  s.finishing(a);
  // b's request may go out while a's file is published...
  CHECK(s.next_start() == &b);
  // ...but observers must never see two URLs started in one slot.
  CHECK_FALSE(s.try_announce(b));
  s.done(a);
  CHECK(s.try_announce(b));
  CHECK(s.announced() == 1);
}

TEST_CASE("without slot reuse (Resume), a finishing job keeps its slot until it is done") {
  FakeClock clock;
  Scheduler s(1, 0, false, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s);
  Scheduled& b = jobs.add(s);
  REQUIRE(s.next_start() == &a);
  s.attempt_ended(a);
  s.finishing(a);
  CHECK(s.next_start() == nullptr);
  CHECK_FALSE(s.can_start());
  s.done(a);
  CHECK(s.can_start());
  CHECK(s.next_start() == &b);
}

TEST_CASE("a host at per_host makes its next URL wait, while other hosts go on") {
  FakeClock clock;
  Scheduler s(8, 1, true, clock.source());
  Jobs jobs;
  Scheduled& a1 = jobs.add(s, "a");
  Scheduled& a2 = jobs.add(s, "a");
  Scheduled& b1 = jobs.add(s, "b");
  CHECK(start_all(s) == std::vector<Scheduled*>{&a1, &b1});
  CHECK(a2.state == JobState::WaitingForHost);
  CHECK_FALSE(a2.holds_slot);
  end(s, a1);
  // The waiter is back first in line, and starts now that its host has room.
  CHECK(a2.state == JobState::Queued);
  CHECK(start_all(s) == std::vector<Scheduled*>{&a2});
}

TEST_CASE("a begun job that waits for its host keeps its slot and goes back before new jobs") {
  FakeClock clock;
  Scheduler s(3, 1, true, clock.source());
  Jobs jobs;
  Scheduled& b1 = jobs.add(s, "b");
  REQUIRE(s.next_start() == &b1);
  s.attempt_ended(b1);
  s.back_off(b1, 0ms);
  // While b1 backs off, b2 takes host b's one connection.
  Scheduled& b2 = jobs.add(s, "b");
  REQUIRE(s.next_start() == &b2);
  s.release_due();
  CHECK(s.next_start() == nullptr);
  CHECK(b1.state == JobState::WaitingForHost);
  CHECK(b1.holds_slot);
  CHECK(s.holding_slots() == 2);
  Scheduled& c = jobs.add(s, "c");
  end(s, b2);
  // b1 returns first, ahead of c, and takes no second slot.
  CHECK(start_all(s) == std::vector<Scheduled*>{&b1, &c});
  CHECK(s.holding_slots() == 2);
}

TEST_CASE("a backoff ends at its retry time on the clock, and due retries start before new jobs") {
  FakeClock clock;
  Scheduler s(1, 0, true, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s);
  REQUIRE(s.next_start() == &a);
  s.attempt_ended(a);
  s.back_off(a, 500ms);
  Scheduled& b = jobs.add(s);
  CHECK(a.state == JobState::BackingOff);
  CHECK(s.next_deadline() == clock.now + 500ms);
  // a holds its slot through the backoff, as a worker thread would: b waits.
  CHECK(s.next_start() == nullptr);
  clock.now += 499ms;
  s.release_due();
  CHECK(s.next_start() == nullptr);
  clock.now += 1ms;
  s.release_due();
  CHECK(s.next_deadline() == std::nullopt);
  CHECK(s.next_start() == &a);
  CHECK(b.state == JobState::Queued);
}

TEST_CASE("retries are released in the order of their retry times") {
  FakeClock clock;
  Scheduler s(3, 0, true, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s);
  Scheduled& b = jobs.add(s);
  Scheduled& c = jobs.add(s);
  start_all(s);
  for (auto [job, delay] : {std::pair{&a, 300ms}, {&b, 100ms}, {&c, 200ms}}) {
    s.attempt_ended(*job);
    s.back_off(*job, delay);
  }
  clock.now += 1s;
  s.release_due();
  CHECK(start_all(s) == std::vector<Scheduled*>{&b, &c, &a});
}

TEST_CASE("Retry-After replaces the exponential backoff, and both are capped") {
  CHECK(retry_delay(500ms, 30s, 1, std::nullopt, 1.0) == 500ms);
  CHECK(retry_delay(500ms, 30s, 3, std::nullopt, 1.0) == 2000ms);
  CHECK(retry_delay(500ms, 30s, 3, std::nullopt, 0.5) == 1000ms);
  CHECK(retry_delay(500ms, 30s, 20, std::nullopt, 1.4) == 30s);
  CHECK(retry_delay(500ms, 30s, 1, 7s, 1.4) == 7s);
  CHECK(retry_delay(500ms, 30s, 1, 3600s, 1.0) == 30s);
}

TEST_CASE("cancelling takes the chosen waiting jobs out of line, in the order they wait") {
  FakeClock clock;
  Scheduler s(1, 1, true, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s, "a");
  Scheduled& b = jobs.add(s, "b");
  Scheduled& c = jobs.add(s, "c");
  REQUIRE(s.next_start() == &a);
  s.attempt_ended(a);
  s.back_off(a, 1s);
  const auto taken = s.take_waiting([&](const Scheduled& job) { return &job != &c; });
  CHECK(taken == std::vector<Scheduled*>{&b, &a});
  for (Scheduled* job : taken) {
    s.finishing(*job);
    s.done(*job);
  }
  CHECK(s.next_deadline() == std::nullopt);
  CHECK(s.next_start() == &c);
  CHECK(s.unfinished() == 1);
}

TEST_CASE("a job done without ever holding a slot frees nothing it did not take") {
  FakeClock clock;
  Scheduler s(1, 0, true, clock.source());
  Jobs jobs;
  Scheduled& a = jobs.add(s);
  Scheduled& b = jobs.add(s);
  REQUIRE(s.next_start() == &a);
  REQUIRE(s.take_waiting([](const Scheduled&) { return true; }) == std::vector<Scheduled*>{&b});
  s.done(b);
  CHECK(s.holding_slots() == 1);
  CHECK(s.next_start() == nullptr);
}
