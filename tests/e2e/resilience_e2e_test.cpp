// The agent under hostile or careless clients: idle and slow connections, malformed
// requests. It must keep answering scrapes and never fall over.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test_support.h"
#include "virtcaps/files.h"

namespace virtcaps {
namespace {

using testing::AgentProcess;
using testing::HttpExchange;
using testing::HttpGet;

std::vector<std::string> FixtureArgs(const std::string& profile) {
  std::string dir = testing::FixtureHost(profile);
  return {"--config.file=" + dir + "/virtcaps.yaml", "--path.rootfs=" + dir};
}

TEST(ResilienceTest, TwoHundredIdleOrSlowConnectionsDoNotStarveScrapes) {
  AgentProcess agent(FixtureArgs("intel-xeon-vmx-nested"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  // The snapshot's part of the page; the live process and request families that follow
  // it change with every scrape.
  auto snapshot_part = [](const std::string& body) {
    return body.substr(0, body.find("# HELP process_cpu_seconds_total "));
  };
  std::string expected = snapshot_part(HttpGet(agent.port(), "/metrics").body);
  ASSERT_FALSE(expected.empty());

  // 100 clients that connect and say nothing, 100 that send half a request and stall.
  // They stay open (well inside the 10 s request timeout) while scrapes go on.
  std::vector<int> clients;
  for (int i = 0; i < 200; ++i) {
    int fd = testing::ConnectLoopback(agent.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    if (i % 2 == 1) {
      const char partial[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
      ASSERT_GT(::send(fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL), 0);
    }
    clients.push_back(fd);
  }
  // The client's 15 s receive timeout is longer than the agent's request timeout,
  // so a starved scrape would only be answered after the idle ones were dropped:
  // check the idle ones are still connected after the scrapes.
  for (int i = 0; i < 20; ++i) {
    auto scrape = HttpGet(agent.port(), "/metrics");
    ASSERT_EQ(scrape.status, 200) << "scrape " << i;
    EXPECT_EQ(snapshot_part(scrape.body), expected);
  }
  int still_open = 0;
  for (int fd : clients) {
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      ++still_open;  // not closed by the agent
  }
  EXPECT_EQ(still_open, 200)
      << "the agent dropped idle clients, so scrapes may have waited for that";
  for (int fd : clients) ::close(fd);
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0);
}

constexpr char kNulRequest[] = "GET /metr\0ics HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(ResilienceTest, MalformedRequestsGet4xxAndTheAgentKeepsServing) {
  AgentProcess agent(FixtureArgs("amd-epyc-pvm-guest"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  const std::string huge_header(100 * 1024, 'a');
  const std::string long_uri(64 * 1024, 'b');
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary += static_cast<char>((i * 131 + 7) & 0xff);
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"garbage request line", "GARBAGE\r\n\r\n"},
      {"method only", "GET\r\n\r\n"},
      {"no version", "GET /metrics\r\n\r\n"},
      {"bad version", "GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n"},
      {"binary junk", binary},
      {"TLS hello on plain HTTP",
       std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + binary},
      {"huge header", "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + huge_header + "\r\n\r\n"},
      {"long URI", "GET /" + long_uri + " HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"unknown method", "BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"POST with body", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
      {"negative length", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
      {"traversal", "GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"encoded traversal", "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"NUL in path", std::string(kNulRequest, sizeof(kNulRequest) - 1)},
      {"header without colon", "GET /metrics HTTP/1.1\r\nthis is not a header\r\n\r\n"},
  };
  for (const auto& [name, raw] : requests) {
    auto response = HttpExchange(agent.port(), raw);
    // Either a 4xx, or the connection is closed without an answer; never a 5xx or a
    // file. The one exception is RFC 9110's own answer to an unknown HTTP version, 505.
    bool version_answer = name == "bad version" && response.status == 505;
    EXPECT_TRUE(response.status == 0 || (response.status >= 400 && response.status < 500) ||
                version_answer)
        << name << ": " << response.status;
    EXPECT_EQ(response.body.find("root:"), std::string::npos) << name;
    ASSERT_EQ(HttpGet(agent.port(), "/healthz").status, 200) << "after " << name << "\n"
                                                             << agent.log();
  }
  EXPECT_EQ(HttpGet(agent.port(), "/metrics").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

}  // namespace
}  // namespace virtcaps
