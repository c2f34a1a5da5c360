#include "output_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "naming.hpp"

namespace imgdl::detail {

namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

PartFile::PartFile(PartFile&& other) noexcept
    : dir_fd_(other.dir_fd_),
      name_(std::exchange(other.name_, {})),
      fd_(std::move(other.fd_)),
      size_(other.size_),
      keep_(other.keep_) {}

PartFile& PartFile::operator=(PartFile&& other) noexcept {
  if (this != &other) {
    discard();
    dir_fd_ = other.dir_fd_;
    name_ = std::exchange(other.name_, {});
    fd_ = std::move(other.fd_);
    size_ = other.size_;
    keep_ = other.keep_;
  }
  return *this;
}

PartFile::~PartFile() { discard(); }

void PartFile::discard() noexcept {
  fd_ = UniqueFd();
  if (!name_.empty() && !keep_) ::unlinkat(dir_fd_, name_.c_str(), 0);
  name_.clear();
}

std::error_code PartFile::write(std::string_view data) noexcept {
  while (!data.empty()) {
    const auto n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  return {};
}

std::error_code PartFile::truncate() noexcept {
  if (::ftruncate(fd_.get(), 0) != 0 || ::lseek(fd_.get(), 0, SEEK_SET) < 0) return last_error();
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
  if (error) throw std::system_error(error, "cannot create output directory " + path_.string());
  fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd_) throw std::system_error(last_error(), "cannot open output directory " + path_.string());
}

bool OutputDir::exists(const std::string& name) const {
  struct stat st {};
  return ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

PartFile OutputDir::open_part(const std::string& name, bool resume, std::error_code& error) const {
  const std::string part_name = name + ".part";
  error.clear();
  if (resume) {
    UniqueFd fd(::openat(fd_.get(), part_name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (fd) {
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || ::lseek(fd.get(), 0, SEEK_END) < 0) {
        error = std::make_error_code(std::errc::invalid_argument);
        return {};
      }
      return PartFile(fd_.get(), part_name, std::move(fd), static_cast<std::uint64_t>(st.st_size));
    }
    if (errno != ENOENT) {
      error = last_error();
      return {};
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    UniqueFd fd(::openat(fd_.get(), part_name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_EXCL, 0644));
    if (fd) return PartFile(fd_.get(), part_name, std::move(fd), 0);
    if (errno != EEXIST || attempt > 0) break;
    // A stale part file from an interrupted run: remove the entry itself (never what a symlink
    // points to) and create afresh.
    if (::unlinkat(fd_.get(), part_name.c_str(), 0) != 0) break;
  }
  error = last_error();
  return {};
}

std::string OutputDir::publish(PartFile& part, const std::string& name, OnExists on_exists,
                               const std::function<bool(const std::string&)>& reserved,
                               std::error_code& error) const {
  error.clear();
  if (on_exists == OnExists::Overwrite) {
    if (::renameat(fd_.get(), part.name().c_str(), fd_.get(), name.c_str()) != 0) {
      error = last_error();
      return {};
    }
    part.released();
    return name;
  }
  for (int n = 0;; ++n) {
    const std::string candidate = n == 0 ? name : next_free_name(name, n);
    if (n > 0 && reserved && reserved(candidate)) continue;
    // RENAME_NOREPLACE: an existing file (or symlink) under the candidate name is never replaced.
    if (::renameat2(fd_.get(), part.name().c_str(), fd_.get(), candidate.c_str(), RENAME_NOREPLACE) == 0) {
      part.released();
      return candidate;
    }
    if (errno != EEXIST || n >= 100000) {
      error = last_error();
      return {};
    }
  }
}

}  // namespace imgdl::detail
