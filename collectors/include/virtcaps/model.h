// The capabilities data model: what the collectors found, with no knowledge of XML
// or Prometheus. std::optional separates "could not tell" from a known answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace virtcaps {

struct CpuSignature {
  unsigned family = 0;
  unsigned model = 0;
  unsigned stepping = 0;
};

// As libvirt reports it: sockets, dies per socket, cores per die, threads per core.
struct CpuTopology {
  unsigned sockets = 1;
  unsigned dies = 1;
  unsigned cores = 1;
  unsigned threads = 1;
};

// Hardware virtualization as three separate signals (they disagree on real hosts).
struct HardwareVirtualization {
  std::string extension;  // "vmx", "svm", "sie", or empty when the arch has none we read
  std::optional<bool> cpu_supported;      // the CPU implements it (CPUID)
  std::optional<bool> kernel_enabled;     // the kernel lists it in /proc/cpuinfo
  std::optional<bool> firmware_disabled;  // implemented, but the firmware turned it off
  std::string firmware_evidence;          // how firmware_disabled was decided
};

struct HostCpu {
  std::string arch;        // libvirt's name: x86_64, i686, aarch64, ppc64le, s390x, ...
  std::string vendor;      // libvirt's vendor name: Intel, AMD, ARM, IBM, ...
  std::string vendor_id;   // as the CPU reports it: GenuineIntel, 0x41, IBM/S390
  std::string model_name;  // the marketing name from /proc/cpuinfo
  std::optional<uint64_t> microcode;
  std::optional<CpuSignature> signature;
  std::optional<CpuTopology> topology;
  unsigned online_cpus = 0;
  std::optional<unsigned> max_phys_addr_bits;
  std::vector<std::string> features;     // the kernel's flag names, sorted
  std::vector<uint64_t> page_sizes_kib;  // base page first, then huge page sizes ascending
  HardwareVirtualization virtualization;
  std::optional<bool> running_under_hypervisor;  // CPUID leaf 1 ECX bit 31 / "hypervisor" flag
};

struct KvmState {
  bool device_present = false;            // <devfs>/kvm exists
  std::optional<bool> device_accessible;  // the agent may open it read-write
  std::optional<int> api_version;         // KVM_GET_API_VERSION
  std::optional<bool> vm_creatable;       // KVM_CREATE_VM succeeded (the VM is closed at once)
  std::optional<int> max_vcpus;           // KVM_CAP_MAX_VCPUS
  std::vector<std::string> modules;  // kvm modules loaded: kvm, kvm_intel, kvm_amd, kvm_pvm, ...
  std::string provider;              // the module that provides KVM for this CPU
  std::optional<bool> nested;        // the provider's "nested" parameter
  std::string problem;               // why KVM is not usable, for humans

  bool usable() const {
    return device_present && device_accessible.value_or(false) && vm_creatable.value_or(false);
  }
};

// How one collector fared during a refresh.
struct CollectorOutcome {
  std::string name;
  bool success = false;
  double duration_seconds = 0;
  std::string error;
};

struct HostCapabilities {
  HostCpu cpu;
  KvmState kvm;
  std::vector<CollectorOutcome> collectors;
};

}  // namespace virtcaps
