// Every host file the collectors read is named through HostPaths, so a fixture
// tree or a container's /host mount works the same as the live root.
#pragma once

#include <string>

#include "virtcaps/config.h"

namespace virtcaps {

struct HostPaths {
  std::string rootfs = "/";
  std::string procfs = "/proc";
  std::string sysfs = "/sys";
  std::string devfs = "/dev";

  static HostPaths FromConfig(const PathsConfig& paths);
  // True when this is the machine the agent runs on (not a fixture or a mount).
  bool IsLiveRoot() const { return rootfs == "/"; }

  std::string Root(const std::string& relative) const;
  std::string Proc(const std::string& relative) const;
  std::string Sys(const std::string& relative) const;
  std::string Dev(const std::string& relative) const;
};

}  // namespace virtcaps
