// The seed's map() program: results come back in input order; both tasks overlap, so about 1 s.
#include <imgdl/executor.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string task(int id) {
  // One printf per line: stdio locks the stream per call, so lines from two workers never mix.
  std::printf("Starting the task %d...\n", id);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return "Done with task " + std::to_string(id);
}

}  // namespace

int main() {
  const auto start = std::chrono::steady_clock::now();

  {
    imgdl::ThreadPoolExecutor executor;
    for (const auto& result : executor.map(task, std::vector{1, 2}))
      std::printf("%s\n", result.c_str());
  }

  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("It took %.7f second(s) to finish.\n", took.count());
}
