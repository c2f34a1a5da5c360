#include "imgdl/download_result.hpp"

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

}  // namespace imgdl
