#pragma once
// Files and directories for the tests that download: a scratch directory per test, and reading back
// what landed in it.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace imgdl::test {

/// A fresh, empty directory under the system temp dir, removed (permissions restored first) when the
/// object goes. Not thread-safe to share between tests running concurrently in one process.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("imgdl-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add,
                                 ignored);
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Every entry below the directory, recursively, as paths relative to it.
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path))
      names.insert(std::filesystem::relative(e.path(), path).string());
    return names;
  }

  std::filesystem::path path;
};

/// A file's whole content ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Whether any `.part` file is left anywhere below `dir`.
inline bool has_part_files(const std::filesystem::path& dir) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.path().extension() == ".part")
      return true;
  return false;
}

}  // namespace imgdl::test
