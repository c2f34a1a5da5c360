#include "image_bytes.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace imgdl::test {
namespace {

using Piece = ImageGenerator::Piece;
using Kind = Piece::Kind;

constexpr std::size_t kTableSize = 4096;  // padding noise period, before the per-block mix

// Padding text for SVG comments: no '-' (a "--" would end the comment early), no '<' or '&'.
constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
static_assert(kAlphabet.size() == 64);

std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void put_u8(std::string& s, unsigned v) {
  s.push_back(static_cast<char>(v & 0xffU));
}
void put_le16(std::string& s, std::uint32_t v) {
  put_u8(s, v);
  put_u8(s, v >> 8);
}
void put_le32(std::string& s, std::uint32_t v) {
  put_le16(s, v & 0xffffU);
  put_le16(s, v >> 16);
}
void put_be32(std::string& s, std::uint32_t v) {
  put_u8(s, v >> 24);
  put_u8(s, v >> 16);
  put_u8(s, v >> 8);
  put_u8(s, v);
}
void put_bytes(std::string& s, std::initializer_list<unsigned> bytes) {
  for (const unsigned b : bytes) {
    put_u8(s, b);
  }
}

std::uint32_t crc32_of(std::uint32_t crc, std::string_view data) {
  return static_cast<std::uint32_t>(
      ::crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

std::uint32_t u32(std::size_t v) {
  if (v > 0xffffffffULL) {
    throw std::length_error("imgdl::test image too large");
  }
  return static_cast<std::uint32_t>(v);
}

// A PNG chunk with its length and CRC.
std::string png_chunk(std::string_view type, std::string_view data) {
  std::string out;
  put_be32(out, u32(data.size()));
  out.append(type);
  out.append(data);
  put_be32(out, crc32_of(crc32_of(0, type), data));
  return out;
}

std::size_t frame_overhead(Kind kind) {
  switch (kind) {
    case Kind::JpegCom:
      return 4;  // FF FE + 16-bit length
    case Kind::GifBlock:
      return 1;  // sub-block length byte
    case Kind::PngChunk:
      return 12;  // length + type + CRC
    default:
      return 0;
  }
}

// The pieces of a fixed-layout format, from which the padding size follows.
struct Frame {
  std::string head;  // bytes before the padding
  std::string tail;  // bytes after the padding
};

// 1x1 grey baseline JPEG after the padding: all-ones quantisation, one-code Huffman tables (DC diff 0
// and EOB both coded as "0"), one 8x8 block whose two bits are "00" padded with ones.
std::string jpeg_tail() {
  std::string t;
  put_bytes(t, {0xFF, 0xDB, 0x00, 0x43, 0x00});  // DQT, table 0
  t.append(64, '\x01');
  put_bytes(t,
            {0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00});  // SOF0 1x1 grey
  for (const unsigned table_class : {0x00U, 0x10U}) {  // DHT: DC table 0, then AC table 0
    put_bytes(t, {0xFF, 0xC4, 0x00, 0x14, table_class, 0x01});
    t.append(15, '\0');
    put_u8(t, 0x00);
  }
  put_bytes(t, {0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00});  // SOS
  put_bytes(t, {0x3F, 0xFF, 0xD9});                                            // scan data, EOI
  return t;
}

}  // namespace

std::optional<ImageKind> image_kind_from_name(std::string_view name) {
  if (name.starts_with('.')) {
    name.remove_prefix(1);
  }
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "jpg" || lower == "jpeg") {
    return ImageKind::Jpeg;
  }
  if (lower == "png") {
    return ImageKind::Png;
  }
  if (lower == "gif") {
    return ImageKind::Gif;
  }
  if (lower == "webp") {
    return ImageKind::Webp;
  }
  if (lower == "bmp") {
    return ImageKind::Bmp;
  }
  if (lower == "svg") {
    return ImageKind::Svg;
  }
  return std::nullopt;
}

std::optional<ImageKind> image_kind_from_path(std::string_view path) {
  const auto slash = path.rfind('/');
  const auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos) {
    return std::nullopt;
  }
  return image_kind_from_name(name.substr(dot + 1));
}

std::string_view mime_type(ImageKind kind) {
  switch (kind) {
    case ImageKind::Jpeg:
      return "image/jpeg";
    case ImageKind::Png:
      return "image/png";
    case ImageKind::Gif:
      return "image/gif";
    case ImageKind::Webp:
      return "image/webp";
    case ImageKind::Bmp:
      return "image/bmp";
    case ImageKind::Svg:
      return "image/svg+xml";
  }
  return "application/octet-stream";
}

namespace {

// Fixed bytes around the padding for each format. Sizes that depend on the total are patched in later.
Frame fixed_frame(ImageKind kind, std::uint64_t seed_hash) {
  const auto color = mix64(seed_hash ^ 0xC0104ULL);
  const unsigned r = color & 0xff;
  const unsigned g = (color >> 8) & 0xff;
  const unsigned b = (color >> 16) & 0xff;
  Frame f;
  switch (kind) {
    case ImageKind::Jpeg:
      put_bytes(f.head, {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',  'F',  'I',  'F',
                         0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00});  // SOI + JFIF APP0
      f.tail = jpeg_tail();
      break;
    case ImageKind::Png: {
      put_bytes(f.head, {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A});
      std::string ihdr;
      put_be32(ihdr, 1);
      put_be32(ihdr, 1);
      put_bytes(ihdr, {8, 2, 0, 0, 0});  // 8-bit RGB
      f.head += png_chunk("IHDR", ihdr);
      const std::array<Bytef, 4> raw{0, static_cast<Bytef>(r), static_cast<Bytef>(g), static_cast<Bytef>(b)};
      std::array<Bytef, 64> z{};
      uLongf z_len = z.size();
      if (::compress2(z.data(), &z_len, raw.data(), raw.size(), 9) != Z_OK) {
        throw std::runtime_error("zlib compress2 failed");
      }
      f.tail = png_chunk("IDAT", std::string_view(reinterpret_cast<const char*>(z.data()), z_len));
      f.tail += png_chunk("IEND", "");
      break;
    }
    case ImageKind::Gif:
      f.head = "GIF89a";
      put_bytes(f.head, {0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00});  // 1x1, 2-colour global table
      put_bytes(f.head, {r, g, b, 0x00, 0x00, 0x00});
      put_bytes(f.head, {0x21, 0xFE});  // comment extension; the padding is its sub-blocks
      put_bytes(f.tail, {0x00});        // sub-block terminator
      put_bytes(f.tail, {0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00});  // image descriptor
      put_bytes(f.tail, {0x02, 0x02, 0x44, 0x01, 0x00, 0x3B});  // LZW: clear, 0, end; trailer
      break;
    case ImageKind::Webp:
      // Extended format (VP8X) so the trailing unknown "PAD " chunk is allowed; lossless 1x1 image.
      f.head = "RIFF????WEBPVP8X";
      put_le32(f.head, 10);
      put_bytes(f.head, {0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // alpha flag, canvas 1x1
      f.head += "VP8L";
      put_le32(f.head, 13);
      put_bytes(f.head, {0x2F, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xFE, 0x07, 0x00});
      f.head += "PAD ????";
      break;
    case ImageKind::Bmp:
      f.head = "BM";
      f.head.append(52, '\0');  // headers are written once the size is known
      break;
    case ImageKind::Svg: {
      f.head =
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\" viewBox=\"0 0 1 1\"><!-- ";
      std::array<char, 8> hex{};
      std::snprintf(hex.data(), hex.size(), "%02x%02x%02x", r, g, b);
      f.tail = " --><rect width=\"1\" height=\"1\" fill=\"#" + std::string(hex.data()) + "\"/></svg>\n";
      break;
    }
  }
  return f;
}

// The least padding each format needs: one empty frame (JPEG COM, PNG chunk, "PAD " payload), one
// one-byte GIF sub-block, one BMP pixel row of 4 bytes.
std::size_t min_padding(ImageKind kind) {
  switch (kind) {
    case ImageKind::Jpeg:
      return 4;
    case ImageKind::Png:
      return 12;
    case ImageKind::Gif:
      return 2;
    case ImageKind::Bmp:
      return 4;
    case ImageKind::Webp:
    case ImageKind::Svg:
      return 0;
  }
  return 0;
}

// Splits `total` bytes into the fewest frames of `kind` (payload at most max_data each), sizes as even as
// possible, so every byte count >= one minimal frame is reachable.
void add_frames(std::vector<Piece>& pieces, std::size_t& pos, Kind kind, std::size_t total,
                std::size_t max_data) {
  const std::size_t overhead = frame_overhead(kind);
  const std::size_t n = (total + overhead + max_data - 1) / (overhead + max_data);
  const std::size_t data = total - overhead * n;
  const std::size_t q = data / n;
  const std::size_t r = data % n;
  for (const auto& [count, payload] : {std::pair{r, q + 1}, std::pair{n - r, q}}) {
    if (count == 0) {
      continue;
    }
    Piece p;
    p.kind = kind;
    p.start = pos;
    p.length = count * (overhead + payload);
    p.frame_data = payload;
    pieces.push_back(std::move(p));
    pos += pieces.back().length;
  }
}

}  // namespace

std::size_t min_image_size(ImageKind kind) {
  const Frame f = fixed_frame(kind, 0);
  return f.head.size() + f.tail.size() + min_padding(kind);
}

std::size_t effective_image_size(ImageKind kind, std::size_t requested) {
  return std::max(requested, min_image_size(kind));
}

ImageGenerator::ImageGenerator(ImageKind kind, std::size_t size, std::string_view seed)
    : kind_(kind), size_(effective_image_size(kind, size)), table_(kTableSize) {
  const std::uint64_t seed_hash = fnv1a64(seed);
  std::uint64_t state = seed_hash;
  for (std::size_t i = 0; i < kTableSize; i += 8) {
    state = mix64(state);
    for (std::size_t j = 0; j < 8; ++j) {
      table_[i + j] = static_cast<std::uint8_t>(state >> (j * 8));
    }
  }
  key_ = mix64(state ^ 0x5eedULL);

  Frame f = fixed_frame(kind, seed_hash);
  const std::size_t padding = size_ - f.head.size() - f.tail.size();
  std::size_t pos = 0;
  auto literal = [&](std::string bytes) {
    if (bytes.empty()) {
      return;
    }
    Piece p;
    p.kind = Kind::Literal;
    p.start = pos;
    p.length = bytes.size();
    p.literal = std::move(bytes);
    pos += p.length;
    pieces_.push_back(std::move(p));
  };
  auto fill_piece = [&](Kind fill_kind, std::size_t n) {
    if (n == 0) {
      return;
    }
    Piece p;
    p.kind = fill_kind;
    p.start = pos;
    p.length = n;
    pos += n;
    pieces_.push_back(std::move(p));
  };

  switch (kind) {
    case ImageKind::Jpeg:
      literal(f.head);
      add_frames(pieces_, pos, Kind::JpegCom, padding, 65533);
      literal(f.tail);
      break;
    case ImageKind::Png:
      literal(f.head);
      add_frames(pieces_, pos, Kind::PngChunk, padding, 65536);
      literal(f.tail);
      break;
    case ImageKind::Gif:
      literal(f.head);
      add_frames(pieces_, pos, Kind::GifBlock, padding, 255);
      literal(f.tail);
      break;
    case ImageKind::Webp: {
      // RIFF chunks are padded to even sizes, so a RIFF file is always even: an odd size gets one byte
      // after the container, which readers ignore (they stop at the RIFF size).
      const std::size_t payload = padding & ~std::size_t{1};
      std::string head = f.head;
      std::string riff_size;
      put_le32(riff_size, u32(head.size() - 8 + payload));
      head.replace(4, 4, riff_size);
      std::string pad_size;
      put_le32(pad_size, u32(payload));
      head.replace(head.size() - 4, 4, pad_size);
      literal(head);
      fill_piece(Kind::Fill, padding);
      break;
    }
    case ImageKind::Bmp: {
      // 24-bit pixels; rows of 1024 pixels once there is room for two, else one row. Whatever the rows
      // leave over (< one row) is a gap before the pixel array, which bfOffBits skips.
      const std::size_t avail = size_ - 54;
      std::size_t row = 0;
      std::size_t width = 0;
      std::size_t height = 1;
      if (avail >= 2 * 3072) {
        row = 3072;
        width = 1024;
        height = avail / row;
      } else {
        row = avail & ~std::size_t{3};
        width = row / 3;
      }
      const std::size_t gap = avail - row * height;
      std::string h = "BM";
      put_le32(h, u32(size_));
      put_le32(h, 0);
      put_le32(h, u32(54 + gap));
      put_le32(h, 40);
      put_le32(h, u32(width));
      put_le32(h, u32(height));
      put_le16(h, 1);
      put_le16(h, 24);
      put_le32(h, 0);  // BI_RGB
      put_le32(h, u32(row * height));
      put_le32(h, 2835);
      put_le32(h, 2835);
      put_le32(h, 0);
      put_le32(h, 0);
      literal(std::move(h));
      fill_piece(Kind::Fill, avail);
      break;
    }
    case ImageKind::Svg:
      literal(f.head);
      fill_piece(Kind::TextFill, padding);
      literal(f.tail);
      break;
  }
  if (pos != size_) {
    throw std::logic_error("imgdl::test image layout does not add up");
  }
}

void ImageGenerator::fill(std::size_t pos, std::size_t n, bool text, std::string& out) const {
  const std::size_t old = out.size();
  out.resize(old + n);
  auto* p = reinterpret_cast<unsigned char*>(out.data() + old);
  while (n > 0) {
    const std::size_t within = pos % kTableSize;
    const std::size_t run = std::min(n, kTableSize - within);
    // Mixing in the block number makes every 4 KiB block distinct, cheaply.
    const std::uint64_t m = mix64(key_ ^ (pos / kTableSize));
    for (std::size_t i = 0; i < run; ++i) {
      const auto byte = static_cast<unsigned char>(table_[within + i] ^ (m >> (((within + i) % 8) * 8)));
      p[i] = text ? static_cast<unsigned char>(kAlphabet[byte % 64]) : byte;
    }
    p += run;
    pos += run;
    n -= run;
  }
}

void ImageGenerator::append_piece(const Piece& piece, std::size_t from, std::size_t to,
                                  std::string& out) const {
  switch (piece.kind) {
    case Kind::Literal:
      out.append(piece.literal, from - piece.start, to - from);
      return;
    case Kind::Fill:
      fill(from, to - from, false, out);
      return;
    case Kind::TextFill:
      fill(from, to - from, true, out);
      return;
    case Kind::JpegCom:
    case Kind::GifBlock:
    case Kind::PngChunk:
      break;
  }
  const std::size_t head = piece.kind == Kind::PngChunk ? 8 : frame_overhead(piece.kind);
  const std::size_t frame = frame_overhead(piece.kind) + piece.frame_data;
  for (std::size_t i = (from - piece.start) / frame; piece.start + i * frame < to; ++i) {
    const std::size_t f0 = piece.start + i * frame;  // frame start
    const std::size_t d0 = f0 + head;                // payload start
    const std::size_t d1 = d0 + piece.frame_data;    // payload end
    const std::size_t f1 = f0 + frame;
    const std::size_t lo = std::max(from, f0);
    const std::size_t hi = std::min(to, f1);

    std::string header;
    if (piece.kind == Kind::JpegCom) {
      put_bytes(header, {0xFF, 0xFE});
      put_u8(header, u32(piece.frame_data + 2) >> 8);
      put_u8(header, u32(piece.frame_data + 2));
    } else if (piece.kind == Kind::GifBlock) {
      put_u8(header, u32(piece.frame_data));
    } else {
      put_be32(header, u32(piece.frame_data));
      header += "paDd";
    }
    if (lo < d0) {
      out.append(header, lo - f0, std::min(hi, d0) - lo);
    }
    std::size_t payload_at = std::string::npos;  // where this call put the whole payload, if it did
    if (hi > d0 && lo < d1) {
      if (lo <= d0 && hi >= d1) {
        payload_at = out.size();
      }
      fill(std::max(lo, d0), std::min(hi, d1) - std::max(lo, d0), false, out);
    }
    if (hi > d1) {  // PNG CRC, over type and payload
      std::string scratch;
      std::string_view payload;
      if (payload_at != std::string::npos) {
        payload = std::string_view(out).substr(payload_at, piece.frame_data);
      } else {
        fill(d0, piece.frame_data, false, scratch);
        payload = scratch;
      }
      std::string crc;
      put_be32(crc, crc32_of(crc32_of(0, "paDd"), payload));
      out.append(crc, std::max(lo, d1) - d1, hi - std::max(lo, d1));
    }
  }
}

void ImageGenerator::append(std::size_t offset, std::size_t length, std::string& out) const {
  if (offset >= size_) {
    return;
  }
  const std::size_t end = offset + std::min(length, size_ - offset);
  out.reserve(out.size() + (end - offset));
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), offset,
                             [](std::size_t off, const Piece& p) { return off < p.start; });
  --it;  // the piece containing offset: pieces tile [0, size) from 0
  for (; it != pieces_.end() && it->start < end; ++it) {
    append_piece(*it, std::max(offset, it->start), std::min(end, it->start + it->length), out);
  }
}

std::string ImageGenerator::bytes() const {
  std::string out;
  append(0, size_, out);
  return out;
}

std::string image_bytes(ImageKind kind, std::size_t size, std::string_view seed) {
  return ImageGenerator(kind, size, seed).bytes();
}

void image_chunk(ImageKind kind, std::size_t size, std::string_view seed, std::size_t offset,
                 std::size_t length, std::string& out) {
  out.clear();
  ImageGenerator(kind, size, seed).append(offset, length, out);
}

}  // namespace imgdl::test
