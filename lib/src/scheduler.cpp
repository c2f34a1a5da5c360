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

Scheduler::Scheduler(std::size_t slots, std::size_t per_host, bool reuse_finishing_slots, Now now)
    : slots_(slots),
      per_host_(per_host),
      reuse_finishing_slots_(reuse_finishing_slots),
      now_(std::move(now)) {
  if (slots_ == 0)
    throw std::invalid_argument("a scheduler needs at least one slot");
}

void Scheduler::add(Scheduled& job) {
  job.state = JobState::Queued;
  queued_.push_back(&job);
  ++unfinished_;
}

bool Scheduler::slot_free() const noexcept {
  const std::size_t busy = reuse_finishing_slots_ ? holding_ - finishing_ : holding_;
  return busy < slots_;
}

std::size_t Scheduler::host_count(const std::string& host) const {
  const auto it = host_running_.find(host);
  return it == host_running_.end() ? 0 : it->second;
}

bool Scheduler::can_start() const noexcept {
  // A job at its host's limit would only move to the host's waiters: count it as startable, since
  // next_start() makes progress on it.
  return !due_.empty() || (!queued_.empty() && slot_free());
}

Scheduled* Scheduler::next_start() {
  while (true) {
    Scheduled* job = nullptr;
    if (!due_.empty()) {
      job = due_.front();
      due_.pop_front();
    } else if (!queued_.empty() && slot_free()) {
      job = queued_.front();
      queued_.pop_front();
    } else {
      return nullptr;
    }
    if (per_host_ != 0 && host_count(job->host) >= per_host_) {
      job->state = JobState::WaitingForHost;
      host_waiting_[job->host].push_back(job);
      continue;
    }
    if (!job->holds_slot) {
      job->holds_slot = true;
      ++holding_;
    }
    if (per_host_ != 0)
      ++host_running_[job->host];
    job->state = JobState::Running;
    return job;
  }
}

void Scheduler::attempt_ended(Scheduled& job) {
  if (per_host_ == 0)
    return;
  if (auto running = host_running_.find(job.host); running != host_running_.end() && --running->second == 0)
    host_running_.erase(running);  // memory stays bounded by the hosts in flight, not all hosts seen
  auto waiting = host_waiting_.find(job.host);
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

void Scheduler::back_off(Scheduled& job, Clock::duration delay) {
  job.state = JobState::BackingOff;
  job.retry_at = now_() + delay;
  backoff_.push_back(&job);
  std::push_heap(backoff_.begin(), backoff_.end(), later);
}

void Scheduler::release_due() {
  if (backoff_.empty())
    return;
  const auto now = now_();
  while (!backoff_.empty() && backoff_.front()->retry_at <= now) {
    std::pop_heap(backoff_.begin(), backoff_.end(), later);
    Scheduled* job = backoff_.back();
    backoff_.pop_back();
    job->state = JobState::Running;
    due_.push_back(job);
  }
}

std::optional<Scheduler::Clock::time_point> Scheduler::next_deadline() const {
  if (backoff_.empty())
    return std::nullopt;
  return backoff_.front()->retry_at;
}

void Scheduler::finishing(Scheduled& job) {
  if (job.state == JobState::Finishing)
    return;
  job.state = JobState::Finishing;
  if (job.holds_slot)
    ++finishing_;
}

bool Scheduler::try_announce(Scheduled& job) {
  if (job.announced)
    return true;
  if (announced_ >= slots_)
    return false;
  job.announced = true;
  ++announced_;
  return true;
}

void Scheduler::done(Scheduled& job) {
  if (job.state == JobState::Done)
    return;
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
  std::sort_heap(backoff_.begin(), backoff_.end(), later);  // earliest retry first
  std::reverse(backoff_.begin(), backoff_.end());
  take(backoff_);
  std::make_heap(backoff_.begin(), backoff_.end(), later);
  for (auto it = host_waiting_.begin(); it != host_waiting_.end();) {
    take(it->second);
    it = it->second.empty() ? host_waiting_.erase(it) : std::next(it);
  }
  return taken;
}

}  // namespace imgdl::detail
