#include "imgdl/version.hpp"

#include <curl/curl.h>

#include "version_config.hpp"

namespace imgdl {

std::string_view version() noexcept {
  return IMGDL_VERSION_STRING;
}

std::string_view libcurl_version() noexcept {
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  return info && info->version ? info->version : "unknown";
}

std::string_view project_url() noexcept {
  return IMGDL_PROJECT_URL;
}

}  // namespace imgdl
