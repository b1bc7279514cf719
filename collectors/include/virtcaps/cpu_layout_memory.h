// What sysfs says of the CPUs that only hotplug changes, kept across refreshes.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "virtcaps/host_paths.h"
#include "virtcaps/model.h"

namespace virtcaps {

// Every CPU's topology ids and thread siblings, each NUMA node's CPUs and the cache
// banks: some 30 sysfs files per CPU that change only when a CPU or a node is
// plugged or unplugged, and the kernel rewrites cpu/present, cpu/online and
// node/online when that happens. So they are kept under the bytes of those three
// files (CpuLayoutKey) and read again only when one of them reads differently. A
// read that failed is never kept: a broken file is reported every refresh.
class CpuLayoutMemory {
 public:
  struct Topology {
    std::vector<LogicalCpu> cpus;
    std::optional<std::vector<std::vector<unsigned>>> node_cpus;  // ReadNodeCpus
  };

  std::optional<Topology> FindTopology(const std::string& key) const;
  void RememberTopology(const std::string& key, Topology topology);
  // The banks of sysfs's cpuN/cache (before resctrl's controls are added).
  std::optional<std::vector<CacheBank>> FindCaches(const std::string& key) const;
  void RememberCaches(const std::string& key, std::vector<CacheBank> banks);

 private:
  mutable std::mutex mutex_;
  std::optional<std::pair<std::string, Topology>> topology_;
  std::optional<std::pair<std::string, std::vector<CacheBank>>> caches_;
};

// The key the layout is kept under: the sysfs root and the three lists as they read
// now (a missing or unreadable file reads as its own mark). Read it before the
// layout, so a hotplug during the read leaves a key that no longer matches.
std::string CpuLayoutKey(const HostPaths& paths);

}  // namespace virtcaps
