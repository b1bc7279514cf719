#include "test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

extern char** environ;

namespace virtcaps::testing {

std::string SourceDir() { return VIRTCAPS_SOURCE_DIR; }
std::string FixtureHost(const std::string& profile) {
  return SourceDir() + "/tests/fixtures/hosts/" + profile;
}
std::string AgentBinary() { return VIRTCAPS_AGENT_BINARY; }

std::vector<std::string> FixtureProfiles() {
  std::vector<std::string> profiles;
  auto entries = ListDirectory(SourceDir() + "/tests/fixtures/hosts");
  if (!entries) return profiles;
  for (const std::string& entry : *entries) {
    if (IsDirectory(FixtureHost(entry))) profiles.push_back(entry);
  }
  return profiles;
}

std::string TempDir() {
  // mkdtemp: a new directory every time, even when a pid from an earlier run comes back.
  std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  std::string pattern = base + "/virtcaps-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed in " + base);
  return pattern;
}

Config FixtureConfig(const std::string& profile) {
  std::string dir = FixtureHost(profile);
  auto config = LoadConfigFile(dir + "/virtcaps.yaml", CollectorDefaults());
  if (!config) throw std::runtime_error(config.error());
  config->paths.rootfs = dir;
  return *config;
}

void WriteTestFile(const std::string& path, const std::string& content) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    ::mkdir(path.substr(0, slash).c_str(), 0755);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool UpdateGolden() {
  const char* value = std::getenv("VIRTCAPS_UPDATE_GOLDEN");
  return value != nullptr && std::string(value) == "1";
}

std::string CompareGolden(const std::string& golden_path, const std::string& actual) {
  if (UpdateGolden()) {
    WriteTestFile(golden_path, actual);
    return "";
  }
  auto expected = ReadFile(golden_path);
  if (!expected)
    return "missing golden file " + golden_path + " (run with VIRTCAPS_UPDATE_GOLDEN=1)";
  if (*expected == actual) return "";
  auto expected_lines = Split(*expected, '\n');
  auto actual_lines = Split(actual, '\n');
  for (size_t i = 0; i < std::max(expected_lines.size(), actual_lines.size()); ++i) {
    std::string_view want = i < expected_lines.size() ? expected_lines[i] : "<end of file>";
    std::string_view got = i < actual_lines.size() ? actual_lines[i] : "<end of file>";
    if (want != got) {
      return golden_path + ":" + std::to_string(i + 1) + ": expected '" + std::string(want) +
             "', got '" + std::string(got) + "'";
    }
  }
  return golden_path + ": differs";
}

namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  return argv;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& args, int timeout_seconds) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = 0;
  auto argv = Argv(args);
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) throw std::runtime_error("cannot run " + args[0] + ": " + std::strerror(rc));
  ProcessResult result;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buffer[65536];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<size_t>(n));
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  if (open_fds > 0) ::kill(pid, SIGKILL);
  int status = 0;
  struct rusage usage;
  std::memset(&usage, 0, sizeof(usage));
  ::wait4(pid, &status, 0, &usage);
  result.exit_code = DecodeWaitStatus(status);
  result.max_rss_kb = usage.ru_maxrss;
  return result;
}

AgentProcess::AgentProcess(std::vector<std::string> args) {
  args.insert(args.begin(), AgentBinary());
  bool has_address = false;
  for (const std::string& arg : args)
    has_address = has_address || arg.rfind("--web.listen-address", 0) == 0;
  if (!has_address) args.push_back("--web.listen-address=127.0.0.1:0");
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  auto argv = Argv(args);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(err_pipe[1]);
  if (rc != 0) throw std::runtime_error("cannot start agent: " + std::string(std::strerror(rc)));
  pid_ = pid;
  err_fd_ = err_pipe[0];
  // The agent logs "msg=listening address=127.0.0.1:PORT" once its sockets are bound.
  if (WaitForLog("msg=listening address=", 20000)) {
    size_t at = log_.find("msg=listening address=");
    size_t colon = log_.find(':', at + 22);
    port_ = static_cast<int>(
        ParseUint(log_.substr(colon + 1, log_.find(' ', colon) - colon - 1)).value_or(0));
  }
}

int AgentProcess::CountInLog(const std::string& needle) const {
  int count = 0;
  for (size_t at = log_.find(needle); at != std::string::npos; at = log_.find(needle, at + 1))
    ++count;
  return count;
}

bool AgentProcess::WaitForLog(const std::string& needle, int timeout_ms, int count) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (CountInLog(needle) < count) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0 || err_fd_ < 0) return false;
    pollfd fd = {err_fd_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(remaining.count())) <= 0) continue;
    char buffer[8192];
    ssize_t n = ::read(err_fd_, buffer, sizeof(buffer));
    if (n <= 0) return CountInLog(needle) >= count;
    log_.append(buffer, static_cast<size_t>(n));
  }
  return true;
}

int AgentProcess::Stop(int signal_number) {
  if (pid_ < 0) return -1;
  ::kill(pid_, signal_number);
  int status = 0;
  for (int i = 0; i < 200; ++i) {  // up to 20 s, then force
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      WaitForLog("\x01", 0);
      return DecodeWaitStatus(status);
    }
    WaitForLog("\x01", 100);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return DecodeWaitStatus(status);
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) Stop(SIGKILL);
  if (err_fd_ >= 0) ::close(err_fd_);
}

std::string HttpResponse::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (key == ToLower(name)) return value;
  }
  return "";
}

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

HttpResponse HttpExchange(int port, const std::string& raw_request) {
  HttpResponse response;
  int fd = ConnectLoopback(port);
  if (fd < 0) return response;
  timeval timeout{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::send(fd, raw_request.data(), raw_request.size(), MSG_NOSIGNAL);
  std::string data;
  size_t header_end = std::string::npos;
  size_t content_length = std::string::npos;
  bool head_request = raw_request.rfind("HEAD ", 0) == 0;
  while (true) {
    char buffer[65536];
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string lower = ToLower(data.substr(0, header_end));
        size_t at = lower.find("\r\ncontent-length:");
        if (at != std::string::npos) {
          content_length = ParseUint(Trim(std::string_view(lower).substr(
                                         at + 17, lower.find("\r\n", at + 2) - at - 17)))
                               .value_or(0);
        }
      }
    }
    if (header_end != std::string::npos &&
        (head_request ||
         (content_length != std::string::npos && data.size() >= header_end + 4 + content_length))) {
      break;
    }
  }
  ::close(fd);
  if (header_end == std::string::npos) return response;
  auto lines = Split(std::string_view(data).substr(0, header_end), '\n');
  auto status_words = SplitWhitespace(lines[0]);
  if (status_words.size() >= 2)
    response.status = static_cast<int>(ParseUint(status_words[1]).value_or(0));
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos) continue;
    response.headers.emplace_back(ToLower(Trim(lines[i].substr(0, colon))),
                                  std::string(Trim(lines[i].substr(colon + 1))));
  }
  response.body = data.substr(header_end + 4);
  return response;
}

HttpResponse HttpGet(int port, const std::string& path, const std::string& method) {
  return HttpExchange(
      port, method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

std::string Gunzip(const std::string& data) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return "";
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[65536];
  int result = Z_OK;
  while (result == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    result = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - stream.avail_out);
  }
  inflateEnd(&stream);
  return result == Z_STREAM_END ? out : "";
}

std::string FixtureConfigWithWeb(const std::string& profile, const std::string& web_yaml) {
  std::string dir = FixtureHost(profile);
  auto text = ReadFile(dir + "/virtcaps.yaml");
  EXPECT_TRUE(text) << text.error();
  std::string yaml = text ? *text : "";
  for (size_t at = yaml.find("dump_file: "); at != std::string::npos;
       at = yaml.find("dump_file: ", at + 1)) {
    yaml.insert(at + 11, dir + "/");
  }
  std::string config = TempDir() + "/virtcaps.yaml";
  WriteTestFile(config, yaml + "web:\n" + web_yaml);
  return config;
}

}  // namespace virtcaps::testing
