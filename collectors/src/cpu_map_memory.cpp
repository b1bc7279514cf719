// The remembered CPU maps: libvirt's map is ~80 XML files, which take ~20 M instructions
// to read and parse, and a refresh needs the x86 map twice (host CPU, guest models).
// It changes only when libvirt's package does.
#include <list>
#include <memory>
#include <mutex>

#include "virtcaps/cpu_map.h"
#include "virtcaps/files.h"

namespace virtcaps {

namespace {

// A few maps by (directory, architecture), each with a watch on its directory begun
// before it was read. Only successful reads are kept: a broken map is read (and its
// error reported) every time, until it is fixed. Tests read many fixture maps, so the
// table is small and the oldest entry goes first.
template <typename Map>
class MapMemory {
 public:
  template <typename Read>
  Expected<std::shared_ptr<const Map>> Get(const std::string& dir, const std::string& arch,
                                           Read read) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto entry = entries_.begin(); entry != entries_.end(); ++entry) {
        if (entry->dir != dir || entry->arch != arch) continue;
        if (!entry->changes->Changed()) {
          entries_.splice(entries_.begin(), entries_, entry);  // most recent first
          return entries_.front().map;
        }
        entries_.erase(entry);
        break;
      }
    }
    auto changes = std::make_unique<DirectoryChanges>(dir);
    Expected<Map> map = read();
    if (!map) return map.status();
    auto shared = std::make_shared<const Map>(std::move(map).value());
    // A directory that changed while it was read is not remembered.
    if (!changes->Changed()) {
      std::lock_guard<std::mutex> lock(mutex_);
      entries_.push_front({dir, arch, std::move(changes), shared});
      if (entries_.size() > kEntries) entries_.pop_back();
    }
    return shared;
  }

 private:
  static constexpr size_t kEntries = 4;
  struct Entry {
    std::string dir, arch;
    std::unique_ptr<DirectoryChanges> changes;
    std::shared_ptr<const Map> map;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
};

}  // namespace

Expected<std::shared_ptr<const X86CpuMap>> LoadSharedX86CpuMap(const std::string& dir) {
  static auto* memory = new MapMemory<X86CpuMap>();  // never destroyed: used until exit
  return memory->Get(dir, "x86", [&] { return ReadX86CpuMap(dir); });
}

Expected<X86CpuMap> LoadX86CpuMap(const std::string& dir) {
  auto map = LoadSharedX86CpuMap(dir);
  if (!map) return map.status();
  return **map;
}

Expected<IdCpuMap> LoadIdCpuMap(const std::string& dir, const std::string& map_arch) {
  static auto* memory = new MapMemory<IdCpuMap>();
  auto map = memory->Get(dir, map_arch, [&] { return ReadIdCpuMap(dir, map_arch); });
  if (!map) return map.status();
  return **map;
}

}  // namespace virtcaps
