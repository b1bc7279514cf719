// The cpu collector's libvirt part: model and features from libvirt's CPU map, and
// the TSC counter, kept apart from the kernel-facing code in cpu_collector.cpp.
#pragma once

#include "virtcaps/collector.h"
#include "virtcaps/cpuinfo.h"
#include "virtcaps/model.h"

namespace virtcaps {

// Fills cpu.libvirt_model, libvirt_features (and vendor when the map names it) and
// tsc. An unreadable map or a CPU it does not know is returned as the error, with
// only those fields left empty.
Status DescribeCpuInLibvirtTerms(const CollectContext& context, const Cpuinfo& cpuinfo,
                                 HostCpu& cpu);

// libvirt lists an x86 emulator's named models only where its CPU map knows them,
// with the map's vendor ("unknown" for generic models). With no readable map the
// models stay as QEMU named them, vendor empty; the error says why.
Status NameGuestCpuModels(const std::string& cpu_map_dir, std::vector<Guest>& guests);

// libvirt's host-model per virt type of each native x86 guest (virQEMUCapsInitHostCPUModel):
// the expansion decoded against the map, among the models that virt type offers
// (so call it after NameGuestCpuModels). Guests it cannot decode keep no host-model;
// the error says which and why.
Status DescribeGuestHostModels(const std::string& cpu_map_dir, const std::string& host_arch,
                               std::vector<Guest>& guests);

}  // namespace virtcaps
