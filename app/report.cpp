#include "report.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "format.hpp"
#include "imgdl/version.hpp"

namespace imgdl::app {

Totals compute_totals(const std::vector<DownloadResult>& results, std::size_t invalid_lines,
                      double elapsed_s) {
  Totals t;
  t.urls = results.size();
  t.invalid_lines = invalid_lines;
  t.elapsed_s = elapsed_s;
  for (const auto& r : results) {
    switch (r.status) {
      case DownloadStatus::Ok:
        ++t.ok;
        t.bytes += r.bytes;
        break;
      case DownloadStatus::Skipped:
        ++t.skipped;
        break;
      case DownloadStatus::Failed:
        ++t.failed;
        break;
      case DownloadStatus::Cancelled:
        ++t.cancelled;
        break;
    }
  }
  return t;
}

nlohmann::ordered_json to_json(const DownloadResult& r) {
  return {
      {"url", r.url},
      {"path", r.path.string()},
      {"status", std::string(to_string(r.status))},
      {"http_status", r.http_status},
      {"bytes", r.bytes},
      {"image_type", std::string(to_string(r.image_type))},
      {"sha256", r.sha256},
      {"attempts", r.attempts},
      {"elapsed_s", to_seconds(r.elapsed)},
      {"error", std::string(to_string(r.error))},
      {"message", r.message},
  };
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
      {"cancelled", t.cancelled},
      {"invalid_lines", t.invalid_lines},
      {"bytes", t.bytes},
      {"elapsed_s", t.elapsed_s},
      {"bytes_per_s", t.elapsed_s > 0 ? static_cast<double>(t.bytes) / t.elapsed_s : 0.0},
  };
}

nlohmann::ordered_json build_report(const ReportInput& in) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  if (in.results != nullptr) {
    for (const auto& r : *in.results)
      results.push_back(to_json(r));
  }
  nlohmann::ordered_json invalid = nlohmann::ordered_json::array();
  if (in.invalid_lines != nullptr) {
    for (const auto& e : *in.invalid_lines)
      invalid.push_back(to_json(e));
  }
  nlohmann::ordered_json report = {
      {"imgdl_version", std::string(imgdl::version())},
      {"mode", in.mode},
      {"workers", in.workers},
      {"output_dir", in.output_dir.string()},
      {"results", std::move(results)},
      {"invalid_lines", std::move(invalid)},
      {"totals", to_json(in.totals)},
      {"interrupted", in.interrupted},
      {"exit_code", in.exit_code},
  };
  if (in.compare)
    report["compare"] = *in.compare;
  return report;
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

bool write_report(std::ostream& out, const nlohmann::ordered_json& report) {
  // A URL or name may carry any bytes: replace invalid UTF-8 rather than throw mid-report.
  out << report.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace imgdl::app
