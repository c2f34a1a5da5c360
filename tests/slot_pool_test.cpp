// Slots shared by transfer loops: a loop with URLs waiting borrows another loop's free slots and
// gives them back when that loop wants them. Two schedulers on one pool, a fake clock, no threads.

#include <doctest/doctest.h>

#include <deque>
#include <string>
#include <vector>

#include "scheduler.hpp"
#include "slot_pool.hpp"

using imgdl::detail::JobState;
using imgdl::detail::Scheduled;
using imgdl::detail::Scheduler;
using imgdl::detail::SlotPool;

namespace {

/// Two loops of two slots each, recording which loop the pool wakes.
struct TwoLoops {
  std::vector<std::size_t> woken;
  SlotPool pool{{2, 2},
                [this](std::size_t loop) { woken.push_back(loop); },
                [this](std::size_t loop) { return (loop == 0 ? a : b).unfinished() != 0; }};
  Scheduler a{pool, 0, 0, true};
  Scheduler b{pool, 1, 0, true};
  std::deque<Scheduled> jobs;

  Scheduled& add(Scheduler& s) {
    Scheduled& job = jobs.emplace_back();
    job.host = "h.example";
    s.add(job);
    return job;
  }
  static std::vector<Scheduled*> start_all(Scheduler& s) {
    std::vector<Scheduled*> started;
    while (Scheduled* job = s.next_start()) {
      REQUIRE(s.try_announce(*job));
      started.push_back(job);
    }
    return started;
  }
  static void end(Scheduler& s, Scheduled& job) {
    s.attempt_ended(job);
    s.finishing(job);
    s.done(job);
  }
};

}  // namespace

TEST_CASE("a loop with nothing to do lends its slots to a loop with URLs waiting") {
  TwoLoops t;
  for (int i = 0; i < 5; ++i)
    t.add(t.a);
  CHECK(TwoLoops::start_all(t.a).size() == 4);
  CHECK(t.pool.slots(0) == 4);
  CHECK(t.pool.slots(1) == 0);
  CHECK(t.a.unfinished() == 5);
}

TEST_CASE("lent slots go back as soon as their loop has URLs, and the borrower waits for it") {
  TwoLoops t;
  for (int i = 0; i < 6; ++i)
    t.add(t.a);
  const auto running = TwoLoops::start_all(t.a);
  REQUIRE(running.size() == 4);
  Scheduled& theirs = t.add(t.b);
  CHECK(TwoLoops::start_all(t.b).empty());  // both its slots are busy on the other loop
  CHECK(t.woken.empty());

  TwoLoops::end(t.a, *running[0]);  // a borrowed slot frees: it goes home, not to a's next URL
  CHECK(t.woken == std::vector<std::size_t>{1});
  CHECK(TwoLoops::start_all(t.a).empty());
  CHECK(TwoLoops::start_all(t.b) == std::vector<Scheduled*>{&theirs});
  CHECK(t.pool.slots(0) == 3);
  CHECK(t.pool.slots(1) == 1);
}

TEST_CASE("a borrower gives back a slot each time one of its URLs ends, until each loop runs its share") {
  TwoLoops t;
  for (int i = 0; i < 6; ++i)
    t.add(t.a);
  auto in_a = TwoLoops::start_all(t.a);
  REQUIRE(in_a.size() == 4);
  for (int i = 0; i < 4; ++i)
    t.add(t.b);
  CHECK(TwoLoops::start_all(t.b).empty());
  for (std::size_t i = 0; i < 2; ++i) {
    TwoLoops::end(t.a, *in_a[i]);
    CHECK(TwoLoops::start_all(t.a).empty());
    CHECK(TwoLoops::start_all(t.b).size() == 1);
  }
  CHECK(t.woken == std::vector<std::size_t>{1, 1});
  CHECK(t.pool.slots(0) == 2);
  CHECK(t.pool.slots(1) == 2);
  // At their shares, both waiting: each ending URL's slot takes its own loop's next, and nobody is woken.
  TwoLoops::end(t.a, *in_a[2]);
  CHECK(TwoLoops::start_all(t.a).size() == 1);
  CHECK(t.woken.size() == 2);
}

TEST_CASE("a loop whose waiting URLs are cancelled is owed nothing: the borrower keeps the slots") {
  TwoLoops t;
  for (int i = 0; i < 5; ++i)
    t.add(t.a);
  auto in_a = TwoLoops::start_all(t.a);
  REQUIRE(in_a.size() == 4);
  Scheduled& theirs = t.add(t.b);
  CHECK(TwoLoops::start_all(t.b).empty());
  CHECK(t.b.take_waiting([](const Scheduled&) { return true; }) == std::vector<Scheduled*>{&theirs});
  t.b.done(theirs);
  CHECK(t.b.next_start() == nullptr);  // its queue is empty: it stops waiting
  TwoLoops::end(t.a, *in_a[0]);
  CHECK(TwoLoops::start_all(t.a).size() == 1);
  CHECK(t.woken.empty());
  CHECK(t.pool.slots(0) == 4);
}

TEST_CASE("no loop ever announces more URLs than it has slots, wherever the slots came from") {
  TwoLoops t;
  for (int i = 0; i < 8; ++i)
    t.add(t.a);
  auto in_a = TwoLoops::start_all(t.a);
  REQUIRE(in_a.size() == 4);
  // A finishing URL's slot takes the next request, whose on_started waits for that URL's on_finished.
  t.a.attempt_ended(*in_a[0]);
  t.a.finishing(*in_a[0]);
  Scheduled* next = t.a.next_start();
  REQUIRE(next != nullptr);
  CHECK_FALSE(t.a.try_announce(*next));
  t.a.done(*in_a[0]);
  CHECK(t.a.try_announce(*next));
  CHECK(next->state == JobState::Running);
}

TEST_CASE("a loop waiting below its share takes back its lent slot from an idle borrower") {
  TwoLoops t;
  for (int i = 0; i < 3; ++i)
    t.add(t.a);
  auto in_a = TwoLoops::start_all(t.a);
  REQUIRE(in_a.size() == 3);  // one of b's slots
  for (Scheduled* job : in_a)
    TwoLoops::end(t.a, *job);
  CHECK(t.a.next_start() == nullptr);  // a's queue is empty: it waits for nothing
  Scheduled& b1 = t.add(t.b);
  Scheduled& b2 = t.add(t.b);
  CHECK(TwoLoops::start_all(t.b) == std::vector<Scheduled*>{&b1, &b2});
  CHECK(t.pool.slots(1) == 2);
}

TEST_CASE("a loop with URLs of its own lends nothing, even before it has started any") {
  TwoLoops t;
  for (int i = 0; i < 4; ++i) {
    t.add(t.a);
    t.add(t.b);
  }
  CHECK(TwoLoops::start_all(t.a).size() == 2);  // b has not asked yet, but it has work: one busy host
  CHECK(TwoLoops::start_all(t.b).size() == 2);  // spread over two loops keeps its connections per slot
  CHECK(t.woken.empty());
}

TEST_CASE("a pool needs a slot for every loop") {
  CHECK_THROWS_AS(SlotPool({2, 0}, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(SlotPool({}, nullptr), std::invalid_argument);
}
