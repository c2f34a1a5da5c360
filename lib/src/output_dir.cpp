#include "output_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "naming.hpp"

namespace imgdl::detail {

namespace {

std::error_code last_error() {
  return {errno, std::generic_category()};
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0)
    ::close(fd_);
}

bool read_exactly(int fd, char* data, std::size_t size, std::uint64_t offset) noexcept {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, data + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = 0;
      return false;
    }
    got += static_cast<std::size_t>(n);
  }
  return true;
}

PartFile::PartFile(PartFile&& other) noexcept
    : dir_fd_(other.dir_fd_),
      name_(std::exchange(other.name_, {})),
      fd_(std::move(other.fd_)),
      size_(other.size_),
      keep_(other.keep_),
      unnamed_(other.unnamed_) {}

PartFile& PartFile::operator=(PartFile&& other) noexcept {
  if (this != &other) {
    discard();
    dir_fd_ = other.dir_fd_;
    name_ = std::exchange(other.name_, {});
    fd_ = std::move(other.fd_);
    size_ = other.size_;
    keep_ = other.keep_;
    unnamed_ = other.unnamed_;
  }
  return *this;
}

PartFile::~PartFile() {
  discard();
}

void PartFile::discard() noexcept {
  fd_ = UniqueFd();  // an unnamed file is freed here
  if (!name_.empty() && !keep_ && !unnamed_)
    ::unlinkat(dir_fd_, name_.c_str(), 0);
  name_.clear();
  unnamed_ = false;
}

std::error_code PartFile::write(std::string_view data) noexcept {
  while (!data.empty()) {
    const auto n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  return {};
}

std::error_code PartFile::truncate() noexcept {
  if (::ftruncate(fd_.get(), 0) != 0 || ::lseek(fd_.get(), 0, SEEK_SET) < 0)
    return last_error();
  size_ = 0;
  return {};
}

std::string PartFile::read_head(std::size_t max_bytes) const {
  std::string head(max_bytes, '\0');
  const auto n = ::pread(fd_.get(), head.data(), head.size(), 0);
  head.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return head;
}

OutputDir::OutputDir(const std::filesystem::path& path) : path_(path.empty() ? "." : path) {
  std::error_code error;
  std::filesystem::create_directories(path_, error);
  if (error)
    throw std::system_error(error, "cannot create output directory " + path_.string());
  fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd_)
    throw std::system_error(last_error(), "cannot open output directory " + path_.string());
  // An unnamed file can be linked in without /proc only where linkat(AT_EMPTY_PATH) is allowed, which
  // shows only at the first link; without /proc (a bare container) part files are the safe choice.
  if (::access("/proc/self/fd", X_OK) != 0)
    no_tmpfile_.store(true, std::memory_order_relaxed);
}

bool OutputDir::exists(const std::string& name) const {
  struct stat st {};
  return ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

UniqueFd OutputDir::open_read(const std::string& name, std::error_code& error) const {
  error.clear();
  UniqueFd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    error = last_error();
    return {};
  }
  if (!S_ISREG(st.st_mode)) {
    error = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  return fd;
}

bool OutputDir::stat(const std::string& name, struct stat& st) const noexcept {
  return ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

DiskTime OutputDir::now() const {
  struct stat st {};
  const UniqueFd probe(::openat(fd_.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (probe && ::fstat(probe.get(), &st) == 0)
    return {st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
  // Files are stamped from the coarse clock, which lags the precise one by up to a tick: reading the
  // coarse one too keeps "made after now()" meaning ctime >= now().
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return {ts.tv_sec, ts.tv_nsec};
}

EntryAge OutputDir::age(const std::string& name, DiskTime since) const {
  struct stat st {};
  if (::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT || errno == ENOTDIR ? EntryAge::Absent : EntryAge::Newer;  // unknown: taken
  return DiskTime{st.st_ctim.tv_sec, st.st_ctim.tv_nsec} >= since ? EntryAge::Newer : EntryAge::Older;
}

PartFile OutputDir::open_part(const std::string& name, bool resume, std::error_code& error) const {
  const std::string part_name = name + ".part";
  error.clear();
  // Every part file is held under an exclusive flock for as long as it is written, so another writer
  // (a second Downloader on this directory, or another imgdl process) can tell a live part file from a
  // stale one, and never truncates, appends to or unlinks the first writer's.
  for (int attempt = 0; attempt < 4; ++attempt) {
    // A new part file appears under its name already locked: an unnamed file is locked, then linked
    // there, so no other writer ever finds it unlocked and takes it as stale.
    if (!no_tmpfile_.load(std::memory_order_relaxed)) {
      UniqueFd unnamed(::openat(fd_.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644));
      if (unnamed && ::flock(unnamed.get(), LOCK_EX | LOCK_NB) == 0) {
        if (link_unnamed(unnamed.get(), part_name))
          return PartFile(fd_.get(), part_name, std::move(unnamed), 0);
        if (errno != EEXIST)
          no_tmpfile_.store(true, std::memory_order_relaxed);  // no way to link it: create it by name
      } else if (!unnamed && (errno == EOPNOTSUPP || errno == EISDIR)) {
        no_tmpfile_.store(true, std::memory_order_relaxed);
      }
    }
    UniqueFd fresh(
        ::openat(fd_.get(), part_name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_EXCL, 0644));
    if (fresh) {
      // Another writer may open the new file and take its lock before we do (it then sees a stale
      // part file and makes it its own): the file is theirs, and this transfer is refused as busy.
      if (::flock(fresh.get(), LOCK_EX | LOCK_NB) != 0) {
        error = std::make_error_code(std::errc::device_or_resource_busy);
        return {};
      }
      return PartFile(fd_.get(), part_name, std::move(fresh), 0);
    }
    if (errno != EEXIST)
      break;
    UniqueFd existing(::openat(fd_.get(), part_name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!existing) {
      if (errno == ENOENT)
        continue;  // gone meanwhile: create it afresh
      // A symlink planted at the part name: never written through. Without resume, remove the link
      // itself (not its target) and create a real file; with resume there is nothing to continue.
      if (errno == ELOOP && !resume && ::unlinkat(fd_.get(), part_name.c_str(), 0) == 0)
        continue;
      break;
    }
    if (::flock(existing.get(), LOCK_EX | LOCK_NB) != 0) {
      error = std::make_error_code(std::errc::device_or_resource_busy);
      return {};
    }
    // Locked: but the entry may have been published (renamed away) or replaced between our open and
    // our lock. Only if it still names this very inode is it a stale part file, and ours now.
    struct stat held {};
    struct stat named {};
    if (::fstat(existing.get(), &held) != 0 || !S_ISREG(held.st_mode)) {
      error = std::make_error_code(std::errc::invalid_argument);
      return {};
    }
    if (::fstatat(fd_.get(), part_name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 ||
        named.st_dev != held.st_dev || named.st_ino != held.st_ino)
      continue;
    if (resume) {
      if (::lseek(existing.get(), 0, SEEK_END) < 0)
        break;
      return PartFile(fd_.get(), part_name, std::move(existing), static_cast<std::uint64_t>(held.st_size));
    }
    if (::ftruncate(existing.get(), 0) != 0)
      break;  // a stale part from an interrupted run: start over
    return PartFile(fd_.get(), part_name, std::move(existing), 0);
  }
  if (!error)
    error = last_error();
  return {};
}

PartFile OutputDir::open_unnamed(const std::string& for_name, std::error_code& error) const {
  error.clear();
  if (no_tmpfile_.load(std::memory_order_relaxed))
    return {};
  UniqueFd fd(::openat(fd_.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644));
  if (!fd) {
    // EOPNOTSUPP: a filesystem without O_TMPFILE; EISDIR: a kernel that does not know the flag.
    if (errno == EOPNOTSUPP || errno == EISDIR) {
      no_tmpfile_.store(true, std::memory_order_relaxed);
      return {};
    }
    error = last_error();
    return {};
  }
  return PartFile(fd_.get(), for_name, std::move(fd), 0, true);
}

bool OutputDir::link_unnamed(int file_fd, const std::string& name) const noexcept {
  // AT_EMPTY_PATH links the descriptor itself: allowed with CAP_DAC_READ_SEARCH, and since Linux 6.10
  // for a file this process opened. Otherwise (ENOENT) go through /proc, as open(2) documents.
  if (!no_empty_path_.load(std::memory_order_relaxed)) {
    if (::linkat(file_fd, "", fd_.get(), name.c_str(), AT_EMPTY_PATH) == 0)
      return true;
    if (errno != ENOENT && errno != EPERM)
      return false;
    no_empty_path_.store(true, std::memory_order_relaxed);
  }
  char proc_path[32];
  std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", file_fd);
  return ::linkat(AT_FDCWD, proc_path, fd_.get(), name.c_str(), AT_SYMLINK_FOLLOW) == 0;
}

std::string OutputDir::publish(PartFile& part, const std::string& name, OnExists on_exists,
                               const std::function<bool(const std::string&)>& reserved,
                               std::error_code& error, std::optional<DiskTime> kept_since) const {
  error.clear();
  if (on_exists == OnExists::Overwrite) {
    if (part.unnamed()) {
      error = std::make_error_code(std::errc::invalid_argument);  // a link cannot replace an entry
      return {};
    }
    // A file this run made is never replaced: a URL far apart in the list with the same name moves on.
    for (int n = 0; n < 100000; ++n) {
      const std::string candidate = n == 0 ? name : next_free_name(name, n);
      if (n > 0 && reserved && reserved(candidate))
        continue;
      if (kept_since && age(candidate, *kept_since) == EntryAge::Newer)
        continue;
      if (::renameat(fd_.get(), part.name().c_str(), fd_.get(), candidate.c_str()) != 0) {
        error = last_error();
        return {};
      }
      part.released();
      return candidate;
    }
    error = std::make_error_code(std::errc::file_exists);
    return {};
  }
  for (int n = 0;; ++n) {
    const std::string candidate = n == 0 ? name : next_free_name(name, n);
    if (n > 0 && reserved && reserved(candidate))
      continue;
    // RENAME_NOREPLACE, like a link: an existing file (or symlink) under the candidate name is never
    // replaced.
    if (part.unnamed() ? link_unnamed(part.fd(), candidate)
                       : ::renameat2(fd_.get(), part.name().c_str(), fd_.get(), candidate.c_str(),
                                     RENAME_NOREPLACE) == 0) {
      part.released();
      return candidate;
    }
    if (errno != EEXIST || n >= 100000) {
      error = last_error();
      return {};
    }
  }
}

void OutputDir::publish_exactly(PartFile& part, const std::string& name, std::error_code& error) const {
  error.clear();
  if (part.unnamed()
          ? link_unnamed(part.fd(), name)
          : ::renameat2(fd_.get(), part.name().c_str(), fd_.get(), name.c_str(), RENAME_NOREPLACE) == 0) {
    part.released();
    return;
  }
  error = last_error();
}

}  // namespace imgdl::detail
