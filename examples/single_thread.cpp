// The seed's first program: task(1) then task(2) on the calling thread, so it takes about 2 s.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

std::string task(int id) {
  std::printf("Starting the task %d...\n", id);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return "Done with task " + std::to_string(id);
}

}  // namespace

int main() {
  const auto start = std::chrono::steady_clock::now();

  std::printf("%s\n", task(1).c_str());
  std::printf("%s\n", task(2).c_str());

  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("It took %.7f second(s) to finish.\n", took.count());
}
