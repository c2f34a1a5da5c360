#include "run_journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "output_dir.hpp"
#include "result_json.hpp"
#include "sha256.hpp"

namespace imgdl {

using detail::JournalState;

bool is_transient_failure(const DownloadResult& r) noexcept {
  if (r.status != DownloadStatus::Failed)
    return false;
  switch (r.error) {
    case ErrorKind::Dns:
    case ErrorKind::Connect:
    case ErrorKind::Tls:
    case ErrorKind::Timeout:
    case ErrorKind::Truncated:
    case ErrorKind::Network:
    case ErrorKind::CorruptImage:
    case ErrorKind::Write:
    case ErrorKind::HostUnreachable:
    case ErrorKind::Cancelled:
      return true;
    case ErrorKind::HttpStatus:
      return r.http_status == 408 || r.http_status == 425 || r.http_status == 429 || r.http_status >= 500;
    case ErrorKind::None:
    case ErrorKind::InvalidUrl:
    case ErrorKind::TooManyRedirects:
    case ErrorKind::ForbiddenRedirect:
    case ErrorKind::TooLarge:
    case ErrorKind::NotImage:
    case ErrorKind::Filtered:
    case ErrorKind::Empty:
      return false;
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> journal_settings(const DownloadOptions& o) {
  static constexpr const char* on_exists_names[] = {"rename", "skip", "overwrite", "resume"};
  std::ostringstream aspect;
  aspect << o.max_aspect;
  return {
      {"on_exists", on_exists_names[static_cast<int>(o.on_exists)]},
      {"require_image", o.require_image ? "true" : "false"},
      {"max_file_size", std::to_string(o.max_file_size)},
      {"min_width", std::to_string(o.min_width)},
      {"min_height", std::to_string(o.min_height)},
      {"max_pixels", std::to_string(o.max_pixels)},
      {"max_aspect", aspect.str()},
  };
}

namespace detail {
namespace {

using Json = nlohmann::ordered_json;

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string crc_hex(std::string_view text) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed very long text in pieces.
  while (!text.empty()) {
    const auto n = static_cast<uInt>(std::min<std::size_t>(text.size(), 1U << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(text.data()), n);
    text.remove_prefix(n);
  }
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", crc & 0xffffffffUL);
  return hex;
}

std::string framed(const std::string& json) {
  return crc_hex(json) + " " + json + "\n";
}

template <class Enum>
std::optional<Enum> enum_from(std::string_view name, int count) {
  for (int i = 0; i < count; ++i) {
    if (to_string(static_cast<Enum>(i)) == name)
      return static_cast<Enum>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string encode_journal_record(std::size_t position, const DownloadResult& r, std::string_view extra) {
  Json j = Json::object({{"position", position}});
  append_result_fields(j, r);
  if (!extra.empty()) {
    Json parsed = Json::parse(extra, nullptr, false);
    if (!parsed.is_discarded())
      j["extra"] = std::move(parsed);
  }
  return framed(dump(j));
}

std::string encode_journal_header(std::string_view id) {
  return framed(dump(Json{{"imgdl_journal", 1}, {"id", std::string(id)}}));
}

DecodedLine decode_journal_line(std::string_view line) {
  DecodedLine out;
  if (line.size() < 10 || line[8] != ' ')
    return out;
  const std::string_view json_text = line.substr(9);
  if (crc_hex(json_text) != line.substr(0, 8))
    return out;
  const Json j = Json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return out;
  try {
    if (j.contains("imgdl_journal")) {
      out.header = out.valid = j.at("imgdl_journal").get<int>() == 1;
      return out;
    }
    JournalEntry& e = out.entry;
    DownloadResult& r = e.result;
    e.position = j.at("position").get<std::size_t>();
    if (e.position >= max_journal_position)
      return out;
    r.url = j.at("url").get<std::string>();
    r.path = j.at("path").get<std::string>();
    const auto status = enum_from<DownloadStatus>(j.at("status").get<std::string>(), 4);
    const auto error = enum_from<ErrorKind>(j.at("error").get<std::string>(),
                                            static_cast<int>(ErrorKind::HostUnreachable) + 1);
    const auto type =
        enum_from<ImageType>(j.at("image_type").get<std::string>(), static_cast<int>(ImageType::Svg) + 1);
    if (!status || !error || !type)
      return out;
    r.status = *status;
    r.error = *error;
    r.image_type = *type;
    r.http_status = j.at("http_status").get<long>();
    r.http_version = j.at("http_version").get<std::string>();
    r.bytes = j.at("bytes").get<std::uint64_t>();
    r.width = j.at("width").get<std::uint32_t>();
    r.height = j.at("height").get<std::uint32_t>();
    r.orientation = j.at("orientation").get<int>();
    r.sha256 = j.at("sha256").get<std::string>();
    r.attempts = j.at("attempts").get<int>();
    r.elapsed = std::chrono::round<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(j.at("elapsed_s").get<double>()));
    r.message = j.at("message").get<std::string>();
    if (const auto it = j.find("extra"); it != j.end())
      e.extra = dump(*it);
  } catch (const Json::exception&) {
    return out;
  }
  out.valid = true;
  return out;
}

PeekedLine peek_journal_line(std::string_view line) {
  PeekedLine out;
  if (line.size() < 10 || line[8] != ' ')
    return out;
  const std::string_view json = line.substr(9);
  if (crc_hex(json) != line.substr(0, 8))
    return out;
  auto slow = [&] {  // anything laid out otherwise: the whole parse decides
    const DecodedLine decoded = decode_journal_line(line);
    PeekedLine p;
    p.valid = decoded.valid;
    p.header = decoded.header;
    p.position = decoded.entry.position;
    p.state = journal_state_of(decoded.entry.result);
    return p;
  };
  // Keys are written in a fixed order, and ",\"" cannot occur inside a JSON string (its quote would be
  // escaped), so the first `,"key":` is the key's own.
  constexpr std::string_view lead = "{\"position\":";
  if (!json.starts_with(lead))
    return slow();
  auto number_at = [&json](std::size_t at, auto& value) {
    const auto [end, ec] = std::from_chars(json.data() + at, json.data() + json.size(), value);
    return ec == std::errc() && end != json.data() + json.size();
  };
  auto text_after = [&json](std::string_view key) -> std::optional<std::string_view> {
    const std::size_t at = json.find(key);
    if (at == std::string_view::npos)
      return std::nullopt;
    const std::size_t from = at + key.size();
    const std::size_t to = json.find('"', from);
    if (to == std::string_view::npos)
      return std::nullopt;
    return json.substr(from, to - from);
  };
  DownloadResult r;
  if (!number_at(lead.size(), out.position) || out.position >= max_journal_position)
    return slow();
  const auto status = text_after(",\"status\":\"");
  const auto error = text_after(",\"error\":\"");
  const std::size_t http = json.find(",\"http_status\":");
  if (!status || !error || http == std::string_view::npos ||
      !number_at(http + std::string_view(",\"http_status\":").size(), r.http_status))
    return slow();
  const auto s = enum_from<DownloadStatus>(*status, 4);
  const auto e = enum_from<ErrorKind>(*error, static_cast<int>(ErrorKind::HostUnreachable) + 1);
  if (!s || !e)
    return slow();
  r.status = *s;
  r.error = *e;
  out.state = journal_state_of(r);
  out.valid = true;
  return out;
}

JournalState journal_state_of(const DownloadResult& r) noexcept {
  switch (r.status) {
    case DownloadStatus::Ok:
    case DownloadStatus::Skipped:
      return JournalState::Done;
    case DownloadStatus::Failed:
      return is_transient_failure(r) ? JournalState::TransientFailure : JournalState::PermanentFailure;
    case DownloadStatus::Cancelled:
      return JournalState::None;
  }
  return JournalState::None;
}

void PositionStates::set(std::size_t position, JournalState state) {
  const std::size_t byte = position / 4;
  if (byte >= bits_.size())
    bits_.resize(std::max(byte + 1, bits_.size() + bits_.size() / 2), 0);
  const unsigned shift = static_cast<unsigned>(position % 4) * 2;
  bits_[byte] =
      static_cast<std::uint8_t>((bits_[byte] & ~(3U << shift)) | (static_cast<unsigned>(state) << shift));
  size_ = std::max(size_, position + 1);
}

JournalState PositionStates::get(std::size_t position) const noexcept {
  const std::size_t byte = position / 4;
  if (byte >= bits_.size())
    return JournalState::None;
  return static_cast<JournalState>((bits_[byte] >> (static_cast<unsigned>(position % 4) * 2)) & 3U);
}

}  // namespace detail

// ----------------------------------------------------------------------------------------- the journal

namespace {

using Clock = std::chrono::steady_clock;
using detail::PositionStates;

constexpr std::size_t write_threshold = std::size_t{1} << 20;
constexpr auto write_interval = std::chrono::seconds(1);
constexpr auto sync_interval = std::chrono::seconds(2);

using detail::UniqueFd;

[[noreturn]] void throw_io(const std::string& what, const std::filesystem::path& file, int err) {
  throw JournalError(JournalError::Kind::Io,
                     "cannot " + what + " '" + file.string() + "': " + std::strerror(err));
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 100 || id.front() == '.')
    return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// Reads all of `fd` from offset 0 in pieces, handing each whole line (without '\n') to `line`, which
/// returns false to stop. Returns the offset just after the last line accepted.
template <class Line>
std::uint64_t read_lines(int fd, const std::filesystem::path& file, Line&& line) {
  std::string pending;
  std::vector<char> buffer(std::size_t{1} << 20);
  std::uint64_t consumed = 0;  // file offset of pending's first byte
  for (;;) {
    const ssize_t n =
        ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(consumed + pending.size()));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw_io("read", file, errno);
    }
    if (n == 0)
      return consumed;
    pending.append(buffer.data(), static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (!line(std::string_view(pending).substr(start, nl - start)))
        return consumed + start;
    }
    consumed += start;
    pending.erase(0, start);
  }
}

std::optional<nlohmann::ordered_json> read_json_file(int dir_fd, const std::string& name) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0)
    return std::nullopt;
  std::string text;
  char buffer[1 << 14];
  for (ssize_t n; (n = ::read(fd.get(), buffer, sizeof buffer)) > 0;)
    text.append(buffer, static_cast<std::size_t>(n));
  auto json = nlohmann::ordered_json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    return std::nullopt;
  return json;
}

}  // namespace

struct RunJournal::Impl {
  JournalOptions options;
  std::filesystem::path dir_path;
  UniqueFd dir;
  UniqueFd file;
  PositionStates states;
  std::uint64_t earlier_end = 0;  // where this run's records begin

  mutable std::mutex mutex;  // guards the rest
  std::string buffer;
  Clock::time_point last_write = Clock::now();
  Clock::time_point last_sync = Clock::now();
  bool unsynced = false;
  std::string error;

  bool is_done(JournalState s) const noexcept {
    return s == JournalState::Done || s == JournalState::PermanentFailure ||
           (s == JournalState::TransientFailure && !options.retry_failed);
  }

  void fail(const std::string& what) {
    if (error.empty())
      error = "cannot " + what + " '" + (dir_path / ("journal-" + options.id)).string() +
              "': " + std::strerror(errno);
    buffer.clear();
  }

  // Under the mutex.
  void write_out() {
    if (!error.empty()) {
      buffer.clear();
      return;
    }
    if (!buffer.empty()) {
      if (!write_all(file.get(), buffer))
        return fail("write");
      buffer.clear();
      unsynced = true;
    }
    last_write = Clock::now();
  }
  void sync() {
    if (unsynced && error.empty() && ::fdatasync(file.get()) != 0)
      return fail("sync");
    unsynced = false;
    last_sync = Clock::now();
  }

  void write_manifest() {
    nlohmann::ordered_json settings = nlohmann::ordered_json::object();
    for (const auto& [name, value] : options.manifest.settings)
      settings[name] = value;
    const nlohmann::ordered_json manifest = {{"imgdl_manifest", 1},
                                             {"id", options.id},
                                             {"input_checksum", options.manifest.input_checksum},
                                             {"settings", settings}};
    const std::string name = "manifest-" + options.id + ".json";
    const std::string temp = name + ".new";
    const std::filesystem::path shown = dir_path / name;
    ::unlinkat(dir.get(), temp.c_str(), 0);
    UniqueFd out(
        ::openat(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (out.get() < 0)
      throw_io("write", shown, errno);
    if (!write_all(out.get(),
                   manifest.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n") ||
        ::fsync(out.get()) != 0 || ::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0) {
      const int err = errno;
      ::unlinkat(dir.get(), temp.c_str(), 0);
      throw_io("write", shown, err);
    }
  }

  /// Empty when `manifest` matches the options', else what differs, in words.
  std::string differences(const nlohmann::ordered_json& manifest) const {
    try {
      return differences_or_throw(manifest);
    } catch (const nlohmann::ordered_json::exception&) {
      return "its manifest is not one imgdl wrote";
    }
  }
  std::string differences_or_throw(const nlohmann::ordered_json& manifest) const {
    std::string diff;
    auto add = [&diff](const std::string& text) { diff += (diff.empty() ? "" : "; ") + text; };
    const auto checksum = manifest.value("input_checksum", std::string());
    if (checksum != options.manifest.input_checksum)
      add("the list is not the same (its checksum changed)");
    const auto settings = manifest.value("settings", nlohmann::ordered_json::object());
    for (const auto& [name, value] : options.manifest.settings) {
      const auto it = settings.find(name);
      const std::string was = it != settings.end() && it->is_string() ? it->get<std::string>() : "(unset)";
      if (was != value)
        add(name + " was " + was + ", now " + value);
    }
    for (const auto& item : settings.items()) {
      // Not a structured binding: clang 14 (the fuzzers' compiler) cannot capture one in a lambda.
      const std::string& name = item.key();
      const auto& value = item.value();
      const bool known = std::any_of(options.manifest.settings.begin(), options.manifest.settings.end(),
                                     [&](const auto& s) { return s.first == name; });
      if (!known)
        add(name + " was " + (value.is_string() ? value.get<std::string>() : value.dump()) + ", now unset");
    }
    return diff;
  }
};

RunJournal::RunJournal(JournalOptions options) : impl_(std::make_unique<Impl>()) {
  if (!valid_id(options.id))
    throw std::invalid_argument("journal id '" + options.id +
                                "' must be letters, digits, '.', '_' or '-', not starting with '.'");
  Impl& m = *impl_;
  m.options = std::move(options);
  m.dir_path = m.options.output_dir / ".imgdl";
  path_ = m.dir_path / ("journal-" + m.options.id);

  std::error_code ec;
  std::filesystem::create_directories(m.options.output_dir, ec);
  if (ec)
    throw JournalError(JournalError::Kind::Io,
                       "cannot create '" + m.options.output_dir.string() + "': " + ec.message());
  UniqueFd out_dir(::open(m.options.output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (out_dir.get() < 0)
    throw_io("open", m.options.output_dir, errno);
  if (::mkdirat(out_dir.get(), ".imgdl", 0755) != 0 && errno != EEXIST)
    throw_io("create", m.dir_path, errno);
  m.dir = UniqueFd(::openat(out_dir.get(), ".imgdl", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (m.dir.get() < 0)
    throw_io("open", m.dir_path, errno);
  const std::string name = "journal-" + m.options.id;
  m.file = UniqueFd(
      ::openat(m.dir.get(), name.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (m.file.get() < 0)
    throw_io("open", path_, errno);
  if (::flock(m.file.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw JournalError(JournalError::Kind::Locked,
                         "'" + path_.string() +
                             "' is in use by another imgdl run on this output directory; wait for it to end, "
                             "or use another output directory");
    throw_io("lock", path_, errno);
  }

  // Read every whole, valid record; what follows the last one is a torn tail.
  bool header_seen = false;
  std::size_t records = 0;
  const std::uint64_t good_end = read_lines(m.file.get(), path_, [&](std::string_view line) {
    const auto peeked = detail::peek_journal_line(line);
    if (!peeked.valid || (peeked.header != !header_seen))  // the header comes first, and only there
      return false;
    if (peeked.header) {
      header_seen = true;
      return true;
    }
    m.states.set(peeked.position, peeked.state);
    ++records;
    return true;
  });
  struct stat st {};
  if (::fstat(m.file.get(), &st) != 0)
    throw_io("read", path_, errno);
  dropped_bytes_ = static_cast<std::uint64_t>(st.st_size) - good_end;

  bool start_over = m.options.force || records == 0;
  if (!start_over) {
    const auto manifest = read_json_file(m.dir.get(), "manifest-" + m.options.id + ".json");
    const std::filesystem::path manifest_path = m.dir_path / ("manifest-" + m.options.id + ".json");
    const std::string diff =
        manifest ? m.differences(*manifest) : std::string("its manifest is missing or unreadable");
    if (!diff.empty())
      throw JournalError(
          JournalError::Kind::Mismatch,
          "'" + path_.string() + "' records an earlier run that differs from this one: " + diff + " (see '" +
              manifest_path.string() +
              "'); rerun with --force to start a new journal, or use another output directory");
  }
  if (start_over) {
    if (::ftruncate(m.file.get(), 0) != 0)
      throw_io("truncate", path_, errno);
    m.states = PositionStates();
    records = 0;
    dropped_bytes_ = 0;
    m.write_manifest();
    if (!write_all(m.file.get(), detail::encode_journal_header(m.options.id)) ||
        ::fdatasync(m.file.get()) != 0 || ::fsync(m.dir.get()) != 0)
      throw_io("write", path_, errno);
    m.earlier_end = static_cast<std::uint64_t>(::lseek(m.file.get(), 0, SEEK_END));
  } else {
    if (dropped_bytes_ > 0 && ::ftruncate(m.file.get(), static_cast<off_t>(good_end)) != 0)
      throw_io("truncate", path_, errno);
    m.earlier_end = good_end;
  }
  earlier_records_ = records;
  for (std::size_t p = 0; p < m.states.size(); ++p) {
    const JournalState state = m.states.get(p);
    if (state != JournalState::None && m.options.still_done && !m.options.still_done(p)) {
      m.states.set(p, JournalState::None);
      continue;
    }
    done_count_ += m.is_done(state);
  }
}

RunJournal::~RunJournal() {
  flush();
}

bool RunJournal::done(std::size_t position) const noexcept {
  return impl_->is_done(impl_->states.get(position));
}

bool RunJournal::retrying(std::size_t position) const noexcept {
  return impl_->options.retry_failed && impl_->states.get(position) == JournalState::TransientFailure;
}

void RunJournal::for_each_done(const std::function<void(const JournalEntry&)>& fn) const {
  const Impl& m = *impl_;
  if (done_count_ == 0)
    return;
  // Backwards, so each position's latest record comes first; `seen` marks positions already passed.
  std::vector<bool> seen(m.states.size(), false);
  std::string block;  // file[end, end + block.size()): whole lines, but perhaps the first
  std::vector<char> buffer(std::size_t{1} << 20);
  std::uint64_t end = m.earlier_end;
  while (end > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(end, buffer.size()));
    const std::uint64_t from = end - n;
    if (!detail::read_exactly(m.file.get(), buffer.data(), n, from))
      throw_io("read", path_, errno != 0 ? errno : EIO);
    block.insert(0, buffer.data(), n);
    end = from;
    // Lines wholly inside the block: each starts after a '\n' in it (or at offset 0 of the file).
    std::size_t line_end = block.size();  // one past the '\n' ending the line being looked at
    for (;;) {
      const std::size_t before = line_end >= 2 ? block.rfind('\n', line_end - 2) : std::string::npos;
      if (before == std::string::npos && end > 0)
        break;  // the line may begin before the block
      const std::size_t line_start = before == std::string::npos ? 0 : before + 1;
      const std::string_view line = std::string_view(block).substr(line_start, line_end - 1 - line_start);
      // Parsed whole only when reported: an older record of a position, or one not done, costs a peek.
      const auto peeked = detail::peek_journal_line(line);
      if (peeked.valid && !peeked.header && peeked.position < seen.size() && !seen[peeked.position]) {
        seen[peeked.position] = true;
        if (done(peeked.position)) {
          const auto decoded = detail::decode_journal_line(line);
          if (decoded.valid && !decoded.header)
            fn(decoded.entry);
        }
      }
      line_end = line_start;
      if (line_end == 0)
        break;
    }
    block.resize(line_end);
  }
}

void RunJournal::record(std::size_t position, const DownloadResult& result, std::string_view extra) {
  if (result.status == DownloadStatus::Cancelled)
    return;
  std::string line = detail::encode_journal_record(position, result, extra);
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  if (!m.error.empty())
    return;
  m.buffer += line;
  const auto now = Clock::now();
  if (m.buffer.size() >= write_threshold || now - m.last_write >= write_interval)
    m.write_out();
  if (now - m.last_sync >= sync_interval)
    m.sync();
}

void RunJournal::flush() {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  m.write_out();
  m.sync();
}

std::string RunJournal::error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->error;
}

std::string RunJournal::checksum_file(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    throw_io("read", file, errno);
  detail::Sha256 hash;
  std::vector<char> buffer(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      throw_io("read", file, errno);
    if (n == 0)
      break;
    hash.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
  }
  return "sha256:" + hash.hex_digest();
}

std::string RunJournal::checksum_text(std::string_view text) {
  return "sha256:" + detail::Sha256::of(text);
}

}  // namespace imgdl
