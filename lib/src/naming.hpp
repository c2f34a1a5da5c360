#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "image_type.hpp"
#include "siphash.hpp"

namespace imgdl::detail {

/// A URL that imgdl will fetch, as libcurl's URL parser (CURLU) understood it.
struct ParsedUrl {
  std::string scheme;      ///< "http" or "https" (lowercase)
  std::string host;        ///< ASCII letters lowercased; IPv6 literals keep their brackets
  std::string path;        ///< as written (still percent-encoded), dot segments removed, starts with '/'
  int port = 0;            ///< the explicit port, else the scheme's default
  std::string normalized;  ///< CURLU's rendering without fragment or default port: what to fetch, and the
                           ///< key that makes the same URL listed twice be fetched once
  friend bool operator==(const ParsedUrl&, const ParsedUrl&) = default;
};

/// Parses and validates one URL. Only absolute http:// and https:// URLs with a host are accepted;
/// whitespace or control characters anywhere are rejected (the URL-list reader trims lines first).
/// Non-ASCII bytes are percent-encoded in `normalized`. On failure returns nullopt and, if `error` is
/// not null, stores a one-line reason such as "unsupported scheme 'ftp' (only http and https)",
/// "not a URL: foo" or "missing host" (quoted input is cut to ~100 bytes). Thread-safe.
std::optional<ParsedUrl> parse_url(std::string_view url, std::string* error);

/// parse_url()'s fast path, without CURLU, for the plain URLs most lists hold: a lowercase http(s)
/// scheme, a lowercase host name or canonical dotted-quad address, an optional port, and a path and
/// query of unreserved, sub-delimiter, ':', '@', '/' and '?' characters, without dot segments or a
/// fragment. nullopt for anything else. For every URL it accepts it returns exactly what
/// parse_url_with_curlu() returns (naming_test and fuzz_filename check it). Thread-safe: pure.
std::optional<ParsedUrl> parse_simple_url(std::string_view url);

/// parse_url() through libcurl's URL API, for any URL. Thread-safe.
std::optional<ParsedUrl> parse_url_with_curlu(std::string_view url, std::string* error);

/// The most bytes a file name may have (NAME_MAX on Linux).
inline constexpr std::size_t max_name_bytes = 255;

/// The most bytes of a name without an extension, so appending any extension_for() still fits.
inline constexpr std::size_t max_bare_name_bytes = max_name_bytes - max_image_extension_bytes;

/// The extension of a name, dot included, or "" if it has none. An extension is a final '.' (not at
/// position 0) followed by 1-10 ASCII letters/digits, at least one a letter: "a.jpg" -> ".jpg",
/// "a.tar.gz" -> ".gz", but "v1.2", "a.1" (our collision suffix), "a." and "a.b-c" have none.
/// Thread-safe: pure.
std::string_view extension_of(std::string_view name) noexcept;

/// True if extension_of(name) is not empty. Thread-safe: pure.
inline bool has_extension(std::string_view name) noexcept {
  return !extension_of(name).empty();
}

/// Decodes each valid %XX once; a '%' not followed by two hex digits stays as it is. Thread-safe: pure.
std::string percent_decode(std::string_view s);

/// The file name for a URL (the naming rule of the issue):
///  1. the path's last segment (query and fragment are never part of it; curl already removed dot
///     segments, so "http://h/a/.." is "http://h/");
///  2. percent-decoded exactly once ("%252e" -> "%2e", never ".");
///  3. made safe: '/', '\\', C0 controls (0x00-0x1F), DEL, C1 controls (U+0080-U+009F), bidi
///     overrides/isolates/marks (U+200E-F, U+202A-E, U+2066-9) and U+2028/9 become '_'; each byte that
///     is not part of a valid UTF-8 sequence becomes '_' (so the result is always valid UTF-8);
///  4. leading dots are removed (no hidden files, never "." or "..");
///  5. cut to 255 bytes keeping the extension (250 if it has none, so the sniffed extension still
///     fits), never inside a UTF-8 sequence;
///  6. if nothing is left: "<host>_<8 hex digits>", the digits being the top 32 bits of the FNV-1a-64
///     hash of `normalized` (stable across runs and platforms; a name, not a security measure).
/// The result is never empty and contains no '/', so it always names a file directly in output_dir.
/// Thread-safe: pure.
std::string filename_from_url(const ParsedUrl& url);

/// Appends `image_ext` (from extension_for(), e.g. ".jpg") if `name` has no extension; a name that
/// already has one (even a wrong one, "photo.php") is returned unchanged, as is any name when
/// `image_ext` is empty. Cuts the stem (never a UTF-8 sequence) to keep 255 bytes, which never happens
/// for names from filename_from_url(). Thread-safe: pure.
std::string with_extension_for(std::string name, std::string_view image_ext);

/// The n-th alternative (n >= 1) of a name: "cat.jpg" -> "cat.1.jpg", "cat" -> "cat.1" (which still
/// has no extension by extension_of()'s rule, so the sniffed one can follow: "cat.1.jpg"). Cuts the
/// stem to stay within 255 bytes (250 without extension). Used by NamePlanner and, against files already
/// on disk, by on_exists=rename (try n = 1, 2, ... with O_EXCL). Thread-safe: pure.
std::string next_free_name(std::string_view name, int n);

/// Assigns file names to URLs before any download starts, in input order, so the result depends only
/// on the list: the first URL with basename "cat.jpg" gets "cat.jpg", the next "cat.1.jpg", then
/// "cat.2.jpg"; the same normalized URL a second time gets nullopt (fetched once).
///
/// A name without extension reserves its future forms too: once "cat" is planned, a later "cat.jpg"
/// (or "cat.png", ...) becomes "cat.1.jpg", because "cat" may be saved as "cat.jpg" after sniffing;
/// and after "cat.jpg", a bare "cat" becomes "cat.1". Comparison is byte-wise (case-sensitive, as Linux).
///
/// Over a window: the planner remembers the URLs and names of at least the last `window` URLs (between
/// `window` and 2 × `window`: two generations, the older dropped whole when the newer fills), so its
/// memory is bounded whatever the length of the list. Inside the window everything above holds exactly.
/// A URL listed again further apart is planned again (fetched again), and a name planned further back
/// may be planned again: the output directory is then the record of names taken (publishing never
/// replaces a file this run made; see OutputRules::run_start). A base name's collision counter moves
/// to the newer generation whenever that name comes up, and keeps the base name itself taken, so a
/// name common across the list keeps counting on ("image.jpg", "image.1.jpg", ... never restarting
/// while it keeps coming at least once a window).
///
/// Memory: only 64-bit digests (SipHash-2-4 under a key drawn at random per planner) of normalized
/// URLs and of planned names are kept, in flat open-addressing tables: about 8 MiB for the default
/// window of 2^17, the same for ten URLs or ten million once the window has filled. Two different
/// strings of one window sharing a digest is not a practical concern (about 2^-30 per window of
/// 2^17, and the secret key keeps a hostile list from choosing colliding URLs); for names it would
/// only cost an unneeded suffix, for URLs a URL wrongly reported as a duplicate.
///
/// Thread-safety: assign() must not run concurrently with anything else on the planner; the const
/// members may be called from many threads at once once planning is over.
class NamePlanner {
 public:
  /// The default window: 131,072 URLs.
  static constexpr std::size_t default_window = std::size_t{1} << 17;

  /// A planner remembering at least the last `window` URLs (at least 1). Throws std::invalid_argument
  /// for 0.
  explicit NamePlanner(std::size_t window = default_window);

  /// The name for a URL not seen within the window, or nullopt if its normalized form was.
  std::optional<std::string> assign(const ParsedUrl& url);

  /// True if this URL (by its normalized form) was assigned a name within the window.
  bool is_duplicate(const ParsedUrl& url) const;

  /// True if `final_name` is a name planned within the window, or would clash with such a planned
  /// extensionless name once that gets its image extension. The downloader's on_exists=rename loop
  /// should skip such names so it never takes a name planned for another URL. (A URL's own planned name
  /// is reserved too: ask only about the alternatives.)
  bool is_reserved(std::string_view final_name) const;

  /// How many URLs got a name (over the planner's whole life, not only the window).
  std::size_t size() const noexcept { return assigned_; }

  /// The window this planner was made with.
  std::size_t window() const noexcept { return window_; }

  /// True once a generation was dropped: from then on a name may be planned that was planned before
  /// for a URL the planner has forgotten, and only the output directory tells them apart.
  bool has_forgotten() const noexcept { return forgotten_; }

  /// Bytes held by the planner's tables now (for tests and benchmarks of its bound).
  std::size_t memory_bytes() const noexcept;

 private:
  using Key = std::uint64_t;  ///< a digest; 0 marks an empty slot, so a real 0 is stored as 1

  /// An insert-only open-addressing hash set of Keys (linear probing, load factor <= 1/2, so a miss
  /// probes about 2.5 slots). clear() keeps its capacity: the next generation fills it again.
  class KeySet {
   public:
    bool contains(Key key) const noexcept;
    bool insert(Key key);  ///< false if already present
    std::size_t size() const noexcept { return size_; }
    void clear() noexcept;
    std::size_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(Key); }

   private:
    std::size_t slot_of(Key key) const noexcept;
    std::vector<Key> slots_;
    std::size_t size_ = 0;
  };

  /// What one generation of the window remembers.
  struct Generation {
    KeySet urls;   // normalized URLs assigned
    KeySet names;  // every planned name, as planned
    KeySet bare;   // the planned names without extension (will get one after sniffing)
    std::unordered_map<Key, int> next_suffix;  // base name -> next n to try: O(1) per collision
    void clear() noexcept;
  };

  bool taken(std::string_view name) const;
  bool names_contain(Key key) const noexcept;
  void claim(const std::string& name);
  int& next_suffix_of(Key base);
  bool has_suffix_counter(Key base) const;
  void start_generation_if_full();
  Key key_of(std::string_view s) const noexcept;

  SipKey secret_ = SipKey::random();
  std::size_t window_;
  std::size_t assigned_ = 0;
  Generation generations_[2];
  int current_ = 0;  // the generation being filled; the other is the older one
  bool forgotten_ = false;
};

/// The stem of a name's `.part` file: the name itself, unless `<name>.part` would pass 255 bytes
/// (names of 251-255 bytes are valid final names). Then the name's first bytes, cut at a UTF-8
/// boundary, "~" and 16 hex digits of FNV-1a-64 of the whole name: it fits, differs between long names
/// sharing a prefix, and is the same in every run, so a resume finds it again. Thread-safe.
std::string part_file_stem(const std::string& name);

}  // namespace imgdl::detail
