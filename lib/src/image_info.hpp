// What an image's own bytes say about it: its format, width, height and whether the file is whole,
// read as the body streams in (no decoder, no second read) and never past the bytes given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "imgdl/image_type.hpp"

namespace imgdl::detail {

/// Facts an ImageInspector has read so far. Width and height are 0 until the header giving them has
/// arrived (and stay 0 for an SVG whose size is not plain numbers).
struct ImageFacts {
  ImageType type = ImageType::Unknown;
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  int orientation = 0;  ///< a JPEG's EXIF orientation (1–8), 0 when it has none
};

/// Reads one image's structure from its bytes in order, in chunks of any size. Each format is walked
/// as its container allows (JPEG segments and entropy data up to EOI, PNG chunks up to IEND, GIF blocks
/// up to the trailer, RIFF, ISOBMFF boxes, TIFF's first IFD, ICO's directory, BMP's header, SVG's root
/// element and end tag). Memory is bounded (at most one small segment or directory is buffered: an EXIF
/// block, a TIFF IFD, an ISOBMFF `meta` box up to 1 MiB) and time is linear in the bytes fed.
/// Not thread-safe: one inspector belongs to one transfer.
class ImageInspector {
 public:
  /// `type` is what sniff_image_type() told from the first bytes; Unknown inspects nothing.
  explicit ImageInspector(ImageType type);

  /// The next bytes of the body. Stops reading (and ignores what follows) once the structure is broken.
  void feed(std::string_view bytes);

  const ImageFacts& facts() const noexcept { return facts_; }
  bool has_dimensions() const noexcept { return facts_.width != 0 && facts_.height != 0; }

  /// Set as soon as the bytes cannot be this format (a bad chunk length, a marker where none may be):
  /// what is wrong, in words.
  const std::optional<std::string>& broken() const noexcept { return broken_; }

  /// After the last byte: nullopt when the image is whole, else what is missing or wrong, e.g.
  /// "JPEG ends before its EOI marker (cut at 20480 bytes)".
  std::optional<std::string> incompleteness() const;

  /// The fewest bytes this image can be whole in, once the structure read so far says (the end mark's
  /// position, a stated file size, the end of the data its directory points at); nullopt when not yet
  /// known or, for SVG, not defined. Every shorter prefix is incomplete: the fuzz target checks it.
  std::optional<std::uint64_t> needed_bytes() const;

  /// Bytes fed so far.
  std::uint64_t bytes_seen() const noexcept { return pos_; }

 private:
  enum class Step : std::uint8_t;

  void run(const char* data, std::size_t size);
  void step();  // buf_ holds exactly need_ bytes: interpret them
  void expect(std::size_t bytes, Step next);
  void skip_then(std::uint64_t bytes, std::size_t need, Step next);  // pass `bytes`, then expect()
  void fail(std::string what);
  void mark_complete() { complete_at_ = pos_; }
  void scan_entropy(const char*& data, std::size_t& size);

  void on_jpeg(Step s);
  void on_png(Step s);
  void on_gif(Step s);
  void on_webp(Step s);
  void on_bmp(Step s);
  void on_tiff(Step s);
  void on_ico(Step s);
  void on_isobmff(Step s);
  void on_svg_head();
  void note_svg_tail(std::string_view bytes);

  ImageFacts facts_;
  std::optional<std::string> broken_;
  Step step_;
  std::size_t need_ = 0;                      // bytes step_ wants gathered in buf_
  std::uint64_t skip_ = 0;                    // bytes to pass over before gathering
  std::string buf_;                           // the bytes being gathered
  std::uint64_t pos_ = 0;                     // bytes fed
  std::optional<std::uint64_t> complete_at_;  // where the format's end mark was (or the structure ended)
  std::uint64_t expected_end_ = 0;            // formats that state their length: the byte count they claim
  bool little_endian_ = false;                // TIFF byte order
  std::uint32_t count_ = 0;                   // ICO directory entries, TIFF IFD entries, JPEG segment length
  std::uint8_t marker_ = 0;                   // the JPEG segment being read
  bool seen_first_chunk_ = false;             // JPEG's SOF, PNG's IHDR, WebP's first chunk, ISOBMFF's ftyp
  std::uint64_t mdat_end_ = 0;                // ISOBMFF: where the (last) mdat box ends
  std::string svg_tail_;                      // an SVG's last bytes, for its end tag
};

/// The limits an image's size must meet to be kept; 0 turns each off.
struct ImageLimits {
  std::uint32_t min_width = 0;
  std::uint32_t min_height = 0;
  std::uint64_t max_pixels = 0;
  double max_aspect = 0;  ///< the longer side over the shorter one
};

/// Why an image of this size is not wanted (e.g. "50000x50000 is 2500000000 pixels, over the
/// 178956970-pixel limit"), or nullopt when it passes or its size is unknown. Thread-safe: pure.
std::optional<std::string> size_refusal(const ImageFacts& facts, const ImageLimits& limits);

/// The default bound on width × height: what common decoders refuse as a decompression bomb.
inline constexpr std::uint64_t default_max_pixels = 178'956'970;

}  // namespace imgdl::detail
