#include "slot_pool.hpp"

#include <stdexcept>

namespace imgdl::detail {

namespace {
constexpr std::size_t none = static_cast<std::size_t>(-1);
}

SlotPool::SlotPool(std::vector<std::size_t> shares, std::function<void(std::size_t)> wake,
                   std::function<bool(std::size_t)> has_work)
    : wake_(std::move(wake)), has_work_(std::move(has_work)) {
  if (shares.empty())
    throw std::invalid_argument("a slot pool needs at least one loop");
  for (const std::size_t share : shares) {
    if (share == 0)
      throw std::invalid_argument("every loop needs at least one slot of its own");
    loops_.push_back(Loop{share, share});
  }
}

bool SlotPool::try_take(std::size_t loop) {
  std::vector<std::size_t> woken;
  bool took = false;
  {
    std::lock_guard lock(mutex_);
    Loop& l = loops_[loop];
    if (l.slots > l.share && owed_to(loop) != none) {
      // Borrowed slots go back before this loop starts anything more on them: otherwise a loop that
      // always has a next URL would never have one spare.
      offer(loop, woken);
    } else if (l.taken < l.slots) {
      took = true;
    } else {
      for (std::size_t j = 0; j < loops_.size() && !took; ++j) {
        const Loop& other = loops_[j];
        // An idle loop lends; one holding slots of ours gives them back.
        const bool lends = (l.slots < l.share && other.slots > other.share) || idle(j);
        if (j != loop && spare(other) && lends) {
          move_slot(j, loop, woken);
          woken.pop_back();  // this loop is awake: it is the one asking
          took = true;
        }
      }
    }
    if (took) {
      ++l.taken;
      l.waiting = false;
    } else {
      l.waiting = true;
    }
  }
  wake_all(woken);
  return took;
}

void SlotPool::stop_waiting(std::size_t loop) {
  std::vector<std::size_t> woken;
  {
    std::lock_guard lock(mutex_);
    loops_[loop].waiting = false;
    offer(loop, woken);
  }
  wake_all(woken);
}

bool SlotPool::try_announce(std::size_t loop) {
  std::lock_guard lock(mutex_);
  Loop& l = loops_[loop];
  if (l.announced >= l.slots)
    return false;
  ++l.announced;
  return true;
}

void SlotPool::release(std::size_t loop, std::size_t taken, std::size_t announced) {
  std::vector<std::size_t> woken;
  {
    std::lock_guard lock(mutex_);
    Loop& l = loops_[loop];
    l.taken -= taken;
    l.announced -= announced;
    offer(loop, woken);
  }
  wake_all(woken);
}

bool SlotPool::has_free(std::size_t loop) const {
  std::lock_guard lock(mutex_);
  const Loop& l = loops_[loop];
  return l.taken < l.slots && !(l.slots > l.share && owed_to(loop) != none);
}

std::size_t SlotPool::slots(std::size_t loop) const {
  std::lock_guard lock(mutex_);
  return loops_[loop].slots;
}

void SlotPool::move_slot(std::size_t from, std::size_t to, std::vector<std::size_t>& woken) {
  --loops_[from].slots;
  ++loops_[to].slots;
  woken.push_back(to);
}

void SlotPool::offer(std::size_t loop, std::vector<std::size_t>& woken) {
  if (loops_.size() == 1)
    return;
  Loop& l = loops_[loop];
  while (l.slots > l.share && spare(l)) {
    const std::size_t owed = owed_to(loop);
    if (owed == none)
      break;
    move_slot(loop, owed, woken);
  }
  if (!idle(loop))
    return;
  for (std::size_t j = 0; j < loops_.size() && spare(l); ++j) {
    if (j != loop && loops_[j].waiting)
      move_slot(loop, j, woken);
  }
}

std::size_t SlotPool::owed_to(std::size_t except) const noexcept {
  for (std::size_t j = 0; j < loops_.size(); ++j)
    if (j != except && loops_[j].waiting && loops_[j].slots < loops_[j].share)
      return j;
  return none;
}

bool SlotPool::idle(std::size_t loop) const {
  const Loop& l = loops_[loop];
  return l.taken == 0 && l.announced == 0 && !l.waiting && !(has_work_ && has_work_(loop));
}

void SlotPool::wake_all(const std::vector<std::size_t>& woken) const {
  if (!wake_)
    return;
  for (const std::size_t loop : woken)
    wake_(loop);
}

}  // namespace imgdl::detail
