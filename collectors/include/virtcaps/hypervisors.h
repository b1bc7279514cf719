// Guests per hypervisor, for the hypervisors the configuration lists. Each runs as
// a collector named after its type (qemu, xen, lxc) after the host collectors,
// since they build on what those found (KVM usability, namespaces, cgroups).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "virtcaps/collector.h"

namespace virtcaps {

std::unique_ptr<Collector> MakeHypervisorCollector(const HypervisorConfig& config);

// A Xen capability token ("hvm-3.0-x86_32p"), parsed.
struct XenCapabilityToken {
  std::string os_type;  // xen (paravirtual) or hvm
  std::string arch;     // libvirt's arch name
  unsigned wordsize = 0;
  bool pae = false;
  bool nonpae = false;
  bool ia64_be = false;
};
std::optional<XenCapabilityToken> ParseXenCapabilityToken(std::string_view token);
// Guests from a whole capability string, as libvirt's Xen driver builds them.
std::vector<Guest> XenGuests(std::string_view capabilities, const XenOptions& options);

}  // namespace virtcaps
