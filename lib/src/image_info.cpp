#include "image_info.hpp"

#include "byte_order.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

namespace imgdl::detail {

enum class ImageInspector::Step : std::uint8_t {
  Done,  // nothing more to read: unknown type, broken, or past the end mark
  JpegSoi,
  JpegFf,
  JpegMarker,
  JpegLength,
  JpegSof,
  JpegApp1,
  JpegSos,
  JpegEntropy,
  JpegEntropyFf,
  PngSignature,
  PngChunkHeader,
  PngIhdr,
  PngIendCrc,
  GifHeader,
  GifBlock,
  GifImage,
  GifLzwSize,
  GifSubBlock,
  RiffHeader,
  RiffChunk,
  WebpFirstChunk,
  BmpHeader,
  TiffHeader,
  TiffCount,
  TiffIfd,
  IcoHeader,
  IcoDirectory,
  BoxHeader,
  BoxLargeSize,
  MetaBox,
  SvgHead,
  SvgBody,
};

namespace {

constexpr std::size_t kSvgHeadLimit = 8192;  // the root element must start and end within this
constexpr std::size_t kSvgTailKeep = 256;    // enough for "</svg>" after a comment or two
constexpr std::uint64_t kMetaBoxLimit = 1 << 20;
constexpr std::uint32_t kMaxIcoImages = 1024;

std::string hex_byte(std::uint8_t b) {
  constexpr char digits[] = "0123456789abcdef";
  return {'0', 'x', digits[b >> 4], digits[b & 15]};
}

/// TIFF's byte order, for a TIFF file and for a JPEG's EXIF block.
struct TiffReader {
  std::string_view bytes;
  bool little;
  std::uint32_t u16(std::size_t i) const { return little ? le16(bytes, i) : be16(bytes, i); }
  std::uint32_t u32(std::size_t i) const { return little ? le32(bytes, i) : be32(bytes, i); }
  /// A SHORT or LONG entry's inline value (a SHORT sits in the field's first two bytes).
  std::uint32_t value(std::size_t entry) const {
    return u16(entry + 2) == 3 ? u16(entry + 8) : u32(entry + 8);
  }
};

/// EXIF orientation (tag 0x0112) from an APP1 payload, 0 when absent or malformed.
int exif_orientation(std::string_view app1) {
  if (!app1.starts_with(std::string_view("Exif\0\0", 6)) || app1.size() < 14)
    return 0;
  const std::string_view tiff = app1.substr(6);
  const bool little = tiff.starts_with("II");
  if (!little && !tiff.starts_with("MM"))
    return 0;
  const TiffReader r{tiff, little};
  const std::uint32_t ifd = r.u32(4);
  if (ifd < 8 || std::uint64_t{ifd} + 2 > tiff.size())
    return 0;
  const std::uint32_t entries = r.u16(ifd);
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::size_t e = ifd + 2 + std::size_t{i} * 12;
    if (e + 12 > tiff.size())
      return 0;
    if (r.u16(e) == 0x0112) {
      const std::uint32_t v = r.u16(e + 8);
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 0;
    }
  }
  return 0;
}

/// Walks a run of ISOBMFF boxes, calling visit(type, body) for each whole one.
template <class Visit>
void for_each_box(std::string_view boxes, Visit&& visit) {
  std::size_t at = 0;
  while (at + 8 <= boxes.size()) {
    std::uint64_t size = be32(boxes, at);
    std::size_t header = 8;
    if (size == 1) {
      if (at + 16 > boxes.size())
        return;
      size = be64(boxes, at + 8);
      header = 16;
    } else if (size == 0) {
      size = boxes.size() - at;
    }
    if (size < header || size > boxes.size() - at)
      return;
    visit(boxes.substr(at + 4, 4), boxes.substr(at + header, size - header));
    at += size;
  }
}

/// The primary image's displayed size from a HEIF `meta` box's payload: `pitm` names the primary item,
/// `ipma` its properties in `ipco`, among them `ispe` (coded size) and `clap` (the crop shown). Files
/// without `pitm`/`ipma` get the largest `ispe` (the others are thumbnails or grid tiles).
std::pair<std::uint32_t, std::uint32_t> heif_size(std::string_view meta) {
  if (meta.size() < 4)
    return {0, 0};
  std::optional<std::uint32_t> primary;
  std::vector<std::string_view> properties;  // ipco's children, type then body, 1-based in ipma
  std::vector<std::string_view> property_types;
  std::string_view ipma;
  for_each_box(meta.substr(4), [&](std::string_view type, std::string_view body) {
    if (type == "pitm" && body.size() >= 6)
      primary = byte_at(body, 0) == 0 ? be16(body, 4) : (body.size() >= 8 ? be32(body, 4) : 0);
    if (type != "iprp")
      return;
    for_each_box(body, [&](std::string_view t, std::string_view b) {
      if (t == "ipco") {
        for_each_box(b, [&](std::string_view pt, std::string_view pb) {
          property_types.push_back(pt);
          properties.push_back(pb);
        });
      } else if (t == "ipma" && ipma.empty()) {
        ipma = b;
      }
    });
  });
  auto ispe = [&](std::size_t i) -> std::pair<std::uint32_t, std::uint32_t> {
    const std::string_view b = properties[i];
    return b.size() >= 12 ? std::pair(be32(b, 4), be32(b, 8)) : std::pair(0U, 0U);
  };
  std::pair<std::uint32_t, std::uint32_t> size{0, 0};
  // The primary item's properties, when ipma lists it.
  if (primary && ipma.size() >= 8) {
    const bool wide_ids = byte_at(ipma, 0) >= 1;
    const bool wide_index = (byte_at(ipma, 3) & 1) != 0;
    const std::uint32_t entries = be32(ipma, 4);
    std::size_t at = 8;
    for (std::uint32_t e = 0; e < entries && at < ipma.size(); ++e) {
      if (at + (wide_ids ? 5 : 3) > ipma.size())
        break;
      const std::uint32_t item = wide_ids ? be32(ipma, at) : be16(ipma, at);
      at += wide_ids ? 4 : 2;
      const std::uint32_t count = byte_at(ipma, at++);
      std::optional<std::pair<std::uint32_t, std::uint32_t>> crop;
      for (std::uint32_t k = 0; k < count && at + (wide_index ? 2 : 1) <= ipma.size(); ++k) {
        const std::uint32_t index = wide_index ? be16(ipma, at) & 0x7fff : byte_at(ipma, at) & 0x7f;
        at += wide_index ? 2 : 1;
        if (item != *primary || index == 0 || index > properties.size())
          continue;
        const std::string_view type = property_types[index - 1];
        const std::string_view body = properties[index - 1];
        if (type == "ispe") {
          size = ispe(index - 1);
        } else if (type == "clap" && body.size() >= 16 && be32(body, 4) != 0 && be32(body, 12) != 0) {
          // cleanApertureWidthN/D, cleanApertureHeightN/D: the part of the coded picture shown.
          crop = std::pair(be32(body, 0) / be32(body, 4), be32(body, 8) / be32(body, 12));
        }
      }
      if (item == *primary) {
        if (crop && crop->first != 0 && crop->second != 0 && crop->first <= size.first &&
            crop->second <= size.second)
          size = *crop;
        return size;
      }
    }
  }
  for (std::size_t i = 0; i < properties.size(); ++i) {
    if (property_types[i] != "ispe")
      continue;
    const auto candidate = ispe(i);
    if (std::uint64_t{candidate.first} * candidate.second > std::uint64_t{size.first} * size.second)
      size = candidate;
  }
  return size;
}

/// A plain SVG length ("640", "640.5", "640px"): anything with another unit or a percentage is not.
std::optional<double> svg_number(std::string_view s, bool allow_px) {
  s = trim_xml_space(s);
  if (allow_px && s.ends_with("px"))
    s.remove_suffix(2);
  if (s.empty() || s.size() > 32)
    return std::nullopt;
  double value = 0;
  double scale = 0;  // 0 before the decimal point
  for (const char c : s) {
    if (c >= '0' && c <= '9') {
      if (scale == 0) {
        value = value * 10 + (c - '0');
      } else {
        value += (c - '0') * scale;
        scale /= 10;
      }
    } else if (c == '.' && scale == 0) {
      scale = 0.1;
    } else {
      return std::nullopt;
    }
  }
  return value;
}

std::uint32_t svg_pixels(double v) {
  return v >= 0.5 && v < 4294967295.0 ? static_cast<std::uint32_t>(std::lround(v)) : 0;
}

/// The value of attribute `name` in an XML start tag's attribute text, when quoted plainly.
std::optional<std::string_view> xml_attribute(std::string_view tag, std::string_view name) {
  std::size_t at = 0;
  while ((at = tag.find(name, at)) != std::string_view::npos) {
    const bool starts = at > 0 && is_xml_space(tag[at - 1]);
    std::size_t i = at + name.size();
    at = i;
    if (!starts)
      continue;
    while (i < tag.size() && is_xml_space(tag[i]))
      ++i;
    if (i >= tag.size() || tag[i] != '=')
      continue;
    ++i;
    while (i < tag.size() && is_xml_space(tag[i]))
      ++i;
    if (i >= tag.size() || (tag[i] != '"' && tag[i] != '\''))
      continue;
    const std::size_t end = tag.find(tag[i], i + 1);
    if (end == std::string_view::npos)
      return std::nullopt;
    return tag.substr(i + 1, end - i - 1);
  }
  return std::nullopt;
}

/// width × height from an SVG root's attributes: plain numbers (or px), else the viewBox's size when
/// neither is given; {0, 0} when unknown.
std::pair<std::uint32_t, std::uint32_t> svg_size(std::string_view tag) {
  const auto w = xml_attribute(tag, "width");
  const auto h = xml_attribute(tag, "height");
  double width = 0;
  double height = 0;
  if (w && h) {
    const auto pw = svg_number(*w, true);
    const auto ph = svg_number(*h, true);
    if (!pw || !ph)
      return {0, 0};
    width = *pw;
    height = *ph;
  } else if (!w && !h) {
    const auto box = xml_attribute(tag, "viewBox");
    if (!box)
      return {0, 0};
    // "min-x min-y width height", separated by spaces and/or commas.
    std::string_view rest = *box;
    std::array<double, 4> v{};
    for (auto& item : v) {
      while (!rest.empty() && (is_xml_space(rest.front()) || rest.front() == ','))
        rest.remove_prefix(1);
      const std::size_t end = std::min(rest.find_first_of(" ,\t\r\n"), rest.size());
      const auto number = svg_number(rest.substr(0, end), false);
      if (!number)
        return {0, 0};
      item = *number;
      rest.remove_prefix(end);
    }
    width = v[2];
    height = v[3];
  } else {
    return {0, 0};
  }
  const std::uint32_t pw = svg_pixels(width);
  const std::uint32_t ph = svg_pixels(height);
  return pw != 0 && ph != 0 ? std::pair(pw, ph) : std::pair(0U, 0U);
}

/// An SVG body whose last element is the root's end tag (trailing spaces and comments allowed).
bool svg_ends_whole(std::string_view tail, bool self_closing_root) {
  for (;;) {
    while (!tail.empty() && (is_xml_space(tail.back()) || tail.back() == '\0'))
      tail.remove_suffix(1);
    if (!tail.ends_with("-->"))
      break;
    const std::size_t open = tail.rfind("<!--");
    if (open == std::string_view::npos)
      return false;
    tail = tail.substr(0, open);
  }
  if (self_closing_root && tail.ends_with("/>"))
    return true;
  if (!tail.ends_with(">"))
    return false;
  const std::size_t close = tail.rfind("</");
  if (close == std::string_view::npos)
    return false;
  const std::string_view name = trim_xml_space(tail.substr(close + 2, tail.size() - close - 3));
  return name == "svg" || name.ends_with(":svg");
}

}  // namespace

ImageInspector::ImageInspector(ImageType type) : step_(Step::Done) {
  facts_.type = type;
  switch (type) {
    case ImageType::Jpeg:
      expect(2, Step::JpegSoi);
      break;
    case ImageType::Png:
      expect(8, Step::PngSignature);
      break;
    case ImageType::Gif:
      expect(13, Step::GifHeader);
      break;
    case ImageType::Webp:
      expect(12, Step::RiffHeader);
      break;
    case ImageType::Bmp:
      expect(26, Step::BmpHeader);
      break;
    case ImageType::Tiff:
      expect(8, Step::TiffHeader);
      break;
    case ImageType::Ico:
      expect(6, Step::IcoHeader);
      break;
    case ImageType::Avif:
    case ImageType::Heic:
      expect(8, Step::BoxHeader);
      break;
    case ImageType::Svg:
      step_ = Step::SvgHead;
      break;
    case ImageType::Unknown:
      break;
  }
}

void ImageInspector::expect(std::size_t bytes, Step next) {
  buf_.clear();
  need_ = bytes;
  step_ = next;
}

void ImageInspector::skip_then(std::uint64_t bytes, std::size_t need, Step next) {
  skip_ += bytes;
  expect(need, next);
}

void ImageInspector::fail(std::string what) {
  if (!broken_)
    broken_ = std::move(what);
  step_ = Step::Done;
  buf_.clear();
  buf_.shrink_to_fit();
}

void ImageInspector::feed(std::string_view bytes) {
  if (facts_.type == ImageType::Svg)
    note_svg_tail(bytes);
  run(bytes.data(), bytes.size());
}

void ImageInspector::run(const char* data, std::size_t size) {
  while (size > 0) {
    if (step_ == Step::Done || step_ == Step::SvgBody) {
      pos_ += size;
      return;
    }
    if (skip_ > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, size));
      skip_ -= n;
      pos_ += n;
      data += n;
      size -= n;
      continue;
    }
    if (step_ == Step::JpegEntropy || step_ == Step::JpegEntropyFf) {
      scan_entropy(data, size);
      continue;
    }
    if (step_ == Step::SvgHead) {
      const std::size_t n = std::min(size, kSvgHeadLimit - buf_.size());
      buf_.append(data, n);
      pos_ += n;
      data += n;
      size -= n;
      on_svg_head();
      continue;
    }
    const std::size_t n = std::min(size, need_ - buf_.size());
    buf_.append(data, n);
    pos_ += n;
    data += n;
    size -= n;
    if (buf_.size() == need_)
      step();
  }
}

void ImageInspector::step() {
  const Step s = step_;
  switch (facts_.type) {
    case ImageType::Jpeg:
      return on_jpeg(s);
    case ImageType::Png:
      return on_png(s);
    case ImageType::Gif:
      return on_gif(s);
    case ImageType::Webp:
      return on_webp(s);
    case ImageType::Bmp:
      return on_bmp(s);
    case ImageType::Tiff:
      return on_tiff(s);
    case ImageType::Ico:
      return on_ico(s);
    case ImageType::Avif:
    case ImageType::Heic:
      return on_isobmff(s);
    case ImageType::Svg:
    case ImageType::Unknown:
      break;
  }
}

// JPEG: segments with a length until SOS, entropy-coded data (0xFF only as FF00, RSTn or fill before a
// marker), more segments or scans (progressive), and EOI. SOFn gives the size; APP1 the EXIF orientation.
void ImageInspector::on_jpeg(Step s) {
  const std::string_view b = buf_;
  switch (s) {
    case Step::JpegSoi:
      if (byte_at(b, 0) != 0xFF || byte_at(b, 1) != 0xD8)
        return fail("not a JPEG: no SOI marker");
      return expect(1, Step::JpegFf);
    case Step::JpegFf:
      if (byte_at(b, 0) != 0xFF)
        return fail("JPEG structure broken: " + hex_byte(byte_at(b, 0)) +
                    " where a marker should be, at byte " + std::to_string(pos_ - 1));
      return expect(1, Step::JpegMarker);
    case Step::JpegMarker: {
      const std::uint8_t m = byte_at(b, 0);
      if (m == 0xFF)
        return expect(1, Step::JpegMarker);  // fill byte
      if (m == 0xD9) {
        if (!seen_first_chunk_)
          return fail("JPEG has no frame header (SOF) before its EOI marker");
        mark_complete();
        step_ = Step::Done;
        return;
      }
      if ((m >= 0xD0 && m <= 0xD7) || m == 0x01)
        return expect(1, Step::JpegFf);  // standalone markers
      if (m == 0x00 || m == 0xD8)
        return fail("JPEG structure broken: marker " + hex_byte(m) + " at byte " + std::to_string(pos_ - 1));
      marker_ = m;
      return expect(2, Step::JpegLength);
    }
    case Step::JpegLength: {
      const std::uint32_t length = be16(b, 0);
      if (length < 2)
        return fail("JPEG segment " + hex_byte(marker_) + " has a length below 2, at byte " +
                    std::to_string(pos_ - 2));
      const std::uint32_t payload = length - 2;
      const bool sof =
          marker_ >= 0xC0 && marker_ <= 0xCF && marker_ != 0xC4 && marker_ != 0xC8 && marker_ != 0xCC;
      if (sof) {
        if (payload < 5)
          return fail("JPEG frame header (SOF) too short");
        return expect(payload, Step::JpegSof);
      }
      if (marker_ == 0xDA) {
        if (!seen_first_chunk_)
          return fail("JPEG scan (SOS) before any frame header (SOF)");
        return payload == 0 ? fail("JPEG scan header (SOS) is empty") : expect(payload, Step::JpegSos);
      }
      if (marker_ == 0xE1 && facts_.orientation == 0 && payload > 0)
        return expect(payload, Step::JpegApp1);
      skip_then(payload, 1, Step::JpegFf);
      return;
    }
    case Step::JpegSof:
      if (!seen_first_chunk_) {
        seen_first_chunk_ = true;
        facts_.height = be16(b, 1);
        facts_.width = be16(b, 3);
        if (facts_.width == 0)
          return fail("JPEG frame header (SOF) gives width 0");
        // Height 0 means a DNL segment will give it after the first scan: rare, and left unknown.
      }
      return expect(1, Step::JpegFf);
    case Step::JpegApp1:
      facts_.orientation = exif_orientation(b);
      return expect(1, Step::JpegFf);
    case Step::JpegSos:
      buf_.clear();
      step_ = Step::JpegEntropy;
      return;
    default:
      return;
  }
}

void ImageInspector::scan_entropy(const char*& data, std::size_t& size) {
  while (size > 0) {
    if (step_ == Step::JpegEntropy) {
      const void* ff = std::memchr(data, 0xFF, size);
      const std::size_t n = ff ? static_cast<std::size_t>(static_cast<const char*>(ff) - data) + 1 : size;
      pos_ += n;
      data += n;
      size -= n;
      if (ff)
        step_ = Step::JpegEntropyFf;
      continue;
    }
    const std::uint8_t b = static_cast<std::uint8_t>(*data);
    ++pos_;
    ++data;
    --size;
    if (b == 0xFF)
      continue;  // fill before a marker
    step_ = Step::JpegEntropy;
    if (b == 0x00 || (b >= 0xD0 && b <= 0xD7))
      continue;  // a stuffed 0xFF or a restart marker: still entropy data
    // Any other marker ends the scan and is read like one between segments.
    buf_.assign(1, static_cast<char>(b));
    on_jpeg(Step::JpegMarker);
    return;
  }
}

// PNG: the signature, IHDR first, then length-type-data-CRC chunks up to IEND.
void ImageInspector::on_png(Step s) {
  const std::string_view b = buf_;
  switch (s) {
    case Step::PngSignature:
      if (b != std::string_view("\x89PNG\r\n\x1a\n", 8))
        return fail("not a PNG: bad signature");
      return expect(8, Step::PngChunkHeader);
    case Step::PngChunkHeader: {
      const std::uint32_t length = be32(b, 0);
      const std::string_view type = b.substr(4, 4);
      if (length > 0x7fffffffU)
        return fail("PNG chunk length " + std::to_string(length) + " over 2^31-1, at byte " +
                    std::to_string(pos_ - 8));
      for (const char c : type) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
          return fail("PNG chunk chain broken at byte " + std::to_string(pos_ - 8) +
                      " (chunk type is not letters)");
      }
      if (!seen_first_chunk_) {
        seen_first_chunk_ = true;
        if (type != "IHDR" || length != 13)
          return fail("PNG does not start with a 13-byte IHDR chunk");
        return expect(13, Step::PngIhdr);
      }
      if (type == "IEND") {
        if (length != 0)
          return fail("PNG IEND chunk is not empty");
        return expect(4, Step::PngIendCrc);
      }
      skip_then(std::uint64_t{length} + 4, 8, Step::PngChunkHeader);
      return;
    }
    case Step::PngIhdr:
      facts_.width = be32(b, 0);
      facts_.height = be32(b, 4);
      if (facts_.width == 0 || facts_.height == 0 || facts_.width > 0x7fffffffU ||
          facts_.height > 0x7fffffffU)
        return fail("PNG IHDR gives an invalid size " + std::to_string(facts_.width) + "x" +
                    std::to_string(facts_.height));
      return skip_then(4, 8, Step::PngChunkHeader);  // past IHDR's CRC
    case Step::PngIendCrc:
      mark_complete();
      step_ = Step::Done;
      return;
    default:
      return;
  }
}

// GIF: header and logical screen, an optional colour table, then extension and image blocks (each
// data run in length-prefixed sub-blocks) up to the 0x3B trailer.
void ImageInspector::on_gif(Step s) {
  const std::string_view b = buf_;
  auto colour_table = [](std::uint8_t flags) -> std::uint64_t {
    return (flags & 0x80) ? 3ULL << ((flags & 7) + 1) : 0;
  };
  switch (s) {
    case Step::GifHeader: {
      if (!b.starts_with("GIF87a") && !b.starts_with("GIF89a"))
        return fail("not a GIF: bad header");
      facts_.width = le16(b, 6);
      facts_.height = le16(b, 8);
      skip_then(colour_table(byte_at(b, 10)), 1, Step::GifBlock);
      return;
    }
    case Step::GifBlock:
      switch (byte_at(b, 0)) {
        case 0x2C:
          return expect(9, Step::GifImage);
        case 0x21:
          return expect(1, Step::GifLzwSize);  // the extension's label, then its sub-blocks
        case 0x3B:
          if (!has_dimensions())
            return fail("GIF has no size");
          mark_complete();
          step_ = Step::Done;
          return;
        default:
          return fail("GIF block " + hex_byte(byte_at(b, 0)) + " is unknown, at byte " +
                      std::to_string(pos_ - 1));
      }
    case Step::GifImage:
      if (!has_dimensions()) {  // a logical screen of 0x0: the first image gives the size
        facts_.width = le16(b, 4);
        facts_.height = le16(b, 6);
      }
      skip_then(colour_table(byte_at(b, 8)), 1, Step::GifLzwSize);
      return;
    case Step::GifLzwSize:
      return expect(1, Step::GifSubBlock);
    case Step::GifSubBlock: {
      const std::uint8_t n = byte_at(b, 0);
      if (n == 0)
        return expect(1, Step::GifBlock);
      skip_then(n, 1, Step::GifSubBlock);
      return;
    }
    default:
      return;
  }
}

// WebP: a RIFF container whose size must match the bytes; the first chunk (VP8, VP8L or VP8X) gives
// the size.
void ImageInspector::on_webp(Step s) {
  const std::string_view b = buf_;
  switch (s) {
    case Step::RiffHeader:
      if (!b.starts_with("RIFF") || b.substr(8, 4) != "WEBP")
        return fail("not a WebP: bad RIFF header");
      expected_end_ = 8 + std::uint64_t{le32(b, 4)};
      if (expected_end_ < 12 + 8)
        return fail("WebP RIFF size " + std::to_string(expected_end_ - 8) + " is too small");
      return expect(8, Step::RiffChunk);
    case Step::RiffChunk: {
      const std::uint64_t start = pos_ - 8;
      if (start >= expected_end_) {  // bytes after the RIFF container
        step_ = Step::Done;
        return;
      }
      const std::uint32_t length = le32(b, 4);
      const std::uint64_t padded = std::uint64_t{length} + (length & 1);
      if (pos_ + length > expected_end_)
        return fail("WebP chunk '" + std::string(b.substr(0, 4)) + "' runs past the RIFF size, at byte " +
                    std::to_string(start));
      if (!seen_first_chunk_) {
        seen_first_chunk_ = true;
        const std::string_view fourcc = b.substr(0, 4);
        const std::uint32_t needed = fourcc == "VP8 " ? 10 : fourcc == "VP8L" ? 5 : fourcc == "VP8X" ? 10 : 0;
        if (needed == 0)
          return fail("WebP's first chunk '" + std::string(fourcc) + "' is not VP8, VP8L or VP8X");
        if (length < needed)
          return fail("WebP " + std::string(fourcc) + " chunk too short");
        marker_ = static_cast<std::uint8_t>(fourcc[3]);  // ' ', 'L' or 'X'
        count_ = static_cast<std::uint32_t>(padded - needed);
        return expect(needed, Step::WebpFirstChunk);
      }
      skip_then(padded, 8, Step::RiffChunk);
      return;
    }
    case Step::WebpFirstChunk:
      if (marker_ == ' ') {
        if (byte_at(b, 3) != 0x9d || byte_at(b, 4) != 0x01 || byte_at(b, 5) != 0x2a)
          return fail("WebP VP8 frame has a bad start code");
        facts_.width = le16(b, 6) & 0x3fff;
        facts_.height = le16(b, 8) & 0x3fff;
      } else if (marker_ == 'L') {
        if (byte_at(b, 0) != 0x2f)
          return fail("WebP VP8L stream has a bad signature");
        const std::uint32_t bits = le32(b, 1);
        facts_.width = (bits & 0x3fff) + 1;
        facts_.height = ((bits >> 14) & 0x3fff) + 1;
      } else {
        facts_.width = le24(b, 4) + 1;
        facts_.height = le24(b, 7) + 1;
      }
      if (!has_dimensions())
        return fail("WebP gives a size of 0");
      skip_then(count_, 8, Step::RiffChunk);
      return;
    default:
      return;
  }
}

// BMP: the file header states the file's size; the DIB header the image's.
void ImageInspector::on_bmp(Step s) {
  if (s != Step::BmpHeader)
    return;
  const std::string_view b = buf_;
  const std::uint32_t dib = le32(b, 14);
  if (dib == 12) {
    facts_.width = le16(b, 18);
    facts_.height = le16(b, 20);
  } else {
    const auto w = static_cast<std::int32_t>(le32(b, 18));
    const auto h = static_cast<std::int32_t>(le32(b, 22));
    if (w <= 0 || h == 0 || h == INT32_MIN)
      return fail("BMP gives an invalid size " + std::to_string(w) + "x" + std::to_string(h));
    facts_.width = static_cast<std::uint32_t>(w);
    facts_.height = static_cast<std::uint32_t>(h < 0 ? -h : h);  // negative: stored top-down
  }
  if (!has_dimensions())
    return fail("BMP gives a size of 0");
  const std::uint32_t stated = le32(b, 2);
  if (stated >= 26)  // some writers leave it 0: then the file's length cannot be checked
    expected_end_ = stated;
  mark_complete();
  step_ = Step::Done;
}

// TIFF: the header points at the first IFD, which may be anywhere after it (often at the end): skip to
// it, read its entries, and check the strips or tiles it names lie within the bytes.
void ImageInspector::on_tiff(Step s) {
  const std::string_view b = buf_;
  switch (s) {
    case Step::TiffHeader: {
      little_endian_ = b.starts_with("II");
      const TiffReader r{b, little_endian_};
      if ((!little_endian_ && !b.starts_with("MM")) || r.u16(2) != 42)
        return fail("not a TIFF: bad header");
      const std::uint32_t ifd = r.u32(4);
      if (ifd < 8)
        return fail("TIFF's first IFD offset " + std::to_string(ifd) + " points into its header");
      skip_then(ifd - 8, 2, Step::TiffCount);
      return;
    }
    case Step::TiffCount: {
      count_ = TiffReader{b, little_endian_}.u16(0);
      if (count_ == 0)
        return fail("TIFF's first IFD is empty");
      return expect(std::size_t{count_} * 12, Step::TiffIfd);
    }
    case Step::TiffIfd: {
      const TiffReader r{b, little_endian_};
      std::uint64_t data_end = 0;
      std::uint64_t strip_offset = 0;
      std::uint64_t strip_bytes = 0;
      for (std::uint32_t i = 0; i < count_; ++i) {
        const std::size_t e = std::size_t{i} * 12;
        const std::uint32_t tag = r.u16(e);
        const std::uint32_t type = r.u16(e + 2);
        const std::uint32_t count = r.u32(e + 4);
        const bool integer = type == 3 || type == 4;
        if (!integer)
          continue;
        if (tag == 256)
          facts_.width = r.value(e);
        else if (tag == 257)
          facts_.height = r.value(e);
        else if (tag == 273 || tag == 324 || tag == 279 || tag == 325) {
          const std::uint64_t bytes = std::uint64_t{count} * (type == 3 ? 2 : 4);
          if (bytes > 4) {
            // An array stored elsewhere: it, at least, must be there.
            data_end = std::max(data_end, std::uint64_t{r.u32(e + 8)} + bytes);
          } else if (count == 1) {
            (tag == 273 || tag == 324 ? strip_offset : strip_bytes) = r.value(e);
          }
        }
      }
      if (strip_offset != 0)
        data_end = std::max(data_end, strip_offset + strip_bytes);
      if (!has_dimensions())
        return fail("TIFF's first IFD has no image width and length");
      expected_end_ = data_end;
      mark_complete();
      step_ = Step::Done;
      return;
    }
    default:
      return;
  }
}

// ICO: a directory of images, each with its size and where its bytes lie; the largest is reported.
void ImageInspector::on_ico(Step s) {
  const std::string_view b = buf_;
  switch (s) {
    case Step::IcoHeader:
      count_ = le16(b, 4);
      if (le16(b, 0) != 0 || le16(b, 2) != 1 || count_ == 0)
        return fail("not an ICO: bad header");
      if (count_ > kMaxIcoImages)
        return fail("ICO lists " + std::to_string(count_) + " images (more than " +
                    std::to_string(kMaxIcoImages) + ")");
      return expect(std::size_t{count_} * 16, Step::IcoDirectory);
    case Step::IcoDirectory: {
      const std::uint64_t directory_end = 6 + std::uint64_t{count_} * 16;
      for (std::uint32_t i = 0; i < count_; ++i) {
        const std::size_t e = std::size_t{i} * 16;
        const std::uint32_t w = byte_at(b, e) == 0 ? 256 : byte_at(b, e);
        const std::uint32_t h = byte_at(b, e + 1) == 0 ? 256 : byte_at(b, e + 1);
        const std::uint64_t offset = le32(b, e + 12);
        const std::uint64_t size = le32(b, e + 8);
        if (offset < directory_end || size == 0)
          return fail("ICO image " + std::to_string(i) + " lies outside the file");
        expected_end_ = std::max(expected_end_, offset + size);
        if (std::uint64_t{w} * h > std::uint64_t{facts_.width} * facts_.height) {
          facts_.width = w;
          facts_.height = h;
        }
      }
      mark_complete();
      step_ = Step::Done;
      return;
    }
    default:
      return;
  }
}

// AVIF/HEIC: top-level ISOBMFF boxes, ftyp first, ending exactly at the last byte; the size comes from
// the `ispe` property in the `meta` box.
void ImageInspector::on_isobmff(Step s) {
  const std::string_view b = buf_;
  switch (s) {
    case Step::BoxHeader: {
      const std::uint32_t size = be32(b, 0);
      const std::string type(b.substr(4, 4));
      if (!seen_first_chunk_ && type != "ftyp")
        return fail("ISOBMFF file does not start with an ftyp box");
      seen_first_chunk_ = true;
      marker_ = type == "meta" ? 1 : type == "mdat" ? 2 : 0;
      if (size == 0) {  // the box runs to the end of the file
        if (marker_ == 2)
          mdat_end_ = pos_;
        mark_complete();
        step_ = Step::Done;
        return;
      }
      if (size == 1)
        return expect(8, Step::BoxLargeSize);
      if (size < 8)
        return fail("ISOBMFF box '" + type + "' has a size below its header, at byte " +
                    std::to_string(pos_ - 8));
      expected_end_ = pos_ - 8 + size;
      break;
    }
    case Step::BoxLargeSize: {
      const std::uint64_t size = be64(b, 0);
      if (size < 16)
        return fail("ISOBMFF box has a 64-bit size below its header, at byte " + std::to_string(pos_ - 16));
      expected_end_ = pos_ - 16 + size;
      break;
    }
    case Step::MetaBox: {
      if (!has_dimensions())
        std::tie(facts_.width, facts_.height) = heif_size(b);
      return expect(8, Step::BoxHeader);
    }
    default:
      return;
  }
  // A box header was read: its payload runs to expected_end_.
  const std::uint64_t payload = expected_end_ - pos_;
  if (marker_ == 2)
    mdat_end_ = expected_end_;  // the coded image data: the file is whole only once it is in
  if (marker_ == 1 && payload > 4 && payload <= kMetaBoxLimit && !has_dimensions())
    return expect(static_cast<std::size_t>(payload), Step::MetaBox);
  skip_then(payload, 8, Step::BoxHeader);
}

void ImageInspector::on_svg_head() {
  const std::string_view b = buf_;
  // The earlier of "<svg" and ":svg" (a namespace prefix, e.g. <svg:svg): a match found in the first
  // bytes stays the earliest as more arrive, so the answer does not depend on how the body is chunked.
  const std::size_t open = std::min(b.find("<svg"), b.find(":svg"));
  if (open != std::string_view::npos) {
    // The root's start tag ends at the first '>' outside quotes.
    char quote = 0;
    for (std::size_t i = open; i < b.size(); ++i) {
      const char c = b[i];
      if (quote != 0) {
        if (c == quote)
          quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        const std::string_view tag = b.substr(open, i - open);
        marker_ = tag.ends_with("/") ? 1 : 0;  // a self-closing root
        std::tie(facts_.width, facts_.height) = svg_size(tag);
        step_ = Step::SvgBody;
        buf_.clear();
        buf_.shrink_to_fit();
        return;
      }
    }
  }
  if (b.size() >= kSvgHeadLimit)
    fail("SVG root element does not end within its first " + std::to_string(kSvgHeadLimit) + " bytes");
}

void ImageInspector::note_svg_tail(std::string_view bytes) {
  if (bytes.size() >= kSvgTailKeep) {
    svg_tail_.assign(bytes.substr(bytes.size() - kSvgTailKeep));
    return;
  }
  svg_tail_.append(bytes);
  if (svg_tail_.size() > 2 * kSvgTailKeep)
    svg_tail_.erase(0, svg_tail_.size() - kSvgTailKeep);
}

std::optional<std::uint64_t> ImageInspector::needed_bytes() const {
  switch (facts_.type) {
    case ImageType::Jpeg:
    case ImageType::Png:
    case ImageType::Gif:
      return complete_at_;
    case ImageType::Webp:
      return expected_end_ != 0 ? std::optional(expected_end_) : std::nullopt;
    case ImageType::Bmp:
    case ImageType::Tiff:
    case ImageType::Ico:
      return complete_at_ ? std::optional(std::max(*complete_at_, expected_end_)) : std::nullopt;
    case ImageType::Avif:
    case ImageType::Heic:
      return mdat_end_ != 0 ? std::optional(mdat_end_) : std::nullopt;
    case ImageType::Svg:
    case ImageType::Unknown:
      break;
  }
  return std::nullopt;
}

std::optional<std::string> ImageInspector::incompleteness() const {
  if (broken_)
    return broken_;
  // Built only for an incomplete image: a whole one (nearly every image) costs no allocation here.
  auto cut_at = [this] { return " (cut at " + std::to_string(pos_) + " bytes)"; };
  switch (facts_.type) {
    case ImageType::Unknown:
      return std::nullopt;
    case ImageType::Jpeg:
      if (!complete_at_)
        return "JPEG ends before its EOI marker" + cut_at();
      return std::nullopt;
    case ImageType::Png:
      if (!complete_at_)
        return "PNG ends before its IEND chunk" + cut_at();
      return std::nullopt;
    case ImageType::Gif:
      if (!complete_at_)
        return "GIF ends before its trailer" + cut_at();
      return std::nullopt;
    case ImageType::Webp:
      if (!has_dimensions())
        return "WebP ends before its image header" + cut_at();
      // One byte more is the RIFF pad byte some writers put after an odd-sized container.
      if (pos_ != expected_end_ && pos_ != expected_end_ + 1)
        return "WebP's RIFF size says " + std::to_string(expected_end_) + " bytes but " +
               std::to_string(pos_) + " arrived";
      return std::nullopt;
    case ImageType::Avif:
    case ImageType::Heic:
      if (!complete_at_ && (step_ != Step::BoxHeader || !buf_.empty() || skip_ != 0))
        return std::string(to_string(facts_.type)) + " ends inside a box" + cut_at();
      if (mdat_end_ == 0 || pos_ < mdat_end_)
        return std::string(to_string(facts_.type)) + " ends before its image data (mdat box)" + cut_at();
      if (!has_dimensions())
        return std::string(to_string(facts_.type)) + " has no image size (ispe property)";
      return std::nullopt;
    case ImageType::Svg:
      if (step_ == Step::SvgHead)
        return "SVG ends before its root element's start tag ends" + cut_at();
      // Judged on exactly the last kSvgTailKeep bytes, however the body was chunked.
      if (!svg_ends_whole(
              std::string_view(svg_tail_).substr(svg_tail_.size() - std::min(svg_tail_.size(), kSvgTailKeep)),
              marker_ == 1))
        return "SVG does not end with its root's </svg> end tag" + cut_at();
      return std::nullopt;
    case ImageType::Bmp:
    case ImageType::Tiff:
    case ImageType::Ico:
      if (!complete_at_)
        return std::string(to_string(facts_.type)) + " ends before its header" + cut_at();
      if (pos_ < expected_end_)
        return std::string(to_string(facts_.type)) + " ends at " + std::to_string(pos_) + " of the " +
               std::to_string(expected_end_) + " bytes its header describes";
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> size_refusal(const ImageFacts& facts, const ImageLimits& limits) {
  const std::uint64_t w = facts.width;
  const std::uint64_t h = facts.height;
  if (w == 0 || h == 0)
    return std::nullopt;
  // Built only when refusing: a passing image (nearly every one) costs no allocation here.
  auto size = [&] { return std::to_string(w) + "x" + std::to_string(h); };
  if (limits.max_pixels != 0 && w * h > limits.max_pixels)
    return size() + " is " + std::to_string(w * h) + " pixels, over the " +
           std::to_string(limits.max_pixels) + "-pixel limit";
  if (w < limits.min_width || h < limits.min_height)
    return size() + " is smaller than the minimum " + std::to_string(limits.min_width) + "x" +
           std::to_string(limits.min_height);
  if (limits.max_aspect > 0) {
    const double aspect = static_cast<double>(std::max(w, h)) / static_cast<double>(std::min(w, h));
    if (aspect > limits.max_aspect) {
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%.3g", aspect);
      char bound[32];
      std::snprintf(bound, sizeof bound, "%g", limits.max_aspect);
      return size() + " has an aspect ratio of " + ratio + ", over the limit of " + bound;
    }
  }
  return std::nullopt;
}

}  // namespace imgdl::detail
