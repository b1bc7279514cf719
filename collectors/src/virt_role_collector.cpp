// The virt_role collector: does this host itself run in a virtual machine, under
// which hypervisor, and is it a host, a guest, or both (a guest that runs KVM).
#include <cstring>
#include <map>

#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// CPUID leaf 0x40000000 vendor signatures (EBX, ECX, EDX), mapped to a bounded set.
std::string HypervisorFromCpuidSignature(const std::string& signature) {
  static const std::map<std::string, std::string> kSignatures = {
      {"KVMKVMKVM", "kvm"},           {"Linux KVM Hv", "kvm"},  {"Microsoft Hv", "hyperv"},
      {"VMwareVMware", "vmware"},     {"XenVMMXenVMM", "xen"},  {"TCGTCGTCGTCG", "qemu"},
      {"bhyve bhyve", "bhyve"},       {"ACRNACRNACRN", "acrn"}, {"lrpepyh  vr", "parallels"},
      {"VBoxVBoxVBox", "virtualbox"}, {"QNXQVMBSQG", "other"}};
  std::string trimmed(Trim(std::string_view(signature.c_str())));  // drop NULs and padding
  auto found = kSignatures.find(trimmed);
  return found == kSignatures.end() ? "other" : found->second;
}

std::string HypervisorFromDmi(const std::string& vendor, const std::string& product) {
  struct Rule {
    const char* needle;
    const char* hypervisor;
  };
  static const Rule kRules[] = {{"QEMU", "kvm"},
                                {"KVM", "kvm"},
                                {"Amazon EC2", "kvm"},
                                {"Google", "kvm"},
                                {"OpenStack", "kvm"},
                                {"VMware", "vmware"},
                                {"innotek", "virtualbox"},
                                {"VirtualBox", "virtualbox"},
                                {"Xen", "xen"},
                                {"Parallels", "parallels"},
                                {"BHYVE", "bhyve"}};
  std::string both = vendor + " " + product;
  if (both.find("Microsoft Corporation") != std::string::npos &&
      product.find("Virtual Machine") != std::string::npos) {
    return "hyperv";
  }
  for (const Rule& rule : kRules) {
    if (both.find(rule.needle) != std::string::npos) return rule.hypervisor;
  }
  return "";
}

class VirtRoleCollector : public Collector {
 public:
  std::string_view name() const override { return "virt_role"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    VirtualizationRole role;
    // A Xen control domain runs on Xen but is the host of that system.
    auto sysfs_type = ReadValue(paths.Sys("hypervisor/type"));
    auto xen_caps = ReadValue(paths.Proc("xen/capabilities"));
    if (sysfs_type && *sysfs_type == "xen" && xen_caps &&
        xen_caps->find("control_d") != std::string::npos) {
      role.xen_dom0 = true;
      role.hypervisor = "xen";
      role.evidence = "sysfs";
    } else {
      Detect(context, caps, sysfs_type ? *sysfs_type : "", role);
    }
    if (role.xen_dom0 || !role.in_virtual_machine) {
      role.role = "host";
    } else {
      role.role = caps.kvm.usable() ? "both" : "guest";
    }
    caps.virt_role = role;
    return Status();
  }

 private:
  static void Detect(const CollectContext& context, const HostCapabilities& caps,
                     const std::string& sysfs_type, VirtualizationRole& role) {
    const HostPaths& paths = context.paths;
    // 1. CPUID: the hypervisor bit, then the vendor signature.
    const CpuidSource* cpuid = context.probes.cpuid.get();
    if (cpuid && cpuid->status().ok() && caps.cpu.running_under_hypervisor.value_or(false)) {
      role.in_virtual_machine = true;
      role.evidence = "cpuid";
      role.hypervisor = "other";
      if (auto leaf = cpuid->Query(0x40000000, 0)) {
        char signature[13] = {};
        std::memcpy(signature, &leaf->ebx, 4);
        std::memcpy(signature + 4, &leaf->ecx, 4);
        std::memcpy(signature + 8, &leaf->edx, 4);
        role.hypervisor = HypervisorFromCpuidSignature(signature);
      }
      return;
    }
    // 2. DMI strings (x86 and Arm servers with SMBIOS).
    auto vendor = ReadValue(paths.Sys("class/dmi/id/sys_vendor"));
    auto product = ReadValue(paths.Sys("class/dmi/id/product_name"));
    if (vendor || product) {
      std::string hypervisor = HypervisorFromDmi(vendor ? *vendor : "", product ? *product : "");
      if (!hypervisor.empty()) {
        role.in_virtual_machine = true;
        role.hypervisor = hypervisor;
        role.evidence = "dmi";
        return;
      }
    }
    // 3. /sys/hypervisor/type (Xen guests, and s390 z/VM reports "z/VM Hypervisor" elsewhere).
    if (!sysfs_type.empty()) {
      role.in_virtual_machine = true;
      role.hypervisor = sysfs_type == "xen" ? "xen" : "other";
      role.evidence = "sysfs";
      return;
    }
    // 4. Device tree (Arm, POWER): a hypervisor node, or QEMU's virt board.
    auto dt_hypervisor = ReadFile(paths.Proc("device-tree/hypervisor/compatible"));
    auto dt_compatible = ReadFile(paths.Proc("device-tree/compatible"));
    if (dt_hypervisor) {
      role.in_virtual_machine = true;
      role.evidence = "device-tree";
      role.hypervisor = dt_hypervisor->find("xen") != std::string::npos       ? "xen"
                        : dt_hypervisor->find("kvm") != std::string::npos     ? "kvm"
                        : dt_hypervisor->find("powervm") != std::string::npos ? "powervm"
                                                                              : "other";
      return;
    }
    if (dt_compatible && dt_compatible->find("linux,dummy-virt") != std::string::npos) {
      role.in_virtual_machine = true;
      role.evidence = "device-tree";
      role.hypervisor = "kvm";
      return;
    }
    // 5. s390: /proc/sysinfo names the control program of each virtualization level.
    if (auto sysinfo = ReadFile(paths.Proc("sysinfo"))) {
      if (sysinfo->find("z/VM") != std::string::npos ||
          sysinfo->find("KVM/Linux") != std::string::npos) {
        role.in_virtual_machine = true;
        role.evidence = "sysinfo";
        role.hypervisor = sysinfo->find("z/VM") != std::string::npos ? "zvm" : "kvm";
      }
    }
  }
};

}  // namespace

std::unique_ptr<Collector> MakeVirtRoleCollector() { return std::make_unique<VirtRoleCollector>(); }

}  // namespace virtcaps
