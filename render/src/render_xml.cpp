#include <algorithm>
#include <string>
#include <vector>

#include "virtcaps/renderers.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

std::string Str(uint64_t value) { return std::to_string(value); }

void AddHostCpu(XmlElement& host, const HostCpu& cpu) {
  XmlElement& element = host.Add("cpu");
  element.Add("arch", cpu.arch);
  if (!cpu.libvirt_model.empty()) element.Add("model", cpu.libvirt_model);
  if (!cpu.vendor.empty()) element.Add("vendor", cpu.vendor);
  // The schema wants a positive integer; libvirt prints it in decimal.
  if (cpu.microcode && *cpu.microcode > 0) {
    element.Add("microcode").SetAttribute("version", Str(*cpu.microcode));
  }
  if (cpu.signature && cpu.signature->family > 0) {
    element.Add("signature")
        .SetAttribute("family", Str(cpu.signature->family))
        .SetAttribute("model", Str(cpu.signature->model))
        .SetAttribute("stepping", Str(cpu.signature->stepping));
  }
  // The schema wants both attributes: without KVM's answer on scaling, no counter.
  if (cpu.tsc && cpu.tsc->frequency_hz > 0 && cpu.tsc->scaling) {
    element.Add("counter")
        .SetAttribute("name", "tsc")
        .SetAttribute("frequency", Str(cpu.tsc->frequency_hz))
        .SetAttribute("scaling", *cpu.tsc->scaling ? "yes" : "no");
  }
  // libvirt's numbers, as `virsh nodeinfo` shows them: sockets per NUMA node, and the
  // flat 1 x CPUs x 1 when its counts did not add up. The metrics keep the packages.
  if (cpu.topology) {
    element.Add("topology")
        .SetAttribute("sockets", Str(cpu.topology->sockets))
        .SetAttribute("dies", Str(cpu.topology->dies))
        .SetAttribute("cores", Str(cpu.topology->cores))
        .SetAttribute("threads", Str(cpu.topology->threads));
  }
  if (cpu.max_phys_addr_bits) {
    element.Add("maxphysaddr")
        .SetAttribute("mode", cpu.max_phys_addr_mode)
        .SetAttribute("bits", Str(*cpu.max_phys_addr_bits));
  }
  // With an x86 model, libvirt lists only the features beyond it, in its own names;
  // elsewhere (and with no map) the kernel's names are all there is.
  for (const std::string& feature : cpu.libvirt_features ? *cpu.libvirt_features : cpu.features) {
    element.Add("feature").SetAttribute("name", feature);
  }
  for (uint64_t size : cpu.page_sizes_kib) {
    element.Add("pages").SetAttribute("unit", "KiB").SetAttribute("size", Str(size));
  }
}

void AddTopology(XmlElement& host, const std::vector<NumaCell>& cells) {
  XmlElement& cells_element = host.Add("topology").Add("cells");
  cells_element.SetAttribute("num", Str(cells.size()));
  for (const NumaCell& cell : cells) {
    XmlElement& element = cells_element.Add("cell");
    element.SetAttribute("id", Str(cell.id));
    if (cell.memory_kib) element.Add("memory", Str(*cell.memory_kib)).SetAttribute("unit", "KiB");
    for (const PagePool& pool : cell.pages) {
      element.Add("pages", Str(pool.total))
          .SetAttribute("unit", "KiB")
          .SetAttribute("size", Str(pool.size_kib));
    }
    if (!cell.distances.empty()) {
      XmlElement& distances = element.Add("distances");
      for (const auto& [node, value] : cell.distances) {
        distances.Add("sibling").SetAttribute("id", Str(node)).SetAttribute("value", Str(value));
      }
    }
    XmlElement& cpus = element.Add("cpus");
    cpus.SetAttribute("num", Str(cell.cpus.size()));
    for (const CellCpu& cpu : cell.cpus) {
      XmlElement& cpu_element = cpus.Add("cpu");
      cpu_element.SetAttribute("id", Str(cpu.id));
      // The schema takes the four topology attributes together or not at all.
      if (cpu.socket_id && cpu.die_id && cpu.core_id) {
        cpu_element.SetAttribute("socket_id", Str(*cpu.socket_id))
            .SetAttribute("die_id", Str(*cpu.die_id))
            .SetAttribute("core_id", Str(*cpu.core_id))
            .SetAttribute("siblings", FormatCpuList(cpu.siblings));
      }
    }
  }
}

// libvirt prints sizes in the largest unit that divides them exactly.
std::pair<uint64_t, std::string> ScaledSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return {bytes, kUnits[unit]};
}

// A size in the largest unit that divides every one of `bytes` exactly (zeros aside).
std::pair<std::vector<uint64_t>, std::string> ScaledSizes(std::vector<uint64_t> bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  auto divisible = [&] {
    bool any = false;
    for (uint64_t value : bytes) {
      if (value % 1024 != 0) return false;
      any = any || value != 0;
    }
    return any;
  };
  while (unit + 1 < std::size(kUnits) && divisible()) {
    for (uint64_t& value : bytes) value /= 1024;
    ++unit;
  }
  return {bytes, kUnits[unit]};
}

void AddMonitor(XmlElement& parent, const ResctrlMonitor& monitor) {
  XmlElement& element = parent.Add("monitor");
  // The schema takes level and reuseThreshold together or not at all.
  if (monitor.level && monitor.reuse_threshold) {
    element.SetAttribute("level", Str(*monitor.level))
        .SetAttribute("reuseThreshold", Str(*monitor.reuse_threshold));
  }
  element.SetAttribute("maxMonitors", Str(monitor.max_monitors));
  for (const std::string& feature : monitor.features)
    element.Add("feature").SetAttribute("name", feature);
}

void AddCache(XmlElement& host, const std::vector<CacheBank>& banks,
              const std::optional<ResctrlMonitor>& monitor) {
  XmlElement& cache = host.Add("cache");
  for (const CacheBank& bank : banks) {
    auto [size, unit] = ScaledSize(bank.size_bytes);
    XmlElement& element = cache.Add("bank")
                              .SetAttribute("id", Str(bank.id))
                              .SetAttribute("level", Str(bank.level))
                              .SetAttribute("type", bank.type)
                              .SetAttribute("size", Str(size))
                              .SetAttribute("unit", unit)
                              .SetAttribute("cpus", FormatCpuList(bank.cpus));
    for (const CacheControl& control : bank.controls) {
      auto [sizes, control_unit] = ScaledSizes({control.granularity_bytes, control.min_bytes});
      XmlElement& control_element = element.Add("control");
      control_element.SetAttribute("granularity", Str(sizes[0]));
      if (control.min_bytes) control_element.SetAttribute("min", Str(sizes[1]));
      control_element.SetAttribute("unit", control_unit)
          .SetAttribute("type", control.type)
          .SetAttribute("maxAllocs", Str(control.max_allocs));
    }
  }
  if (monitor && !monitor->features.empty()) AddMonitor(cache, *monitor);
}

void AddMemoryBandwidth(XmlElement& host, const std::vector<MemoryBandwidthNode>& nodes,
                        const std::optional<ResctrlMonitor>& monitor) {
  XmlElement& element = host.Add("memory_bandwidth");
  for (const MemoryBandwidthNode& node : nodes) {
    XmlElement& node_element = element.Add("node")
                                   .SetAttribute("id", Str(node.id))
                                   .SetAttribute("cpus", FormatCpuList(node.cpus));
    XmlElement& control = node_element.Add("control");
    control.SetAttribute("granularity", Str(node.granularity_percent));
    if (node.min_percent) control.SetAttribute("min", Str(node.min_percent));
    control.SetAttribute("maxAllocs", Str(node.max_allocs));
  }
  if (monitor && !monitor->features.empty()) AddMonitor(element, *monitor);
}

void AddHost(XmlElement& root, const HostCapabilities& caps, std::string_view driver) {
  XmlElement& host = root.Add("host");
  if (!caps.uuid.empty()) host.Add("uuid", caps.uuid);
  AddHostCpu(host, caps.cpu);
  if (caps.power) {
    XmlElement& power = host.Add("power_management");
    if (caps.power->suspend_mem) power.Add("suspend_mem");
    if (caps.power->suspend_disk) power.Add("suspend_disk");
    if (caps.power->suspend_hybrid) power.Add("suspend_hybrid");
  }
  if (caps.iommu)
    host.Add("iommu").SetAttribute("support", caps.iommu->kernel_enabled ? "yes" : "no");
  // The QEMU driver's; LXC and Xen documents have none.
  if (caps.migration && (driver.empty() || driver == "qemu")) {
    XmlElement& migration = host.Add("migration_features");
    if (caps.migration->live) migration.Add("live");
    if (!caps.migration->uri_transports.empty()) {
      XmlElement& transports = migration.Add("uri_transports");
      for (const std::string& transport : caps.migration->uri_transports) {
        transports.Add("uri_transport", transport);
      }
    }
  }
  if (!caps.cells.empty()) AddTopology(host, caps.cells);
  if (!caps.caches.empty()) AddCache(host, caps.caches, caps.cache_monitor);
  // The schema needs at least one node; libvirt prints none without MBA.
  if (!caps.memory_bandwidth.empty())
    AddMemoryBandwidth(host, caps.memory_bandwidth, caps.memory_bandwidth_monitor);
  for (const SecurityModel& model : caps.secmodels) {
    if (!driver.empty() && !model.hypervisor.empty() && model.hypervisor != driver) continue;
    XmlElement& secmodel = host.Add("secmodel");
    secmodel.Add("model", model.model);
    secmodel.Add("doi", model.doi);
    for (const auto& [type, label] : model.baselabels) {
      secmodel.Add("baselabel", label).SetAttribute("type", type);
    }
  }
}

void AddMachines(XmlElement& parent, const std::vector<GuestMachine>& machines) {
  for (const GuestMachine& machine : machines) {
    XmlElement& element = parent.Add("machine", machine.name);
    if (!machine.canonical.empty()) element.SetAttribute("canonical", machine.canonical);
    if (machine.max_cpus) element.SetAttribute("maxCpus", Str(*machine.max_cpus));
    if (machine.deprecated) element.SetAttribute("deprecated", "yes");
  }
}

void AddGuest(XmlElement& root, const Guest& guest) {
  XmlElement& element = root.Add("guest");
  element.Add("os_type", guest.os_type);
  XmlElement& arch = element.Add("arch");
  arch.SetAttribute("name", guest.arch);
  arch.Add("wordsize", Str(guest.wordsize));
  if (!guest.emulator.empty()) arch.Add("emulator", guest.emulator);
  if (!guest.loader.empty()) arch.Add("loader", guest.loader);
  AddMachines(arch, guest.machines);
  for (const GuestDomain& domain : guest.domains) {
    XmlElement& domain_element = arch.Add("domain");
    domain_element.SetAttribute("type", domain.type);
    if (!domain.emulator.empty()) domain_element.Add("emulator", domain.emulator);
    AddMachines(domain_element, domain.machines);
  }
  XmlElement& features = element.Add("features");
  for (const GuestFeature& feature : guest.features) {
    XmlElement& feature_element = features.Add(feature.name);
    if (feature.default_on)
      feature_element.SetAttribute("default", *feature.default_on ? "on" : "off");
    if (feature.toggle) feature_element.SetAttribute("toggle", *feature.toggle ? "yes" : "no");
  }
}

}  // namespace

bool ArchInTargetSchema(std::string_view arch) {
  // basictypes.rng "archnames" of libvirt 9.0.
  static constexpr std::string_view kArches[] = {
      "aarch64",  "alpha",    "armv6l",     "armv7l",       "cris",   "i686",    "ia64",
      "lm32",     "m68k",     "microblaze", "microblazeel", "mips",   "mipsel",  "mips64",
      "mips64el", "openrisc", "parisc",     "parisc64",     "ppc",    "ppc64",   "ppc64le",
      "ppcemb",   "riscv32",  "riscv64",    "s390",         "s390x",  "sh4",     "sh4eb",
      "sparc",    "sparc64",  "unicore32",  "x86_64",       "xtensa", "xtensaeb"};
  return std::find(std::begin(kArches), std::end(kArches), arch) != std::end(kArches);
}

XmlElement CapabilitiesXml(const HostCapabilities& caps, std::string_view driver) {
  XmlElement root("capabilities");
  AddHost(root, caps, driver);
  for (const Guest& guest : caps.guests) {
    if (driver.empty() || guest.hypervisor == driver) AddGuest(root, guest);
  }
  return root;
}

std::string RenderCapabilitiesXml(const HostCapabilities& caps, std::string_view driver) {
  return WriteXml(CapabilitiesXml(caps, driver));
}

}  // namespace virtcaps
