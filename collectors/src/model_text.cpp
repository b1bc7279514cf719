// The model boundary for text: every string a collector stored (from host files,
// CPUID, emulators, the cache) is made fit for XML 1.0 and the Prometheus text format
// here, once, so neither renderer has to second-guess it.
#include "virtcaps/model.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

void Clean(std::string& text) { SanitizeInPlace(text); }

void Clean(std::vector<std::string>& texts) {
  for (std::string& text : texts) Clean(text);
}

void Clean(std::vector<std::pair<std::string, bool>>& pairs) {
  for (auto& pair : pairs) Clean(pair.first);
}

void Clean(std::vector<GuestMachine>& machines) {
  for (GuestMachine& machine : machines) {
    Clean(machine.name);
    Clean(machine.canonical);
  }
}

}  // namespace

void SanitizeModelText(HostCapabilities& caps) {
  Clean(caps.uuid);
  Clean(caps.kernel_release);
  HostCpu& cpu = caps.cpu;
  Clean(cpu.arch), Clean(cpu.vendor), Clean(cpu.vendor_id), Clean(cpu.model_name);
  Clean(cpu.features);
  Clean(cpu.virtualization.extension), Clean(cpu.virtualization.firmware_evidence);
  Clean(caps.kvm.modules), Clean(caps.kvm.provider), Clean(caps.kvm.problem);
  for (CacheBank& bank : caps.caches) Clean(bank.type);
  if (caps.iommu) Clean(caps.iommu->firmware_tables);
  for (SecurityModel& model : caps.secmodels) Clean(model.model), Clean(model.doi);
  if (caps.facilities) {
    Clean(caps.facilities->devices);
    Clean(caps.facilities->cgroup_controllers);
    Clean(caps.facilities->namespaces);
  }
  for (SecureGuestTechnology& tech : caps.secure_guests) Clean(tech.name), Clean(tech.detail);
  if (caps.virt_role) {
    Clean(caps.virt_role->hypervisor), Clean(caps.virt_role->evidence);
    Clean(caps.virt_role->role);
  }
  for (HostCheck& check : caps.checks) {
    Clean(check.driver), Clean(check.name), Clean(check.title), Clean(check.severity);
    Clean(check.note);
  }
  for (Guest& guest : caps.guests) {
    Clean(guest.hypervisor), Clean(guest.os_type), Clean(guest.arch), Clean(guest.emulator);
    Clean(guest.loader);
    Clean(guest.machines);
    for (GuestDomain& domain : guest.domains) {
      Clean(domain.type), Clean(domain.emulator);
      Clean(domain.machines);
    }
    for (GuestFeature& feature : guest.features) Clean(feature.name);
  }
  if (caps.qemu_firmware) {
    for (FirmwareDescriptor& descriptor : caps.qemu_firmware->descriptors) {
      Clean(descriptor.path), Clean(descriptor.executable), Clean(descriptor.nvram_template);
      Clean(descriptor.interfaces), Clean(descriptor.features);
      for (FirmwareTarget& target : descriptor.targets) Clean(target.machines);
    }
    for (FirmwareDescriptorProblem& problem : caps.qemu_firmware->invalid)
      Clean(problem.path), Clean(problem.reason);
    for (FirmwareDescriptorProblem& problem : caps.qemu_firmware->ignored)
      Clean(problem.path), Clean(problem.reason);
    Clean(caps.qemu_firmware->masked), Clean(caps.qemu_firmware->legacy_loaders);
  }
  for (HypervisorStatus& status : caps.hypervisors) {
    Clean(status.name), Clean(status.detail), Clean(status.version);
  }
  for (CollectorOutcome& outcome : caps.collectors) Clean(outcome.name), Clean(outcome.error);
}

}  // namespace virtcaps
