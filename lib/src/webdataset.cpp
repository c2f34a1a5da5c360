#include "imgdl/webdataset.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "image_type.hpp"
#include "output_dir.hpp"

namespace imgdl {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kBlock = 512;

/// Writes `value` as `width - 1` octal digits and a NUL, or for sizes that do not fit, as GNU tar's
/// base-256 (a leading 0x80 byte, then big-endian binary), which GNU tar and Python's tarfile read.
void put_number(char* field, std::size_t width, std::uint64_t value) {
  if (value < (std::uint64_t{1} << (3 * (width - 1)))) {
    std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                  static_cast<unsigned long long>(value));
    return;
  }
  field[0] = static_cast<char>(0x80);
  for (std::size_t i = width - 1; i > 0; --i, value >>= 8)
    field[i] = static_cast<char>(value & 0xff);
}

/// A ustar header for a regular file `name` (short: keys and extensions) of `size` bytes.
std::string tar_header(std::string_view name, std::uint64_t size, std::time_t mtime) {
  std::string h(kBlock, '\0');
  name.copy(h.data(), std::min<std::size_t>(name.size(), 99));
  put_number(&h[100], 8, 0644);
  put_number(&h[108], 8, 0);
  put_number(&h[116], 8, 0);
  put_number(&h[124], 12, size);
  put_number(&h[136], 12, static_cast<std::uint64_t>(mtime));
  h[156] = '0';
  std::string_view(
      "ustar\0"
      "00",
      8)
      .copy(&h[257], 8);
  std::memset(&h[148], ' ', 8);  // the checksum counts its own field as spaces
  unsigned sum = 0;
  for (const char c : h)
    sum += static_cast<unsigned char>(c);
  std::snprintf(&h[148], 7, "%06o", sum);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

/// A number field as put_number() writes it (or as other tars pad it: spaces, NULs).
std::uint64_t get_number(const char* field, std::size_t width) {
  std::uint64_t value = 0;
  if ((static_cast<unsigned char>(field[0]) & 0x80) != 0) {
    for (std::size_t i = 1; i < width; ++i)
      value = (value << 8) | static_cast<unsigned char>(field[i]);
    return value;
  }
  for (std::size_t i = 0; i < width; ++i) {
    if (field[i] >= '0' && field[i] <= '7')
      value = value * 8 + static_cast<std::uint64_t>(field[i] - '0');
    else if (value != 0 || (field[i] != ' ' && field[i] != '\0'))
      break;
  }
  return value;
}

std::system_error shard_error(std::error_code code, const std::string& what) {
  return std::system_error(code, what);
}

std::error_code errno_code(int error) {
  return {error, std::generic_category()};
}

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

}  // namespace

struct WebDatasetWriter::Impl {
  struct Shard {
    detail::PartFile part;
    std::size_t results = 0;
    std::size_t ok = 0;
    std::size_t failed = 0;
    std::size_t cancelled = 0;  // a run stopped: the shard is not whole, never published
    // The rows that left no sample, as offsets in the shard, by error kind (or "missing_file"): their
    // counts are the stats' "errors", and a repair finds a retried row's earlier error here.
    std::map<std::string, std::vector<std::uint32_t>> failed_rows;
    std::uint64_t bytes = 0;  // image bytes
    Clock::time_point started = Clock::now();
    // A repair: the published tar it replaces, its positions still to come, the time spent before.
    bool repair = false;
    struct stat replaces {};
    std::set<std::size_t> awaited;
    double earlier_elapsed_s = 0;
  };

  detail::OutputDir dir;
  std::size_t shard_size;
  std::map<std::size_t, Shard> open;  // by shard number; a few at most (the results in flight)
  std::size_t written = 0;
  std::function<void(std::size_t)> published_fn;
  std::time_t mtime = std::time(nullptr);

  Impl(const std::filesystem::path& path, std::size_t size) : dir(path), shard_size(size) {}

  static std::string shard_name(std::size_t number) {
    char name[32];
    std::snprintf(name, sizeof name, "%05zu", number);
    return name;
  }

  Shard& shard_for(std::size_t number) {
    auto it = open.find(number);
    if (it != open.end())
      return it->second;
    std::error_code error;
    auto part = dir.open_part(shard_name(number) + ".tar", false, error);
    if (error)
      throw shard_error(error, "cannot create shard " + shard_name(number) + ".tar.part");
    Shard shard;
    shard.part = std::move(part);
    return open.emplace(number, std::move(shard)).first->second;
  }

  void write(Shard& shard, std::string_view data) {
    if (auto error = shard.part.write(data))
      throw shard_error(error, "cannot write " + shard.part.name());
  }

  void add_member(Shard& shard, const std::string& name, std::string_view data) {
    write(shard, tar_header(name, data.size(), mtime));
    write(shard, data);
    write(shard, std::string((kBlock - data.size() % kBlock) % kBlock, '\0'));
  }

  /// Copies the downloaded file into the shard; false (nothing written) when it cannot be read.
  bool add_file_member(Shard& shard, const std::string& name, const std::filesystem::path& path) {
    detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return false;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    write(shard, tar_header(name, size, mtime));
    std::string buffer(1 << 18, '\0');
    std::uint64_t copied = 0;
    while (copied < size) {
      const ssize_t n =
          ::read(fd.get(), buffer.data(), std::min<std::uint64_t>(buffer.size(), size - copied));
      if (n <= 0) {
        if (n < 0 && errno == EINTR)
          continue;
        // The file shrank under us: the member's declared size must still be met.
        throw shard_error(std::error_code(n < 0 ? errno : EIO, std::generic_category()),
                          "cannot read " + path.string() + " into " + shard.part.name());
      }
      write(shard, std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      copied += static_cast<std::uint64_t>(n);
    }
    write(shard, std::string((kBlock - size % kBlock) % kBlock, '\0'));
    shard.bytes += size;
    return true;
  }

  void add(std::size_t index, const DownloadResult& r, const std::optional<std::string>& caption,
           const std::vector<std::pair<std::string, std::string>>& columns) {
    const std::size_t number = index / shard_size;
    Shard& shard = shard_for(number);
    const std::string key = WebDatasetWriter::key(index, shard_size);
    if (shard.repair) {
      if (shard.awaited.erase(index) == 0)
        throw std::invalid_argument("position " + std::to_string(index) + " is not one the repair of " +
                                    shard_name(number) + ".tar awaits");
      forget_failure(shard, index);  // this result replaces it
    }
    bool kept = false;
    if (r.status == DownloadStatus::Ok && !r.path.empty()) {
      std::string ext(extension_for(r.image_type));
      if (ext.empty())
        ext = r.path.has_extension() ? r.path.extension().string() : ".bin";
      kept = add_file_member(shard, key + ext, r.path);
    }
    if (kept) {
      nlohmann::ordered_json json{{"key", key},       {"url", r.url},
                                  {"status", "ok"},   {"format", std::string(to_string(r.image_type))},
                                  {"width", r.width}, {"height", r.height},
                                  {"bytes", r.bytes}, {"sha256", r.sha256}};
      if (caption)
        json["caption"] = *caption;
      for (const auto& [name, value] : columns)
        json[name] = value;
      add_member(shard, key + ".json", json.dump());
      if (caption)
        add_member(shard, key + ".txt", *caption);
      ++shard.ok;
    } else if (r.status == DownloadStatus::Cancelled) {
      ++shard.cancelled;
    } else {
      ++shard.failed;
      shard.failed_rows[std::string(r.ok() ? "missing_file" : to_string(r.error))].push_back(
          static_cast<std::uint32_t>(index % shard_size));
    }
    std::error_code ignored;
    if (!r.path.empty() && r.status == DownloadStatus::Ok)
      std::filesystem::remove(r.path, ignored);  // in the shard now (or unreadable): not left behind
    if (shard.repair ? shard.awaited.empty() : ++shard.results == shard_size)
      publish(number);
  }

  void forget_failure(Shard& shard, std::size_t index) const {
    const auto offset = static_cast<std::uint32_t>(index % shard_size);
    for (auto kind = shard.failed_rows.begin(); kind != shard.failed_rows.end(); ++kind) {
      auto& rows = kind->second;
      const auto it = std::find(rows.begin(), rows.end(), offset);
      if (it == rows.end())
        continue;
      rows.erase(it);
      if (rows.empty())
        shard.failed_rows.erase(kind);
      --shard.failed;
      return;
    }
  }

  /// The stats of published shard `number`, or nothing when they cannot be read or list no failures.
  std::optional<nlohmann::json> published_stats(std::size_t number) const {
    std::error_code error;
    const detail::UniqueFd fd = dir.open_read(shard_name(number) + "_stats.json", error);
    struct stat st {};
    if (error || ::fstat(fd.get(), &st) != 0 || st.st_size > (std::int64_t{1} << 30))
      return std::nullopt;
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    if (!detail::read_exactly(fd.get(), text.data(), text.size(), 0))
      return std::nullopt;
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object() || !json.contains("failed_rows") || !json["failed_rows"].is_object())
      return std::nullopt;
    return json;
  }

  /// Copies published tar `name`'s members, up to its end blocks, into `shard`'s part file.
  void copy_members(Shard& shard, const std::string& name) {
    std::error_code error;
    const detail::UniqueFd fd = dir.open_read(name, error);
    if (error)
      throw shard_error(error, "cannot read " + name);
    if (::fstat(fd.get(), &shard.replaces) != 0)
      throw shard_error(errno_code(errno), "cannot read " + name);
    const auto size = static_cast<std::uint64_t>(shard.replaces.st_size);
    std::uint64_t end = 0;  // where the end-of-archive blocks begin
    char header[kBlock];
    while (end + kBlock <= size) {
      if (!detail::read_exactly(fd.get(), header, kBlock, end))
        throw shard_error(errno_code(errno != 0 ? errno : EIO), "cannot read " + name);
      if (std::all_of(header, header + kBlock, [](char c) { return c == '\0'; }))
        break;
      end += kBlock + (get_number(header + 124, 12) + kBlock - 1) / kBlock * kBlock;
    }
    if (end > size)
      throw shard_error(errno_code(EIO), name + " is not a whole tar: its last member is cut short");
    std::string buffer(std::size_t{1} << 18, '\0');
    for (std::uint64_t copied = 0; copied < end;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - copied));
      if (!detail::read_exactly(fd.get(), buffer.data(), n, copied))
        throw shard_error(errno_code(errno != 0 ? errno : EIO), "cannot read " + name);
      write(shard, std::string_view(buffer.data(), n));
      copied += n;
    }
  }

  std::size_t repair(std::size_t number, const std::function<bool(std::size_t)>& retry) {
    if (open.count(number) != 0)
      throw std::invalid_argument("shard " + shard_name(number) + ".tar is already open");
    if (!dir.exists(shard_name(number) + ".tar"))
      throw std::invalid_argument("shard " + shard_name(number) + ".tar is not published");
    const auto stats = published_stats(number);
    if (!stats)
      return 0;
    Shard shard;
    shard.repair = true;
    for (const auto& [kind, offsets] : (*stats)["failed_rows"].items()) {
      if (!offsets.is_array())
        return 0;
      auto& rows = shard.failed_rows[kind];
      for (const auto& offset : offsets) {
        if (!offset.is_number_unsigned() || offset.get<std::size_t>() >= shard_size)
          return 0;  // not a list this writer's shard size made: leave the shard alone
        rows.push_back(offset.get<std::uint32_t>());
        if (retry(number * shard_size + rows.back()))
          shard.awaited.insert(number * shard_size + rows.back());
      }
    }
    if (shard.awaited.empty())
      return 0;
    shard.results = stats->value("count", std::size_t{0});
    shard.ok = stats->value("ok", std::size_t{0});
    shard.failed = stats->value("failed", std::size_t{0});
    shard.bytes = stats->value("bytes", std::uint64_t{0});
    shard.earlier_elapsed_s = stats->value("elapsed_s", 0.0);
    std::error_code error;
    shard.part = dir.open_part(shard_name(number) + ".tar", false, error);
    if (error)
      throw shard_error(error, "cannot create shard " + shard_name(number) + ".tar.part");
    copy_members(shard, shard_name(number) + ".tar");
    const std::size_t awaited = shard.awaited.size();
    open.emplace(number, std::move(shard));
    return awaited;
  }

  /// Renames a part file to `name`: a shard never replaces one already there (`exclusive`), its stats
  /// replace a stale file of a shard that was never published.
  void publish_file(detail::PartFile& part, const std::string& name, bool exclusive) {
    if (::fsync(part.fd()) != 0)
      throw shard_error(std::error_code(errno, std::generic_category()), "cannot sync " + part.name());
    std::error_code error;
    if (exclusive) {
      dir.publish_exactly(part, name, error);
      if (error == std::errc::file_exists)
        throw shard_error(error,
                          name + " was published meanwhile by another writer; this run's copy is dropped");
    } else {
      static const std::function<bool(const std::string&)> none = [](const std::string&) { return false; };
      dir.publish(part, name, OnExists::Overwrite, none, error);
    }
    if (error)
      throw shard_error(error, "cannot publish " + name);
  }

  void publish(std::size_t number) {
    auto node = open.extract(number);
    if (node.empty())
      return;
    Shard& shard = node.mapped();
    if (shard.cancelled > 0)
      return;  // the run stopped before all its URLs ended: dropped (its .part removed), fetched again next
               // run
    write(shard, std::string(2 * kBlock, '\0'));  // the tar's end
    const std::string base = shard_name(number);
    if (shard.repair) {
      struct stat now {};
      if (!dir.stat(base + ".tar", now) || !same_file(now, shard.replaces))
        throw shard_error(
            std::make_error_code(std::errc::file_exists),
            base + ".tar was replaced meanwhile by another writer; this run's repair is dropped");
    }
    publish_file(shard.part, base + ".tar", !shard.repair);
    nlohmann::ordered_json errors = nlohmann::ordered_json::object();
    for (const auto& [kind, rows] : shard.failed_rows)
      errors[kind] = rows.size();
    const nlohmann::ordered_json stats{
        {"shard", base + ".tar"},
        {"count", shard.results},
        {"ok", shard.ok},
        {"failed", shard.failed},
        {"errors", errors},
        {"bytes", shard.bytes},
        {"elapsed_s",
         shard.earlier_elapsed_s + std::chrono::duration<double>(Clock::now() - shard.started).count()}};
    // The failed rows' offsets, one line per kind, written directly: a shard of a list that mostly
    // fails holds thousands of them.
    std::string text = stats.dump(2);
    text.resize(text.size() - 2);  // reopen the object: drop "\n}"
    text += ",\n  \"failed_rows\": {";
    bool first_kind = true;
    for (auto& [kind, rows] : shard.failed_rows) {
      std::sort(rows.begin(), rows.end());
      text += first_kind ? "\n    \"" : ",\n    \"";
      text += kind;  // an error kind's name: letters and '_', nothing to escape
      text += "\": [";
      for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i > 0)
          text += ',';
        text += std::to_string(rows[i]);
      }
      text += ']';
      first_kind = false;
    }
    text += first_kind ? "}\n}\n" : "\n  }\n}\n";
    std::error_code error;
    auto part = dir.open_part(base + "_stats.json", false, error);
    if (error)
      throw shard_error(error, "cannot create " + base + "_stats.json.part");
    if (auto e = part.write(text))
      throw shard_error(e, "cannot write " + part.name());
    publish_file(part, base + "_stats.json", false);
    ++written;
    if (published_fn)
      published_fn(number);
  }

  void finish() {
    while (!open.empty())
      publish(open.begin()->first);
  }

  void abandon() noexcept { open.clear(); }  // each shard's PartFile removes its .part
};

WebDatasetWriter::WebDatasetWriter(std::filesystem::path dir, std::size_t shard_size) {
  if (shard_size == 0)
    throw std::invalid_argument("shard_size must be at least 1");
  impl_ = std::make_unique<Impl>(dir, shard_size);
}

WebDatasetWriter::~WebDatasetWriter() {
  impl_->abandon();
}

void WebDatasetWriter::add(std::size_t index, const DownloadResult& result,
                           const std::optional<std::string>& caption,
                           const std::vector<std::pair<std::string, std::string>>& columns) {
  impl_->add(index, result, caption, columns);
}

void WebDatasetWriter::finish() {
  impl_->finish();
}

void WebDatasetWriter::abandon() noexcept {
  impl_->abandon();
}

std::size_t WebDatasetWriter::repair(std::size_t shard, const std::function<bool(std::size_t)>& retry) {
  return impl_->repair(shard, retry);
}

void WebDatasetWriter::on_published(std::function<void(std::size_t)> fn) {
  impl_->published_fn = std::move(fn);
}

bool WebDatasetWriter::awaits(std::size_t index) const {
  const auto it = impl_->open.find(index / impl_->shard_size);
  return it != impl_->open.end() && it->second.repair && it->second.awaited.count(index) != 0;
}

bool WebDatasetWriter::repairing(std::size_t shard) const {
  const auto it = impl_->open.find(shard);
  return it != impl_->open.end() && it->second.repair;
}

bool WebDatasetWriter::published(std::size_t shard) const {
  return impl_->dir.exists(shard_file_name(shard));
}

bool WebDatasetWriter::published(const std::filesystem::path& dir, std::size_t shard) {
  struct stat st {};
  return ::fstatat(AT_FDCWD, (dir / shard_file_name(shard)).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

std::size_t WebDatasetWriter::shard_size() const noexcept {
  return impl_->shard_size;
}

std::string WebDatasetWriter::shard_file_name(std::size_t shard) {
  return Impl::shard_name(shard) + ".tar";
}

std::string WebDatasetWriter::key(std::size_t index, std::size_t shard_size) {
  // Positions get as many digits as the shard size needs, at least 4 (as img2dataset's keys).
  std::size_t digits = 4;
  for (std::size_t n = shard_size - 1; n >= 10000; n /= 10)
    ++digits;
  auto padded = [](std::size_t value, std::size_t width) {
    std::string s = std::to_string(value);
    return s.size() < width ? std::string(width - s.size(), '0') + s : s;
  };
  return padded(index / shard_size, 5) + padded(index % shard_size, digits);
}

std::size_t WebDatasetWriter::shards_written() const noexcept {
  return impl_->written;
}

}  // namespace imgdl
