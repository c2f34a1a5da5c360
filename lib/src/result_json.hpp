#pragma once
// A DownloadResult's JSON fields, for the library's own JSON (the run journal) to embed without a
// second parse; to_json_text() (imgdl/download_result.hpp) is the public face of the same mapping.

#include <nlohmann/json.hpp>

#include "imgdl/download_result.hpp"

namespace imgdl::detail {

/// Appends the fields to_json_text() names, in its order, to the object `json`. Thread-safe: touches
/// only its arguments.
void append_result_fields(nlohmann::ordered_json& json, const DownloadResult& result);

}  // namespace imgdl::detail
