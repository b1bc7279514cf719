#include "virtcaps/cpu_layout_memory.h"

#include "virtcaps/files.h"

namespace virtcaps {

std::optional<CpuLayoutMemory::Topology> CpuLayoutMemory::FindTopology(
    const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!topology_ || topology_->first != key) return std::nullopt;
  return topology_->second;
}

void CpuLayoutMemory::RememberTopology(const std::string& key, Topology topology) {
  std::lock_guard<std::mutex> lock(mutex_);
  topology_.emplace(key, std::move(topology));
}

std::optional<std::vector<CacheBank>> CpuLayoutMemory::FindCaches(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!caches_ || caches_->first != key) return std::nullopt;
  return caches_->second;
}

void CpuLayoutMemory::RememberCaches(const std::string& key, std::vector<CacheBank> banks) {
  std::lock_guard<std::mutex> lock(mutex_);
  caches_.emplace(key, std::move(banks));
}

std::string CpuLayoutKey(const HostPaths& paths) {
  std::string key = paths.sysfs;
  for (const char* list :
       {"devices/system/cpu/present", "devices/system/cpu/online", "devices/system/node/online"}) {
    // Length-prefixed, so no two sets of contents make the same key; "-" is unreadable.
    auto text = ReadValue(paths.Sys(list));
    if (!text) {
      key.append(" -");
      continue;
    }
    key.append(" ").append(std::to_string(text->size())).append(":").append(*text);
  }
  return key;
}

}  // namespace virtcaps
