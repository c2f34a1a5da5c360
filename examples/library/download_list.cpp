// The Downloader on a list of URLs, after the seed's download_image() program: options, an observer,
// results and cancellation. Usage: download_list <base URL of imgdl-testserver>; files go to
// ./downloads. docs/library.md quotes the parts between `// [name]` markers; CTest runs it against the
// loopback test server (examples/library/CMakeLists.txt).
#include <imgdl/downloader.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// [observer]
// Prints a line per finished URL, like the seed's print(f'{filename} was downloaded...').
class PrintFinished : public imgdl::DownloadObserver {
 public:
  void on_retrying(const Transfer& t, int attempt, std::chrono::milliseconds delay,
                   std::string_view reason) override {
    std::lock_guard lock(mutex_);  // one observer may serve several Downloaders, each with its thread
    std::cout << t.name << ": attempt " << attempt << " failed (" << reason << "), retrying in "
              << delay.count() << " ms\n";
  }
  void on_finished(const Transfer& t, const imgdl::DownloadResult& result) override {
    std::lock_guard lock(mutex_);
    if (result.ok()) {
      std::cout << t.name << " was downloaded...\n";
    } else {
      std::cout << t.name << ": " << imgdl::to_string(result.status) << '\n';
    }
  }

 private:
  std::mutex mutex_;
};
// [observer]

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: download_list <base URL of imgdl-testserver>\n";
    return 2;
  }
  const std::string base = argv[1];

  // [options]
  imgdl::DownloadOptions options;
  options.output_dir = "downloads";  // created if missing; nothing is written outside it
  options.max_workers = 4;           // unset: min(32, hardware threads + 4), as Python
  options.per_host = 2;              // at most 2 transfers to one host at a time
  options.retries = 1;               // one more attempt after a transient failure
  options.retry_backoff = 100ms;
  options.timeout = 20s;             // per attempt
  options.max_file_size = 10 << 20;  // refuse bodies over 10 MiB
  options.on_exists = imgdl::OnExists::Overwrite;
  options.observer = std::make_shared<PrintFinished>();
  imgdl::Downloader downloader(options);
  // [options]

  // [download-all]
  const std::vector<std::string> urls{
      base + "/img/Python_bivittatus_1701.jpg?size=48000",
      base + "/img/Python_Regius.png?size=30000",
      base + "/img/Baby_carpet_python.gif?size=20000",
      base + "/status/404",
      base + "/html",  // a web page, not an image
  };
  const auto results = downloader.download_all(urls);  // blocks; results in input order
  for (const auto& r : results) {
    if (r.ok()) {
      std::cout << r.path.filename().string() << ": " << imgdl::to_string(r.image_type) << ", " << r.bytes
                << " bytes, sha256 " << r.sha256.substr(0, 12) << "...\n";
    } else {
      std::cout << "FAILED " << r.url.substr(base.size()) << ": " << r.message << " ("
                << imgdl::to_string(r.error) << ")\n";
    }
  }
  // [download-all]

  // [cancel]
  std::jthread stopper([&downloader] {
    std::this_thread::sleep_for(300ms);
    downloader.cancel();  // from any thread, e.g. on Ctrl-C: running transfers abort promptly
  });
  // The server sends half the body, then stalls for 30 s.
  const auto stalled = downloader.download_all({base + "/stall-body?size=50000&ms=30000"});
  std::cout << "stalled transfer: " << imgdl::to_string(stalled.front().status) << " ("
            << stalled.front().message << ")\n";
  // [cancel]

  // The three images and two failures above, and a prompt cancel, or the example is broken.
  bool ok = results.size() == 5 && stalled.front().status == imgdl::DownloadStatus::Cancelled;
  for (std::size_t i = 0; ok && i < results.size(); ++i)
    ok = results[i].ok() == (i < 3);
  return ok ? 0 : 1;
}
