// The seed's practical program, line for line: five Wikipedia images downloaded by
// executor.map(download_image, urls) on a thread pool, one blocking fetch per call. Usage:
// download_images [base URL]; the default is Wikimedia's, as the seed; CTest passes the loopback
// test server's. Files go to the working directory, as the seed's open(filename, 'wb').
#include <imgdl/download_image.hpp>
#include <imgdl/executor.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// [download-image]
// def download_image(url):
imgdl::DownloadResult download_image(const std::string& url) {
  // urlopen(url).read(), the empty-body check, and open(filename, 'wb').write() in one call: the
  // file is named from the URL's basename and appears only once the body checks out.
  auto result = imgdl::download_image(url);
  if (!result.ok())
    throw std::runtime_error("Error: could not download the image from " + url + " (" + result.message + ")");
  std::printf("%s was downloaded...\n", result.path.filename().c_str());
  return result;
}
// [download-image]

}  // namespace

int main(int argc, char** argv) {
  const std::string base = argc > 1 ? argv[1] : "https://upload.wikimedia.org/wikipedia/commons";

  const auto start = std::chrono::steady_clock::now();

  const std::vector<std::string> urls = {
      base + "/9/9d/Python_bivittatus_1701.jpg", base + "/4/48/Python_Regius.jpg",
      base + "/d/d3/Baby_carpet_python_caudal_luring.jpg", base + "/f/f0/Rock_python_pratik.JPG",
      base + "/0/07/Dulip_Wilpattu_Python1.jpg"};

  // [map]
  try {
    imgdl::ThreadPoolExecutor executor;
    // Python drops map()'s results (and any exception with them); imgdl's map cancels the calls whose
    // results are dropped, so they are read, and a failed download ends the program.
    for ([[maybe_unused]] const auto& result : executor.map(download_image, urls)) {
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  // [map]

  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("It took %.7f second(s) to finish.\n", took.count());
}
