#pragma once
// A future's status and the exceptions its waits throw, shared by every header of the executor.

#include <cstdint>
#include <stdexcept>

#include "imgdl/export.hpp"

namespace imgdl {

/// Thrown by Future::result(timeout), Future::exception(timeout), as_completed and map when a
/// deadline passes first. Python's concurrent.futures.TimeoutError.
class IMGDL_API TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by Future::result() and Future::exception() of a cancelled future. A task that was asked to
/// stop (through its std::stop_token) may also throw it to end up cancelled rather than failed.
class IMGDL_API CancelledError : public std::runtime_error {
 public:
  CancelledError() : std::runtime_error("the future was cancelled") {}
  using std::runtime_error::runtime_error;
};

/// The life of a future: Pending (queued) → Running → Finished, or Pending → Cancelled, or
/// Running → Cancelled when a task asked to stop throws CancelledError.
enum class FutureStatus : std::uint8_t { Pending, Running, Cancelled, Finished };

}  // namespace imgdl
