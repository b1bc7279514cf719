#include <prometheus/check_names.h>
#include <prometheus/metric_family.h>

#include <cmath>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "virtcaps/exposition.h"
#include "virtcaps/firmware.h"
#include "virtcaps/renderers.h"

namespace virtcaps {

namespace {

constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

double Bool(bool value) { return value ? 1 : 0; }
// "Unknown is not false": an unknown answer is NaN, which no `== 0` alert matches.
double Tristate(const std::optional<bool>& value) { return value ? Bool(*value) : kUnknown; }

using Labels = std::vector<std::pair<std::string, std::string>>;

// Collects families so each name is declared once (the serializer does not merge),
// in runs (StartRun): a family belongs to one run only, so the text of each run can be
// written on its own and the page is the runs' texts one after another.
class Exposition {
 public:
  void StartRun() { runs_.push_back(families_.size()); }
  void Gauge(const std::string& name, const std::string& help, double value,
             const Labels& labels = {}) {
    Add(name, help, prometheus::MetricType::Gauge, value, labels);
  }
  void Counter(const std::string& name, const std::string& help, double value,
               const Labels& labels = {}) {
    Add(name, help, prometheus::MetricType::Counter, value, labels);
  }
  std::vector<prometheus::MetricFamily> TakeFamilies() { return std::move(families_); }
  // The families of each run, in order (the families before the first StartRun are
  // the first run's).
  std::vector<std::vector<prometheus::MetricFamily>> TakeRuns() {
    std::vector<std::vector<prometheus::MetricFamily>> runs;
    std::vector<size_t> starts = runs_;
    if (starts.empty() || starts.front() != 0) starts.insert(starts.begin(), 0);
    for (size_t i = 0; i < starts.size(); ++i) {
      size_t end = i + 1 < starts.size() ? starts[i + 1] : families_.size();
      runs.emplace_back(std::make_move_iterator(families_.begin() + starts[i]),
                        std::make_move_iterator(families_.begin() + end));
    }
    families_.clear();
    return runs;
  }

 private:
  void Add(const std::string& name, const std::string& help, prometheus::MetricType type,
           double value, const Labels& labels) {
    auto found = index_.find(name);
    if (found != index_.end() && !runs_.empty() && found->second < runs_.back()) {
      throw std::logic_error("metric family in two runs: " + name);
    }
    if (found == index_.end()) {
      if (!prometheus::CheckMetricName(name)) throw std::logic_error("bad metric name " + name);
      found = index_.emplace(name, families_.size()).first;
      prometheus::MetricFamily family;
      family.name = name;
      family.help = help;
      family.type = type;
      families_.push_back(std::move(family));
    }
    prometheus::ClientMetric metric;
    for (const auto& [label, label_value] : labels) {
      metric.label.push_back(prometheus::ClientMetric::Label{label, label_value});
    }
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    families_[found->second].metric.push_back(std::move(metric));
  }

  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, size_t> index_;
  std::vector<size_t> runs_;  // where each StartRun began, in families_
};

std::string Hex(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof(buffer), "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

bool CollectorRan(const HostCapabilities& caps, const std::string& name) {
  for (const CollectorOutcome& outcome : caps.collectors) {
    if (outcome.name == name) return true;
  }
  return false;
}

void AddCpu(Exposition& out, const HostCpu& cpu, const FeatureFilter* features_include) {
  const std::string signature_family = cpu.signature ? std::to_string(cpu.signature->family) : "";
  out.Gauge("virtcaps_cpu_info",
            "Host CPU identity from /proc/cpuinfo and CPUID leaf 1 (value is always 1).", 1,
            {{"arch", cpu.arch},
             {"vendor", cpu.vendor},
             {"vendor_id", cpu.vendor_id},
             {"model_name", cpu.model_name},
             {"family", signature_family},
             {"model", cpu.signature ? std::to_string(cpu.signature->model) : ""},
             {"stepping", cpu.signature ? std::to_string(cpu.signature->stepping) : ""},
             {"microcode", cpu.microcode ? Hex(*cpu.microcode) : ""}});
  if (!cpu.libvirt_model.empty()) {
    out.Gauge("virtcaps_cpu_model_info",
              "Host CPU model as libvirt names it from its CPU map (value is always 1; absent "
              "when the map is unreadable or names no model for this CPU).",
              1, {{"model", cpu.libvirt_model}, {"vendor", cpu.vendor}});
  }
  if (cpu.tsc) {
    out.Gauge("virtcaps_cpu_tsc_frequency_hertz",
              "Invariant TSC frequency (KVM_GET_TSC_KHZ of a scratch vCPU, as libvirt, else "
              "CPUID 0x40000010 or 0x15); absent without invariant TSC.",
              static_cast<double>(cpu.tsc->frequency_hz), {{"source", cpu.tsc->source}});
  }
  for (const std::string& feature : cpu.features) {
    if (features_include && !features_include->Matches(feature)) continue;
    out.Gauge("virtcaps_cpu_feature_info",
              "CPU feature flags the kernel lists in /proc/cpuinfo, one series per flag.", 1,
              {{"feature", feature}});
  }
  const HardwareVirtualization& virt = cpu.virtualization;
  out.Gauge("virtcaps_cpu_virtualization_info",
            "Hardware virtualization extension of this architecture (vmx, svm, sie; empty if none "
            "is known).",
            1, {{"extension", virt.extension}});
  out.Gauge("virtcaps_cpu_virtualization_supported",
            "1 if the CPU implements hardware virtualization (CPUID vmx/svm bit), 0 if not, NaN "
            "if unknown.",
            Tristate(virt.cpu_supported));
  out.Gauge("virtcaps_cpu_virtualization_enabled",
            "1 if the kernel lists the virtualization flag (vmx/svm/sie) in /proc/cpuinfo, 0 if "
            "not, NaN if unknown.",
            Tristate(virt.kernel_enabled));
  out.Gauge("virtcaps_cpu_virtualization_firmware_disabled",
            "1 if the CPU implements hardware virtualization but firmware left it disabled "
            "(IA32_FEATURE_CONTROL, VM_CR or CPUID against cpuinfo), NaN if unknown.",
            Tristate(virt.firmware_disabled));
  if (cpu.topology) {
    const CpuTopology& topology = *cpu.topology;
    out.Gauge("virtcaps_cpu_sockets",
              "Physical CPU packages: distinct physical_package_id of online CPUs (the XML "
              "topology counts sockets per NUMA node, as libvirt does).",
              topology.physical_packages);
    out.Gauge("virtcaps_cpu_dies_per_socket",
              "Physical dies per package: distinct die_id per physical_package_id.",
              topology.physical_packages
                  ? static_cast<double>(topology.physical_dies) / topology.physical_packages
                  : 0);
    out.Gauge("virtcaps_cpu_topology_sockets",
              "Sockets as libvirt reports them (most in one NUMA node; 1 in the flat fallback).",
              topology.sockets);
    out.Gauge("virtcaps_cpu_cores_per_die",
              "Cores per socket as libvirt counts them (most distinct core_id in one socket of "
              "one node; every CPU in the flat fallback).",
              topology.cores);
    out.Gauge("virtcaps_cpu_threads_per_core",
              "Threads per core as libvirt counts them (most thread siblings of one CPU; 1 in "
              "the flat fallback).",
              topology.threads);
    out.Gauge("virtcaps_cpu_topology_flat_fallback",
              "1 if nodes x sockets x cores x threads did not equal the present CPUs, so the "
              "topology is libvirt's flat 1 socket x N cores x 1 thread.",
              Bool(topology.method == "flat_fallback"));
    out.Gauge("virtcaps_cpu_topology_info",
              "How the CPU topology was derived: per_node, whole_host (no NUMA sysfs) or "
              "flat_fallback.",
              1, {{"method", topology.method}});
    out.Gauge("virtcaps_cpu_offline", "Present but offline logical CPUs in the topology count.",
              topology.offline_cpus);
  }
  out.Gauge("virtcaps_xml_arch_in_schema",
            "1 if libvirt 9.0's capability schema names the host architecture; 0 if the XML "
            "uses a newer libvirt arch name (loongarch64) that schema rejects.",
            Bool(ArchInTargetSchema(cpu.arch)));
  out.Gauge("virtcaps_cpu_present",
            "Present logical CPUs (/sys/devices/system/cpu/present, else online, else cpuinfo).",
            cpu.present_cpus);
  out.Gauge("virtcaps_cpu_online", "Online logical CPUs (/sys/devices/system/cpu/online).",
            cpu.online_cpus);
  if (cpu.max_phys_addr_bits) {
    out.Gauge("virtcaps_cpu_physical_address_width_bits",
              "Physical address width, in bits (/proc/cpuinfo address sizes).",
              *cpu.max_phys_addr_bits);
  }
}

void AddKvm(Exposition& out, const KvmState& kvm) {
  out.Gauge("virtcaps_kvm_device_present", "1 if the KVM device node (/dev/kvm) exists.",
            Bool(kvm.device_present));
  out.Gauge("virtcaps_kvm_device_accessible",
            "1 if the agent may open /dev/kvm read-write, NaN if unknown.",
            Tristate(kvm.device_accessible));
  out.Gauge("virtcaps_kvm_usable",
            "1 if a KVM virtual machine could be created (KVM_CREATE_VM, closed at once; a "
            "success is asked again after probes.kvm.recheck_interval, a failure every refresh).",
            Bool(kvm.usable()));
  out.Gauge("virtcaps_kvm_nested_enabled",
            "1 if the KVM module's nested parameter is on, 0 if off or absent, NaN if unreadable.",
            Tristate(kvm.nested));
  if (kvm.api_version) {
    out.Gauge("virtcaps_kvm_api_version", "KVM API version (KVM_GET_API_VERSION).",
              *kvm.api_version);
  }
  if (kvm.max_vcpus) {
    out.Gauge("virtcaps_kvm_max_vcpus", "Most vCPUs one KVM guest may have (KVM_CAP_MAX_VCPUS).",
              *kvm.max_vcpus);
  }
  for (const std::string& module : kvm.modules) {
    out.Gauge("virtcaps_kvm_module_info",
              "KVM kernel modules present in /sys/module; provider=1 marks the one serving this "
              "CPU.",
              1, {{"module", module}, {"provider", module == kvm.provider ? "1" : "0"}});
  }
}

std::string Bytes(uint64_t kib) { return std::to_string(kib * 1024); }

void AddNuma(Exposition& out, const HostCapabilities& caps) {
  out.Gauge("virtcaps_numa_nodes", "NUMA nodes (cells) of the host, from /sys/devices/system/node.",
            static_cast<double>(caps.cells.size()));
  for (const NumaCell& cell : caps.cells) {
    if (!cell.memory_kib) continue;
    out.Gauge("virtcaps_numa_node_memory_bytes",
              "Memory of each NUMA node (nodeN/meminfo MemTotal).",
              static_cast<double>(*cell.memory_kib) * 1024, {{"node", std::to_string(cell.id)}});
  }
  for (const NumaCell& cell : caps.cells) {
    for (size_t i = 1; i < cell.pages.size(); ++i) {  // [0] is the base page pool
      out.Gauge(
          "virtcaps_numa_node_hugepages", "Huge pages reserved per NUMA node and page size.",
          static_cast<double>(cell.pages[i].total),
          {{"node", std::to_string(cell.id)}, {"page_size_bytes", Bytes(cell.pages[i].size_kib)}});
    }
  }
  for (const NumaCell& cell : caps.cells) {
    for (size_t i = 1; i < cell.pages.size(); ++i) {
      if (!cell.pages[i].free) continue;
      out.Gauge(
          "virtcaps_numa_node_hugepages_free", "Huge pages free per NUMA node and page size.",
          static_cast<double>(*cell.pages[i].free),
          {{"node", std::to_string(cell.id)}, {"page_size_bytes", Bytes(cell.pages[i].size_kib)}});
    }
  }
  for (const PagePool& pool : caps.hugepages) {
    out.Gauge("virtcaps_hugepages",
              "Huge pages reserved on the host, per page size (/sys/kernel/mm/hugepages).",
              static_cast<double>(pool.total), {{"page_size_bytes", Bytes(pool.size_kib)}});
  }
  for (const PagePool& pool : caps.hugepages) {
    if (!pool.free) continue;
    out.Gauge("virtcaps_hugepages_free", "Huge pages free on the host, per page size.",
              static_cast<double>(*pool.free), {{"page_size_bytes", Bytes(pool.size_kib)}});
  }
}

// Resource control (resctrl) as the cache collector found it; the 0/1 gauges are
// always present so that alerts can test them.
void AddResctrl(Exposition& out, const HostCapabilities& caps) {
  std::set<std::pair<unsigned, std::string>> seen;
  bool any_control = false;
  for (const CacheBank& bank : caps.caches) {
    for (const CacheControl& control : bank.controls) {
      any_control = true;
      if (!seen.insert({bank.level, control.type}).second) continue;
      out.Gauge("virtcaps_cache_allocation_classes",
                "Classes of service for cache allocation per cache level and type (resctrl "
                "num_closids; type code/data when CDP is on).",
                control.max_allocs,
                {{"level", std::to_string(bank.level)}, {"type", control.type}});
    }
  }
  out.Gauge("virtcaps_cache_allocation_supported",
            "1 if resctrl offers cache allocation on a listed cache bank (libvirt's <control>).",
            Bool(any_control));
  out.Gauge("virtcaps_memory_bandwidth_allocation_supported",
            "1 if resctrl offers memory bandwidth allocation (info/MB, libvirt's "
            "<memory_bandwidth>).",
            Bool(!caps.memory_bandwidth.empty()));
  if (caps.cache_monitor) {
    out.Gauge("virtcaps_resctrl_monitors",
              "Monitoring groups resctrl can run at once (info/L3_MON/num_rmids).",
              caps.cache_monitor->max_monitors);
  }
}

void AddIommu(Exposition& out, const IommuState& iommu) {
  out.Gauge("virtcaps_iommu_firmware_present",
            "1 if the firmware describes an IOMMU (ACPI DMAR, IVRS or IORT table).",
            Bool(!iommu.firmware_tables.empty()));
  out.Gauge("virtcaps_iommu_enabled",
            "1 if the kernel enabled an IOMMU (/sys/kernel/iommu_groups is not empty).",
            Bool(iommu.kernel_enabled));
  out.Gauge("virtcaps_iommu_groups", "IOMMU groups the kernel made.", iommu.groups);
  for (const std::string& table : iommu.firmware_tables) {
    out.Gauge("virtcaps_iommu_firmware_table_info", "ACPI tables that describe the IOMMU.", 1,
              {{"table", table}});
  }
}

void AddFacilities(Exposition& out, const HostFacilities& facilities) {
  for (const auto& [device, present] : facilities.devices) {
    out.Gauge("virtcaps_device_present",
              "1 if the device node guests need exists (under --path.devfs).", Bool(present),
              {{"device", device}});
  }
  if (facilities.cgroup_version) {
    out.Gauge("virtcaps_cgroup_version", "cgroup hierarchy in use: 1 (legacy) or 2 (unified).",
              *facilities.cgroup_version);
  }
  for (const auto& [controller, present] : facilities.cgroup_controllers) {
    out.Gauge("virtcaps_cgroup_controller_available",
              "1 if the cgroup controller (v1 name) that QEMU or LXC need is available.",
              Bool(present), {{"controller", controller}});
  }
  for (const auto& [ns, present] : facilities.namespaces) {
    out.Gauge("virtcaps_namespace_available",
              "1 if the kernel offers the namespace (/proc/self/ns).", Bool(present),
              {{"namespace", ns}});
  }
}

void AddSecureGuests(Exposition& out, const std::vector<SecureGuestTechnology>& technologies) {
  for (const SecureGuestTechnology& technology : technologies) {
    out.Gauge("virtcaps_secure_guest_supported",
              "1 if the CPU or firmware offers the confidential-guest technology, NaN if unknown.",
              Tristate(technology.cpu_supported), {{"technology", technology.name}});
  }
  for (const SecureGuestTechnology& technology : technologies) {
    out.Gauge(
        "virtcaps_secure_guest_enabled",
        "1 if the technology is switched on for guests (KVM parameter and device), NaN if unknown.",
        Tristate(technology.enabled), {{"technology", technology.name}});
  }
}

void AddVirtRole(Exposition& out, const VirtualizationRole& role) {
  out.Gauge("virtcaps_host_in_virtual_machine",
            "1 if this host itself runs inside a virtual machine.", Bool(role.in_virtual_machine));
  out.Gauge("virtcaps_host_role_info",
            "What this host is: host, guest, or both (a guest that can run KVM guests itself), and "
            "the hypervisor it runs under (CPUID, DMI, sysfs or device tree).",
            1, {{"role", role.role}, {"hypervisor", role.hypervisor}, {"source", role.evidence}});
  out.Gauge("virtcaps_xen_dom0", "1 if this host is a Xen control domain (dom0).",
            Bool(role.xen_dom0));
}

// The firmware QEMU guests can boot, from the firmware descriptors: per guest arch,
// always the three series an alert or a placement rule asks for (bounded: 3 per arch).
void AddQemuFirmware(Exposition& out, const QemuFirmware& firmware,
                     const std::vector<Guest>& guests) {
  auto descriptors = [&](const std::string& state, size_t count) {
    out.Gauge("virtcaps_qemu_firmware_descriptors",
              "QEMU firmware descriptor files by state: valid (used), invalid (skipped: garbled, "
              "oversized, unreadable; libvirt would fail on them), ignored (not a regular file), "
              "masked (an empty file of the same name).",
              static_cast<double>(count), {{"state", state}});
  };
  descriptors("valid", firmware.descriptors.size());
  descriptors("invalid", firmware.invalid.size());
  descriptors("ignored", firmware.ignored.size());
  descriptors("masked", firmware.masked.size());
  std::map<std::string, std::set<GuestFirmwareOffer>> by_arch;
  for (const Guest& guest : guests) {
    if (guest.hypervisor != "qemu") continue;
    std::set<GuestFirmwareOffer>& offers = by_arch[guest.arch];
    for (const GuestFirmwareOffer& offer : GuestFirmwareOffers(firmware, guest))
      offers.insert(offer);
  }
  const std::vector<GuestFirmwareOffer> kinds = {{"bios", false}, {"efi", false}, {"efi", true}};
  for (const auto& [arch, offers] : by_arch) {
    for (const GuestFirmwareOffer& kind : kinds) {
      out.Gauge("virtcaps_guest_firmware_available",
                "1 if a QEMU firmware descriptor offers guests of this arch this firmware (with "
                "or without Secure Boot) on some machine type of its emulator, its image present: "
                "what libvirt's firmware autoselection can pick. 0 if none.",
                Bool(offers.count(kind) > 0),
                {{"arch", arch},
                 {"firmware", kind.firmware},
                 {"secure_boot", kind.secure_boot ? "yes" : "no"}});
    }
  }
}

void AddHypervisorStatus(Exposition& out, const HostCapabilities& caps) {
  for (const HypervisorStatus& status : caps.hypervisors) {
    out.Gauge("virtcaps_hypervisor_available",
              "1 if the host can run guests with this hypervisor (qemu, xen, lxc) as configured.",
              Bool(status.available), {{"hypervisor", status.name}});
  }
  for (const HypervisorStatus& status : caps.hypervisors) {
    if (status.version.empty()) continue;
    out.Gauge("virtcaps_hypervisor_info",
              "Hypervisor version where the host tells it (Xen: /sys/hypervisor/version).", 1,
              {{"hypervisor", status.name}, {"version", status.version}});
  }
  for (const HypervisorStatus& status : caps.hypervisors) {
    if (status.name != "qemu") continue;
    out.Gauge("virtcaps_qemu_emulators",
              "qemu-system-* emulators found in the configured directories and list.",
              status.emulators_found);
  }
}

// What changes every refresh: the probe counts summed since the start.
void AddQemuProbeCounters(Exposition& out, const HostCapabilities& caps,
                          const RefreshFacts& refresh) {
  for (const HypervisorStatus& status : caps.hypervisors) {
    if (status.name != "qemu") continue;
    out.Counter("virtcaps_qemu_emulator_probe_failures_total",
                "Emulator QMP probes that failed, summed over all refreshes since the start.",
                static_cast<double>(refresh.qemu_probe_failures_total));
    out.Counter("virtcaps_qemu_emulator_cache_hits_total",
                "Emulators answered from the on-disk probe cache (nothing spawned), summed over "
                "all refreshes since the start.",
                static_cast<double>(refresh.qemu_cache_hits_total));
    out.Counter("virtcaps_qemu_emulator_probes_spawned_total",
                "Emulators started for a QMP probe, summed over all refreshes since the start.",
                static_cast<double>(refresh.qemu_probes_spawned_total));
  }
}

void AddGuests(Exposition& out, const HostCapabilities& caps) {
  // One series per emulator binary (a guest derived from one, i686 from
  // qemu-system-x86_64, is not a second emulator).
  std::set<std::string> emulators;
  for (const Guest& guest : caps.guests) {
    if (guest.hypervisor != "qemu" || guest.qemu_version.empty()) continue;
    if (!emulators.insert(guest.emulator).second) continue;
    out.Gauge(
        "virtcaps_qemu_emulator_info",
        "A probed QEMU emulator, the guest arch it runs and its version (QMP query-version).", 1,
        {{"emulator", guest.emulator}, {"arch", guest.arch}, {"version", guest.qemu_version}});
  }
  // Per (hypervisor, os_type, arch): the domain types and how many machine types.
  // Two emulators for one arch merge, so every series stays unique and bounded.
  std::map<std::tuple<std::string, std::string, std::string>,
           std::pair<std::set<std::string>, size_t>>
      arches;
  for (const Guest& guest : caps.guests) {
    auto& [domains, machines] = arches[{guest.hypervisor, guest.os_type, guest.arch}];
    for (const GuestDomain& domain : guest.domains) domains.insert(domain.type);
    machines = std::max(machines, guest.machines.size());
  }
  for (const auto& [key, value] : arches) {
    for (const std::string& domain : value.first) {
      out.Gauge(
          "virtcaps_guest_domain_supported",
          "1 for each domain type (kvm, qemu, xen, lxc) a guest arch can run with, per hypervisor.",
          1,
          {{"hypervisor", std::get<0>(key)},
           {"os_type", std::get<1>(key)},
           {"arch", std::get<2>(key)},
           {"domain", domain}});
    }
  }
  for (const auto& [key, value] : arches) {
    out.Gauge("virtcaps_guest_machine_types", "Machine types a guest arch offers, per hypervisor.",
              static_cast<double>(value.second),
              {{"hypervisor", std::get<0>(key)},
               {"os_type", std::get<1>(key)},
               {"arch", std::get<2>(key)}});
  }
  // One series per named model per (arch, virttype): which hosts can run model X.
  std::map<std::tuple<std::string, std::string, std::string>, bool> usable;
  for (const Guest& guest : caps.guests) {
    for (const GuestCpuModes& modes : guest.cpu_modes) {
      for (const GuestCpuModel& model : modes.models) {
        bool& value = usable[{guest.arch, modes.virttype, model.name}];
        value = value || model.usable;
      }
    }
  }
  for (const auto& [key, value] : usable) {
    out.Gauge(
        "virtcaps_guest_cpu_model_usable",
        "1 if a guest of this arch can use the named CPU model with this virt type on this "
        "host (QEMU's query-cpu-definitions lists no unavailable features), 0 if not.",
        Bool(value),
        {{"arch", std::get<0>(key)}, {"virttype", std::get<1>(key)}, {"model", std::get<2>(key)}});
  }
  // One series per (arch, virttype): the first emulator's host-model, as virsh picks it.
  std::set<std::pair<std::string, std::string>> host_models;
  for (const Guest& guest : caps.guests) {
    for (const GuestCpuModes& modes : guest.cpu_modes) {
      if (!modes.host_model || !host_models.insert({guest.arch, modes.virttype}).second) continue;
      out.Gauge("virtcaps_guest_cpu_host_model_info",
                "The CPU model (libvirt's CPU map) and vendor a host-model guest of this arch "
                "and virt type gets on this host, as virsh domcapabilities says.",
                1,
                {{"arch", guest.arch},
                 {"virttype", modes.virttype},
                 {"model", modes.host_model->model},
                 {"vendor", modes.host_model->vendor}});
    }
  }
  if (caps.qemu_firmware) AddQemuFirmware(out, *caps.qemu_firmware, caps.guests);
}

void AddChecks(Exposition& out, const std::vector<HostCheck>& checks) {
  for (const HostCheck& check : checks) {
    out.Gauge(
        "virtcaps_host_check_passed",
        "1 if the virt-host-validate check passes on this host, 0 if not; severity says what a "
        "failure means.",
        Bool(check.passed),
        {{"driver", check.driver}, {"check", check.name}, {"severity", check.severity}});
  }
}

}  // namespace

void AddQemuProbeCounts(const HostCapabilities& caps, RefreshFacts& facts) {
  for (const HypervisorStatus& status : caps.hypervisors) {
    if (status.name != "qemu") continue;
    facts.qemu_cache_hits_total += status.cache_hits;
    facts.qemu_probe_failures_total += status.probes_failed;
    facts.qemu_probes_spawned_total += status.probes_spawned;
  }
}

namespace {

// The runs of a snapshot's page, in page order. The two capability runs depend only on
// the model (less its per-refresh durations and probe counts), the build and the
// options; the other two change every refresh.
enum Run : unsigned {
  kCapabilitiesHead = 0,  // build, host parts, hypervisor status
  kProbeCounters = 1,     // QEMU probe counts since the start
  kCapabilitiesTail = 2,  // guests, checks, collector success
  kRefreshFacts = 3,      // collector durations, refresh and reload facts
  kRunCount = 4,
};
constexpr unsigned kAllRuns = (1u << kRunCount) - 1;

// The families of the runs in `wanted_runs` (bit n: run n), as kRunCount lists (a run
// not wanted is empty).
std::vector<std::vector<prometheus::MetricFamily>> SnapshotRuns(const HostCapabilities& caps,
                                                                const RefreshFacts& refresh,
                                                                const BuildInfo& build,
                                                                const MetricsOptions& options,
                                                                unsigned wanted_runs) {
  auto wanted = [&](const std::string& collector) {
    return !options.collectors || options.collectors->count(collector) > 0;
  };
  auto ran = [&](const std::string& collector) {
    return CollectorRan(caps, collector) && wanted(collector);
  };
  HostCapabilities filtered_hypervisors;  // only when filtering: the wanted drivers' parts
  const HostCapabilities* hypervisor_caps = &caps;
  if (options.collectors) {
    for (const HypervisorStatus& status : caps.hypervisors) {
      if (wanted(status.name)) filtered_hypervisors.hypervisors.push_back(status);
    }
    for (const Guest& guest : caps.guests) {
      if (wanted(guest.hypervisor)) filtered_hypervisors.guests.push_back(guest);
    }
    if (wanted("qemu")) filtered_hypervisors.qemu_firmware = caps.qemu_firmware;
    hypervisor_caps = &filtered_hypervisors;
  }
  Exposition out;
  auto run = [&](Run next) {
    out.StartRun();
    return ((wanted_runs >> next) & 1) != 0;
  };
  if (run(kCapabilitiesHead)) {
    out.Gauge(
        "virtcaps_build_info",
        "Build of virtcaps-agent: version, git revision and compiler (value is always 1).", 1,
        {{"version", build.version}, {"revision", build.revision}, {"compiler", build.compiler}});
    if (ran("cpu")) AddCpu(out, caps.cpu, options.cpu_features_include.get());
    if (ran("kvm")) AddKvm(out, caps.kvm);
    if (ran("numa")) AddNuma(out, caps);
    if (ran("cache")) AddResctrl(out, caps);
    if (caps.iommu && wanted("iommu")) AddIommu(out, *caps.iommu);
    if (caps.facilities && wanted("facilities")) AddFacilities(out, *caps.facilities);
    if (!caps.secure_guests.empty() && wanted("secure_guest"))
      AddSecureGuests(out, caps.secure_guests);
    if (caps.virt_role && wanted("virt_role")) AddVirtRole(out, *caps.virt_role);
    if (!caps.kernel_release.empty() && wanted("host")) {
      out.Gauge("virtcaps_kernel_info", "Kernel release of the host (/proc/sys/kernel/osrelease).",
                1, {{"release", caps.kernel_release}});
    }
    AddHypervisorStatus(out, *hypervisor_caps);
  }
  if (run(kProbeCounters)) AddQemuProbeCounters(out, *hypervisor_caps, refresh);
  if (run(kCapabilitiesTail)) {
    AddGuests(out, *hypervisor_caps);
    AddChecks(out, caps.checks);
    for (const CollectorOutcome& outcome : caps.collectors) {
      if (!wanted(outcome.name)) continue;
      out.Gauge("virtcaps_scrape_collector_success",
                "1 if the collector succeeded in the latest refresh, 0 if it failed.",
                Bool(outcome.success), {{"collector", outcome.name}});
    }
  }
  if (run(kRefreshFacts)) {
    for (const CollectorOutcome& outcome : caps.collectors) {
      if (!wanted(outcome.name)) continue;
      out.Gauge("virtcaps_scrape_collector_duration_seconds",
                "How long the collector took in the latest refresh.", outcome.duration_seconds,
                {{"collector", outcome.name}});
    }
    out.Gauge("virtcaps_last_refresh_timestamp_seconds",
              "Unix time the snapshot being served was finished.", refresh.finished_at_seconds);
    out.Gauge("virtcaps_refresh_duration_seconds", "How long the latest refresh took.",
              refresh.duration_seconds);
    out.Gauge("virtcaps_refresh_interval_seconds",
              "The configured time between refreshes (refresh_interval).",
              refresh.interval_seconds);
    out.Gauge(
        "virtcaps_config_last_reload_successful",
        "1 if the latest configuration reload (SIGHUP) was applied, 0 if it was rejected and the "
        "previous configuration stays in force.",
        Bool(refresh.config_reload_ok));
    out.Gauge(
        "virtcaps_web_config_last_reload_successful",
        "1 if the latest re-read of --web.config.file was applied (or there is none), 0 if it "
        "was refused and the previous web settings stay in force.",
        Bool(refresh.web_config_reload_ok));
    out.Gauge("virtcaps_config_last_reload_success_timestamp_seconds",
              "Unix time the configuration in force was loaded.", refresh.config_loaded_at_seconds);
    out.Counter("virtcaps_refreshes_total", "Refreshes completed since the agent started.",
                static_cast<double>(refresh.refreshes_total));
  }
  return out.TakeRuns();
}

std::vector<prometheus::MetricFamily> SnapshotFamilies(const HostCapabilities& caps,
                                                       const RefreshFacts& refresh,
                                                       const BuildInfo& build,
                                                       const MetricsOptions& options) {
  std::vector<prometheus::MetricFamily> families;
  for (auto& run : SnapshotRuns(caps, refresh, build, options, kAllRuns)) {
    families.insert(families.end(), std::make_move_iterator(run.begin()),
                    std::make_move_iterator(run.end()));
  }
  return families;
}

// The page: the capability texts with the refresh runs' texts between and after them.
std::string Page(const std::string (&capabilities)[2], const std::string& probe_counters,
                 const std::string& refresh_facts) {
  std::string page;
  page.reserve(capabilities[0].size() + probe_counters.size() + capabilities[1].size() +
               refresh_facts.size());
  page += capabilities[0];
  page += probe_counters;
  page += capabilities[1];
  page += refresh_facts;
  return page;
}

}  // namespace

FeatureFilter::FeatureFilter(const std::string& pattern)
    : regex_(pattern, std::regex::ECMAScript | std::regex::optimize) {}

bool FeatureFilter::Matches(const std::string& flag) const {
  constexpr size_t kMaxAnswers = 4096;
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = answers_.find(flag);
  if (found != answers_.end()) return found->second;
  bool matches = std::regex_match(flag, regex_);
  if (answers_.size() < kMaxAnswers) answers_.emplace(flag, matches);
  return matches;
}

Expositions RenderExpositions(const HostCapabilities& caps, const RefreshFacts& refresh,
                              const BuildInfo& build, const MetricsOptions& options,
                              std::shared_ptr<const CapabilityTexts> reuse) {
  unsigned runs_wanted = reuse ? (1u << kProbeCounters) | (1u << kRefreshFacts) : kAllRuns;
  auto runs = SnapshotRuns(caps, refresh, build, options, runs_wanted);
  if (!reuse) {
    auto made = std::make_shared<CapabilityTexts>();
    made->prometheus[0] = SerializeText(runs[kCapabilitiesHead]);
    made->prometheus[1] = SerializeText(runs[kCapabilitiesTail]);
    made->openmetrics[0] = SerializeOpenMetrics(runs[kCapabilitiesHead]);
    made->openmetrics[1] = SerializeOpenMetrics(runs[kCapabilitiesTail]);
    reuse = std::move(made);
  }
  Expositions texts;
  texts.prometheus = Page(reuse->prometheus, SerializeText(runs[kProbeCounters]),
                          SerializeText(runs[kRefreshFacts]));
  texts.openmetrics = Page(reuse->openmetrics, SerializeOpenMetrics(runs[kProbeCounters]),
                           SerializeOpenMetrics(runs[kRefreshFacts]));
  texts.capability_texts = std::move(reuse);
  return texts;
}

std::string RenderPrometheus(const HostCapabilities& caps, const RefreshFacts& refresh,
                             const BuildInfo& build, const MetricsOptions& options) {
  return SerializeText(SnapshotFamilies(caps, refresh, build, options));
}

std::string RenderOpenMetrics(const HostCapabilities& caps, const RefreshFacts& refresh,
                              const BuildInfo& build, const MetricsOptions& options,
                              bool terminate) {
  std::string text = SerializeOpenMetrics(SnapshotFamilies(caps, refresh, build, options));
  if (terminate) text += kOpenMetricsEof;
  return text;
}

}  // namespace virtcaps
