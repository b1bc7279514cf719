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

std::optional<std::map<unsigned, CpuLayoutMemory::NodeLayout>> CpuLayoutMemory::FindNodes(
    const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!nodes_ || nodes_->first != key) return std::nullopt;
  return nodes_->second;
}

void CpuLayoutMemory::RememberNodes(const std::string& key, std::map<unsigned, NodeLayout> nodes) {
  std::lock_guard<std::mutex> lock(mutex_);
  nodes_.emplace(key, std::move(nodes));
}

std::shared_ptr<const CpuLayoutMemory::KeptCpuinfo> CpuLayoutMemory::FindCpuinfo(
    const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!cpuinfo_ || cpuinfo_->first != key) return nullptr;
  return cpuinfo_->second;
}

void CpuLayoutMemory::RememberCpuinfo(const std::string& key,
                                      std::shared_ptr<const KeptCpuinfo> cpuinfo) {
  std::lock_guard<std::mutex> lock(mutex_);
  cpuinfo_.emplace(key, std::move(cpuinfo));
}

namespace {

// The key, and node/online's text when it could be read.
std::string ReadLayoutKey(const HostPaths& paths, std::optional<std::string>* node_online) {
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
    if (node_online && std::string_view(list) == "devices/system/node/online")
      *node_online = std::move(*text);
  }
  return key;
}

}  // namespace

void CpuLayoutMemory::StartRefresh() {
  std::lock_guard<std::mutex> lock(mutex_);
  key_.reset();
  node_online_.reset();
}

std::string CpuLayoutMemory::Key(const HostPaths& paths) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!key_) key_ = ReadLayoutKey(paths, &node_online_);
  return *key_;
}

std::optional<std::string> CpuLayoutMemory::NodeOnline() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return node_online_;
}

std::string CpuLayoutKey(const HostPaths& paths) { return ReadLayoutKey(paths, nullptr); }

}  // namespace virtcaps
