#pragma once
// What is decided about a URL before any transfer: its position, the URL libcurl gets, its host and
// its file name, or why there is nothing to fetch.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "imgdl/download_result.hpp"
#include "naming.hpp"

namespace imgdl::detail {

struct Plan {
  std::size_t index = 0;
  std::string url;
  std::string fetch_url;  // the normalized URL handed to libcurl
  std::string host;       // the origin, "scheme://name:port": two servers on one address are two hosts
  std::string name;       // planned file name; may still lack an extension
  ErrorKind error = ErrorKind::None;
  std::string message;
  bool duplicate = false;
  bool name_settled = false;  // settle_name() ran: `name` is past the files this run made
  // Planned after the planner forgot older URLs: its name may be one an earlier URL of this run has
  // on disk, so files this run made count as taken (OutputRules::run_start).
  bool past_window = false;
};

/// "scheme://host:port" of a normalized URL: what connections are kept and routed by.
inline std::string_view origin_of(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos)
    return url;
  return url.substr(0, url.find_first_of("/?#", scheme_end + 3));
}

/// Parses `url` and names it. `assign(parsed, plan)` sets the plan's index and returns its name, or
/// nullopt for a URL already planned (a duplicate, named from the URL for messages); it runs only for
/// a valid URL, and `index_only(plan)` sets the index of an invalid one. Any thread.
template <class Assign, class IndexOnly>
Plan make_plan(std::string url, Assign&& assign, IndexOnly&& index_only) {
  Plan p;
  p.url = std::move(url);
  std::string error;
  auto parsed = parse_url(p.url, &error);
  if (!parsed) {
    index_only(p);
    p.error = ErrorKind::InvalidUrl;
    p.message = std::move(error);
    return p;
  }
  p.fetch_url = parsed->normalized;
  p.host = parsed->scheme + "://" + parsed->host + ":" + std::to_string(parsed->port);
  if (auto name = assign(*parsed, p)) {
    p.name = std::move(*name);
  } else {
    p.duplicate = true;
    p.name = filename_from_url(*parsed);
  }
  return p;
}

}  // namespace imgdl::detail
