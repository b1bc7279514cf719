// The cache collector: libvirt's <cache> banks (level 3 and up) from each CPU's
// sysfs cache/indexN directories.
#include <algorithm>
#include <map>
#include <tuple>

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

class CacheCollector : public Collector {
 public:
  std::string_view name() const override { return "cache"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    auto online = ReadCpuList(paths.Sys("devices/system/cpu/online"));
    if (!online) return online.status();
    // Banks are shared by several CPUs; the (level, id, type) triple names one bank.
    std::map<std::tuple<unsigned, unsigned, std::string>, CacheBank> banks;
    for (unsigned cpu : *online) {
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
        if (type.empty())
          return Status::Error(dir + "type: unknown cache type '" + *type_text + "'");
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
    for (auto& [key, bank] : banks) caps.caches.push_back(std::move(bank));
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeCacheCollector() { return std::make_unique<CacheCollector>(); }

}  // namespace virtcaps
