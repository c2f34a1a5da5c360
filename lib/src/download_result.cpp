#include "imgdl/download_result.hpp"

#include "result_json.hpp"

namespace imgdl {

std::string_view to_string(DownloadStatus status) noexcept {
  switch (status) {
    case DownloadStatus::Ok:
      return "ok";
    case DownloadStatus::Skipped:
      return "skipped";
    case DownloadStatus::Failed:
      return "failed";
    case DownloadStatus::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::None:
      return "none";
    case ErrorKind::InvalidUrl:
      return "invalid_url";
    case ErrorKind::Dns:
      return "dns";
    case ErrorKind::Connect:
      return "connect";
    case ErrorKind::Tls:
      return "tls";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::HttpStatus:
      return "http_status";
    case ErrorKind::TooManyRedirects:
      return "too_many_redirects";
    case ErrorKind::ForbiddenRedirect:
      return "forbidden_redirect";
    case ErrorKind::TooLarge:
      return "too_large";
    case ErrorKind::NotImage:
      return "not_image";
    case ErrorKind::CorruptImage:
      return "corrupt_image";
    case ErrorKind::Filtered:
      return "filtered";
    case ErrorKind::Empty:
      return "empty";
    case ErrorKind::Truncated:
      return "truncated";
    case ErrorKind::Network:
      return "network";
    case ErrorKind::Write:
      return "write";
    case ErrorKind::Cancelled:
      return "cancelled";
    case ErrorKind::HostUnreachable:
      return "host_unreachable";
  }
  return "unknown";
}

namespace detail {

void append_result_fields(nlohmann::ordered_json& json, const DownloadResult& r) {
  json["url"] = r.url;
  json["path"] = r.path.string();
  json["status"] = std::string(to_string(r.status));
  json["http_status"] = r.http_status;
  json["http_version"] = r.http_version;
  json["bytes"] = r.bytes;
  json["image_type"] = std::string(to_string(r.image_type));
  json["width"] = r.width;
  json["height"] = r.height;
  json["orientation"] = r.orientation;
  json["sha256"] = r.sha256;
  json["attempts"] = r.attempts;
  json["elapsed_s"] = std::chrono::duration<double>(r.elapsed).count();
  json["error"] = std::string(to_string(r.error));
  json["message"] = r.message;
}

}  // namespace detail

std::string to_json_text(const DownloadResult& result) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  detail::append_result_fields(json, result);
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace imgdl
