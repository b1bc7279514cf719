// Files that cannot read differently while the running kernel lives, read once.
#pragma once

#include <string>

#include "virtcaps/host_paths.h"
#include "virtcaps/status.h"

namespace virtcaps {

// ReadValue of `relative` under paths.procfs (sys/kernel/osrelease, sys/kernel/arch),
// kept for the life of the process when procfs is the agent's own /proc: the kernel
// it describes is the one the agent runs on, and its release and architecture are
// fixed at boot. Another procfs (a fixture tree, a mount) is read every time, and a
// failed read is never kept.
Expected<std::string> ReadKernelConstant(const HostPaths& paths, const std::string& relative);

// The running kernel's release (sys/kernel/osrelease) through ReadKernelConstant.
Expected<std::string> KernelRelease(const HostPaths& paths);

// The same under paths.sysfs, kept when it is the agent's own /sys, for what the
// firmware or the kernel's command line fix at boot: the DMI identity
// (class/dmi/id/product_uuid), the ACPI tables (firmware/acpi/tables/DMAR) and the
// parameters of built-in security modules (module/apparmor/parameters/enabled, 0444).
// A file that is not there is as final (a host without DMI, AppArmor not built in);
// other failures are not kept.
Expected<std::string> ReadBootSysfsValue(const HostPaths& paths, const std::string& relative);
// Whether such a path exists; the answer, yes or no, is kept as well.
bool BootSysfsPathExists(const HostPaths& paths, const std::string& relative);

}  // namespace virtcaps
