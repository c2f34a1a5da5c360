#pragma once
// Bare TCP listeners on 127.0.0.1 for fault tests: one that never answers, and the socket under a
// hand-written server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "output_dir.hpp"  // UniqueFd

namespace imgdl::test {

/// A listening socket on 127.0.0.1 at a free port, closed when it goes. Throws std::runtime_error if
/// it cannot listen.
class LoopbackListener {
 public:
  explicit LoopbackListener(int backlog) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    address_.sin_family = AF_INET;
    address_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address_;
    if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address_), length) != 0 ||
        ::listen(fd_.get(), backlog) != 0 ||
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address_), &length) != 0)
      throw std::runtime_error("cannot listen on loopback");
  }
  int fd() const { return fd_.get(); }
  int port() const { return ntohs(address_.sin_port); }
  const sockaddr_in& address() const { return address_; }

 private:
  detail::UniqueFd fd_;
  sockaddr_in address_{};
};

/// A loopback port that listens and never accepts, its accept queue filled here: every further connect
/// waits unanswered (SYNs dropped), as to a host that dropped off the network.
class SilentListener {
 public:
  SilentListener() {
    for (int i = 0; i < 3; ++i) {
      fillers_.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      ::connect(fillers_.back().get(), reinterpret_cast<const sockaddr*>(&listener_.address()),
                sizeof(sockaddr_in));
    }
  }
  int port() const { return listener_.port(); }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }

 private:
  LoopbackListener listener_{0};
  std::vector<detail::UniqueFd> fillers_;
};

}  // namespace imgdl::test
