#include "virtcaps/host_checks.h"

#include <utility>

#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

class CheckList {
 public:
  // By value: the callers' literals become these strings, moved in (not built and copied).
  void Add(std::string driver, std::string name, std::string title, std::string severity,
           bool passed, std::string note) {
    checks_.push_back({std::move(driver), std::move(name), std::move(title), std::move(severity),
                       passed, std::move(note)});
  }
  std::vector<HostCheck> Take() { return std::move(checks_); }

 private:
  std::vector<HostCheck> checks_;
};

bool Lookup(const std::vector<std::pair<std::string, bool>>& items, const std::string& key) {
  for (const auto& [name, value] : items) {
    if (name == key) return value;
  }
  return false;
}

// Linux >= 2.6.26, as the LXC driver requires.
bool KernelAtLeast2626(const std::string& release) {
  auto parts = Split(release, '.');
  if (parts.size() < 2) return false;
  auto major = ParseUint(parts[0]);
  auto minor = ParseUint(parts[1]);
  std::string_view patch_text = parts.size() > 2 ? parts[2] : "0";
  size_t digits = 0;
  while (digits < patch_text.size() && std::isdigit(static_cast<unsigned char>(patch_text[digits])))
    ++digits;
  auto patch = ParseUint(patch_text.substr(0, digits)).value_or(0);
  if (!major || !minor) return false;
  if (*major != 2) return *major > 2;
  if (*minor != 6) return *minor > 6;
  return patch >= 26;
}

void QemuChecks(const HostCapabilities& caps, CheckList& out) {
  const HardwareVirtualization& virt = caps.cpu.virtualization;
  const KvmState& kvm = caps.kvm;
  std::string ext = virt.extension.empty() ? "hardware virtualization" : virt.extension;
  bool enabled = virt.kernel_enabled.value_or(false);
  std::string note;
  bool passed = enabled;
  if (enabled) {
    note = "the kernel lists " + ext;
  } else if (kvm.usable()) {
    // The naive check fails here, yet guests run under KVM: say what is true.
    passed = true;
    note = "the CPU lists no " + ext + ", but KVM works through " +
           (kvm.provider.empty() ? std::string("the kernel") : kvm.provider);
  } else if (virt.firmware_disabled.value_or(false)) {
    note = "the CPU supports " + ext + " but firmware disabled it (" + virt.firmware_evidence +
           "): enable VT-x/AMD-V in the firmware setup";
  } else if (virt.cpu_supported == false) {
    note = "the CPU has no " + ext +
           ": only emulated CPUs are available, performance will be significantly limited";
  } else {
    note = "no hardware virtualization found: only emulated CPUs are available";
  }
  out.Add("qemu", "hardware_virtualization", "Checking for hardware virtualization", "warn", passed,
          note);

  out.Add("qemu", "dev_kvm_exists", "Checking if device /dev/kvm exists", "fail",
          kvm.device_present,
          kvm.device_present ? ""
                             : "load the kvm module for this CPU (kvm_intel, kvm_amd) and enable "
                               "virtualization in firmware");
  bool accessible = kvm.device_accessible.value_or(false);
  out.Add("qemu", "dev_kvm_accessible", "Checking if device /dev/kvm is accessible", "fail",
          accessible,
          accessible ? (kvm.usable() ? "KVM_CREATE_VM succeeds" : "opens, but " + kvm.problem)
                     : "the agent's user cannot open /dev/kvm read-write: add it to group kvm");
  if (caps.cpu.arch.rfind("ppc64", 0) == 0) {
    bool kvm_hv = false;
    for (const std::string& module : kvm.modules) kvm_hv = kvm_hv || module == "kvm_hv";
    out.Add("qemu", "kvm_hv_module", "Checking for kvm_hv module", "fail", kvm_hv,
            kvm_hv ? "" : "load the kvm_hv module");
  }
  if (caps.facilities) {
    const HostFacilities& facilities = *caps.facilities;
    bool vhost = Lookup(facilities.devices, "/dev/vhost-net");
    out.Add("qemu", "dev_vhost_net", "Checking if device /dev/vhost-net exists", "warn", vhost,
            vhost ? "" : "load the vhost_net module for faster guest networking");
    bool tun = Lookup(facilities.devices, "/dev/net/tun");
    out.Add("qemu", "dev_net_tun", "Checking if device /dev/net/tun exists", "fail", tun,
            tun ? "" : "load the tun module");
    for (const char* controller : {"memory", "cpu", "cpuacct", "cpuset", "devices", "blkio"}) {
      bool present = Lookup(facilities.cgroup_controllers, controller);
      out.Add("qemu", std::string("cgroup_") + controller,
              std::string("Checking for cgroup '") + controller + "' controller support", "warn",
              present,
              present ? "" : std::string("enable the ") + controller + " cgroup controller");
    }
  }
  bool x86 = caps.cpu.arch == "x86_64" || caps.cpu.arch == "i686";
  if (caps.iommu && (x86 || caps.cpu.arch == "aarch64")) {
    bool firmware = !caps.iommu->firmware_tables.empty();
    out.Add("qemu", "iommu_firmware", "Checking for device assignment IOMMU support", "warn",
            firmware,
            firmware ? JoinStrings(caps.iommu->firmware_tables, " ")
                     : "no IOMMU in the ACPI tables: enable VT-d/AMD-Vi in the firmware setup");
    out.Add("qemu", "iommu_kernel", "Checking if IOMMU is enabled by kernel", "warn",
            caps.iommu->kernel_enabled,
            caps.iommu->kernel_enabled ? std::to_string(caps.iommu->groups) + " groups"
                                       : std::string("no IOMMU groups: add ") +
                                             (caps.cpu.vendor == "AMD"     ? "amd_iommu=on"
                                              : caps.cpu.vendor == "Intel" ? "intel_iommu=on"
                                                                           : "the IOMMU driver") +
                                             " to the kernel command line");
  }
  if (!caps.secure_guests.empty()) {
    std::string enabled_list;
    for (const SecureGuestTechnology& technology : caps.secure_guests) {
      if (technology.enabled.value_or(false))
        enabled_list += (enabled_list.empty() ? "" : ", ") + technology.name;
    }
    out.Add("qemu", "secure_guest", "Checking for secure guest support", "warn",
            !enabled_list.empty(),
            enabled_list.empty() ? "no secure guest technology (SEV, TDX, s390 PV) is enabled"
                                 : enabled_list);
  }
}

void LxcChecks(const HostCapabilities& caps, CheckList& out) {
  if (!caps.kernel_release.empty()) {
    bool recent = KernelAtLeast2626(caps.kernel_release);
    out.Add("lxc", "kernel_version", "Checking for Linux >= 2.6.26", "fail", recent,
            recent ? caps.kernel_release : "upgrade to a newer kernel");
  }
  if (!caps.facilities) return;
  const HostFacilities& facilities = *caps.facilities;
  for (const char* ns : {"ipc", "mnt", "pid", "uts", "net", "user"}) {
    bool present = Lookup(facilities.namespaces, ns);
    out.Add("lxc", std::string("namespace_") + ns, std::string("Checking for namespace ") + ns,
            std::string(ns) == "user" ? "warn" : "fail", present,
            present ? "" : std::string("build the kernel with ") + ns + " namespace support");
  }
  for (const char* controller :
       {"memory", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio"}) {
    bool present = Lookup(facilities.cgroup_controllers, controller);
    out.Add("lxc", std::string("cgroup_") + controller,
            std::string("Checking for cgroup '") + controller + "' controller support", "fail",
            present, present ? "" : std::string("enable the ") + controller + " cgroup controller");
  }
  out.Add("lxc", "fuse_filesystem", "Checking if device /sys/fs/fuse/connections exists", "warn",
          facilities.fuse_connections,
          facilities.fuse_connections ? "" : "load the fuse module (lxcfs needs it)");
}

}  // namespace

std::vector<HostCheck> RunHostChecks(const HostCapabilities& caps) {
  CheckList checks;
  QemuChecks(caps, checks);
  LxcChecks(caps, checks);
  return checks.Take();
}

std::string FormatHostChecks(const std::vector<HostCheck>& checks) {
  std::string out;
  for (const HostCheck& check : checks) {
    std::string label = (check.driver == "qemu" ? "QEMU: " : "LXC: ") + check.title;
    if (label.size() < 60) label.append(60 - label.size(), ' ');
    std::string verdict = check.passed ? "PASS" : (check.severity == "fail" ? "FAIL" : "WARN");
    out += label + ": " + verdict;
    if (!check.note.empty()) out += " (" + check.note + ")";
    out += "\n";
  }
  return out;
}

bool AnyCheckFailed(const std::vector<HostCheck>& checks) {
  for (const HostCheck& check : checks) {
    if (!check.passed && check.severity == "fail") return true;
  }
  return false;
}

}  // namespace virtcaps
