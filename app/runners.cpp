#include "runners.hpp"

#include <chrono>
#include <memory>
#include <utility>

#include "format.hpp"

namespace imgdl::app {

double run_downloader(RunContext& ctx, const DownloadOptions& options, std::optional<std::size_t> files,
                      const std::function<void(Downloader&)>& body) {
  auto downloader = std::make_unique<Downloader>(options);
  ctx.watcher.on_interrupt([&] {
    ctx.output.print("imgdl: interrupted, stopping (Ctrl-C again to quit at once)");
    downloader->cancel();
  });
  // Later signals only mark the run interrupted (the summary and report still get written); and the
  // callback above must not outlive `downloader`, whatever happens below.
  struct Disarm {
    InterruptWatcher& w;
    ~Disarm() {
      w.on_interrupt([] {});
    }
  } disarm{ctx.watcher};
  // A signal that came before the callback was installed (e.g. between two --compare runs).
  if (ctx.watcher.interrupted())
    downloader->cancel();
  ctx.output.begin_run(files);
  const auto start = std::chrono::steady_clock::now();
  body(*downloader);
  const double elapsed_s = to_seconds(std::chrono::steady_clock::now() - start);
  ctx.output.end_run();
  return elapsed_s;
}

TimedRun run_list(RunContext& ctx, const DownloadOptions& options, const std::vector<std::string>& urls,
                  Mode mode, std::string label) {
  TimedRun run;
  run.mode = std::move(label);
  run.elapsed_s = run_downloader(ctx, options, urls.size(), [&](Downloader& d) {
    run.workers = mode == Mode::Sequential ? 1 : d.options().max_workers.value_or(1);
    run.results = d.download_all(urls, mode);
  });
  return run;
}

namespace {

/// The list streamed through one Downloader: each result is counted and reported as it completes.
RunOutcome run_streamed(RunContext& ctx, Mode mode) {
  RunOutcome outcome;
  outcome.totals.elapsed_s = run_downloader(ctx, ctx.options, ctx.planned, [&](Downloader& d) {
    const std::size_t workers = mode == Mode::Sequential ? 1 : d.options().max_workers.value_or(1);
    if (ctx.report)
      ctx.report->begin(mode == Mode::Sequential ? "sequential" : "pooled", workers, ctx.options.output_dir);
    std::size_t pulled = 0;
    d.download_stream(
        [&]() -> std::optional<std::string> {
          auto url = ctx.source.next();
          if (url)
            ++pulled;
          else
            ctx.output.set_expected(pulled);  // the exact total, now that the list has ended
          return url;
        },
        [&](std::size_t index, DownloadResult&& r) {
          outcome.totals.add(r);
          if (ctx.report)
            ctx.report->add_result(index, r);
        },
        mode);
  });
  return outcome;
}

}  // namespace

RunOutcome run_sequential(RunContext& ctx) {
  return run_streamed(ctx, Mode::Sequential);
}

RunOutcome run_pooled(RunContext& ctx) {
  return run_streamed(ctx, Mode::Pooled);
}

}  // namespace imgdl::app
