// The run journal: records read back whole, a torn tail cut off, one process at a time, and a changed
// list or setting refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "imgdl/run_journal.hpp"
#include "run_journal.hpp"
#include "support/test_files.hpp"

namespace fs = std::filesystem;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::ImageType;
using imgdl::JournalEntry;
using imgdl::JournalError;
using imgdl::JournalOptions;
using imgdl::RunJournal;
using imgdl::test::read_file;
using imgdl::test::TempDir;

namespace {

DownloadResult ok(const std::string& name) {
  DownloadResult r;
  r.url = "http://h/" + name;
  r.path = fs::path("out") / name;
  r.status = DownloadStatus::Ok;
  r.http_status = 200;
  r.http_version = "1.1";
  r.bytes = 1234;
  r.image_type = ImageType::Png;
  r.width = 3;
  r.height = 2;
  r.orientation = 6;
  r.sha256 = "ab12";
  r.attempts = 2;
  r.elapsed = std::chrono::milliseconds(250);
  return r;
}

DownloadResult failed(const std::string& name, ErrorKind kind, long http_status = 0) {
  DownloadResult r;
  r.url = "http://h/" + name;
  r.status = DownloadStatus::Failed;
  r.error = kind;
  r.http_status = http_status;
  r.message = "it failed";
  r.attempts = 1;
  return r;
}

JournalOptions options_for(const fs::path& dir, const std::string& checksum = "sha256:aa") {
  JournalOptions o;
  o.output_dir = dir;
  o.manifest.input_checksum = checksum;
  o.manifest.settings = {{"on_exists", "rename"}, {"output_format", "files"}};
  return o;
}

std::vector<JournalEntry> done_entries(const RunJournal& journal) {
  std::vector<JournalEntry> entries;
  journal.for_each_done([&](const JournalEntry& e) { entries.push_back(e); });
  return entries;
}

fs::path journal_file(const fs::path& dir) {
  return dir / ".imgdl" / "journal-all";
}

}  // namespace

TEST_CASE("a record gives back every field of the result, and what the caller attached") {
  const DownloadResult r = ok("a.png");
  const std::string line = imgdl::detail::encode_journal_record(7, r, R"({"caption":"a cat"})");
  CHECK(line.back() == '\n');
  const auto decoded = imgdl::detail::decode_journal_line(std::string_view(line).substr(0, line.size() - 1));
  REQUIRE(decoded.valid);
  CHECK_FALSE(decoded.header);
  const JournalEntry& e = decoded.entry;
  CHECK(e.position == 7);
  CHECK(e.result.url == r.url);
  CHECK(e.result.path == r.path);
  CHECK(e.result.status == r.status);
  CHECK(e.result.http_status == 200);
  CHECK(e.result.http_version == "1.1");
  CHECK(e.result.bytes == 1234);
  CHECK(e.result.image_type == ImageType::Png);
  CHECK(e.result.width == 3);
  CHECK(e.result.height == 2);
  CHECK(e.result.orientation == 6);
  CHECK(e.result.sha256 == "ab12");
  CHECK(e.result.attempts == 2);
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(e.result.elapsed).count() == 250);
  CHECK(e.result.error == ErrorKind::None);
  CHECK(e.extra == R"({"caption":"a cat"})");
}

TEST_CASE("a record is its position, to_json_text()'s fields of the result, then what was attached") {
  const DownloadResult r = ok("a.png");
  const std::string fields = imgdl::to_json_text(r);
  CHECK(
      fields ==
      R"({"url":"http://h/a.png","path":"out/a.png","status":"ok","http_status":200,"http_version":"1.1",)"
      R"("bytes":1234,"image_type":"png","width":3,"height":2,"orientation":6,"sha256":"ab12","attempts":2,)"
      R"("elapsed_s":0.25,"error":"none","message":""})");
  const std::string line = imgdl::detail::encode_journal_record(7, r, R"({"caption":"a cat"})");
  CHECK(line.substr(9) == R"({"position":7,)" + fields.substr(1, fields.size() - 2) +
                              R"(,"extra":{"caption":"a cat"}})" + "\n");
}

TEST_CASE("a record whose bytes changed fails its checksum and is not read") {
  std::string line = imgdl::detail::encode_journal_record(7, ok("a.png"), "");
  line.pop_back();
  line[line.find("1234")] = '9';
  CHECK_FALSE(imgdl::detail::decode_journal_line(line).valid);
  CHECK_FALSE(imgdl::detail::decode_journal_line(line.substr(0, line.size() / 2)).valid);
}

TEST_CASE("peeking at a line finds the position and outcome that reading it whole finds") {
  using imgdl::detail::decode_journal_line;
  using imgdl::detail::journal_state_of;
  using imgdl::detail::peek_journal_line;
  DownloadResult hostile =
      failed(R"(a","status":"ok","error":"none","http_status":200)", ErrorKind::HttpStatus, 503);
  hostile.path = R"(b,"status":"ok")";
  hostile.message = R"(,"error":"none")";
  const std::vector<std::tuple<std::size_t, DownloadResult, std::string>> cases = {
      {0, ok("a.png"), ""},
      {12345678901, failed("b", ErrorKind::HttpStatus, 404), R"({"x":1})"},
      {3, hostile, R"({"status":"ok"})"},
  };
  for (const auto& [position, result, extra] : cases) {
    std::string line = imgdl::detail::encode_journal_record(position, result, extra);
    line.pop_back();
    const auto peeked = peek_journal_line(line);
    const auto decoded = decode_journal_line(line);
    REQUIRE(peeked.valid);
    REQUIRE(decoded.valid);
    CHECK(peeked.position == decoded.entry.position);
    CHECK(peeked.state == journal_state_of(decoded.entry.result));
    CHECK(peeked.state == journal_state_of(result));
  }
  const std::string header = imgdl::detail::encode_journal_header("all");
  CHECK(peek_journal_line(std::string_view(header).substr(0, header.size() - 1)).header);
}

TEST_CASE(
    "404, 410, not_image and filtered are permanent; timeouts, 5xx, host_unreachable and cut images are "
    "not") {
  using imgdl::is_transient_failure;
  CHECK_FALSE(is_transient_failure(failed("a", ErrorKind::HttpStatus, 404)));
  CHECK_FALSE(is_transient_failure(failed("a", ErrorKind::HttpStatus, 410)));
  CHECK_FALSE(is_transient_failure(failed("a", ErrorKind::NotImage)));
  CHECK_FALSE(is_transient_failure(failed("a", ErrorKind::Filtered)));
  CHECK_FALSE(is_transient_failure(failed("a", ErrorKind::InvalidUrl)));
  CHECK_FALSE(is_transient_failure(ok("a")));
  CHECK(is_transient_failure(failed("a", ErrorKind::Timeout)));
  CHECK(is_transient_failure(failed("a", ErrorKind::HttpStatus, 503)));
  CHECK(is_transient_failure(failed("a", ErrorKind::HttpStatus, 429)));
  CHECK(is_transient_failure(failed("a", ErrorKind::HostUnreachable)));
  CHECK(is_transient_failure(failed("a", ErrorKind::CorruptImage)));
  CHECK(is_transient_failure(failed("a", ErrorKind::Connect)));
}

TEST_CASE("a rerun finds successes and permanent failures done, and transient ones done unless retried") {
  TempDir dir;
  {
    RunJournal journal(options_for(dir.path));
    CHECK(journal.done_count() == 0);
    journal.record(0, ok("a.png"));
    journal.record(1, failed("b", ErrorKind::HttpStatus, 404));
    journal.record(2, failed("c", ErrorKind::Timeout));
    DownloadResult cancelled = failed("d", ErrorKind::Cancelled);
    cancelled.status = DownloadStatus::Cancelled;
    journal.record(3, cancelled);  // never recorded
  }
  {
    const RunJournal journal(options_for(dir.path));
    CHECK(journal.earlier_records() == 3);
    CHECK(journal.done(0));
    CHECK(journal.done(1));
    CHECK(journal.done(2));
    CHECK_FALSE(journal.done(3));
    CHECK_FALSE(journal.done(4));
    CHECK(journal.done_count() == 3);
    CHECK_FALSE(journal.retrying(2));  // without retry_failed, a transient failure is done too
  }
  auto retry = options_for(dir.path);
  retry.retry_failed = true;
  RunJournal journal(retry);
  CHECK(journal.done(0));
  CHECK(journal.done(1));
  CHECK_FALSE(journal.done(2));
  CHECK(journal.done_count() == 2);
  CHECK(journal.retrying(2));  // fetched again because it failed transiently, not for want of a record
  CHECK_FALSE(journal.retrying(1));
  CHECK_FALSE(journal.retrying(3));
  const auto entries = done_entries(journal);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].position == 1);  // newest first
  CHECK(entries[0].result.http_status == 404);
  CHECK(entries[1].position == 0);
  CHECK(entries[1].result.path == fs::path("out") / "a.png");
}

TEST_CASE("a position recorded in several runs is reported once, as its latest record says") {
  TempDir dir;
  auto retry = options_for(dir.path);
  retry.retry_failed = true;
  {
    RunJournal journal(options_for(dir.path));
    journal.record(0, failed("a", ErrorKind::Timeout));
  }
  {
    RunJournal journal(retry);
    CHECK_FALSE(journal.done(0));
    auto again = failed("a", ErrorKind::HttpStatus, 503);
    journal.record(0, again);
  }
  {
    const RunJournal journal(options_for(dir.path));
    const auto entries = done_entries(journal);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].result.http_status == 503);
  }
  {
    RunJournal journal(retry);
    journal.record(0, ok("a.png"));
  }
  const RunJournal journal(retry);
  CHECK(journal.done(0));
  const auto entries = done_entries(journal);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].result.status == DownloadStatus::Ok);
  CHECK(journal.earlier_records() == 3);
}

TEST_CASE(
    "a journal of many megabytes, with a record longer than a read, gives each position's latest record "
    "once") {
  TempDir dir;
  constexpr std::size_t positions = 6000;
  const std::string long_caption(3 << 20, 'c');  // longer than the 1 MiB reads, spanning several
  {
    RunJournal journal(options_for(dir.path));
    for (std::size_t p = 0; p < positions; ++p)
      journal.record(p, failed("x" + std::to_string(p), ErrorKind::Timeout));
    journal.record(4321, ok("long.png"), R"({"caption":")" + long_caption + R"("})");
  }
  auto retry = options_for(dir.path);
  retry.retry_failed = true;
  {
    RunJournal journal(retry);
    CHECK(journal.done_count() == 1);
    for (std::size_t p = 0; p < positions; p += 2)  // every other one succeeds the second time
      journal.record(p, ok("x" + std::to_string(p)));
  }
  const RunJournal journal(options_for(dir.path));
  CHECK(journal.earlier_records() == positions + 1 + positions / 2);
  std::vector<int> seen(positions, 0);
  std::size_t ok_count = 0;
  journal.for_each_done([&](const JournalEntry& e) {
    REQUIRE(e.position < positions);
    ++seen[e.position];
    const bool should_be_ok = e.position % 2 == 0 || e.position == 4321;
    CHECK((e.result.status == DownloadStatus::Ok) == should_be_ok);
    ok_count += e.result.status == DownloadStatus::Ok;
    if (e.position == 4321)
      CHECK(e.extra.size() == long_caption.size() + 14);
  });
  CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<long>(positions));
  CHECK(ok_count == positions / 2 + 1);
}

TEST_CASE("a journal cut mid-record is read up to its last whole record, and the next run appends after it") {
  TempDir dir;
  {
    RunJournal journal(options_for(dir.path));
    journal.record(0, ok("a.png"));
    journal.record(1, ok("b.png"));
  }
  const std::string whole = read_file(journal_file(dir.path));
  const std::string third = imgdl::detail::encode_journal_record(2, ok("c.png"), "");
  // Killed while writing the third record: only its first half reached the file.
  std::ofstream(journal_file(dir.path), std::ios::binary | std::ios::app)
      << third.substr(0, third.size() / 2);
  {
    RunJournal journal(options_for(dir.path));
    CHECK(journal.dropped_bytes() == third.size() / 2);
    CHECK(journal.earlier_records() == 2);
    CHECK(journal.done(0));
    CHECK(journal.done(1));
    CHECK_FALSE(journal.done(2));
    CHECK(read_file(journal_file(dir.path)) == whole);  // the torn tail is gone
    journal.record(2, ok("c.png"));
  }
  CHECK(read_file(journal_file(dir.path)) == whole + third);
  const RunJournal journal(options_for(dir.path));
  CHECK(journal.dropped_bytes() == 0);
  CHECK(journal.done_count() == 3);
}

TEST_CASE("a second run on the same journal is refused while the first holds it, and leaves it whole") {
  TempDir dir;
  RunJournal first(options_for(dir.path));
  first.record(0, ok("a.png"));
  first.flush();
  const std::string before = read_file(journal_file(dir.path));
  try {
    RunJournal second(options_for(dir.path, "sha256:other"));
    FAIL("the second journal opened");
  } catch (const JournalError& e) {
    CHECK(e.kind() == JournalError::Kind::Locked);
    CHECK(std::string(e.what()).find("in use by another imgdl run") != std::string::npos);
  }
  CHECK(read_file(journal_file(dir.path)) == before);
  // Another id is another journal: shards of one list share an output directory.
  auto shard = options_for(dir.path);
  shard.id = "shard-1-of-2";
  const RunJournal other(shard);
  CHECK(fs::exists(dir.path / ".imgdl" / "journal-shard-1-of-2"));
  CHECK(fs::exists(dir.path / ".imgdl" / "manifest-shard-1-of-2.json"));
}

TEST_CASE("a changed list or setting is refused, naming what changed; force starts a new journal") {
  TempDir dir;
  {
    RunJournal journal(options_for(dir.path));
    journal.record(0, ok("a.png"));
  }
  try {
    RunJournal journal(options_for(dir.path, "sha256:bb"));
    FAIL("a changed list was accepted");
  } catch (const JournalError& e) {
    CHECK(e.kind() == JournalError::Kind::Mismatch);
    CHECK(std::string(e.what()).find("the list is not the same") != std::string::npos);
    CHECK(std::string(e.what()).find("--force") != std::string::npos);
  }
  auto changed = options_for(dir.path);
  changed.manifest.settings[0].second = "skip";
  try {
    RunJournal journal(changed);
    FAIL("a changed setting was accepted");
  } catch (const JournalError& e) {
    CHECK(e.kind() == JournalError::Kind::Mismatch);
    CHECK(std::string(e.what()).find("on_exists was rename, now skip") != std::string::npos);
  }
  changed.force = true;
  {
    RunJournal journal(changed);
    CHECK(journal.earlier_records() == 0);
    CHECK_FALSE(journal.done(0));
  }
  changed.force = false;
  const RunJournal journal(changed);  // the new manifest is the one kept
  CHECK(journal.done_count() == 0);
}

TEST_CASE("a position whose output was not kept is not done, whatever its record says") {
  TempDir dir;
  {
    RunJournal journal(options_for(dir.path));
    for (std::size_t p = 0; p < 6; ++p)
      journal.record(p, ok("x" + std::to_string(p)));
  }
  // As WebDataset output: shards of 2 positions, shard 1 (positions 2 and 3) never published.
  auto o = options_for(dir.path);
  std::vector<std::size_t> asked;
  o.still_done = [&asked](std::size_t p) {
    asked.push_back(p);
    return p / 2 != 1;
  };
  const RunJournal journal(o);
  CHECK(asked == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
  CHECK(journal.done_count() == 4);
  CHECK(journal.done(1));
  CHECK_FALSE(journal.done(2));
  CHECK_FALSE(journal.done(3));
  CHECK(journal.done(4));
  CHECK(done_entries(journal).size() == 4);
}

TEST_CASE("records from one thread and flushes from another (a signal thread) lose nothing") {
  TempDir dir;
  constexpr std::size_t count = 2000;
  {
    RunJournal journal(options_for(dir.path));
    std::atomic<bool> done{false};
    std::thread flusher([&] {
      while (!done.load())
        journal.flush();
    });
    for (std::size_t p = 0; p < count; ++p)
      journal.record(p, ok("x" + std::to_string(p)));
    done = true;
    flusher.join();
    CHECK(journal.error().empty());
  }
  const RunJournal journal(options_for(dir.path));
  CHECK(journal.dropped_bytes() == 0);
  CHECK(journal.earlier_records() == count);
  CHECK(journal.done_count() == count);
}

TEST_CASE("a journal id that could leave .imgdl is refused") {
  TempDir dir;
  for (const char* id : {"", "../x", "a/b", ".hidden", "a b"}) {
    auto o = options_for(dir.path);
    o.id = id;
    CHECK_THROWS_AS(RunJournal{o}, std::invalid_argument);
  }
  CHECK_FALSE(fs::exists(dir.path / ".imgdl"));
}

TEST_CASE("positions cost 2 bits each: 10 million in 2.5 MB") {
  imgdl::detail::PositionStates states;
  states.set(9'999'999, imgdl::detail::JournalState::Done);
  CHECK(states.get(9'999'999) == imgdl::detail::JournalState::Done);
  CHECK(states.get(9'999'998) == imgdl::detail::JournalState::None);
  CHECK(states.bytes() == 2'500'000);
}
