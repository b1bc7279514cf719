// The numa collector: libvirt's <topology><cells>: per node memory, page pools,
// distances and CPUs with their socket/die/core ids and thread siblings; plus the
// host-wide huge page pools.
#include <algorithm>

#include "sysfs_values.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// Huge page pools under `dir` (sys/kernel/mm/hugepages or nodeN/hugepages), by size.
Expected<std::vector<PagePool>> ReadHugePagePools(const std::string& dir) {
  std::vector<PagePool> pools;
  auto sizes = ListHugePageDirs(dir);
  if (!sizes) return sizes.status();
  for (const auto& [size_kib, pool_dir] : *sizes) {
    PagePool pool;
    pool.size_kib = size_kib;
    auto total = ReadUint(pool_dir + "/nr_hugepages");
    if (!total) return total.status();
    pool.total = *total;
    if (PathExists(pool_dir + "/free_hugepages")) {
      auto free = ReadUint(pool_dir + "/free_hugepages");
      if (!free) return free.status();
      pool.free = *free;
    }
    pools.push_back(pool);
  }
  std::sort(pools.begin(), pools.end(),
            [](const PagePool& a, const PagePool& b) { return a.size_kib < b.size_kib; });
  return pools;
}

// "Node 0 MemTotal:       16309284 kB" in nodeN/meminfo, or "MemTotal: ... kB" in /proc/meminfo.
Expected<uint64_t> ReadMemTotalKib(const std::string& path) {
  auto text = ReadFile(path);
  if (!text) return text.status();
  for (std::string_view line : Split(*text, '\n')) {
    size_t at = line.find("MemTotal:");
    if (at == std::string_view::npos) continue;
    auto words = SplitWhitespace(line.substr(at + 9));
    auto value = words.empty() ? std::nullopt : ParseUint(words[0]);
    if (!value || words.size() != 2 || words[1] != "kB")
      return Status::Error(path + ": bad MemTotal line");
    return *value;
  }
  return Status::Error(path + ": no MemTotal");
}

Expected<CellCpu> ReadCellCpu(const HostPaths& paths, unsigned id) {
  CellCpu cpu;
  cpu.id = id;
  std::string dir = paths.Sys("devices/system/cpu/cpu" + std::to_string(id) + "/topology/");
  if (!IsDirectory(dir)) return cpu;  // offline CPUs have no topology: listed by id only
  auto read_id = [&](const char* file, std::optional<unsigned>& out, bool required) -> Status {
    auto text = ReadValue(dir + file);
    if (!text) return required ? text.status() : Status();
    auto value = ParseInt(*text);
    if (!value)
      return Status::Error(dir + file + ": not an integer: '" + text->substr(0, 40) + "'");
    out = static_cast<unsigned>(
        std::max<int64_t>(*value, 0));  // -1 means "not reported": 0, as libvirt
    return Status();
  };
  if (Status s = read_id("physical_package_id", cpu.socket_id, true); !s.ok()) return s;
  if (Status s = read_id("die_id", cpu.die_id, false); !s.ok()) return s;
  if (Status s = read_id("core_id", cpu.core_id, true); !s.ok()) return s;
  if (!cpu.die_id) cpu.die_id = 0;
  auto siblings = ReadCpuList(dir + "thread_siblings_list");
  if (!siblings) return siblings.status();
  cpu.siblings = *siblings;
  return cpu;
}

Status ReadCell(const HostPaths& paths, unsigned id, const std::vector<unsigned>& node_ids,
                uint64_t base_page_kib, NumaCell& cell) {
  cell.id = id;
  std::string dir = paths.Sys("devices/system/node/node" + std::to_string(id) + "/");
  auto memory = ReadMemTotalKib(dir + "meminfo");
  if (!memory) return memory.status();
  cell.memory_kib = *memory;

  auto huge = ReadHugePagePools(dir + "hugepages");
  if (!huge) return huge.status();
  // libvirt reports the base pages left once the huge page pools are taken out.
  uint64_t huge_kib = 0;
  for (const PagePool& pool : *huge) huge_kib += pool.size_kib * pool.total;
  PagePool base;
  base.size_kib = base_page_kib;
  base.total = *memory > huge_kib ? (*memory - huge_kib) / base_page_kib : 0;
  cell.pages.push_back(base);
  cell.pages.insert(cell.pages.end(), huge->begin(), huge->end());

  if (auto distance = ReadValue(dir + "distance")) {
    auto values = SplitWhitespace(*distance);
    if (values.size() != node_ids.size())
      return Status::Error(dir + "distance: expected one value per node");
    for (size_t i = 0; i < values.size(); ++i) {
      auto value = ParseUint(values[i]);
      if (!value || *value > 255) return Status::Error(dir + "distance: bad value");
      cell.distances.emplace_back(node_ids[i], static_cast<unsigned>(*value));
    }
  }

  auto cpus = ReadCpuList(dir + "cpulist");
  if (!cpus) return cpus.status();
  for (unsigned cpu_id : *cpus) {
    auto cpu = ReadCellCpu(paths, cpu_id);
    if (!cpu) return cpu.status();
    cell.cpus.push_back(*cpu);
  }
  return Status();
}

class NumaCollector : public Collector {
 public:
  std::string_view name() const override { return "numa"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    auto host_pools = ReadHugePagePools(paths.Sys("kernel/mm/hugepages"));
    if (!host_pools) return host_pools.status();
    caps.hugepages = *host_pools;
    uint64_t base_page_kib = caps.cpu.page_sizes_kib.empty() ? 4 : caps.cpu.page_sizes_kib.front();

    std::string online_path = paths.Sys("devices/system/node/online");
    if (!PathExists(online_path)) return CollectWithoutNuma(paths, base_page_kib, caps);
    auto nodes = ReadCpuList(online_path);
    if (!nodes) return nodes.status();
    if (nodes->empty()) return Status::Error(online_path + ": no node online");
    for (unsigned id : *nodes) {
      NumaCell cell;
      Status status = ReadCell(paths, id, *nodes, base_page_kib, cell);
      caps.cells.push_back(std::move(cell));
      if (!status.ok()) return status;
    }
    return Status();
  }

 private:
  // Without NUMA sysfs libvirt shows one cell holding every CPU and all memory.
  static Status CollectWithoutNuma(const HostPaths& paths, uint64_t base_page_kib,
                                   HostCapabilities& caps) {
    NumaCell cell;
    auto memory = ReadMemTotalKib(paths.Proc("meminfo"));
    if (!memory) return memory.status();
    cell.memory_kib = *memory;
    uint64_t huge_kib = 0;
    for (const PagePool& pool : caps.hugepages) huge_kib += pool.size_kib * pool.total;
    cell.pages.push_back(
        {base_page_kib, (*memory > huge_kib ? *memory - huge_kib : 0) / base_page_kib, {}});
    cell.pages.insert(cell.pages.end(), caps.hugepages.begin(), caps.hugepages.end());
    std::vector<unsigned> cpus;
    if (std::string online = paths.Sys("devices/system/cpu/online"); PathExists(online)) {
      auto list = ReadCpuList(online);
      if (!list) return list.status();
      cpus = *list;
    }
    for (unsigned id : cpus) {
      auto cpu = ReadCellCpu(paths, id);
      if (!cpu) return cpu.status();
      cell.cpus.push_back(*cpu);
    }
    caps.cells.push_back(std::move(cell));
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeNumaCollector() { return std::make_unique<NumaCollector>(); }

}  // namespace virtcaps
