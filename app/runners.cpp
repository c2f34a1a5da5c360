#include "runners.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <stop_token>
#include <unordered_map>
#include <utility>
#include <vector>

#include "imgdl/download_image.hpp"
#include "imgdl/executor.hpp"
#include "imgdl/webdataset.hpp"

#include "format.hpp"

namespace imgdl::app {

namespace {

/// Ctrl-C calls `stop` (from the watcher's thread) while this lives, and at once if a signal came
/// before (e.g. between two --compare runs). Later signals only mark the run interrupted (the summary
/// and report still get written); `stop` is never called once this is gone, whatever happens.
class StopOnInterrupt {
 public:
  StopOnInterrupt(RunContext& ctx, std::function<void()> stop) : watcher_(ctx.watcher) {
    watcher_.on_interrupt([&output = ctx.output, stop] {
      output.print("imgdl: interrupted, stopping (Ctrl-C again to quit at once)");
      stop();
    });
    if (watcher_.interrupted())
      stop();
  }
  ~StopOnInterrupt() {
    watcher_.on_interrupt([] {});
  }
  StopOnInterrupt(const StopOnInterrupt&) = delete;
  StopOnInterrupt& operator=(const StopOnInterrupt&) = delete;

 private:
  InterruptWatcher& watcher_;
};

}  // namespace

double run_downloader(RunContext& ctx, const DownloadOptions& options, std::optional<std::size_t> files,
                      const std::function<void(Downloader&)>& body) {
  auto downloader = std::make_unique<Downloader>(options);
  // SIGTERM is what a batch scheduler sends before it kills: the journal is written out at once.
  const StopOnInterrupt stop_on_interrupt(ctx, [d = downloader.get(), journal = ctx.journal] {
    d->cancel();
    if (journal)
      journal->flush();
  });
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

TimedRun run_thread_per_url(RunContext& ctx, const DownloadOptions& options,
                            const std::vector<std::string>& urls, std::size_t workers) {
  TimedRun run;
  run.mode = "thread per URL";
  run.workers = workers;
  std::stop_source stop;
  const StopOnInterrupt stop_on_interrupt(ctx, [&stop] { stop.request_stop(); });
  ctx.output.begin_run(urls.size());
  const auto start = std::chrono::steady_clock::now();
  {
    // The pool's start-up and shutdown count too, as the seed's `with ThreadPoolExecutor()` block.
    ThreadPoolExecutor executor(workers);
    const std::stop_token token = stop.get_token();
    auto call = [&options, token](const std::string& url) { return download_image(url, options, token); };
    for (auto& result : executor.map(call, urls))
      run.results.push_back(std::move(result));
  }
  run.elapsed_s = to_seconds(std::chrono::steady_clock::now() - start);
  ctx.output.end_run();
  return run;
}

namespace {

/// Where WebDataset output downloads each file before it moves into its shard: inside the output
/// directory (same filesystem, so nothing is written elsewhere), removed at the end when empty.
std::filesystem::path scratch_dir(const DownloadOptions& options) {
  return options.output_dir / ".imgdl-downloading";
}

/// For WebDataset output, the input rows of a shard already published (by an earlier run into this
/// directory), which is never written anew: the Downloader is not given them, but for the failures a
/// --retry-failed run fetches again through a repair of the shard.
class PublishedShards {
 public:
  PublishedShards(WebDatasetWriter* shards, const RunJournal* journal) : shards_(shards), journal_(journal) {}

  /// Whether `row` belongs to a published shard and is not one its repair fetches again (one look at
  /// the directory per shard, and a repair opened when the journal retries some of its rows).
  bool skips(std::size_t row) {
    if (!shards_)
      return false;
    const std::size_t size = shards_->shard_size();
    const std::size_t shard = row / size;
    if (shard != checked_shard_) {
      checked_shard_ = shard;
      checked_published_ = shards_->published(shard);
      if (checked_published_ && journal_ && !shards_->repairing(shard) && retries_some(shard * size, size))
        (void)shards_->repair(shard, [j = journal_](std::size_t p) { return j->retrying(p); });
    }
    return checked_published_ && !shards_->awaits(row);
  }

 private:
  bool retries_some(std::size_t first, std::size_t count) const {
    for (std::size_t p = first; p < first + count; ++p)
      if (journal_->retrying(p))
        return true;
    return false;
  }

  WebDatasetWriter* shards_;
  const RunJournal* journal_;
  std::size_t checked_shard_ = static_cast<std::size_t>(-1);
  bool checked_published_ = false;
};

/// The journal records of a shard under repair, held until the repaired tar is published: until then
/// the published tar lacks their samples, so a run stopped before that must fetch them again.
class HeldRecords {
 public:
  explicit HeldRecords(RunJournal* journal) : journal_(journal) {}
  void hold(std::size_t shard, std::size_t position, const DownloadResult& result, std::string extra) {
    held_[shard].push_back(JournalEntry{position, result, std::move(extra)});
  }
  /// Shard `shard` is published: its records are written.
  void release(std::size_t shard) {
    const auto node = held_.extract(shard);
    if (node.empty())
      return;
    for (const JournalEntry& e : node.mapped())
      journal_->record(e.position, e.result, e.extra);
  }

 private:
  RunJournal* journal_;
  std::unordered_map<std::size_t, std::vector<JournalEntry>> held_;
};

/// The list streamed through one Downloader: each result is counted and reported as it completes
/// (and, for WebDataset output, packed into its shard).
RunOutcome run_streamed(RunContext& ctx, Mode mode) {
  RunOutcome outcome;
  std::optional<WebDatasetWriter> shards;
  DownloadOptions options = ctx.options;
  RunJournal* const journal = ctx.journal;
  HeldRecords held(journal);
  if (ctx.shard_size) {
    shards.emplace(ctx.options.output_dir, *ctx.shard_size);
    shards->on_published([&held](std::size_t shard) { held.release(shard); });
    options.output_dir = scratch_dir(ctx.options);
  }
  PublishedShards published(shards ? &*shards : nullptr, journal);
  bool list_ended = false;
  outcome.totals.elapsed_s = run_downloader(ctx, options, ctx.planned, [&](Downloader& d) {
    const std::size_t workers = mode == Mode::Sequential ? 1 : d.options().max_workers.value_or(1);
    if (ctx.report)
      ctx.report->begin(mode == Mode::Sequential ? "sequential" : "pooled", workers, ctx.options.output_dir,
                        ctx.shard);
    if (journal) {
      // Streamed from the file: the report of a long list's done rows takes no memory to build.
      journal->for_each_done([&](const JournalEntry& e) {
        outcome.totals.add_earlier(e.result);
        if (ctx.report)
          ctx.report->add_earlier_result(
              e.position, e.result, e.extra,
              shards ? std::optional(WebDatasetWriter::key(e.position, *ctx.shard_size)) : std::nullopt);
      });
    }
    // The row's extras, with its sample key for WebDataset output.
    auto extras_of = [&](std::size_t position) {
      auto extras = ctx.source.take_extras(position);
      if (shards) {
        if (!extras)
          extras.emplace();
        extras->key = WebDatasetWriter::key(position, shards->shard_size());
      }
      return extras;
    };
    std::size_t pulled = 0;  // rows handed to the Downloader: its stream index
    // With a journal, a shard or published WebDataset shards, which skip positions, the Downloader's
    // stream index -> input position of each URL in flight (without them, the two are equal).
    const bool skips = journal != nullptr || ctx.shard.has_value() || shards.has_value();
    std::unordered_map<std::size_t, std::size_t> positions;
    d.download_stream(
        [&]() -> std::optional<std::string> {
          for (;;) {
            if (ctx.watcher.interrupted())
              return std::nullopt;  // also while passing over done rows or published shards
            auto next = ctx.source.next();
            if (!next) {
              list_ended = true;
              ctx.output.set_expected(pulled);  // the exact total, now that the list has ended
              return std::nullopt;
            }
            // The whole list's position (with --shard, the source has skipped the other shards').
            const std::size_t p = next->position;
            if (journal && journal->done(p)) {
              (void)ctx.source.take_extras(p);  // reported from the journal, as it was then
              continue;
            }
            if (published.skips(p)) {
              // Its shard is whole from an earlier run: reported as skipped, not fetched again.
              DownloadResult r;
              r.url = std::move(next->url);
              r.status = DownloadStatus::Skipped;
              r.message = "its shard " + WebDatasetWriter::shard_file_name(p / shards->shard_size()) +
                          " is already published";
              outcome.totals.add(r);
              const auto extras = extras_of(p);
              if (ctx.report)
                ctx.report->add_result(p, r, extras ? &*extras : nullptr);
              continue;
            }
            if (skips)
              positions.emplace(pulled, p);
            ++pulled;
            return std::move(next->url);
          }
        },
        [&](std::size_t stream_index, DownloadResult&& r) {
          std::size_t index = stream_index;
          if (skips) {
            const auto node = positions.extract(stream_index);
            index = node.empty() ? stream_index : node.mapped();
          }
          const auto extras = extras_of(index);
          bool held_back = false;
          if (shards) {
            const std::size_t shard = index / shards->shard_size();
            // Reported and recorded where the sample ends up: in its shard, its file gone (a failure
            // has no file: the name planned in the scratch directory means nothing).
            const auto in_shard = r.status == DownloadStatus::Ok
                                      ? ctx.options.output_dir / WebDatasetWriter::shard_file_name(shard)
                                      : std::filesystem::path();
            held_back = journal != nullptr && shards->repairing(shard);
            if (held_back) {  // before add(), which may publish the shard and so release what is held
              DownloadResult recorded = r;
              recorded.path = in_shard;
              held.hold(shard, index, recorded, extras_json(*extras));
            }
            shards->add(index, r, extras->caption, extras->columns);
            r.path = in_shard;
          }
          outcome.totals.add(r);
          if (ctx.report)
            ctx.report->add_result(index, r, extras ? &*extras : nullptr);
          if (journal && !held_back)
            journal->record(index, r, extras ? extras_json(*extras) : std::string());
        },
        mode);
    list_ended = list_ended && !d.cancelled();
  });
  if (shards) {
    // A stopped run publishes no open shard: its rows are fetched again by the next run.
    if (list_ended && !ctx.watcher.interrupted())
      shards->finish();
    else
      shards->abandon();
    std::error_code ignored;
    std::filesystem::remove(scratch_dir(ctx.options), ignored);  // only when empty
  }
  if (journal)
    journal->flush();
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
