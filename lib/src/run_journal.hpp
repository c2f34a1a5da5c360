#pragma once
// The run journal's record format and its per-position states, apart from the file handling in
// run_journal.cpp, so tests can make and break records directly.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgdl/run_journal.hpp"

namespace imgdl::detail {

/// Positions from here on are refused as corrupt (2 bits each would take 4 GiB).
inline constexpr std::size_t max_journal_position = std::size_t{1} << 34;

/// One journal line, '\n' included: "<crc32 as 8 lowercase hex digits> <json>\n". Thread-safe: pure.
std::string encode_journal_record(std::size_t position, const DownloadResult& result, std::string_view extra);

/// The header line a journal starts with: {"imgdl_journal":1,"id":ID} under its CRC. Thread-safe: pure.
std::string encode_journal_header(std::string_view id);

/// What a line (without its '\n') holds: a record, the header, or nothing valid.
struct DecodedLine {
  bool valid = false;
  bool header = false;
  JournalEntry entry;  // when valid and not the header
};

/// Reads one line: valid only when the CRC matches and the JSON is a header or a whole record.
/// Thread-safe: pure.
DecodedLine decode_journal_line(std::string_view line);

enum class JournalState : std::uint8_t;

/// What decode_journal_line() would say about a line's position and outcome, found without parsing the
/// whole JSON (a journal of millions of lines is read at every rerun): a checked CRC, then the fields
/// where encode_journal_record() puts them. `valid` false when the line is not whole or not a record
/// nor the header as written there. Thread-safe: pure.
struct PeekedLine {
  bool valid = false;
  bool header = false;
  std::size_t position = 0;
  JournalState state{};
};
PeekedLine peek_journal_line(std::string_view line);

/// What a rerun makes of a position, from its latest record. Stored in 2 bits.
enum class JournalState : std::uint8_t {
  None = 0,              ///< no record: fetch it
  Done = 1,              ///< Ok or Skipped
  PermanentFailure = 2,  ///< a failure that would repeat
  TransientFailure = 3,  ///< a failure worth another try (with --retry-failed)
};

/// The state a result leaves (None for Cancelled, which is never recorded). Thread-safe: pure.
JournalState journal_state_of(const DownloadResult& result) noexcept;

/// 2 bits per position, grown as positions are set. Not thread-safe to set; get() is const.
class PositionStates {
 public:
  void set(std::size_t position, JournalState state);
  [[nodiscard]] JournalState get(std::size_t position) const noexcept;
  /// One past the highest position set (0 when none).
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Bytes held.
  [[nodiscard]] std::size_t bytes() const noexcept { return bits_.size(); }

 private:
  std::vector<std::uint8_t> bits_;  // four positions a byte
  std::size_t size_ = 0;
};

}  // namespace imgdl::detail
