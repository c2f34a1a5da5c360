#pragma once
// The observer that turns Downloader callbacks into output: a line per finished file and, on a
// terminal, a live area of progress bars above those lines. Callbacks arrive on the Downloader's transfer
// thread and on the main thread; one mutex serialises every write, and the bars are redrawn by one render
// thread at most 10 times a second.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "imgdl/downloader.hpp"
#include "report.hpp"

namespace imgdl::app {

/// What goes to the human output stream.
struct OutputStyle {
  bool bars = false;     ///< live progress area (redraws with cursor movement)
  bool lines = true;     ///< a line per finished file (and per retry)
  bool failures = true;  ///< FAILED lines even when `lines` is off (--quiet)
  bool summary = true;   ///< the summary and the closing "It took" line
  bool color = false;    ///< SGR colours (terminal and NO_COLOR unset)
};

class TerminalOutput final : public DownloadObserver {
 public:
  /// Writes to `out` (stdout, or stderr under --json). Does not own it.
  TerminalOutput(std::FILE* out, OutputStyle style);
  ~TerminalOutput() override;
  TerminalOutput(const TerminalOutput&) = delete;
  TerminalOutput& operator=(const TerminalOutput&) = delete;

  /// Starts counting a new run (for --compare's two runs) and, with bars, the render thread. `files`
  /// is how many URLs the run will download when known up front (URLs are queued only as they are
  /// pulled); unknown (stdin), the overall bar shows done/≥queued.
  void begin_run(std::optional<std::size_t> files);
  /// Corrects the run's total: an invalid line came off it, or the list ended. Thread-safe.
  void set_expected(std::optional<std::size_t> files);
  /// Clears the live area and stops the render thread. Idempotent.
  void end_run();

  /// Prints text (one or more whole lines) above the live area. Thread-safe.
  void print(std::string_view text);
  /// Like print(), but only when the style prints summaries (headers, tables, the closing line).
  void print_info(std::string_view text);
  /// "Done: 4 ok, 0 skipped, 1 failed (5 URLs); 195.3 KiB in 1.02 s (191.4 KiB/s)".
  void print_summary(const Totals& totals, bool interrupted);

  void on_queued(const Transfer& t) override;
  void on_started(const Transfer& t) override;
  void on_progress(const Transfer& t, std::uint64_t bytes, std::optional<std::uint64_t> total) override;
  void on_retrying(const Transfer& t, int attempt, std::chrono::milliseconds delay,
                   std::string_view reason) override;
  void on_finished(const Transfer& t, const DownloadResult& result) override;

  /// The line printed for a finished file, without colour: "img_1.jpg was downloaded (48.8 KiB, 640×480,
  /// in 0.21 s)" (the size when the header gave one), "FAILED img_2.jpg: HTTP 404 Not Found",
  /// "img_3.jpg skipped: ...".
  static std::string finished_line(const DownloadResult& result);

 private:
  using Clock = std::chrono::steady_clock;
  struct Active {
    std::string name;
    std::uint64_t bytes = 0;
    std::optional<std::uint64_t> total;
    Clock::time_point started;
  };

  void render_loop(std::stop_token stop);
  // The helpers below expect mutex_ held.
  void write_locked(std::string_view text);
  std::string erase_area_locked();
  std::string frame_locked(Clock::time_point now);
  void draw_locked(Clock::time_point now);
  std::string paint(std::string_view sgr, std::string_view text) const;
  bool tracks_transfers() const noexcept;
  std::size_t columns() const;
  std::size_t rows() const;

  std::FILE* out_;
  OutputStyle style_;

  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::jthread render_thread_;
  std::map<std::size_t, Active> active_;  // by submission index, so bars keep their order
  std::size_t queued_ = 0;
  std::optional<std::size_t> expected_;
  std::size_t finished_ = 0;
  std::size_t failed_ = 0;
  std::uint64_t finished_bytes_ = 0;
  Clock::time_point run_start_{};
  Clock::time_point last_draw_{};
  bool live_ = false;            // bars are being drawn (between begin_run and end_run)
  std::size_t drawn_lines_ = 0;  // height of the live area currently on screen
  std::size_t tick_ = 0;         // animates bars of transfers without a known size
};

}  // namespace imgdl::app
