// The Downloader keeps only whole images within the size limits, and says what each one is.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "imgdl/downloader.hpp"
#include "support/real_images.hpp"
#include "test_files.hpp"
#include "test_options.hpp"
#include "test_server.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::ImageType;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

using imgdl::test::png_chunk;
using imgdl::test::read_image;

namespace {

DownloadOptions options_for(const TempDir& dir) {
  DownloadOptions o = imgdl::test::local_server_options(dir.path);
  o.max_workers = 4;
  o.retries = 0;
  return o;
}

struct RealImage {
  std::string file;
  ImageType type;
  std::uint32_t width;
  std::uint32_t height;
};

// Made by real encoders (tests/data/images/make_images.py).
const std::vector<RealImage> real_images{
    {"baseline.jpg", ImageType::Jpeg, 64, 48},  {"progressive_exif.jpg", ImageType::Jpeg, 40, 30},
    {"image.png", ImageType::Png, 64, 48},      {"animated.gif", ImageType::Gif, 20, 10},
    {"lossy.webp", ImageType::Webp, 64, 48},    {"lossless.webp", ImageType::Webp, 31, 17},
    {"extended.webp", ImageType::Webp, 25, 19}, {"image.bmp", ImageType::Bmp, 12, 9},
    {"image.tiff", ImageType::Tiff, 16, 12},    {"image.ico", ImageType::Ico, 48, 48},
    {"image.avif", ImageType::Avif, 36, 20},    {"image.heic", ImageType::Heic, 36, 20},
    {"image.svg", ImageType::Svg, 120, 80},
};

/// A whole, tiny PNG that declares width × height pixels.
std::string png_declaring(std::uint32_t width, std::uint32_t height) {
  std::string ihdr;
  for (const std::uint32_t v : {width, height})
    ihdr += {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
             static_cast<char>(v)};
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);
  return "\x89PNG\r\n\x1a\n" + png_chunk("IHDR", ihdr) + png_chunk("IDAT", "x") + png_chunk("IEND", "");
}

}  // namespace

TEST_CASE("every kept image's format, width and height are in its result") {
  TestServer server;
  TempDir dir;
  std::vector<std::string> urls;
  for (const auto& image : real_images) {
    server.serve_file(image.file, read_image(image.file));
    urls.push_back(server.url("/file/" + image.file));
  }
  Downloader d(options_for(dir));
  const auto results = d.download_all(urls);
  REQUIRE(results.size() == real_images.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    CAPTURE(real_images[i].file);
    CHECK(results[i].status == DownloadStatus::Ok);
    CHECK(results[i].image_type == real_images[i].type);
    CHECK(results[i].width == real_images[i].width);
    CHECK(results[i].height == real_images[i].height);
  }
  CHECK(results[1].orientation == 6);  // progressive_exif.jpg
  CHECK(results[0].orientation == 0);
}

TEST_CASE("every format cut at any of several points fails as corrupt_image and leaves no file") {
  TestServer server;
  TempDir dir;
  std::vector<std::string> urls;
  for (const auto& image : real_images) {
    std::string bytes = read_image(image.file);
    if (image.type == ImageType::Svg)
      bytes.pop_back();  // its final newline: an SVG cut only there is whole
    server.serve_file(image.file, bytes);
    for (const std::size_t cut : {bytes.size() / 3, bytes.size() * 2 / 3, bytes.size() - 1})
      urls.push_back(server.url("/file/" + image.file + "?cut=" + std::to_string(cut)));
  }
  Downloader d(options_for(dir));
  const auto results = d.download_all(urls);
  for (const auto& r : results) {
    CAPTURE(r.url);
    CHECK(r.status == DownloadStatus::Failed);
    CHECK(r.error == ErrorKind::CorruptImage);
    CHECK(r.message.find("image") != std::string::npos);
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("a cut image is retried, and kept once a retry brings it whole") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.retries = 2;
  const auto cut_once = server.url("/flaky/once.png?fails=1&cut=5000&size=20000");
  const auto always_cut = server.url("/img/always.jpg?size=20000&cut=15000");
  Downloader d(o);
  const auto results = d.download_all(std::vector{cut_once, always_cut});
  CHECK(results[0].status == DownloadStatus::Ok);
  CHECK(results[0].attempts == 2);
  CHECK(results[0].bytes == 20000);
  CHECK(results[1].error == ErrorKind::CorruptImage);
  CHECK(results[1].attempts == 3);
  CHECK(results[1].message == "incomplete image: JPEG ends before its EOI marker (cut at 15000 bytes)");
  CHECK(server.hits("/img/always.jpg") == 3);
  CHECK(dir.entries() == std::set<std::string>{"once.png"});
}

TEST_CASE("an image outside the size limits is filtered at its header, not retried, and leaves no file") {
  TestServer server;
  TempDir dir;
  server.serve_file("small.png", png_declaring(64, 48));
  server.serve_file("wide.png", png_declaring(4000, 100));
  server.serve_file("bomb.png", png_declaring(50000, 50000));
  server.serve_file("fine.png", png_declaring(800, 600));
  auto o = options_for(dir);
  o.retries = 3;
  o.min_width = 100;
  o.min_height = 100;
  o.max_aspect = 3;
  Downloader d(o);
  const auto results =
      d.download_all(std::vector{server.url("/file/small.png"), server.url("/file/wide.png"),
                                 server.url("/file/bomb.png"), server.url("/file/fine.png")});
  CHECK(results[0].error == ErrorKind::Filtered);
  CHECK(results[0].message == "filtered: 64x48 is smaller than the minimum 100x100");
  CHECK(results[0].width == 64);
  CHECK(results[1].message == "filtered: 4000x100 has an aspect ratio of 40, over the limit of 3");
  // max_pixels is on by default, against decompression bombs.
  CHECK(results[2].message == "filtered: 50000x50000 is 2500000000 pixels, over the 178956970-pixel limit");
  CHECK(results[3].status == DownloadStatus::Ok);
  for (const auto& r : results)
    CHECK(r.attempts == 1);
  CHECK(server.hits("/file/small.png") == 1);
  CHECK(dir.entries() == std::set<std::string>{"fine.png"});
}

TEST_CASE("an oversized image stops at its header: the rest of its body is never fetched") {
  TestServer server;
  TempDir dir;
  auto o = options_for(dir);
  o.max_aspect = 2;  // the test server's BMPs are 1024 wide and a few pixels high
  const auto r = Downloader(o).submit(server.url("/img/huge.bmp?size=50000000")).result();
  CHECK(r.error == ErrorKind::Filtered);
  CHECK(r.bytes < 5'000'000);
  CHECK(dir.entries().empty());
}

TEST_CASE("a resumed file is checked whole, the prefix it kept included") {
  TestServer server;
  TempDir dir;
  const std::string expected = TestServer::image_bytes("png", 20000, "/img/r.png");
  std::ofstream(dir.path / "r.png.part", std::ios::binary) << expected.substr(0, 5000);
  auto o = options_for(dir);
  o.on_exists = imgdl::OnExists::Resume;
  const auto r = Downloader(o).submit(server.url("/img/r.png?size=20000")).result();
  CHECK(r.status == DownloadStatus::Ok);
  CHECK(r.width == 1);
  REQUIRE(server.range_headers().size() == 1);
  CHECK(server.range_headers()[0] == "bytes=5000-");
  CHECK(imgdl::test::read_file(dir.path / "r.png") == expected);
}

TEST_CASE("a kept prefix that breaks its format is dropped, and the body fetched whole") {
  TestServer server;
  TempDir dir;
  const std::string expected = TestServer::image_bytes("png", 20000, "/img/b.png");
  std::string broken = expected.substr(0, 5000);
  broken.replace(37, 4, "1234");  // the type of the chunk after IHDR: not letters
  std::ofstream(dir.path / "b.png.part", std::ios::binary) << broken;
  auto o = options_for(dir);
  o.on_exists = imgdl::OnExists::Resume;
  const auto r = Downloader(o).submit(server.url("/img/b.png?size=20000")).result();
  CHECK(r.status == DownloadStatus::Ok);
  CHECK(server.range_headers().empty());
  CHECK(imgdl::test::read_file(dir.path / "b.png") == expected);
}
