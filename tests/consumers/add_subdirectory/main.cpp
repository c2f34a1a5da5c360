// Built in a project that add_subdirectory()s imgdl's source tree: submits downloads one by one, takes
// them as they complete, watches them through an observer, and uses the executor directly. Prints
// "<sha256>  <path>" per file for `sha256sum -c`; exits non-zero on anything unexpected.
// Usage: consumer <test server base URL> <output dir>
#include <imgdl/download_image.hpp>
#include <imgdl/downloader.hpp>
#include <imgdl/executor.hpp>
#include <imgdl/url_list.hpp>
#include <imgdl/version.hpp>
#include <imgdl/wait.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

int errors = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "consumer: FAILED " << what << '\n';
    ++errors;
  }
}

class CountFinished : public imgdl::DownloadObserver {
 public:
  void on_finished(const Transfer&, const imgdl::DownloadResult&) override { ++finished; }
  std::atomic<int> finished{0};
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: consumer <base URL> <output dir>\n";
    return 2;
  }
  const std::string base = argv[1];
  const std::filesystem::path out = argv[2];
  check(imgdl::version() == IMGDL_EXPECTED_VERSION, "imgdl::version() is " + std::string(imgdl::version()) +
                                                        ", the target's VERSION is " IMGDL_EXPECTED_VERSION);

  imgdl::ThreadPoolExecutor executor(2);
  auto sum = executor.submit([](int a, int b) { return a + b; }, 2, 3);
  int squares = 0;
  for (int square : executor.map([](int x) { return x * x; }, std::vector{1, 2, 3}))
    squares += square;
  check(sum.result() == 5 && squares == 14, "submit and map");

  auto observer = std::make_shared<CountFinished>();
  imgdl::DownloadOptions options;
  options.output_dir = out;
  options.max_workers = 2;
  options.retries = 0;
  options.observer = observer;
  imgdl::Downloader downloader(options);

  const std::vector<std::uint64_t> sizes{4000, 6000};
  std::vector<imgdl::Future<imgdl::DownloadResult>> futures;
  for (auto size : sizes) {
    futures.push_back(downloader.submit(base + "/img/embedded_" + std::to_string(size) +
                                        ".png?size=" + std::to_string(size)));
  }
  int seen = 0;
  for (const auto& future : imgdl::as_completed(futures)) {
    const auto& r = future.result();
    ++seen;
    check(r.status == imgdl::DownloadStatus::Ok, r.url + ": " + r.message);
    check(r.image_type == imgdl::ImageType::Png, r.url + ": not a PNG");
    std::error_code ec;
    check(r.bytes > 0 && std::filesystem::file_size(r.path, ec) == r.bytes && !ec, r.url + ": size on disk");
    std::cout << r.sha256 << "  " << r.path.string() << '\n';
  }
  for (std::size_t i = 0; i < sizes.size(); ++i)
    check(futures[i].result().bytes == sizes[i], "requested size");
  check(seen == 2 && observer->finished == 2, "two results, two on_finished calls");

  // The rest of the public API, through the shared library's exports: the seed's design, lists,
  // names of statuses, a Promise, and an exception thrown inside the library caught here by type.
  const auto single = imgdl::download_image(base + "/img/single.gif?size=3000", options);
  check(single.status == imgdl::DownloadStatus::Ok && single.image_type == imgdl::ImageType::Gif,
        "download_image: " + single.message);
  std::vector<imgdl::UrlLineError> list_errors;
  const auto lines = imgdl::parse_url_list("http://a.example/x.jpg\nnot a url\n", &list_errors);
  check(lines.size() == 1 && list_errors.size() == 1, "parse_url_list");
  check(imgdl::to_string(imgdl::ErrorKind::HttpStatus) == "http_status" &&
            imgdl::extension_for(imgdl::ImageType::Png) == ".png",
        "to_string and extension_for");
  imgdl::Promise<int> promise;
  auto promised = promise.get_future();
  check(promise.set_running_or_notify_cancel(), "Promise starts");
  promise.set_result(7);
  check(promised.result() == 7, "Promise delivers");
  executor.shutdown();
  try {
    (void)executor.submit([] {});
    check(false, "submit after shutdown throws");
  } catch (const imgdl::ExecutorShutdownError&) {
  }
  if (errors == 0)
    std::cerr << "consumer: ok (imgdl " << imgdl::version() << ")\n";
  return errors == 0 ? 0 : 1;
}
