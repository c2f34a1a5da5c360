// Image type sniffing from leading bytes.
#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include "image_type.hpp"
#include "imgdl/image_type.hpp"

using imgdl::ImageType;
using imgdl::detail::sniff_image_type;

namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) {
    out.push_back(static_cast<char>(v));
  }
  return out;
}

// An ISO-BMFF 'ftyp' box with a major brand and compatible brands.
std::string ftyp(std::string_view major, std::initializer_list<std::string_view> compatible) {
  const auto size = static_cast<unsigned>(16 + 4 * compatible.size());
  std::string out = bytes({0, 0, 0, static_cast<int>(size)});
  out += "ftyp";
  out += major;
  out += bytes({0, 0, 0, 0});
  for (const auto c : compatible) {
    out += c;
  }
  out += bytes({0, 0, 0, 8}) + "meta";  // the next box, as in a real file
  return out;
}

const std::string kJpeg = bytes({0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10}) + "JFIF" + bytes({0});
const std::string kPng = "\x89PNG\r\n\x1A\n" + bytes({0, 0, 0, 13}) + "IHDR";
const std::string kGif87 = "GIF87a" + bytes({1, 0, 1, 0, 0x80, 0, 0});
const std::string kGif89 = "GIF89a" + bytes({1, 0, 1, 0, 0x80, 0, 0});
const std::string kWebp = "RIFF" + bytes({0x24, 0, 0, 0}) + "WEBPVP8 ";
// "BM", file size, reserved, pixel offset 54, BITMAPINFOHEADER size 40.
const std::string kBmp = "BM" + bytes({0x3A, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0});
const std::string kTiffLe = "II*" + bytes({0, 8, 0, 0, 0});
const std::string kTiffBe = "MM" + bytes({0, '*', 0, 0, 0, 8});
// Reserved 0, type 1, count 1, then a 16-byte directory entry: 16x16, 0 colours, reserved 0, 1 plane.
const std::string kIco = bytes({0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0x68, 0x04, 0, 0, 22, 0, 0, 0});

}  // namespace

TEST_CASE("sniff_image_type detects every type from a minimal real header") {
  CHECK(sniff_image_type(kJpeg) == ImageType::Jpeg);
  CHECK(sniff_image_type(kPng) == ImageType::Png);
  CHECK(sniff_image_type(kGif87) == ImageType::Gif);
  CHECK(sniff_image_type(kGif89) == ImageType::Gif);
  CHECK(sniff_image_type(kWebp) == ImageType::Webp);
  CHECK(sniff_image_type(kBmp) == ImageType::Bmp);
  CHECK(sniff_image_type(kTiffLe) == ImageType::Tiff);
  CHECK(sniff_image_type(kTiffBe) == ImageType::Tiff);
  CHECK(sniff_image_type(kIco) == ImageType::Ico);
  CHECK(sniff_image_type(ftyp("avif", {"avif", "mif1", "miaf"})) == ImageType::Avif);
  CHECK(sniff_image_type(ftyp("avis", {"avis", "msf1"})) == ImageType::Avif);
  CHECK(sniff_image_type(ftyp("heic", {"mif1", "heic"})) == ImageType::Heic);
  CHECK(sniff_image_type(ftyp("heix", {"mif1"})) == ImageType::Heic);
  CHECK(sniff_image_type("<svg xmlns=\"http://www.w3.org/2000/svg\"/>") == ImageType::Svg);
}

TEST_CASE("sniff_image_type decides a generic mif1 brand by the compatible brands") {
  CHECK(sniff_image_type(ftyp("mif1", {"mif1", "heic"})) == ImageType::Heic);
  CHECK(sniff_image_type(ftyp("mif1", {"mif1", "avif"})) == ImageType::Avif);
  CHECK(sniff_image_type(ftyp("mif1", {"mif1", "miaf"})) == ImageType::Unknown);
  CHECK(sniff_image_type(ftyp("isom", {"isom", "mp41"})) == ImageType::Unknown);  // an MP4 video
}

TEST_CASE("sniff_image_type accepts raw bytes too") {
  const std::array<std::byte, 4> png{std::byte{0x89}, std::byte{'P'}, std::byte{'N'}, std::byte{'G'}};
  CHECK(sniff_image_type(std::span<const std::byte>(png)) == ImageType::Unknown);  // truncated
  std::array<std::byte, 3> jpeg{std::byte{0xFF}, std::byte{0xD8}, std::byte{0xFF}};
  CHECK(sniff_image_type(std::span<const std::byte>(jpeg)) == ImageType::Jpeg);
}

TEST_CASE("sniff_image_type says Unknown for near misses") {
  SUBCASE("empty") {
    CHECK(sniff_image_type(std::string_view{}) == ImageType::Unknown);
  }
  SUBCASE("truncated magic numbers") {
    CHECK(sniff_image_type(kJpeg.substr(0, 2)) == ImageType::Unknown);
    CHECK(sniff_image_type(kPng.substr(0, 7)) == ImageType::Unknown);
    CHECK(sniff_image_type(std::string_view("GIF89")) == ImageType::Unknown);
    CHECK(sniff_image_type(kWebp.substr(0, 11)) == ImageType::Unknown);
    CHECK(sniff_image_type(kBmp.substr(0, 17)) == ImageType::Unknown);
    CHECK(sniff_image_type(kTiffLe.substr(0, 3)) == ImageType::Unknown);
    CHECK(sniff_image_type(kIco.substr(0, 6)) == ImageType::Unknown);
    CHECK(sniff_image_type(ftyp("avif", {}).substr(0, 11)) == ImageType::Unknown);
    CHECK(sniff_image_type(std::string_view("<svg")) == ImageType::Unknown);
  }
  SUBCASE("look-alikes") {
    CHECK(sniff_image_type(std::string_view("GIF88a......")) == ImageType::Unknown);
    CHECK(sniff_image_type("RIFF" + bytes({0x24, 0, 0, 0}) + "WAVEfmt ") == ImageType::Unknown);
    CHECK(sniff_image_type(std::string_view("BMW is a car brand, not a bitmap")) == ImageType::Unknown);
    CHECK(sniff_image_type(bytes({0, 0, 2, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 22, 0, 0, 0})) ==
          ImageType::Unknown);  // .cur
    CHECK(sniff_image_type(bytes({0, 0, 1, 0, 0, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 22, 0, 0, 0})) ==
          ImageType::Unknown);  // zero images
    CHECK(sniff_image_type(std::string_view("<svgfoo/>")) == ImageType::Unknown);
  }
  SUBCASE("HTML and other text") {
    CHECK(sniff_image_type(std::string_view("<!DOCTYPE html><html><body><svg></svg></body></html>")) ==
          ImageType::Unknown);
    CHECK(sniff_image_type(std::string_view("<html><head><title>404 Not Found</title>")) ==
          ImageType::Unknown);
    CHECK(sniff_image_type(std::string_view("{\"error\": \"not found\"}")) == ImageType::Unknown);
    CHECK(sniff_image_type(std::string_view("<?xml version=\"1.0\"?><rss/>")) == ImageType::Unknown);
  }
}

TEST_CASE("sniff_image_type finds an SVG behind a BOM, an XML declaration, comments and a doctype") {
  const std::string doctype =
      "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" "
      "\"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">";
  SUBCASE("BOM and whitespace") {
    CHECK(sniff_image_type("\xEF\xBB\xBF \n\t<svg>") == ImageType::Svg);
  }
  SUBCASE("XML declaration") {
    CHECK(sniff_image_type("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg width=\"1\">") ==
          ImageType::Svg);
  }
  SUBCASE("comments") {
    CHECK(sniff_image_type("<!-- Generator: Inkscape -->\n<!-- <html> -->\n<svg\n>") == ImageType::Svg);
  }
  SUBCASE("doctype with an internal subset") {
    CHECK(sniff_image_type("<?xml version=\"1.0\"?>\n" + doctype + "\n<svg/>") == ImageType::Svg);
    CHECK(sniff_image_type("<!DOCTYPE svg [ <!ENTITY a \"b>\"> ]><svg>") == ImageType::Svg);
  }
  SUBCASE("everything at once") {
    CHECK(sniff_image_type("\xEF\xBB\xBF<?xml version=\"1.0\"?><!-- c -->" + doctype + "<!-- d --> <svg>") ==
          ImageType::Svg);
  }
  SUBCASE("an unterminated comment or a prolog longer than the sniff window") {
    CHECK(sniff_image_type(std::string_view("<!-- never closed <svg>")) == ImageType::Unknown);
    const std::string long_comment =
        "<!--" + std::string(imgdl::detail::sniff_bytes_needed(), 'x') + "--><svg>";
    CHECK(sniff_image_type(long_comment) == ImageType::Unknown);
  }
}

TEST_CASE("to_string and extension_for name every type") {
  CHECK(imgdl::to_string(ImageType::Jpeg) == "jpeg");
  CHECK(imgdl::to_string(ImageType::Heic) == "heic");
  CHECK(imgdl::to_string(ImageType::Unknown) == "unknown");
  CHECK(imgdl::extension_for(ImageType::Jpeg) == ".jpg");
  CHECK(imgdl::extension_for(ImageType::Png) == ".png");
  CHECK(imgdl::extension_for(ImageType::Gif) == ".gif");
  CHECK(imgdl::extension_for(ImageType::Webp) == ".webp");
  CHECK(imgdl::extension_for(ImageType::Bmp) == ".bmp");
  CHECK(imgdl::extension_for(ImageType::Tiff) == ".tiff");
  CHECK(imgdl::extension_for(ImageType::Ico) == ".ico");
  CHECK(imgdl::extension_for(ImageType::Avif) == ".avif");
  CHECK(imgdl::extension_for(ImageType::Heic) == ".heic");
  CHECK(imgdl::extension_for(ImageType::Svg) == ".svg");
  CHECK(imgdl::extension_for(ImageType::Unknown).empty());
  CHECK(imgdl::detail::is_image_extension(".jpg"));
  CHECK_FALSE(imgdl::detail::is_image_extension(".jpeg"));
  CHECK(imgdl::detail::sniff_bytes_needed() >= 512);
}

TEST_CASE("image_types_with_extension lists every type but Unknown, once, each with its extension") {
  using imgdl::detail::image_types_with_extension;
  const std::set<ImageType> listed(image_types_with_extension.begin(), image_types_with_extension.end());
  CHECK(listed.size() == image_types_with_extension.size());
  for (int i = 0; i <= static_cast<int>(ImageType::Svg); ++i) {
    const auto type = static_cast<ImageType>(i);
    CHECK(listed.contains(type) == (type != ImageType::Unknown));
    CHECK(imgdl::extension_for(type).empty() == (type == ImageType::Unknown));
  }
}
