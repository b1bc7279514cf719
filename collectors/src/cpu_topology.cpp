#include "cpu_topology.h"

#include <algorithm>
#include <map>
#include <set>

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

std::optional<std::vector<unsigned>> ParseCpuMask(std::string_view text) {
  text = Trim(text);
  if (text.empty()) return std::nullopt;
  std::vector<std::string_view> groups = Split(text, ',');
  std::vector<unsigned> cpus;
  // The last group holds CPUs 0-31, the one before 32-63, and so on.
  for (size_t g = 0; g < groups.size(); ++g) {
    std::string_view group = groups[groups.size() - 1 - g];
    if (group.empty() || group.size() > 8) return std::nullopt;
    auto bits = ParseUint(group, 16);
    if (!bits) return std::nullopt;
    for (unsigned bit = 0; bit < 32; ++bit) {
      if ((*bits >> bit) & 1) cpus.push_back(static_cast<unsigned>(g * 32 + bit));
    }
  }
  return cpus;
}

namespace {

// A topology id file: missing reads as 0, and so does -1 ("not reported"), as in libvirt.
Status ReadTopologyId(const std::string& path, unsigned& out) {
  out = 0;
  if (!PathExists(path)) return Status();
  auto text = ReadValue(path);
  if (!text) return text.status();
  auto value = ParseInt(*text);
  if (!value || *value > 0xffffffffLL)
    return Status::Error(path + ": not an integer: '" + text->substr(0, 40) + "'");
  out = *value < 0 ? 0 : static_cast<unsigned>(*value);
  return Status();
}

Status ReadSiblings(const std::string& dir, LogicalCpu& cpu) {
  if (std::string list = dir + "thread_siblings_list"; PathExists(list)) {
    auto siblings = ReadCpuList(list);
    if (!siblings) return siblings.status();
    cpu.siblings = *siblings;
    cpu.siblings_source = "thread_siblings_list";
  } else if (std::string mask = dir + "thread_siblings"; PathExists(mask)) {
    // Kernels before 2.6.26 (and some vendor kernels) have only the mask form.
    auto text = ReadValue(mask);
    if (!text) return text.status();
    auto siblings = ParseCpuMask(*text);
    if (!siblings) return Status::Error(mask + ": bad cpu mask '" + text->substr(0, 40) + "'");
    cpu.siblings = *siblings;
    cpu.siblings_source = "thread_siblings";
  } else {
    cpu.siblings_source = "self";  // libvirt: a CPU without either file is its own sibling
  }
  // A thread is always its own sibling, even where a kernel's mask forgets it.
  if (!std::binary_search(cpu.siblings.begin(), cpu.siblings.end(), cpu.id)) {
    cpu.siblings.insert(std::lower_bound(cpu.siblings.begin(), cpu.siblings.end(), cpu.id), cpu.id);
  }
  return Status();
}

Expected<std::vector<unsigned>> ReadOptionalCpuList(const std::string& path, bool& found) {
  found = PathExists(path);
  if (!found) return std::vector<unsigned>{};
  return ReadCpuList(path);
}

bool IsCpuEntry(const std::string& name) {
  return name.size() > 3 && name.rfind("cpu", 0) == 0 &&
         name.find_first_not_of("0123456789", 3) == std::string::npos;
}

}  // namespace

Expected<std::vector<LogicalCpu>> ReadLogicalCpus(const HostPaths& paths, unsigned fallback_count) {
  bool have_present = false, have_online = false;
  auto present = ReadOptionalCpuList(paths.Sys("devices/system/cpu/present"), have_present);
  if (!present) return present.status();
  auto online = ReadOptionalCpuList(paths.Sys("devices/system/cpu/online"), have_online);
  if (!online) return online.status();
  if (!have_present) *present = *online;
  if (!have_online) *online = *present;
  if (!have_present && !have_online) {
    for (unsigned id = 0; id < std::max(fallback_count, 1u); ++id) present->push_back(id);
    *online = *present;
  }
  std::set<unsigned> online_set(online->begin(), online->end());
  // An online CPU missing from a stale present list still counts.
  std::set<unsigned> all(present->begin(), present->end());
  all.insert(online->begin(), online->end());

  std::vector<LogicalCpu> cpus;
  for (unsigned id : all) {
    LogicalCpu cpu;
    cpu.id = id;
    cpu.online = online_set.count(id) > 0;
    if (cpu.online) {
      std::string dir = paths.Sys("devices/system/cpu/cpu" + std::to_string(id) + "/topology/");
      if (Status s = ReadTopologyId(dir + "physical_package_id", cpu.socket_id); !s.ok()) return s;
      if (Status s = ReadTopologyId(dir + "die_id", cpu.die_id); !s.ok()) return s;
      if (Status s = ReadTopologyId(dir + "core_id", cpu.core_id); !s.ok()) return s;
      if (Status s = ReadSiblings(dir, cpu); !s.ok()) return s;
    }
    cpus.push_back(std::move(cpu));
  }
  return cpus;
}

Expected<std::optional<std::vector<std::vector<unsigned>>>> ReadNodeCpus(const HostPaths& paths) {
  std::string node_dir = paths.Sys("devices/system/node");
  if (!IsDirectory(node_dir)) return std::optional<std::vector<std::vector<unsigned>>>();
  auto entries = ListDirectory(node_dir);
  if (!entries) return entries.status();
  std::map<unsigned, std::vector<unsigned>> nodes;
  for (const std::string& entry : *entries) {
    if (entry.size() <= 4 || entry.rfind("node", 0) != 0) continue;
    auto id = ParseUint(std::string_view(entry).substr(4));
    if (!id) continue;
    std::string dir = node_dir + "/" + entry;
    auto members = ListDirectory(dir);
    if (!members) return members.status();
    std::vector<unsigned> cpus;
    for (const std::string& member : *members) {
      if (IsCpuEntry(member))
        cpus.push_back(static_cast<unsigned>(*ParseUint(std::string_view(member).substr(3))));
    }
    if (cpus.empty() && PathExists(dir + "/cpulist")) {
      auto list = ReadCpuList(dir + "/cpulist");
      if (!list) return list.status();
      cpus = *list;
    }
    std::sort(cpus.begin(), cpus.end());
    nodes[static_cast<unsigned>(*id)] = std::move(cpus);
  }
  if (nodes.empty()) return std::optional<std::vector<std::vector<unsigned>>>();
  std::vector<std::vector<unsigned>> result;
  for (auto& [id, cpus] : nodes) result.push_back(std::move(cpus));
  return std::optional<std::vector<std::vector<unsigned>>>(std::move(result));
}

CpuTopology ComputeTopology(const std::vector<LogicalCpu>& cpus,
                            const std::optional<std::vector<std::vector<unsigned>>>& nodes,
                            bool is_s390) {
  std::map<unsigned, const LogicalCpu*> by_id;
  std::set<unsigned> packages;
  std::set<std::pair<unsigned, unsigned>> dies;
  for (const LogicalCpu& cpu : cpus) {
    by_id[cpu.id] = &cpu;
    if (!cpu.online) continue;
    packages.insert(cpu.socket_id);
    dies.insert({cpu.socket_id, cpu.die_id});
  }
  struct Counts {
    unsigned cpus = 0, offline = 0, sockets = 0, cores = 0, threads = 0;
  };
  auto count = [&](const std::vector<unsigned>& members) {
    Counts counts;
    std::map<unsigned, std::set<unsigned>> cores_by_socket;
    for (unsigned id : members) {
      auto found = by_id.find(id);
      if (found == by_id.end()) continue;  // not present
      const LogicalCpu& cpu = *found->second;
      if (!cpu.online) {
        ++counts.offline;
        continue;
      }
      ++counts.cpus;
      cores_by_socket[cpu.socket_id].insert(is_s390 ? cpu.id : cpu.core_id);
      counts.threads = std::max(counts.threads, static_cast<unsigned>(cpu.siblings.size()));
    }
    counts.sockets = static_cast<unsigned>(cores_by_socket.size());
    for (const auto& [socket, cores] : cores_by_socket)
      counts.cores = std::max(counts.cores, static_cast<unsigned>(cores.size()));
    return counts;
  };

  CpuTopology topology;
  topology.physical_packages = static_cast<unsigned>(packages.size());
  topology.physical_dies = static_cast<unsigned>(dies.size());
  Counts host;
  unsigned node_count = 0;
  if (nodes) {
    for (const std::vector<unsigned>& members : *nodes) {
      Counts node = count(members);
      ++node_count;
      host.cpus += node.cpus;
      host.offline += node.offline;
      host.sockets = std::max(host.sockets, node.sockets);
      host.cores = std::max(host.cores, node.cores);
      host.threads = std::max(host.threads, node.threads);
    }
    topology.method = "per_node";
  }
  if (host.cpus == 0 || node_count == 0) {
    // No NUMA sysfs (or nodes without CPUs): libvirt counts the whole host as one node.
    std::vector<unsigned> all;
    for (const LogicalCpu& cpu : cpus) all.push_back(cpu.id);
    host = count(all);
    node_count = 1;
    topology.method = "whole_host";
  }
  topology.nodes = node_count;
  topology.offline_cpus = host.offline;
  topology.sockets = std::max(host.sockets, 1u);
  topology.dies = 1;
  topology.cores = std::max(host.cores, 1u);
  topology.threads = std::max(host.threads, 1u);
  if (node_count * host.sockets * host.cores * host.threads != host.cpus + host.offline) {
    topology.method = "flat_fallback";
    topology.nodes = 1;
    topology.sockets = 1;
    topology.cores = std::max(host.cpus + host.offline, 1u);
    topology.threads = 1;
  }
  return topology;
}

}  // namespace virtcaps
