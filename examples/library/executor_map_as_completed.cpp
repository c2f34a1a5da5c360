// Results in input order (map) and in completion order (as_completed, wait), next to seed 000's
// Python and concurrent.futures' as_completed and wait. docs/library.md quotes the parts between
// `// [name]` markers; CTest checks the output (examples/library/CMakeLists.txt).
#include <imgdl/executor.hpp>
#include <imgdl/wait.hpp>

#include <chrono>
#include <cstdio>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// [tasks]
std::string task(int id) {
  std::printf("Starting the task %d...\n", id);  // one printf per line: lines never mix
  std::this_thread::sleep_for(200ms);
  return "Done with task " + std::to_string(id);
}

std::string nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return "slept " + std::to_string(ms) + " ms";
}
// [tasks]

void map_in_order() {
  // [map]
  imgdl::ThreadPoolExecutor executor;
  for (const auto& result : executor.map(task, std::vector{1, 2})) {
    std::printf("%s\n", result.c_str());
  }
  // [map]
}

void as_completed_order() {
  // [as-completed]
  imgdl::ThreadPoolExecutor executor;
  std::vector<imgdl::Future<std::string>> futures;
  for (int ms : {600, 200, 400})
    futures.push_back(executor.submit(nap, ms));

  for (const auto& future : imgdl::as_completed(futures)) {
    std::printf("%s\n", future.result().c_str());  // in completion order: shortest nap first
  }
  // [as-completed]
}

void wait_first_completed() {
  // [wait]
  imgdl::ThreadPoolExecutor executor;
  std::vector<imgdl::Future<std::string>> futures{executor.submit(nap, 100), executor.submit(nap, 1000)};

  auto [done, not_done] = imgdl::wait(futures, imgdl::ReturnWhen::FirstCompleted);
  std::printf("first: %s, still running: %zu\n", done.front().result().c_str(), not_done.size());

  auto all = imgdl::wait(futures, 5s);  // ReturnWhen::AllCompleted; never throws on timeout
  std::printf("after wait(5s): %zu done, %zu not done\n", all.done.size(), all.not_done.size());
  // [wait]
}

void map_options() {
  // [map-options]
  imgdl::ThreadPoolExecutor executor(4);
  int sum = 0;
  {
    // An endless input: buffersize keeps at most 8 items submitted and not yet consumed.
    auto squares = executor.map([](int x) { return x * x; }, std::views::iota(1), {.buffersize = 8});
    for (int square : squares) {
      if (square > 100)
        break;
      sum += square;
    }
  }  // destroying the results cancels the tasks still queued
  std::printf("sum of squares up to 100: %d\n", sum);

  try {
    for (const auto& result : executor.map(nap, std::vector{10, 1500}, {.timeout = 500ms})) {
      std::printf("%s\n", result.c_str());
    }
  } catch (const imgdl::TimeoutError& e) {
    std::printf("map timed out: %s\n", e.what());
  }
  // [map-options]
}

}  // namespace

int main() {
  map_in_order();
  as_completed_order();
  wait_first_completed();
  map_options();
}
