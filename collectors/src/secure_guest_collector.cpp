// The secure_guest collector: confidential-computing technologies, each as "the CPU
// has it" (CPUID or firmware) and "it is switched on" (KVM parameter and device).
#include <algorithm>

#include "sysfs_values.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

bool HasFlag(const HostCpu& cpu, const char* flag) {
  return std::binary_search(cpu.features.begin(), cpu.features.end(), std::string(flag));
}

// A module parameter that may be absent (module not loaded: off) but not garbled.
Expected<bool> OptionalParameter(const std::string& path) {
  if (!PathExists(path)) return false;
  return ReadBoolParameter(path);
}

class SecureGuestCollector : public Collector {
 public:
  std::string_view name() const override { return "secure_guest"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    const std::string& arch = caps.cpu.arch;
    bool x86 = arch == "x86_64" || arch == "i686";
    bool s390 = arch.rfind("s390", 0) == 0;
    SecureGuestTechnology sev{"sev", {}, {}, ""}, sev_es{"sev_es", {}, {}, ""},
        sev_snp{"sev_snp", {}, {}, ""}, tdx{"tdx", {}, {}, ""}, sgx{"sgx", {}, {}, ""},
        s390_pv{"s390_pv", {}, {}, ""};
    Status status;
    auto parameter = [&](const std::string& relative) -> bool {
      auto value = OptionalParameter(paths.Sys(relative));
      if (!value) {
        if (status.ok()) status = value.status();
        return false;
      }
      return *value;
    };

    if (x86) {
      const CpuidSource* cpuid = context.probes.cpuid.get();
      if (cpuid && cpuid->status().ok()) {
        auto max_extended = cpuid->Query(0x80000000, 0);
        std::optional<CpuidRegisters> memory_encryption;
        if (max_extended && max_extended->eax >= 0x8000001f)
          memory_encryption = cpuid->Query(0x8000001f, 0);
        uint32_t eax = memory_encryption ? memory_encryption->eax : 0;
        sev.cpu_supported = ((eax >> 1) & 1) != 0;
        sev_es.cpu_supported = ((eax >> 3) & 1) != 0;
        sev_snp.cpu_supported = ((eax >> 4) & 1) != 0;
        auto leaf7 = cpuid->Query(7, 0);
        sgx.cpu_supported = leaf7 && ((leaf7->ebx >> 2) & 1) != 0;
      }
      tdx.cpu_supported = HasFlag(caps.cpu, "tdx_host_platform");
      bool dev_sev = PathExists(paths.Dev("sev"));
      sev.enabled = parameter("module/kvm_amd/parameters/sev") && dev_sev;
      sev_es.enabled = parameter("module/kvm_amd/parameters/sev_es") && dev_sev;
      sev_snp.enabled = parameter("module/kvm_amd/parameters/sev_snp") && dev_sev;
      if (!dev_sev && PathExists(paths.Sys("module/kvm_amd/parameters/sev")))
        sev.detail = "/dev/sev is missing";
      tdx.enabled = parameter("module/kvm_intel/parameters/tdx");
      sgx.enabled = PathExists(paths.Dev("sgx_enclave")) && HasFlag(caps.cpu, "sgx");
      s390_pv.cpu_supported = false;
      s390_pv.enabled = false;
    } else if (s390) {
      // The ultravisor is there when the firmware offers protected virtualization.
      s390_pv.cpu_supported = IsDirectory(paths.Sys("firmware/uv"));
      auto host = ReadValue(paths.Sys("firmware/uv/prot_virt_host"));
      s390_pv.enabled = host && *host == "1";
      for (SecureGuestTechnology* x86_only : {&sev, &sev_es, &sev_snp, &tdx, &sgx}) {
        x86_only->cpu_supported = false;
        x86_only->enabled = false;
      }
    }
    caps.secure_guests = {sev, sev_es, sev_snp, tdx, sgx, s390_pv};
    return status;
  }
};

}  // namespace

std::unique_ptr<Collector> MakeSecureGuestCollector() {
  return std::make_unique<SecureGuestCollector>();
}

}  // namespace virtcaps
