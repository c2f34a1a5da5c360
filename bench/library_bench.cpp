// The library called directly, for bench/harness.py: reads a URL list, runs
// imgdl::Downloader::download_all with W workers into a directory and prints one line of JSON.
//
//   library_bench LIST DIR [-j W] [--sequential]
//
// Output: {"urls":N,"ok":K,"failed":F,"bytes":B,"seconds":S,"first_start_s":T,"maxrss_kib":R,
// "first_error":"..."}; first_start_s is when the first transfer started (download_all plans every name
// first, so this is the planning time).
// Exit status 0 when every URL is ok, 1 when some failed, 2 on bad usage or an unreadable list.

#include <imgdl/downloader.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

void usage() {
  std::cerr << "usage: library_bench LIST DIR [-j W] [--sequential]\n";
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

/// Records when the first transfer starts.
class FirstStart : public imgdl::DownloadObserver {
 public:
  void on_started(const Transfer&) override {
    if (!seen_.exchange(true))
      at_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }
  std::chrono::steady_clock::time_point at() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(at_.load()));
  }

 private:
  std::atomic<bool> seen_{false};
  std::atomic<std::chrono::steady_clock::rep> at_{0};
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> positional;
  std::size_t workers = 0;
  bool sequential = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-j" && i + 1 < argc) {
      workers = std::stoul(argv[++i]);
    } else if (arg == "--sequential") {
      sequential = true;
    } else if (arg.starts_with("-")) {
      usage();
      return 2;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    usage();
    return 2;
  }

  std::ifstream in{std::string(positional[0])};
  if (!in) {
    std::cerr << "library_bench: cannot read " << positional[0] << "\n";
    return 2;
  }
  std::vector<std::string> urls;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (!line.empty() && line.front() != '#')
      urls.push_back(std::move(line));
  }

  try {
    imgdl::DownloadOptions options;
    options.output_dir = std::string(positional[1]);
    if (workers > 0)
      options.max_workers = workers;
    options.on_exists = imgdl::OnExists::Overwrite;
    options.compute_sha256 = false;  // as the CLI without --report; none of the peers hash either
    const auto first_start = std::make_shared<FirstStart>();
    options.observer = first_start;

    const auto start = std::chrono::steady_clock::now();
    std::size_t ok = 0;
    std::size_t failed = 0;
    std::uint64_t bytes = 0;
    std::string first_error;
    {
      imgdl::Downloader downloader(options);
      const auto results =
          downloader.download_all(urls, sequential ? imgdl::Mode::Sequential : imgdl::Mode::Pooled);
      for (const auto& r : results) {
        if (r.ok()) {
          ++ok;
          bytes += r.bytes;
        } else {
          ++failed;
          if (first_error.empty())
            first_error = r.url + ": " + r.message;
        }
      }
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;

    rusage usage_self{};
    getrusage(RUSAGE_SELF, &usage_self);
    std::cout << "{\"urls\":" << urls.size() << ",\"ok\":" << ok << ",\"failed\":" << failed
              << ",\"bytes\":" << bytes << ",\"seconds\":" << took.count()
              << ",\"first_start_s\":" << std::chrono::duration<double>(first_start->at() - start).count()
              << ",\"maxrss_kib\":" << usage_self.ru_maxrss << ",\"first_error\":\""
              << json_escape(first_error) << "\"}" << std::endl;
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "library_bench: " << e.what() << "\n";
    return 2;
  }
}
