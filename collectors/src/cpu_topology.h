// The one sysfs topology read of a refresh, shared by the cpu and numa collectors,
// and libvirt's rule for turning it into sockets/cores/threads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "virtcaps/host_paths.h"
#include "virtcaps/model.h"
#include "virtcaps/status.h"

namespace virtcaps {

// A kernel CPU mask ("00000000,000000f3": 32-bit hex groups, most significant first)
// as the CPU ids it sets, ascending; nullopt when garbled.
std::optional<std::vector<unsigned>> ParseCpuMask(std::string_view text);

// Every present CPU under <sysfs>/devices/system/cpu with its topology ids and thread
// siblings. Present CPUs come from cpu/present, else cpu/online, else `fallback_count`
// CPUs numbered from 0 (a kernel without either file). Offline CPUs carry only their id.
// A garbled file is an error naming it; a missing one reads as libvirt reads it.
Expected<std::vector<LogicalCpu>> ReadLogicalCpus(const HostPaths& paths, unsigned fallback_count);

// The CPUs of each NUMA node (node ids ascending), as libvirt finds them: the cpuN
// entries of nodeN, else nodeN/cpulist. nullopt when the host has no node directory.
Expected<std::optional<std::vector<std::vector<unsigned>>>> ReadNodeCpus(const HostPaths& paths);

// libvirt's host topology: per node, sockets = distinct socket ids of online CPUs,
// cores = most distinct core ids in one socket (on s390 every CPU is a core),
// threads = most thread siblings; the host takes the largest of each over nodes; when
// nodes x sockets x cores x threads is not every present CPU of the nodes, it reports
// the flat 1 x 1 x CPUs x 1 instead. Dies are always 1, as libvirt's host CPU says.
CpuTopology ComputeTopology(const std::vector<LogicalCpu>& cpus,
                            const std::optional<std::vector<std::vector<unsigned>>>& nodes,
                            bool is_s390);

}  // namespace virtcaps
