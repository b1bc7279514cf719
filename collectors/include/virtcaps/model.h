// The capabilities data model: what the collectors found, with no knowledge of XML
// or Prometheus. std::optional separates "could not tell" from a known answer.
// Every struct compares with a defaulted == (all its fields, new ones included): a
// refresh whose model equals the previous one's reuses what was derived from it
// (snapshot.cpp: the rendered bodies; cpu_vocabulary.cpp: the host-model decode). A
// field whose type has no == makes that a compile error, not a silent difference.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/shared_vector.h"

namespace virtcaps {

struct CpuSignature {
  unsigned family = 0;
  unsigned model = 0;
  unsigned stepping = 0;
  bool operator==(const CpuSignature&) const = default;
};

// As libvirt reports it: sockets, dies per socket, cores per die, threads per core.
struct CpuTopology {
  unsigned sockets = 1;
  unsigned dies = 1;
  unsigned cores = 1;
  unsigned threads = 1;
  // How the four numbers above were derived, libvirt's virHostCPUGetInfoPopulateLinux:
  //   "per_node"      sysfs topology counted per NUMA node (sockets are per node),
  //   "whole_host"    no NUMA sysfs: every CPU counted as one node,
  //   "flat_fallback" nodes x sockets x cores x threads did not equal the CPUs, so
  //                   libvirt reports 1 socket, 1 thread and one core per CPU.
  std::string method;
  unsigned nodes = 1;              // NUMA nodes the count went over
  unsigned physical_packages = 0;  // distinct physical_package_id of online CPUs
  unsigned offline_cpus = 0;       // present but offline, as libvirt counts them
  unsigned physical_dies = 0;      // distinct (physical_package_id, die_id) of online CPUs
  bool operator==(const CpuTopology&) const = default;
};

// One logical CPU as sysfs describes it, read once per refresh by the cpu collector
// and shared with the numa collector. Missing files read as libvirt reads them.
struct LogicalCpu {
  unsigned id = 0;
  bool online = true;
  unsigned socket_id = 0;          // physical_package_id; missing or -1 reads as 0
  unsigned die_id = 0;             // die_id; missing or -1 reads as 0
  unsigned core_id = 0;            // core_id; missing reads as 0
  std::vector<unsigned> siblings;  // thread siblings, including itself
  std::string siblings_source;     // thread_siblings_list, thread_siblings (mask), self
  bool operator==(const LogicalCpu&) const = default;
};

// Hardware virtualization as three separate signals (they disagree on real hosts).
struct HardwareVirtualization {
  std::string extension;  // "vmx", "svm", "sie", or empty when the arch has none we read
  std::optional<bool> cpu_supported;      // the CPU implements it (CPUID)
  std::optional<bool> kernel_enabled;     // the kernel lists it in /proc/cpuinfo
  std::optional<bool> firmware_disabled;  // implemented, but the firmware turned it off
  std::string firmware_evidence;          // how firmware_disabled was decided
  bool operator==(const HardwareVirtualization&) const = default;
};

// libvirt's <counter name='tsc'>: the invariant TSC's frequency, and whether KVM
// can scale a guest's TSC to another frequency.
struct TscCounter {
  uint64_t frequency_hz = 0;
  std::optional<bool> scaling;  // KVM_CAP_TSC_CONTROL; unknown without KVM
  std::string source;           // kvm (KVM_GET_TSC_KHZ, as libvirt), cpuid-0x40000010, cpuid-0x15
  bool operator==(const TscCounter&) const = default;
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
  // libvirt's vocabulary, from its CPU map (host.cpu_map_dir). Empty model: the map
  // could not be read or names no model for this CPU (libvirt prints none either).
  std::string libvirt_model;
  // x86: the host's features beyond libvirt_model, libvirt's names in map order;
  // nullopt without a decoded x86 model (the kernel's `features` are printed then).
  std::optional<std::vector<std::string>> libvirt_features;
  std::optional<TscCounter> tsc;               // only with invariant TSC, as libvirt
  std::string max_phys_addr_mode = "emulate";  // libvirt's host CPU always says emulate
  unsigned present_cpus = 0;                   // cpu/present (else online, else cpuinfo)
  std::vector<LogicalCpu> logical_cpus;        // every present CPU, ascending id
  bool logical_cpus_read = false;              // logical_cpus is this refresh's sysfs read
  bool huge_page_sizes_listed = false;         // page_sizes_kib holds this refresh's listing
  std::string cpuinfo_problem;                 // what /proc/cpuinfo lacked, for humans
  bool operator==(const HostCpu&) const = default;
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
  bool operator==(const KvmState&) const = default;
};

// One logical CPU of a NUMA cell, with libvirt's topology ids.
struct CellCpu {
  unsigned id = 0;
  std::optional<unsigned> socket_id, die_id, core_id;
  std::vector<unsigned> siblings;  // thread siblings, including itself
  bool operator==(const CellCpu&) const = default;
};

// A page pool of one size: huge pages from sysfs, or the base pages left over.
struct PagePool {
  uint64_t size_kib = 0;
  uint64_t total = 0;
  std::optional<uint64_t> free;  // huge pages only
  bool operator==(const PagePool&) const = default;
};

struct NumaCell {
  unsigned id = 0;
  std::optional<uint64_t> memory_kib;
  std::vector<PagePool> pages;  // base page size first, then huge page sizes ascending
  std::vector<std::pair<unsigned, unsigned>> distances;  // (node id, distance)
  std::vector<CellCpu> cpus;
  bool operator==(const NumaCell&) const = default;
};

// What resctrl lets guests allocate of one cache bank (libvirt's <control>).
struct CacheControl {
  uint64_t granularity_bytes = 0;  // cache size / bits of info/L<n>[CODE|DATA]/cbm_mask
  uint64_t min_bytes = 0;          // min_cbm_bits x granularity; 0 when one bit suffices
  std::string type;                // both, code, data (CDP splits both into code and data)
  unsigned max_allocs = 0;         // num_closids
  bool operator==(const CacheControl&) const = default;
};

// resctrl monitoring (info/L3_MON): libvirt's <monitor> of <cache> or <memory_bandwidth>.
struct ResctrlMonitor {
  std::optional<unsigned> level;            // cache monitors only: the cache level
  std::optional<uint64_t> reuse_threshold;  // cache monitors only: max_threshold_occupancy
  unsigned max_monitors = 0;                // num_rmids
  std::vector<std::string> features;        // mon_features with this monitor's prefix
  bool operator==(const ResctrlMonitor&) const = default;
};

// Memory bandwidth allocation (info/MB) on one last-level cache bank.
struct MemoryBandwidthNode {
  unsigned id = 0;  // the last-level cache id
  std::vector<unsigned> cpus;
  unsigned granularity_percent = 0;  // bandwidth_gran
  unsigned min_percent = 0;          // min_bandwidth
  unsigned max_allocs = 0;           // num_closids
  bool operator==(const MemoryBandwidthNode&) const = default;
};

struct CacheBank {
  unsigned id = 0;
  unsigned level = 0;
  std::string type;  // libvirt's: both, code, data
  uint64_t size_bytes = 0;
  std::vector<unsigned> cpus;
  std::vector<CacheControl> controls;  // resctrl allocation, libvirt's <control>
  bool operator==(const CacheBank&) const = default;
};

struct IommuState {
  bool kernel_enabled = false;  // /sys/kernel/iommu_groups is non-empty
  unsigned groups = 0;
  std::vector<std::string> firmware_tables;  // ACPI DMAR (Intel), IVRS (AMD), IORT (Arm) found
  bool operator==(const IommuState&) const = default;
};

// The Linux security module guests are confined by, libvirt's <secmodel>.
struct SecurityModel {
  std::string model;  // selinux, apparmor, dac, none
  std::string doi;    // domain of interpretation, "0" unless SELinux says otherwise
  // <baselabel type='kvm'>+64055:+64055</baselabel>: domain type -> label (DAC: +uid:+gid).
  std::vector<std::pair<std::string, std::string>> baselabels;
  // The hypervisor driver whose document alone carries it (DAC: qemu); empty: every one.
  std::string hypervisor;
  bool operator==(const SecurityModel&) const = default;
};

// libvirt's <migration_features>, as its QEMU driver prints them.
struct MigrationFeatures {
  bool live = true;
  std::vector<std::string> uri_transports;  // tcp, rdma
  bool operator==(const MigrationFeatures&) const = default;
};

struct PowerManagement {
  bool suspend_mem = false;
  bool suspend_disk = false;
  bool suspend_hybrid = false;
  bool operator==(const PowerManagement&) const = default;
};

// Device nodes, cgroup controllers and namespaces that guests and containers need.
struct HostFacilities {
  std::vector<std::pair<std::string, bool>> devices;  // "/dev/vhost-net" -> present
  std::optional<unsigned> cgroup_version;             // 1 or 2; unknown when neither is mounted
  std::vector<std::pair<std::string, bool>> cgroup_controllers;  // controller -> available
  std::vector<std::pair<std::string, bool>>
      namespaces;                 // ipc, mnt, pid, uts, net, user -> available
  bool fuse_connections = false;  // /sys/fs/fuse/connections, for LXC
  bool operator==(const HostFacilities&) const = default;
};

// A confidential-computing technology: does the CPU have it, is it switched on.
struct SecureGuestTechnology {
  std::string name;  // sev, sev_es, sev_snp, tdx, sgx, s390_pv
  std::optional<bool> cpu_supported;
  std::optional<bool> enabled;  // the kernel/KVM has it on and the device exists
  std::string detail;
  bool operator==(const SecureGuestTechnology&) const = default;
};

// Whether this host itself runs inside a virtual machine, and under what.
struct VirtualizationRole {
  bool in_virtual_machine = false;
  std::string hypervisor;  // bounded: kvm, hyperv, vmware, xen, qemu, bhyve, acrn, parallels,
                           // virtualbox, powervm, zvm, other; empty on bare metal
  std::string evidence;    // which source said so: cpuid, dmi, sysfs, device-tree
  bool xen_dom0 = false;   // a Xen control domain (it hosts guests through Xen)
  std::string role;        // host, guest, or both (a guest that can run KVM guests itself)
  bool operator==(const VirtualizationRole&) const = default;
};

// One check of libvirt's virt-host-validate (QEMU and LXC), made from the model.
struct HostCheck {
  std::string driver;    // qemu, lxc
  std::string name;      // short, stable: hardware_virtualization, dev_kvm_exists, ...
  std::string title;     // "Checking for hardware virtualization"
  std::string severity;  // fail or warn: what a failed check means
  bool passed = false;
  std::string note;  // the truth behind a pass/fail, or the hint when it fails
  bool operator==(const HostCheck&) const = default;
};

// A machine type a guest can use (QEMU's -machine NAME).
struct GuestMachine {
  std::string name;
  std::string canonical;  // set when `name` is an alias of this machine
  std::optional<unsigned> max_cpus;
  bool deprecated = false;
  bool is_default = false;  // QEMU's default machine (not in libvirt's XML)
  bool operator==(const GuestMachine&) const = default;
};

// A domain type (accelerator) for a guest: qemu (TCG), kvm, xen, lxc.
struct GuestDomain {
  std::string type;
  std::string emulator;                // only when it differs from the guest's
  std::vector<GuestMachine> machines;  // only when they differ from the guest's
  bool operator==(const GuestDomain&) const = default;
};

// A guest feature as libvirt lists it: <pae/>, or <acpi default='on' toggle='yes'/>.
struct GuestFeature {
  std::string name;
  std::optional<bool> default_on;
  std::optional<bool> toggle;
  bool operator==(const GuestFeature&) const = default;
};

// A named CPU model an emulator offers (QMP query-cpu-definitions), as libvirt's
// domain capabilities list it under <mode name='custom'>.
struct GuestCpuModel {
  std::string name;
  bool usable = false;                // unavailable-features is empty
  std::vector<std::string> blockers;  // unavailable-features: what the host lacks for it
  std::string vendor;                 // libvirt's map vendor, "unknown" for generic models
  bool operator==(const GuestCpuModel&) const = default;
};

// One property of QEMU's CPU model expansion (QMP query-cpu-model-expansion): a CPU
// feature (boolean), family/model/stepping (number) or vendor/model-id (string).
struct CpuModelProperty {
  enum class Kind { kBoolean, kNumber, kString };
  std::string name;  // QEMU's name
  Kind kind = Kind::kBoolean;
  bool enabled = false;  // kBoolean
  int64_t number = 0;    // kNumber
  std::string text;      // kString
  // libvirt asks twice (migratable, and with migratable=off): a feature only the
  // second expansion enables (invtsc) is enabled here and not migratable.
  bool migratable = true;
  bool operator==(const CpuModelProperty&) const = default;
};

// A feature of libvirt's host-model CPU and what a guest does with it.
struct CpuFeaturePolicy {
  std::string policy;  // require, disable
  std::string name;    // libvirt's name
  bool operator==(const CpuFeaturePolicy&) const = default;
};

// libvirt's host-model for one virt type: the model of its CPU map (restricted to
// those the emulator knows) QEMU's expansion decodes to, with the features to
// require and to disable on top of it, in libvirt's order.
struct GuestHostModel {
  std::string model;
  std::string vendor;
  std::vector<CpuFeaturePolicy> features;
  bool operator==(const GuestHostModel&) const = default;
};

// What one accelerator (virt type) offers a guest CPU, as probed under it.
struct GuestCpuModes {
  std::string virttype;               // kvm or qemu
  std::vector<GuestCpuModel> models;  // query-cpu-definitions; empty when not asked
  bool models_probed = false;         // the emulator answered query-cpu-definitions
  // query-cpu-model-expansion of "host" (kvm) or "max" (qemu); nullopt when the
  // emulator cannot expand (old QEMU, a target without it).
  std::optional<std::vector<CpuModelProperty>> expansion;
  // "static" (QEMU's canonical names) or "full" (every spelling; libvirt then also
  // leaves MSR features out of the host-model), as libvirt chooses for this QEMU.
  std::string expansion_type;
  // Decoded from `expansion` by the qemu collector against the CPU map (not cached);
  // nullopt: no host-model (libvirt then says supported='no').
  std::optional<GuestHostModel> host_model;
  bool operator==(const GuestCpuModes&) const = default;
};

// What libvirt decides an emulator's domain capabilities <devices>, <features>,
// <memoryBacking> and <iothreads> by (its QEMU_CAPS_* flags), as probed over QMP. Only
// the facts libvirt reads are kept, each as one short name in `found`:
//   "type:NAME"        qom-list-types listed the QOM type NAME (one of a fixed table)
//   "command:NAME"     the QMP schema has the command NAME (query-vnc, blockdev-reopen)
//   "schema:NAME"      one of libvirt's QMP schema queries held (display-sdl, ...)
//   "option:spice"     query-command-line-options knows -spice
//   "tpm-model:NAME"   query-tpm-models listed NAME; "tpm-type:NAME" query-tpm-types
//   "sgx"              query-sgx-capabilities answered (the host can run SGX guests)
// `answered` names the probes that answered (qom-list-types, query-qmp-schema,
// command-line-options, query-tpm-models, query-tpm-types, query-sgx-capabilities,
// hyperv): a fact of a probe not listed there is unknown, not absent.
struct GuestDeviceFacts {
  // Shared by the copies each refresh makes of a remembered guest (see SharedVector):
  // a few hundred strings that change only with a new probe.
  SharedVector<std::string> answered;  // sorted
  SharedVector<std::string> found;     // sorted
  // libvirt's names of the Hyper-V enlightenments KVM offers (QEMU's full expansion of
  // "host" with hv-passthrough), in libvirt's order; meaningful when "hyperv" answered.
  SharedVector<std::string> hyperv;
  // Host state, set at every refresh by the qemu collector (never cached): whether
  // swtpm is installed (libvirt's virTPMHasSwtpm), which decides the TPM emulator.
  std::optional<bool> swtpm;

  bool Answered(std::string_view probe) const;
  bool Has(std::string_view fact) const;
  bool operator==(const GuestDeviceFacts&) const = default;
};

// One <guest> of the capabilities document: what one hypervisor can run for one arch.
struct Guest {
  std::string hypervisor;  // qemu, xen, lxc: which of our hypervisor entries produced it
  std::string os_type;     // hvm, xen, exe
  std::string arch;        // libvirt's arch name
  unsigned wordsize = 64;
  std::string emulator;
  std::string loader;
  std::vector<GuestMachine> machines;
  std::vector<GuestDomain> domains;
  std::vector<GuestFeature> features;
  // Per virt type, the first probe's accelerator first (kvm when KVM came up, else
  // qemu), then qemu from libvirt's second, TCG-only probe when the first ran on KVM.
  // Shared by the copies a refresh makes of a remembered guest (see SharedVector).
  SharedVector<GuestCpuModes> cpu_modes;
  std::string qemu_version;  // query-version: "7.2.22"; empty when not known
  // QEMU guests: what the domain capabilities' devices and features are decided by;
  // nullopt for other hypervisors (and a probe that asked nothing of it).
  std::optional<GuestDeviceFacts> device_facts;

  const GuestCpuModes* CpuModesFor(const std::string& virttype) const {
    for (const GuestCpuModes& modes : cpu_modes) {
      if (modes.virttype == virttype) return &modes;
    }
    return nullptr;
  }
  bool operator==(const Guest&) const = default;
};

// One target of a QEMU firmware descriptor: an architecture (libvirt's name) and the
// machine types it boots, as glob patterns ("pc-q35-*").
struct FirmwareTarget {
  std::string arch;
  std::vector<std::string> machines;
  bool operator==(const FirmwareTarget&) const = default;
};

// A QEMU firmware descriptor (QEMU's docs/interop/firmware.json), as libvirt 9.0's
// qemu_firmware.c reads one. The description and tags are not kept.
struct FirmwareDescriptor {
  std::string path;                     // the file that won for its name, as the host sees it
  std::vector<std::string> interfaces;  // uefi, bios, openfirmware, uboot
  std::string device;                   // flash, memory or kernel
  std::string flash_mode;               // flash only: split (the default), combined, stateless
  std::string executable;               // the flash executable, or the memory/kernel filename
  std::string nvram_template;           // flash, split mode only
  std::vector<FirmwareTarget> targets;
  std::vector<std::string> features;  // those libvirt knows (secure-boot, requires-smm, ...)
  bool executable_exists = false;     // `executable` exists under --path.rootfs
  bool operator==(const FirmwareDescriptor&) const = default;
};

// A descriptor file left out, and why.
struct FirmwareDescriptorProblem {
  std::string path;
  std::string reason;
  bool operator==(const FirmwareDescriptorProblem&) const = default;
};

// The QEMU firmware the host offers guests, read by the qemu driver once per change
// of its descriptor directories (hypervisors[].firmware_dirs), not per guest.
struct QemuFirmware {
  std::vector<FirmwareDescriptor> descriptors;  // by file name, libvirt's order
  // Skipped files libvirt would fail on: garbled, oversized, unreadable, a dangling link.
  std::vector<FirmwareDescriptorProblem> invalid;
  // Entries that are not regular files (a FIFO, a directory): libvirt passes over them
  // silently, and so a FIFO does not hide a file of the same name in an earlier directory.
  std::vector<FirmwareDescriptorProblem> ignored;
  std::vector<std::string> masked;  // names an empty file masks
  // qemu.conf's nvram list (loader paths) whose loader exists under --path.rootfs:
  // what libvirt lists when no descriptor matches (hypervisors[].nvram).
  std::vector<std::string> legacy_loaders;
  bool reread = false;  // this refresh read the descriptors again (their problems are news)
  bool operator==(const QemuFirmware&) const = default;
};

// How one configured hypervisor fared.
struct HypervisorStatus {
  std::string name;        // qemu, xen, lxc
  bool available = false;  // the host can run at least one guest with it
  std::string detail;      // why not, or what it found, for humans
  std::string version;     // e.g. Xen's version from sysfs, when known
  unsigned emulators_found = 0;
  unsigned probes_failed = 0;
  unsigned cache_hits = 0;  // emulators answered from the on-disk cache
  unsigned probes_spawned = 0;
  bool operator==(const HypervisorStatus&) const = default;
};

// How one collector fared during a refresh.
struct CollectorOutcome {
  std::string name;
  bool success = false;
  double duration_seconds = 0;
  std::string error;
  bool operator==(const CollectorOutcome&) const = default;
};

struct HostCapabilities {
  std::string uuid;
  std::string kernel_release;  // /proc/sys/kernel/osrelease
  HostCpu cpu;
  KvmState kvm;
  std::optional<PowerManagement> power;
  std::optional<IommuState> iommu;
  std::vector<NumaCell> cells;
  std::vector<PagePool> hugepages;  // host-wide pools, by size
  std::vector<CacheBank> caches;    // level 3 and up, as libvirt lists them
  std::vector<SecurityModel> secmodels;
  std::optional<MigrationFeatures> migration;  // set by the qemu driver
  std::optional<HostFacilities> facilities;
  std::vector<SecureGuestTechnology> secure_guests;
  std::optional<VirtualizationRole> virt_role;
  std::vector<HostCheck> checks;
  std::vector<Guest> guests;
  std::optional<QemuFirmware> qemu_firmware;  // set by the qemu driver
  std::vector<HypervisorStatus> hypervisors;
  std::vector<CollectorOutcome> collectors;
  std::optional<ResctrlMonitor> cache_monitor;  // resctrl llc_* monitoring
  std::vector<MemoryBandwidthNode> memory_bandwidth;
  std::optional<ResctrlMonitor> memory_bandwidth_monitor;  // resctrl mbm_* monitoring
  bool operator==(const HostCapabilities&) const = default;
};

// Makes every string in the model fit for XML 1.0 and the Prometheus text format
// (SanitizeText); CollectHost applies it once, after the collectors (model_text.cpp).
void SanitizeModelText(HostCapabilities& caps);

}  // namespace virtcaps
