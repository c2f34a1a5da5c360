#include "transfer.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <variant>

#include "body_sink.hpp"
#include "image_info.hpp"
#include "image_type.hpp"

namespace imgdl::detail {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds progress_interval{100};  // at most 10 Hz per transfer

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool iequals_prefix(std::string_view line, std::string_view prefix) {
  if (line.size() < prefix.size())
    return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size())
    return std::nullopt;
  return value;
}

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return buffer;
}

// HTTP/2 responses carry no reason phrase; these keep messages readable for the common codes.
std::string_view standard_reason(long status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

bool retryable_status(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace

/// The per-attempt state libcurl's callbacks work on, alive from begin_attempt() to end_attempt().
struct Attempt {
  const DownloadOptions& options;
  PartFile& part;
  Sha256& hash;
  bool hash_while_streaming;  // the sink's choice: false when no digest is asked for, or it comes later
  bool hold_small_bodies;     // the sink's choice: a small body waits in memory until publication
  std::stop_token stop;
  const ProgressReport& report;
  bool use_range;
  std::uint64_t start_offset;  // bytes already in the part file when the attempt began
  char error_buffer[CURL_ERROR_SIZE] = {};

  // The current response's headers (reset at each status line, since redirects bring several).
  long status = 0;
  std::string reason;
  std::optional<std::uint64_t> content_length;
  std::string content_type;
  std::string content_range;
  bool encoded = false;  // a Content-Encoding libcurl decodes: Content-Length counts the encoded bytes
  std::optional<std::chrono::milliseconds> retry_after;

  bool body_started = false;
  std::string head;  // body bytes held back until the image type can be told
  ImageType type = ImageType::Unknown;
  bool sniffed = false;
  std::optional<ImageInspector> inspector;  // reads the image's structure once its type is known
  bool size_checked = false;
  Clock::time_point last_report{};

  // Set by a callback that aborts the transfer; libcurl then reports CURLE_WRITE_ERROR.
  ErrorKind abort_kind = ErrorKind::None;
  std::string abort_message;
  bool restart_from_scratch = false;

  /// The decoded size the body will have, when the headers tell it.
  std::optional<std::uint64_t> expected_total() const {
    if (!content_length || encoded)
      return std::nullopt;
    return (status == 206 ? start_offset : 0) + *content_length;
  }

  bool fail(ErrorKind kind, std::string message) {
    abort_kind = kind;
    abort_message = std::move(message);
    return false;
  }

  std::string http_message() const {
    std::string message = "HTTP " + std::to_string(status);
    const std::string_view phrase = reason.empty() ? standard_reason(status) : std::string_view(reason);
    if (!phrase.empty())
      message += " " + std::string(phrase);
    return message;
  }

  std::string too_large_message(std::uint64_t size) const {
    return "larger than the " + human_bytes(options.max_file_size) + " limit (" + std::to_string(size) +
           " bytes)";
  }

  void on_header(std::string_view line) {
    if (iequals_prefix(line, "HTTP/")) {
      const auto space = line.find(' ');
      const auto rest = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
      status = static_cast<long>(parse_u64(rest.substr(0, 3)).value_or(0));
      reason = std::string(trim(rest.size() > 3 ? rest.substr(3) : std::string_view()));
      content_length.reset();
      content_type.clear();
      content_range.clear();
      encoded = false;
      retry_after.reset();
      return;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos)
      return;
    const auto name = line.substr(0, colon);
    const auto value = trim(line.substr(colon + 1));
    auto is = [&](std::string_view header) {
      return name.size() == header.size() && iequals_prefix(name, header);
    };
    if (is("content-length")) {
      content_length = parse_u64(value);
    } else if (is("content-type")) {
      content_type = std::string(value.substr(0, value.find(';')));
    } else if (is("content-range")) {
      content_range = std::string(value);
    } else if (is("content-encoding")) {
      encoded = !value.empty() && !(value.size() == 8 && iequals_prefix(value, "identity"));
    } else if (is("retry-after")) {
      retry_after = parse_retry_after(value);
    }
  }

  /// The end of a response's headers: refuse an oversized body before it arrives.
  bool on_headers_complete() {
    if (status < 200 || status >= 300 || options.max_file_size == 0)
      return true;
    const auto total = expected_total();
    if (total && *total > options.max_file_size)
      return fail(ErrorKind::TooLarge, too_large_message(*total));
    return true;
  }

  /// Decides, at the first body byte of the final response, whether this body is wanted.
  bool on_body_start() {
    body_started = true;
    if (status < 200 || status >= 300)
      return fail(ErrorKind::HttpStatus, http_message());
    if (use_range && status == 206) {
      // "bytes START-END/TOTAL": it must continue exactly where our part file ends.
      const std::string_view range = content_range;
      const auto dash = range.find('-');
      const auto start = iequals_prefix(range, "bytes ") && dash != std::string_view::npos
                             ? parse_u64(trim(range.substr(6, dash - 6)))
                             : std::nullopt;
      if (!start || *start != start_offset) {
        restart_from_scratch = true;
        return fail(ErrorKind::Network,
                    "the server's Content-Range '" + content_range + "' does not continue the part file");
      }
      return true;
    }
    if (start_offset > 0) {
      // The server ignored our Range and sends the whole body: start the file over.
      if (auto error = part.truncate())
        return fail(ErrorKind::Write, "cannot truncate: " + error.message());
      hash = Sha256();
      head.clear();
      start_offset = 0;
      if (inspector)
        inspector.emplace(type);  // the body starts over from its first byte
    }
    return true;
  }

  /// Tells the image type once enough of the body is held (or the body has ended).
  bool sniff(bool final) {
    if (sniffed || (!final && head.size() < sniff_bytes_needed()))
      return true;
    sniffed = true;
    type = sniff_image_type(head);
    if (type == ImageType::Unknown && options.require_image) {
      return fail(ErrorKind::NotImage,
                  "not an image (server sent " +
                      (content_type.empty() ? std::string("no Content-Type") : content_type) + ")");
    }
    if (type == ImageType::Unknown)
      return true;
    inspector.emplace(type);
    return inspect(head);
  }

  /// Reads the image's structure from its next bytes: a broken one, or one whose header puts it outside
  /// the size limits, is refused as soon as that shows, and the transfer stops.
  bool inspect(std::string_view data) {
    if (!inspector)
      return true;
    inspector->feed(data);
    if (const auto& broken = inspector->broken()) {
      restart_from_scratch = true;  // a retry, or a resume, must not continue these bytes
      return fail(ErrorKind::CorruptImage, "corrupt image: " + *broken);
    }
    if (!size_checked && inspector->has_dimensions()) {
      size_checked = true;
      const ImageLimits limits{options.min_width, options.min_height, options.max_pixels, options.max_aspect};
      if (auto refusal = size_refusal(inspector->facts(), limits))
        return fail(ErrorKind::Filtered, "filtered: " + *refusal);
    }
    return true;
  }

  bool write(std::string_view data) {
    if (auto error = append_body(part, hash_while_streaming ? &hash : nullptr, data))
      return fail(ErrorKind::Write, "cannot write " + part.name() + ": " + error.message());
    return true;
  }

  /// A small body is held in memory whole and written when the loop publishes it, after the
  /// connection's next request is out; a larger one is streamed to the part file. So is any body whose
  /// part file is not open yet (the loop opens it just after sending the request). Under Resume every
  /// byte received goes to the part file at once, for a cut transfer to keep it.
  bool on_body(std::string_view data) {
    if (!body_started && !on_body_start())
      return false;
    const std::uint64_t received = part.size() + head.size() + data.size();
    if (options.max_file_size != 0 && received > options.max_file_size)
      return fail(ErrorKind::TooLarge, too_large_message(received));
    if (sniffed && !inspect(data))
      return false;
    const bool hold = !part.is_open() || (hold_small_bodies && received <= held_body_limit);
    if (hold || !sniffed) {
      head.append(data);
      if (!sniff(false))
        return false;
      if (hold || !sniffed)
        return true;
      data = {};  // all of it is in head now
    }
    if (!head.empty()) {
      if (!write(head))
        return false;
      head.clear();
    }
    return data.empty() || write(data);
  }

  void maybe_report(bool force) {
    const auto now = Clock::now();
    if (!force && now - last_report < progress_interval)
      return;
    last_report = now;
    if (report)
      report(part.size() + head.size(), expected_total());
  }
};

void AttemptDeleter::operator()(Attempt* attempt) const noexcept {
  delete attempt;
}

namespace {

std::size_t header_callback(char* data, std::size_t size, std::size_t count, void* user) {
  auto& attempt = *static_cast<Attempt*>(user);
  const std::size_t bytes = size * count;
  const std::string_view line(data, bytes);
  if (line == "\r\n" || line == "\n")
    return attempt.on_headers_complete() ? bytes : 0;
  attempt.on_header(line);
  return bytes;
}

std::size_t write_callback(char* data, std::size_t size, std::size_t count, void* user) {
  auto& attempt = *static_cast<Attempt*>(user);
  const std::size_t bytes = size * count;
  return attempt.on_body(std::string_view(data, bytes)) ? bytes : 0;
}

int progress_callback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& attempt = *static_cast<Attempt*>(user);
  if (attempt.stop.stop_requested())
    return 1;  // aborts with CURLE_ABORTED_BY_CALLBACK
  if (attempt.body_started)
    attempt.maybe_report(false);
  return 0;
}

template <class T>
void set(CURL* easy, CURLoption option, T value) {
  // Every option set here is supported by the libcurl imgdl requires; a failure is a programming error
  // that the attempt's own result would reveal, so the return code is deliberately not checked.
  curl_easy_setopt(easy, option, value);
}

/// The options that change with each attempt; everything else was set once by configure_handle().
/// Only the URL can fail (out of memory, too long); the handle is reused, so a URL that did not take
/// would leave the previous attempt's in place.
CURLcode configure_attempt(CURL* easy, const std::string& url, Attempt& attempt, const std::string& range) {
  if (const CURLcode code = curl_easy_setopt(easy, CURLOPT_URL, url.c_str()); code != CURLE_OK)
    return code;
  set(easy, CURLOPT_RANGE, range.empty() ? nullptr : range.c_str());
  set(easy, CURLOPT_ERRORBUFFER, attempt.error_buffer);
  set(easy, CURLOPT_HEADERDATA, &attempt);
  set(easy, CURLOPT_WRITEDATA, &attempt);
  set(easy, CURLOPT_XFERINFODATA, &attempt);
  return CURLE_OK;
}

ErrorKind classify(CURLcode code, long redirects) {
  switch (code) {
    case CURLE_URL_MALFORMAT:
      return ErrorKind::InvalidUrl;
    case CURLE_UNSUPPORTED_PROTOCOL:
      return redirects > 0 ? ErrorKind::ForbiddenRedirect : ErrorKind::InvalidUrl;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return ErrorKind::Dns;
    case CURLE_COULDNT_CONNECT:
      return ErrorKind::Connect;
    case CURLE_OPERATION_TIMEDOUT:
      return ErrorKind::Timeout;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return ErrorKind::Tls;
    case CURLE_TOO_MANY_REDIRECTS:
      return ErrorKind::TooManyRedirects;
    case CURLE_FILESIZE_EXCEEDED:
      return ErrorKind::TooLarge;
    case CURLE_PARTIAL_FILE:
      return ErrorKind::Truncated;
    case CURLE_ABORTED_BY_CALLBACK:
      return ErrorKind::Cancelled;
    default:
      // Including what a multiplexed connection loses (CURLE_HTTP2, CURLE_HTTP2_STREAM for a stream
      // reset or a GOAWAY, CURLE_RECV_ERROR/CURLE_SEND_ERROR for the connection under its streams):
      // transient, so each affected URL is retried on its own.
      return ErrorKind::Network;
  }
}

std::string http_version_of(CURL* easy) {
  long version = CURL_HTTP_VERSION_NONE;
  curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
  switch (version) {
    case CURL_HTTP_VERSION_1_0:
      return "1.0";
    case CURL_HTTP_VERSION_1_1:
      return "1.1";
    case CURL_HTTP_VERSION_2_0:
      return "2";
    case CURL_HTTP_VERSION_3:
      return "3";
    default:
      return {};
  }
}

bool retryable_kind(ErrorKind kind) {
  // A cut image is usually a cut connection: worth another try.
  return kind == ErrorKind::Connect || kind == ErrorKind::Timeout || kind == ErrorKind::Truncated ||
         kind == ErrorKind::Network || kind == ErrorKind::CorruptImage;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value) {
  value = trim(value);
  if (value.empty())
    return std::nullopt;
  if (auto seconds = parse_u64(value))
    return std::chrono::milliseconds(std::min<std::uint64_t>(*seconds, 86400) * 1000);
  const std::string date(value);
  const time_t when = curl_getdate(date.c_str(), nullptr);
  if (when < 0)
    return std::nullopt;
  const time_t now = std::time(nullptr);
  return std::chrono::milliseconds(when > now ? static_cast<std::int64_t>(when - now) * 1000 : 0);
}

DownloadOptions resolve_transfer_options(DownloadOptions o) {
  ensure_curl_global_init();  // before any thread touches libcurl
  if (o.retries < 0)
    throw std::invalid_argument("retries must not be negative");
  if (o.max_redirects < 0)
    throw std::invalid_argument("max_redirects must not be negative");
  if (o.user_agent.empty())
    o.user_agent = Downloader::default_user_agent();
  if (o.output_dir.empty())
    o.output_dir = ".";
  return o;
}

namespace {

/// True when libcurl was built with a default CA bundle file that exists (and so trusts its CAs).
bool has_default_ca_bundle() {
  static const bool exists = [] {
    const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
    if (info->age < CURLVERSION_NINTH || info->cainfo == nullptr)
      return false;
    std::error_code error;
    return std::filesystem::is_regular_file(info->cainfo, error);
  }();
  return exists;
}

}  // namespace

void configure_handle(CURL* easy, const TransferSettings& settings) {
  const DownloadOptions& o = *settings.options;
  set(easy, CURLOPT_NOSIGNAL, 1L);
  set(easy, CURLOPT_SHARE, settings.share);
  set(easy, CURLOPT_USERAGENT, settings.user_agent.c_str());
  set(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  set(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(easy, CURLOPT_FOLLOWLOCATION, 1L);
  set(easy, CURLOPT_MAXREDIRS, static_cast<long>(o.max_redirects));
  set(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  set(easy, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
  set(easy, CURLOPT_BUFFERSIZE, 64L * 1024);
  set(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
  set(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(o.timeout.count()));
  if (o.low_speed_time.count() > 0) {
    set(easy, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(o.low_speed_limit));
    set(easy, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.low_speed_time.count()));
  }
  set(easy, CURLOPT_SSL_VERIFYPEER, o.insecure ? 0L : 1L);
  set(easy, CURLOPT_SSL_VERIFYHOST, o.insecure ? 0L : 2L);
  if (!o.ca_file.empty())
    set(easy, CURLOPT_CAINFO, o.ca_file.c_str());
  // libcurl keeps the parsed CA store for the next connection (CURLOPT_CA_CACHE_TIMEOUT) only when no
  // CA directory is set, and Debian's sets one (/etc/ssl/certs) beside its bundle by default: every
  // new connection parsed the whole system bundle again, ~25 ms of CPU with OpenSSL 3 (measured). The
  // bundle holds the directory's CAs, so the bundle alone is used; --cacert replaces both, as its
  // help says, instead of adding the directory's CAs to the file's.
  if (!o.ca_file.empty() || has_default_ca_bundle())
    set(easy, CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  set(easy, CURLOPT_HEADERFUNCTION, &header_callback);
  set(easy, CURLOPT_WRITEFUNCTION, &write_callback);
  set(easy, CURLOPT_NOPROGRESS, 0L);
  set(easy, CURLOPT_XFERINFOFUNCTION, &progress_callback);
}

namespace {

/// A resumed part file's bytes are read once through the image inspector, which then goes on with the
/// body; a prefix that is already broken is dropped and the body fetched whole.
std::optional<AttemptOutcome> inspect_resumed_part(Attempt& attempt) {
  if (attempt.type == ImageType::Unknown)
    return std::nullopt;
  attempt.inspector.emplace(attempt.type);
  if (auto error = attempt.part.read_all([&](std::string_view chunk) { attempt.inspector->feed(chunk); }))
    return AttemptOutcome{ErrorKind::Write, "cannot read " + attempt.part.name() + ": " + error.message()};
  if (!attempt.inspector->broken())
    return std::nullopt;
  if (auto error = attempt.part.truncate())
    return AttemptOutcome{ErrorKind::Write, "cannot truncate: " + error.message()};
  attempt.hash = Sha256();
  attempt.start_offset = 0;
  attempt.use_range = false;
  attempt.sniffed = false;
  attempt.inspector.reset();
  return std::nullopt;
}

}  // namespace

std::variant<AttemptPtr, AttemptOutcome> begin_attempt(CURL* easy, const TransferSettings& settings,
                                                       const std::string& url, BodySink& sink,
                                                       std::stop_token stop, const ProgressReport& report) {
  const DownloadOptions& options = *settings.options;
  PartFile& part = sink.part();
  Sha256& hash = sink.hash_state();
  AttemptPtr attempt(new Attempt{options, part, hash, sink.hashes_while_streaming(),
                                 sink.holds_small_bodies(), std::move(stop), report,
                                 sink.use_range() && part.size() > 0, part.size()});
  if (attempt->start_offset > 0) {
    // A resumed file is sniffed from its own first bytes. A prefix shorter than the sniff window goes
    // back into the held-back head, to be sniffed and rewritten together with what follows it.
    attempt->head = part.read_head(sniff_bytes_needed());
    if (attempt->head.size() < sniff_bytes_needed()) {
      if (auto error = part.truncate())
        return AttemptOutcome{ErrorKind::Write, "cannot truncate: " + error.message()};
      hash = Sha256();
    } else {
      attempt->sniffed = true;
      attempt->type = sniff_image_type(attempt->head);
      attempt->head.clear();
      if (attempt->type == ImageType::Unknown && options.require_image)
        return AttemptOutcome{ErrorKind::NotImage,
                              "not an image (the partial file " + part.name() + " is not one)"};
      if (auto outcome = inspect_resumed_part(*attempt))
        return std::move(*outcome);
    }
  }
  const std::string range = attempt->use_range ? std::to_string(attempt->start_offset) + "-" : std::string();
  if (const CURLcode code = configure_attempt(easy, url, *attempt, range); code != CURLE_OK)
    return AttemptOutcome{ErrorKind::InvalidUrl,
                          std::string("libcurl refused the URL: ") + curl_easy_strerror(code)};
  return attempt;
}

AttemptOutcome end_attempt(CURL* easy, Attempt& attempt, CURLcode code) {
  const DownloadOptions& options = attempt.options;
  PartFile& part = attempt.part;
  const std::stop_token& stop = attempt.stop;
  const char* error_buffer = attempt.error_buffer;
  AttemptOutcome outcome;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  outcome.http_status = status;
  outcome.http_version = http_version_of(easy);
  outcome.retry_after = attempt.retry_after;

  if (code == CURLE_OK && attempt.abort_kind == ErrorKind::None) {
    if (status < 200 || status >= 300) {
      // An error status whose body never reached the write callback (e.g. empty 404).
      attempt.status = status;
      outcome.error = ErrorKind::HttpStatus;
      outcome.message = attempt.http_message();
    } else if (part.size() == 0 && attempt.head.empty()) {
      outcome.error = ErrorKind::Empty;
      outcome.message = "the server sent an empty body: could not download the image";
    } else if (!attempt.sniff(true)) {
      outcome.error = attempt.abort_kind;
      outcome.message = attempt.abort_message;
      outcome.restart_from_scratch = attempt.restart_from_scratch;
    } else if (attempt.inspector) {
      if (auto missing = attempt.inspector->incompleteness()) {
        outcome.error = ErrorKind::CorruptImage;
        outcome.message = "incomplete image: " + *missing;
      }
    }
  } else if (attempt.abort_kind != ErrorKind::None) {
    outcome.error = attempt.abort_kind;
    outcome.message = attempt.abort_message;
    outcome.restart_from_scratch = attempt.restart_from_scratch;
  } else {
    long redirects = 0;
    curl_easy_getinfo(easy, CURLINFO_REDIRECT_COUNT, &redirects);
    outcome.error = classify(code, redirects);
    if (outcome.error == ErrorKind::Cancelled && !stop.stop_requested())
      outcome.error = ErrorKind::Network;
    std::string detail = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
    switch (outcome.error) {
      case ErrorKind::Tls:
        // Names the options that fix it; the CLI shows its flags in their place (app/format.cpp).
        outcome.message = "TLS verification failed: " + detail +
                          " (trust the server's CA with DownloadOptions::ca_file, or skip verification "
                          "with DownloadOptions::insecure)";
        break;
      case ErrorKind::ForbiddenRedirect:
        outcome.message = "refused a redirect to a scheme other than http or https: " + detail;
        break;
      case ErrorKind::TooManyRedirects:
        outcome.message = "more than " + std::to_string(options.max_redirects) + " redirects: " + detail;
        break;
      case ErrorKind::Cancelled:
        outcome.message = "cancelled";
        break;
      default:
        outcome.message = detail;
    }
  }
  if (outcome.error == ErrorKind::HttpStatus) {
    outcome.retryable = retryable_status(status);
  } else {
    outcome.retryable = retryable_kind(outcome.error) || outcome.restart_from_scratch;
  }
  if (attempt.inspector) {
    outcome.width = attempt.inspector->facts().width;
    outcome.height = attempt.inspector->facts().height;
    outcome.orientation = attempt.inspector->facts().orientation;
  }
  if (outcome.error == ErrorKind::None) {
    attempt.maybe_report(true);
    outcome.image_type = attempt.type;
    outcome.held_body = std::move(attempt.head);
  }
  return outcome;
}

void detach_attempt(CURL* easy) noexcept {
  set(easy, CURLOPT_ERRORBUFFER, static_cast<char*>(nullptr));
  set(easy, CURLOPT_HEADERDATA, static_cast<void*>(nullptr));
  set(easy, CURLOPT_WRITEDATA, static_cast<void*>(nullptr));
  set(easy, CURLOPT_XFERINFODATA, static_cast<void*>(nullptr));
}

}  // namespace imgdl::detail
