#pragma once
// The output directory, held open by descriptor: every file is created relative to it with
// openat/renameat, so a URL's name can never reach outside it and a symlink is never followed.

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "imgdl/downloader.hpp"

namespace imgdl::detail {

/// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// A `<name>.part` file being written. Removes itself on destruction unless kept or published.
class PartFile {
 public:
  PartFile() = default;
  PartFile(int dir_fd, std::string name, UniqueFd fd, std::uint64_t size) noexcept
      : dir_fd_(dir_fd), name_(std::move(name)), fd_(std::move(fd)), size_(size) {}
  PartFile(PartFile&& other) noexcept;
  PartFile& operator=(PartFile&& other) noexcept;
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;
  ~PartFile();

  /// Appends all of `data`; an error code (ENOSPC, EFBIG, ...) on failure.
  std::error_code write(std::string_view data) noexcept;
  /// Empties the file (a server that ignored our Range request sends the whole body again).
  std::error_code truncate() noexcept;
  /// Reads the file's first bytes back (to sniff a resumed file's type).
  std::string read_head(std::size_t max_bytes) const;
  /// Feeds the whole current content to `sink` in chunks (to hash a resumed file).
  template <class Sink>
  std::error_code read_all(Sink&& sink) const;
  std::uint64_t size() const noexcept { return size_; }
  const std::string& name() const noexcept { return name_; }
  /// Keeps the file on disk when this object goes away (for a later resume).
  void keep() noexcept { keep_ = true; }
  /// Removes the file now.
  void discard() noexcept;
  /// Gives up ownership once the file was renamed to its final name.
  void released() noexcept {
    name_.clear();
    fd_ = UniqueFd();
  }
  int fd() const noexcept { return fd_.get(); }
  bool is_open() const noexcept { return static_cast<bool>(fd_); }

 private:
  int dir_fd_ = -1;
  std::string name_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
  bool keep_ = false;
};

/// The directory every file goes to. Thread-safe: it only holds a descriptor.
class OutputDir {
 public:
  /// Creates the directory (with parents) if missing and opens it. Throws std::system_error.
  explicit OutputDir(const std::filesystem::path& path);

  /// Does an entry (of any kind, symlinks included, not followed) exist under `name`?
  bool exists(const std::string& name) const;

  /// Opens `<name>.part` for writing, under an exclusive flock held until the PartFile goes. With
  /// `resume`, an existing part file is continued (its size is where the next Range starts); otherwise a
  /// stale one from an interrupted run is emptied and reused. A part file another writer holds fails
  /// with `device_or_resource_busy`. Created with O_CREAT|O_EXCL|O_NOFOLLOW: a symlink planted at that
  /// name is never written through.
  PartFile open_part(const std::string& name, bool resume, std::error_code& error) const;

  /// Renames `part` to its final name. Rename/Resume/Skip never replace an existing entry: they move
  /// on to name.1.ext, name.2.ext, ..., passing over names `reserved` says are planned for other URLs;
  /// Overwrite replaces it atomically (a symlink is replaced, not followed). Returns the name used.
  std::string publish(PartFile& part, const std::string& name, OnExists on_exists,
                      const std::function<bool(const std::string&)>& reserved, std::error_code& error) const;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  UniqueFd fd_;
};

template <class Sink>
std::error_code PartFile::read_all(Sink&& sink) const {
  std::string buffer(1 << 16, '\0');
  std::uint64_t offset = 0;
  for (;;) {
    const auto n = ::pread(fd_.get(), buffer.data(), buffer.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return {errno, std::generic_category()};
    }
    if (n == 0)
      return {};
    sink(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    offset += static_cast<std::uint64_t>(n);
  }
}

}  // namespace imgdl::detail
