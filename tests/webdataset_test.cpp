// WebDataset shards: whole tars that GNU tar and Python's tarfile read back, published only when full.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "imgdl/webdataset.hpp"
#include "support/test_files.hpp"

namespace fs = std::filesystem;
using imgdl::DownloadResult;
using imgdl::DownloadStatus;
using imgdl::ErrorKind;
using imgdl::ImageType;
using imgdl::WebDatasetWriter;
using imgdl::test::read_file;
using imgdl::test::TempDir;

namespace {

/// A downloaded file as the Downloader leaves it, and its result.
DownloadResult downloaded(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
  DownloadResult r;
  r.url = "http://h/" + name;
  r.path = dir / name;
  r.status = DownloadStatus::Ok;
  r.bytes = bytes.size();
  r.image_type = ImageType::Png;
  r.width = 3;
  r.height = 2;
  r.sha256 = "ab";
  return r;
}

DownloadResult failed(const std::string& url, ErrorKind kind) {
  DownloadResult r;
  r.url = url;
  r.status = DownloadStatus::Failed;
  r.error = kind;
  return r;
}

int run(const std::string& command) {
  return std::system(command.c_str());
}

}  // namespace

TEST_CASE("a sample's key is its shard and its position in it") {
  CHECK(WebDatasetWriter::key(10005, 10000) == "000010005");
  CHECK(WebDatasetWriter::key(7, 10000) == "000000007");
  CHECK(WebDatasetWriter::key(250001, 100000) == "0000250001");
}

TEST_CASE("results become whole tar shards that GNU tar and Python's tarfile read back") {
  TempDir dir;
  const fs::path scratch = dir.path / "scratch";
  const fs::path out = dir.path / "shards";
  WebDatasetWriter writer(out, 2);
  const std::string big(70000, 'x');  // spans several tar blocks, not a multiple of 512
  writer.add(1, downloaded(scratch, "b.png", big), std::string("a \"cat\""), {{"lang", "en"}});
  CHECK(fs::exists(out / "00000.tar.part"));
  CHECK_FALSE(fs::exists(out / "00000.tar"));  // not whole yet: position 0 has no result
  writer.add(0, downloaded(scratch, "a.png", "PNGDATA"));
  CHECK(fs::exists(out / "00000.tar"));
  CHECK_FALSE(fs::exists(out / "00000.tar.part"));
  CHECK_FALSE(fs::exists(scratch / "a.png"));  // moved into the shard
  writer.add(3, failed("http://h/404", ErrorKind::HttpStatus));
  writer.add(4, downloaded(scratch, "e.png", "E"));
  writer.finish();  // the list ended: shard 1 (position 2 never came) and shard 2 are published as they are
  CHECK(writer.shards_written() == 3);
  CHECK(fs::is_regular_file(out / "00001.tar"));
  CHECK(fs::is_regular_file(out / "00002.tar"));

  // GNU tar extracts exactly the members written.
  const fs::path extracted = dir.path / "x";
  fs::create_directories(extracted);
  REQUIRE(run("tar -xf '" + (out / "00000.tar").string() + "' -C '" + extracted.string() + "'") == 0);
  CHECK(dir.entries().count("x/000000000.png") == 1);
  CHECK(read_file(extracted / "000000001.png") == big);
  CHECK(read_file(extracted / "000000000.png") == "PNGDATA");
  CHECK(read_file(extracted / "000000001.txt") == "a \"cat\"");
  const std::string json = read_file(extracted / "000000001.json");
  CHECK(json.find("\"url\":\"http://h/b.png\"") != std::string::npos);
  CHECK(json.find("\"width\":3") != std::string::npos);
  CHECK(json.find("\"lang\":\"en\"") != std::string::npos);
  CHECK(json.find("\"caption\":\"a \\\"cat\\\"\"") != std::string::npos);

  // Python's tarfile agrees, member by member, and finds shard 1 empty of images.
  const std::string check =
      "python3 -c \"import tarfile,sys; t=tarfile.open(sys.argv[1]); "
      "assert sorted(m.name for m in t) == "
      "['000000000.json','000000000.png','000000001.json','000000001.png',"
      "'000000001.txt'], [m.name for m in t]; "
      "assert t.extractfile('000000001.png').read() == b'x'*70000; "
      "assert tarfile.open(sys.argv[2]).getnames() == []\" '" +
      (out / "00000.tar").string() + "' '" + (out / "00001.tar").string() + "'";
  CHECK(run(check) == 0);

  const std::string stats = read_file(out / "00001_stats.json");
  CHECK(stats.find("\"failed\": 1") != std::string::npos);
  CHECK(stats.find("\"http_status\": 1") != std::string::npos);
  CHECK(read_file(out / "00000_stats.json").find("\"ok\": 2") != std::string::npos);
}

TEST_CASE("a writer that goes away unfinished publishes nothing of its open shards, and leaves no .part") {
  TempDir dir;
  {
    WebDatasetWriter writer(dir.path / "shards", 10);
    writer.add(0, downloaded(dir.path / "s", "a.png", "A"));
    CHECK(fs::exists(dir.path / "shards" / "00000.tar.part"));
  }
  CHECK_FALSE(fs::exists(dir.path / "shards" / "00000.tar"));
  CHECK_FALSE(fs::exists(dir.path / "shards" / "00000.tar.part"));
  CHECK_THROWS_AS(WebDatasetWriter(dir.path / "x", 0), std::invalid_argument);
}

TEST_CASE("a shard that got a cancelled result is never published: the run stopped before it was whole") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  WebDatasetWriter writer(out, 2);
  writer.add(0, downloaded(dir.path / "s", "a.png", "A"));
  DownloadResult cancelled;
  cancelled.url = "http://h/b.png";
  cancelled.status = DownloadStatus::Cancelled;
  cancelled.error = ErrorKind::Cancelled;
  writer.add(1, cancelled);
  writer.add(2, downloaded(dir.path / "s", "c.png", "C"));
  writer.abandon();  // the run stopped: shard 1 is open and dropped too
  CHECK(writer.shards_written() == 0);
  CHECK(dir.entries().count("shards/00000.tar") == 0);
  CHECK(dir.entries().count("shards/00000.tar.part") == 0);
  CHECK(dir.entries().count("shards/00001.tar.part") == 0);
  CHECK_FALSE(writer.published(0));
}

TEST_CASE("a published shard is never replaced, and says it is there") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  {
    WebDatasetWriter first(out, 1);
    first.add(0, downloaded(dir.path / "s", "a.png", "FIRST"));
    CHECK(first.published(0));
    CHECK_FALSE(first.published(1));
  }
  const std::string before = read_file(out / "00000.tar");
  // Asked of the directory alone, before any writer is made (the CLI's journal does).
  CHECK(WebDatasetWriter::published(out, 0));
  CHECK_FALSE(WebDatasetWriter::published(out, 1));
  CHECK_FALSE(WebDatasetWriter::published(dir.path / "missing", 0));
  WebDatasetWriter second(out, 1);
  CHECK(second.published(0));
  CHECK_THROWS_AS(second.add(0, downloaded(dir.path / "s", "a.png", "SECOND")), std::system_error);
  CHECK(read_file(out / "00000.tar") == before);
  CHECK(WebDatasetWriter::shard_file_name(12) == "00012.tar");
  CHECK(second.shard_size() == 1);
}

namespace {

/// The member names of a tar, in order, as Python's tarfile reads them (one per line).
std::string tar_names(const fs::path& tar) {
  const fs::path listing = tar.string() + ".names";
  const std::string command =
      "python3 -c \"import tarfile,sys; print('\\n'.join(tarfile.open(sys.argv[1]).getnames()))\" '" +
      tar.string() + "' > '" + listing.string() + "'";
  REQUIRE(run(command) == 0);
  std::string names = read_file(listing);
  fs::remove(listing);
  return names;
}

DownloadResult http_failure(const std::string& url, long status) {
  DownloadResult r = failed(url, ErrorKind::HttpStatus);
  r.http_status = status;
  return r;
}

/// Shard 0 of size 4 with samples at 0 and 3, a 404 at 1 and a 503 at 2.
void publish_shard_with_failures(const fs::path& scratch, const fs::path& out) {
  WebDatasetWriter writer(out, 4);
  writer.add(0, downloaded(scratch, "a.png", "A"));
  writer.add(1, http_failure("http://h/404", 404));
  writer.add(2, http_failure("http://h/503", 503));
  writer.add(3, downloaded(scratch, "d.png", "D"));
  REQUIRE(writer.published(0));
}

}  // namespace

TEST_CASE("published stats list the failed rows' offsets by error kind, as JSON Python reads") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  {
    WebDatasetWriter writer(out, 4);
    writer.add(3, failed("http://h/t", ErrorKind::Timeout));
    writer.add(0, http_failure("http://h/404", 404));
    writer.add(1, downloaded(dir.path / "s", "b.png", "B"));
    writer.add(2, http_failure("http://h/503", 503));
  }
  CHECK(read_file(out / "00000_stats.json")
            .find("\"failed_rows\": {\n    \"http_status\": [0,2],\n    "
                  "\"timeout\": [3]\n  }\n}\n") != std::string::npos);
  const std::string check =
      "python3 -c \"import json,sys; s=json.load(open(sys.argv[1])); "
      "assert s['errors'] == {'http_status': 2, 'timeout': 1}, s; "
      "assert s['failed_rows'] == {'http_status': [0, 2], 'timeout': [3]}, s; "
      "assert (s['count'], s['ok'], s['failed']) == (4, 1, 3), s\" '" +
      (out / "00000_stats.json").string() + "'";
  CHECK(run(check) == 0);
  WebDatasetWriter writer(dir.path / "none", 1);
  writer.add(0, downloaded(dir.path / "s", "a.png", "A"));
  CHECK(read_file(dir.path / "none" / "00000_stats.json").find("\"failed_rows\": {}\n}\n") !=
        std::string::npos);
}

TEST_CASE("a repair adds the retried samples to the published shard and keeps every earlier one") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  publish_shard_with_failures(dir.path / "s", out);
  const std::string before = read_file(out / "00000.tar");

  WebDatasetWriter writer(out, 4);
  std::vector<std::size_t> asked;
  std::vector<std::size_t> published;
  writer.on_published([&](std::size_t shard) { published.push_back(shard); });
  // Only the 503 is retried: the caller says which failures are worth another try.
  CHECK(writer.repair(0, [&](std::size_t p) {
    asked.push_back(p);
    return p == 2;
  }) == 1);
  CHECK(asked == std::vector<std::size_t>{1, 2});  // only the listed failures are asked about
  CHECK(writer.repairing(0));
  CHECK(writer.awaits(2));
  CHECK_FALSE(writer.awaits(1));
  CHECK_FALSE(writer.awaits(0));
  CHECK_THROWS_AS(writer.add(1, http_failure("http://h/404", 404)), std::invalid_argument);
  CHECK(read_file(out / "00000.tar") == before);  // nothing replaced before the repair is whole

  writer.add(2, downloaded(dir.path / "s", "c.png", "C"));
  CHECK(published == std::vector<std::size_t>{0});
  CHECK_FALSE(writer.repairing(0));
  const std::string after = read_file(out / "00000.tar");
  // The earlier members, byte for byte (the old end blocks excepted), then the new sample.
  CHECK(after.compare(0, before.size() - 1024, before, 0, before.size() - 1024) == 0);
  CHECK(tar_names(out / "00000.tar") ==
        "000000000.png\n000000000.json\n000000003.png\n000000003.json\n000000002.png\n000000002.json\n");
  const std::string stats = read_file(out / "00000_stats.json");
  CHECK(stats.find("\"count\": 4") != std::string::npos);
  CHECK(stats.find("\"ok\": 3") != std::string::npos);
  CHECK(stats.find("\"failed\": 1") != std::string::npos);
  CHECK(stats.find("\"errors\": {\n    \"http_status\": 1\n  }") != std::string::npos);
  CHECK(stats.find("\"http_status\": [1]") != std::string::npos);  // the 503 at 2 is a sample now
  CHECK_FALSE(fs::exists(out / "00000.tar.part"));
}

TEST_CASE("a retried position that fails again stays listed with its new error") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  publish_shard_with_failures(dir.path / "s", out);
  WebDatasetWriter writer(out, 4);
  REQUIRE(writer.repair(0, [](std::size_t) { return true; }) == 2);
  writer.add(1, http_failure("http://h/404", 404));
  writer.add(2, failed("http://h/503", ErrorKind::Timeout));
  const std::string stats = read_file(out / "00000_stats.json");
  CHECK(stats.find("\"failed\": 2") != std::string::npos);
  CHECK(stats.find("\"errors\": {\n    \"http_status\": 1,\n    \"timeout\": 1\n  }") != std::string::npos);
  CHECK(stats.find("\"failed_rows\": {\n    \"http_status\": [1],\n    \"timeout\": [2]\n  }") !=
        std::string::npos);
  CHECK(tar_names(out / "00000.tar") == "000000000.png\n000000000.json\n000000003.png\n000000003.json\n");
}

TEST_CASE("a repair stopped midway leaves the published shard as it was") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  publish_shard_with_failures(dir.path / "s", out);
  const std::string before = read_file(out / "00000.tar");
  const std::string stats = read_file(out / "00000_stats.json");
  {
    WebDatasetWriter writer(out, 4);
    REQUIRE(writer.repair(0, [](std::size_t) { return true; }) == 2);
    writer.add(2, downloaded(dir.path / "s", "c.png", "C"));
    CHECK(fs::exists(out / "00000.tar.part"));
  }  // destroyed with position 1 still awaited
  CHECK(read_file(out / "00000.tar") == before);
  CHECK(read_file(out / "00000_stats.json") == stats);
  CHECK_FALSE(fs::exists(out / "00000.tar.part"));

  WebDatasetWriter writer(out, 4);
  REQUIRE(writer.repair(0, [](std::size_t) { return true; }) == 2);
  DownloadResult cancelled = failed("http://h/404", ErrorKind::Cancelled);
  cancelled.status = DownloadStatus::Cancelled;
  writer.add(1, cancelled);
  writer.add(2, downloaded(dir.path / "s", "c.png", "C"));  // the last awaited: a cancelled repair is dropped
  CHECK(read_file(out / "00000.tar") == before);
  CHECK(writer.shards_written() == 0);
}

TEST_CASE("a repair is refused for a shard not published, open, or with no failures listed") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  publish_shard_with_failures(dir.path / "s", out);
  WebDatasetWriter writer(out, 4);
  CHECK_THROWS_AS((void)writer.repair(1, [](std::size_t) { return true; }), std::invalid_argument);
  CHECK(writer.repair(0, [](std::size_t) { return false; }) == 0);  // nothing to retry: nothing opened
  CHECK_FALSE(writer.repairing(0));
  REQUIRE(writer.repair(0, [](std::size_t) { return true; }) == 2);
  CHECK_THROWS_AS((void)writer.repair(0, [](std::size_t) { return true; }), std::invalid_argument);
  writer.abandon();

  // Stats without the failed rows (imgdl 0.2.0's), or offsets past another shard size: left alone.
  std::ofstream(out / "00000_stats.json", std::ios::trunc) << R"({"count": 4, "ok": 2, "failed": 2})";
  CHECK(writer.repair(0, [](std::size_t) { return true; }) == 0);
  publish_shard_with_failures(dir.path / "s", dir.path / "other");
  WebDatasetWriter narrower(dir.path / "other", 2);
  CHECK(narrower.repair(0, [](std::size_t) { return true; }) == 0);
}

TEST_CASE("a repair is dropped when its shard was replaced meanwhile by another writer") {
  TempDir dir;
  const fs::path out = dir.path / "shards";
  publish_shard_with_failures(dir.path / "s", out);
  WebDatasetWriter writer(out, 4);
  REQUIRE(writer.repair(0, [](std::size_t p) { return p == 2; }) == 1);
  std::ofstream(out / "00000.tar.other", std::ios::binary) << std::string(1024, '\0');
  fs::rename(out / "00000.tar.other", out / "00000.tar");
  CHECK_THROWS_AS(writer.add(2, downloaded(dir.path / "s", "c.png", "C")), std::system_error);
  CHECK(read_file(out / "00000.tar") == std::string(1024, '\0'));
}
