// Cancellation: Python's Future.cancel() and shutdown(cancel_futures=True), and beyond Python,
// stopping running tasks through std::stop_token. docs/library.md quotes the parts between
// `// [name]` markers; CTest checks the output (examples/library/CMakeLists.txt).
#include <imgdl/executor.hpp>

#include <chrono>
#include <cstdio>
#include <stop_token>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;

void cancel_pending() {
  // [cancel-pending]
  imgdl::ThreadPoolExecutor executor(1);
  auto busy = executor.submit([] { std::this_thread::sleep_for(200ms); });
  auto queued = executor.submit([] { return 42; });  // waits for the only worker

  const bool cancelled = queued.cancel();  // true: it had not started
  std::printf("cancel() = %s, cancelled() = %s\n", cancelled ? "true" : "false",
              queued.cancelled() ? "true" : "false");
  try {
    queued.result();
  } catch (const imgdl::CancelledError& e) {
    std::printf("result() threw CancelledError: %s\n", e.what());
  }
  // [cancel-pending]
}

void stop_running() {
  // [stop-token]
  imgdl::ThreadPoolExecutor executor;
  // A task whose first parameter is a std::stop_token gets one from the executor.
  auto count = executor.submit(
      [](std::stop_token stop, int limit) {
        int rounds = 0;
        while (rounds < limit) {
          if (stop.stop_requested())
            throw imgdl::CancelledError("stopped after some rounds");
          std::this_thread::sleep_for(10ms);
          ++rounds;
        }
        return rounds;
      },
      1000);

  while (!count.running())
    std::this_thread::sleep_for(1ms);
  // Python can only report that a running task cannot be cancelled; here it is also asked to stop.
  std::printf("cancel() on a running task = %s\n", count.cancel() ? "true" : "false");
  try {
    count.result();
  } catch (const imgdl::CancelledError&) {
    std::printf("stopped: cancelled() = %s\n", count.cancelled() ? "true" : "false");
  }
  // [stop-token]
}

void shutdown_cancelling() {
  // [shutdown]
  imgdl::ThreadPoolExecutor executor(1);
  auto running = executor.submit([](std::stop_token stop) {
    while (!stop.stop_requested())
      std::this_thread::sleep_for(5ms);
    return std::string("noticed the stop request");
  });
  auto queued = executor.submit([] { return std::string("never runs"); });
  while (!running.running())
    std::this_thread::sleep_for(1ms);

  // Python's shutdown(wait=True, cancel_futures=True), plus cancel_running: running tasks'
  // std::stop_token turns stop_requested().
  executor.shutdown(/*wait=*/true, /*cancel_futures=*/true, /*cancel_running=*/true);
  std::printf("running: %s, queued: cancelled() = %s\n", running.result().c_str(),
              queued.cancelled() ? "true" : "false");
  // [shutdown]
}

}  // namespace

int main() {
  cancel_pending();
  stop_running();
  shutdown_cancelling();
}
