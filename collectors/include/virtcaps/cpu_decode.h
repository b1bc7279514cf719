// The host CPU in libvirt's vocabulary, decoded from CPUID (x86), MIDR (Arm) or
// PVR (POWER) against libvirt's CPU map, by the rules of libvirt's CPU drivers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/cpu_map.h"
#include "virtcaps/model.h"
#include "virtcaps/probes.h"
#include "virtcaps/status.h"

namespace virtcaps {

struct DecodedCpu {
  std::string model;
  std::string vendor;                 // the map's vendor name; empty when it knows none
  std::vector<std::string> features;  // x86: the host's features beyond the model, map order
};

// The CPUID leaves libvirt gathers for the host: the basic and extended ranges up to
// their maximum leaf, with the subleaves it follows (7, 0xd, 0xf, 0x10, 0x12, 0x14,
// 0x17), plus IA32_ARCH_CAPABILITIES (MSR 0x10a) when CPUID announces it and `msr`
// can read it (MsrReader::ReadFeature: the msr device, else KVM, as libvirt). Hypervisor leaves
// (0x40000000...) are not part of it.
X86Data ReadX86HostData(const CpuidSource& cpuid, const MsrReader* msr, const X86CpuMap& map);

// libvirt's x86Decode for a host CPU: newest models first, a model that would need a
// host-missing feature disabled is never used, a model whose signature matches the
// host's family/model (and stepping) beats one that does not, and otherwise the one
// needing fewest extra features wins (ties keep the newer). Errors when no model fits.
Expected<DecodedCpu> DecodeX86HostCpu(const X86CpuMap& map, X86Data data);

// DecodeX86HostCpu, remembered: the decode depends only on the host's CPUID leaves and
// MSR values (`data`) and on the map, so a refresh that finds both unchanged gets the
// previous answer (about 1.6 M instructions of each warm refresh otherwise). The map is
// the remembered one (LoadSharedX86CpuMap): its address stands for its contents while
// it is held here. One entry, guarded by a mutex; `reused`, when given, says whether
// the previous answer was returned.
Expected<DecodedCpu> DecodeX86HostCpuRemembered(const std::shared_ptr<const X86CpuMap>& map,
                                                X86Data data, bool* reused = nullptr);

// Arm: the model whose part number matches MIDR[15:4], the vendor of MIDR[31:24];
// libvirt gives no model when either is missing from the map.
Expected<DecodedCpu> DecodeArmHostCpu(const IdCpuMap& map, uint32_t implementer, uint32_t part);

// POWER: the first model with a PVR value/mask matching the host's PVR.
Expected<DecodedCpu> DecodePowerHostCpu(const IdCpuMap& map, uint32_t pvr);

// Family, model and stepping as libvirt computes them from CPUID leaf 1 EAX.
struct X86SignatureFields {
  unsigned family = 0, model = 0, stepping = 0;
};
X86SignatureFields X86SignatureFromLeaf1(uint32_t eax);

}  // namespace virtcaps

namespace virtcaps {

// libvirt's name of a QEMU x86 CPU feature (QEMU spells some with '-' where libvirt's
// map has '_', and pclmulqdq as pclmuldq); other names are the same in both.
std::string LibvirtX86FeatureName(std::string_view qemu_name);

// The CPUID-like data libvirt builds from QEMU's CPU model expansion: every enabled
// feature the map knows (unknown names are ignored, as libvirt does), the vendor
// string as CPUID leaf 0, family/model/stepping as leaf 1 EAX. With
// `migratable_only`, features the expansion marks not migratable are left out.
X86Data X86DataFromExpansion(const X86CpuMap& map, const std::vector<CpuModelProperty>& expansion,
                             bool migratable_only);

// A named model as the hypervisor offers it, with what blocks it (libvirt's names).
struct HypervisorCpuModel {
  std::string name;
  std::vector<std::string> blockers;
};

// libvirt's x86Decode of a hypervisor's CPU into a guest CPU definition (the
// host-model of domain capabilities): only models the hypervisor knows, of the
// data's vendor, that the map lets decode guests; each candidate requires the
// data's features beyond it and disables its own features the data lacks plus its
// blockers not otherwise provided; a signature match wins, then the fewest features
// listed, required and disabled together (ties keep the newer). Errors when no
// model fits.
Expected<GuestHostModel> DecodeX86HypervisorCpu(const X86CpuMap& map, X86Data data,
                                                const std::vector<HypervisorCpuModel>& models);

}  // namespace virtcaps
