#pragma once
// Human-readable numbers shared by the terminal output and the --compare table.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace imgdl::app {

/// "512 B", "48.8 KiB", "3.1 MiB", "1.2 GiB" (powers of 1024, one decimal above bytes).
std::string format_bytes(std::uint64_t bytes);
/// format_bytes(bytes per second) + "/s"; "-" when the time is zero.
std::string format_rate(double bytes, double seconds);
/// Seconds with `decimals` decimals: "0.21".
std::string format_seconds(double seconds, int decimals = 2);
/// "0:07", "12:03", "1:02:03".
std::string format_clock(double seconds);
/// Seconds as a double.
double to_seconds(std::chrono::steady_clock::duration d);
/// Display columns of UTF-8 text: one per code point; CSI escape sequences (colours) count none.
std::size_t display_width(std::string_view text);
/// A library message as the CLI shows it: the DownloadOptions a message names to fix a failure
/// (e.g. "DownloadOptions::ca_file") become the flags that set them ("--cacert FILE").
std::string cli_message(std::string_view message);
/// Cuts `text` to at most `width` columns, ending in "..." when cut (never inside a UTF-8 sequence).
std::string fit_width(std::string_view text, std::size_t width);

}  // namespace imgdl::app
