// The cpu collector's libvirt part: model and features from libvirt's CPU map, and
// the TSC counter, kept apart from the kernel-facing code in cpu_collector.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "virtcaps/collector.h"
#include "virtcaps/cpu_map.h"
#include "virtcaps/cpuinfo.h"
#include "virtcaps/model.h"

namespace virtcaps {

// Fills cpu.libvirt_model, libvirt_features (and vendor when the map names it) and
// tsc. An unreadable map or a CPU it does not know is returned as the error, with
// only those fields left empty.
Status DescribeCpuInLibvirtTerms(const CollectContext& context, const Cpuinfo& cpuinfo,
                                 HostCpu& cpu);

// The x86 map of a directory, loaded (LoadSharedX86CpuMap) on first use only: one
// refresh's guest model names and host-models share one load, so the map's directory
// is checked once, and not at all when no guest needs the map.
class LazyX86CpuMap {
 public:
  explicit LazyX86CpuMap(std::string dir) : dir_(std::move(dir)) {}
  const Expected<std::shared_ptr<const X86CpuMap>>& Get() {
    if (!map_) map_ = LoadSharedX86CpuMap(dir_);
    return *map_;
  }
  bool loaded() const { return map_.has_value(); }

 private:
  std::string dir_;
  std::optional<Expected<std::shared_ptr<const X86CpuMap>>> map_;
};

// libvirt lists an x86 emulator's named models only where its CPU map knows them,
// with the map's vendor ("unknown" for generic models). With no readable map the
// models stay as QEMU named them, vendor empty; the error says why.
Status NameGuestCpuModels(const std::string& cpu_map_dir, std::vector<Guest>& guests);
Status NameGuestCpuModels(LazyX86CpuMap& map, std::vector<Guest>& guests);

// libvirt's host-model per virt type of each native x86 guest (virQEMUCapsInitHostCPUModel):
// the expansion decoded against the map, among the models that virt type offers
// (so call it after NameGuestCpuModels). Guests it cannot decode keep no host-model;
// the error says which and why.
Status DescribeGuestHostModels(const std::string& cpu_map_dir, const std::string& host_arch,
                               std::vector<Guest>& guests);
Status DescribeGuestHostModels(LazyX86CpuMap& map, const std::string& host_arch,
                               std::vector<Guest>& guests);

}  // namespace virtcaps
