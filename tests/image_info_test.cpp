// Reading an image's format, size and completeness from its own bytes, as they stream in.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "image_info.hpp"
#include "image_type.hpp"
#include "support/real_images.hpp"

using imgdl::ImageType;
using imgdl::detail::ImageFacts;
using imgdl::detail::ImageInspector;
using imgdl::detail::ImageLimits;
using imgdl::detail::size_refusal;
using imgdl::detail::sniff_image_type;

using imgdl::test::png_chunk;
using imgdl::test::read_image;

namespace {

/// Feeds `bytes` in pieces of `chunk` bytes (0: all at once), as a `type` (by default the sniffed one).
ImageInspector inspect(std::string_view bytes, std::size_t chunk = 0, ImageType type = ImageType::Unknown) {
  ImageInspector inspector(type != ImageType::Unknown ? type : sniff_image_type(bytes));
  if (chunk == 0)
    chunk = bytes.size() + 1;
  for (std::size_t at = 0; at < bytes.size(); at += chunk)
    inspector.feed(bytes.substr(at, chunk));
  return inspector;
}

struct Sample {
  std::string_view file;
  ImageType type;
  std::uint32_t width;
  std::uint32_t height;
  std::size_t trailing = 0;  // bytes after the image's end mark that may be cut without harm
};

// Made by real encoders (tests/data/images/make_images.py: Pillow and libheif).
const std::vector<Sample> samples{
    {"baseline.jpg", ImageType::Jpeg, 64, 48},
    {"progressive_exif.jpg", ImageType::Jpeg, 40, 30},
    {"image.png", ImageType::Png, 64, 48},
    {"rgba.png", ImageType::Png, 33, 17},
    {"image.gif", ImageType::Gif, 64, 48},
    {"animated.gif", ImageType::Gif, 20, 10},
    {"lossy.webp", ImageType::Webp, 64, 48},
    {"lossless.webp", ImageType::Webp, 31, 17},
    {"extended.webp", ImageType::Webp, 25, 19},
    {"image.bmp", ImageType::Bmp, 12, 9},
    {"image.tiff", ImageType::Tiff, 16, 12},
    {"small.tiff", ImageType::Tiff, 10, 6},
    {"image.ico", ImageType::Ico, 48, 48},
    {"image.avif", ImageType::Avif, 36, 20},
    {"image.heic", ImageType::Heic, 36, 20},
    {"image.svg", ImageType::Svg, 120, 80, 1},
    {"viewbox.svg", ImageType::Svg, 301, 150, std::string_view("<!-- end -->").size()},
};

std::string describe(const ImageInspector& i) {
  return std::string(imgdl::to_string(i.facts().type)) + " " + std::to_string(i.facts().width) + "x" +
         std::to_string(i.facts().height) + " " + i.incompleteness().value_or("complete");
}

/// A JPEG's segments before its first scan, and the rest (scan data up to EOI).
struct JpegParts {
  std::vector<std::string> segments;  // each with its FF xx marker and length
  std::string scan;
};

JpegParts split_jpeg(const std::string& jpeg) {
  JpegParts parts;
  std::size_t at = 2;
  while (at + 4 <= jpeg.size()) {
    const auto marker = static_cast<std::uint8_t>(jpeg[at + 1]);
    if (marker == 0xDA)
      break;
    const std::size_t length =
        (static_cast<std::uint8_t>(jpeg[at + 2]) << 8) | static_cast<std::uint8_t>(jpeg[at + 3]);
    parts.segments.push_back(jpeg.substr(at, 2 + length));
    at += 2 + length;
  }
  parts.scan = jpeg.substr(at);
  return parts;
}

}  // namespace

TEST_CASE("every format's width and height are read from a real image") {
  for (const auto& s : samples) {
    CAPTURE(s.file);
    const std::string bytes = read_image(s.file);
    const auto inspector = inspect(bytes);
    CHECK(inspector.facts().type == s.type);
    CHECK(inspector.facts().width == s.width);
    CHECK(inspector.facts().height == s.height);
    CHECK_MESSAGE(!inspector.incompleteness(), describe(inspector));
  }
}

TEST_CASE("an image fed one byte at a time, or in odd pieces, reads the same as when fed whole") {
  for (const auto& s : samples) {
    CAPTURE(s.file);
    const std::string bytes = read_image(s.file);
    const std::string whole = describe(inspect(bytes));
    for (const std::size_t chunk : {1U, 2U, 3U, 7U, 64U, 1000U})
      CHECK(describe(inspect(bytes, chunk)) == whole);
  }
}

TEST_CASE("a JPEG's EXIF orientation is noted, and a JPEG without one has none") {
  CHECK(inspect(read_image("progressive_exif.jpg")).facts().orientation == 6);
  CHECK(inspect(read_image("baseline.jpg")).facts().orientation == 0);
}

TEST_CASE("every image cut short at any byte is incomplete, and the message says what is missing") {
  for (const auto& s : samples) {
    CAPTURE(s.file);
    const std::string bytes = read_image(s.file);
    const std::size_t whole = bytes.size() - s.trailing;
    for (std::size_t cut = 0; cut < whole; ++cut) {
      CAPTURE(cut);
      const auto inspector = inspect(std::string_view(bytes).substr(0, cut), 5, s.type);
      const auto missing = inspector.incompleteness();
      REQUIRE(missing);
      CHECK(!missing->empty());
    }
  }
  CHECK(*inspect(read_image("baseline.jpg").substr(0, 900)).incompleteness() ==
        "JPEG ends before its EOI marker (cut at 900 bytes)");
  CHECK(*inspect(read_image("image.png").substr(0, 100)).incompleteness() ==
        "PNG ends before its IEND chunk (cut at 100 bytes)");
  CHECK(*inspect(read_image("image.gif").substr(0, 100)).incompleteness() ==
        "GIF ends before its trailer (cut at 100 bytes)");
  CHECK(inspect(read_image("lossy.webp").substr(0, 100))
            .incompleteness()
            ->starts_with("WebP's RIFF size says"));
  CHECK(inspect(read_image("image.bmp").substr(0, 100)).incompleteness() ==
        "bmp ends at 100 of the 378 bytes its header describes");
}

TEST_CASE("a JPEG reads the same whatever the order of its segments, with fill bytes and comments") {
  const std::string jpeg = read_image("baseline.jpg");
  const JpegParts parts = split_jpeg(jpeg);
  REQUIRE(parts.segments.size() >= 4);
  std::string reordered = "\xFF\xD8";
  for (auto it = parts.segments.rbegin(); it != parts.segments.rend(); ++it)  // SOF before the tables
    reordered += "\xFF\xFF" + *it;                                            // fill bytes before each marker
  reordered += std::string("\xFF\xFE\x00\x07hello", 9);  // a comment just before the scan
  reordered += parts.scan;
  const auto inspector = inspect(reordered, 3);
  CHECK(inspector.facts().width == 64);
  CHECK(inspector.facts().height == 48);
  CHECK(!inspector.incompleteness());
}

TEST_CASE("a JPEG whose height comes later (a DNL segment) is whole, with its height unknown") {
  std::string jpeg = read_image("baseline.jpg");
  const std::size_t sof = jpeg.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  jpeg[sof + 5] = jpeg[sof + 6] = '\0';  // the frame header's height
  const auto inspector = inspect(jpeg, 11);
  CHECK(inspector.facts().width == 64);
  CHECK(inspector.facts().height == 0);
  CHECK(!inspector.incompleteness());
}

TEST_CASE("bytes that break the format are refused as soon as they arrive") {
  SUBCASE("a JPEG with garbage where a marker belongs") {
    std::string jpeg = read_image("baseline.jpg");
    const JpegParts parts = split_jpeg(jpeg);
    const std::string broken = "\xFF\xD8" + parts.segments[0] + "xyz" + parts.scan;
    const auto inspector = inspect(broken);
    REQUIRE(inspector.broken());
    CHECK(inspector.broken()->find("where a marker should be") != std::string::npos);
  }
  SUBCASE("a PNG whose first chunk is not IHDR") {
    const std::string png = "\x89PNG\r\n\x1a\n" + png_chunk("tEXt", "a") + png_chunk("IEND", "");
    CHECK(*inspect(png).incompleteness() == "PNG does not start with a 13-byte IHDR chunk");
  }
  SUBCASE("a PNG chunk length over 2^31") {
    std::string png = read_image("image.png");
    png.replace(33, 4, "\xFF\xFF\xFF\xF0");  // the chunk after IHDR
    CHECK(inspect(png).broken()->starts_with("PNG chunk length 4294967280 over 2^31-1"));
  }
  SUBCASE("a GIF with an unknown block") {
    std::string gif = read_image("animated.gif");
    gif.back() = 'x';  // where the trailer was
    CHECK(inspect(gif).broken()->starts_with("GIF block 0x78 is unknown"));
  }
  SUBCASE("a WebP chunk running past its RIFF size") {
    std::string webp = read_image("lossy.webp");
    webp[16] = '\x7f';  // the VP8 chunk's size
    webp[17] = '\x7f';
    CHECK(inspect(webp).broken()->starts_with("WebP chunk 'VP8 ' runs past the RIFF size"));
  }
  SUBCASE("a WebP with bytes after its RIFF container") {
    const std::string webp = read_image("lossy.webp") + "0123456789";
    CHECK(inspect(webp).incompleteness()->find("RIFF size says") != std::string::npos);
  }
  SUBCASE("an ICO whose image lies outside the file") {
    std::string ico = read_image("image.ico");
    ico[6 + 12] = 1;  // the first image's offset points into the directory
    ico[6 + 13] = ico[6 + 14] = ico[6 + 15] = 0;
    CHECK(inspect(ico).broken()->starts_with("ICO image 0 lies outside the file"));
  }
}

TEST_CASE("a huge declared size is read, not allocated, and the limits refuse it") {
  // A PNG declaring 2^31-1 × 2^31-1 pixels in 57 bytes.
  std::string ihdr("\x7f\xff\xff\xff\x7f\xff\xff\xff\x08\x02\x00\x00\x00", 13);
  const std::string bomb = "\x89PNG\r\n\x1a\n" + png_chunk("IHDR", ihdr) + png_chunk("IEND", "");
  const auto png = inspect(bomb);
  CHECK(png.facts().width == 0x7fffffffU);
  CHECK(!png.incompleteness());
  ImageLimits limits;
  limits.max_pixels = imgdl::detail::default_max_pixels;
  CHECK(*size_refusal(png.facts(), limits) ==
        "2147483647x2147483647 is 4611686014132420609 pixels, over the 178956970-pixel limit");

  // A PNG declaring 2^32-1 wide is not a PNG (the format allows 2^31-1).
  std::string wider = ihdr;
  wider[0] = '\xff';
  CHECK(inspect("\x89PNG\r\n\x1a\n" + png_chunk("IHDR", wider))
            .broken()
            ->starts_with("PNG IHDR gives an invalid size"));

  // A chunk chain that never ends costs no memory: its chunks are skipped, not kept.
  std::string endless = read_image("image.png");
  endless.resize(endless.size() - 12);  // no IEND
  ImageInspector inspector(ImageType::Png);
  inspector.feed(endless);
  const std::string filler = png_chunk("tEXt", std::string(60000, 'x'));
  for (int i = 0; i < 200; ++i)
    inspector.feed(filler);
  CHECK(inspector.bytes_seen() > 12'000'000);
  CHECK(inspector.incompleteness()->starts_with("PNG ends before its IEND chunk"));
}

TEST_CASE("size limits refuse images too small, too large or too elongated, and pass the rest") {
  ImageFacts facts;
  facts.type = ImageType::Jpeg;
  facts.width = 640;
  facts.height = 480;
  ImageLimits limits;
  CHECK(!size_refusal(facts, limits));
  limits.min_width = 641;
  CHECK(*size_refusal(facts, limits) == "640x480 is smaller than the minimum 641x0");
  limits = {};
  limits.min_height = 480;
  CHECK(!size_refusal(facts, limits));
  limits.max_pixels = 640 * 480 - 1;
  CHECK(*size_refusal(facts, limits) == "640x480 is 307200 pixels, over the 307199-pixel limit");
  limits = {};
  limits.max_aspect = 1.3;
  CHECK(*size_refusal(facts, limits) == "640x480 has an aspect ratio of 1.33, over the limit of 1.3");
  limits.max_aspect = 1.34;
  CHECK(!size_refusal(facts, limits));
  facts.width = 0;  // unknown size (an SVG with relative units): nothing to refuse
  limits.min_width = 10000;
  CHECK(!size_refusal(facts, limits));
}

TEST_CASE("an SVG's size comes from plain numbers only, and its end tag makes it whole") {
  auto svg = [](std::string_view text) { return inspect(text); };
  CHECK(svg("<svg width=\"100%\" height=\"50\"></svg>").facts().width == 0);
  CHECK(svg("<svg width='2em' height='50'></svg>").facts().width == 0);
  CHECK(svg("<svg stroke-width=\"3\" width=\"7\" height=\"8\"/>").facts().width == 7);
  CHECK(!svg("<svg stroke-width=\"3\" width=\"7\" height=\"8\"/>").incompleteness());
  CHECK(svg("<svg viewBox=\"0,0,20,10\"></svg>").facts().height == 10);
  CHECK(svg("<svg width=\"5\" height=\"6\"><g></g>").incompleteness()->starts_with("SVG does not end with"));
  CHECK(svg("<svg width=\"5\" height=\"6\"></svg >\n<!-- x -->\n").incompleteness() == std::nullopt);
}

TEST_CASE("an SVG's ending is judged the same however its bytes were chunked") {
  // A closing comment longer than the kept tail: found by fuzzing, when pieces kept more tail than a
  // whole feed did.
  const std::string svg = "<svg width=\"5\" height=\"6\"></svg><!--" + std::string(300, 'x') + "-->";
  const std::string whole = describe(inspect(svg));
  for (const std::size_t chunk : {1U, 7U, 100U, 255U})
    CHECK(describe(inspect(svg, chunk)) == whole);
}

TEST_CASE("an SVG's root is the first <svg or :svg, however its bytes were chunked") {
  // Found by fuzzing (tests/fuzz/seeds/fuzz_image_info/svg-namespace-before-root-chunked): ":svg"
  // early, inside a stray attribute, and "<svg" later; pieces that held only the first used to pick
  // it, a whole feed the second.
  const std::string svg(
      "\x3c\x3f\x78\x6d\x6c\x20\x76\x65\x72\x73\x69\x6f\x6e\x3d\x22\x31\x2e\x30\x22\x3f\x2d\x2d\x3e\xf4"
      "\xfb\x18\x00\x50\x61\x00\x00\x6e\x6e\x73\x3d\x22\x68\x74\x74\x70\x3a\x73\x76\x67\x22\x20\x77\x69"
      "\x64\x74\x68\x3d\x22\x31\x32\x30\x70\x78\x22\x20\x65\x68\x69\x69\x68\x74\x3d\x22\x38\x30\x22\x3e"
      "\x0a\x3c\x72\x65\x63\x74\x30\x20\x77\x69\x64\x74\x68\x3d\x22\x31\x30\x22\x20\x68\x20\x77\x69\x64"
      "\x74\x68\x3d\x22\x31\x30\x22\x20\x68\x65\x69\x67\x68\x74\x3d\x22\x31\x30\x22\x2f\x3e\x0a\x3c\x72"
      "\x63\x6c\x65\x20\x72\x3d\x22\x2f\x34\x22\x2f\x3e\x3c\x2f\x73\x76\x67\x3e\x73\x76\x3c\x67\x22\x3f"
      "\x3e\x0a\x3c\x21\x2d\x2d\x20\x61\x20\x63\x6f\x6d\x6d\x65\x6e\x74\x20\x67\x22\x3e\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x33\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x3c\x63\x69"
      "\x2d\x2d\x3e\x0a\x3c\x73\x76\x67\x20\x78\x6d\x6e\x6e\x73\x3d\x22\x68\x74\x74\x70\x3a\x2f\x2f\x77"
      "\x77\x77\x2e\x77\x32\x2e\x6f\x72\x67\x2f\x32\x30\x3e\x0a\x3c\x21\x2d\x2d\x20\x61\x20\x63\x6f\x6d"
      "\x6d\x65\x6e\x74\x20\x2d\x2d\x3e\x0a\x67\x76\x20\x73\x3c\x78\x30\x22\x3e\x0a\x3c\x72\x65\x63\x74"
      "\x20\x77\x69\x64\x74\x68\x3d\x22\x31\x30\x22\x20\x68\x65\x69\x67\x68\x74\x3d\x22\x31\x30\x22\x2f"
      "\x3e\x0a\x3c\x2f\x73\x76\x67\x3e\x0a",
      345);
  const std::string whole = describe(inspect(svg));
  for (const std::size_t chunk : {1U, 4U, 16U, 30U})
    CHECK(describe(inspect(svg, chunk)) == whole);
}

TEST_CASE("random bytes after a real image's header never crash and never read past the input") {
  std::mt19937 rng(7);
  for (const auto& s : samples) {
    CAPTURE(s.file);
    const std::string bytes = read_image(s.file);
    for (int round = 0; round < 50; ++round) {
      std::string mutated = bytes;
      for (int k = 0; k < 4; ++k)
        mutated[16 + rng() % (mutated.size() - 16)] = static_cast<char>(rng());
      const auto inspector = inspect(mutated, 1 + rng() % 9);
      if (const auto needed = inspector.needed_bytes(); needed && *needed > 0 && *needed <= mutated.size())
        CHECK(inspect(std::string_view(mutated).substr(0, *needed - 1), 0, s.type).incompleteness());
    }
  }
}
