// The scheduling rules, driven by a fake clock: no libcurl, no sockets, no threads.

#include <doctest/doctest.h>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "host_table.hpp"
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

/// A job's result is decided and delivered (its attempt, if any, has ended).
void deliver(Scheduler& s, Scheduled& job) {
  s.finishing(job);
  s.done(job);
}

/// A job's whole end: its attempt leaves libcurl, its result is decided and delivered.
void end(Scheduler& s, Scheduled& job) {
  s.attempt_ended(job);
  deliver(s, job);
}

/// A job's attempt ends and it waits `delay` to retry, keeping its slot.
void back_off(Scheduler& s, Scheduled& job, std::chrono::milliseconds delay) {
  s.attempt_ended(job);
  s.back_off(job, delay);
}

/// Moves the clock on by `by` and lets the scheduler release what is due by then.
void advance(FakeClock& clock, Scheduler& s, Scheduler::Clock::duration by) {
  clock.now += by;
  s.release_due();
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
  back_off(s, b1, 0ms);
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
  back_off(s, a, 500ms);
  Scheduled& b = jobs.add(s);
  CHECK(a.state == JobState::BackingOff);
  CHECK(s.next_deadline() == clock.now + 500ms);
  // a holds its slot through the backoff, as a worker thread would: b waits.
  CHECK(s.next_start() == nullptr);
  advance(clock, s, 499ms);
  CHECK(s.next_start() == nullptr);
  advance(clock, s, 1ms);
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
    back_off(s, *job, delay);
  }
  advance(clock, s, 1s);
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
  back_off(s, a, 1s);
  const auto taken = s.take_waiting([&](const Scheduled& job) { return &job != &c; });
  CHECK(taken == std::vector<Scheduled*>{&b, &a});
  for (Scheduled* job : taken) {
    deliver(s, *job);
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

// ---- Hosts: rate, pauses and unreachable hosts, on a HostTable shared by a Downloader's loops.

namespace {

using imgdl::ErrorKind;
using imgdl::detail::AttemptOutcome;
using imgdl::detail::HostRules;
using imgdl::detail::HostTable;

AttemptOutcome failed(ErrorKind kind, long status = 0) {
  AttemptOutcome outcome{kind, "failed"};
  outcome.http_status = status;
  outcome.retryable = true;
  return outcome;
}

AttemptOutcome retry_after(long status, std::chrono::milliseconds after) {
  AttemptOutcome outcome = failed(ErrorKind::HttpStatus, status);
  outcome.retry_after = after;
  return outcome;
}

/// A job's attempt ends with `outcome` and its result is delivered.
void end(Scheduler& s, Scheduled& job, const AttemptOutcome& outcome) {
  s.attempt_ended(job, &outcome);
  deliver(s, job);
}

/// A job's attempt ends with `outcome` and it waits `delay` to retry, keeping its slot.
void back_off(Scheduler& s, Scheduled& job, std::chrono::milliseconds delay, const AttemptOutcome& outcome) {
  s.attempt_ended(job, &outcome);
  s.back_off(job, delay);
}

}  // namespace

TEST_CASE("a host's attempts start no closer than its rate allows; a waiting URL holds no slot") {
  FakeClock clock;
  HostTable hosts({.rate = 2.0});  // one start per 500 ms
  Scheduler s(8, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a1 = jobs.add(s, "http://a:80");
  Scheduled& a2 = jobs.add(s, "http://a:80");
  Scheduled& a3 = jobs.add(s, "http://a:80");
  Scheduled& b1 = jobs.add(s, "http://b:80");
  CHECK(start_all(s) == std::vector<Scheduled*>{&a1, &b1});
  CHECK(a2.state == JobState::WaitingForHost);
  CHECK_FALSE(a2.holds_slot);
  CHECK(s.holding_slots() == 2);
  CHECK(s.next_deadline() == clock.now + 500ms);
  end(s, a1);
  advance(clock, s, 499ms);
  CHECK(start_all(s).empty());
  advance(clock, s, 1ms);
  CHECK(start_all(s) == std::vector<Scheduled*>{&a2});
  // The next start is spaced from a2's, and the loop's timer says when.
  CHECK(s.next_deadline() == clock.now + 500ms);
  advance(clock, s, 500ms);
  CHECK(start_all(s) == std::vector<Scheduled*>{&a3});
  CHECK(s.next_deadline() == std::nullopt);
}

TEST_CASE("a fractional rate spaces starts by more than a second") {
  FakeClock clock;
  HostTable hosts({.rate = 0.5});
  Scheduler s(2, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a1 = jobs.add(s, "http://a:80");
  Scheduled& a2 = jobs.add(s, "http://a:80");
  CHECK(start_all(s) == std::vector<Scheduled*>{&a1});
  CHECK(s.next_deadline() == clock.now + 2s);
  advance(clock, s, 2s);
  CHECK(start_all(s) == std::vector<Scheduled*>{&a2});
}

TEST_CASE("two loops sharing a host table space one host's starts between them") {
  FakeClock clock;
  HostTable hosts({.rate = 10.0});  // 100 ms
  Scheduler loop1(4, 0, true, clock.source(), &hosts);
  Scheduler loop2(4, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& x = jobs.add(loop1, "https://a:443");
  Scheduled& y = jobs.add(loop2, "https://a:443");
  CHECK(start_all(loop1) == std::vector<Scheduled*>{&x});
  CHECK(start_all(loop2).empty());
  CHECK(y.state == JobState::WaitingForHost);
  CHECK(loop2.next_deadline() == clock.now + 100ms);
  advance(clock, loop2, 100ms);
  CHECK(start_all(loop2) == std::vector<Scheduled*>{&y});
}

TEST_CASE("a host is an origin: another port or scheme is another host") {
  FakeClock clock;
  HostTable hosts({.rate = 1.0});
  Scheduler s(8, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a = jobs.add(s, "http://127.0.0.1:8080");
  Scheduled& b = jobs.add(s, "http://127.0.0.1:8081");
  Scheduled& c = jobs.add(s, "https://127.0.0.1:8080");
  CHECK(start_all(s) == std::vector<Scheduled*>{&a, &b, &c});
}

TEST_CASE("a begun job held off by its host's rate keeps its slot and goes before new jobs") {
  FakeClock clock;
  HostTable hosts({.rate = 1.0});
  Scheduler s(1, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a1 = jobs.add(s, "http://a:80");
  REQUIRE(s.next_start() == &a1);
  back_off(s, a1, 100ms);
  Scheduled& b1 = jobs.add(s, "http://b:80");
  advance(clock, s, 100ms);
  // a1's retry is due, but host a's next start is at 1 s: it waits, keeping the slot.
  CHECK(start_all(s).empty());
  CHECK(a1.state == JobState::WaitingForHost);
  CHECK(a1.holds_slot);
  CHECK(b1.state == JobState::Queued);
  advance(clock, s, 900ms);
  CHECK(start_all(s) == std::vector<Scheduled*>{&a1});
}

TEST_CASE("a 429 or 503 with Retry-After pauses its host, not only its URL; other hosts go on") {
  for (const long status : {429L, 503L}) {
    CAPTURE(status);
    FakeClock clock;
    HostTable hosts({.pause_on_retry_after = true});
    Scheduler s(8, 0, true, clock.source(), &hosts);
    Jobs jobs;
    Scheduled& a1 = jobs.add(s, "http://a:80");
    REQUIRE(start_all(s) == std::vector<Scheduled*>{&a1});
    back_off(s, a1, 2s, retry_after(status, 2s));
    Scheduled& a2 = jobs.add(s, "http://a:80");
    Scheduled& b1 = jobs.add(s, "http://b:80");
    CHECK(start_all(s) == std::vector<Scheduled*>{&b1});
    CHECK(a2.state == JobState::WaitingForHost);
    CHECK_FALSE(a2.holds_slot);
    advance(clock, s, 1999ms);
    CHECK(start_all(s).empty());
    advance(clock, s, 1ms);
    // The retry and the waiter both start once the pause is over, the retry first.
    CHECK(start_all(s) == std::vector<Scheduled*>{&a1, &a2});
  }
}

TEST_CASE("a pause is capped like the retry delay, and other statuses or no Retry-After pause nothing") {
  FakeClock clock;
  HostTable hosts({.pause_on_retry_after = true, .max_pause = 5s});
  hosts.attempt_ended("http://a:80", retry_after(429, 3600s), clock.now);
  CHECK(hosts.ready_at("http://a:80", clock.now) == clock.now + 5s);
  hosts.attempt_ended("http://b:80", failed(ErrorKind::HttpStatus, 429), clock.now);
  hosts.attempt_ended("http://b:80", retry_after(500, 10s), clock.now);
  CHECK(hosts.ready_at("http://b:80", clock.now) == clock.now);
  HostTable off({.pause_on_retry_after = false});
  off.attempt_ended("http://a:80", retry_after(429, 10s), clock.now);
  CHECK(off.ready_at("http://a:80", clock.now) == clock.now);
}

TEST_CASE(
    "after K connect failures or timeouts in a row a host is unreachable: its waiting URLs are set aside") {
  FakeClock clock;
  HostTable hosts({.unreachable_after = 3});
  Scheduler s(2, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a1 = jobs.add(s, "http://a:80");
  Scheduled& a2 = jobs.add(s, "http://a:80");
  Scheduled& a3 = jobs.add(s, "http://a:80");
  Scheduled& a4 = jobs.add(s, "http://a:80");
  Scheduled& b1 = jobs.add(s, "http://b:80");
  REQUIRE(start_all(s) == std::vector<Scheduled*>{&a1, &a2});
  end(s, a1, failed(ErrorKind::Connect));
  back_off(s, a2, 1s, failed(ErrorKind::Timeout));  // a retry waits
  CHECK_FALSE(s.host_unreachable(a3));
  REQUIRE(start_all(s) == std::vector<Scheduled*>{&a3});
  end(s, a3, failed(ErrorKind::Connect));
  CHECK(s.host_unreachable(a4));
  // The retry in backoff and the queued URL come out at once, not at their turn.
  CHECK(s.take_unreachable() == std::vector<Scheduled*>{&a4, &a2});
  CHECK(s.next_deadline() == std::nullopt);
  for (Scheduled* job : {&a4, &a2}) {
    deliver(s, *job);
  }
  CHECK(start_all(s) == std::vector<Scheduled*>{&b1});
  // A URL added later is set aside as soon as it comes.
  Scheduled& a5 = jobs.add(s, "http://a:80");
  CHECK(start_all(s).empty());
  CHECK(s.take_unreachable() == std::vector<Scheduled*>{&a5});
  CHECK(s.take_unreachable().empty());
  CHECK(hosts.unreachable_count() == 1);
}

TEST_CASE("any response resets the count; a timeout after a response and a cancellation do not count") {
  FakeClock clock;
  HostTable hosts({.unreachable_after = 2});
  const std::string a = "http://a:80";
  hosts.attempt_ended(a, failed(ErrorKind::Connect), clock.now);
  hosts.attempt_ended(a, AttemptOutcome{}, clock.now);  // a success
  hosts.attempt_ended(a, failed(ErrorKind::Connect), clock.now);
  hosts.attempt_ended(a, failed(ErrorKind::HttpStatus, 404), clock.now);
  hosts.attempt_ended(a, failed(ErrorKind::Timeout), clock.now);
  hosts.attempt_ended(a, failed(ErrorKind::Timeout, 200), clock.now);  // answered, then stalled
  hosts.attempt_ended(a, failed(ErrorKind::Timeout), clock.now);
  hosts.attempt_ended(a, AttemptOutcome{ErrorKind::Cancelled, "cancelled"}, clock.now);
  CHECK_FALSE(hosts.unreachable(a));
  hosts.attempt_ended(a, failed(ErrorKind::Timeout), clock.now);
  CHECK(hosts.unreachable(a));
  // Final: a late success from an attempt already running does not bring it back.
  hosts.attempt_ended(a, AttemptOutcome{}, clock.now);
  CHECK(hosts.unreachable(a));
  HostTable never({.unreachable_after = 0});
  for (int i = 0; i < 100; ++i)
    never.attempt_ended(a, failed(ErrorKind::Connect), clock.now);
  CHECK_FALSE(never.unreachable(a));
}

TEST_CASE("a host found unreachable on another loop ends this loop's waiting URLs too") {
  FakeClock clock;
  HostTable hosts({.unreachable_after = 1});
  Scheduler loop1(1, 0, true, clock.source(), &hosts);
  Scheduler loop2(1, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& x = jobs.add(loop1, "http://a:80");
  Scheduled& y = jobs.add(loop2, "http://b:80");
  Scheduled& z = jobs.add(loop2, "http://a:80");
  REQUIRE(start_all(loop1) == std::vector<Scheduled*>{&x});
  REQUIRE(start_all(loop2) == std::vector<Scheduled*>{&y});
  end(loop1, x, failed(ErrorKind::Connect));
  CHECK(loop2.take_unreachable() == std::vector<Scheduled*>{&z});
}

TEST_CASE("a waiter let go and then cancelled leaves its host's next waiter a timer") {
  FakeClock clock;
  HostTable hosts({.rate = 1.0});
  Scheduler s(1, 0, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a1 = jobs.add(s, "http://a:80");
  Scheduled& a2 = jobs.add(s, "http://a:80");
  Scheduled& a3 = jobs.add(s, "http://a:80");
  REQUIRE(start_all(s) == std::vector<Scheduled*>{&a1});
  end(s, a1);
  CHECK(start_all(s).empty());  // a2 and a3 wait for host a
  advance(clock, s, 1s);        // a2 is back in line...
  CHECK(s.take_waiting([&](const Scheduled& job) { return &job == &a2; }) == std::vector<Scheduled*>{&a2});
  s.done(a2);
  // ...and a3 is not stranded.
  REQUIRE(s.next_deadline().has_value());
  s.release_due();
  CHECK(start_all(s) == std::vector<Scheduled*>{&a3});
}

TEST_CASE("a job without a host (it makes no request) is held by no host rule") {
  FakeClock clock;
  HostTable hosts({.rate = 1.0});
  Scheduler s(8, 1, true, clock.source(), &hosts);
  Jobs jobs;
  Scheduled& a = jobs.add(s, "");
  Scheduled& b = jobs.add(s, "");
  CHECK(start_all(s) == std::vector<Scheduled*>{&a, &b});
}
