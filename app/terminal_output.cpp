#include "terminal_output.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "format.hpp"

namespace imgdl::app {
namespace {

using namespace std::chrono_literals;

constexpr auto redraw_interval = 100ms;  // at most 10 frames a second
constexpr std::size_t bar_width = 20;
constexpr std::size_t max_transfer_rows = 8;

constexpr std::string_view sgr_red = "\x1b[31m";
constexpr std::string_view sgr_yellow = "\x1b[33m";
constexpr std::string_view sgr_cyan = "\x1b[36m";

std::string pad_left(std::string s, std::size_t width) {
  const std::size_t w = display_width(s);
  return w >= width ? s : std::string(width - w, ' ') + s;
}

std::string pad_right(std::string s, std::size_t width) {
  const std::size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string display_name(const DownloadResult& r) {
  std::string name = r.path.filename().string();
  return name.empty() ? r.url : name;
}

}  // namespace

TerminalOutput::TerminalOutput(std::FILE* out, OutputStyle style) : out_(out), style_(style) {}

TerminalOutput::~TerminalOutput() {
  end_run();
}

void TerminalOutput::begin_run(std::optional<std::size_t> files) {
  end_run();
  {
    std::lock_guard lock(mutex_);
    active_.clear();
    queued_ = finished_ = failed_ = 0;
    expected_ = files;
    finished_bytes_ = 0;
    run_start_ = Clock::now();
    last_draw_ = {};
    live_ = style_.bars;
  }
  if (style_.bars)
    render_thread_ = std::jthread([this](std::stop_token stop) { render_loop(stop); });
}

void TerminalOutput::set_expected(std::optional<std::size_t> files) {
  std::lock_guard lock(mutex_);
  expected_ = files;
}

void TerminalOutput::end_run() {
  {
    std::lock_guard lock(mutex_);
    live_ = false;  // first, so a late print() cannot bring the bars back
  }
  if (render_thread_.joinable()) {
    render_thread_.request_stop();
    render_thread_.join();
  }
  std::lock_guard lock(mutex_);
  write_locked(erase_area_locked());
}

void TerminalOutput::print(std::string_view text) {
  std::lock_guard lock(mutex_);
  std::string chunk = erase_area_locked();
  chunk += text;
  if (chunk.empty() || chunk.back() != '\n')
    chunk += '\n';
  write_locked(chunk);
  // Put the bars back now unless that would redraw faster than the render thread's pace.
  const auto now = Clock::now();
  if (live_ && now - last_draw_ >= redraw_interval)
    draw_locked(now);
}

void TerminalOutput::print_info(std::string_view text) {
  if (style_.summary)
    print(text);
}

void TerminalOutput::print_summary(const Totals& t, bool interrupted) {
  if (!style_.summary)
    return;
  std::string s = interrupted ? "Interrupted: " : "Done: ";
  s += std::to_string(t.ok) + " ok, " + std::to_string(t.skipped) + " skipped, ";
  const std::string failed = std::to_string(t.failed) + " failed";
  s += t.failed > 0 ? paint(sgr_red, failed) : failed;
  if (t.host_unreachable > 0)
    s += " (" + std::to_string(t.host_unreachable) + " of them: host unreachable)";
  if (t.cancelled > 0)
    s += ", " + std::to_string(t.cancelled) + " cancelled";
  if (t.invalid_lines > 0) {
    s += ", " + paint(sgr_red,
                      std::to_string(t.invalid_lines) + " invalid line" + (t.invalid_lines == 1 ? "" : "s"));
  }
  s += " (" + std::to_string(t.urls) + " URL" + (t.urls == 1 ? "" : "s");
  if (t.earlier_run > 0)
    s += ", " + std::to_string(t.earlier_run) + " of them done by an earlier run";
  s += "); ";
  s += format_bytes(t.bytes) + " in " + format_seconds(t.elapsed_s) + " s (" +
       format_rate(static_cast<double>(t.bytes), t.elapsed_s) + ")";
  print(s);
}

std::string TerminalOutput::finished_line(const DownloadResult& r) {
  const std::string name = display_name(r);
  switch (r.status) {
    case DownloadStatus::Ok:
      return name + " was downloaded (" + format_bytes(r.bytes) +
             (r.width != 0 ? ", " + std::to_string(r.width) + "\u00d7" + std::to_string(r.height) + ","
                           : "") +
             " in " + format_seconds(to_seconds(r.elapsed)) + " s)";
    case DownloadStatus::Skipped:
      return name + " skipped" + (r.message.empty() ? std::string() : ": " + r.message);
    case DownloadStatus::Failed:
      return "FAILED " + name + ": " +
             (r.message.empty() ? std::string(to_string(r.error)) : cli_message(r.message));
    case DownloadStatus::Cancelled:
      return name + " cancelled";
  }
  return name;
}

void TerminalOutput::on_queued(const Transfer&) {
  std::lock_guard lock(mutex_);
  ++queued_;
}

// Live transfers are tracked only for what shows them: the bars, and the "cancelled" line of a URL that
// was running. With --quiet neither shows, and the transfer threads skip the lock and the map per file.
bool TerminalOutput::tracks_transfers() const noexcept {
  return style_.bars || style_.lines;
}

void TerminalOutput::on_started(const Transfer& t) {
  if (!tracks_transfers())
    return;
  std::lock_guard lock(mutex_);
  active_[t.index] = Active{std::string(t.name), 0, std::nullopt, Clock::now()};
}

void TerminalOutput::on_progress(const Transfer& t, std::uint64_t bytes, std::optional<std::uint64_t> total) {
  if (!tracks_transfers())
    return;
  std::lock_guard lock(mutex_);
  auto [it, inserted] = active_.try_emplace(t.index);
  if (inserted)
    it->second = Active{std::string(t.name), 0, std::nullopt, Clock::now()};
  it->second.bytes = bytes;
  it->second.total = total;
}

void TerminalOutput::on_retrying(const Transfer& t, int attempt, std::chrono::milliseconds delay,
                                 std::string_view reason) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = active_.find(t.index); it != active_.end()) {
      it->second.bytes = 0;
      it->second.total.reset();
    }
  }
  if (!style_.lines)
    return;
  print(std::string(t.name) + ": attempt " + std::to_string(attempt) + " failed (" + std::string(reason) +
        "), retrying in " + format_seconds(std::chrono::duration<double>(delay).count(), 1) + " s");
}

void TerminalOutput::on_finished(const Transfer& t, const DownloadResult& r) {
  bool was_running = false;
  {
    std::lock_guard lock(mutex_);
    was_running = active_.erase(t.index) > 0;
    ++finished_;
    if (r.status == DownloadStatus::Failed)
      ++failed_;
    if (r.status == DownloadStatus::Ok)
      finished_bytes_ += r.bytes;
  }
  // Lines are formatted only when printed: with --quiet this runs once per file on the transfer loop.
  switch (r.status) {
    case DownloadStatus::Ok:
      if (style_.lines)
        print(finished_line(r));
      break;
    case DownloadStatus::Skipped:
      if (style_.lines)
        print(paint(sgr_yellow, finished_line(r)));
      break;
    case DownloadStatus::Failed:
      if (style_.lines || style_.failures)
        print(paint(sgr_red, "FAILED") + finished_line(r).substr(6));
      break;
    case DownloadStatus::Cancelled:
      // Queued URLs cancelled by Ctrl-C are counted in the summary, not listed one by one.
      if (style_.lines && was_running)
        print(finished_line(r));
      break;
  }
}

void TerminalOutput::render_loop(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    wake_.wait_for(lock, stop, redraw_interval, [] { return false; });
    if (stop.stop_requested())
      break;
    const auto now = Clock::now();
    if (!live_ || now - last_draw_ < redraw_interval)
      continue;
    ++tick_;
    draw_locked(now);
  }
}

void TerminalOutput::write_locked(std::string_view text) {
  if (text.empty())
    return;
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

std::string TerminalOutput::erase_area_locked() {
  if (drawn_lines_ == 0)
    return {};
  // Up to the area's first line, then erase to the end of the screen.
  std::string s = "\r\x1b[" + std::to_string(drawn_lines_) + "A\x1b[J";
  drawn_lines_ = 0;
  return s;
}

void TerminalOutput::draw_locked(Clock::time_point now) {
  std::string chunk = erase_area_locked();
  chunk += frame_locked(now);
  write_locked(chunk);
  last_draw_ = now;
}

std::string TerminalOutput::frame_locked(Clock::time_point now) {
  const std::size_t width = std::max<std::size_t>(columns(), 40) - 1;  // never touch the last column
  const std::size_t max_rows = std::min(max_transfer_rows, std::max<std::size_t>(rows(), 6) - 4);
  std::vector<std::string> lines;

  auto bar = [&](double fraction) {
    const auto filled =
        static_cast<std::size_t>(std::clamp(fraction, 0.0, 1.0) * static_cast<double>(bar_width));
    return "[" + paint(sgr_cyan, std::string(filled, '#')) + std::string(bar_width - filled, '.') + "]";
  };
  auto unknown_bar = [&] {
    // A marker bouncing along the bar: the size is unknown but bytes are moving.
    const std::size_t span = bar_width - 3;
    const std::size_t pos = tick_ % (2 * span);
    const std::size_t at = pos < span ? pos : 2 * span - pos;
    return "[" + std::string(at, '.') + paint(sgr_cyan, "<=>") + std::string(bar_width - 3 - at, '.') + "]";
  };

  std::size_t shown = 0;
  std::uint64_t active_bytes = 0;
  for (const auto& [index, a] : active_) {
    active_bytes += a.bytes;
    if (shown == max_rows)
      continue;
    ++shown;
    const double secs = std::chrono::duration<double>(now - a.started).count();
    std::string right;
    if (a.total && *a.total > 0) {
      const double fraction = static_cast<double>(a.bytes) / static_cast<double>(*a.total);
      right = bar(fraction) + " " + pad_left(format_bytes(a.bytes) + "/" + format_bytes(*a.total), 21) + " " +
              pad_left(std::to_string(static_cast<int>(std::clamp(fraction, 0.0, 1.0) * 100.0)) + "%", 4);
    } else if (a.bytes > 0) {
      right = unknown_bar() + " " + pad_left(format_bytes(a.bytes), 21) + "     ";
    } else {
      right = "[" + std::string(bar_width, '.') + "] " + pad_left("waiting", 21) + "     ";
    }
    right += " " + pad_left(a.bytes > 0 ? format_rate(static_cast<double>(a.bytes), secs) : "", 12);
    const std::size_t visible_right = display_width(right);
    const std::size_t name_width = width > visible_right + 4 ? width - visible_right - 3 : 8;
    lines.push_back("  " + pad_right(fit_width(a.name, name_width), name_width) + " " + right);
  }
  if (active_.size() > shown)
    lines.push_back("  ... and " + std::to_string(active_.size() - shown) + " more");

  const double elapsed = std::chrono::duration<double>(now - run_start_).count();
  const std::uint64_t bytes = finished_bytes_ + active_bytes;
  // Without a known total (stdin) the bar and the count are against what was read so far: "37/≥40".
  const std::size_t files = std::max(queued_, expected_.value_or(0));
  std::string total =
      "Total " + bar(files > 0 ? static_cast<double>(finished_) / static_cast<double>(files) : 0) + " " +
      std::to_string(finished_) + "/" + (expected_ ? "" : "\u2265") + std::to_string(files) + " files  " +
      format_bytes(bytes) + "  " + format_rate(static_cast<double>(bytes), elapsed) + "  ETA ";
  // Files-based: the remaining files at the pace of those done so far.
  total +=
      expected_ && finished_ > 0 && files >= finished_
          ? format_clock(elapsed / static_cast<double>(finished_) * static_cast<double>(files - finished_))
          : std::string("--:--");
  if (failed_ > 0)
    total += "  " + paint(sgr_red, std::to_string(failed_) + " failed");
  lines.push_back(std::move(total));

  std::string frame;
  for (const auto& line : lines)
    frame += line + "\n";
  drawn_lines_ = lines.size();
  return frame;
}

std::string TerminalOutput::paint(std::string_view sgr, std::string_view text) const {
  if (!style_.color || text.empty())
    return std::string(text);
  return std::string(sgr) + std::string(text) + "\x1b[0m";
}

std::size_t TerminalOutput::columns() const {
  winsize ws{};
  if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  if (const char* env = std::getenv("COLUMNS")) {
    if (const long n = std::strtol(env, nullptr, 10); n > 0)
      return static_cast<std::size_t>(n);
  }
  return 80;
}

std::size_t TerminalOutput::rows() const {
  winsize ws{};
  if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
    return ws.ws_row;
  return 24;
}

}  // namespace imgdl::app
