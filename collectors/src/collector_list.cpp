#include <chrono>

#include "virtcaps/collector.h"
#include "virtcaps/cpu_vocabulary.h"
#include "virtcaps/files.h"
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

// Caps on the model's lists, far above any real host (Linux allows 1024 NUMA nodes and
// 8192 CPUs on x86; x86 has ~300 CPU flags; QEMU has ~30 targets): a collector that
// fills one past its cap fails, and what it added to that list is dropped, rather than
// rendering a multi-megabyte document.
constexpr size_t kMaxGuests = 256;
constexpr size_t kMaxMachinesPerGuest = 65536;
constexpr size_t kMaxCells = 1024;
constexpr size_t kMaxCellCpus = 16384;  // over all cells
constexpr size_t kMaxFeatures = 4096;
constexpr size_t kMaxCacheBanks = 16384;

template <typename List>
Status CapList(List& list, size_t before, size_t limit, const char* what) {
  if (list.size() <= limit) return Status();
  Status error = Status::Error(std::string(what) + ": " + std::to_string(list.size()) +
                               " entries, more than the limit of " + std::to_string(limit));
  list.resize(std::min(before, limit));
  return error;
}

// How long the capped lists were before a collector ran.
struct ListSizes {
  size_t guests, cells, features, caches;
  explicit ListSizes(const HostCapabilities& caps)
      : guests(caps.guests.size()),
        cells(caps.cells.size()),
        features(caps.cpu.features.size()),
        caches(caps.caches.size()) {}
};

Status CapModelLists(HostCapabilities& caps, const ListSizes& before) {
  Status status = CapList(caps.guests, before.guests, kMaxGuests, "guests");
  for (Guest& guest : caps.guests) {
    if (guest.machines.size() > kMaxMachinesPerGuest && status.ok()) {
      status = CapList(guest.machines, 0, kMaxMachinesPerGuest, "machines of a guest");
    }
  }
  if (Status cells = CapList(caps.cells, before.cells, kMaxCells, "NUMA cells"); status.ok()) {
    status = cells;
  }
  size_t cpus = 0;
  for (const NumaCell& cell : caps.cells) cpus += cell.cpus.size();
  if (cpus > kMaxCellCpus && status.ok()) {
    status = Status::Error("NUMA cell CPUs: " + std::to_string(cpus) +
                           " entries, more than the limit of " + std::to_string(kMaxCellCpus));
    caps.cells.resize(before.cells);
  }
  if (Status features = CapList(caps.cpu.features, before.features, kMaxFeatures, "CPU features");
      status.ok()) {
    status = features;
  }
  if (Status banks = CapList(caps.caches, before.caches, kMaxCacheBanks, "cache banks");
      status.ok()) {
    status = banks;
  }
  return status;
}

void RunTimed(Collector& collector, const CollectContext& context, HostCapabilities& caps) {
  auto start = std::chrono::steady_clock::now();
  ListSizes before(caps);
  Status status = collector.Collect(context, caps);
  // Both are reported: a collector that failed for one reason may also have overflowed a list.
  if (Status capped = CapModelLists(caps, before); !capped.ok()) {
    status = status.ok() ? capped : Status::Error(status.message() + "; " + capped.message());
  }
  std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  caps.collectors.push_back(
      {std::string(collector.name()), status.ok(), elapsed.count(), status.message()});
}

}  // namespace

HostCapabilities CollectHost(const CollectContext& given) {
  LazyX86CpuMap x86_cpu_map(given.paths.Root(given.config.host.cpu_map_dir));
  CollectContext context = given;
  if (context.x86_cpu_map == nullptr) context.x86_cpu_map = &x86_cpu_map;
  if (context.cpu_layout_memory) context.cpu_layout_memory->StartRefresh();
  ReadBudget budget(static_cast<size_t>(context.config.host.read_budget_bytes));
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
