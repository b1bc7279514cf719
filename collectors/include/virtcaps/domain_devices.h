// libvirt 9.0's <iothreads>, <memoryBacking>, <devices> and <features> of the domain
// capabilities (virQEMUCapsFillDomainCaps) from what was probed of one QEMU emulator
// (GuestDeviceFacts), the machine type, the virt type and the host. Plain data: the
// renderer writes it as XML.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "virtcaps/model.h"

namespace virtcaps {

// <enum name='NAME'><value>...</value></enum>; no values prints <enum name='NAME'/>.
struct DomainCapsEnum {
  std::string name;
  std::vector<std::string> values;
};

// One element with a supported= attribute: <disk supported='yes'>enums</disk>, or
// <redirdev supported='no'/> (enums are not printed then, as libvirt does).
struct DomainCapsElement {
  std::string name;
  bool supported = false;
  std::vector<DomainCapsEnum> enums;
};

// Each element is absent (nullopt, or left out of a list) when what decides it was not
// probed: it is then not printed rather than guessed.
struct DomainDeviceCaps {
  std::optional<DomainCapsElement> iothreads;
  std::optional<DomainCapsElement> memory_backing;
  std::vector<DomainCapsElement> devices;  // domaincaps.rng order: disk ... channel
  // <features> before <sev> (gic, vmcoreinfo, genid, backingStoreInput, backup) and
  // after it (sgx, hyperv); <sev> itself is the renderer's.
  std::vector<DomainCapsElement> features_before_sev;
  std::vector<DomainCapsElement> features_after_sev;
};

// `machine` is the canonical machine name (an alias resolved), `virttype` kvm or qemu.
// Host facts read: the IOMMU and /dev/vfio/vfio (hostdev's VFIO backend).
DomainDeviceCaps LibvirtDomainDeviceCaps(const Guest& guest, const std::string& arch,
                                         const std::string& machine, const std::string& virttype,
                                         const HostCapabilities& host);

// libvirt's machine rules (qemu_domain.c).
bool MachineHasBuiltinIde(const std::string& machine, const std::string& arch);
bool MachineIsPSeries(const std::string& machine, const std::string& arch);
bool MachineIsArmVirt(const std::string& machine, const std::string& arch);

}  // namespace virtcaps
