#include "image_type.hpp"

#include "byte_order.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace imgdl {

std::string_view to_string(ImageType type) noexcept {
  switch (type) {
    case ImageType::Jpeg:
      return "jpeg";
    case ImageType::Png:
      return "png";
    case ImageType::Gif:
      return "gif";
    case ImageType::Webp:
      return "webp";
    case ImageType::Bmp:
      return "bmp";
    case ImageType::Tiff:
      return "tiff";
    case ImageType::Ico:
      return "ico";
    case ImageType::Avif:
      return "avif";
    case ImageType::Heic:
      return "heic";
    case ImageType::Svg:
      return "svg";
    case ImageType::Unknown:
      break;
  }
  return "unknown";
}

std::string_view extension_for(ImageType type) noexcept {
  switch (type) {
    case ImageType::Jpeg:
      return ".jpg";
    case ImageType::Png:
      return ".png";
    case ImageType::Gif:
      return ".gif";
    case ImageType::Webp:
      return ".webp";
    case ImageType::Bmp:
      return ".bmp";
    case ImageType::Tiff:
      return ".tiff";
    case ImageType::Ico:
      return ".ico";
    case ImageType::Avif:
      return ".avif";
    case ImageType::Heic:
      return ".heic";
    case ImageType::Svg:
      return ".svg";
    case ImageType::Unknown:
      break;
  }
  return "";
}

namespace detail {
namespace {

// Long enough for an XML declaration, a licence comment and a doctype before <svg.
constexpr std::size_t kSniffBytes = 1024;

bool is_bmp(std::string_view h) noexcept {
  // "BM" alone is too weak (plenty of text starts with it): require a known DIB header size at 14.
  if (h.size() < 18 || !h.starts_with("BM")) {
    return false;
  }
  switch (le32(h, 14)) {
    case 12:
    case 16:
    case 40:
    case 52:
    case 56:
    case 64:
    case 108:
    case 124:
      return true;
    default:
      return false;
  }
}

bool is_ico(std::string_view h) noexcept {
  // Reserved 0, type 1 (2 would be .cur), then a non-zero image count; the first directory entry has a
  // zero reserved byte and 0 or 1 colour planes.
  if (h.size() < 22 || !h.starts_with(std::string_view("\0\0\1\0", 4))) {
    return false;
  }
  const unsigned count = unsigned{byte_at(h, 4)} | (unsigned{byte_at(h, 5)} << 8);
  return count > 0 && byte_at(h, 9) == 0 && byte_at(h, 11) == 0 && byte_at(h, 10) <= 1;
}

enum class Brand { Other, Avif, Heic };

Brand classify_brand(std::string_view b) noexcept {
  if (b == "avif" || b == "avis") {
    return Brand::Avif;
  }
  constexpr std::array<std::string_view, 8> heic{"heic", "heix", "hevc", "hevx",
                                                 "heim", "heis", "hevm", "hevs"};
  for (auto h : heic) {
    if (b == h) {
      return Brand::Heic;
    }
  }
  return Brand::Other;
}

ImageType sniff_isobmff(std::string_view h) noexcept {
  // [size:4]['ftyp'][major brand:4][minor version:4][compatible brands:4 each]...
  if (h.size() < 12 || h.substr(4, 4) != "ftyp") {
    return ImageType::Unknown;
  }
  const std::uint32_t box_size = be32(h, 0);
  if (box_size < 16 || box_size % 4 != 0) {
    return ImageType::Unknown;
  }
  switch (classify_brand(h.substr(8, 4))) {
    case Brand::Avif:
      return ImageType::Avif;
    case Brand::Heic:
      return ImageType::Heic;
    case Brand::Other:
      break;
  }
  // A generic major brand (mif1, msf1, ...): the compatible brands name the codec; AVIF wins if both appear.
  const std::size_t end = std::min<std::size_t>(box_size, h.size());
  bool heic = false;
  for (std::size_t i = 16; i + 4 <= end; i += 4) {
    switch (classify_brand(h.substr(i, 4))) {
      case Brand::Avif:
        return ImageType::Avif;
      case Brand::Heic:
        heic = true;
        break;
      case Brand::Other:
        break;
    }
  }
  return heic ? ImageType::Heic : ImageType::Unknown;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != prefix[i]) {
      return false;
    }
  }
  return true;
}

// Skips a <!DOCTYPE ...> including an internal subset in [...]; returns npos if it does not end in `s`.
std::size_t doctype_end(std::string_view s) noexcept {
  int bracket_depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      ++bracket_depth;
    } else if (s[i] == ']' && bracket_depth > 0) {
      --bracket_depth;
    } else if (s[i] == '>' && bracket_depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

bool is_svg(std::string_view s) noexcept {
  if (s.starts_with("\xEF\xBB\xBF")) {
    s.remove_prefix(3);
  }
  for (;;) {
    while (!s.empty() && is_xml_space(s.front())) {
      s.remove_prefix(1);
    }
    std::size_t skip = std::string_view::npos;
    if (s.starts_with("<?")) {  // the XML declaration or a processing instruction
      if (const auto e = s.find("?>"); e != std::string_view::npos) {
        skip = e + 2;
      }
    } else if (s.starts_with("<!--")) {
      if (const auto e = s.find("-->", 4); e != std::string_view::npos) {
        skip = e + 3;
      }
    } else if (starts_with_nocase(s, "<!doctype")) {
      skip = doctype_end(s);
    } else {
      // The first element decides: <svg followed by whitespace, '>' or '/' (not <svgfoo>).
      return s.size() > 4 && s.starts_with("<svg") && (is_xml_space(s[4]) || s[4] == '>' || s[4] == '/');
    }
    if (skip == std::string_view::npos) {
      return false;  // the prolog runs past the head: not enough to be sure
    }
    s.remove_prefix(skip);
  }
}

}  // namespace

std::size_t sniff_bytes_needed() noexcept {
  return kSniffBytes;
}

ImageType sniff_image_type(std::string_view h) noexcept {
  h = h.substr(0, kSniffBytes);
  if (h.starts_with("\xFF\xD8\xFF")) {
    return ImageType::Jpeg;
  }
  if (h.starts_with("\x89PNG\r\n\x1A\n")) {
    return ImageType::Png;
  }
  if (h.starts_with("GIF87a") || h.starts_with("GIF89a")) {
    return ImageType::Gif;
  }
  if (h.size() >= 12 && h.starts_with("RIFF") && h.substr(8, 4) == "WEBP") {
    return ImageType::Webp;
  }
  if (is_bmp(h)) {
    return ImageType::Bmp;
  }
  // Classic TIFF (42) and BigTIFF (43), little- and big-endian.
  if (h.starts_with(std::string_view("II*\0", 4)) || h.starts_with(std::string_view("MM\0*", 4)) ||
      h.starts_with(std::string_view("II+\0", 4)) || h.starts_with(std::string_view("MM\0+", 4))) {
    return ImageType::Tiff;
  }
  if (is_ico(h)) {
    return ImageType::Ico;
  }
  if (const ImageType t = sniff_isobmff(h); t != ImageType::Unknown) {
    return t;
  }
  if (is_svg(h)) {
    return ImageType::Svg;
  }
  return ImageType::Unknown;
}

ImageType sniff_image_type(std::span<const std::byte> head) noexcept {
  // Viewing bytes as chars is allowed (char may alias anything).
  return sniff_image_type(std::string_view(reinterpret_cast<const char*>(head.data()), head.size()));
}

bool is_image_extension(std::string_view ext) noexcept {
  for (const ImageType t : image_types_with_extension) {
    if (extension_for(t) == ext) {
      return true;
    }
  }
  return false;
}

}  // namespace detail
}  // namespace imgdl
