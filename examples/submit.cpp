// The seed's submit() program: both tasks run on the pool at once, so it takes about 1 s.
#include <imgdl/executor.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

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
    imgdl::ThreadPoolExecutor executor;  // like Python's `with`: the destructor calls shutdown(wait=true)
    auto f1 = executor.submit(task, 1);
    auto f2 = executor.submit(task, 2);

    std::printf("%s\n", f1.result().c_str());
    std::printf("%s\n", f2.result().c_str());
  }

  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("It took %.7f second(s) to finish.\n", took.count());
}
