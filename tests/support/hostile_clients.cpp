#include "hostile_clients.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "test_support.h"

namespace virtcaps::testing {

namespace {

// What each mode sends: the first `kInitial` bytes at once, then one byte a round.
std::string Script(HostileClients::Mode mode) {
  switch (mode) {
    case HostileClients::Mode::kIdle:
      return "";
    case HostileClients::Mode::kSlowHeader:
      return "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: drip\r\nX-Padding: " +
             std::string(4096, 'a') + "\r\n\r\n";
    case HostileClients::Mode::kSlowBody:
      return "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n" +
             std::string(100000, 'b');
    case HostileClients::Mode::kHalfOpenTls:
      // A TLS record header and the start of a ClientHello, then nothing more.
      return std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  }
  return "";
}

size_t InitialBytes(HostileClients::Mode mode, const std::string& script) {
  switch (mode) {
    case HostileClients::Mode::kSlowBody:
      return script.find("\r\n\r\n") + 4;  // the whole head, then the body drips
    case HostileClients::Mode::kHalfOpenTls:
      return script.size();
    default:
      return 0;
  }
}

// True when the agent has closed (or reset) the connection.
bool ClosedByPeer(int fd) {
  char buffer[4096];
  while (true) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n > 0) continue;  // an answer (e.g. 413); keep reading to see the close
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

}  // namespace

HostileClients::HostileClients(int port, int connections, Mode mode)
    : port_(port),
      mode_(mode),
      fds_(static_cast<size_t>(connections), -1),
      sent_(static_cast<size_t>(connections), 0) {
  for (size_t i = 0; i < fds_.size(); ++i) OpenSlot(i);
  thread_ = std::thread([this] { Run(); });
}

HostileClients::~HostileClients() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void HostileClients::OpenSlot(size_t slot) {
  if (fds_[slot] >= 0) ::close(fds_[slot]);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port_));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1: the hostile peer
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 &&
      errno != EINPROGRESS) {
    ::close(fd);
    fd = -1;
  }
  fds_[slot] = fd;
  sent_[slot] = 0;
  if (fd >= 0) {
    ++opened_;
    std::string script = Script(mode_);
    size_t initial = InitialBytes(mode_, script);
    if (initial > 0) {
      ssize_t n = ::send(fd, script.data(), initial, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent_[slot] = static_cast<size_t>(n);
    }
  }
}

void HostileClients::Run() {
  const std::string script = Script(mode_);
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    next += std::chrono::seconds(1);
    while (!stop_ && std::chrono::steady_clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (stop_) break;
    for (size_t i = 0; i < fds_.size() && !stop_; ++i) {
      if (fds_[i] < 0 || ClosedByPeer(fds_[i])) {
        if (fds_[i] >= 0) ++closed_by_agent_;
        OpenSlot(i);  // the attacker comes straight back
        continue;
      }
      bool drips = mode_ == Mode::kSlowHeader || mode_ == Mode::kSlowBody;
      if (drips && sent_[i] < script.size()) {
        if (::send(fds_[i], script.data() + sent_[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
          ++sent_[i];
        }
      }
    }
    ++rounds_;
  }
}

int ScrapeWithin1s(const std::string& url, const std::string& source,
                   const std::vector<std::string>& curl_options) {
  std::vector<std::string> args = {"/usr/bin/curl", "-sS", "--max-time", "1",  "--interface",
                                   source,          "-o",  "/dev/null",  "-w", "%{http_code}"};
  for (const std::string& option : curl_options) args.push_back(option);
  args.push_back(url);
  ProcessResult result = RunProcess(args, 10);
  if (result.exit_code != 0) return 0;
  return std::atoi(result.out.c_str());
}

ProcessFootprint FootprintOf(int pid) {
  ProcessFootprint footprint;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name == "Threads:") fields >> footprint.threads;
    if (name == "VmRSS:") fields >> footprint.rss_kb;
  }
  return footprint;
}

int AttackSeconds() {
  const char* value = std::getenv("VIRTCAPS_ATTACK_SECONDS");
  if (value == nullptr || *value == '\0') return 30;
  int seconds = std::atoi(value);
  return seconds >= 1 && seconds <= 600 ? seconds : 30;
}

void ExpectScrapesSurviveAttack(AgentProcess& agent, HostileClients::Mode mode,
                                const std::string& url, int seconds,
                                const std::vector<std::string>& curl_options) {
  constexpr int kConnections = 300;
  ASSERT_EQ(ScrapeWithin1s(url, "127.0.0.2", curl_options), 200) << agent.log();
  ProcessFootprint before = FootprintOf(agent.pid());
  ProcessFootprint peak = before;
  int opened = 0;
  int closed = 0;
  {
    HostileClients attack(agent.port(), kConnections, mode);
    int answered = 0;
    for (int i = 0; i < seconds; ++i) {
      auto started = std::chrono::steady_clock::now();
      int status = ScrapeWithin1s(url, "127.0.0.2", curl_options);
      EXPECT_EQ(status, 200) << "scrape " << i << " under attack";
      if (status == 200) ++answered;
      ProcessFootprint now = FootprintOf(agent.pid());
      peak.threads = std::max(peak.threads, now.threads);
      peak.rss_kb = std::max(peak.rss_kb, now.rss_kb);
      std::this_thread::sleep_until(started + std::chrono::seconds(1));  // once a second
    }
    opened = attack.opened();
    closed = attack.closed_by_agent();
    EXPECT_EQ(answered, seconds);
  }
  // CivetWeb's pool is fixed: the attack adds no thread. Memory may grow a little
  // (socket buffers, request buffers touched), never per connection without bound.
  EXPECT_LE(peak.threads, before.threads) << "threads grew under attack";
  EXPECT_LE(peak.rss_kb - before.rss_kb, 16 * 1024) << "RSS grew by more than 16 MiB";
  // The agent, not the attacker, ended most of the 300: all but the per-client share.
  EXPECT_GE(closed, kConnections - 16) << "the agent kept the hostile connections open";
  std::printf(
      "[ figures ] attack %d: %d connections opened, %d closed by the agent; threads %d "
      "-> peak %d; RSS %ld kB -> peak %ld kB\n",
      static_cast<int>(mode), opened, closed, before.threads, peak.threads, before.rss_kb,
      peak.rss_kb);
  // Afterwards: healthy, and the attacker's own address is served again (its share of
  // connections was given back). The agent may still be closing the last ones.
  int status = 0;
  for (int attempt = 0; attempt < 10 && status != 200; ++attempt) {
    status = ScrapeWithin1s(url, "127.0.0.1", curl_options);
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_EQ(status, 200) << "127.0.0.1 is still refused after its attack ended";
}

}  // namespace virtcaps::testing
