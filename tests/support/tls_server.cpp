#include "tls_server.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>

extern char** environ;

namespace imgdl::test {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("TLS test server: " + what);
}

/// Spawns argv with the given stdin/stdout (-1: inherited); returns the pid.
pid_t spawn(const std::vector<std::string>& argv, int in, int out) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in >= 0)
    posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
  if (out >= 0)
    posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0)
    fail("cannot run " + argv[0] + ": " + std::strerror(error));
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

TestCerts::TestCerts() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/imgdl-tls-XXXXXX";
  if (!mkdtemp(pattern.data()))
    fail("mkdtemp: " + std::string(std::strerror(errno)));
  dir_ = pattern;
  const pid_t pid = spawn(
      {IMGDL_TEST_PYTHON, std::string(IMGDL_TEST_SUPPORT_DIR) + "/make_certs.py", dir_.string()}, -1, -1);
  const int status = wait_for(pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    fail("make_certs.py failed (is python3-cryptography installed?)");
  }
}

TestCerts::~TestCerts() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string TestCerts::file(std::string_view name) const {
  return (dir_ / name).string();
}

TlsServer::TlsServer(const TestCerts& certs, TlsServerOptions options) {
  // A server that dies mid-test must fail the test, not kill it with SIGPIPE on the next command.
  std::signal(SIGPIPE, SIG_IGN);
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    fail("pipe");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    fail("pipe");
  }
  std::vector<std::string> argv = {IMGDL_TEST_NODE, std::string(IMGDL_TEST_SUPPORT_DIR) + "/tls_server.js"};
  if (options.stall) {
    argv.emplace_back("--stall");
  } else {
    for (const char* kind : {".pem", ".key"}) {
      argv.emplace_back(kind == std::string_view(".pem") ? "--cert" : "--key");
      argv.push_back(certs.file(options.cert + kind));
    }
  }
  if (options.h1_only)
    argv.emplace_back("--h1");
  try {
    pid_ = spawn(argv, in[0], out[1]);
  } catch (...) {
    for (int fd : {in[0], in[1], out[0], out[1]})
      close(fd);
    throw;
  }
  close(in[0]);
  close(out[1]);
  to_server_ = in[1];
  from_server_ = fdopen(out[0], "r");
  try {
    const auto hello = nlohmann::json::parse(command(""));
    port_ = hello.at("port").get<int>();
  } catch (...) {
    stop();
    throw;
  }
}

TlsServer::~TlsServer() {
  stop();
}

void TlsServer::stop() noexcept {
  if (to_server_ >= 0)
    close(to_server_);  // the server exits when its stdin closes
  to_server_ = -1;
  if (from_server_)
    std::fclose(from_server_);
  from_server_ = nullptr;
  if (pid_ > 0)
    wait_for(pid_);
  pid_ = -1;
}

std::string TlsServer::url(std::string_view path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

/// Sends a command line (none for "" ) and returns the server's next line of output.
std::string TlsServer::command(std::string_view line) {
  if (!line.empty()) {
    const std::string text = std::string(line) + "\n";
    if (write(to_server_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      fail("the server is gone");
  }
  char* buffer = nullptr;
  std::size_t capacity = 0;
  const ssize_t n = getline(&buffer, &capacity, from_server_);
  std::string answer = n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  std::free(buffer);
  if (n <= 0)
    fail("the server ended without answering");
  return answer;
}

TlsServerStats TlsServer::stats() {
  const auto j = nlohmann::json::parse(command("stats"));
  TlsServerStats s;
  s.tcp_connections = j.at("tcp_connections");
  s.max_open = j.at("max_open");
  s.tls_handshakes = j.at("tls_handshakes");
  s.tls_resumed = j.at("tls_resumed");
  s.requests = j.at("requests");
  s.requests_h2 = j.at("requests_h2");
  s.requests_h1 = j.at("requests_h1");
  s.max_streams = j.at("max_streams");
  s.resets = j.at("resets");
  s.goaways = j.at("goaways");
  s.killed = j.at("killed").get<std::vector<std::string>>();
  s.hits = j.at("hits").get<std::map<std::string, std::size_t>>();
  return s;
}

void TlsServer::reset() {
  command("reset");
}

std::string TlsServer::image_bytes(std::string_view path, std::size_t size) {
  // As tls_server.js's image_bytes(): a whole 1x1 JPEG's headers, pattern scan data, the end marker.
  static constexpr std::string_view head("\xFF\xD8\xFF\xC0\x00\x0B\x08\x00\x01\x00\x01\x01\x01\x11\x00"
                                         "\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00",
                                         25);
  size = std::max<std::size_t>(size, head.size() + 2);
  unsigned seed = 0;
  for (const char c : path)
    seed = (seed + static_cast<unsigned char>(c)) % 251;
  std::string body(size, '\0');
  head.copy(body.data(), head.size());
  for (std::size_t i = head.size(); i < size - 2; ++i)
    body[i] = static_cast<char>((i * 131 + seed) % 251);
  body[size - 2] = '\xFF';
  body[size - 1] = '\xD9';
  return body;
}

}  // namespace imgdl::test
