#pragma once
// Which URL may start an attempt, and when: transfer slots, per-host limits, retry backoff and the
// order the observer promises. No libcurl, no sockets, no threads: time comes from an injected clock,
// so tests drive every rule with a fake one.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "attempt_outcome.hpp"
#include "host_table.hpp"
#include "slot_pool.hpp"

namespace imgdl::detail {

/// A URL's life on a transfer loop. Done is final.
enum class JobState : std::uint8_t {
  Queued,          ///< submitted, holds no slot yet
  WaitingForHost,  ///< its host is at per_host, or its rate or a pause holds it off; back at the
                   ///< front of its queue when an attempt there ends or the host's time comes
  Running,         ///< begun: an attempt is being prepared or is in libcurl
  BackingOff,      ///< a failed attempt waits for its retry time
  Finishing,       ///< its result is decided and not yet delivered
  Done,            ///< its result is delivered
};

/// What the scheduler knows of a job. The transfer loop's jobs derive from it.
struct Scheduled {
  /// Its origin ("scheme://name:port"); empty for a URL that makes no request, which no host rule holds.
  std::string host;
  JobState state = JobState::Queued;
  /// Holds a transfer slot: from its first start to Done, backoffs and host waits included, as a
  /// worker thread would hold it.
  bool holds_slot = false;
  /// Between on_started and on_finished.
  bool announced = false;
  /// Its place in submission order: a host's waiters start in this order.
  std::uint64_t order = 0;
};

/// The wait before retry `attempt` (1 for the first retry): `backoff` × 2^(attempt-1) scaled by
/// `jitter` (drawn from [0.5, 1.5) by the caller), or the server's Retry-After, both capped by
/// `max_delay`. Pure.
std::chrono::milliseconds retry_delay(std::chrono::milliseconds backoff, std::chrono::milliseconds max_delay,
                                      int attempt, std::optional<std::chrono::milliseconds> retry_after,
                                      double jitter) noexcept;

/// A jitter factor in [0.5, 1.5) from a per-thread generator.
double random_jitter();

/// The scheduling rules of one transfer loop. One thread (the loop's) uses it.
///
/// - At most `slots` jobs hold a slot, where `slots` is the loop's share of a SlotPool the Downloader's
///   loops share: a loop with URLs waiting borrows the slots another loop leaves free. A Finishing job's slot
///   may take the next request at once
///   (`reuse_finishing_slots`), so a connection does not wait for the loop's file work; but at most
///   `slots` jobs are announced, so the next job's on_started comes after that job's on_finished.
/// - Begun jobs (retries whose time came, host waits of begun jobs) start before new ones, in order.
/// - With per_host, a host never has more than per_host attempts running; a job that would exceed it
///   waits, and the first waiter for a host returns to the front of its queue when one ends there.
/// - A backoff ends at its retry time on the clock; Retry-After sets that time like any delay.
/// - With a HostTable (shared by a Downloader's loops), a host's attempts start no closer than its rate
///   allows and not while it is paused: a job that would start early waits for its host (holding a slot
///   only if it is begun) until the host's time, on the same timers as backoffs. A job whose host is
///   unreachable is set aside for take_unreachable(), without a slot.
class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  /// A scheduler with `slots` of its own. `hosts` may be null (no politeness rules); else it outlives
  /// the scheduler.
  Scheduler(std::size_t slots, std::size_t per_host, bool reuse_finishing_slots, Now now = Clock::now,
            HostTable* hosts = nullptr);
  /// A scheduler whose slots are loop `loop`'s of `pool`, which outlives it.
  Scheduler(SlotPool& pool, std::size_t loop, std::size_t per_host, bool reuse_finishing_slots,
            Now now = Clock::now, HostTable* hosts = nullptr);

  /// A new job, Queued behind the others (or set aside at once if its host is unreachable).
  void add(Scheduled& job);

  /// The next job to start an attempt, now Running (and holding a slot), or nullptr when none may.
  Scheduled* next_start();
  /// Whether next_start() would return a job without the clock moving.
  bool can_start() const noexcept;

  /// Its attempt left libcurl: the host's count drops and its first waiter goes back in line. With
  /// `outcome` (what the attempt produced), the host table learns from it: failures, pauses.
  void attempt_ended(Scheduled& job, const AttemptOutcome* outcome = nullptr);
  /// Running -> BackingOff until `delay` from now.
  void back_off(Scheduled& job, Clock::duration delay);
  /// Jobs whose backoff has ended become due (they start before any new job), and hosts whose time
  /// came let their first waiter back in line.
  void release_due();
  /// When the earliest backoff or host wait ends.
  std::optional<Clock::time_point> next_deadline() const;

  /// Whether the job's host was found unreachable (its URLs end with ErrorKind::HostUnreachable).
  bool host_unreachable(const Scheduled& job) const;
  /// Jobs whose host is unreachable, out of line, in the order they waited: those next_start() or add()
  /// set aside, and, once a host has newly become unreachable (here or on another loop sharing the
  /// table), every waiting job of it. Their state is unchanged, for the caller to end them.
  std::vector<Scheduled*> take_unreachable();

  /// Running -> Finishing: the result is decided. Frees the slot for a new start (see the class).
  void finishing(Scheduled& job);
  /// Marks a Running or Finishing job announced (its on_started may be called) if fewer than `slots`
  /// are; false otherwise, and the caller retries after a done().
  [[nodiscard]] bool try_announce(Scheduled& job);
  /// -> Done: the slot and announcement are released.
  void done(Scheduled& job);

  /// Takes every waiting job (Queued, WaitingForHost, BackingOff or due to start) that `matches`
  /// picks out of line, in the order they wait; their state is unchanged, for the caller to end them.
  std::vector<Scheduled*> take_waiting(const std::function<bool(const Scheduled&)>& matches);

  /// Jobs not Done, of any state.
  std::size_t unfinished() const noexcept { return unfinished_; }
  std::size_t holding_slots() const noexcept { return holding_; }
  std::size_t announced() const noexcept { return announced_; }

 private:
  /// A backoff's end (job set) or a host's time to let its first waiter go (job null): one heap of
  /// timers, so the loop sleeps until the earliest of either.
  struct Timer {
    Clock::time_point at;
    Scheduled* job = nullptr;
    std::string host;
  };
  static bool later(const Timer& a, const Timer& b) noexcept { return a.at > b.at; }

  /// Takes a slot from the pool for a queued job; false (the pool then knows this loop waits) if none.
  bool take_slot();
  std::size_t host_count(const std::string& host) const;
  void push_timer(Timer timer);
  /// Into its host's waiting line, in submission order.
  void wait_for_host(Scheduled& job);
  /// The host's first waiter back to the front of the queue it came from.
  void release_host(const std::string& host);
  /// After a start on `host`: its next waiter gets a timer if only time holds it off.
  void arm_host(const std::string& host);

  std::unique_ptr<SlotPool> own_pool_;  // a scheduler made with its own slots
  SlotPool* pool_;
  const std::size_t loop_;
  bool waiting_for_slot_ = false;  // the pool was told this loop has URLs without a slot
  const std::size_t per_host_;
  const bool reuse_finishing_slots_;
  Now now_;

  std::deque<Scheduled*> queued_;  // not begun, in submission order
  std::deque<Scheduled*> due_;     // begun, ready for their next attempt
  std::vector<Timer> timers_;      // a min-heap on `at`
  std::unordered_map<std::string, std::deque<Scheduled*>> host_waiting_;
  std::unordered_map<std::string, std::size_t> host_running_;
  std::unordered_map<std::string, Clock::time_point> host_timers_;  // hosts with a timer pending
  HostTable* hosts_;
  std::vector<Scheduled*> unreachable_;  // set aside for take_unreachable()
  std::uint64_t unreachable_seen_ = 0;   // the table's count at the last sweep
  std::uint64_t next_order_ = 0;
  std::size_t unfinished_ = 0;
  std::size_t holding_ = 0;
  std::size_t finishing_ = 0;
  std::size_t announced_ = 0;
};

}  // namespace imgdl::detail
