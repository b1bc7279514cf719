// Helpers shared by the tests: fixture locations, running the real agent binary,
// and a minimal HTTP/1.1 client for loopback requests.
#pragma once

#include <string>
#include <vector>

#include "virtcaps/config.h"

namespace virtcaps::testing {

std::string SourceDir();
std::string FixtureHost(const std::string& profile);  // tests/fixtures/hosts/<profile>
std::vector<std::string> FixtureProfiles();           // every profile directory
std::string AgentBinary();
std::string TempDir();  // a fresh directory per call

// The fixture's own virtcaps.yaml with its rootfs as paths.rootfs.
Config FixtureConfig(const std::string& profile);

// A copy of the fixture's virtcaps.yaml (file paths made absolute) in a temp dir, with
// `web_yaml` (indented lines) as its `web:` section. Returns the file's path.
std::string FixtureConfigWithWeb(const std::string& profile, const std::string& web_yaml);

// Writes `content` to `path`, creating parent directories.
void WriteTestFile(const std::string& path, const std::string& content);
// True when the environment asks to rewrite golden files instead of comparing.
bool UpdateGolden();
// Compares `actual` to the golden file (or rewrites it with VIRTCAPS_UPDATE_GOLDEN=1).
// Returns an empty string on match, else a description of the first difference.
std::string CompareGolden(const std::string& golden_path, const std::string& actual);

struct ProcessResult {
  int exit_code = -1;  // 128+signal when killed
  std::string out;
  std::string err;
  long max_rss_kb = 0;  // the program's peak resident set (wait4), in KiB
};
// Runs a program to completion (no shell), feeding nothing on stdin.
ProcessResult RunProcess(const std::vector<std::string>& argv, int timeout_seconds = 60);

// The real agent, started in the background on a free loopback port.
class AgentProcess {
 public:
  explicit AgentProcess(std::vector<std::string> args);
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  bool started() const { return port_ > 0; }
  int port() const { return port_; }
  int pid() const { return pid_; }
  // Sends a signal and waits for exit; returns the exit code (128+signal if killed).
  int Stop(int signal_number);
  // stderr read so far.
  const std::string& log() const { return log_; }
  // Reads more stderr until `needle` appears (at least `count` times) or the timeout passes.
  bool WaitForLog(const std::string& needle, int timeout_ms, int count = 1);
  int CountInLog(const std::string& needle) const;

 private:
  int pid_ = -1;
  int err_fd_ = -1;
  int port_ = 0;
  std::string log_;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string Header(const std::string& name) const;
};
// A TCP connection to 127.0.0.1:port, or -1.
int ConnectLoopback(int port);
// Sends raw bytes and reads the response until the server closes or Content-Length is met.
HttpResponse HttpExchange(int port, const std::string& raw_request);
HttpResponse HttpGet(int port, const std::string& path, const std::string& method = "GET");
// Decompresses a gzip body; empty on malformed input.
std::string Gunzip(const std::string& data);

}  // namespace virtcaps::testing
