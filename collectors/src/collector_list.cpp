#include <chrono>

#include "virtcaps/collector.h"
#include "virtcaps/host_checks.h"
#include "virtcaps/hypervisors.h"

namespace virtcaps {

const std::vector<CollectorInfo>& AllCollectors() {
  static const std::vector<CollectorInfo> kCollectors = {
      // Order matters where one collector reads another's results: numa uses the
      // base page size from cpu; secure_guest, virt_role and the checks use cpu and kvm.
      {"cpu", true, MakeCpuCollector},
      {"kvm", true, MakeKvmCollector},
      {"host", true, MakeHostCollector},
      {"numa", true, MakeNumaCollector},
      {"cache", true, MakeCacheCollector},
      {"iommu", true, MakeIommuCollector},
      {"facilities", true, MakeFacilitiesCollector},
      {"secure_guest", true, MakeSecureGuestCollector},
      {"virt_role", true, MakeVirtRoleCollector},
  };
  return kCollectors;
}

std::vector<CollectorDefault> CollectorDefaults() {
  std::vector<CollectorDefault> defaults;
  for (const CollectorInfo& info : AllCollectors()) {
    defaults.push_back({info.name, info.enabled_by_default});
  }
  return defaults;
}

namespace {

void RunTimed(Collector& collector, const CollectContext& context, HostCapabilities& caps) {
  auto start = std::chrono::steady_clock::now();
  Status status = collector.Collect(context, caps);
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  caps.collectors.push_back(
      {std::string(collector.name()), status.ok(), elapsed.count(), status.message()});
}

}  // namespace

HostCapabilities CollectHost(const CollectContext& context) {
  HostCapabilities caps;
  caps.cpu.arch = HostArch(context.paths);
  for (const CollectorInfo& info : AllCollectors()) {
    auto enabled = context.config.collectors.find(info.name);
    if (enabled == context.config.collectors.end() ? !info.enabled_by_default : !enabled->second) {
      continue;
    }
    RunTimed(*info.make(), context, caps);
  }
  // Hypervisors come last: their guests depend on what the host collectors found.
  for (const HypervisorConfig& hypervisor : context.config.hypervisors) {
    if (hypervisor.enabled) RunTimed(*MakeHypervisorCollector(hypervisor), context, caps);
  }
  caps.checks = RunHostChecks(caps);
  SanitizeModelText(caps);  // the one place outside text is made fit for both formats
  return caps;
}

}  // namespace virtcaps
