#include "interrupt.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <system_error>

namespace imgdl::app {
namespace {

// SIGUSR1 only wakes the waiting thread for shutdown (sent to that thread alone).
sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}

}  // namespace

InterruptWatcher::InterruptWatcher() {
  const sigset_t set = watched_signals();
  if (const int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    throw std::system_error(err, std::generic_category(), "pthread_sigmask");
  }
  thread_ = std::thread([this] { run(); });
}

InterruptWatcher::~InterruptWatcher() {
  stopping_ = true;
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
}

void InterruptWatcher::on_interrupt(std::function<void()> action) {
  std::lock_guard lock(mutex_);
  action_ = std::move(action);
}

int InterruptWatcher::exit_code() const noexcept {
  const int sig = signal_.load();
  return sig == 0 ? 0 : 128 + sig;
}

void InterruptWatcher::run() {
  const sigset_t set = watched_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
      continue;
    if (sig == SIGUSR1) {
      if (stopping_)
        return;
      continue;
    }
    if (signal_.exchange(sig) != 0)
      _exit(128 + sig);  // the second one: the user insists
    std::lock_guard lock(mutex_);
    if (!action_)
      _exit(128 + sig);
    action_();
  }
}

}  // namespace imgdl::app
