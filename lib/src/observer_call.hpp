#pragma once
// How the engine calls a DownloadObserver: one call at a time, and never letting an exception out
// (the calls run inside libcurl's callbacks and the loop's passes). Shared by the transfer loops and
// download_image.

#include <exception>
#include <mutex>

#include "imgdl/downloader.hpp"
#include "plan.hpp"

namespace imgdl::detail {

/// The observer's view of a planned URL.
inline DownloadObserver::Transfer transfer_of(const Plan& p) {
  return {p.index, p.url, p.name};
}

/// Runs `call` under `mutex`; an exception it throws (observers must not throw) is kept in `error` if
/// that holds none yet, for the URL's result to carry.
template <class Call>
void call_observer(std::recursive_mutex& mutex, std::exception_ptr& error, Call&& call) noexcept {
  std::lock_guard lock(mutex);
  try {
    call();
  } catch (...) {
    if (!error)
      error = std::current_exception();
  }
}

}  // namespace imgdl::detail
