#include "socket_events.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <system_error>

namespace imgdl::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::system_error last_error(const char* what) {
  return {errno, std::generic_category(), what};
}

}  // namespace

SocketEvents::SocketEvents(CURLM* multi)
    : multi_(multi), epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!epoll_)
    throw last_error("epoll_create1");
  if (!wake_)
    throw last_error("eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &event) != 0)
    throw last_error("epoll_ctl");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &SocketEvents::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &SocketEvents::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

SocketEvents::~SocketEvents() {
  // curl_multi_cleanup() may still report sockets it closes: they must not reach a destroyed object.
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, nullptr);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, nullptr);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, nullptr);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, nullptr);
}

void SocketEvents::wake() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
  [[maybe_unused]] const auto written = ::write(wake_.get(), &one, sizeof one);
}

int SocketEvents::on_socket(CURL*, curl_socket_t socket, int what, void* self, void* socket_data) {
  auto& events = *static_cast<SocketEvents*>(self);
  if (what == CURL_POLL_REMOVE) {
    ::epoll_ctl(events.epoll_.get(), EPOLL_CTL_DEL, socket, nullptr);
    return 0;  // libcurl forgets the socket's assigned pointer with it
  }
  epoll_event event{};
  event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  event.data.fd = socket;
  // A socket libcurl reports for the first time carries no assigned pointer yet: add it, and mark it.
  // Either guess may be wrong (a closed descriptor leaves epoll by itself): then the other op.
  const int epoll = events.epoll_.get();
  const bool watched = socket_data != nullptr;
  if (::epoll_ctl(epoll, watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket, &event) == 0 ||
      (errno == (watched ? ENOENT : EEXIST) &&
       ::epoll_ctl(epoll, watched ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, socket, &event) == 0)) {
    if (!watched)
      curl_multi_assign(events.multi_, socket, &events);
    return 0;
  }
  // The kernel refused the watch (ENOMEM, max_user_watches): libcurl marks the multi handle dead and
  // fails each transfer the next time it runs it. Known gap: it also stops setting timers, so a
  // transfer with no other watched socket and no expired timer is never run again.
  return -1;
}

int SocketEvents::on_timer(CURLM*, long timeout_ms, void* self) {
  auto& events = *static_cast<SocketEvents*>(self);
  if (timeout_ms < 0) {
    events.timer_.reset();
  } else {
    events.timer_ = Clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  return 0;
}

void SocketEvents::act(curl_socket_t socket, int events) {
  int running = 0;
  curl_multi_socket_action(multi_, socket, events, &running);
}

void SocketEvents::run_due_timers() {
  // libcurl re-arms a 0 ms timer for as long as a fast transfer has data waiting. Running it to the
  // end would keep the loop from everything else (cancel(), new URLs, other sockets) until that
  // transfer ends; returning after every run costs a pass of the loop per chunk. A few runs per call.
  constexpr int max_runs = 16;
  for (int run = 0; run < max_runs && timer_ && *timer_ <= Clock::now(); ++run) {
    timer_.reset();  // the action may set the next deadline
    act(CURL_SOCKET_TIMEOUT, 0);
  }
}

void SocketEvents::wait(std::optional<Clock::time_point> deadline) {
  if (timer_ && (!deadline || *timer_ < *deadline))
    deadline = timer_;
  int timeout_ms = -1;  // nothing due: sleep until a socket or wake() needs the loop
  if (deadline) {
    const auto until = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
    timeout_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(until.count(), 0, INT_MAX));
  }
  std::array<epoll_event, 64> ready{};
  const int count = ::epoll_wait(epoll_.get(), ready.data(), static_cast<int>(ready.size()), timeout_ms);
  for (int i = 0; i < count; ++i) {
    const int fd = ready[static_cast<std::size_t>(i)].data.fd;
    const auto flags = ready[static_cast<std::size_t>(i)].events;
    if (fd == wake_.get()) {
      std::uint64_t pending = 0;
      [[maybe_unused]] const auto drained = ::read(wake_.get(), &pending, sizeof pending);
      continue;
    }
    int events = 0;
    if (flags & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
      events |= CURL_CSELECT_IN;
    if (flags & EPOLLOUT)
      events |= CURL_CSELECT_OUT;
    if (flags & EPOLLERR)
      events |= CURL_CSELECT_ERR;
    act(fd, events);
  }
  run_due_timers();
}

}  // namespace imgdl::detail
