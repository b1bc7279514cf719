#include "virtcaps/systemd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>
#include <ctime>

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

}  // namespace

Expected<std::vector<int>> SystemdListeningSockets() {
  int count = sd_listen_fds(/*unset_environment=*/1);
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
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + count; ++fd) {
    std::string which = "systemd socket fd " + std::to_string(fd);
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, /*listening=*/1) <= 0) {
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
  uint64_t usec = 0;
  // unset_environment=0: a notifier made again later (none is) would still see it.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
  }
}

void SystemdNotifier::Send(const std::string& message) const {
  int result = sd_notify(0, message.c_str());
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
