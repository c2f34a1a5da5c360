#pragma once
// The output directory, held open by descriptor: every file is created relative to it with
// openat/renameat, so a URL's name can never reach outside it and a symlink is never followed.

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
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

/// Reads exactly `size` bytes of `fd` at `offset`, through short reads and EINTR. False at an early
/// end of file (errno 0) or on an error (errno says which).
bool read_exactly(int fd, char* data, std::size_t size, std::uint64_t offset) noexcept;

/// The file a download is written to until it is published: either a `<name>.part` file, or an
/// unnamed one (O_TMPFILE) that appears in the directory only when published whole. Removes itself on
/// destruction unless kept or published (an unnamed one needs no removal: closing it frees it).
class PartFile {
 public:
  PartFile() = default;
  PartFile(int dir_fd, std::string name, UniqueFd fd, std::uint64_t size, bool unnamed = false) noexcept
      : dir_fd_(dir_fd), name_(std::move(name)), fd_(std::move(fd)), size_(size), unnamed_(unnamed) {}
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
  /// The `.part` file's name, or for an unnamed file the name it is meant for (for messages).
  const std::string& name() const noexcept { return name_; }
  /// An O_TMPFILE file: no name in the directory until published.
  bool unnamed() const noexcept { return unnamed_; }
  /// Keeps the file on disk when this object goes away (for a later resume).
  void keep() noexcept { keep_ = true; }
  /// Removes the file now.
  void discard() noexcept;
  /// Gives up ownership once the file was renamed to its final name.
  void released() noexcept {
    name_.clear();
    fd_ = UniqueFd();
    unnamed_ = false;
  }
  int fd() const noexcept { return fd_.get(); }
  bool is_open() const noexcept { return static_cast<bool>(fd_); }

 private:
  int dir_fd_ = -1;
  std::string name_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
  bool keep_ = false;
  bool unnamed_ = false;
};

/// A moment on the output directory's own clock: a file's inode change time (ctime).
struct DiskTime {
  std::int64_t seconds = 0;
  std::int64_t nanoseconds = 0;
  friend auto operator<=>(const DiskTime&, const DiskTime&) = default;
};

/// Whether a directory entry is there, and whether it was made (or changed) at or after a moment.
enum class EntryAge : std::uint8_t {
  Absent,  ///< no entry under that name
  Older,   ///< there, with a ctime before the moment: a file from before the run
  Newer,   ///< there, with a ctime at or after it: made by this run (or a process running beside it)
};

/// The directory every file goes to. Thread-safe: it only holds a descriptor.
class OutputDir {
 public:
  /// Creates the directory (with parents) if missing and opens it. Throws std::system_error.
  explicit OutputDir(const std::filesystem::path& path);

  /// Does an entry (of any kind, symlinks included, not followed) exist under `name`?
  bool exists(const std::string& name) const;
  /// Opens the regular file `name` for reading (a symlink is not followed); an empty UniqueFd and the
  /// error when it cannot.
  UniqueFd open_read(const std::string& name, std::error_code& error) const;
  /// lstat of `name` in the directory; false (errno set) when there is no such entry.
  bool stat(const std::string& name, struct stat& st) const noexcept;

  /// The time now as the directory's filesystem records it: the ctime of an unnamed file made there
  /// (so its granularity and clock, a server's for NFS, are the ones files get), else the coarse
  /// system clock the kernel stamps files with. A file made after this call has a ctime at or after it;
  /// one made in the same clock tick before it may too.
  DiskTime now() const;

  /// Whether an entry (not followed) is under `name`, and how old (see EntryAge).
  EntryAge age(const std::string& name, DiskTime since) const;

  /// Opens `<name>.part` for writing, under an exclusive flock held until the PartFile goes. With
  /// `resume`, an existing part file is continued (its size is where the next Range starts); otherwise a
  /// stale one from an interrupted run is emptied and reused. A part file another writer holds fails
  /// with `device_or_resource_busy`. Created with O_CREAT|O_EXCL|O_NOFOLLOW: a symlink planted at that
  /// name is never written through.
  PartFile open_part(const std::string& name, bool resume, std::error_code& error) const;

  /// Opens an unnamed file (O_TMPFILE) in the directory, for a download that needs no part file across
  /// runs: nothing is visible until publish() links it under its final name, nothing is left if the
  /// process dies, and two writers of one name never meet. Cheaper than a part file (no flock, and a
  /// link instead of a rename). `for_name` only labels it in messages. An empty PartFile without an
  /// error when the filesystem has no O_TMPFILE (remembered), or /proc is not mounted (the link's
  /// fallback where AT_EMPTY_PATH is refused): use open_part() then.
  PartFile open_unnamed(const std::string& for_name, std::error_code& error) const;

  /// Renames `part` to its final name (links it there, for an unnamed one). Rename/Resume/Skip never
  /// replace an existing entry: they move on to name.1.ext, name.2.ext, ..., passing over names
  /// `reserved` says are planned for other URLs; Overwrite replaces it atomically (a symlink is replaced,
  /// not followed; only a named part file can overwrite), unless `kept_since` is given and the entry's
  /// ctime is at or after it (a file this run made): then it moves on as Rename does, to the first name
  /// free or older. Returns the name used.
  std::string publish(PartFile& part, const std::string& name, OnExists on_exists,
                      const std::function<bool(const std::string&)>& reserved, std::error_code& error,
                      std::optional<DiskTime> kept_since = std::nullopt) const;

  /// Renames (links) `part` to exactly `name`, never replacing an entry there (`file_exists` then, and
  /// `part` stays as it was).
  void publish_exactly(PartFile& part, const std::string& name, std::error_code& error) const;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  bool link_unnamed(int file_fd, const std::string& name) const noexcept;

  std::filesystem::path path_;
  UniqueFd fd_;
  mutable std::atomic<bool> no_tmpfile_{false};     // O_TMPFILE refused, or no /proc to link through
  mutable std::atomic<bool> no_empty_path_{false};  // linkat(AT_EMPTY_PATH) refused: use /proc/self/fd
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
