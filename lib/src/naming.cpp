#include "naming.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace imgdl::detail {
namespace {

struct CurluDeleter {
  void operator()(CURLU* h) const noexcept { curl_url_cleanup(h); }
};
using CurluPtr = std::unique_ptr<CURLU, CurluDeleter>;

struct CurlStringDeleter {
  void operator()(char* s) const noexcept { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

// Reads one part; nullopt if CURLU has none (or fails), with the code in *rc.
std::optional<std::string> get_part(CURLU* h, CURLUPart part, unsigned int flags, CURLUcode* rc = nullptr) {
  char* raw = nullptr;
  const CURLUcode code = curl_url_get(h, part, &raw, flags);
  const CurlString owned(raw);
  if (rc != nullptr) {
    *rc = code;
  }
  if (code != CURLUE_OK || !owned) {
    return std::nullopt;
  }
  return std::string(owned.get());
}

bool is_ascii_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_ascii_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

int hex_value(char c) noexcept {
  if (is_ascii_digit(c)) {
    return c - '0';
  }
  const char l = ascii_lower(c);
  return (l >= 'a' && l <= 'f') ? l - 'a' + 10 : -1;
}

bool is_continuation(char c) noexcept {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The longest prefix of `s` of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept {
  if (s.size() <= max) {
    return s;
  }
  std::size_t cut = max;
  while (cut > 0 && is_continuation(s[cut])) {
    --cut;
  }
  return s.substr(0, cut);
}

// Input excerpt for error messages; parse_url rejects control characters before quoting anything.
std::string excerpt(std::string_view s) {
  constexpr std::size_t kMax = 100;
  std::string out(utf8_prefix(s, kMax));
  if (out.size() < s.size()) {
    out += "...";
  }
  return out;
}

// Decodes one UTF-8 sequence at s[i]; returns its length (0 if invalid) and the code point in *cp.
// Strict RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
std::size_t decode_utf8(std::string_view s, std::size_t i, char32_t* cp) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b0 = b(0);
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  char32_t value = 0;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    value = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    value = b0 & 0x0Fu;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;
    hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    value = b0 & 0x07u;
    lo = b0 == 0xF0 ? 0x90 : 0x80;
    hi = b0 == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (i + len > s.size()) {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char c = b(k);
    if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) {
      return 0;
    }
    value = (value << 6) | (c & 0x3Fu);
  }
  *cp = value;
  return len;
}

// Code points that are legal but dangerous in a file name: they break lines in logs or reorder how a
// name is displayed ("photo<U+202E>gpj.exe" shows as "photoexe.jpg").
bool is_forbidden_code_point(char32_t cp) noexcept {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x200E || cp == 0x200F ||
         cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

// Step 3 and 4 of the rule: every byte of the result is safe and it is valid UTF-8 without leading dots.
std::string make_safe(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size();) {
    char32_t cp = 0;
    const std::size_t len = decode_utf8(raw, i, &cp);
    if (len == 0) {
      out.push_back('_');  // a byte that is not part of valid UTF-8
      ++i;
    } else if (cp == U'/' || cp == U'\\' || is_forbidden_code_point(cp)) {
      out.push_back('_');
      i += len;
    } else {
      out.append(raw.substr(i, len));
      i += len;
    }
  }
  const std::size_t first = out.find_first_not_of('.');
  out.erase(0, first == std::string::npos ? out.size() : first);
  return out;
}

// Step 5: at most 255 bytes keeping the extension, at most 250 without one.
std::string fit_length(std::string name) {
  const std::string_view ext = extension_of(name);
  const std::size_t limit = ext.empty() ? max_bare_name_bytes : max_name_bytes;
  if (name.size() <= limit) {
    return name;
  }
  const std::string_view stem = std::string_view(name).substr(0, name.size() - ext.size());
  std::string out(utf8_prefix(stem, limit - ext.size()));
  out.append(ext);
  return out;
}

std::uint64_t fnv1a64(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Step 6: "<host>_<8 hex>" for URLs whose last segment gives nothing ("http://h/", "http://h/?q=1").
std::string fallback_name(const ParsedUrl& url) {
  std::string host;
  for (const char c : url.host) {
    if (c == '[' || c == ']') {
      continue;  // IPv6 literal brackets
    }
    host.push_back(c == ':' ? '_' : c);
  }
  host = make_safe(host);
  if (host.empty()) {
    host = "download";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const auto top = static_cast<std::uint32_t>(fnv1a64(url.normalized) >> 32);
  std::string suffix = "_";
  for (int shift = 28; shift >= 0; shift -= 4) {
    suffix.push_back(kHex[(top >> shift) & 0xFu]);
  }
  std::string out(utf8_prefix(host, max_bare_name_bytes - suffix.size()));
  out += suffix;
  return out;
}

}  // namespace

std::optional<ParsedUrl> parse_url_with_curlu(std::string_view url, std::string* error) {
  const auto fail = [error](std::string message) -> std::optional<ParsedUrl> {
    if (error != nullptr) {
      *error = std::move(message);
    }
    return std::nullopt;
  };
  if (url.empty()) {
    return fail("empty URL");
  }
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      return fail("whitespace in URL");
    }
    if (u < 0x20 || u == 0x7F) {
      return fail("control character in URL");
    }
  }
  // Check the scheme ourselves: CURLU knows more schemes than we allow, and is lenient about slashes
  // ("http:/h", "http:///h" parse as "http://h/"), which would invent a host.
  const std::size_t colon = url.find(':');
  bool scheme_ok = colon != std::string_view::npos && colon > 0 && is_ascii_alpha(url[0]);
  for (std::size_t i = 1; scheme_ok && i < colon; ++i) {
    const char c = url[i];
    scheme_ok = is_ascii_alpha(c) || is_ascii_digit(c) || c == '+' || c == '-' || c == '.';
  }
  if (!scheme_ok) {
    return fail("not a URL: " + excerpt(url));
  }
  std::string scheme(url.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), ascii_lower);
  if (scheme != "http" && scheme != "https") {
    return fail("unsupported scheme '" + excerpt(scheme) + "' (only http and https)");
  }
  const std::string_view rest = url.substr(colon + 1);
  if (!rest.starts_with("//")) {
    return fail("not a URL: " + excerpt(url));
  }
  if (rest.size() == 2 || std::strchr("/?#", rest[2]) != nullptr) {
    return fail("missing host");
  }

  const CurluPtr h(curl_url());
  if (!h) {
    return fail("out of memory parsing URL");
  }
  const std::string copy(url);  // CURLU wants a NUL-terminated string
  const CURLUcode rc = curl_url_set(h.get(), CURLUPART_URL, copy.c_str(), CURLU_URLENCODE);
  if (rc == CURLUE_NO_HOST) {
    return fail("missing host");
  }
  if (rc != CURLUE_OK) {
    return fail(std::string("invalid URL: ") + curl_url_strerror(rc));
  }
  ParsedUrl out;
  out.scheme = std::move(scheme);
  auto host = get_part(h.get(), CURLUPART_HOST, 0);
  if (!host || host->empty()) {
    return fail("missing host");
  }
  // Hosts are case-insensitive: lowercase them so "http://EXAMPLE.com/a" and "http://example.com/a" are
  // one URL. Dropping the fragment (never sent to the server) does the same for "#x" and "#y".
  // (Each curl_url_set re-validates, so only when needed: a list may hold a million URLs.)
  if (std::any_of(host->begin(), host->end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    std::transform(host->begin(), host->end(), host->begin(), ascii_lower);
    if (curl_url_set(h.get(), CURLUPART_HOST, host->c_str(), 0) != CURLUE_OK) {
      return fail("invalid URL: " + excerpt(url));
    }
  }
  if (url.find('#') != std::string_view::npos &&
      curl_url_set(h.get(), CURLUPART_FRAGMENT, nullptr, 0) != CURLUE_OK) {
    return fail("invalid URL: " + excerpt(url));
  }
  out.host = std::move(*host);
  auto path = get_part(h.get(), CURLUPART_PATH, 0);
  auto port = get_part(h.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  auto normalized = get_part(h.get(), CURLUPART_URL, CURLU_NO_DEFAULT_PORT);
  if (!path || !port || !normalized) {
    return fail("invalid URL: " + excerpt(url));
  }
  out.path = path->empty() ? "/" : std::move(*path);
  const auto [ptr, ec] = std::from_chars(port->data(), port->data() + port->size(), out.port);
  if (ec != std::errc{} || ptr != port->data() + port->size()) {
    return fail("invalid port");
  }
  out.normalized = std::move(*normalized);
  return out;
}

namespace {

bool is_path_char(char c) noexcept {
  return is_ascii_alpha(c) || is_ascii_digit(c) ||
         (c != '\0' && std::strchr("-._~!$&'()*+,;=:@/?", c) != nullptr);
}

// 1 to max_digits ASCII digits and nothing else (from_chars alone would also take a leading '-').
bool is_decimal(std::string_view s, std::size_t max_digits) noexcept {
  return !s.empty() && s.size() <= max_digits && std::all_of(s.begin(), s.end(), is_ascii_digit);
}

// A host that CURLU returns unchanged: lowercase DNS labels, or a canonical dotted quad. Other
// numeric forms ("127.1", "0x7f.1", "010.0.0.1") are IPv4 addresses CURLU rewrites.
bool is_simple_host(std::string_view host) noexcept {
  if (host.empty() || host.front() == '.' || host.back() == '.' ||
      host.find("..") != std::string_view::npos) {
    return false;
  }
  if (!is_ascii_digit(host.front())) {
    return std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || is_ascii_digit(c) || c == '-' || c == '.';
    });
  }
  int parts = 0;
  for (std::size_t start = 0; start <= host.size(); ++parts) {
    std::size_t end = host.find('.', start);
    if (end == std::string_view::npos) {
      end = host.size();
    }
    const std::string_view part = host.substr(start, end - start);
    int value = 0;
    if (!is_decimal(part, 3) || (part.size() > 1 && part[0] == '0') ||
        std::from_chars(part.data(), part.data() + part.size(), value).ec != std::errc{} || value > 255) {
      return false;
    }
    start = end + 1;
  }
  return parts == 4;
}

}  // namespace

std::optional<ParsedUrl> parse_simple_url(std::string_view url) {
  constexpr std::size_t curlu_max_length = 8000000;  // CURL_MAX_INPUT_LENGTH: CURLU refuses longer input
  if (url.size() > curlu_max_length) {
    return std::nullopt;
  }
  ParsedUrl out;
  std::string_view rest;
  if (url.starts_with("http://")) {
    out.scheme = "http";
    out.port = 80;
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    out.scheme = "https";
    out.port = 443;
    rest = url.substr(8);
  } else {
    return std::nullopt;
  }
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const std::string_view target = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  const std::size_t colon = authority.find(':');
  const std::string_view host = authority.substr(0, colon);
  if (!is_simple_host(host)) {
    return std::nullopt;
  }
  bool default_port = true;
  if (colon != std::string_view::npos) {
    const std::string_view port = authority.substr(colon + 1);
    if (!is_decimal(port, 5) || port[0] == '0' ||
        std::from_chars(port.data(), port.data() + port.size(), out.port).ec != std::errc{} ||
        out.port > 65535) {
      return std::nullopt;
    }
    default_port = out.port == (out.scheme == "http" ? 80 : 443);
  }
  const std::size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  if (!std::all_of(target.begin(), target.end(), is_path_char) || path.find("/.") != std::string_view::npos ||
      target.ends_with('?')) {
    return std::nullopt;
  }
  out.host = host;
  out.path = path.empty() ? "/" : path;
  out.normalized.reserve(url.size() + 1);
  out.normalized.append(out.scheme).append("://").append(host);
  if (!default_port) {
    out.normalized.append(":").append(std::to_string(out.port));
  }
  out.normalized.append(out.path).append(question == std::string_view::npos ? std::string_view()
                                                                            : target.substr(question));
  return out;
}

std::optional<ParsedUrl> parse_url(std::string_view url, std::string* error) {
  // The URL-list reader validates each line and the Downloader plans it right after, on the same
  // thread: remembering the last URL makes one parse serve both.
  struct Last {
    std::string url;
    std::optional<ParsedUrl> parsed;
    std::string error;
  };
  thread_local Last last;
  if (url.empty() || url != last.url) {
    last.error.clear();
    // CURLU renders a URL through printf-style formatting (~20k instructions); most URLs in a list
    // need none of its normalisation.
    last.parsed = parse_simple_url(url);
    if (!last.parsed) {
      last.parsed = parse_url_with_curlu(url, &last.error);
    }
    last.url.assign(url);
  }
  if (!last.parsed && error != nullptr) {
    *error = last.error;
  }
  return last.parsed;
}

std::string_view extension_of(std::string_view name) noexcept {
  constexpr std::size_t kMaxExtChars = 10;
  const std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) {
    return {};
  }
  const std::string_view ext = name.substr(dot + 1);
  if (ext.empty() || ext.size() > kMaxExtChars) {
    return {};
  }
  bool letter = false;
  for (const char c : ext) {
    if (is_ascii_alpha(c)) {
      letter = true;
    } else if (!is_ascii_digit(c)) {
      return {};
    }
  }
  return letter ? name.substr(dot) : std::string_view{};
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string filename_from_url(const ParsedUrl& url) {
  const std::string_view path = url.path;
  const std::size_t slash = path.rfind('/');
  const std::string_view segment = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::string name = make_safe(percent_decode(segment));
  if (name.empty()) {
    return fallback_name(url);
  }
  // "<name>.part" is where a download streams before its rename; a final name of that form could be
  // taken for another URL's stale part file and replaced. "x.jpg.part" becomes "x.jpg_part", before
  // the length is fitted: the name has lost its extension and must leave room for a sniffed one.
  // Checked again after the cut, which can end a long bare name right after ".part".
  auto unlike_a_part_file = [](std::string& n) {
    constexpr std::string_view part_suffix = ".part";
    if (n.size() > part_suffix.size() && n.ends_with(part_suffix))
      n[n.size() - part_suffix.size()] = '_';
  };
  unlike_a_part_file(name);
  name = fit_length(std::move(name));
  unlike_a_part_file(name);
  return name;
}

std::string with_extension_for(std::string name, std::string_view image_ext) {
  if (image_ext.empty() || has_extension(name)) {
    return name;
  }
  if (name.size() + image_ext.size() > max_name_bytes) {
    name.resize(utf8_prefix(name, max_name_bytes - image_ext.size()).size());
  }
  name.append(image_ext);
  return name;
}

std::string next_free_name(std::string_view name, int n) {
  const std::string_view ext = extension_of(name);
  const std::string_view stem = name.substr(0, name.size() - ext.size());
  const std::string suffix = "." + std::to_string(n);
  const std::size_t limit = ext.empty() ? max_bare_name_bytes : max_name_bytes;
  std::string out(utf8_prefix(stem, limit - suffix.size() - ext.size()));
  if (out.empty()) {
    out = "_";  // only for a name that was empty or all extension: never start with the dot
  }
  out += suffix;
  out.append(ext);
  return out;
}

// --- NamePlanner ---------------------------------------------------------------------------------

std::size_t NamePlanner::KeySet::slot_of(Key key) const noexcept {
  const std::size_t mask = slots_.size() - 1;
  // The low bits pick the slot: SipHash's output bits are all equally mixed.
  std::size_t i = static_cast<std::size_t>(key) & mask;
  while (slots_[i] != 0 && slots_[i] != key) {
    i = (i + 1) & mask;
  }
  return i;
}

bool NamePlanner::KeySet::contains(Key key) const noexcept {
  return size_ != 0 && slots_[slot_of(key)] == key;
}

bool NamePlanner::KeySet::insert(Key key) {
  if (contains(key)) {
    return false;
  }
  if ((size_ + 1) * 2 > slots_.size()) {
    std::vector<Key> old(std::max<std::size_t>(16, slots_.size() * 2));
    old.swap(slots_);
    for (const Key k : old) {
      if (k != 0) {
        slots_[slot_of(k)] = k;
      }
    }
  }
  slots_[slot_of(key)] = key;
  ++size_;
  return true;
}

void NamePlanner::KeySet::clear() noexcept {
  std::fill(slots_.begin(), slots_.end(), Key{0});
  size_ = 0;
}

void NamePlanner::Generation::clear() noexcept {
  urls.clear();
  names.clear();
  bare.clear();
  next_suffix.clear();
}

NamePlanner::NamePlanner(std::size_t window) : window_(window) {
  if (window == 0) {
    throw std::invalid_argument("the name planner's window must hold at least 1 URL");
  }
}

std::size_t NamePlanner::memory_bytes() const noexcept {
  std::size_t bytes = 0;
  for (const Generation& g : generations_) {
    bytes += g.urls.memory_bytes() + g.names.memory_bytes() + g.bare.memory_bytes();
    // A node per entry (key, value, next pointer, cached hash) plus its bucket pointer.
    bytes += g.next_suffix.size() * (sizeof(Key) + sizeof(int) + 2 * sizeof(void*)) +
             g.next_suffix.bucket_count() * sizeof(void*);
  }
  return bytes;
}

NamePlanner::Key NamePlanner::key_of(std::string_view s) const noexcept {
  const SipDigest d = siphash128(secret_, s);
  const Key k = d.first ^ d.second;
  return k == 0 ? 1 : k;  // 0 marks an empty slot
}

bool NamePlanner::names_contain(Key key) const noexcept {
  return generations_[0].names.contains(key) || generations_[1].names.contains(key);
}

bool NamePlanner::taken(std::string_view name) const {
  if (names_contain(key_of(name))) {
    return true;
  }
  const std::string_view ext = extension_of(name);
  if (ext.empty()) {
    // A bare name may still become name + any image extension: each of those must be free too.
    std::string with_ext(name);
    for (const ImageType t : image_types_with_extension) {
      with_ext.resize(name.size());
      with_ext.append(extension_for(t));
      if (names_contain(key_of(with_ext))) {
        return true;
      }
    }
    return false;
  }
  // "cat.jpg" clashes with a planned bare "cat" that may be saved as "cat.jpg".
  if (!is_image_extension(ext) || (generations_[0].bare.size() == 0 && generations_[1].bare.size() == 0)) {
    return false;
  }
  const Key bare = key_of(name.substr(0, name.size() - ext.size()));
  return generations_[0].bare.contains(bare) || generations_[1].bare.contains(bare);
}

void NamePlanner::claim(const std::string& name) {
  Generation& g = generations_[current_];
  const Key key = key_of(name);
  g.names.insert(key);
  if (!has_extension(name)) {
    g.bare.insert(key);
  }
}

int& NamePlanner::next_suffix_of(Key base) {
  Generation& current = generations_[current_];
  if (const auto it = current.next_suffix.find(base); it != current.next_suffix.end()) {
    return it->second;
  }
  // Carried over from the older generation, so a base name that keeps coming keeps its count.
  const Generation& older = generations_[1 - current_];
  const auto old = older.next_suffix.find(base);
  return current.next_suffix.try_emplace(base, old == older.next_suffix.end() ? 1 : old->second)
      .first->second;
}

bool NamePlanner::has_suffix_counter(Key base) const {
  return generations_[0].next_suffix.count(base) > 0 || generations_[1].next_suffix.count(base) > 0;
}

void NamePlanner::start_generation_if_full() {
  if (generations_[current_].urls.size() < window_) {
    return;
  }
  current_ = 1 - current_;
  forgotten_ = forgotten_ || generations_[current_].urls.size() > 0;
  generations_[current_].clear();  // the older generation goes; its tables keep their capacity
}

std::optional<std::string> NamePlanner::assign(const ParsedUrl& url) {
  const Key url_key = key_of(url.normalized);
  if (generations_[0].urls.contains(url_key) || generations_[1].urls.contains(url_key)) {
    return std::nullopt;
  }
  start_generation_if_full();
  generations_[current_].urls.insert(url_key);
  ++assigned_;
  std::string base = filename_from_url(url);
  const Key base_key = key_of(base);
  // A base name with a collision counter was planned before, even if its own entry has aged out.
  if (!taken(base) && !has_suffix_counter(base_key)) {
    claim(base);
    return base;
  }
  int& next = next_suffix_of(base_key);
  for (;; ++next) {
    std::string candidate = next_free_name(base, next);
    if (!taken(candidate)) {
      ++next;
      claim(candidate);
      return candidate;
    }
  }
}

bool NamePlanner::is_duplicate(const ParsedUrl& url) const {
  const Key key = key_of(url.normalized);
  return generations_[0].urls.contains(key) || generations_[1].urls.contains(key);
}

bool NamePlanner::is_reserved(std::string_view final_name) const {
  return taken(final_name);
}

std::string part_file_stem(const std::string& name) {
  constexpr std::size_t suffix_bytes = 5;  // ".part"
  if (name.size() + suffix_bytes <= max_name_bytes)
    return name;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(name)));
  return std::string(utf8_prefix(name, max_name_bytes - suffix_bytes - 1 - 16)) + "~" + hex;
}

}  // namespace imgdl::detail
