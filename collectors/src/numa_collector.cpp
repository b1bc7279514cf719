// The numa collector: libvirt's <topology><cells>: per node memory, page pools,
// distances and CPUs with their socket/die/core ids and thread siblings; plus the
// host-wide huge page pools.
#include <algorithm>
#include <map>
#include <optional>

#include "cpu_topology.h"

#include "sysfs_values.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// Huge page pools of the given sizes under `dir` (sys/kernel/mm/hugepages or
// nodeN/hugepages), ascending; a size the directory lacks is left out.
Expected<std::vector<PagePool>> ReadHugePagePools(const std::string& dir,
                                                  const std::vector<uint64_t>& sizes_kib) {
  std::vector<PagePool> pools;
  for (uint64_t size_kib : sizes_kib) {
    std::string pool_dir = dir + "/hugepages-" + std::to_string(size_kib) + "kB";
    PagePool pool;
    pool.size_kib = size_kib;
    // Read first, asked whether it exists only when a read fails: two lookups of a deep
    // sysfs path fewer per pool and refresh.
    auto total = ReadUint(pool_dir + "/nr_hugepages");
    if (!total) {
      if (!IsDirectory(pool_dir)) continue;  // the size this node lacks
      return total.status();
    }
    pool.total = *total;
    auto free = ReadUint(pool_dir + "/free_hugepages");
    if (free) {
      pool.free = *free;
    } else if (PathExists(pool_dir + "/free_hugepages")) {
      return free.status();
    }
    pools.push_back(pool);
  }
  return pools;
}

// The huge page sizes of this refresh: the cpu collector's listing when it made one,
// else one listing here. Nodes offer the same sizes as the host.
Expected<std::vector<uint64_t>> HugePageSizes(const HostPaths& paths, const HostCpu& cpu) {
  if (cpu.huge_page_sizes_listed && !cpu.page_sizes_kib.empty())
    return std::vector<uint64_t>(cpu.page_sizes_kib.begin() + 1, cpu.page_sizes_kib.end());
  auto listed = ListHugePageDirs(paths.Sys("kernel/mm/hugepages"));
  if (!listed) return listed.status();
  std::vector<uint64_t> sizes;
  for (const auto& [size_kib, dir] : *listed) sizes.push_back(size_kib);
  return sizes;
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

CellCpu ToCellCpu(const LogicalCpu& logical) {
  CellCpu cpu;
  cpu.id = logical.id;
  cpu.socket_id = logical.socket_id;
  cpu.die_id = logical.die_id;
  cpu.core_id = logical.core_id;
  cpu.siblings = logical.siblings;
  return cpu;
}

// What one refresh knows of every CPU, by id: the online ones go into the cells.
struct CpuIndex {
  std::map<unsigned, const LogicalCpu*> online;
  void Add(const std::vector<LogicalCpu>& cpus) {
    for (const LogicalCpu& cpu : cpus)
      if (cpu.online) online[cpu.id] = &cpu;
  }
};

// nodeN's distances and CPUs: only a hotplug changes them (CpuLayoutMemory).
Expected<CpuLayoutMemory::NodeLayout> ReadNodeLayout(const std::string& dir,
                                                     const std::vector<unsigned>& node_ids) {
  CpuLayoutMemory::NodeLayout layout;
  if (auto distance = ReadValue(dir + "distance")) {
    auto values = SplitWhitespace(*distance);
    if (values.size() != node_ids.size())
      return Status::Error(dir + "distance: expected one value per node");
    for (size_t i = 0; i < values.size(); ++i) {
      auto value = ParseUint(values[i]);
      if (!value || *value > 255) return Status::Error(dir + "distance: bad value");
      layout.distances.emplace_back(node_ids[i], static_cast<unsigned>(*value));
    }
  }

  // nodeN/cpulist, or the cpumap mask on kernels before 2.6.26.
  Expected<std::vector<unsigned>> cpus = std::vector<unsigned>{};
  if (PathExists(dir + "cpulist") || !PathExists(dir + "cpumap")) {
    cpus = ReadCpuList(dir + "cpulist");
  } else if (auto mask = ReadValue(dir + "cpumap"); !mask) {
    cpus = mask.status();
  } else if (auto parsed = ParseCpuMask(*mask)) {
    cpus = *parsed;
  } else {
    cpus = Status::Error(dir + "cpumap: bad cpu mask '" + mask->substr(0, 40) + "'");
  }
  if (!cpus) return cpus.status();
  layout.cpus = std::move(*cpus);
  return layout;
}

// One cell. `layout` is the node's kept layout, or empty and then read (and set).
Status ReadCell(const HostPaths& paths, unsigned id, const std::vector<unsigned>& node_ids,
                uint64_t base_page_kib, const std::vector<uint64_t>& huge_sizes,
                const CpuIndex& cpus_by_id, std::optional<CpuLayoutMemory::NodeLayout>& layout,
                NumaCell& cell) {
  cell.id = id;
  std::string dir = paths.Sys("devices/system/node/node" + std::to_string(id) + "/");
  auto memory = ReadMemTotalKib(dir + "meminfo");
  if (!memory) return memory.status();
  cell.memory_kib = *memory;

  auto huge = ReadHugePagePools(dir + "hugepages", huge_sizes);
  if (!huge) return huge.status();
  // libvirt reports the base pages left once the huge page pools are taken out.
  uint64_t huge_kib = 0;
  for (const PagePool& pool : *huge) huge_kib += pool.size_kib * pool.total;
  PagePool base;
  base.size_kib = base_page_kib;
  base.total = *memory > huge_kib ? (*memory - huge_kib) / base_page_kib : 0;
  cell.pages.push_back(base);
  cell.pages.insert(cell.pages.end(), huge->begin(), huge->end());

  if (!layout) {
    auto read = ReadNodeLayout(dir, node_ids);
    if (!read) return read.status();
    layout = std::move(*read);
  }
  cell.distances = layout->distances;
  // Offline CPUs stay out of the cells, whatever the node's list says.
  for (unsigned cpu_id : layout->cpus) {
    auto found = cpus_by_id.online.find(cpu_id);
    if (found != cpus_by_id.online.end()) cell.cpus.push_back(ToCellCpu(*found->second));
  }
  return Status();
}

class NumaCollector : public Collector {
 public:
  std::string_view name() const override { return "numa"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    auto huge_sizes = HugePageSizes(paths, caps.cpu);
    if (!huge_sizes) return huge_sizes.status();
    auto host_pools = ReadHugePagePools(paths.Sys("kernel/mm/hugepages"), *huge_sizes);
    if (!host_pools) return host_pools.status();
    caps.hugepages = *host_pools;
    uint64_t base_page_kib = caps.cpu.page_sizes_kib.empty() ? 4 : caps.cpu.page_sizes_kib.front();

    // The cpu collector's topology read of this refresh, or our own when it did not run.
    std::vector<LogicalCpu> own_read;
    CpuIndex cpus_by_id;
    if (caps.cpu.logical_cpus_read) {
      cpus_by_id.Add(caps.cpu.logical_cpus);
    } else {
      auto read = ReadLogicalCpus(paths, 0);
      if (!read) return read.status();
      own_read = std::move(*read);
      cpus_by_id.Add(own_read);
    }

    // With the refresh loop's memory the nodes' distances and CPUs are kept under the
    // CPU layout's key, read (with node/online) before any of them.
    CpuLayoutMemory* memory = context.cpu_layout_memory;
    std::string key;
    std::optional<std::map<unsigned, CpuLayoutMemory::NodeLayout>> kept;
    if (memory) {
      key = memory->Key(paths);
      kept = memory->FindNodes(key);
    }
    auto nodes = OnlineNodes(paths, memory);
    if (!nodes) return nodes.status();
    if (nodes->empty()) return CollectWithoutNuma(paths, base_page_kib, cpus_by_id, caps);
    std::map<unsigned, CpuLayoutMemory::NodeLayout> layouts;
    for (unsigned id : *nodes) {
      std::optional<CpuLayoutMemory::NodeLayout> layout;
      if (kept) {
        auto found = kept->find(id);
        if (found != kept->end()) layout = std::move(found->second);
      }
      NumaCell cell;
      Status status =
          ReadCell(paths, id, *nodes, base_page_kib, *huge_sizes, cpus_by_id, layout, cell);
      caps.cells.push_back(std::move(cell));
      if (!status.ok()) return status;
      layouts.emplace(id, std::move(*layout));
    }
    if (memory && !kept) memory->RememberNodes(key, std::move(layouts));
    return Status();
  }

 private:
  // node/online; on kernels before 2.6.26 (no such file) the nodeN directories, as
  // libnuma (and so libvirt) finds them. Empty when the host has no NUMA sysfs.
  static Expected<std::vector<unsigned>> OnlineNodes(const HostPaths& paths,
                                                     const CpuLayoutMemory* memory) {
    std::string online_path = paths.Sys("devices/system/node/online");
    // The layout key read node/online this refresh: its text, not a second read.
    if (std::optional<std::string> text = memory ? memory->NodeOnline() : std::nullopt) {
      auto nodes = ParseCpuList(*text);
      if (!nodes)
        return Status::Error(online_path + ": bad cpu list '" + text->substr(0, 40) + "'");
      if (nodes->empty()) return Status::Error(online_path + ": no node online");
      return *nodes;
    }
    if (PathExists(online_path)) {
      auto nodes = ReadCpuList(online_path);
      if (nodes && nodes->empty()) return Status::Error(online_path + ": no node online");
      return nodes;
    }
    std::vector<unsigned> nodes;
    std::string node_dir = paths.Sys("devices/system/node");
    if (!IsDirectory(node_dir)) return nodes;
    auto entries = ListDirectory(node_dir);
    if (!entries) return entries.status();
    for (const std::string& entry : *entries) {
      if (entry.size() <= 4 || entry.rfind("node", 0) != 0) continue;
      if (auto id = ParseUint(std::string_view(entry).substr(4)))
        nodes.push_back(static_cast<unsigned>(*id));
    }
    std::sort(nodes.begin(), nodes.end());
    return nodes;
  }

  // Without NUMA sysfs libvirt shows one cell holding every CPU and all memory.
  static Status CollectWithoutNuma(const HostPaths& paths, uint64_t base_page_kib,
                                   const CpuIndex& cpus_by_id, HostCapabilities& caps) {
    NumaCell cell;
    auto memory = ReadMemTotalKib(paths.Proc("meminfo"));
    if (!memory) return memory.status();
    cell.memory_kib = *memory;
    uint64_t huge_kib = 0;
    for (const PagePool& pool : caps.hugepages) huge_kib += pool.size_kib * pool.total;
    cell.pages.push_back(
        {base_page_kib, (*memory > huge_kib ? *memory - huge_kib : 0) / base_page_kib, {}});
    cell.pages.insert(cell.pages.end(), caps.hugepages.begin(), caps.hugepages.end());
    for (const auto& [id, cpu] : cpus_by_id.online) cell.cpus.push_back(ToCellCpu(*cpu));
    caps.cells.push_back(std::move(cell));
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeNumaCollector() { return std::make_unique<NumaCollector>(); }

}  // namespace virtcaps
