#include "virtcaps/systemd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>

#include "virtcaps/log.h"

namespace virtcaps {

namespace {

std::string Describe(const struct sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(&address);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "family " + std::to_string(address.ss_family);
}

// The protocol of sd_listen_fds(3) and sd_notify(3), spoken directly: linking
// libsystemd for four calls loads it and six libraries it needs (~1 MB resident).
constexpr int kFirstPassedFd = 3;  // SD_LISTEN_FDS_START

// A decimal environment value, nullopt when unset or not a number.
std::optional<unsigned long long> EnvNumber(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text < '0' || *text > '9') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return value;
}

// Whether a variable meant for "this process" (LISTEN_PID, WATCHDOG_PID) names us;
// an unset WATCHDOG_PID means any process.
bool NamesThisProcess(const char* name, bool unset_means_yes) {
  if (std::getenv(name) == nullptr) return unset_means_yes;
  auto pid = EnvNumber(name);
  return pid && *pid == static_cast<unsigned long long>(::getpid());
}

// Number of sockets passed from fd 3 on (0: none for us), or -errno. The variables
// are unset in any case, so the emulators the agent runs do not see them.
int PassedSocketCount() {
  int count = 0;
  if (NamesThisProcess("LISTEN_PID", false)) {
    auto fds = EnvNumber("LISTEN_FDS");
    if (!fds || *fds > 4096) {
      count = -EINVAL;
    } else {
      count = static_cast<int>(*fds);
      for (int fd = kFirstPassedFd; fd < kFirstPassedFd + count; ++fd) {
        int flags = ::fcntl(fd, F_GETFD);
        if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
          count = -errno;
          break;
        }
      }
    }
  }
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return count;
}

bool IsListeningStreamSocket(int fd) {
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
  int value = 0;
  socklen_t length = sizeof(value);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) != 0 || value != SOCK_STREAM) {
    return false;
  }
  length = sizeof(value);
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0 && value != 0;
}

// One datagram to $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace).
// 0 when the variable is unset, 1 when sent, -errno on failure.
int Notify(const std::string& message) {
  const char* target = std::getenv("NOTIFY_SOCKET");
  if (target == nullptr || *target == '\0') return 0;
  struct sockaddr_un address;
  std::memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  size_t length = std::strlen(target);
  if ((target[0] != '/' && target[0] != '@') || length >= sizeof(address.sun_path)) {
    return -EINVAL;
  }
  std::memcpy(address.sun_path, target, length);
  if (target[0] == '@') address.sun_path[0] = '\0';
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  socklen_t size = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + length);
  ssize_t sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const struct sockaddr*>(&address), size);
  int error = errno;
  ::close(fd);
  if (sent < 0) return -error;
  return 1;
}

}  // namespace

Expected<std::vector<int>> SystemdListeningSockets() {
  int count = PassedSocketCount();
  if (count < 0) {
    return Status::Error(std::string("cannot read the sockets systemd passed: ") +
                         std::strerror(-count));
  }
  if (count == 0) {
    return Status::Error(
        "no socket passed by systemd (LISTEN_FDS unset, or LISTEN_PID is not this process): "
        "start the agent from a .socket unit, or drop --web.systemd-socket");
  }
  std::vector<int> sockets;
  for (int fd = kFirstPassedFd; fd < kFirstPassedFd + count; ++fd) {
    std::string which = "systemd socket fd " + std::to_string(fd);
    if (!IsListeningStreamSocket(fd)) {
      return Status::Error(which + " is not a listening stream socket (ListenStream= needed)");
    }
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&address), &length) != 0) {
      return Status::Error(which + ": getsockname: " + std::strerror(errno));
    }
    // CivetWeb 1.15 as Debian builds it, and the per-client connection limit and allow
    // list in accept(), handle IPv4 only. systemd's `ListenStream=9177` makes an IPv6
    // socket that also takes IPv4: refuse it rather than serve it unguarded.
    if (address.ss_family != AF_INET) {
      return Status::Error(which + " listens on " + Describe(address) +
                           ", not IPv4: use ListenStream=0.0.0.0:PORT (or an IPv4 address)");
    }
    sockets.push_back(fd);
  }
  return sockets;
}

SystemdNotifier::SystemdNotifier() {
  // The variables stay set: a notifier made again later (none is) would still see them.
  auto usec = EnvNumber("WATCHDOG_USEC");
  if (usec && *usec > 0 && NamesThisProcess("WATCHDOG_PID", true)) {
    watchdog_interval_ = std::chrono::microseconds(*usec / 2);
  }
}

void SystemdNotifier::Send(const std::string& message) const {
  int result = Notify(message);
  if (result < 0) {
    LogWarn("cannot notify systemd", {{"message", message}, {"error", std::strerror(-result)}});
  }
}

void SystemdNotifier::Ready(const std::string& status) const { Send("READY=1\nSTATUS=" + status); }

void SystemdNotifier::Reloading() const {
  // systemd 253+ wants the time of the reload with RELOADING=1 (Type=notify-reload);
  // older ones ignore the field.
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  uint64_t usec =
      static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
  Send("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" + std::to_string(usec));
}

void SystemdNotifier::Stopping() const { Send("STOPPING=1\nSTATUS=shutting down"); }

void SystemdNotifier::Watchdog() const { Send("WATCHDOG=1"); }

}  // namespace virtcaps
