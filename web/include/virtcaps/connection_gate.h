// Who may hold one of the web server's workers: a per-source-address cap on open
// connections and an optional allow list of networks, both decided when a connection is
// accepted, before CivetWeb hands it to a worker.
//
// CivetWeb 1.15 runs one worker thread per open connection, and a worker reads the
// request head (or runs the TLS handshake) until request_timeout. So one peer with many
// idle, slow-header or half-open TLS connections could hold every worker. CivetWeb has
// no hook between accept() and handing the socket to a worker (its init_connection
// callback runs in the worker, after the TLS handshake), so the gate sits in accept()
// itself: the agent defines accept(), which CivetWeb's master thread calls, and refuses
// (closes at once) connections from a peer that already has its share open.
//
// The gate remembers each admitted connection's file descriptor and socket inode, and
// counts a peer's connections by checking which of those are still the same open socket.
// So it needs no word from CivetWeb when a connection ends (CivetWeb's close callback
// cannot tell the peer of a connection whose TLS handshake failed), and cannot drift.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

// An IPv4 network such as 10.1.0.0/16 (CivetWeb 1.15 has no IPv6).
struct Ipv4Network {
  uint32_t address = 0;  // host byte order, host bits zero
  uint32_t mask = 0;
  bool Contains(uint32_t host_order_address) const {
    return (host_order_address & mask) == address;
  }
};
// "a.b.c.d/n" or "a.b.c.d" (= /32); an error says what is wrong.
Expected<Ipv4Network> ParseIpv4Network(std::string_view text);

class ConnectionGate {
 public:
  // per_client_limit: connections one source address may have open at once (>= 1).
  // allowed: empty means every address.
  ConnectionGate(int per_client_limit, std::vector<Ipv4Network> allowed);
  ~ConnectionGate();  // stops guarding its ports
  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  // Connections accepted on these local TCP ports go through Admit.
  void Guard(std::vector<int> ports);

  // True (and remembered) when `peer` may have one more connection, accepted as `fd`.
  bool Admit(const struct sockaddr* peer, int fd);

  uint64_t refused_over_limit() const { return refused_over_limit_.load(); }
  uint64_t refused_not_allowed() const { return refused_not_allowed_.load(); }
  // Open connections from `address` ("127.0.0.1") as the gate counts them.
  int OpenFrom(const std::string& address);
  // How many bytes the server has taken out of the admitted connection from `address`
  // and `port` (what the kernel received on it, less what still waits in its queue);
  // nullopt when no such connection is open.
  std::optional<uint64_t> BytesConsumed(const std::string& address, int port);

  // Used by the accept() wrapper: Admit by the gate guarding `local_port`; true when
  // no gate guards it.
  static bool AdmitOnPort(int local_port, const struct sockaddr* peer, int fd);

 private:
  const int per_client_limit_;
  const std::vector<Ipv4Network> allowed_;
  std::vector<int> ports_;
  struct Admitted {
    int fd;
    dev_t device;
    ino_t inode;
  };
  // Drops the connections of `peer` that are no longer open; returns how many are.
  size_t Prune(std::vector<Admitted>& connections) const;
  std::mutex mutex_;
  std::unordered_map<uint32_t, std::vector<Admitted>> open_;  // by source address
  uint64_t admitted_since_sweep_ = 0;
  std::atomic<uint64_t> refused_over_limit_{0};
  std::atomic<uint64_t> refused_not_allowed_{0};
};

}  // namespace virtcaps
