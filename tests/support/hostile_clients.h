// One hostile peer for resilience tests: many connections from 127.0.0.1 that never
// finish a request (idle, one header byte a second, one body byte a second, or a TLS
// handshake that never comes), kept open, and reopened when the agent closes them.
// Everything is loopback and bounded: the attack stops when the object is destroyed.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace virtcaps::testing {

class HostileClients {
 public:
  enum class Mode {
    kIdle,         // connect, send nothing
    kSlowHeader,   // a request head, one byte a second
    kSlowBody,     // a complete head announcing a body, then one body byte a second
    kHalfOpenTls,  // connect to an HTTPS port, send the first bytes of a ClientHello, stall
  };
  HostileClients(int port, int connections, Mode mode);
  ~HostileClients();  // stops the attack and closes every connection
  HostileClients(const HostileClients&) = delete;
  HostileClients& operator=(const HostileClients&) = delete;

  // Connections the attacker opened in all (first round and reconnects).
  int opened() const { return opened_.load(); }
  // Connections the agent closed (reset or FIN) while the attacker kept them.
  int closed_by_agent() const { return closed_by_agent_.load(); }
  // Rounds (one a second) done so far.
  int rounds() const { return rounds_.load(); }

 private:
  void Run();
  void OpenSlot(size_t slot);

  const int port_;
  const Mode mode_;
  std::vector<int> fds_;
  std::vector<size_t> sent_;  // bytes of the script each connection has sent
  std::atomic<bool> stop_{false};
  std::atomic<int> opened_{0};
  std::atomic<int> closed_by_agent_{0};
  std::atomic<int> rounds_{0};
  std::thread thread_;
};

// A scrape as a second peer makes it: curl bound to `source` (e.g. 127.0.0.2), with a
// 1 s bound on the whole exchange. Returns the HTTP status, 0 when none came in time.
int ScrapeWithin1s(const std::string& url, const std::string& source,
                   const std::vector<std::string>& curl_options = {});

// Threads and resident memory (kB) of a process, from /proc/PID/status.
struct ProcessFootprint {
  int threads = 0;
  long rss_kb = 0;
};
ProcessFootprint FootprintOf(int pid);

class AgentProcess;

// How long each attack of the resilience tests lasts: the 30 s, unless
// VIRTCAPS_ATTACK_SECONDS (1..600) says otherwise (the sanitizer pass of scripts/test.sh
// runs the same attacks for 10 s: it looks for memory errors, the normal pass for
// endurance).
int AttackSeconds();

// The resilience check of issue 13: while 300 `mode` connections from 127.0.0.1 go on,
// 127.0.0.2 scrapes `url` once a second for `seconds`; every scrape must answer 200
// within 1 s, the agent's threads and RSS stay bounded, the attack really was refused
// (closed) by the agent, and afterwards the attacker's own address is served again.
// Prints the figures it measured.
void ExpectScrapesSurviveAttack(AgentProcess& agent, HostileClients::Mode mode,
                                const std::string& url, int seconds = AttackSeconds(),
                                const std::vector<std::string>& curl_options = {});

}  // namespace virtcaps::testing
