// Reading an input stream that may be gzip- or zstd-compressed, told by its magic bytes, as a plain
// std::istream; a cut or corrupt compressed stream ends the data and says why.
#pragma once

#include <istream>
#include <memory>
#include <streambuf>
#include <string>

namespace imgdl::detail {

/// Which compression a stream starts with.
enum class Compression { None, Gzip, Zstd };

/// A streambuf over `source` that inflates gzip (members concatenated as gzip allows) or zstd
/// (frames concatenated) found by their magic bytes, and passes anything else through. Memory is two
/// fixed buffers, whatever the input's size. Not thread-safe: one reader at a time.
class DecompressingBuf : public std::streambuf {
 public:
  explicit DecompressingBuf(std::istream& source);
  ~DecompressingBuf() override;
  DecompressingBuf(const DecompressingBuf&) = delete;
  DecompressingBuf& operator=(const DecompressingBuf&) = delete;

  Compression compression() const noexcept { return compression_; }
  /// Set when the compressed data is cut short or corrupt (the data then ends there), e.g.
  /// "gzip data ends early, after 1234 compressed bytes". Empty otherwise.
  const std::string& error() const noexcept { return error_; }

 protected:
  int_type underflow() override;

 private:
  struct Codec;
  bool refill_input();
  std::size_t decompress();

  std::istream& source_;
  Compression compression_ = Compression::None;
  std::unique_ptr<Codec> codec_;
  std::string in_;  // compressed bytes read, not yet consumed
  std::size_t in_pos_ = 0;
  std::string out_;             // what get() hands out
  std::uint64_t consumed_ = 0;  // compressed bytes consumed, for messages
  bool source_done_ = false;
  bool finished_ = false;  // the last frame ended exactly at the end of the input
  std::string error_;
};

/// An istream over DecompressingBuf.
class DecompressingStream : public std::istream {
 public:
  explicit DecompressingStream(std::istream& source) : std::istream(nullptr), buf_(source) { rdbuf(&buf_); }
  const DecompressingBuf& buf() const noexcept { return buf_; }

 private:
  DecompressingBuf buf_;
};

}  // namespace imgdl::detail
