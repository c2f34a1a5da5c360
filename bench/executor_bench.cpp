// Throughput and memory of imgdl::ThreadPoolExecutor on empty tasks, by default, with
// ExecutorOptions::batch_scheduling and with idle polling off (idle_spin = 0), side by side with
// BS::thread_pool 5.1.0 and Boost.Asio's thread_pool (post + std::packaged_task), each compiled in when CMake
// finds it. Every tool is measured the same way, in the same process:
//
//   batch:         submit N empty tasks, then wait for each result in order;
//   one at a time: submit one task and wait for its result, N / 10 times (the round trip);
//   memory:        with the only worker blocked, queue 100,000 tasks and divide the growth of
//                  mallinfo2().uordblks (task, future state, queue slot; the caller's futures are
//                  excluded because their vector is reserved beforehand).
//
// For each worker count (1, 4, 16) one pool of each tool is created and warmed up; then each repeat
// runs every tool in turn, the starting tool rotating from repeat to repeat, and the table shows
// medians.
//
//   executor_bench [--tasks N] [--repeats R] [--workers W] [--only TOOL] [--json]

#include <imgdl/executor.hpp>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if IMGDL_BENCH_HAVE_BS
#include <BS_thread_pool.hpp>
#endif
#if IMGDL_BENCH_HAVE_ASIO
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#endif

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// ---- the tools, behind one interface: a pool of `workers` threads, submit() an empty task, wait()
// for its result. Each adapter uses its tool's own future type, as a user of it would.

class Tool {
 public:
  virtual ~Tool() = default;
  /// Tasks per second for submitting `tasks` empty tasks, then waiting for each result.
  virtual double batch_rate(std::size_t tasks) = 0;
  /// Tasks per second when each task is waited for before the next is submitted.
  virtual double one_at_a_time_rate(std::size_t tasks) = 0;
};

template <class Pool>
class ToolImpl final : public Tool {
 public:
  explicit ToolImpl(std::size_t workers) : pool_(workers) {}

  double batch_rate(std::size_t tasks) override {
    using FutureT = decltype(Pool::submit(pool_.pool));
    std::vector<FutureT> futures;
    futures.reserve(tasks);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < tasks; ++i)
      futures.push_back(Pool::submit(pool_.pool));
    for (auto& f : futures)
      Pool::wait(f);
    const std::chrono::duration<double> took = Clock::now() - start;
    return static_cast<double>(tasks) / took.count();
  }

  double one_at_a_time_rate(std::size_t tasks) override {
    const auto start = Clock::now();
    for (std::size_t i = 0; i < tasks; ++i) {
      auto f = Pool::submit(pool_.pool);
      Pool::wait(f);
    }
    const std::chrono::duration<double> took = Clock::now() - start;
    return static_cast<double>(tasks) / took.count();
  }

 private:
  Pool pool_;
};

struct Imgdl {
  static constexpr const char* name = "imgdl";
  imgdl::ThreadPoolExecutor pool;
  explicit Imgdl(std::size_t workers) : pool(workers) {}
  explicit Imgdl(imgdl::ExecutorOptions options) : pool(std::move(options)) {}
  static imgdl::Future<void> submit(imgdl::ThreadPoolExecutor& p) {
    return p.submit([] {});
  }
  template <class F>
  static imgdl::Future<void> submit(imgdl::ThreadPoolExecutor& p, F&& fn) {
    return p.submit(std::forward<F>(fn));
  }
  static void wait(const imgdl::Future<void>& f) { f.result(); }
};

/// The same executor with ExecutorOptions::batch_scheduling: its workers run under SCHED_BATCH.
struct ImgdlBatch : Imgdl {
  static constexpr const char* name = "imgdl, batch_scheduling";
  explicit ImgdlBatch(std::size_t workers)
      : Imgdl(imgdl::ExecutorOptions{.max_workers = workers, .batch_scheduling = true}) {}
};

/// The same executor with ExecutorOptions::idle_spin = 0: idle workers and waiters sleep at once.
struct ImgdlNoPoll : Imgdl {
  static constexpr const char* name = "imgdl, idle_spin = 0";
  explicit ImgdlNoPoll(std::size_t workers)
      : Imgdl(imgdl::ExecutorOptions{.max_workers = workers, .idle_spin = std::chrono::microseconds(0)}) {}
};

#if IMGDL_BENCH_HAVE_BS
struct Bs {
  static constexpr const char* name = "BS::thread_pool 5.1.0";
  BS::thread_pool<> pool;
  explicit Bs(std::size_t workers) : pool(workers) {}
  static std::future<void> submit(BS::thread_pool<>& p) {
    return p.submit_task([] {});
  }
  template <class F>
  static std::future<void> submit(BS::thread_pool<>& p, F&& fn) {
    return p.submit_task(std::forward<F>(fn));
  }
  static void wait(std::future<void>& f) { f.get(); }
};
#endif

#if IMGDL_BENCH_HAVE_ASIO
struct Asio {
  static constexpr const char* name = "Boost.Asio thread_pool";
  boost::asio::thread_pool pool;
  explicit Asio(std::size_t workers) : pool(workers) {}
  static std::future<void> submit(boost::asio::thread_pool& p) {
    return submit(p, [] {});
  }
  template <class F>
  static std::future<void> submit(boost::asio::thread_pool& p, F&& fn) {
    std::packaged_task<void()> task(std::forward<F>(fn));
    auto future = task.get_future();
    boost::asio::post(p, std::move(task));
    return future;
  }
  static void wait(std::future<void>& f) { f.get(); }
};
#endif

/// Heap bytes held per queued task: the task, its future's state and its queue slot.
template <class Pool>
double bytes_per_pending_task() {
  constexpr std::size_t tasks = 100'000;
  Pool pool(1);
  std::promise<void> release;
  std::promise<void> started;
  auto blocker = Pool::submit(pool.pool, [&started, gate = release.get_future().share()] {
    started.set_value();
    gate.wait();
  });
  started.get_future().wait();  // the only worker is busy: everything below stays queued
  using FutureT = decltype(Pool::submit(pool.pool));
  std::vector<FutureT> futures;
  futures.reserve(tasks);
  const auto before = mallinfo2().uordblks;
  for (std::size_t i = 0; i < tasks; ++i)
    futures.push_back(Pool::submit(pool.pool));
  const auto after = mallinfo2().uordblks;
  release.set_value();
  Pool::wait(blocker);
  for (auto& f : futures)
    Pool::wait(f);
  return static_cast<double>(after - before) / static_cast<double>(tasks);
}

struct ToolInfo {
  std::string name;
  bool imgdl;  // one of imgdl's configurations, not a peer
  std::unique_ptr<Tool> (*make)(std::size_t workers);
  double (*bytes)();
};

template <class Pool>
ToolInfo info() {
  return {Pool::name, std::is_base_of_v<Imgdl, Pool>,
          [](std::size_t w) -> std::unique_ptr<Tool> { return std::make_unique<ToolImpl<Pool>>(w); },
          &bytes_per_pending_task<Pool>};
}

struct Cell {
  double batch = 0;
  double one_at_a_time = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t tasks = 1'000'000;
  int repeats = 5;
  bool json = false;
  std::string only;
  std::vector<std::size_t> worker_counts{1, 4, 16};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--tasks" && i + 1 < argc) {
      tasks = std::max<std::size_t>(10, std::strtoull(argv[++i], nullptr, 10));
    } else if (arg == "--workers" && i + 1 < argc) {
      worker_counts = {std::max<std::size_t>(1, std::strtoull(argv[++i], nullptr, 10))};  // for profiling
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];  // a tool name prefix, for profiling one tool: imgdl, BS, Boost
    } else {
      std::fprintf(stderr, "usage: %s [--tasks N] [--repeats R] [--workers W] [--only TOOL] [--json]\n",
                   argv[0]);
      return 2;
    }
  }

  std::vector<ToolInfo> tools{info<Imgdl>(), info<ImgdlBatch>(), info<ImgdlNoPoll>()};
  std::vector<std::string> missing;
#if IMGDL_BENCH_HAVE_BS
  tools.push_back(info<Bs>());
#else
  missing.emplace_back(
      "BS::thread_pool (../shared/peers/bs_thread_pool/BS_thread_pool.hpp not found at configure time)");
#endif
#if IMGDL_BENCH_HAVE_ASIO
  tools.push_back(info<Asio>());
#else
  missing.emplace_back("Boost.Asio (boost/asio/thread_pool.hpp not found at configure time: libboost-dev)");
#endif
  if (!only.empty())
    std::erase_if(tools, [&](const ToolInfo& t) { return !t.name.starts_with(only); });
  for (const auto& m : missing)
    std::fprintf(stderr, "executor_bench: not measured: %s\n", m.c_str());

  const std::size_t single_tasks = std::max<std::size_t>(tasks / 10, 1);
  // cells[w][t]: medians for worker count w and tool t.
  std::vector<std::vector<Cell>> cells(worker_counts.size(), std::vector<Cell>(tools.size()));
  for (std::size_t w = 0; w < worker_counts.size(); ++w) {
    std::vector<std::unique_ptr<Tool>> pools;
    for (const auto& t : tools) {
      pools.push_back(t.make(worker_counts[w]));
      pools.back()->batch_rate(std::min<std::size_t>(tasks, 100'000));  // warm-up: threads, heap
    }
    std::vector<std::vector<double>> batch(tools.size());
    std::vector<std::vector<double>> single(tools.size());
    for (int r = 0; r < repeats; ++r) {
      for (std::size_t k = 0; k < tools.size(); ++k) {
        const std::size_t t = (k + static_cast<std::size_t>(r)) % tools.size();  // rotate who goes first
        batch[t].push_back(pools[t]->batch_rate(tasks));
        single[t].push_back(pools[t]->one_at_a_time_rate(single_tasks));
      }
    }
    for (std::size_t t = 0; t < tools.size(); ++t)
      cells[w][t] = {median(batch[t]), median(single[t])};
  }
  std::vector<double> bytes;
  for (const auto& t : tools)
    bytes.push_back(t.bytes());

  // Each imgdl configuration's ratio to the best peer of each cell, when peers were measured.
  const bool ratios = std::ranges::any_of(tools, [](const ToolInfo& t) { return !t.imgdl; });
  auto best_peer = [&](std::size_t w, double Cell::*field) {
    double best = 0;
    for (std::size_t t = 0; t < tools.size(); ++t)
      if (!tools[t].imgdl)
        best = std::max(best, cells[w][t].*field);
    return best;
  };

  if (json) {
    std::printf("{\"tasks\": %zu, \"repeats\": %d, \"tools\": [", tasks, repeats);
    for (std::size_t t = 0; t < tools.size(); ++t) {
      std::printf("%s{\"name\": \"%s\", \"bytes_per_pending_task\": %.1f, \"results\": [", t ? ", " : "",
                  tools[t].name.c_str(), bytes[t]);
      for (std::size_t w = 0; w < worker_counts.size(); ++w)
        std::printf("%s{\"workers\": %zu, \"batch_tasks_per_s\": %.0f, \"one_at_a_time_tasks_per_s\": %.0f}",
                    w ? ", " : "", worker_counts[w], cells[w][t].batch, cells[w][t].one_at_a_time);
      std::printf("]}");
    }
    std::printf("]}\n");
    return 0;
  }

  std::printf("Empty tasks, median of %d repeats, tools alternated; N = %zu (one at a time: %zu)\n\n",
              repeats, tasks, single_tasks);
  std::printf("| workers | tool | batch (tasks/s) | one at a time (tasks/s) |\n|---:|---|---:|---:|\n");
  for (std::size_t w = 0; w < worker_counts.size(); ++w) {
    for (std::size_t t = 0; t < tools.size(); ++t)
      std::printf("| %zu | %s | %.0f | %.0f |\n", worker_counts[w], tools[t].name.c_str(), cells[w][t].batch,
                  cells[w][t].one_at_a_time);
    for (std::size_t t = 0; ratios && t < tools.size(); ++t)
      if (tools[t].imgdl)
        std::printf("| %zu | **%s / best peer** | **%.2fx** | **%.2fx** |\n", worker_counts[w],
                    tools[t].name.c_str(), cells[w][t].batch / best_peer(w, &Cell::batch),
                    cells[w][t].one_at_a_time / best_peer(w, &Cell::one_at_a_time));
  }
  std::printf("\n| tool | heap bytes per pending task |\n|---|---:|\n");
  for (std::size_t t = 0; t < tools.size(); ++t)
    std::printf("| %s | %.1f |\n", tools[t].name.c_str(), bytes[t]);
  for (const auto& m : missing)
    std::printf("\nNot measured: %s\n", m.c_str());
}
