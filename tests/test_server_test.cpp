// Tests of the loopback test server itself, through a plain httplib client: if these fail, every other
// test's verdict is suspect.
#include "test_server.hpp"
#include "image_bytes.hpp"

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using imgdl::test::ImageGenerator;
using imgdl::test::ImageKind;
using imgdl::test::ServerOptions;
using imgdl::test::TestServer;
using namespace std::chrono_literals;

namespace {

constexpr ImageKind kAllKinds[] = {ImageKind::Jpeg, ImageKind::Png, ImageKind::Gif,
                                   ImageKind::Webp, ImageKind::Bmp, ImageKind::Svg};

std::string_view ext_of(ImageKind kind) {
  switch (kind) {
    case ImageKind::Jpeg:
      return "jpg";
    case ImageKind::Png:
      return "png";
    case ImageKind::Gif:
      return "gif";
    case ImageKind::Webp:
      return "webp";
    case ImageKind::Bmp:
      return "bmp";
    case ImageKind::Svg:
      return "svg";
  }
  return "";
}

httplib::Client client_for(const TestServer& server) {
  httplib::Client cli("127.0.0.1", server.port());
  cli.set_keep_alive(true);
  cli.set_read_timeout(10s);
  return cli;
}

std::uint32_t byte(std::string_view s, std::size_t i) {
  return static_cast<unsigned char>(s.at(i));
}
std::uint32_t be16(std::string_view s, std::size_t i) {
  return byte(s, i) << 8 | byte(s, i + 1);
}
std::uint32_t be32(std::string_view s, std::size_t i) {
  return be16(s, i) << 16 | be16(s, i + 2);
}
std::uint32_t le16(std::string_view s, std::size_t i) {
  return byte(s, i) | byte(s, i + 1) << 8;
}
std::uint32_t le32(std::string_view s, std::size_t i) {
  return le16(s, i) | le16(s, i + 2) << 16;
}

std::uint32_t crc32_of(std::string_view s) {
  std::uint32_t crc = 0xffffffffU;
  for (const char c : s) {
    crc ^= static_cast<unsigned char>(c);
    for (int k = 0; k < 8; ++k) {
      crc = (crc >> 1) ^ (0xedb88320U & (0U - (crc & 1U)));
    }
  }
  return ~crc;
}

// Walks each format's structure end to end; returns "" when the file is well formed, else what is wrong.
std::string structure_error(ImageKind kind, std::string_view f) {
  const std::size_t n = f.size();
  switch (kind) {
    case ImageKind::Jpeg: {
      if (be16(f, 0) != 0xFFD8) {
        return "no SOI";
      }
      std::size_t i = 2;
      bool frame = false;
      while (i + 2 <= n) {
        if (byte(f, i) != 0xFF) {
          return "no marker at " + std::to_string(i);
        }
        const auto marker = byte(f, i + 1);
        if (marker == 0xD9) {
          return i + 2 == n && frame ? "" : "EOI not at the end or no SOF";
        }
        frame = frame || marker == 0xC0;
        const std::size_t len = be16(f, i + 2);
        i += 2 + len;
        if (marker == 0xDA) {
          while (i + 1 < n && !(byte(f, i) == 0xFF && byte(f, i + 1) == 0xD9)) {
            ++i;  // entropy-coded data
          }
        }
      }
      return "ran off the end";
    }
    case ImageKind::Png: {
      if (f.substr(0, 8) != std::string_view("\x89PNG\r\n\x1a\n", 8) || f.substr(12, 4) != "IHDR") {
        return "bad signature or first chunk";
      }
      std::size_t i = 8;
      while (i + 12 <= n) {
        const std::size_t len = be32(f, i);
        if (i + 12 + len > n) {
          return "chunk past the end";
        }
        if (crc32_of(f.substr(i + 4, 4 + len)) != be32(f, i + 8 + len)) {
          return "bad CRC at " + std::to_string(i);
        }
        const auto type = f.substr(i + 4, 4);
        i += 12 + len;
        if (type == "IEND") {
          return i == n ? "" : "IEND not at the end";
        }
      }
      return "no IEND";
    }
    case ImageKind::Gif: {
      if (f.substr(0, 6) != "GIF89a" || (byte(f, 10) & 0x80) == 0) {
        return "bad header";
      }
      std::size_t i = 13 + 3 * (std::size_t{2} << (byte(f, 10) & 7));
      auto skip_sub_blocks = [&] {
        while (i < n && byte(f, i) != 0) {
          i += 1 + byte(f, i);
        }
        ++i;
      };
      bool image = false;
      while (i < n) {
        const auto b = byte(f, i);
        if (b == 0x3B) {
          return i + 1 == n && image ? "" : "trailer not at the end or no image";
        }
        if (b == 0x21) {
          i += 2;
          skip_sub_blocks();
        } else if (b == 0x2C) {
          i += 10 + 1;  // descriptor, LZW minimum code size
          skip_sub_blocks();
          image = true;
        } else {
          return "unknown block at " + std::to_string(i);
        }
      }
      return "no trailer";
    }
    case ImageKind::Webp: {
      // An odd size has one byte after the (always even) RIFF container.
      const std::size_t riff_end = n - n % 2;
      if (f.substr(0, 4) != "RIFF" || le32(f, 4) != riff_end - 8 || f.substr(8, 8) != "WEBPVP8X") {
        return "bad RIFF header";
      }
      std::size_t i = 12;
      bool image = false;
      while (i + 8 <= riff_end) {
        image = image || f.substr(i, 4) == "VP8L";
        const std::size_t len = le32(f, i + 4);
        i += 8 + len + len % 2;
      }
      return i == riff_end && image ? "" : "chunks do not tile the container";
    }
    case ImageKind::Bmp: {
      const std::size_t width = le32(f, 18);
      const std::size_t height = le32(f, 22);
      const std::size_t row = (width * 24 + 31) / 32 * 4;
      if (f.substr(0, 2) != "BM" || le32(f, 2) != n || le32(f, 14) != 40 || le16(f, 28) != 24) {
        return "bad headers";
      }
      return le32(f, 10) + le32(f, 34) == n && row * height == le32(f, 34) ? "" : "pixel array does not fit";
    }
    case ImageKind::Svg: {
      const auto open = f.find("<!--");
      const auto close = f.rfind("-->");
      if (!f.starts_with("<?xml") || f.find("<svg") > 200 || !f.ends_with("</svg>\n")) {
        return "not an SVG document";
      }
      return f.substr(open + 4, close - open - 4).find("--") == std::string_view::npos ? ""
                                                                                       : "'--' in comment";
    }
  }
  return "unknown kind";
}

}  // namespace

TEST_CASE("Generated images are well formed at every size from the minimum up") {
  for (const ImageKind kind : kAllKinds) {
    const std::size_t min = imgdl::test::min_image_size(kind);
    for (const std::size_t size : {std::size_t{0}, min, min + 1, min + 2, min + 3, std::size_t{300},
                                   std::size_t{4097}, std::size_t{65535}, std::size_t{65536 + 17},
                                   std::size_t{131090}, std::size_t{200001}, std::size_t{(1 << 20) + 7}}) {
      CAPTURE(ext_of(kind));
      CAPTURE(size);
      const std::string bytes = imgdl::test::image_bytes(kind, size, "/img/seed");
      CHECK(bytes.size() == std::max(size, min));
      CHECK(structure_error(kind, bytes) == "");
    }
  }
}

TEST_CASE("Image slices agree with the whole file and seeds change the bytes") {
  for (const ImageKind kind : kAllKinds) {
    CAPTURE(ext_of(kind));
    const ImageGenerator gen(kind, 300000, "/img/a");
    const std::string whole = gen.bytes();
    std::string slice;
    for (const auto& [offset, length] : {std::pair<std::size_t, std::size_t>{0, 10},
                                         {1, 70000},
                                         {65530, 20},
                                         {65549, 65549},
                                         {299990, 100},
                                         {123457, 1}}) {
      imgdl::test::image_chunk(kind, 300000, "/img/a", offset, length, slice);
      CHECK(slice == whole.substr(offset, length));
    }
    CHECK(whole != imgdl::test::image_bytes(kind, 300000, "/img/b"));
    CHECK(whole == TestServer::image_bytes(ext_of(kind), 300000, "/img/a"));
  }
  // No two 4 KiB blocks of padding are alike, so a resume from the wrong block cannot pass unnoticed.
  const std::string jpeg = imgdl::test::image_bytes(ImageKind::Jpeg, 100000, "/img/x.jpg");
  CHECK(jpeg.substr(8192, 4096) != jpeg.substr(12288, 4096));
  CHECK_THROWS_AS(TestServer::image_bytes("tiff", 100, "x"), std::invalid_argument);
}

TEST_CASE("The image route serves every type at the requested size with its magic bytes and MIME type") {
  const TestServer server;
  auto cli = client_for(server);
  const std::pair<ImageKind, std::string_view> magic[] = {
      {ImageKind::Jpeg, "\xFF\xD8\xFF"}, {ImageKind::Png, "\x89PNG"}, {ImageKind::Gif, "GIF89a"},
      {ImageKind::Webp, "RIFF"},         {ImageKind::Bmp, "BM"},      {ImageKind::Svg, "<?xml"}};
  for (const auto& [kind, prefix] : magic) {
    const std::string path = "/img/pic." + std::string(ext_of(kind));
    CAPTURE(path);
    const auto res = cli.Get(path + "?size=5000");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body.size() == 5000);
    CHECK(res->body.starts_with(prefix));
    CHECK(res->get_header_value("Content-Type") == imgdl::test::mime_type(kind));
    CHECK(res->body == TestServer::image_bytes(ext_of(kind), 5000, path));
  }

  const auto fallback = cli.Get("/img/noext");
  REQUIRE(fallback);
  CHECK(fallback->body.size() == 20000);
  CHECK(fallback->body.starts_with("\xFF\xD8\xFF"));

  const auto typed = cli.Get("/img/x.jpg?type=png&content_type=text/plain&size=1000");
  REQUIRE(typed);
  CHECK(typed->body.starts_with("\x89PNG"));
  CHECK(typed->get_header_value("Content-Type") == "text/plain");

  const auto chunked = cli.Get("/img/c.gif?chunked=1&size=150000");
  REQUIRE(chunked);
  CHECK_FALSE(chunked->has_header("Content-Length"));
  CHECK(chunked->get_header_value("Transfer-Encoding") == "chunked");
  CHECK(chunked->body == TestServer::image_bytes("gif", 150000, "/img/c.gif"));

  const auto head = cli.Head("/img/h.png?size=12345");
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->get_header_value("Content-Length") == "12345");
  CHECK(head->body.empty());
}

TEST_CASE("A large image streams byte for byte") {
  const TestServer server;
  auto cli = client_for(server);
  constexpr std::size_t kSize = 20 * 1024 * 1024 + 3;
  const ImageGenerator expected(ImageKind::Png, kSize, "/img/big.png");
  std::size_t received = 0;
  bool same = true;
  std::string want;
  const auto res =
      cli.Get("/img/big.png?size=" + std::to_string(kSize), [&](const char* data, std::size_t n) {
        want.clear();
        expected.append(received, n, want);
        same = same && want == std::string_view(data, n);
        received += n;
        return true;
      });
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(received == kSize);
  CHECK(same);
}

TEST_CASE("Range requests get a 206 with Content-Range unless the server ignores ranges") {
  const TestServer server;
  auto cli = client_for(server);
  const std::string whole = TestServer::image_bytes("jpeg", 10000, "/img/r.jpg");

  const auto open_ended = cli.Get("/img/r.jpg?size=10000", {{"Range", "bytes=4000-"}});
  REQUIRE(open_ended);
  CHECK(open_ended->status == 206);
  CHECK(open_ended->get_header_value("Content-Range") == "bytes 4000-9999/10000");
  CHECK(open_ended->body == whole.substr(4000));

  const auto closed = cli.Get("/img/r.jpg?size=10000", {{"Range", "bytes=10-19"}});
  REQUIRE(closed);
  CHECK(closed->status == 206);
  CHECK(closed->get_header_value("Content-Range") == "bytes 10-19/10000");
  CHECK(closed->body == whole.substr(10, 10));

  const auto suffix = cli.Get("/img/r.jpg?size=10000", {{"Range", "bytes=-100"}});
  REQUIRE(suffix);
  CHECK(suffix->status == 206);
  CHECK(suffix->body == whole.substr(9900));

  const auto past_end = cli.Get("/img/r.jpg?size=10000", {{"Range", "bytes=10000-"}});
  REQUIRE(past_end);
  CHECK(past_end->status == 416);
  CHECK(past_end->get_header_value("Content-Range") == "bytes */10000");

  const auto ignored = cli.Get("/img/r.jpg?size=10000&ignore_range=1", {{"Range", "bytes=4000-"}});
  REQUIRE(ignored);
  CHECK(ignored->status == 200);
  CHECK_FALSE(ignored->has_header("Content-Range"));
  CHECK(ignored->body == whole);

  CHECK(server.range_headers() ==
        std::vector<std::string>{"bytes=4000-", "bytes=10-19", "bytes=-100", "bytes=10000-", "bytes=4000-"});
}

TEST_CASE("Status routes answer with the code and an optional Retry-After") {
  const TestServer server;
  auto cli = client_for(server);
  for (const int code : {200, 403, 404, 429, 500, 503}) {
    const auto res = cli.Get("/status/" + std::to_string(code));
    REQUIRE(res);
    CHECK(res->status == code);
    CHECK_FALSE(res->has_header("Retry-After"));
  }
  const auto seconds = cli.Get("/status/429?retry_after=7");
  REQUIRE(seconds);
  CHECK(seconds->get_header_value("Retry-After") == "7");
  const auto date = cli.Get("/status/503?retry_after=30&retry_after_date=1");
  REQUIRE(date);
  const std::string value = date->get_header_value("Retry-After");
  CHECK(value.size() == 29);
  CHECK(value.ends_with(" GMT"));
}

TEST_CASE("A flaky key fails the given number of times and then serves its image") {
  const TestServer server;
  auto cli = client_for(server);
  const std::string path = "/flaky/k1.png";
  for (int i = 0; i < 2; ++i) {
    const auto res = cli.Get(path + "?fails=2&code=429&retry_after=1&size=3000");
    REQUIRE(res);
    CHECK(res->status == 429);
    CHECK(res->get_header_value("Retry-After") == "1");
  }
  const auto ok = cli.Get(path + "?fails=2&code=429&retry_after=1&size=3000");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->body == TestServer::image_bytes("png", 3000, path));
  CHECK(server.hits(path) == 3);

  const auto other = cli.Get("/flaky/k2");  // keys count separately; default one 503
  REQUIRE(other);
  CHECK(other->status == 503);

  CHECK(server.hits("/nothing") == 0);
  CHECK(server.requests() == 4);
}

TEST_CASE("Redirects chain down to their target and can point anywhere") {
  const TestServer server;
  auto cli = client_for(server);
  const auto first = cli.Get("/redirect/3?code=301&to=/img/end.gif");
  REQUIRE(first);
  CHECK(first->status == 301);
  CHECK(first->get_header_value("Location") == "/redirect/2?code=301&to=/img/end.gif");

  cli.set_follow_location(true);
  const auto followed = cli.Get("/redirect/3?to=/img/end.gif");
  REQUIRE(followed);
  CHECK(followed->status == 200);
  CHECK(followed->body == TestServer::image_bytes("gif", 20000, "/img/end.gif"));
  CHECK(server.hits("/redirect/1") == 1);
  CHECK(server.hits("/img/end.gif") == 1);
  cli.set_follow_location(false);

  const auto loop = cli.Get("/redirect-loop");
  REQUIRE(loop);
  CHECK(loop->status == 302);
  CHECK(loop->get_header_value("Location") == "/redirect-loop");

  const auto anywhere = cli.Get("/redirect-to?url=file:///etc/passwd&code=307");
  REQUIRE(anywhere);
  CHECK(anywhere->status == 307);
  CHECK(anywhere->get_header_value("Location") == "file:///etc/passwd");
}

TEST_CASE("Four concurrent slow clients reach a peak of exactly four requests in flight") {
  const TestServer server(ServerOptions{.latency = 150ms});
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      auto cli = client_for(server);
      for (int i = 0; i < 3; ++i) {
        const auto res = cli.Get("/img/w" + std::to_string(c) + "_" + std::to_string(i) + ".jpg?size=1000");
        ok += res && res->status == 200 ? 1 : 0;
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  CHECK(ok == 12);
  CHECK(server.requests() == 12);
  CHECK(server.peak_in_flight() == 4);
  CHECK(server.in_flight() == 0);
  CHECK(server.connections() == 4);
  CHECK(server.peak_in_flight_for_host("127.0.0.1") == 4);
}

TEST_CASE("One keep-alive client doing five requests is one connection") {
  TestServer server;
  {
    auto cli = client_for(server);
    for (int i = 0; i < 5; ++i) {
      REQUIRE(cli.Get("/img/k.jpg?size=100000"));
    }
  }
  CHECK(server.requests() == 5);
  CHECK(server.connections() == 1);

  server.reset_counters();  // counts again from zero, connections included
  CHECK(server.requests() == 0);
  httplib::Client fresh("127.0.0.1", server.port());
  fresh.set_keep_alive(false);
  REQUIRE(fresh.Get("/html"));
  REQUIRE(fresh.Get("/html"));
  CHECK(server.connections() == 2);
}

TEST_CASE("Per-host peaks tell 127.0.0.1 and localhost apart") {
  const TestServer server(ServerOptions{.latency = 150ms});
  auto fetch = [&](std::string host, int n) {
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, host] {
        httplib::Client cli("127.0.0.1", server.port());
        REQUIRE(cli.Get("/img/h.jpg", {{"Host", host + ":" + std::to_string(server.port())}}));
      });
    }
    return threads;
  };
  auto a = fetch("127.0.0.1", 3);
  auto b = fetch("localhost", 2);
  for (auto* group : {&a, &b}) {
    for (auto& t : *group) {
      t.join();
    }
  }
  CHECK(server.peak_in_flight_for_host("127.0.0.1") == 3);
  CHECK(server.peak_in_flight_for_host("localhost:1234") == 2);
  CHECK(server.peak_in_flight() == 5);
}

TEST_CASE("User agents and headers are recorded and echoed") {
  const TestServer server;
  auto cli = client_for(server);
  REQUIRE(cli.Get("/img/u.jpg", {{"User-Agent", "imgdl-test/1.0"}}));
  const auto echo = cli.Get("/echo-headers", {{"User-Agent", "second/2"}, {"X-Probe", "42"}});
  REQUIRE(echo);
  CHECK(echo->body.starts_with("GET /echo-headers HTTP/1.1\n"));
  CHECK(echo->body.find("User-Agent: second/2\n") != std::string::npos);
  CHECK(echo->body.find("X-Probe: 42\n") != std::string::npos);
  CHECK(server.user_agents() == std::vector<std::string>{"imgdl-test/1.0", "second/2"});
  CHECK(server.last_user_agent() == "second/2");
}

TEST_CASE("Broken transfers fail on the client side") {
  const TestServer server;
  httplib::Client cli("127.0.0.1", server.port());
  cli.set_read_timeout(5s);

  std::string got;
  const auto receive = [&](const char* data, std::size_t n) {
    got.append(data, n);
    return true;
  };
  const auto truncated = cli.Get("/truncated/t.jpg?size=50000&sent=20000", receive);
  CHECK_FALSE(truncated);
  CHECK(got == TestServer::image_bytes("jpeg", 50000, "/truncated/t.jpg").substr(0, 20000));

  got.clear();
  const auto reset_mid = cli.Get("/reset-mid-body?size=50000&sent=1000", receive);
  CHECK_FALSE(reset_mid);
  CHECK(got.size() <= 1000);

  const auto reset_early = cli.Get("/reset-before-headers");
  CHECK_FALSE(reset_early);
  CHECK(reset_early.error() != httplib::Error::Success);

  got.clear();
  const auto cut = cli.Get("/chunked-cut?sent=3000", receive);
  CHECK_FALSE(cut);
  CHECK(got.size() == 3000);

  // The server is still healthy afterwards.
  const auto fine = cli.Get("/img/after.jpg?size=100");
  REQUIRE(fine);
  CHECK(fine->status == 200);
}

TEST_CASE("Slow routes deliver their bytes slowly but completely") {
  const TestServer server;
  auto cli = client_for(server);
  const auto start = std::chrono::steady_clock::now();
  const auto drip = cli.Get("/drip?size=2000&bytes_per_sec=10000");
  REQUIRE(drip);
  CHECK(drip->body == TestServer::image_bytes("jpeg", 2000, "/drip"));
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);  // 2000 bytes at 10 kB/s is 200 ms

  const auto stalled = cli.Get("/stall-body?size=4000&sent=1000&ms=100");
  REQUIRE(stalled);
  CHECK(stalled->body == TestServer::image_bytes("jpeg", 4000, "/stall-body"));

  const auto headers = cli.Get("/stall-headers?ms=50");
  REQUIRE(headers);
  CHECK(headers->status == 200);

  std::size_t received = 0;
  const auto endless = cli.Get("/unbounded", [&](const char*, std::size_t n) {
    received += n;
    return received < 3 * 1024 * 1024;  // the client gives up, the server never ends
  });
  CHECK_FALSE(endless);
  CHECK(received >= 3 * 1024 * 1024);
}

TEST_CASE("Destroying the server is prompt while a client is stalled or idle") {
  auto server = std::make_unique<TestServer>();
  httplib::Client idle("127.0.0.1", server->port());
  idle.set_keep_alive(true);
  REQUIRE(idle.Get("/html"));  // leaves an idle keep-alive connection

  auto stalled = std::async(std::launch::async, [port = server->port()] {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(60s);
    return cli.Get("/stall-headers?ms=30000");
  });
  for (int i = 0; i < 5000 && server->in_flight() == 0; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(server->in_flight() == 1);

  const auto start = std::chrono::steady_clock::now();
  server.reset();
  CHECK(std::chrono::steady_clock::now() - start < 5s);  // a wait of 30 s or a 10 s keep-alive would fail
  REQUIRE(stalled.wait_for(10s) == std::future_status::ready);
  const auto res = stalled.get();
  CHECK((!res || res->status == 503));
}

TEST_CASE("The list route lists image URLs on this server") {
  const TestServer server;
  auto cli = client_for(server);
  const auto res = cli.Get("/list?n=3&size=500&latency_ms=5&prefix=p");
  REQUIRE(res);
  const std::string base = server.base_url();
  CHECK(res->body == base + "/img/p_0.jpg?size=500&latency_ms=5\n" + base +
                         "/img/p_1.jpg?size=500&latency_ms=5\n" + base +
                         "/img/p_2.jpg?size=500&latency_ms=5\n");
  CHECK(server.image_urls(2, 10) ==
        std::vector<std::string>{base + "/img/img_0.jpg?size=10", base + "/img/img_1.jpg?size=10"});
  const auto alternating = cli.Get("/list?n=2&alternate_hosts=1");
  REQUIRE(alternating);
  CHECK(alternating->body.find("http://localhost:" + std::to_string(server.port()) + "/img/img_1.jpg") !=
        std::string::npos);
}

TEST_CASE("Small routes: html, empty and gzip") {
  const TestServer server;
  auto cli = client_for(server);
  const auto html = cli.Get("/html");
  REQUIRE(html);
  CHECK(html->get_header_value("Content-Type") == "text/html");
  CHECK(html->body.find("<html>") != std::string::npos);

  const auto empty = cli.Get("/empty");
  REQUIRE(empty);
  CHECK(empty->status == 200);
  CHECK(empty->body.empty());

  const auto gz = cli.Get("/gzip/z.png?size=30000", {{"Accept-Encoding", "gzip"}});  // httplib decompresses
  REQUIRE(gz);
  CHECK(gz->get_header_value("Content-Encoding") == "gzip");
  CHECK(gz->body == TestServer::image_bytes("png", 30000, "/gzip/z.png"));
  const auto identity = cli.Get("/gzip/z.png?size=30000");
  REQUIRE(identity);
  CHECK_FALSE(identity->has_header("Content-Encoding"));
  CHECK(identity->body == gz->body);

  const auto missing = cli.Get("/no/such/route");
  REQUIRE(missing);
  CHECK(missing->status == 404);
}

TEST_CASE("The TLS server is trusted through its CA file") {
  const TestServer server(ServerOptions{.tls = true});
  REQUIRE_FALSE(server.ca_file().empty());
  CHECK(server.base_url() == "https://127.0.0.1:" + std::to_string(server.port()));
  httplib::SSLClient cli("127.0.0.1", server.port());
  cli.set_ca_cert_path(server.ca_file().c_str());
  cli.enable_server_certificate_verification(true);
  const auto res = cli.Get("/img/secure.webp?size=7000");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == TestServer::image_bytes("webp", 7000, "/img/secure.webp"));

  httplib::SSLClient untrusting("127.0.0.1", server.port());
  untrusting.enable_server_certificate_verification(true);
  CHECK_FALSE(untrusting.Get("/html"));
}

TEST_CASE("Only loopback hosts are accepted") {
  CHECK(imgdl::test::is_loopback_host("127.0.0.1"));
  CHECK(imgdl::test::is_loopback_host("127.1.2.3"));
  CHECK(imgdl::test::is_loopback_host("localhost"));
  CHECK(imgdl::test::is_loopback_host("::1"));
  CHECK_FALSE(imgdl::test::is_loopback_host("0.0.0.0"));
  CHECK_FALSE(imgdl::test::is_loopback_host("10.0.0.1"));
  CHECK_FALSE(imgdl::test::is_loopback_host("example.com"));
  CHECK_THROWS_AS(TestServer(ServerOptions{.host = "0.0.0.0"}), std::invalid_argument);
}
