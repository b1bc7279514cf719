#include "virtcaps/host_paths.h"

#include "virtcaps/files.h"

namespace virtcaps {

HostPaths HostPaths::FromConfig(const PathsConfig& paths) {
  HostPaths host;
  host.rootfs = paths.rootfs.empty() ? "/" : paths.rootfs;
  while (host.rootfs.size() > 1 && host.rootfs.back() == '/') host.rootfs.pop_back();
  host.procfs = paths.procfs.empty() ? JoinPath(host.rootfs, "proc") : paths.procfs;
  host.sysfs = paths.sysfs.empty() ? JoinPath(host.rootfs, "sys") : paths.sysfs;
  host.devfs = paths.devfs.empty() ? JoinPath(host.rootfs, "dev") : paths.devfs;
  return host;
}

std::string HostPaths::Root(const std::string& relative) const {
  return JoinPath(rootfs, relative);
}
std::string HostPaths::Proc(const std::string& relative) const {
  return JoinPath(procfs, relative);
}
std::string HostPaths::Sys(const std::string& relative) const { return JoinPath(sysfs, relative); }
std::string HostPaths::Dev(const std::string& relative) const { return JoinPath(devfs, relative); }

}  // namespace virtcaps
