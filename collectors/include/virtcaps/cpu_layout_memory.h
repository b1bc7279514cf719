// What sysfs says of the CPUs that only hotplug changes, kept across refreshes.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "virtcaps/cpuinfo.h"
#include "virtcaps/host_paths.h"
#include "virtcaps/model.h"

namespace virtcaps {

// Every CPU's topology ids and thread siblings, each NUMA node's CPUs and the cache
// banks: some 30 sysfs files per CPU that change only when a CPU or a node is
// plugged or unplugged, and the kernel rewrites cpu/present, cpu/online and
// node/online when that happens. So they are kept under the bytes of those three
// files (CpuLayoutKey) and read again only when one of them reads differently. A
// read that failed is never kept: a broken file is reported every refresh.
// /proc/cpuinfo is kept the same way, with CPU 0's microcode revision added to the key:
// what it says of the CPUs changes only with a hotplug or a microcode update.
class CpuLayoutMemory {
 public:
  struct Topology {
    std::vector<LogicalCpu> cpus;
    std::optional<std::vector<std::vector<unsigned>>> node_cpus;  // ReadNodeCpus
  };
  // What a NUMA node's directory says that only a hotplug changes.
  struct NodeLayout {
    std::vector<std::pair<unsigned, unsigned>> distances;  // (node, distance)
    std::vector<unsigned> cpus;                            // nodeN/cpulist (or cpumap)
    bool operator==(const NodeLayout& other) const {
      return distances == other.distances && cpus == other.cpus;
    }
  };

  // The three lists are read once per refresh: StartRefresh() forgets the last
  // reading and the first Key() of the refresh reads them.
  void StartRefresh();
  std::string Key(const HostPaths& paths);
  // node/online as this refresh's Key() read it; nullopt when it could not be read.
  std::optional<std::string> NodeOnline() const;

  std::optional<Topology> FindTopology(const std::string& key) const;
  void RememberTopology(const std::string& key, Topology topology);
  // The banks of sysfs's cpuN/cache (before resctrl's controls are added).
  std::optional<std::vector<CacheBank>> FindCaches(const std::string& key) const;
  void RememberCaches(const std::string& key, std::vector<CacheBank> banks);
  // /proc/cpuinfo as parsed, trimmed to its first processor (all Cpuinfo::Get reads),
  // how many processors it listed and its feature flags as the model lists them
  // (sorted, unique, valid names). Shared, not copied, by the refreshes that use it.
  struct KeptCpuinfo {
    Cpuinfo first;
    unsigned processors = 0;
    std::vector<std::string> features;
  };
  std::shared_ptr<const KeptCpuinfo> FindCpuinfo(const std::string& key) const;
  void RememberCpuinfo(const std::string& key, std::shared_ptr<const KeptCpuinfo> cpuinfo);
  // Every online node's layout, by id.
  std::optional<std::map<unsigned, NodeLayout>> FindNodes(const std::string& key) const;
  void RememberNodes(const std::string& key, std::map<unsigned, NodeLayout> nodes);

 private:
  mutable std::mutex mutex_;
  std::optional<std::string> key_;  // this refresh's
  std::optional<std::string> node_online_;
  std::optional<std::pair<std::string, Topology>> topology_;
  std::optional<std::pair<std::string, std::vector<CacheBank>>> caches_;
  std::optional<std::pair<std::string, std::map<unsigned, NodeLayout>>> nodes_;
  std::optional<std::pair<std::string, std::shared_ptr<const KeptCpuinfo>>> cpuinfo_;
};

// The key the layout is kept under: the sysfs root and the three lists as they read
// now (a missing or unreadable file reads as its own mark). Read it before the
// layout, so a hotplug during the read leaves a key that no longer matches.
std::string CpuLayoutKey(const HostPaths& paths);

}  // namespace virtcaps
