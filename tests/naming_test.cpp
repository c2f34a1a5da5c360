// File naming: the rule from the issue, its safety invariants, and NamePlanner's determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "naming.hpp"

using imgdl::detail::extension_of;
using imgdl::detail::filename_from_url;
using imgdl::detail::NamePlanner;
using imgdl::detail::next_free_name;
using imgdl::detail::parse_url;
using imgdl::detail::ParsedUrl;
using imgdl::detail::with_extension_for;

namespace {

ParsedUrl must_parse(std::string_view url) {
  std::string error;
  auto parsed = parse_url(url, &error);
  INFO("url: ", url, " error: ", error);
  REQUIRE(parsed.has_value());
  return *parsed;
}

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b0 < 0x80) {
      len = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      lo = b0 == 0xE0 ? 0xA0 : 0x80;
      hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      lo = b0 == 0xF0 ? 0x90 : 0x80;
      hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) {
        return false;
      }
    }
    i += len;
  }
  return true;
}

// The safety invariants every name must satisfy, whatever the URL.
void check_invariants(const std::string& name) {
  INFO("name: ", name);
  CHECK_FALSE(name.empty());
  CHECK(name.size() <= 255);
  CHECK(name.find('/') == std::string::npos);
  CHECK(name.find('\\') == std::string::npos);
  CHECK(name != ".");
  CHECK(name != "..");
  CHECK(name.front() != '.');
  bool control = false;
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    control = control || u < 0x20 || u == 0x7F;
  }
  CHECK_FALSE(control);
  CHECK(is_valid_utf8(name));
}

struct Row {
  std::string url;
  std::string expected;
};

std::vector<Row> naming_table() {
  const std::string a296(296, 'a');
  std::string e150;
  for (int i = 0; i < 150; ++i) {
    e150 += "\xC3\xA9";  // é, 2 bytes: 300 bytes in all
  }
  std::string e125;
  for (int i = 0; i < 125; ++i) {
    e125 += "\xC3\xA9";
  }
  return {
      {"http://example.com/cat.jpg", "cat.jpg"},
      // A final name must never look like a part file ("<name>.part").
      {"http://example.com/x.jpg.part", "x.jpg_part"},
      {"http://example.com/.part", "part"},
      {"http://example.com/a/b/cat.jpg?size=large", "cat.jpg"},
      {"http://example.com/cat.jpg#frag", "cat.jpg"},
      {"http://example.com/cat.jpg?x=1#y", "cat.jpg"},
      {"http://example.com/cat.jpg?name=dog.png", "cat.jpg"},
      {"http://example.com/my%20cat.jpg", "my cat.jpg"},
      {"http://EXAMPLE.COM/Cat.JPG", "Cat.JPG"},
      {"https://example.com:8443/x/photo", "photo"},
      {"http://user:pw@example.com/x.png", "x.png"},
      {"http://example.com/image.php?id=3", "image.php"},
      {"http://example.com/a.b.c.tar.gz", "a.b.c.tar.gz"},
      {"http://example.com/a/b/./c.jpg", "c.jpg"},
      // Dot segments and encoded traversal.
      {"http://example.com/a/..", "example.com_32522fc5"},
      {"http://example.com/%2e%2e", "example.com_d41b3ee3"},
      {"http://example.com/%2e%2e%2f", "_"},
      {"http://example.com/..%2F..%2Fetc%2Fpasswd", "_.._etc_passwd"},
      {"http://example.com/a%2F..%2F..%2Fetc%2Fpasswd", "a_.._.._etc_passwd"},
      {"http://example.com/a%2Fb.jpg", "a_b.jpg"},
      {"http://example.com/a%5Cb.jpg", "a_b.jpg"},
      {"http://example.com/a\\b.jpg", "a_b.jpg"},
      // Control characters.
      {"http://example.com/a%00b.jpg", "a_b.jpg"},
      {"http://example.com/a%0ab.jpg", "a_b.jpg"},
      {"http://example.com/a%7Fb%1Bc.jpg", "a_b_c.jpg"},
      {"http://example.com/a%C2%85b.jpg", "a_b.jpg"},                 // U+0085, a C1 control
      {"http://example.com/photo%E2%80%AEgpj.exe", "photo_gpj.exe"},  // U+202E right-to-left override
      // Leading dots.
      {"http://example.com/.bashrc", "bashrc"},
      {"http://example.com/%2E.hidden.jpg", "hidden.jpg"},
      {"http://example.com/...", "example.com_e9e20a96"},
      // Nothing left of the last segment: host and hash.
      {"http://example.com/?a=b", "example.com_bf35befd"},
      {"http://example.com/dir/", "example.com_9d888221"},
      {"http://example.com", "example.com_32522fc5"},
      {"https://example.com/", "example.com_0c8b41cf"},
      {"http://[::1]:8080/", "__1_3d90e0ea"},
      // Decoded exactly once.
      {"http://example.com/%252e%252e", "%2e%2e"},
      {"http://example.com/%25zz.jpg", "%zz.jpg"},
      {"http://example.com/%zz.jpg", "%zz.jpg"},
      // UTF-8: kept when valid, each invalid byte becomes '_'.
      {"http://example.com/%C3%A9t%C3%A9.png", "\xC3\xA9t\xC3\xA9.png"},
      {"http://example.com/\xD1\x84\xD0\xBE\xD1\x82\xD0\xBE.jpg", "\xD1\x84\xD0\xBE\xD1\x82\xD0\xBE.jpg"},
      {"http://example.com/a%FFb.jpg", "a_b.jpg"},
      {"http://example.com/%E2%82.jpg", "__.jpg"},      // truncated sequence
      {"http://example.com/a%C0%AFb.jpg", "a__b.jpg"},  // overlong '/'
      {"http://example.com/%ED%A0%80.jpg", "___.jpg"},  // UTF-16 surrogate
      // Length: 255 bytes at most, extension kept, never inside a UTF-8 sequence.
      {"http://example.com/" + a296 + ".jpg", std::string(251, 'a') + ".jpg"},
      {"http://example.com/" + e150 + ".jpg", e125 + ".jpg"},
      {"http://example.com/" + std::string(300, 'b'), std::string(250, 'b')},
  };
}

}  // namespace

TEST_CASE("filename_from_url follows the naming rule for each URL of the table") {
  const auto table = naming_table();
  REQUIRE(table.size() >= 30);
  for (const Row& row : table) {
    CAPTURE(row.url);
    const std::string name = filename_from_url(must_parse(row.url));
    CHECK(name == row.expected);
    check_invariants(name);
  }
}

TEST_CASE("filename_from_url gives a 2-byte character at the cut boundary whole or not at all") {
  // 252 bytes of 'x' then é: the stem may keep 251 bytes, which would split é; the cut goes before it.
  const std::string url = "http://example.com/" + std::string(250, 'x') + "\xC3\xA9\xC3\xA9.png";
  const std::string name = filename_from_url(must_parse(url));
  CHECK(name == std::string(250, 'x') + ".png");
  check_invariants(name);
}

TEST_CASE("filename_from_url is the same for the same URL in every run") {
  const ParsedUrl url = must_parse("http://example.com/?q=1");
  CHECK(filename_from_url(url) == filename_from_url(must_parse("http://example.com/?q=1")));
  CHECK(filename_from_url(url) != filename_from_url(must_parse("http://example.com/?q=2")));
}

TEST_CASE("parse_url accepts http and https URLs and normalizes them") {
  SUBCASE("parts") {
    const ParsedUrl u = must_parse("HTTPS://Example.COM:8443/a/../b.jpg?x=1#frag");
    CHECK(u.scheme == "https");
    CHECK(u.host == "example.com");
    CHECK(u.port == 8443);
    CHECK(u.path == "/b.jpg");
    CHECK(u.normalized == "https://example.com:8443/b.jpg?x=1");
  }
  SUBCASE("default ports") {
    CHECK(must_parse("http://h/a").port == 80);
    CHECK(must_parse("https://h/a").port == 443);
    CHECK(must_parse("http://h:80/a").normalized == must_parse("http://h/a").normalized);
  }
  SUBCASE("fragments and host case do not make a URL different") {
    CHECK(must_parse("http://h/a.jpg#x").normalized == must_parse("http://H/a.jpg#y").normalized);
  }
  SUBCASE("non-ASCII bytes are percent-encoded in the normalized form") {
    CHECK(must_parse("http://h/\xC3\xA9.jpg").normalized == "http://h/%c3%a9.jpg");
  }
}

TEST_CASE("the fast path parses plain URLs exactly as CURLU does and leaves the rest to it") {
  using imgdl::detail::parse_simple_url;
  using imgdl::detail::parse_url_with_curlu;
  SUBCASE("plain URLs take the fast path and agree with CURLU") {
    const std::vector<std::string> plain = {
        "http://127.0.0.1:8080/img/f1.jpg?size=1024",
        "https://upload.wikimedia.org/wikipedia/commons/3/3f/Fronalpstock_big.jpg",
        "http://h",
        "http://h:80/a",
        "https://h:443/a",
        "https://h:80/a",
        "http://h:65535/a",
        "http://h//a//b.png",
        "http://h/a.jpg?x=1&y=2?z=3",
        "http://h/a;b,c=d@e:f/~g!$&'()*+.jpg",
        "http://0.0.0.0/a",
        "http://255.255.255.255/a",
        "http://a-b.c-d/x",
    };
    for (const auto& url : plain) {
      CAPTURE(url);
      const auto simple = parse_simple_url(url);
      REQUIRE(simple.has_value());
      CHECK(simple == parse_url_with_curlu(url, nullptr));
    }
  }
  SUBCASE("what CURLU would rewrite, or might reject, is left to it") {
    const std::vector<std::string> others = {
        "HTTP://h/a",
        "http://H/a",
        "http://h/a#f",
        "http://h/a/../b",
        "http://h/./b",
        "http://h/a/.",
        "http://127.1/a",
        "http://0x7f.0.0.1/",
        "http://010.0.0.1/",
        "http://256.0.0.1/",
        "http://1.2.3.4.5/",
        "http://h:/a",
        "http://h:0/a",
        "http://h:080/a",
        "http://h:99999/a",
        "http://u@h/a",
        "http://[::1]/a",
        "http://h?x",
        "http://h/a?",
        "http://h/%41.jpg",
        "http://h/a b",
        "http://h/\xC3\xA9",
        "http://h/a\\b",
        "http://h/{a}",
        "http://.h/a",
        "http://h./a",
        "http://a..b/a",
        "http://h_x/a",
        "http://1.-2.3.4/a",
        "https://upl:-000000000000000000000000",  // found by fuzz_filename: from_chars took the '-'
        "http://h:+80/a",
        "http://h/" + std::string(8000000, 'a'),  // longer than CURLU accepts
    };
    for (const auto& url : others) {
      CAPTURE(url);
      CHECK_FALSE(parse_simple_url(url).has_value());
    }
  }
}

TEST_CASE("parse_url rejects what is not an http(s) URL with a host, with a reason") {
  struct Bad {
    std::string url;
    std::string message;
  };
  const std::vector<Bad> rows = {
      {"ftp://example.com/a.jpg", "unsupported scheme 'ftp' (only http and https)"},
      {"file:///etc/passwd", "unsupported scheme 'file' (only http and https)"},
      {"gopher://example.com/1", "unsupported scheme 'gopher' (only http and https)"},
      {"javascript:alert(1)", "unsupported scheme 'javascript' (only http and https)"},
      {"foo", "not a URL: foo"},
      {"example.com/a.jpg", "not a URL: example.com/a.jpg"},
      {"http:example.com/a", "not a URL: http:example.com/a"},
      {"http:/example.com/a", "not a URL: http:/example.com/a"},
      {"://x", "not a URL: ://x"},
      {"", "empty URL"},
      {"http://", "missing host"},
      {"http:///a.jpg", "missing host"},
      {"http://?a", "missing host"},
      {"http://exa mple.com/a.jpg", "whitespace in URL"},
      {" http://example.com/a.jpg", "whitespace in URL"},
      {"http://example.com/a.jpg\t", "whitespace in URL"},
      {std::string("http://example.com/a\0.jpg", 25), "control character in URL"},
      {"http://example.com/a\x1b.jpg", "control character in URL"},
  };
  for (const Bad& row : rows) {
    CAPTURE(row.url);
    std::string error;
    CHECK_FALSE(parse_url(row.url, &error).has_value());
    CHECK(error == row.message);
  }
  SUBCASE("a bad port gives libcurl's reason") {
    std::string error;
    CHECK_FALSE(parse_url("http://h:99999/a", &error).has_value());
    CHECK(error.starts_with("invalid URL: "));
  }
  SUBCASE("a null error pointer is allowed") {
    CHECK_FALSE(parse_url("nope", nullptr).has_value());
  }
  SUBCASE("a long input is quoted only in part") {
    std::string error;
    CHECK_FALSE(parse_url(std::string(5000, 'z'), &error).has_value());
    CHECK(error.size() < 120);
    CHECK(error.ends_with("..."));
  }
}

TEST_CASE("extension_of recognises short alphanumeric extensions with a letter") {
  CHECK(extension_of("a.jpg") == ".jpg");
  CHECK(extension_of("a.tar.gz") == ".gz");
  CHECK(extension_of("a.JPEG") == ".JPEG");
  CHECK(extension_of("a.mp4") == ".mp4");
  CHECK(extension_of("a") == "");
  CHECK(extension_of("a.") == "");
  CHECK(extension_of("a.1") == "");
  CHECK(extension_of("v1.22") == "");
  CHECK(extension_of("a.b-c") == "");
  CHECK(extension_of(".jpg") == "");
  CHECK(extension_of("a.abcdefghijk") == "");  // 11 characters: not an extension
}

TEST_CASE("with_extension_for appends the sniffed extension only to names without one") {
  CHECK(with_extension_for("photo", ".jpg") == "photo.jpg");
  CHECK(with_extension_for("photo.1", ".png") == "photo.1.png");
  CHECK(with_extension_for("photo.php", ".jpg") == "photo.php");
  CHECK(with_extension_for("photo", "") == "photo");
  SUBCASE("a bare name from filename_from_url always fits with any extension") {
    const std::string bare = filename_from_url(must_parse("http://h/" + std::string(400, 'q')));
    CHECK(with_extension_for(bare, ".webp") == bare + ".webp");
    CHECK(with_extension_for(bare, ".webp").size() == 255);
  }
  SUBCASE("a longer name is cut, never inside a UTF-8 sequence") {
    std::string long_name;
    for (int i = 0; i < 127; ++i) {
      long_name += "\xC3\xA9";
    }
    const std::string out = with_extension_for(long_name, ".jpg");
    CHECK(out.size() <= 255);
    CHECK(out.ends_with(".jpg"));
    check_invariants(out);
  }
}

TEST_CASE("next_free_name puts the counter before the extension and stays within 255 bytes") {
  CHECK(next_free_name("cat.jpg", 1) == "cat.1.jpg");
  CHECK(next_free_name("cat.jpg", 12) == "cat.12.jpg");
  CHECK(next_free_name("cat", 2) == "cat.2");
  CHECK(next_free_name("cat.1.jpg", 1) == "cat.1.1.jpg");
  const std::string long_name = std::string(251, 'a') + ".jpg";
  const std::string next = next_free_name(long_name, 1000);
  CHECK(next.size() == 255);
  CHECK(next.ends_with(".1000.jpg"));
  check_invariants(next);
  CHECK(next_free_name(std::string(250, 'b'), 7).size() == 250);
}

TEST_CASE("NamePlanner gives colliding basenames numbered names in input order") {
  NamePlanner planner;
  CHECK(planner.assign(must_parse("http://a.example/cat.jpg")) == "cat.jpg");
  CHECK(planner.assign(must_parse("http://b.example/cat.jpg")) == "cat.1.jpg");
  CHECK(planner.assign(must_parse("http://c.example/x/cat.jpg?v=2")) == "cat.2.jpg");
  CHECK(planner.assign(must_parse("http://d.example/Cat.jpg")) == "Cat.jpg");  // case-sensitive
  SUBCASE("a literal name equal to a numbered one is numbered in turn") {
    CHECK(planner.assign(must_parse("http://e.example/cat.1.jpg")) == "cat.1.1.jpg");
    CHECK(planner.assign(must_parse("http://f.example/cat.jpg")) == "cat.3.jpg");
  }
  CHECK(planner.size() >= 4);
}

TEST_CASE("NamePlanner fetches the same URL once") {
  NamePlanner planner;
  const ParsedUrl url = must_parse("http://example.com/cat.jpg");
  CHECK_FALSE(planner.is_duplicate(url));
  CHECK(planner.assign(url) == "cat.jpg");
  CHECK(planner.is_duplicate(url));
  CHECK(planner.assign(url) == std::nullopt);
  SUBCASE("spellings CURLU normalizes alike are the same URL") {
    CHECK(planner.assign(must_parse("http://EXAMPLE.com:80/cat.jpg#top")) == std::nullopt);
  }
  SUBCASE("a different query is a different URL") {
    CHECK(planner.assign(must_parse("http://example.com/cat.jpg?v=2")) == "cat.1.jpg");
  }
  CHECK(planner.size() >= 1);
}

TEST_CASE("NamePlanner keeps room for the extension a bare name gets after sniffing") {
  SUBCASE("bare name first") {
    NamePlanner planner;
    CHECK(planner.assign(must_parse("http://h/photo")) == "photo");
    CHECK(planner.assign(must_parse("http://h/photo.jpg")) == "photo.1.jpg");
    CHECK(planner.assign(must_parse("http://h/photo.jpeg")) == "photo.jpeg");  // never sniffed to .jpeg
    // Not "photo.1": it could become "photo.1.jpg", which is taken.
    CHECK(planner.assign(must_parse("http://h2/photo")) == "photo.2");
    CHECK(planner.is_reserved("photo.png"));  // "photo" may become it
    CHECK(planner.is_reserved("photo.1.jpg"));
    CHECK(planner.is_reserved("photo.2.gif"));
    CHECK_FALSE(planner.is_reserved("photo.3.jpg"));
    CHECK(planner.is_reserved("photo.1"));  // bare, and "photo.1.jpg" is planned
    CHECK_FALSE(planner.is_reserved("photo.3"));
  }
  SUBCASE("name with extension first") {
    NamePlanner planner;
    CHECK(planner.assign(must_parse("http://h/photo.png")) == "photo.png");
    CHECK(planner.assign(must_parse("http://h/photo")) == "photo.1");
    CHECK(with_extension_for("photo.1", ".png") == "photo.1.png");
    CHECK(planner.assign(must_parse("http://h/photo.1.png")) == "photo.1.1.png");
  }
}

TEST_CASE("NamePlanner is deterministic: two planners given one list agree") {
  std::vector<std::string> urls;
  for (int i = 0; i < 200; ++i) {
    urls.push_back("http://host" + std::to_string(i % 7) + ".example/dir" + std::to_string(i % 3) + "/img" +
                   std::to_string(i % 11) + (i % 5 == 0 ? "" : ".jpg"));
  }
  NamePlanner first;
  NamePlanner second;
  std::vector<std::string> names;
  for (const auto& u : urls) {
    const ParsedUrl parsed = must_parse(u);
    const auto a = first.assign(parsed);
    const auto b = second.assign(parsed);
    CHECK(a == b);
    if (a) {
      check_invariants(*a);
      names.push_back(*a);
    }
  }
  // Distinct even after bare names get an extension.
  std::vector<std::string> finals;
  for (const auto& n : names) {
    finals.push_back(with_extension_for(n, ".jpg"));
  }
  std::sort(finals.begin(), finals.end());
  CHECK(std::adjacent_find(finals.begin(), finals.end()) == finals.end());
  CHECK(first.size() == names.size());
}

TEST_CASE("NamePlanner numbers 10,000 equal basenames without slowing down") {
  NamePlanner planner;
  for (int i = 0; i < 10000; ++i) {
    const auto name = planner.assign(must_parse("http://h/" + std::to_string(i) + "/x.gif"));
    REQUIRE(name.has_value());
    if (i == 0) {
      CHECK(*name == "x.gif");
    } else if (i == 9999) {
      CHECK(*name == "x.9999.gif");
    }
  }
  CHECK(planner.size() == 10000);
}

// Found by fuzz_filename: a long name ending in ".part" lost its extension to the part-file rule after
// its length was fitted, and so kept more than the 250 bytes a bare name may have (a sniffed extension
// must still fit in 255).
TEST_CASE("a long name ending in .part is fitted as a bare name") {
  using imgdl::detail::filename_from_url;
  using imgdl::detail::parse_url;
  for (std::size_t stem : {240u, 250u, 253u, 300u}) {
    CAPTURE(stem);
    std::string error;
    const auto url = parse_url("http://example.com/" + std::string(stem, 'a') + ".part", &error);
    REQUIRE(url.has_value());
    const auto name = filename_from_url(*url);
    CHECK_FALSE(imgdl::detail::has_extension(name));
    CHECK(name.size() <= imgdl::detail::max_bare_name_bytes);
    CHECK_FALSE(name.ends_with(".part"));
  }
  SUBCASE("and a bare name whose cut would end right after .part") {
    std::string error;
    const auto url =
        parse_url("http://example.com/" + std::string(245, 'b') + ".part_" + std::string(60, 'c'), &error);
    REQUIRE(url.has_value());
    const auto name = filename_from_url(*url);
    CHECK(name.size() <= imgdl::detail::max_bare_name_bytes);
    CHECK_FALSE(name.ends_with(".part"));
  }
}
