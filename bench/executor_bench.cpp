// Throughput and memory of imgdl::ThreadPoolExecutor on empty tasks, measured the way the issue
// quotes Python's ThreadPoolExecutor and BS::thread_pool: submit N tasks in a batch, then result() each.
//
//   executor_bench [--tasks N] [--repeats R] [--workers W] [--json]
//
// Prints the median of R runs per worker count (1, 4, 16), a submit-then-wait-one-at-a-time variant,
// and the heap bytes each pending task holds (mallinfo2 before/after queueing 100,000 tasks).

#include <imgdl/executor.hpp>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

/// Tasks per second for submitting `tasks` empty tasks, then waiting for each result.
double batch_rate(imgdl::ThreadPoolExecutor& executor, std::size_t tasks) {
  std::vector<imgdl::Future<void>> futures;
  futures.reserve(tasks);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < tasks; ++i)
    futures.push_back(executor.submit([] {}));
  for (auto& f : futures)
    f.result();
  const std::chrono::duration<double> took = Clock::now() - start;
  return static_cast<double>(tasks) / took.count();
}

/// Tasks per second when each task is waited for before the next is submitted (round-trip latency).
double one_at_a_time_rate(imgdl::ThreadPoolExecutor& executor, std::size_t tasks) {
  const auto start = Clock::now();
  for (std::size_t i = 0; i < tasks; ++i)
    executor.submit([] {}).result();
  const std::chrono::duration<double> took = Clock::now() - start;
  return static_cast<double>(tasks) / took.count();
}

struct Row {
  std::size_t workers;
  double batch;          // median tasks/s, submit all then result() each
  double one_at_a_time;  // median tasks/s, submit().result() in a loop
};

Row measure(std::size_t workers, std::size_t tasks, int repeats) {
  imgdl::ThreadPoolExecutor executor(workers);
  batch_rate(executor, std::min<std::size_t>(tasks, 100'000));  // warm-up: threads started, heap primed
  std::vector<double> batch;
  std::vector<double> single;
  const std::size_t single_tasks = std::max<std::size_t>(tasks / 10, 1);
  for (int r = 0; r < repeats; ++r) {
    batch.push_back(batch_rate(executor, tasks));
    single.push_back(one_at_a_time_rate(executor, single_tasks));
  }
  return {workers, median(batch), median(single)};
}

/// Heap bytes held per queued task: the task state (callable, future state) and its queue slot.
double bytes_per_pending_task() {
  constexpr std::size_t tasks = 100'000;
  imgdl::ThreadPoolExecutor executor(1);
  std::promise<void> release;
  std::promise<void> started;
  auto blocker = executor.submit([&started, gate = release.get_future()]() mutable {
    started.set_value();
    gate.wait();
  });
  started.get_future().wait();  // the only worker is busy: everything below stays queued
  std::vector<imgdl::Future<void>> futures;
  futures.reserve(tasks);  // the handles' own storage is the caller's, not the executor's
  const auto before = mallinfo2().uordblks;
  for (std::size_t i = 0; i < tasks; ++i)
    futures.push_back(executor.submit([] {}));
  const auto after = mallinfo2().uordblks;
  release.set_value();
  blocker.result();
  return static_cast<double>(after - before) / static_cast<double>(tasks);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t tasks = 1'000'000;
  int repeats = 5;
  bool json = false;
  std::vector<std::size_t> worker_counts{1, 4, 16};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--tasks" && i + 1 < argc) {
      tasks = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--workers" && i + 1 < argc) {
      worker_counts = {std::max<std::size_t>(1, std::strtoull(argv[++i], nullptr, 10))};  // for profiling
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--tasks N] [--repeats R] [--workers W] [--json]\n", argv[0]);
      return 2;
    }
  }

  std::vector<Row> rows;
  for (std::size_t workers : worker_counts)
    rows.push_back(measure(workers, tasks, repeats));
  const double bytes = bytes_per_pending_task();

  if (json) {
    std::printf("{\"tasks\": %zu, \"repeats\": %d, \"bytes_per_pending_task\": %.1f, \"results\": [", tasks,
                repeats, bytes);
    for (std::size_t i = 0; i < rows.size(); ++i)
      std::printf("%s{\"workers\": %zu, \"batch_tasks_per_s\": %.0f, \"one_at_a_time_tasks_per_s\": %.0f}",
                  i ? ", " : "", rows[i].workers, rows[i].batch, rows[i].one_at_a_time);
    std::printf("]}\n");
    return 0;
  }
  std::printf("imgdl::ThreadPoolExecutor, empty tasks, median of %d runs\n", repeats);
  std::printf("%-8s %22s %26s\n", "workers", "batch of N (tasks/s)", "one at a time (tasks/s)");
  for (const auto& row : rows)
    std::printf("%-8zu %22.0f %26.0f\n", row.workers, row.batch, row.one_at_a_time);
  std::printf("N = %zu (one at a time: %zu)\n", tasks, std::max<std::size_t>(tasks / 10, 1));
  std::printf("heap bytes per pending task: %.1f\n", bytes);
}
