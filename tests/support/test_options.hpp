#pragma once
// DownloadOptions for the tests that download from the loopback test servers.

#include <chrono>
#include <filesystem>

#include "imgdl/downloader.hpp"

namespace imgdl::test {

/// Downloads into `dir` from a loopback server: retries back off 10 ms (at most 2 s) so retried tests
/// stay quick, and a stuck transfer fails in 20 s instead of hanging the suite. Everything else is the
/// library's default.
inline DownloadOptions local_server_options(const std::filesystem::path& dir) {
  using namespace std::chrono_literals;
  DownloadOptions o;
  o.output_dir = dir;
  o.retry_backoff = 10ms;
  o.retry_max_delay = 2s;
  o.connect_timeout = 5s;
  o.timeout = 20s;
  return o;
}

}  // namespace imgdl::test
