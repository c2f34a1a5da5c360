#pragma once
// The run's totals and the JSON report (--report FILE, --json).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgdl/download_result.hpp"
#include "imgdl/url_list.hpp"

namespace imgdl::app {

/// Counts over one run's results.
struct Totals {
  std::size_t urls = 0;  ///< results (valid list lines and URL arguments)
  std::size_t ok = 0;
  std::size_t skipped = 0;
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  std::size_t invalid_lines = 0;  ///< list lines rejected before downloading; they count as failures
  std::uint64_t bytes = 0;        ///< bytes of the files downloaded in this run (Ok only)
  double elapsed_s = 0;           ///< wall time of the run

  bool all_ok() const noexcept { return failed == 0 && cancelled == 0 && invalid_lines == 0; }
};

Totals compute_totals(const std::vector<DownloadResult>& results, std::size_t invalid_lines,
                      double elapsed_s);

/// Every DownloadResult field: url, path, status, http_status, bytes, image_type, sha256, attempts,
/// elapsed_s, error, message.
nlohmann::ordered_json to_json(const DownloadResult& result);
nlohmann::ordered_json to_json(const UrlLineError& error);
nlohmann::ordered_json to_json(const Totals& totals);

/// What the report describes.
struct ReportInput {
  std::string mode;  ///< "pooled", "sequential" or "compare"
  std::size_t workers = 0;
  std::filesystem::path output_dir;
  const std::vector<DownloadResult>* results = nullptr;  ///< the kept files' run
  const std::vector<UrlLineError>* invalid_lines = nullptr;
  Totals totals;
  bool interrupted = false;
  int exit_code = 0;
  std::optional<nlohmann::ordered_json> compare;  ///< the --compare table
};

nlohmann::ordered_json build_report(const ReportInput& input);

/// Opens (creates or truncates) the report file up front, so a bad path fails before any download.
/// Throws std::runtime_error with a user-facing message.
std::ofstream open_report_file(const std::filesystem::path& file);

/// Writes `report` pretty-printed, invalid UTF-8 replaced. False if the stream failed.
bool write_report(std::ostream& out, const nlohmann::ordered_json& report);

}  // namespace imgdl::app
