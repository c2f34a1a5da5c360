#include "merge.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_options.hpp"
#include "imgdl/shard.hpp"
#include "report.hpp"

namespace imgdl::app {
namespace {

using Json = nlohmann::ordered_json;

/// A merge that cannot go on: the message is for the user.
struct MergeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// Records (key, source, text) given in any order, handed back sorted by key (then source), in
/// bounded memory: when the buffer passes its budget it is sorted and spilled to an anonymous
/// temporary file as a run, and the runs are merged k ways at the end. Runs are merged into one
/// whenever there are max_runs of them, so open files stay few whatever the input's size.
class ExternalSort {
 public:
  static constexpr std::size_t max_runs = 64;

  explicit ExternalSort(std::size_t budget) : budget_(budget) {}

  void add(std::uint64_t key, std::uint32_t source, std::string text) {
    bytes_ += text.size() + sizeof(Record);
    buffer_.push_back(Record{key, source, std::move(text)});
    if (bytes_ >= budget_)
      spill();
  }

  /// Calls visit(key, source, text) for every record, in order. Once.
  void for_each(const std::function<void(std::uint64_t, std::uint32_t, std::string_view)>& visit) {
    if (runs_.empty()) {
      sort_buffer();
      for (const auto& r : buffer_)
        visit(r.key, r.source, r.text);
      return;
    }
    spill();
    merge_runs([&](const Record& r) { visit(r.key, r.source, r.text); });
  }

 private:
  struct Record {
    std::uint64_t key = 0;
    std::uint32_t source = 0;
    std::string text;
  };
  using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

  static File temporary_file() {
    File file(std::tmpfile(), &std::fclose);  // deleted when closed, even if the process dies
    if (!file)
      throw MergeError(std::string("cannot create a temporary file to sort in: ") + std::strerror(errno));
    return file;
  }

  static void write(std::FILE* file, const Record& r) {
    const std::uint64_t size = r.text.size();
    if (std::fwrite(&r.key, sizeof r.key, 1, file) != 1 ||
        std::fwrite(&r.source, sizeof r.source, 1, file) != 1 ||
        std::fwrite(&size, sizeof size, 1, file) != 1 ||
        std::fwrite(r.text.data(), 1, r.text.size(), file) != r.text.size())
      throw MergeError(std::string("cannot write a temporary file to sort in: ") + std::strerror(errno));
  }

  static void finish(std::FILE* file) {
    if (std::fflush(file) != 0)
      throw MergeError(std::string("cannot write a temporary file to sort in: ") + std::strerror(errno));
  }

  static std::optional<Record> read(std::FILE* file) {
    Record r;
    std::uint64_t size = 0;
    if (std::fread(&r.key, sizeof r.key, 1, file) != 1) {
      if (std::ferror(file))
        throw MergeError(std::string("cannot read a temporary sort file: ") + std::strerror(errno));
      return std::nullopt;
    }
    if (std::fread(&r.source, sizeof r.source, 1, file) != 1 || std::fread(&size, sizeof size, 1, file) != 1)
      throw MergeError("a temporary sort file was cut short");
    r.text.resize(size);
    if (std::fread(r.text.data(), 1, size, file) != size)
      throw MergeError("a temporary sort file was cut short");
    return r;
  }

  void sort_buffer() {
    std::sort(buffer_.begin(), buffer_.end(), [](const Record& a, const Record& b) {
      return std::tie(a.key, a.source) < std::tie(b.key, b.source);
    });
  }

  void spill() {
    if (buffer_.empty())
      return;
    sort_buffer();
    File file = temporary_file();
    for (const auto& r : buffer_)
      write(file.get(), r);
    finish(file.get());
    runs_.push_back(std::move(file));
    buffer_.clear();
    buffer_.shrink_to_fit();
    bytes_ = 0;
    if (runs_.size() >= max_runs) {
      File merged = temporary_file();
      merge_runs([&](const Record& r) { write(merged.get(), r); });
      finish(merged.get());
      runs_.clear();
      runs_.push_back(std::move(merged));
    }
  }

  /// The runs' records, merged k ways in order: one record of each run in memory.
  void merge_runs(const std::function<void(const Record&)>& emit) {
    struct Head {
      Record record;
      std::size_t run;
    };
    auto later = [](const Head& a, const Head& b) {
      return std::tie(a.record.key, a.record.source) > std::tie(b.record.key, b.record.source);
    };
    std::priority_queue<Head, std::vector<Head>, decltype(later)> heads(later);
    for (std::size_t i = 0; i < runs_.size(); ++i) {
      std::rewind(runs_[i].get());
      if (auto r = read(runs_[i].get()))
        heads.push(Head{std::move(*r), i});
    }
    while (!heads.empty()) {
      Head head = heads.top();
      heads.pop();
      emit(head.record);
      if (auto r = read(runs_[head.run].get()))
        heads.push(Head{std::move(*r), head.run});
    }
  }

  std::size_t budget_;
  std::size_t bytes_ = 0;
  std::vector<Record> buffer_;
  std::vector<File> runs_;
};

/// What one report says besides its results and invalid lines.
struct ReportInfo {
  std::string name;
  std::optional<Shard> shard;
  Json top;  ///< head and tail; "results" and "invalid_lines" left empty
};

std::string describe(const Shard& s) {
  return std::to_string(s.index) + "/" + std::to_string(s.count);
}

Shard read_shard(const std::string& name, const Json& j) {
  auto field = [&](const char* key) -> std::size_t {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned())
      throw MergeError(name + ": its \"shard\" has no whole number \"" + key + "\"");
    return it->get<std::size_t>();
  };
  Shard s{field("index"), field("count"), field("block_size")};
  if (s.count == 0 || s.index >= s.count || s.block_size == 0)
    throw MergeError(name + ": its \"shard\" is not a valid shard");
  return s;
}

/// Reads one report, streaming: its results go to `results` (keyed by index), its invalid lines to
/// `invalid` (keyed by line), both tagged with `source`, and are counted into `totals`.
ReportInfo read_report(const std::string& name, std::uint32_t source, ExternalSort& results,
                       ExternalSort& invalid, Totals& totals) {
  ReportInfo info;
  info.name = name;
  std::error_code ec;
  if (std::filesystem::is_directory(name, ec))
    throw MergeError("cannot read '" + name + "': is a directory");
  errno = 0;
  std::ifstream in(name, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw MergeError("cannot read '" + name + "': " + (err != 0 ? std::strerror(err) : "cannot open"));
  }

  std::string top_key;
  auto on_result = [&](const Json& entry) {
    const auto index = entry.find("index");
    const auto status = entry.find("status");
    if (index == entry.end() || !index->is_number_unsigned() || status == entry.end() || !status->is_string())
      throw MergeError(name + ": a result without a whole-number \"index\" and a \"status\"");
    const auto position = index->get<std::uint64_t>();
    const std::string& s = status->get_ref<const std::string&>();
    // A result a rerun took from its run journal: counted, but its bytes were not downloaded then.
    const auto earlier = entry.find("earlier_run");
    const bool earlier_run = earlier != entry.end() && *earlier == true;
    totals.earlier_run += earlier_run;
    ++totals.urls;
    if (s == "ok") {
      ++totals.ok;
      const auto bytes = entry.find("bytes");
      if (!earlier_run && bytes != entry.end() && bytes->is_number_unsigned())
        totals.bytes += bytes->get<std::uint64_t>();
    } else if (s == "skipped") {
      ++totals.skipped;
    } else if (s == "failed") {
      ++totals.failed;
      const auto error = entry.find("error");
      totals.host_unreachable += error != entry.end() && *error == "host_unreachable";
    } else if (s == "cancelled") {
      ++totals.cancelled;
    } else {
      throw MergeError(name + ": result " + std::to_string(position) + " has an unknown status '" + s + "'");
    }
    results.add(position, source, dump(entry));
  };
  auto on_invalid = [&](const Json& entry) {
    const auto line = entry.find("line");
    if (line == entry.end() || !line->is_number_unsigned())
      throw MergeError(name + ": an invalid line without a whole-number \"line\"");
    ++totals.invalid_lines;
    invalid.add(line->get<std::uint64_t>(), source, dump(entry));
  };

  using Event = Json::parse_event_t;
  try {
    info.top = Json::parse(in, [&](int depth, Event event, Json& parsed) {
      if (depth == 0 && event == Event::value)
        throw MergeError(name + ": not an imgdl report (not a JSON object)");
      if (depth == 1 && event == Event::key) {
        top_key = parsed.get<std::string>();
        return true;
      }
      if (depth == 1 && event == Event::object_end && top_key == "shard") {
        info.shard = read_shard(name, parsed);
        return true;
      }
      if (depth == 2 && (top_key == "results" || top_key == "invalid_lines")) {
        if (event == Event::value || event == Event::array_end)
          throw MergeError(name + ": an entry of \"" + top_key + "\" is not an object");
        if (event == Event::object_end) {
          if (top_key == "results")
            on_result(parsed);
          else
            on_invalid(parsed);
          return false;  // kept in the sort, not in memory
        }
      }
      return true;
    });
  } catch (const Json::parse_error& e) {
    throw MergeError(name + ": not an imgdl report (not valid JSON: " + std::string(e.what()) + ")");
  }
  if (!info.top.is_object())
    throw MergeError(name + ": not an imgdl report (not a JSON object)");
  for (const char* key : {"imgdl_version", "results", "invalid_lines", "totals", "interrupted", "exit_code"})
    if (!info.top.contains(key))
      throw MergeError(name + ": not an imgdl report (no \"" + std::string(key) + "\"; cut short?)");
  if (!info.top["results"].is_array() || !info.top["invalid_lines"].is_array() ||
      !info.top["totals"].is_object() || !info.top["interrupted"].is_boolean() ||
      !info.top["exit_code"].is_number_integer())
    throw MergeError(name + ": not an imgdl report (a field of the wrong type)");
  return info;
}

/// The reports' shards must make one whole list: all or none given, one count and block size, each
/// shard exactly once.
void check_shards(const std::vector<ReportInfo>& reports) {
  const auto with =
      std::count_if(reports.begin(), reports.end(), [](const auto& r) { return r.shard.has_value(); });
  if (with == 0)
    return;
  if (static_cast<std::size_t>(with) != reports.size()) {
    const auto& whole = *std::find_if(reports.begin(), reports.end(), [](const auto& r) { return !r.shard; });
    throw MergeError(whole.name +
                     " is a whole run's report, the others are shards' (--shard): merge one or the other");
  }
  const Shard& first = *reports.front().shard;
  std::map<std::size_t, const ReportInfo*> seen;
  for (const auto& r : reports) {
    if (r.shard->count != first.count || r.shard->block_size != first.block_size)
      throw MergeError(r.name + " is shard " + describe(*r.shard) + " in blocks of " +
                       std::to_string(r.shard->block_size) + ", " + reports.front().name + " shard " +
                       describe(first) + " in blocks of " + std::to_string(first.block_size) +
                       ": not shards of one split");
    const auto [it, inserted] = seen.emplace(r.shard->index, &r);
    if (!inserted)
      throw MergeError(it->second->name + " and " + r.name + " are both shard " + describe(*r.shard) +
                       ": overlapping shards");
  }
  std::string missing;
  for (std::size_t k = 0; k < first.count; ++k)
    if (!seen.contains(k))
      missing += (missing.empty() ? "" : ", ") + std::to_string(k);
  if (!missing.empty())
    throw MergeError("shard(s) " + missing + " of " + std::to_string(first.count) +
                     " missing: give the report of every shard");
}

int merge(const std::vector<std::string>& names, const std::optional<std::filesystem::path>& out,
          std::size_t sort_buffer) {
  ExternalSort results(sort_buffer - sort_buffer / 8);
  ExternalSort invalid(sort_buffer / 8);
  Totals totals;
  std::vector<ReportInfo> reports;
  bool interrupted = false;
  int interrupted_code = 0;
  bool input_error = false;
  for (std::size_t i = 0; i < names.size(); ++i) {
    reports.push_back(read_report(names[i], static_cast<std::uint32_t>(i), results, invalid, totals));
    const Json& top = reports.back().top;
    const auto elapsed = top["totals"].find("elapsed_s");
    if (elapsed != top["totals"].end() && elapsed->is_number())
      totals.elapsed_s = std::max(totals.elapsed_s, elapsed->get<double>());
    const int code = top["exit_code"].get<int>();
    if (top["interrupted"].get<bool>()) {
      interrupted = true;
      interrupted_code = std::max(interrupted_code, code);
    }
    input_error = input_error || code == exit_usage;
  }
  check_shards(reports);
  const int exit_code = interrupted       ? interrupted_code
                        : input_error     ? exit_usage
                        : totals.all_ok() ? exit_ok
                                          : exit_some_failed;

  // The merged report goes under a temporary name beside OUT, renamed only once whole.
  std::optional<std::filesystem::path> part;
  std::ofstream file;
  if (out) {
    part = out->string() + ".part";
    try {
      file = open_report_file(*part);
    } catch (const std::runtime_error& e) {
      throw MergeError(e.what());
    }
  }
  struct RemovePart {
    const std::optional<std::filesystem::path>& part;
    bool keep = false;
    ~RemovePart() {
      std::error_code ignored;
      if (part && !keep)
        std::filesystem::remove(*part, ignored);
    }
  } remove_part{part};

  ReportWriter writer({out ? static_cast<std::ostream*>(&file) : &std::cout});
  const Json& head = reports.front().top;
  const auto workers = head.find("workers");
  writer.begin(head.value("mode", std::string("pooled")),
               workers != head.end() && workers->is_number_unsigned() ? workers->get<std::size_t>() : 0,
               head.value("output_dir", std::string()));
  std::optional<std::uint64_t> previous;
  std::uint32_t previous_source = 0;
  auto overlap = [&](const char* what, std::uint64_t key, std::uint32_t source) {
    if (previous && *previous == key)
      throw MergeError(std::string(what) + " " + std::to_string(key) + " is in both " +
                       names[previous_source] + " and " + names[source] + ": overlapping reports");
    previous = key;
    previous_source = source;
  };
  results.for_each([&](std::uint64_t index, std::uint32_t source, std::string_view text) {
    // Checked here rather than while reading: a report's "shard" may come after its results.
    if (const auto& shard = reports[source].shard; shard && !shard->owns(index))
      throw MergeError(names[source] + ": result " + std::to_string(index) + " is not in its shard " +
                       describe(*shard) + " (blocks of " + std::to_string(shard->block_size) + ")");
    overlap("result", index, source);
    writer.add_result_text(text);
  });
  previous.reset();
  invalid.for_each([&](std::uint64_t line, std::uint32_t source, std::string_view text) {
    overlap("invalid line", line, source);
    writer.add_invalid_line_text(text);
  });
  if (!writer.finish(totals, interrupted, exit_code))
    throw MergeError("cannot write the merged report '" + (out ? part->string() : std::string("<stdout>")) +
                     "'");
  if (out) {
    file.close();
    std::error_code ec;
    std::filesystem::rename(*part, *out, ec);
    if (ec)
      throw MergeError("cannot write the merged report '" + out->string() + "': " + ec.message());
    remove_part.keep = true;
  }
  std::cerr << "imgdl merge: " << reports.size() << " report(s), " << totals.urls << " result(s), "
            << totals.invalid_lines << " invalid line(s)" << (out ? " -> " + out->string() : std::string())
            << "\n";
  return exit_code;
}

/// What `imgdl merge`'s command line gives.
struct MergeArgs {
  std::vector<std::string> names;
  std::string out;
  CLI::Option* out_opt = nullptr;
  std::string sort_buffer = "64M";
};

/// `imgdl merge`'s options, on an app named "imgdl merge": its --help and its completion read this one
/// table.
void add_merge_options(CLI::App& app, MergeArgs& args) {
  app.description(
      "imgdl merge: join the reports of a list's shards (imgdl --shard K/N --report FILE) into the "
      "report one run over the whole list would have written.");
  app.footer(R"(Results come out in input order (by index), invalid lines by line; the totals are counted
again from the results and the exit status is one run's. Every shard's report must be given,
once. Large reports are sorted on disk (temporary files), in --sort-buffer of memory.

Example:
  imgdl merge reports/shard-*.json --report report.json)");
  app.add_option("REPORT", args.names, "The shards' reports (imgdl --report FILE)")
      ->required()
      ->option_text("...");
  args.out_opt = app.add_option("--report", args.out, "Write the merged report to FILE (default: stdout)")
                     ->option_text("FILE");
  app.add_option("--sort-buffer", args.sort_buffer,
                 "Memory for sorting before spilling to disk (default: 64M)")
      ->option_text("SIZE")
      ->check(
          [](const std::string& s) {
            const auto size = parse_size(s);
            return size && *size >= 1024 ? std::string() : "not a size of at least 1K: " + s;
          },
          "SIZE");
}

}  // namespace

SubcommandDoc merge_doc() {
  CLI::App app{"", "imgdl merge"};
  MergeArgs args;
  add_merge_options(app, args);
  return {"merge", "join the reports of --shard runs into one", "REPORT", option_docs(app)};
}

int run_merge(int argc, char** argv) {
  CLI::App app{"", "imgdl merge"};
  MergeArgs args;
  add_merge_options(app, args);
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
      return app.exit(e);
    std::cerr << "imgdl merge: " << e.what() << "\nRun 'imgdl merge --help' for usage.\n";
    return exit_usage;
  }
  try {
    return merge(args.names,
                 args.out_opt->count() > 0 ? std::optional<std::filesystem::path>(args.out) : std::nullopt,
                 static_cast<std::size_t>(*parse_size(args.sort_buffer)));
  } catch (const MergeError& e) {
    std::cerr << "imgdl merge: " << e.what() << "\n";
    return exit_usage;
  }
}

}  // namespace imgdl::app
