// libvirt's domain capabilities document (domaincaps.rng), from the probed guests.
// It says what the agent knows: the emulator, machine, vCPU limit and the CPU modes
// with every named model and whether it is usable, the host-model's model and feature
// policies, <os> (firmware and loaders from QEMU's firmware descriptors),
// <iothreads>, <memoryBacking>, <devices> and <features> as libvirt 9.0 computes them
// from the emulator's probed facts (domain_devices.cpp), and SEV where it surely cannot
// be used. What was not probed is left out (the schema makes it optional) rather than
// guessed.
#include <algorithm>

#include "virtcaps/domain_devices.h"
#include "virtcaps/firmware.h"
#include "virtcaps/renderers.h"

namespace virtcaps {

namespace {

const Guest* FindGuest(const HostCapabilities& caps, const DomainCapabilitiesQuery& query,
                       const std::string& arch, Status& error) {
  const Guest* by_arch = nullptr;
  for (const Guest& guest : caps.guests) {
    if (guest.hypervisor != "qemu" || guest.arch != arch) continue;
    if (!query.emulator.empty() && guest.emulator != query.emulator) continue;
    by_arch = &guest;
    break;
  }
  if (by_arch == nullptr) {
    error = Status::Error(query.emulator.empty() ? "no QEMU emulator for arch '" + arch + "'"
                                                 : "emulator '" + query.emulator +
                                                       "' does not run arch '" + arch + "'");
  }
  return by_arch;
}

const GuestMachine* FindMachine(const Guest& guest, const std::string& name) {
  for (const GuestMachine& machine : guest.machines) {
    if (name.empty() ? machine.is_default : machine.name == name) return &machine;
  }
  return name.empty() && !guest.machines.empty() ? &guest.machines.front() : nullptr;
}

void AddEnum(XmlElement& parent, const std::string& name, std::vector<std::string> values) {
  XmlElement& element = parent.Add("enum");
  element.SetAttribute("name", name);
  for (std::string& value : values) element.Add("value", std::move(value));
}

// <name supported='yes'><enum .../>...</name>, or <name supported='no'/>.
XmlElement& AddSupported(XmlElement& parent, const DomainCapsElement& item) {
  XmlElement& element = parent.Add(item.name);
  element.SetAttribute("supported", item.supported ? "yes" : "no");
  if (!item.supported) return element;
  for (const DomainCapsEnum& values : item.enums) AddEnum(element, values.name, values.values);
  return element;
}

// <os>, as libvirt 9.0 prints it (virQEMUCapsFillDomainOSCaps): the firmware kinds
// the matching descriptors offer, the loader files, and the loader enums. The same for
// every virt type.
void AddOs(XmlElement& root, const QemuFirmware& firmware, const std::string& arch,
           const std::string& machine) {
  DomainOsCaps os = LibvirtDomainOsCaps(firmware, arch, machine);
  XmlElement& element = root.Add("os");
  element.SetAttribute("supported", "yes");
  std::vector<std::string> kinds;
  if (os.bios) kinds.push_back("bios");
  if (os.efi) kinds.push_back("efi");
  AddEnum(element, "firmware", std::move(kinds));
  XmlElement& loader = element.Add("loader");
  loader.SetAttribute("supported", "yes");
  for (const std::string& path : os.loaders) loader.Add("value", path);
  AddEnum(loader, "type", {"rom", "pflash"});
  AddEnum(loader, "readonly", {"yes", "no"});
  if (os.secure) {
    AddEnum(loader, "secure", {"yes", "no"});
  } else {
    AddEnum(loader, "secure", {"no"});
  }
}

}  // namespace

Expected<std::string> RenderDomainCapabilitiesXml(const HostCapabilities& caps,
                                                  const DomainCapabilitiesQuery& query) {
  std::string arch = query.arch.empty() ? caps.cpu.arch : query.arch;
  Status error;
  const Guest* guest = FindGuest(caps, query, arch, error);
  if (guest == nullptr) return error;
  auto has_domain = [&](const std::string& type) {
    return std::any_of(guest->domains.begin(), guest->domains.end(),
                       [&](const GuestDomain& domain) { return domain.type == type; });
  };
  std::string virttype = query.virttype;
  if (virttype.empty()) virttype = has_domain("kvm") ? "kvm" : "qemu";
  if (!has_domain(virttype)) {
    return Status::Error("virt type '" + virttype + "' is not available for " + guest->emulator);
  }
  const GuestMachine* machine = FindMachine(*guest, query.machine);
  if (machine == nullptr) {
    return Status::Error("machine '" + query.machine + "' is not offered by " + guest->emulator);
  }

  XmlElement root("domainCapabilities");
  root.Add("path", guest->emulator);
  root.Add("domain", virttype);
  // An alias is reported by the machine it stands for, as libvirt does.
  root.Add("machine", machine->canonical.empty() ? machine->name : machine->canonical);
  root.Add("arch", arch);
  if (machine->max_cpus) root.Add("vcpu").SetAttribute("max", std::to_string(*machine->max_cpus));
  const std::string& machine_name = machine->canonical.empty() ? machine->name : machine->canonical;
  DomainDeviceCaps devices = LibvirtDomainDeviceCaps(*guest, arch, machine_name, virttype, caps);
  // The schema's order: vcpu, iothreads, os, cpu.
  if (devices.iothreads) AddSupported(root, *devices.iothreads);
  // Without the qemu driver's firmware reading (a model from elsewhere) <os> is left out.
  if (caps.qemu_firmware) AddOs(root, *caps.qemu_firmware, arch, machine_name);

  XmlElement& cpu = root.Add("cpu");
  bool kvm = virttype == "kvm";
  XmlElement& passthrough = cpu.Add("mode");
  passthrough.SetAttribute("name", "host-passthrough")
      .SetAttribute("supported", kvm ? "yes" : "no");
  if (kvm) AddEnum(passthrough, "hostPassthroughMigratable", {"on", "off"});
  XmlElement& maximum = cpu.Add("mode");
  maximum.SetAttribute("name", "maximum").SetAttribute("supported", "yes");
  AddEnum(maximum, "maximumMigratable", {"on", "off"});
  // The host-model as libvirt computes it from QEMU's expansion under this virt type;
  // without one (no expansion, a non-native guest) libvirt does not offer the mode.
  const GuestCpuModes* modes = guest->CpuModesFor(virttype);
  XmlElement& host_model = cpu.Add("mode");
  host_model.SetAttribute("name", "host-model");
  if (modes != nullptr && modes->host_model) {
    host_model.SetAttribute("supported", "yes");
    host_model.Add("model", modes->host_model->model).SetAttribute("fallback", "forbid");
    if (!modes->host_model->vendor.empty()) host_model.Add("vendor", modes->host_model->vendor);
    for (const CpuFeaturePolicy& feature : modes->host_model->features) {
      host_model.Add("feature")
          .SetAttribute("policy", feature.policy)
          .SetAttribute("name", feature.name);
    }
  } else {
    host_model.SetAttribute("supported", "no");
  }
  XmlElement& custom = cpu.Add("mode");
  custom.SetAttribute("name", "custom").SetAttribute("supported", "yes");
  // Usability as probed under this virt type; a virt type that was not probed knows
  // the models (the other one's list) but not whether they are usable.
  const GuestCpuModes* listed = modes;
  if (listed == nullptr && !guest->cpu_modes.empty()) listed = &guest->cpu_modes.front();
  if (listed != nullptr) {
    bool known = listed == modes;
    for (const GuestCpuModel& model : listed->models) {
      custom.Add("model", model.name)
          .SetAttribute("usable", known ? (model.usable ? "yes" : "no") : "unknown")
          .SetAttribute("vendor", model.vendor.empty() ? "unknown" : model.vendor);
    }
  }

  // <sev supported='no'/>: nova (MEM_ENCRYPTION_CONTEXT inventory) and KubeVirt (the
  // SEV node label) read it, and libvirt always says it. Said only where SEV surely
  // cannot run a guest: without KVM, or on a host whose SEV is absent or off. Where it
  // is on, libvirt adds QEMU's C-bit position and reduced physical bits, which are not
  // probed: the element is left out rather than half said.
  bool sev_on = false;
  for (const SecureGuestTechnology& technology : caps.secure_guests) {
    sev_on = sev_on || (technology.name == "sev" && technology.enabled.value_or(false));
  }
  if (devices.memory_backing) AddSupported(root, *devices.memory_backing);
  if (!devices.devices.empty()) {
    XmlElement& list = root.Add("devices");
    for (const DomainCapsElement& device : devices.devices) AddSupported(list, device);
  }
  bool sev_no = !kvm || !sev_on;
  if (sev_no || !devices.features_before_sev.empty() || !devices.features_after_sev.empty()) {
    XmlElement& features = root.Add("features");
    for (const DomainCapsElement& feature : devices.features_before_sev) {
      AddSupported(features, feature);
    }
    if (sev_no) features.Add("sev").SetAttribute("supported", "no");
    for (const DomainCapsElement& feature : devices.features_after_sev) {
      AddSupported(features, feature);
    }
  }
  return WriteXml(root);
}

}  // namespace virtcaps
