#include "scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace imgdl::detail {

std::chrono::milliseconds retry_delay(std::chrono::milliseconds backoff, std::chrono::milliseconds max_delay,
                                      int attempt, std::optional<std::chrono::milliseconds> retry_after,
                                      double jitter) noexcept {
  if (retry_after)
    return std::min(*retry_after, max_delay);
  const double base = static_cast<double>(backoff.count()) * std::pow(2.0, attempt - 1);
  const auto capped = std::min(base * jitter, static_cast<double>(max_delay.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped));
}

double random_jitter() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.5, 1.5)(rng);
}

Scheduler::Scheduler(std::size_t slots, std::size_t per_host, bool reuse_finishing_slots, Now now,
                     HostTable* hosts)
    : own_pool_(std::make_unique<SlotPool>(std::vector<std::size_t>{slots}, nullptr)),
      pool_(own_pool_.get()),
      loop_(0),
      per_host_(per_host),
      reuse_finishing_slots_(reuse_finishing_slots),
      now_(std::move(now)),
      hosts_(hosts && hosts->active() ? hosts : nullptr) {}

Scheduler::Scheduler(SlotPool& pool, std::size_t loop, std::size_t per_host, bool reuse_finishing_slots,
                     Now now, HostTable* hosts)
    : pool_(&pool),
      loop_(loop),
      per_host_(per_host),
      reuse_finishing_slots_(reuse_finishing_slots),
      now_(std::move(now)),
      hosts_(hosts && hosts->active() ? hosts : nullptr) {}

void Scheduler::add(Scheduled& job) {
  job.state = JobState::Queued;
  job.order = next_order_++;
  ++unfinished_;
  // A host already found unreachable: the URL ends at once rather than waiting for a slot.
  if (hosts_ && hosts_->unreachable_count() != 0 && !job.host.empty() && hosts_->unreachable(job.host)) {
    unreachable_.push_back(&job);
    return;
  }
  queued_.push_back(&job);
}

bool Scheduler::take_slot() {
  waiting_for_slot_ = !pool_->try_take(loop_);
  return !waiting_for_slot_;
}

std::size_t Scheduler::host_count(const std::string& host) const {
  const auto it = host_running_.find(host);
  return it == host_running_.end() ? 0 : it->second;
}

bool Scheduler::can_start() const noexcept {
  // A job at its host's limit would only move to the host's waiters: count it as startable, since
  // next_start() makes progress on it.
  return !due_.empty() || (!queued_.empty() && pool_->has_free(loop_));
}

Scheduled* Scheduler::next_start() {
  while (true) {
    Scheduled* job = nullptr;
    if (!due_.empty()) {
      job = due_.front();
      due_.pop_front();
    } else if (!queued_.empty() && take_slot()) {
      job = queued_.front();
      queued_.pop_front();
    } else {
      if (queued_.empty() && waiting_for_slot_) {
        waiting_for_slot_ = false;
        pool_->stop_waiting(loop_);  // what it waited for is gone: its free slots may go elsewhere
      }
      return nullptr;
    }
    // A queued job took a slot above; one that does not start now gives it back.
    const auto hold_off = [&] {
      if (!job->holds_slot)
        pool_->release(loop_, 1, 0);
    };
    // No host: a URL that makes no request (see Scheduled::host) owes no host anything.
    if (per_host_ != 0 && !job->host.empty() && host_count(job->host) >= per_host_) {
      hold_off();
      wait_for_host(*job);  // an attempt there ending lets it go
      continue;
    }
    if (hosts_ && !job->host.empty()) {
      const HostGate gate = hosts_->try_start(job->host, now_());
      if (gate.kind == HostGate::Unreachable) {
        hold_off();
        unreachable_.push_back(job);
        continue;
      }
      if (gate.kind == HostGate::Wait) {
        hold_off();
        wait_for_host(*job);
        if (!host_timers_.contains(job->host))
          push_timer({gate.until, nullptr, job->host});
        continue;
      }
    }
    if (!job->holds_slot) {
      job->holds_slot = true;
      ++holding_;
    }
    if (per_host_ != 0)
      ++host_running_[job->host];
    job->state = JobState::Running;
    if (!job->host.empty())
      arm_host(job->host);
    return job;
  }
}

void Scheduler::wait_for_host(Scheduled& job) {
  job.state = JobState::WaitingForHost;
  auto& line = host_waiting_[job.host];
  // In submission order: a waiter let go and held off again returns to its place, not to the end.
  auto at = line.end();
  while (at != line.begin() && (*std::prev(at))->order > job.order)
    --at;
  line.insert(at, &job);
}

void Scheduler::release_host(const std::string& host) {
  auto waiting = host_waiting_.find(host);
  if (waiting == host_waiting_.end())
    return;
  Scheduled* next = waiting->second.front();
  waiting->second.pop_front();
  if (waiting->second.empty())
    host_waiting_.erase(waiting);
  // It was first in line: it goes back to the front of the queue it came from.
  if (next->holds_slot) {
    next->state = JobState::Running;  // due: it starts before any new job
    due_.push_front(next);
  } else {
    next->state = JobState::Queued;
    queued_.push_front(next);
  }
}

void Scheduler::arm_host(const std::string& host) {
  if (!hosts_ || host_timers_.contains(host) || !host_waiting_.contains(host))
    return;
  if (per_host_ != 0 && host_count(host) >= per_host_)
    return;  // the next attempt to end there lets the waiter go
  push_timer({hosts_->ready_at(host, now_()), nullptr, host});
}

void Scheduler::push_timer(Timer timer) {
  if (!timer.job)
    host_timers_.emplace(timer.host, timer.at);
  timers_.push_back(std::move(timer));
  std::push_heap(timers_.begin(), timers_.end(), later);
}

void Scheduler::attempt_ended(Scheduled& job, const AttemptOutcome* outcome) {
  if (outcome && hosts_)
    hosts_->attempt_ended(job.host, *outcome, now_());
  if (per_host_ == 0)
    return;
  if (auto running = host_running_.find(job.host); running != host_running_.end() && --running->second == 0)
    host_running_.erase(running);  // memory stays bounded by the hosts in flight, not all hosts seen
  release_host(job.host);
}

void Scheduler::back_off(Scheduled& job, Clock::duration delay) {
  job.state = JobState::BackingOff;
  push_timer({now_() + delay, &job, {}});
}

void Scheduler::release_due() {
  if (timers_.empty())
    return;
  const auto now = now_();
  while (!timers_.empty() && timers_.front().at <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), later);
    Timer timer = std::move(timers_.back());
    timers_.pop_back();
    if (timer.job) {
      timer.job->state = JobState::Running;
      due_.push_back(timer.job);
    } else {
      // The host's time came: its first waiter asks again (and arms the next timer when it starts).
      host_timers_.erase(timer.host);
      release_host(timer.host);
    }
  }
}

std::optional<Scheduler::Clock::time_point> Scheduler::next_deadline() const {
  if (timers_.empty())
    return std::nullopt;
  return timers_.front().at;
}

bool Scheduler::host_unreachable(const Scheduled& job) const {
  return hosts_ && hosts_->unreachable_count() != 0 && hosts_->unreachable(job.host);
}

std::vector<Scheduled*> Scheduler::take_unreachable() {
  std::vector<Scheduled*> taken;
  taken.swap(unreachable_);
  if (hosts_ && hosts_->unreachable_count() != unreachable_seen_) {
    unreachable_seen_ = hosts_->unreachable_count();
    auto waiting = take_waiting([this](const Scheduled& job) { return hosts_->unreachable(job.host); });
    taken.insert(taken.end(), waiting.begin(), waiting.end());
  }
  return taken;
}

void Scheduler::finishing(Scheduled& job) {
  if (job.state == JobState::Finishing)
    return;
  job.state = JobState::Finishing;
  if (job.holds_slot) {
    ++finishing_;
    if (reuse_finishing_slots_)
      pool_->release(loop_, 1, 0);  // the slot takes the next request; the job still holds its place
  }
}

bool Scheduler::try_announce(Scheduled& job) {
  if (job.announced)
    return true;
  if (!pool_->try_announce(loop_))
    return false;
  job.announced = true;
  ++announced_;
  return true;
}

void Scheduler::done(Scheduled& job) {
  if (job.state == JobState::Done)
    return;
  // Under reuse_finishing_slots a Finishing job gave its slot back to the pool already.
  const bool slot_in_pool = job.holds_slot && !(reuse_finishing_slots_ && job.state == JobState::Finishing);
  if (slot_in_pool || job.announced)
    pool_->release(loop_, slot_in_pool ? 1 : 0, job.announced ? 1 : 0);
  if (job.state == JobState::Finishing && job.holds_slot)
    --finishing_;
  if (job.holds_slot) {
    job.holds_slot = false;
    --holding_;
  }
  if (job.announced) {
    job.announced = false;
    --announced_;
  }
  job.state = JobState::Done;
  --unfinished_;
}

std::vector<Scheduled*> Scheduler::take_waiting(const std::function<bool(const Scheduled&)>& matches) {
  std::vector<Scheduled*> taken;
  const auto take = [&](auto& jobs) {
    const auto ended =
        std::stable_partition(jobs.begin(), jobs.end(), [&](const Scheduled* job) { return !matches(*job); });
    taken.insert(taken.end(), ended, jobs.end());
    jobs.erase(ended, jobs.end());
  };
  take(queued_);
  take(due_);
  // Backoffs, earliest retry first; host timers stay (one that finds no waiter does nothing).
  std::sort_heap(timers_.begin(), timers_.end(), later);
  std::reverse(timers_.begin(), timers_.end());
  std::erase_if(timers_, [&](const Timer& timer) {
    if (!timer.job || !matches(*timer.job))
      return false;
    taken.push_back(timer.job);
    return true;
  });
  std::make_heap(timers_.begin(), timers_.end(), later);
  for (auto it = host_waiting_.begin(); it != host_waiting_.end();) {
    take(it->second);
    it = it->second.empty() ? host_waiting_.erase(it) : std::next(it);
  }
  // A waiter let go and taken here would have armed its host's next timer when it started: the
  // waiters left behind it need one.
  for (const auto& [host, line] : host_waiting_)
    arm_host(host);
  return taken;
}

}  // namespace imgdl::detail
