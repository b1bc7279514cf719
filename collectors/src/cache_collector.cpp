// The cache collector: libvirt's <cache> banks (level 3 and up) from each CPU's
// sysfs cache/indexN directories, with resctrl's allocation and monitoring
// (<control>, <monitor>, <memory_bandwidth>) when /sys/fs/resctrl is mounted.
#include <algorithm>
#include <map>
#include <tuple>

#include "cpu_topology.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// "32768K" / "32M" / "1024" (bytes) as the kernel prints cache sizes.
std::optional<uint64_t> ParseCacheSize(std::string_view text) {
  text = Trim(text);
  uint64_t multiplier = 1;
  if (!text.empty() && (text.back() == 'K' || text.back() == 'M' || text.back() == 'G')) {
    multiplier = text.back() == 'K' ? 1024 : text.back() == 'M' ? 1024 * 1024 : 1024 * 1024 * 1024;
    text.remove_suffix(1);
  }
  auto value = ParseUint(text);
  if (!value) return std::nullopt;
  return *value * multiplier;
}

// One allocation scope of resctrl's info/L<level>[CODE|DATA] directory.
struct ResctrlCacheInfo {
  unsigned level = 0;
  std::string type;   // both, code, data
  unsigned bits = 0;  // set bits of cbm_mask
  unsigned min_cbm_bits = 0;
  unsigned num_closids = 0;
};

struct ResctrlInfo {
  bool mounted = false;  // <sysfs>/fs/resctrl/info exists
  std::vector<ResctrlCacheInfo> caches;
  std::optional<MemoryBandwidthNode> bandwidth;  // info/MB, without id and cpus
  std::optional<ResctrlMonitor> monitor;         // info/L3_MON, every feature
};

Expected<unsigned> ReadSmallUint(const std::string& path) {
  auto value = ReadUint(path);
  if (!value) return value.status();
  if (*value > 0xffffffffu) return Status::Error(path + ": value out of range");
  return static_cast<unsigned>(*value);
}

// resctrl's info directory as the kernel's Documentation/arch/x86/resctrl.rst lays
// it out, read by libvirt's rules (virresctrl.c): directories named L<level> with no
// suffix (both), CODE or DATA (CDP on), MB (memory bandwidth), L3_MON (monitoring).
Expected<ResctrlInfo> ReadResctrlInfo(const std::string& info_dir) {
  ResctrlInfo info;
  if (!IsDirectory(info_dir)) return info;
  info.mounted = true;
  auto entries = ListDirectory(info_dir);
  if (!entries) return entries.status();
  for (const std::string& entry : *entries) {
    if (entry.size() < 2 || entry[0] != 'L') continue;
    size_t digits = entry.find_first_not_of("0123456789", 1);
    std::string_view suffix =
        digits == std::string::npos ? std::string_view() : std::string_view(entry).substr(digits);
    auto level = ParseUint(std::string_view(entry).substr(
        1, digits == std::string::npos ? std::string::npos : digits - 1));
    std::string type = suffix.empty()     ? "both"
                       : suffix == "CODE" ? "code"
                       : suffix == "DATA" ? "data"
                                          : "";
    if (!level || type.empty()) continue;  // L3_MON and other suffixes are not allocation
    std::string dir = info_dir + "/" + entry + "/";
    ResctrlCacheInfo cache;
    cache.level = static_cast<unsigned>(*level);
    cache.type = type;
    if (PathExists(dir + "num_closids")) {
      auto closids = ReadSmallUint(dir + "num_closids");
      if (!closids) return closids.status();
      cache.num_closids = *closids;
    }
    auto mask_text = ReadValue(dir + "cbm_mask");
    if (!mask_text) return mask_text.status();
    auto mask = ParseUint(*mask_text, 16);
    if (!mask || *mask == 0)
      return Status::Error(dir + "cbm_mask: bad mask '" + mask_text->substr(0, 20) + "'");
    cache.bits = static_cast<unsigned>(__builtin_popcountll(*mask));
    auto min_bits = ReadSmallUint(dir + "min_cbm_bits");
    if (!min_bits) return min_bits.status();
    cache.min_cbm_bits = *min_bits;
    info.caches.push_back(cache);
  }
  // libvirt's order within a level: both, code, data.
  auto rank = [](const std::string& type) { return type == "both" ? 0 : type == "code" ? 1 : 2; };
  std::sort(info.caches.begin(), info.caches.end(),
            [&](const ResctrlCacheInfo& a, const ResctrlCacheInfo& b) {
              return std::make_pair(a.level, rank(a.type)) < std::make_pair(b.level, rank(b.type));
            });

  if (std::string mb = info_dir + "/MB/"; PathExists(mb + "bandwidth_gran")) {
    MemoryBandwidthNode bandwidth;
    auto granularity = ReadSmallUint(mb + "bandwidth_gran");
    if (!granularity) return granularity.status();
    auto min = ReadSmallUint(mb + "min_bandwidth");
    if (!min) return min.status();
    auto closids = ReadSmallUint(mb + "num_closids");
    if (!closids) return closids.status();
    bandwidth.granularity_percent = *granularity;
    bandwidth.min_percent = *min;
    bandwidth.max_allocs = *closids;
    info.bandwidth = bandwidth;
  }

  if (std::string mon = info_dir + "/L3_MON/"; PathExists(mon + "num_rmids")) {
    ResctrlMonitor monitor;
    auto rmids = ReadSmallUint(mon + "num_rmids");
    if (!rmids) return rmids.status();
    monitor.max_monitors = *rmids;
    monitor.level = 3;  // the kernel monitors the L3 cache only
    if (PathExists(mon + "max_threshold_occupancy")) {
      auto threshold = ReadUint(mon + "max_threshold_occupancy");
      if (!threshold) return threshold.status();
      monitor.reuse_threshold = *threshold;
    }
    auto features = ReadValue(mon + "mon_features");
    if (!features) return features.status();
    for (std::string_view feature : SplitWhitespace(*features))
      monitor.features.emplace_back(feature);
    if (monitor.features.empty()) return Status::Error(mon + "mon_features: empty");
    info.monitor = monitor;
  }
  return info;
}

// The monitor features with one prefix (llc_ for the cache, mbm_ for memory bandwidth).
std::optional<ResctrlMonitor> MonitorWithPrefix(const ResctrlMonitor& all, std::string_view prefix,
                                                bool cache) {
  ResctrlMonitor monitor = all;
  monitor.features.clear();
  for (const std::string& feature : all.features) {
    if (feature.rfind(prefix, 0) == 0) monitor.features.push_back(feature);
  }
  if (monitor.features.empty()) return std::nullopt;
  if (!cache) {
    monitor.level.reset();
    monitor.reuse_threshold.reset();
  } else if (!monitor.reuse_threshold) {
    monitor.reuse_threshold = 0;
  }
  return monitor;
}

// libvirt's <control> elements for one bank: one per resctrl scope of its level.
Status AddControls(const std::vector<ResctrlCacheInfo>& scopes, CacheBank& bank) {
  for (const ResctrlCacheInfo& scope : scopes) {
    if (scope.level != bank.level) continue;
    CacheControl control;
    control.granularity_bytes = bank.size_bytes / scope.bits;
    if (scope.min_cbm_bits != 1) control.min_bytes = scope.min_cbm_bits * control.granularity_bytes;
    control.type = scope.type;
    control.max_allocs = scope.num_closids;
    bank.controls.push_back(control);
  }
  return Status();
}

// sysfs's level 3+ cache banks of the online CPUs (cpuN/cache/indexN), ascending.
Expected<std::vector<CacheBank>> ReadCacheBanks(const HostPaths& paths,
                                                const std::vector<unsigned>& online) {
  // Banks are shared by several CPUs; the (level, id, type) triple names one bank.
  std::map<std::tuple<unsigned, unsigned, std::string>, CacheBank> banks;
  for (unsigned cpu : online) {
    std::string cache_dir = paths.Sys("devices/system/cpu/cpu" + std::to_string(cpu) + "/cache");
    if (!IsDirectory(cache_dir)) continue;
    auto entries = ListDirectory(cache_dir);
    if (!entries) return entries.status();
    for (const std::string& entry : *entries) {
      if (entry.rfind("index", 0) != 0) continue;
      std::string dir = cache_dir + "/" + entry + "/";
      auto level = ReadUint(dir + "level");
      if (!level) return level.status();
      if (*level < 3) continue;
      // Kernels before 4.15 have no cache id; libvirt cannot name such banks either.
      if (!PathExists(dir + "id")) continue;
      auto id = ReadUint(dir + "id");
      if (!id) return id.status();
      auto type_text = ReadValue(dir + "type");
      if (!type_text) return type_text.status();
      std::string type = *type_text == "Unified"       ? "both"
                         : *type_text == "Instruction" ? "code"
                         : *type_text == "Data"        ? "data"
                                                       : "";
      if (type.empty()) return Status::Error(dir + "type: unknown cache type '" + *type_text + "'");
      auto size_text = ReadValue(dir + "size");
      if (!size_text) return size_text.status();
      auto size = ParseCacheSize(*size_text);
      if (!size) return Status::Error(dir + "size: bad size '" + *size_text + "'");
      auto shared = ReadCpuList(dir + "shared_cpu_list");
      if (!shared) return shared.status();
      CacheBank& bank = banks[{static_cast<unsigned>(*level), static_cast<unsigned>(*id), type}];
      bank.level = static_cast<unsigned>(*level);
      bank.id = static_cast<unsigned>(*id);
      bank.type = type;
      bank.size_bytes = *size;
      bank.cpus = *shared;
    }
  }
  std::vector<CacheBank> result;
  for (auto& [key, bank] : banks) result.push_back(std::move(bank));
  return result;
}

// The online CPUs: this refresh's topology read, or our own read of them. A read made
// to be remembered is our own, made after its key, so that a CPU plugged in between
// cannot leave banks kept under a key they do not belong to.
Expected<std::vector<unsigned>> OnlineCpus(const HostPaths& paths, const HostCpu& cpu,
                                           bool to_remember) {
  std::vector<LogicalCpu> own_read;
  if (!cpu.logical_cpus_read || to_remember) {
    auto read = ReadLogicalCpus(paths, cpu.present_cpus);
    if (!read) return read.status();
    own_read = std::move(*read);
  }
  std::vector<unsigned> online;
  for (const LogicalCpu& logical : own_read.empty() ? cpu.logical_cpus : own_read)
    if (logical.online) online.push_back(logical.id);
  return online;
}

class CacheCollector : public Collector {
 public:
  std::string_view name() const override { return "cache"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    // Banks change only with a CPU hotplug (see CpuLayoutMemory).
    CpuLayoutMemory* memory = context.cpu_layout_memory;
    std::string key;
    std::optional<std::vector<CacheBank>> banks;
    if (memory) {
      key = memory->Key(paths);
      banks = memory->FindCaches(key);
    }
    if (!banks) {
      auto online = OnlineCpus(paths, caps.cpu, memory != nullptr);
      if (!online) return online.status();
      auto read = ReadCacheBanks(paths, *online);
      if (!read) return read.status();
      banks = std::move(*read);
      if (memory) memory->RememberCaches(key, *banks);
    }
    caps.caches = std::move(*banks);

    // Resource control (Intel RDT / AMD PQoS) through a mounted resctrl file system.
    auto resctrl = ReadResctrlInfo(paths.Sys("fs/resctrl/info"));
    if (!resctrl) return resctrl.status();
    for (CacheBank& bank : caps.caches) AddControls(resctrl->caches, bank);
    if (resctrl->bandwidth) {
      // Memory bandwidth is allocated per last-level cache, as libvirt lists it.
      unsigned last_level = 0;
      for (const CacheBank& bank : caps.caches) last_level = std::max(last_level, bank.level);
      for (const CacheBank& bank : caps.caches) {
        if (bank.level != last_level) continue;
        MemoryBandwidthNode node = *resctrl->bandwidth;
        node.id = bank.id;
        node.cpus = bank.cpus;
        caps.memory_bandwidth.push_back(node);
      }
    }
    if (resctrl->monitor) {
      caps.cache_monitor = MonitorWithPrefix(*resctrl->monitor, "llc_", true);
      if (!caps.memory_bandwidth.empty())
        caps.memory_bandwidth_monitor = MonitorWithPrefix(*resctrl->monitor, "mbm_", false);
    }
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeCacheCollector() { return std::make_unique<CacheCollector>(); }

}  // namespace virtcaps
