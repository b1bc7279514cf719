// The agent under hostile or careless clients: idle and slow connections from one peer,
// malformed requests, bodies, odd framing. It must keep answering other peers' scrapes
// and never fall over. The hostile peer is 127.0.0.1, the scraper 127.0.0.2.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <tuple>

#include "hostile_clients.h"
#include "test_support.h"
#include "virtcaps/files.h"

namespace virtcaps {
namespace {

using testing::AgentProcess;
using testing::HostileClients;
using testing::HttpExchange;
using testing::HttpGet;

std::vector<std::string> FixtureArgs(const std::string& profile) {
  std::string dir = testing::FixtureHost(profile);
  return {"--config.file=" + dir + "/virtcaps.yaml", "--path.rootfs=" + dir};
}

std::vector<std::string> FixtureArgsWithWeb(const std::string& profile, const std::string& web) {
  return {"--config.file=" + testing::FixtureConfigWithWeb(profile, web),
          "--path.rootfs=" + testing::FixtureHost(profile)};
}

std::string MetricsUrl(int port) { return "http://127.0.0.1:" + std::to_string(port) + "/metrics"; }

// Issue 13: one peer with 300 connections of one kind cannot deny a second peer's
// scrapes. Each attack runs 30 s (testing::AttackSeconds).
TEST(ResilienceTest, ThreeHundredIdleConnectionsFromOnePeerDoNotDenyScrapes) {
  AgentProcess agent(FixtureArgs("intel-xeon-vmx-nested"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  testing::ExpectScrapesSurviveAttack(agent, HostileClients::Mode::kIdle, MetricsUrl(agent.port()));
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

TEST(ResilienceTest, ThreeHundredSlowHeaderConnectionsFromOnePeerDoNotDenyScrapes) {
  AgentProcess agent(FixtureArgs("intel-xeon-vmx-nested"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  testing::ExpectScrapesSurviveAttack(agent, HostileClients::Mode::kSlowHeader,
                                      MetricsUrl(agent.port()));
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

TEST(ResilienceTest, ThreeHundredSlowBodyConnectionsFromOnePeerDoNotDenyScrapes) {
  AgentProcess agent(FixtureArgs("intel-xeon-vmx-nested"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  testing::ExpectScrapesSurviveAttack(agent, HostileClients::Mode::kSlowBody,
                                      MetricsUrl(agent.port()));
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

// The per-client cap is enforced on accept: the ninth connection from one address is
// closed at once while another address is still served.
TEST(ResilienceTest, ConnectionsBeyondTheClientsShareAreClosedOnAccept) {
  AgentProcess agent(
      FixtureArgsWithWeb("intel-xeon-vmx-nested", "  max_connections_per_client: 3\n"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(testing::ConnectLoopback(agent.port()));
  // The fourth is accepted by the kernel, then closed by the agent without an answer.
  auto refused = HttpGet(agent.port(), "/healthz");
  EXPECT_EQ(refused.status, 0);
  EXPECT_EQ(testing::ScrapeWithin1s(MetricsUrl(agent.port()), "127.0.0.2"), 200);
  for (int fd : held) ::close(fd);
  int status = 0;
  for (int attempt = 0; attempt < 10 && status != 200; ++attempt) {
    status = HttpGet(agent.port(), "/healthz").status;  // the share comes back
  }
  EXPECT_EQ(status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

TEST(ResilienceTest, AllowedNetworksServeOnlyTheListedClients) {
  AgentProcess agent(
      FixtureArgsWithWeb("intel-xeon-vmx-nested", "  allowed_networks: [127.0.0.2/32]\n"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  EXPECT_EQ(testing::ScrapeWithin1s(MetricsUrl(agent.port()), "127.0.0.2"), 200);
  EXPECT_EQ(testing::ScrapeWithin1s(MetricsUrl(agent.port()), "127.0.0.1"), 0);
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 0);  // 127.0.0.1: closed on accept
  EXPECT_EQ(testing::ScrapeWithin1s(MetricsUrl(agent.port()), "127.0.0.2"), 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

// Issue 15.5 and 15.9: what the head shows cannot be served is answered from the head,
// with a status line, before any body is read; the agent goes on serving.
TEST(ResilienceTest, RequestsWithBodiesOrOddFramingGetTheirOwnStatus) {
  AgentProcess agent(FixtureArgs("intel-xeon-vmx-nested"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  const std::string host = "Host: 127.0.0.1\r\n";
  std::string port = std::to_string(agent.port());
  const std::vector<std::tuple<std::string, std::string, int>> cases = {
      // A body that never comes: refused at once, not read (HttpExchange would wait
      // for the agent's request_timeout otherwise).
      {"body announced", "POST /metrics HTTP/1.1\r\n" + host + "Content-Length: 1000000\r\n\r\nab",
       413},
      {"GET with a body", "GET /metrics HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello",
       413},
      {"chunked body",
       "POST /metrics HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\n", 411},
      {"CL and TE",
       "GET /metrics HTTP/1.1\r\n" + host +
           "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"two Content-Length",
       "GET /metrics HTTP/1.1\r\n" + host + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", 400},
      {"large head",
       "GET /metrics HTTP/1.1\r\n" + host + "X-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431},
      // Past CivetWeb's buffer (twice max_request_header_bytes), where CivetWeb itself
      // says 400 as it does for garbage.
      {"head past the buffer",
       "GET /metrics HTTP/1.1\r\n" + host + "X-Big: " + std::string(100000, 'a') + "\r\n\r\n", 431},
      {"request line past the buffer", std::string(40000, 'G'), 431},
      {"short garbage", "GARBAGE\x01\x02 nothing\r\n\r\n", 400},
      {"absolute form", "GET http://127.0.0.1:" + port + "/healthz HTTP/1.1\r\n" + host + "\r\n",
       200},
      {"absolute form, other host", "GET http://example.com/healthz HTTP/1.1\r\n" + host + "\r\n",
       400},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", 200},
      {"WebSocket upgrade",
       "GET /healthz HTTP/1.1\r\n" + host +
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
       200},
      {"zero-length body", "GET /healthz HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n", 200},
  };
  for (const auto& [name, raw, expected] : cases) {
    auto started = std::chrono::steady_clock::now();
    auto response = testing::HttpExchange(agent.port(), raw);
    EXPECT_EQ(response.status, expected) << name;
    // Answered from the head: well before the 10 s request timeout a read would take.
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5)) << name;
    ASSERT_EQ(HttpGet(agent.port(), "/healthz").status, 200) << "after " << name << "\n"
                                                             << agent.log();
  }
  auto options = testing::HttpExchange(agent.port(), "OPTIONS * HTTP/1.1\r\n" + host + "\r\n");
  EXPECT_EQ(options.Header("allow"), "GET, HEAD");
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

struct Received {
  std::string data;
  bool closed = false;  // by the agent (FIN or reset), not a pause of `seconds`
};

// Reads everything the agent sends on `fd` until it closes, or until nothing has come
// for `seconds`.
Received ReadUntilClosed(int fd, int seconds) {
  timeval timeout{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  Received received;
  char buffer[65536];
  while (true) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      received.data.append(buffer, static_cast<size_t>(n));
      continue;
    }
    received.closed = n == 0 || errno == ECONNRESET;
    return received;
  }
}

size_t CountStatusLines(const std::string& data) {
  size_t count = 0;
  for (size_t at = data.find("HTTP/1."); at != std::string::npos;
       at = data.find("HTTP/1.", at + 1)) {
    ++count;
  }
  return count;
}

// Issue 15.9: a head CivetWeb itself refuses (a header line without a colon) gets one
// answer, not CivetWeb's 400 followed by ours.
TEST(ResilienceTest, AHeadCivetWebRefusesGetsExactlyOneAnswer) {
  AgentProcess agent(FixtureArgs("intel-xeon-vmx-nested"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  for (const std::string& raw :
       {std::string("GET /metrics HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"),
        std::string("GARBAGE\x01\x02 nothing\r\n\r\n"),
        std::string("OPTIONS * HTTP/1.1\r\n\r\n")}) {
    int fd = testing::ConnectLoopback(agent.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
    Received answer = ReadUntilClosed(fd, 5);
    ::close(fd);
    EXPECT_TRUE(answer.closed) << raw;
    EXPECT_EQ(CountStatusLines(answer.data), 1u) << raw << "\n" << answer.data;
  }
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

// Issue 15.5: clients that never read their responses. With 4 workers, 4 connections
// from 127.0.0.1 each pipeline 1000 requests for the uncompressed page into a tiny
// receive window and never read, so every worker blocks in a write. The write deadline
// (request_timeout, 2 s here) must free them: a second peer's scrape is then served,
// and the agent has closed every one of the non-reading connections. Without the
// deadline the workers would be held as long as the clients like.
TEST(ResilienceTest, ClientsThatNeverReadTheirResponsesDoNotHoldWorkers) {
  AgentProcess agent(FixtureArgsWithWeb("intel-xeon-vmx-nested",
                                        "  max_connections: 4\n"
                                        "  max_connections_per_client: 4\n"
                                        "  request_timeout: 2s\n"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  // 1000 pages of 21 kB: far more than the kernel's socket buffers (4 MB) hold.
  constexpr size_t kPipelined = 1000;
  std::string pipelined;
  for (size_t i = 0; i < kPipelined; ++i) {
    pipelined += "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n";
  }
  std::vector<int> readers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    int small = 4096;  // before connect, so the advertised window stays small
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(agent.port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    timeval send_timeout{2, 0};  // the requests fit the agent's window; never wait long
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    ::send(fd, pipelined.data(), pipelined.size(), MSG_NOSIGNAL);
    readers.push_back(fd);
  }
  // Served once a blocked write passes its deadline (2 s, then CivetWeb's 1 s drain of
  // the unread requests at close); curl waits up to 40 s for that. With a 60 s
  // request_timeout the same scrape fails: the deadline is what frees the workers.
  auto scrape = testing::RunProcess({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w",
                                     "%{http_code}", "--interface", "127.0.0.2", "--max-time", "40",
                                     MetricsUrl(agent.port())});
  EXPECT_EQ(scrape.out, "200") << "curl exit " << scrape.exit_code << ": " << scrape.err
                               << agent.log();
  // No connection is left open: reading now drains what was buffered and then ends
  // (closed by the write deadline, or, for one whose turn came only now that it reads,
  // by the keep-alive timeout after it was served).
  for (int fd : readers) {
    Received got = ReadUntilClosed(fd, 30);
    EXPECT_TRUE(got.closed) << "the agent kept a non-reading connection open";
    ::close(fd);
  }
  EXPECT_EQ(HttpGet(agent.port(), "/healthz").status, 200);
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
}

// CivetWeb's own authorization looks for a Digest password file on the request's path
// ("/.htpasswd" for every endpoint) unless an authorization hook is set: a file there
// that has nothing to do with the agent made every scrape a 401 Digest challenge.
TEST(ResilienceTest, AStrayHtpasswdAtTheRootChangesNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to write /.htpasswd";
  static constexpr char kPath[] = "/.htpasswd";
  int fd = open(kPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) GTEST_SKIP() << kPath << " exists already (not ours to touch)";
  const char line[] = "admin:example.org:0123456789abcdef0123456789abcdef\n";
  ASSERT_EQ(write(fd, line, sizeof(line) - 1), static_cast<ssize_t>(sizeof(line) - 1));
  close(fd);
  struct Remove {
    ~Remove() { unlink(kPath); }
  } remove;
  AgentProcess agent(FixtureArgs("amd-epyc-pvm-guest"));
  ASSERT_TRUE(agent.started()) << agent.log();
  ASSERT_TRUE(agent.WaitForLog("first snapshot ready", 20000)) << agent.log();
  for (const char* path : {"/metrics", "/capabilities", "/healthz", "/"}) {
    testing::HttpResponse answer = HttpGet(agent.port(), path);
    EXPECT_EQ(answer.status, 200) << path;
    EXPECT_EQ(answer.Header("www-authenticate"), "") << path;
  }
  EXPECT_EQ(agent.Stop(SIGTERM), 0) << agent.log();
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
