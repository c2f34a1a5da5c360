#pragma once
// The transfer slots of a Downloader, shared by its transfer loops. Each loop has a share of
// max_workers; a loop with URLs waiting for a slot borrows the slots of a loop that has nothing to do,
// and gives them back as soon as that loop wants them. URLs stay on the loop their host
// was routed to (where its connection is): only slots move between loops, never URLs, so a quiet
// host is never sent to a second loop and a second TLS handshake just to keep a loop busy.

#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

namespace imgdl::detail {

/// Thread-safety: every member may be called from any thread; in practice loop `i`'s scheduler calls
/// them for `i` from loop i's thread. `wake` is called without the pool's lock held, from the thread
/// whose call moved a slot to the woken loop.
class SlotPool {
 public:
  /// `shares[i]`: loop i's own slots (each at least 1). `wake(i)`: interrupts loop i's wait, because
  /// it was given slots it asked for. `has_work(i)`: whether loop i has URLs not finished, including
  /// those handed to it and not yet seen by its scheduler (null: only what the pool sees counts). A loop
  /// lends its slots only when it has no work: lending a loop that is about to use them would cost a
  /// connection on each side (one busy host's URLs spread over every loop).
  SlotPool(std::vector<std::size_t> shares, std::function<void(std::size_t)> wake,
           std::function<bool(std::size_t)> has_work = nullptr);

  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  /// Takes a slot for loop `loop` to start a transfer: one of its own, else one a loop with nothing
  /// to do lends. False (and the loop is marked as waiting for a slot, so the next slot freed
  /// elsewhere is offered to it) when there is none, or when the loop holds slots borrowed from a loop
  /// that wants them back: those go back first.
  [[nodiscard]] bool try_take(std::size_t loop);
  /// The loop has no URL waiting for a slot any more (its queue emptied without a take).
  void stop_waiting(std::size_t loop);
  /// Marks one of the loop's slots announced (its URL's on_started may be called); false if every
  /// slot the loop has is.
  [[nodiscard]] bool try_announce(std::size_t loop);
  /// Gives back `taken` slots and `announced` announcements of the loop.
  void release(std::size_t loop, std::size_t taken, std::size_t announced);

  /// Whether try_take() would succeed with the loop's own slots now, without borrowing.
  [[nodiscard]] bool has_free(std::size_t loop) const;
  /// The slots loop `loop` has now: its share, plus what it borrowed, minus what it lent.
  [[nodiscard]] std::size_t slots(std::size_t loop) const;

 private:
  struct Loop {
    std::size_t share = 0;      // its own slots
    std::size_t slots = 0;      // what it has now
    std::size_t taken = 0;      // slots in use: a transfer holds each (see Scheduler)
    std::size_t announced = 0;  // URLs between on_started and on_finished
    bool waiting = false;       // has URLs that found no slot
  };

  /// A slot of the loop neither taken nor announced: it can move to another loop.
  static bool spare(const Loop& l) noexcept { return l.taken < l.slots && l.announced < l.slots; }
  /// Moves one slot; the receiver is woken after the lock is released.
  void move_slot(std::size_t from, std::size_t to, std::vector<std::size_t>& woken);
  /// After `loop` freed something: its borrowed spare slots go back to loops waiting below their
  /// share, and, if it has nothing to do, its slots go to loops waiting for one.
  void offer(std::size_t loop, std::vector<std::size_t>& woken);
  /// A loop waiting below its share, or the end.
  std::size_t owed_to(std::size_t except) const noexcept;
  /// Nothing running, waiting or handed to it.
  bool idle(std::size_t loop) const;
  void wake_all(const std::vector<std::size_t>& woken) const;

  mutable std::mutex mutex_;
  std::vector<Loop> loops_;
  std::function<void(std::size_t)> wake_;
  std::function<bool(std::size_t)> has_work_;
};

}  // namespace imgdl::detail
