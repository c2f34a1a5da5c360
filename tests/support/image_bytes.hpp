// Deterministic, structurally valid image files of any size (above a small per-type minimum), generated
// slice by slice so the test server can stream 50 MB bodies and answer Range requests without ever holding
// a whole file in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgdl::test {

/// The image formats the generator can produce.
enum class ImageKind { Jpeg, Png, Gif, Webp, Bmp, Svg };

/// Parses a type name or file extension ("jpg", "jpeg", "png", "gif", "webp", "bmp", "svg"; case-insensitive,
/// leading dot allowed). Pure function, thread-safe.
std::optional<ImageKind> image_kind_from_name(std::string_view name);

/// The type given by a path's extension ("/img/a.png" -> Png), or nullopt. Pure function, thread-safe.
std::optional<ImageKind> image_kind_from_path(std::string_view path);

/// The MIME type served for `kind` ("image/jpeg", ..., "image/svg+xml"). Thread-safe.
std::string_view mime_type(ImageKind kind);

/// Smallest file the generator can make for `kind`; smaller requests are rounded up to it. Thread-safe.
std::size_t min_image_size(ImageKind kind);

/// The size actually produced for a requested size: max(requested, min_image_size(kind)). Thread-safe.
std::size_t effective_image_size(ImageKind kind, std::size_t requested);

/// Describes one deterministic file: same (kind, size, seed) -> same bytes, in any process. Different
/// seeds (the server uses the request path) give different padding bytes, and every 4 KiB block of padding
/// differs from the others, so an off-by-a-block resume shows up as a content mismatch.
/// Immutable after construction: const members may be called from any number of threads at once.
class ImageGenerator {
 public:
  /// Lays out the file; cost is independent of `size` except for a few pieces per 64 KiB (JPEG/PNG).
  ImageGenerator(ImageKind kind, std::size_t size, std::string_view seed);

  /// Total file size (effective_image_size of the requested size).
  std::size_t size() const { return size_; }
  ImageKind kind() const { return kind_; }

  /// Appends bytes [offset, offset + length) of the file to `out` (clamped to the file's end).
  void append(std::size_t offset, std::size_t length, std::string& out) const;

  /// The whole file.
  std::string bytes() const;

  /// Layout detail: a run of the file made of literal bytes, seed noise, or repeated framed segments.
  struct Piece {
    enum class Kind : std::uint8_t { Literal, Fill, TextFill, JpegCom, GifBlock, PngChunk };
    Kind kind = Kind::Literal;
    std::size_t start = 0;
    std::size_t length = 0;
    std::string literal;         // Literal
    std::size_t frame_data = 0;  // frame kinds: payload bytes per frame (the piece holds whole frames)
  };

 private:
  ImageKind kind_;
  std::size_t size_;
  std::vector<std::uint8_t> table_;  // 4 KiB of seed-derived noise
  std::uint64_t key_;                // mixes the block number into each 4 KiB block
  std::vector<Piece> pieces_;

  void fill(std::size_t pos, std::size_t n, bool text, std::string& out) const;
  void append_piece(const Piece& piece, std::size_t from, std::size_t to, std::string& out) const;
};

/// The whole file for (kind, size, seed). Thread-safe.
std::string image_bytes(ImageKind kind, std::size_t size, std::string_view seed);

/// Replaces `out` with bytes [offset, offset + length) of image_bytes(kind, size, seed). Thread-safe.
void image_chunk(ImageKind kind, std::size_t size, std::string_view seed, std::size_t offset,
                 std::size_t length, std::string& out);

}  // namespace imgdl::test
