// Where a download's bytes live until publication (lib/src/output_dir.hpp), on the systems this
// machine is not: a kernel before 6.10 refuses linkat(AT_EMPTY_PATH) to an unprivileged process (as
// Debian 12's own 6.1 does), and some filesystems refuse O_TMPFILE. This binary defines linkat and
// openat itself, which take precedence over the C library's, so a test can make them refuse.

#include <dlfcn.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <set>
#include <string>

#include "imgdl/downloader.hpp"
#include "test_files.hpp"
#include "test_server.hpp"

using imgdl::Downloader;
using imgdl::DownloadOptions;
using imgdl::DownloadStatus;
using imgdl::test::read_file;
using imgdl::test::TempDir;
using imgdl::test::TestServer;

namespace {

std::atomic<bool> refuse_empty_path_link{false};  // as a kernel before 6.10 does without privilege
std::atomic<bool> refuse_tmpfile{false};          // as a filesystem without O_TMPFILE does
std::atomic<int> proc_links{0};                   // links made through /proc/self/fd
std::atomic<int> part_files_created{0};           // "<name>.part" files created

template <class Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

int forward_openat(int dir_fd, const char* path, int flags, mode_t mode) {
  using OpenAt = int (*)(int, const char*, int, ...);
  static const OpenAt next = real<OpenAt>("openat");
  if ((flags & O_TMPFILE) == O_TMPFILE && refuse_tmpfile.load()) {
    errno = EOPNOTSUPP;
    return -1;
  }
  if ((flags & O_CREAT) != 0 && std::string(path).ends_with(".part"))
    ++part_files_created;
  return next(dir_fd, path, flags, mode);
}

mode_t mode_argument(int flags, va_list args) {
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<mode_t>(va_arg(args, int))
                                                                    : 0;
}

DownloadOptions options_for(const TempDir& dir) {
  DownloadOptions o;
  o.output_dir = dir.path;
  o.max_workers = 4;
  o.retries = 0;
  return o;
}

struct Refusals {
  Refusals(bool empty_path_link, bool tmpfile) {
    refuse_empty_path_link = empty_path_link;
    refuse_tmpfile = tmpfile;
    proc_links = 0;
    part_files_created = 0;
  }
  ~Refusals() {
    refuse_empty_path_link = false;
    refuse_tmpfile = false;
  }
  Refusals(const Refusals&) = delete;
  Refusals& operator=(const Refusals&) = delete;
};

}  // namespace

extern "C" int linkat(int old_dir_fd, const char* old_path, int new_dir_fd, const char* new_path, int flags) {
  using LinkAt = int (*)(int, const char*, int, const char*, int);
  static const LinkAt next = real<LinkAt>("linkat");
  if ((flags & AT_EMPTY_PATH) != 0 && refuse_empty_path_link.load()) {
    errno = ENOENT;
    return -1;
  }
  if (std::string(old_path).starts_with("/proc/self/fd/"))
    ++proc_links;
  return next(old_dir_fd, old_path, new_dir_fd, new_path, flags);
}

extern "C" int openat(int dir_fd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = mode_argument(flags, args);
  va_end(args);
  return forward_openat(dir_fd, path, flags, mode);
}

// On 64-bit Linux, openat64 is the same call; code built with large-file names reaches it instead.
extern "C" int openat64(int dir_fd, const char* path, int flags, ...) __attribute__((alias("openat")));

TEST_CASE("a download is linked in through /proc/self/fd where linkat(AT_EMPTY_PATH) is refused") {
  TestServer server;
  TempDir dir;
  const Refusals refusals(true, false);
  Downloader d(options_for(dir));
  const auto results =
      d.download_all({server.url("/img/a.jpg?size=3000"), server.url("/img/b.png?type=png&size=5000"),
                      server.url("/img/a.jpg?size=4000")});
  for (const auto& r : results)
    REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(proc_links.load() == 3);
  CHECK(part_files_created.load() == 0);
  CHECK(dir.entries() == std::set<std::string>{"a.jpg", "a.1.jpg", "b.png"});
  CHECK(read_file(dir.path / "a.1.jpg") == TestServer::image_bytes("jpeg", 4000, "/img/a.jpg"));
}

TEST_CASE("where the filesystem refuses O_TMPFILE, downloads go through .part files renamed at the end") {
  TestServer server;
  TempDir dir;
  const Refusals refusals(false, true);
  Downloader d(options_for(dir));
  SUBCASE("a good file is published") {
    const auto r = d.submit(server.url("/img/c.jpg?size=3000")).result();
    REQUIRE(r.status == DownloadStatus::Ok);
    CHECK(part_files_created.load() == 1);
    CHECK(dir.entries() == std::set<std::string>{"c.jpg"});
    CHECK(read_file(r.path) == TestServer::image_bytes("jpeg", 3000, "/img/c.jpg"));
  }
  SUBCASE("a cut transfer leaves nothing") {
    const auto r = d.submit(server.url("/truncated/t.jpg?size=50000&sent=20000")).result();
    CHECK(r.status == DownloadStatus::Failed);
    CHECK(part_files_created.load() == 1);
    CHECK(dir.entries().empty());
  }
}

TEST_CASE("with nothing refused, a download needs neither a part file nor /proc") {
  TestServer server;
  TempDir dir;
  const Refusals refusals(false, false);
  Downloader d(options_for(dir));
  const auto r = d.submit(server.url("/img/d.jpg?size=3000")).result();
  REQUIRE(r.status == DownloadStatus::Ok);
  CHECK(part_files_created.load() == 0);
  CHECK(proc_links.load() == 0);
  CHECK(dir.entries() == std::set<std::string>{"d.jpg"});
}
