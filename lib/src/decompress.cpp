#include "decompress.hpp"

#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <stdexcept>

namespace imgdl::detail {
namespace {
constexpr std::size_t kBuffer = 1 << 16;
}

/// The codec's state: a zlib stream or a zstd context (RAII, never copied).
struct DecompressingBuf::Codec {
  z_stream z{};
  bool z_open = false;
  ZSTD_DCtx* zstd = nullptr;

  ~Codec() {
    if (z_open)
      inflateEnd(&z);
    ZSTD_freeDCtx(zstd);
  }
};

DecompressingBuf::DecompressingBuf(std::istream& source) : source_(source), in_(kBuffer, '\0') {
  in_.resize(0);
  refill_input();
  const auto magic = [&](std::string_view m) { return std::string_view(in_).starts_with(m); };
  codec_ = std::make_unique<Codec>();
  if (magic("\x1f\x8b")) {
    compression_ = Compression::Gzip;
    if (inflateInit2(&codec_->z, 15 + 16) != Z_OK)  // 16: a gzip header and trailer
      throw std::bad_alloc();
    codec_->z_open = true;
  } else if (magic("\x28\xb5\x2f\xfd")) {
    compression_ = Compression::Zstd;
    codec_->zstd = ZSTD_createDCtx();
    if (codec_->zstd == nullptr)
      throw std::bad_alloc();
  }
}

DecompressingBuf::~DecompressingBuf() = default;

bool DecompressingBuf::refill_input() {
  if (source_done_)
    return false;
  in_.erase(0, in_pos_);
  in_pos_ = 0;
  const std::size_t have = in_.size();
  in_.resize(kBuffer);
  source_.read(in_.data() + have, static_cast<std::streamsize>(kBuffer - have));
  const auto got = static_cast<std::size_t>(source_.gcount());
  in_.resize(have + got);
  if (got == 0 || !source_)
    source_done_ = true;
  return got > 0;
}

std::size_t DecompressingBuf::decompress() {
  out_.resize(kBuffer);
  for (;;) {
    if (in_pos_ == in_.size() && !refill_input()) {
      if (!finished_ && error_.empty() && consumed_ > 0)
        error_ = std::string(compression_ == Compression::Gzip ? "gzip" : "zstd") +
                 " data ends early, after " + std::to_string(consumed_) + " compressed bytes";
      return 0;
    }
    const std::size_t avail = in_.size() - in_pos_;
    std::size_t produced = 0;
    std::size_t used = 0;
    if (compression_ == Compression::Gzip) {
      z_stream& z = codec_->z;
      z.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      z.avail_in = static_cast<uInt>(avail);
      z.next_out = reinterpret_cast<Bytef*>(out_.data());
      z.avail_out = static_cast<uInt>(out_.size());
      const int rc = inflate(&z, Z_NO_FLUSH);
      used = avail - z.avail_in;
      produced = out_.size() - z.avail_out;
      finished_ = false;
      if (rc == Z_STREAM_END) {
        finished_ = true;
        inflateReset(&z);  // another gzip member may follow
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        error_ = "gzip data is corrupt near compressed byte " + std::to_string(consumed_ + used) +
                 (z.msg ? std::string(": ") + z.msg : std::string());
        in_pos_ = in_.size();
        source_done_ = true;
        out_.resize(produced);
        return produced;
      }
    } else {
      ZSTD_inBuffer input{in_.data() + in_pos_, avail, 0};
      ZSTD_outBuffer output{out_.data(), out_.size(), 0};
      const std::size_t rc = ZSTD_decompressStream(codec_->zstd, &output, &input);
      used = input.pos;
      produced = output.pos;
      if (ZSTD_isError(rc)) {
        error_ = "zstd data is corrupt near compressed byte " + std::to_string(consumed_ + used) + ": " +
                 ZSTD_getErrorName(rc);
        in_pos_ = in_.size();
        source_done_ = true;
        out_.resize(produced);
        return produced;
      }
      finished_ = rc == 0;  // a frame ended here
    }
    in_pos_ += used;
    consumed_ += used;
    if (produced > 0) {
      out_.resize(produced);
      return produced;
    }
  }
}

DecompressingBuf::int_type DecompressingBuf::underflow() {
  if (gptr() != nullptr && gptr() < egptr())
    return traits_type::to_int_type(*gptr());
  std::size_t n = 0;
  if (compression_ == Compression::None) {
    // Pass through: what refill_input() read for the magic bytes first, then the source directly.
    if (in_pos_ < in_.size()) {
      out_.assign(in_, in_pos_, std::string::npos);
      in_pos_ = in_.size();
    } else {
      out_.resize(kBuffer);
      source_.read(out_.data(), static_cast<std::streamsize>(out_.size()));
      out_.resize(static_cast<std::size_t>(source_.gcount()));
    }
    n = out_.size();
  } else {
    n = decompress();
  }
  if (n == 0)
    return traits_type::eof();
  setg(out_.data(), out_.data(), out_.data() + n);
  return traits_type::to_int_type(out_[0]);
}

}  // namespace imgdl::detail
