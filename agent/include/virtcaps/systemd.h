// systemd integration: socket activation (--web.systemd-socket) and sd_notify
// (Type=notify: READY, RELOADING, STOPPING, WATCHDOG), speaking the documented
// protocol of sd_listen_fds(3) and sd_notify(3) without libsystemd.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

// The listening sockets systemd passed to this process (LISTEN_FDS/LISTEN_PID, from fd 3
// on), each checked to be a listening IPv4 TCP socket; LISTEN_* are then unset so the
// emulators the agent runs do not see them. An error names the fd and what is wrong,
// or says that no socket was passed.
Expected<std::vector<int>> SystemdListeningSockets();

// Messages to the service manager; each is a no-op when NOTIFY_SOCKET is unset (not
// started by systemd as Type=notify).
class SystemdNotifier {
 public:
  SystemdNotifier();
  void Ready(const std::string& status) const;
  void Reloading() const;  // follow with Ready() when the reload is done
  void Stopping() const;
  void Watchdog() const;
  // Half of WATCHDOG_USEC when the service manager expects pings (WatchdogSec=) from
  // this process; zero when not.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

 private:
  void Send(const std::string& message) const;
  std::chrono::microseconds watchdog_interval_{0};
};

}  // namespace virtcaps
