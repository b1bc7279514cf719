#include "virtcaps/connection_gate.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <linux/tcp.h>  // tcp_info with tcpi_bytes_received (glibc's lacks it)
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// The gates by the local port they guard. accept() carries no user data, so this one
// table is process-wide; each HttpServer adds its ports and removes them when it stops.
struct GateTable {
  std::mutex mutex;
  std::map<int, ConnectionGate*> by_port;
};
GateTable& Gates() {
  static GateTable* table = new GateTable();  // never destroyed: accept() may run at exit
  return *table;
}

std::optional<uint32_t> PeerAddress(const struct sockaddr* peer) {
  if (peer == nullptr || peer->sa_family != AF_INET) return std::nullopt;
  const auto* in = reinterpret_cast<const struct sockaddr_in*>(peer);
  return ntohl(in->sin_addr.s_addr);
}

}  // namespace

Expected<Ipv4Network> ParseIpv4Network(std::string_view text) {
  std::string_view address = text;
  unsigned prefix = 32;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    address = text.substr(0, slash);
    auto bits = ParseUint(text.substr(slash + 1));
    if (!bits || *bits > 32) {
      return Status::Error("expected a prefix length from 0 to 32 after '/' in '" +
                           std::string(text) + "'");
    }
    prefix = static_cast<unsigned>(*bits);
  }
  struct in_addr parsed;
  std::string address_text(address);
  if (inet_pton(AF_INET, address_text.c_str(), &parsed) != 1) {
    return Status::Error("expected an IPv4 network such as 10.0.0.0/8, got '" + std::string(text) +
                         "'");
  }
  Ipv4Network network;
  network.mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  network.address = ntohl(parsed.s_addr);
  if ((network.address & ~network.mask) != 0) {
    return Status::Error("'" + std::string(text) + "' has host bits set after the prefix");
  }
  return network;
}

ConnectionGate::ConnectionGate(int per_client_limit, std::vector<Ipv4Network> allowed)
    : per_client_limit_(per_client_limit < 1 ? 1 : per_client_limit),
      allowed_(std::move(allowed)) {}

ConnectionGate::~ConnectionGate() {
  GateTable& table = Gates();
  std::lock_guard<std::mutex> lock(table.mutex);
  for (int port : ports_) {
    auto found = table.by_port.find(port);
    if (found != table.by_port.end() && found->second == this) table.by_port.erase(found);
  }
}

void ConnectionGate::Guard(std::vector<int> ports) {
  GateTable& table = Gates();
  std::lock_guard<std::mutex> lock(table.mutex);
  for (int port : ports) table.by_port[port] = this;
  ports_ = std::move(ports);
}

size_t ConnectionGate::Prune(std::vector<Admitted>& connections) const {
  std::erase_if(connections, [](const Admitted& connection) {
    struct stat info;
    return ::fstat(connection.fd, &info) != 0 || info.st_dev != connection.device ||
           info.st_ino != connection.inode;  // closed, or the number reused for another file
  });
  return connections.size();
}

bool ConnectionGate::Admit(const struct sockaddr* peer, int fd) {
  std::optional<uint32_t> address = PeerAddress(peer);
  if (!address) return true;  // not IPv4: nothing CivetWeb 1.15 would serve anyway
  if (!allowed_.empty()) {
    bool allowed = false;
    for (const Ipv4Network& network : allowed_) allowed = allowed || network.Contains(*address);
    if (!allowed) {
      ++refused_not_allowed_;
      return false;
    }
  }
  struct stat info;
  if (::fstat(fd, &info) != 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  // Now and then, forget peers whose connections have all closed: memory stays
  // bounded by the connections actually open.
  if (++admitted_since_sweep_ >= 1024) {
    admitted_since_sweep_ = 0;
    for (auto entry = open_.begin(); entry != open_.end();) {
      entry = Prune(entry->second) == 0 ? open_.erase(entry) : std::next(entry);
    }
  }
  std::vector<Admitted>& connections = open_[*address];
  if (Prune(connections) >= static_cast<size_t>(per_client_limit_)) {
    ++refused_over_limit_;
    return false;
  }
  connections.push_back({fd, info.st_dev, info.st_ino});
  return true;
}

int ConnectionGate::OpenFrom(const std::string& address) {
  struct in_addr parsed;
  if (inet_pton(AF_INET, address.c_str(), &parsed) != 1) return 0;
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = open_.find(ntohl(parsed.s_addr));
  return found == open_.end() ? 0 : static_cast<int>(Prune(found->second));
}

std::optional<uint64_t> ConnectionGate::BytesConsumed(const std::string& address, int port) {
  struct in_addr parsed;
  if (inet_pton(AF_INET, address.c_str(), &parsed) != 1) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = open_.find(ntohl(parsed.s_addr));
  if (found == open_.end()) return std::nullopt;
  Prune(found->second);
  for (const Admitted& connection : found->second) {
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    if (::getpeername(connection.fd, reinterpret_cast<struct sockaddr*>(&peer), &length) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) {
      continue;
    }
    struct tcp_info info;
    socklen_t info_length = sizeof(info);
    int queued = 0;
    if (::getsockopt(connection.fd, IPPROTO_TCP, TCP_INFO, &info, &info_length) != 0 ||
        ::ioctl(connection.fd, SIOCINQ, &queued) != 0 || queued < 0 ||
        info.tcpi_bytes_received < static_cast<uint64_t>(queued)) {
      return std::nullopt;
    }
    return info.tcpi_bytes_received - static_cast<uint64_t>(queued);
  }
  return std::nullopt;
}

bool ConnectionGate::AdmitOnPort(int local_port, const struct sockaddr* peer, int fd) {
  GateTable& table = Gates();
  std::lock_guard<std::mutex> lock(table.mutex);
  auto found = table.by_port.find(local_port);
  return found == table.by_port.end() || found->second->Admit(peer, fd);
}

}  // namespace virtcaps

// CivetWeb's master thread accepts connections with accept(); this definition in the
// program comes first in symbol lookup, so it runs instead of the C library's. It
// accepts with accept4 (not wrapped) and closes at once a connection its gate refuses,
// reporting EAGAIN, which CivetWeb treats as "nothing to accept".
extern "C" int accept(int listener, struct sockaddr* address, socklen_t* length) {
  struct sockaddr_storage peer;
  socklen_t peer_length = sizeof(peer);
  int client = accept4(listener, reinterpret_cast<struct sockaddr*>(&peer), &peer_length, 0);
  if (client < 0) return client;
  struct sockaddr_storage local;
  socklen_t local_length = sizeof(local);
  if (getsockname(listener, reinterpret_cast<struct sockaddr*>(&local), &local_length) == 0 &&
      local.ss_family == AF_INET) {
    int port = ntohs(reinterpret_cast<struct sockaddr_in*>(&local)->sin_port);
    if (!virtcaps::ConnectionGate::AdmitOnPort(port, reinterpret_cast<struct sockaddr*>(&peer),
                                               client)) {
      ::close(client);
      errno = EAGAIN;
      return -1;
    }
  }
  if (address != nullptr && length != nullptr) {
    socklen_t copy = *length < peer_length ? *length : peer_length;
    std::memcpy(address, &peer, copy);
    *length = peer_length;
  }
  return client;
}
