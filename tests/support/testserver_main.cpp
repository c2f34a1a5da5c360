// imgdl-testserver: runs the loopback test server until SIGINT/SIGTERM, for demos, benchmarks and scripts.
#include "test_server.hpp"

#include <pthread.h>

#include <charconv>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kUsage =
    "usage: imgdl-testserver [--host 127.0.0.1] [--port P] [--latency-ms L] [--threads N] [--tls]\n"
    "                        [--port-file FILE] [--write-list FILE --count N --size BYTES --prefix NAME]\n"
    "Serves deterministic images and faults on a loopback address until SIGINT or SIGTERM.\n"
    "--port 0 (the default) picks a free port; --port-file writes it for scripts. --write-list writes\n"
    "--count (default 100) image URLs of --size bytes (default 20000) named <prefix>_<i>.jpg (default img).\n"
    "Routes are documented in tests/support/test_server.hpp.\n";

struct Args {
  imgdl::test::ServerOptions server;
  std::string port_file;
  std::string list_file;
  std::size_t count = 100;
  std::size_t size = 20000;
  std::string prefix = "img";
};

std::size_t to_number(std::string_view flag, std::string_view text) {
  std::size_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw std::invalid_argument(std::string(flag) + " wants a non-negative integer, got '" +
                                std::string(text) + "'");
  }
  return v;
}

// Returns nullopt when --help was asked for.
std::optional<Args> parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      return std::nullopt;
    }
    if (flag == "--tls") {
      args.server.tls = true;
      continue;
    }
    if (i + 1 >= argc) {
      throw std::invalid_argument("unknown option or missing value: " + std::string(flag));
    }
    const std::string_view value = argv[++i];
    if (flag == "--host") {
      args.server.host = value;
    } else if (flag == "--port") {
      const auto port = to_number(flag, value);
      if (port > 65535) {
        throw std::invalid_argument("--port must be at most 65535");
      }
      args.server.port = static_cast<int>(port);
    } else if (flag == "--latency-ms") {
      args.server.latency = std::chrono::milliseconds(static_cast<std::int64_t>(to_number(flag, value)));
    } else if (flag == "--threads") {
      args.server.threads = std::max<std::size_t>(to_number(flag, value), 1);
    } else if (flag == "--port-file") {
      args.port_file = value;
    } else if (flag == "--write-list") {
      args.list_file = value;
    } else if (flag == "--count") {
      args.count = to_number(flag, value);
    } else if (flag == "--size") {
      args.size = to_number(flag, value);
    } else if (flag == "--prefix") {
      args.prefix = value;
    } else {
      throw std::invalid_argument("unknown option: " + std::string(flag));
    }
  }
  if (!imgdl::test::is_loopback_host(args.server.host)) {
    throw std::invalid_argument("--host must be a loopback address (127.0.0.0/8, localhost, ::1), not '" +
                                args.server.host + "'");
  }
  return args;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw std::runtime_error("cannot write " + path);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Args> args;
  try {
    args = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "imgdl-testserver: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (!args) {
    std::cout << kUsage;
    return 0;
  }

  // Block the stop signals before any thread exists so they all inherit the mask and sigwait() below is
  // the only place they are delivered.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    imgdl::test::TestServer server(args->server);
    if (!args->port_file.empty()) {
      write_file(args->port_file, std::to_string(server.port()) + "\n");
    }
    if (!args->list_file.empty()) {
      std::string list;
      for (const auto& url : server.image_urls(args->count, args->size, args->prefix)) {
        list += url + "\n";
      }
      write_file(args->list_file, list);
    }
    std::cout << "listening on " << server.base_url() << std::endl;  // flushed: scripts wait for this line
    if (!server.ca_file().empty()) {
      std::cout << "ca file " << server.ca_file() << std::endl;
    }
    int received = 0;
    sigwait(&stop_signals, &received);
    std::cout << "stopping (signal " << received << ")" << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "imgdl-testserver: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
