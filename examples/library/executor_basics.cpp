// The executor's basics next to seed 003's Python: submit and result, map, shutdown, the executor's
// scope as Python's `with` block, exceptions, done-callbacks and result timeouts. docs/library.md
// quotes the parts between `// [name]` markers; CTest checks the output (examples/library/CMakeLists.txt).
#include <imgdl/executor.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

int ipow(int base, int exp) {
  int result = 1;
  while (exp-- > 0)
    result *= base;
  return result;
}

void submit_with_block() {
  // [submit-with]
  {
    imgdl::ThreadPoolExecutor pool(1);
    auto future = pool.submit(ipow, 2, 15);  // does not block
    std::printf("%d\n", future.result());    // blocks: 32768
  }  // leaving the scope runs pool.shutdown(): waits for every task, like leaving `with`
  // [submit-with]
}

void map_and_shutdown() {
  // [map-shutdown]
  const std::vector<std::string> urls{"python-engineer.com", "twitter.com", "youtube.com"};
  auto scrape_site = [](const std::string& url) { return url + " was scraped!"; };

  imgdl::ThreadPoolExecutor pool(8);
  auto results = pool.map(scrape_site, urls);  // does not block; `urls` must outlive `results`
  for (const auto& res : results) {
    std::printf("%s\n", res.c_str());  // in input order, each as soon as it is available
  }
  pool.shutdown();
  // [map-shutdown]
}

void exceptions() {
  // [exceptions]
  imgdl::ThreadPoolExecutor executor;
  auto future = executor.submit(
      [](int id) -> int { throw std::runtime_error("task " + std::to_string(id) + " failed"); }, 7);

  if (std::exception_ptr error = future.exception()) {  // waits; null if the task returned
    try {
      std::rethrow_exception(error);
    } catch (const std::runtime_error& e) {
      std::printf("exception(): %s\n", e.what());
    }
  }
  try {
    future.result();  // rethrows the task's exception
  } catch (const std::runtime_error& e) {
    std::printf("result() threw: %s\n", e.what());
  }
  // [exceptions]
}

void callbacks_and_timeouts() {
  using namespace std::chrono_literals;
  // [callback-timeout]
  imgdl::ThreadPoolExecutor executor;
  auto slow = executor.submit([] {
    std::this_thread::sleep_for(300ms);
    return std::string("slow result");
  });
  // Runs on the thread that finishes the task (or right away if it is already done), concurrently
  // with the waiters it wakes: its line and the result() line below may come in either order.
  slow.add_done_callback(
      [](const imgdl::Future<std::string>& f) { std::printf("callback: %s\n", f.result().c_str()); });

  try {
    slow.result(50ms);
  } catch (const imgdl::TimeoutError&) {
    std::printf("not done after 50 ms: done() = %s\n", slow.done() ? "true" : "false");
  }
  std::printf("result(): %s\n", slow.result().c_str());
  // [callback-timeout]
}

}  // namespace

int main() {
  submit_with_block();
  map_and_shutdown();
  exceptions();
  callbacks_and_timeouts();
}
