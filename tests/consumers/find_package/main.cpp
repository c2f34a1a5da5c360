// Built outside imgdl's tree against an installed imgdl (CMake package or pkg-config): downloads a few
// images from the loopback test server and uses the executor directly. Prints "<sha256>  <path>" per
// file for `sha256sum -c`; exits non-zero on anything unexpected.
// Usage: consumer <test server base URL> <output dir>
#include <imgdl/downloader.hpp>
#include <imgdl/executor.hpp>
#include <imgdl/version.hpp>

#include <cstdint>
#include <filesystem>
#include <iostream>
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

bool is_hex_sha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: consumer <base URL> <output dir>\n";
    return 2;
  }
  const std::string base = argv[1];
  const std::filesystem::path out = argv[2];
  check(imgdl::version() == IMGDL_EXPECTED_VERSION, "imgdl::version() is " + std::string(imgdl::version()) +
                                                        ", the package says " IMGDL_EXPECTED_VERSION);

  // The executor on its own: submit and map.
  imgdl::ThreadPoolExecutor executor(2);
  auto product = executor.submit([](int a, int b) { return a * b; }, 6, 7);
  check(product.result() == 42, "submit(6 * 7)");
  const std::vector<std::uint64_t> sizes{3000, 5000, 7000};
  std::vector<std::string> urls;
  for (const auto& url : executor.map(
           [&](std::uint64_t size) {
             return base + "/img/consumer_" + std::to_string(size) + ".jpg?size=" + std::to_string(size);
           },
           sizes)) {
    urls.push_back(url);
  }
  urls.push_back(base + "/status/404");

  imgdl::DownloadOptions options;
  options.output_dir = out;
  options.max_workers = 3;
  options.retries = 0;
  imgdl::Downloader downloader(options);
  const auto results = downloader.download_all(urls);

  check(results.size() == urls.size(), "one result per URL");
  for (std::size_t i = 0; i < sizes.size() && i < results.size(); ++i) {
    const auto& r = results[i];
    const auto name = "consumer_" + std::to_string(sizes[i]) + ".jpg";
    check(r.status == imgdl::DownloadStatus::Ok, r.url + ": " + r.message);
    check(r.http_status == 200, r.url + ": HTTP " + std::to_string(r.http_status));
    check(r.path.filename() == name, r.url + ": saved as " + r.path.string());
    check(r.bytes == sizes[i], r.url + ": " + std::to_string(r.bytes) + " bytes");
    check(r.image_type == imgdl::ImageType::Jpeg, r.url + ": not a JPEG");
    check(is_hex_sha256(r.sha256), r.url + ": sha256 '" + r.sha256 + "'");
    std::error_code ec;
    check(std::filesystem::file_size(r.path, ec) == sizes[i] && !ec, r.path.string() + ": size on disk");
    std::cout << r.sha256 << "  " << r.path.string() << '\n';
  }
  if (results.size() == urls.size()) {
    const auto& missing = results.back();
    check(missing.status == imgdl::DownloadStatus::Failed && missing.error == imgdl::ErrorKind::HttpStatus &&
              missing.http_status == 404,
          "/status/404 is a failed result: " + missing.message);
  }
  if (errors == 0)
    std::cerr << "consumer: ok (imgdl " << imgdl::version() << ")\n";
  return errors == 0 ? 0 : 1;
}
