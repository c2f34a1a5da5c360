#include "compare.hpp"

#include <fcntl.h>
#include <stdio.h>   // renameat2
#include <stdlib.h>  // mkdtemp
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <queue>
#include <system_error>

#include "format.hpp"
#include "report.hpp"

namespace imgdl::app {
namespace fs = std::filesystem;

ScratchDir::ScratchDir(const fs::path& parent) {
  fs::create_directories(parent);
  std::string templ = (parent / ".imgdl-compare-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot create a scratch directory in " + parent.string());
  }
  path_ = templ;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

/// rename(2) that fails with EEXIST instead of replacing `to`.
int rename_noreplace(const fs::path& from, const fs::path& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return errno;
  // A filesystem without RENAME_NOREPLACE: link() also refuses to replace.
  if (link(from.c_str(), to.c_str()) != 0)
    return errno;
  unlink(from.c_str());
  return 0;
}

/// "cat.jpg", 2 -> "cat.2.jpg": the library's collision style.
fs::path numbered(const fs::path& name, int n) {
  return fs::path(name.stem().string() + "." + std::to_string(n) + name.extension().string());
}

}  // namespace

void keep_files(std::vector<DownloadResult>& results, const fs::path& output_dir, OnExists on_exists) {
  std::map<fs::path, fs::path> moved;  // where each kept file went, for duplicates that point at it
  for (auto& r : results) {
    if (r.path.empty())
      continue;
    if (r.status != DownloadStatus::Ok) {
      auto it = moved.find(r.path);
      r.path = it != moved.end() ? it->second : output_dir / r.path.filename();
      continue;
    }
    const fs::path from = r.path;
    const fs::path name = from.filename();
    fs::path to = output_dir / name;
    int err = 0;
    if (on_exists == OnExists::Overwrite || on_exists == OnExists::Resume) {
      std::error_code ec;
      fs::rename(from, to, ec);
      err = ec.value();
    } else {
      err = rename_noreplace(from, to);
      for (int n = 1; err == EEXIST && on_exists == OnExists::Rename && n < 10000; ++n) {
        to = output_dir / numbered(name, n);
        err = rename_noreplace(from, to);
      }
      if (err == EEXIST && on_exists == OnExists::Skip) {
        r.status = DownloadStatus::Skipped;
        r.message = "already exists in " + output_dir.string() + "; kept the existing file";
        err = 0;
      }
    }
    if (err != 0) {
      r.status = DownloadStatus::Failed;
      r.error = ErrorKind::Write;
      r.message = "cannot move into " + output_dir.string() + ": " + std::generic_category().message(err);
    }
    moved[from] = to;
    r.path = to;
  }
}

double percentile(std::vector<double> values, double p) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

double lpt_makespan(std::vector<double> durations, std::size_t workers) {
  if (durations.empty() || workers == 0)
    return 0;
  std::sort(durations.begin(), durations.end(), std::greater<>());
  std::priority_queue<double, std::vector<double>, std::greater<>> loads;  // the least loaded on top
  for (std::size_t i = 0; i < std::min(workers, durations.size()); ++i)
    loads.push(0.0);
  double makespan = 0;
  for (double d : durations) {
    const double load = loads.top() + d;
    loads.pop();
    loads.push(load);
    makespan = std::max(makespan, load);
  }
  return makespan;
}

RunRow summarize_run(std::string mode, std::size_t workers, const std::vector<DownloadResult>& results,
                     double elapsed_s) {
  RunRow row;
  row.mode = std::move(mode);
  row.workers = workers;
  row.elapsed_s = elapsed_s;
  // The counts are the summary's (Totals); only the per-file times are the table's own.
  Totals totals;
  std::vector<double> times;
  for (const auto& r : results) {
    totals.add(r);
    if (r.status == DownloadStatus::Ok)
      times.push_back(to_seconds(r.elapsed));
  }
  row.files = totals.urls;
  row.files_ok = totals.ok + totals.skipped;
  row.bytes = totals.bytes;
  if (elapsed_s > 0) {
    row.files_per_s = static_cast<double>(row.files_ok) / elapsed_s;
    row.mb_per_s = static_cast<double>(row.bytes) / 1e6 / elapsed_s;
  }
  row.p50_s = percentile(times, 50);
  row.p95_s = percentile(times, 95);
  return row;
}

CompareTable make_compare_table(const std::vector<DownloadResult>& sequential, double sequential_s,
                                const std::vector<DownloadResult>& pooled, double pooled_s,
                                std::size_t workers) {
  CompareTable t;
  t.sequential = summarize_run("sequential", 1, sequential, sequential_s);
  t.pooled = summarize_run("pooled", workers, pooled, pooled_s);
  t.pooled.speedup = pooled_s > 0 ? sequential_s / pooled_s : 0;
  std::vector<double> times;
  for (const auto& r : sequential) {
    if (r.status != DownloadStatus::Cancelled)
      times.push_back(to_seconds(r.elapsed));
  }
  t.ideal_workers = workers;
  t.ideal_pooled_s = lpt_makespan(times, workers);
  t.ideal_speedup = t.ideal_pooled_s > 0 ? sequential_s / t.ideal_pooled_s : 0;
  return t;
}

std::string format_compare_table(const CompareTable& t) {
  auto cell = [](const std::string& s, int width) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%*s", width, s.c_str());
    return std::string(buf);
  };
  auto fixed = [](double v, int decimals) { return format_seconds(v, decimals); };
  auto row_text = [&](const RunRow& r) {
    return cell(r.mode, -13) + cell(std::to_string(r.workers), 7) +
           cell(std::to_string(r.files_ok) + "/" + std::to_string(r.files), 10) +
           cell(format_bytes(r.bytes), 11) + cell(fixed(r.elapsed_s, 3) + " s", 11) +
           cell(fixed(r.files_per_s, 2), 9) + cell(fixed(r.mb_per_s, 2), 8) +
           cell(fixed(r.p50_s, 3) + " s", 10) + cell(fixed(r.p95_s, 3) + " s", 10) +
           cell(fixed(r.speedup, 2) + "x", 9) + "\n";
  };
  std::string s = cell("mode", -13) + cell("workers", 7) + cell("files ok", 10) + cell("bytes", 11) +
                  cell("elapsed", 11) + cell("files/s", 9) + cell("MB/s", 8) + cell("p50 file", 10) +
                  cell("p95 file", 10) + cell("speedup", 9) + "\n";
  s += row_text(t.sequential);
  s += row_text(t.pooled);
  s += cell("ideal pooled", -13) + cell(std::to_string(t.ideal_workers), 7) + cell("-", 10) + cell("-", 11) +
       cell(fixed(t.ideal_pooled_s, 3) + " s", 11) + cell("-", 9) + cell("-", 8) + cell("-", 10) +
       cell("-", 10) + cell(fixed(t.ideal_speedup, 2) + "x", 9) + "\n";
  s +=
      "ideal pooled: the sequential run's per-file times scheduled longest-first onto " +
      std::to_string(t.ideal_workers) +
      " workers,\neach to the first one free (LPT): what a pool without contention or overhead would take.\n";
  return s;
}

nlohmann::ordered_json to_json(const RunRow& r) {
  return {{"mode", r.mode},
          {"workers", r.workers},
          {"files_ok", r.files_ok},
          {"files", r.files},
          {"bytes", r.bytes},
          {"elapsed_s", r.elapsed_s},
          {"files_per_s", r.files_per_s},
          {"mb_per_s", r.mb_per_s},
          {"p50_s", r.p50_s},
          {"p95_s", r.p95_s},
          {"speedup", r.speedup}};
}

nlohmann::ordered_json to_json(const CompareTable& t) {
  return {{"runs", {to_json(t.sequential), to_json(t.pooled)}},
          {"ideal_pooled",
           {{"workers", t.ideal_workers},
            {"elapsed_s", t.ideal_pooled_s},
            {"speedup", t.ideal_speedup},
            {"definition",
             "LPT makespan: the sequential run's per-file times, longest first, each onto the worker that "
             "frees up "
             "first"}}}};
}

}  // namespace imgdl::app
