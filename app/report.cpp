#include "report.hpp"

#include "cli_options.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include "format.hpp"
#include "imgdl/version.hpp"

namespace imgdl::app {

void Totals::add(const DownloadResult& r) {
  ++urls;
  switch (r.status) {
    case DownloadStatus::Ok:
      ++ok;
      bytes += r.bytes;
      break;
    case DownloadStatus::Skipped:
      ++skipped;
      break;
    case DownloadStatus::Failed:
      ++failed;
      host_unreachable += r.error == ErrorKind::HostUnreachable;
      break;
    case DownloadStatus::Cancelled:
      ++cancelled;
      break;
  }
}

void Totals::add_earlier(const DownloadResult& r) {
  add(r);
  if (r.status == DownloadStatus::Ok)
    bytes -= r.bytes;
  ++earlier_run;
}

Totals compute_totals(const std::vector<DownloadResult>& results, std::size_t invalid_lines,
                      double elapsed_s) {
  Totals t;
  for (const auto& r : results)
    t.add(r);
  t.invalid_lines = invalid_lines;
  t.elapsed_s = elapsed_s;
  return t;
}

namespace {

/// `json` as text; a URL or name may carry any bytes, so invalid UTF-8 is replaced, never thrown on.
std::string dump(const nlohmann::ordered_json& json, int indent = -1) {
  return json.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

/// An array element's lead-in: the elements sit one per line, at the second indentation level.
std::string_view element_prefix(bool first) {
  return first ? "\n    " : ",\n    ";
}

/// What a report entry adds after the result's own fields.
nlohmann::ordered_json entry_members(const DownloadResult& r, std::size_t index) {
  return {
      {"index", index},
      {"format", std::string(to_string(r.image_type))},  // image_type's other name, as dataset tools call it
  };
}

/// A report entry's text: the library's fields of `r` (to_json_text), its message naming CLI flags, then
/// `more`'s members. Spliced as text rather than parsed back: a long list's report writes millions.
std::string entry_text(const DownloadResult& r, const nlohmann::ordered_json& more) {
  std::string message = cli_message(r.message);
  std::string text;
  if (message == r.message) {
    text = to_json_text(r);
  } else {
    DownloadResult shown = r;
    shown.message = std::move(message);
    text = to_json_text(shown);
  }
  // Two compact objects, "{a}" and "{b}", make "{a,b}": their keys never overlap.
  text.pop_back();
  return text + "," + dump(more).substr(1);
}

}  // namespace

nlohmann::ordered_json to_json(const DownloadResult& r, std::size_t index) {
  return nlohmann::ordered_json::parse(entry_text(r, entry_members(r, index)));
}

nlohmann::ordered_json to_json(const UrlLineError& e) {
  return {{"line", e.line_number}, {"text", e.text}, {"message", e.message}};
}

nlohmann::ordered_json to_json(const Totals& t) {
  return {
      {"urls", t.urls},
      {"ok", t.ok},
      {"skipped", t.skipped},
      {"failed", t.failed},
      {"host_unreachable", t.host_unreachable},
      {"cancelled", t.cancelled},
      {"invalid_lines", t.invalid_lines},
      {"earlier_run", t.earlier_run},
      {"bytes", t.bytes},
      {"elapsed_s", t.elapsed_s},
      {"bytes_per_s", t.elapsed_s > 0 ? static_cast<double>(t.bytes) / t.elapsed_s : 0.0},
  };
}

nlohmann::ordered_json to_json(const Shard& shard) {
  return {{"index", shard.index}, {"count", shard.count}, {"block_size", shard.block_size}};
}

std::string extras_json(const RowExtras& extras) {
  if (!extras.caption && extras.columns.empty())
    return {};
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (extras.caption)
    json["caption"] = *extras.caption;
  if (!extras.columns.empty()) {
    nlohmann::ordered_json columns = nlohmann::ordered_json::object();
    for (const auto& [name, value] : extras.columns)
      columns[name] = value;
    json["columns"] = std::move(columns);
  }
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::ofstream open_report_file(const std::filesystem::path& file) {
  errno = 0;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) {
    const int err = errno;
    throw std::runtime_error("cannot write report '" + file.string() +
                             "': " + (err != 0 ? std::strerror(err) : "cannot open"));
  }
  return out;
}

ReportWriter::ReportWriter(std::vector<std::ostream*> sinks) : sinks_(std::move(sinks)) {}

ReportWriter::~ReportWriter() {
  if (spill_ != nullptr)
    std::fclose(spill_);
}

void ReportWriter::write(std::string_view text) {
  for (auto* sink : sinks_)
    sink->write(text.data(), static_cast<std::streamsize>(text.size()));
}

void ReportWriter::begin(std::string_view mode, std::size_t workers, const std::filesystem::path& output_dir,
                         const std::optional<Shard>& shard) {
  nlohmann::ordered_json head = {
      {"imgdl_version", std::string(imgdl::version())},
      {"mode", std::string(mode)},
      {"workers", workers},
      {"output_dir", output_dir.string()},
  };
  if (shard)
    head["shard"] = to_json(*shard);
  // The pretty-printed head without its closing "\n}", so the results array can follow.
  std::string text = dump(head, 2);
  text.resize(text.size() - 2);
  write(text + ",\n  \"results\": [");
}

void ReportWriter::add_result(std::size_t index, const DownloadResult& result, const RowExtras* extras) {
  auto more = entry_members(result, index);
  if (extras != nullptr) {
    if (extras->key)
      more["key"] = *extras->key;
    if (extras->caption)
      more["caption"] = *extras->caption;
    if (!extras->columns.empty()) {
      nlohmann::ordered_json columns = nlohmann::ordered_json::object();
      for (const auto& [name, value] : extras->columns)
        columns[name] = value;
      more["columns"] = std::move(columns);
    }
  }
  add_result_text(entry_text(result, more));
}

void ReportWriter::add_result_text(std::string_view json) {
  write(std::string(element_prefix(results_++ == 0)) + std::string(json));
}

void ReportWriter::add_earlier_result(std::size_t index, const DownloadResult& result,
                                      std::string_view extras_json, const std::optional<std::string>& key) {
  auto more = entry_members(result, index);
  if (key)
    more["key"] = *key;
  if (!extras_json.empty()) {
    const auto extras = nlohmann::ordered_json::parse(extras_json, nullptr, false);
    if (extras.is_object()) {
      for (const char* name : {"caption", "columns"}) {
        if (const auto it = extras.find(name); it != extras.end())
          more[name] = *it;
      }
    }
  }
  more["earlier_run"] = true;
  write(std::string(element_prefix(results_++ == 0)) + entry_text(result, more));
}

void ReportWriter::add_invalid_line(const UrlLineError& error) {
  add_invalid_line_text(dump(to_json(error)));
}

void ReportWriter::add_invalid_line_text(std::string_view json) {
  const bool first = spill_ == nullptr && spill_fallback_.empty();
  const std::string text = std::string(element_prefix(first)) + std::string(json);
  if (first && !spill_failed_)
    spill_ = std::tmpfile();  // deleted when closed, even if the process dies
  if (spill_ == nullptr) {
    spill_fallback_ += text;  // no temporary file: memory, as a last resort
  } else if (std::fwrite(text.data(), 1, text.size(), spill_) != text.size()) {
    spill_failed_ = true;
  }
}

bool ReportWriter::finish(const Totals& totals, bool interrupted, int exit_code,
                          const std::optional<nlohmann::ordered_json>& compare) {
  write(results_ > 0 ? "\n  ],\n  \"invalid_lines\": [" : "],\n  \"invalid_lines\": [");
  bool any_invalid = !spill_fallback_.empty();
  if (spill_ != nullptr) {
    std::rewind(spill_);
    char buffer[1 << 14];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, spill_)) > 0) {
      write(std::string_view(buffer, n));
      any_invalid = true;
    }
    spill_failed_ = spill_failed_ || std::ferror(spill_) != 0;
  }
  write(spill_fallback_);
  write(any_invalid ? "\n  ],\n" : "],\n");

  nlohmann::ordered_json tail = {
      {"totals", to_json(totals)},
      {"interrupted", interrupted},
      {"exit_code", exit_code},
  };
  if (compare)
    tail["compare"] = *compare;
  // The pretty-printed tail without its opening "{\n": its keys continue the top-level object.
  write(dump(tail, 2).substr(2) + "\n");
  bool ok = !spill_failed_;
  for (auto* sink : sinks_)
    ok = static_cast<bool>(sink->flush()) && ok;
  return ok;
}

}  // namespace imgdl::app
