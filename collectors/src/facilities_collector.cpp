// The facilities collector: device nodes guests need, cgroup controllers and
// namespaces that containers need (what virt-host-validate looks for).
#include <set>

#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// /dev/kvm is the kvm collector's (virtcaps_kvm_device_present); not repeated here.
constexpr const char* kDevices[] = {"/dev/vhost-net",   "/dev/net/tun", "/dev/vfio/vfio",
                                    "/dev/vhost-vsock", "/dev/sev",     "/dev/sgx_enclave"};
// The controllers virt-host-validate checks, under their cgroup v1 names.
constexpr const char* kControllers[] = {"memory",  "cpu",     "cpuacct", "cpuset",
                                        "devices", "freezer", "blkio"};
constexpr const char* kNamespaces[] = {"ipc", "mnt", "pid", "uts", "net", "user"};

// cgroup v2 renamed or absorbed some v1 controllers.
bool V2HasController(const std::set<std::string>& controllers, const std::string& v1_name) {
  if (v1_name == "cpuacct") return controllers.count("cpu") > 0;
  if (v1_name == "blkio") return controllers.count("io") > 0;
  // v2 has no devices or freezer controller: device access is a BPF program and
  // freezing is part of the core (cgroup.freeze), so both are always there.
  if (v1_name == "devices" || v1_name == "freezer") return true;
  return controllers.count(v1_name) > 0;
}

Status ReadCgroups(const HostPaths& paths, HostFacilities& facilities) {
  std::string v2 = paths.Sys("fs/cgroup/cgroup.controllers");
  if (PathExists(v2)) {
    auto text = ReadValue(v2);
    if (!text) return text.status();
    std::set<std::string> controllers;
    for (std::string_view word : SplitWhitespace(*text)) controllers.emplace(word);
    facilities.cgroup_version = 2;
    for (const char* controller : kControllers) {
      facilities.cgroup_controllers.emplace_back(controller,
                                                 V2HasController(controllers, controller));
    }
    return Status();
  }
  // cgroup v1: /proc/cgroups lists "subsys_name hierarchy num_cgroups enabled".
  std::string v1 = paths.Proc("cgroups");
  if (!PathExists(v1)) return Status();
  auto text = ReadFile(v1);
  if (!text) return text.status();
  // A controller counts when the kernel enables it and it is mounted: its name is
  // under /sys/fs/cgroup (a directory, or a symlink to a co-mounted "cpu,cpuacct").
  // One listing rather than a stat per controller.
  auto listed = ListDirectory(paths.Sys("fs/cgroup"));
  std::set<std::string> mounted;
  if (listed) mounted.insert(listed->begin(), listed->end());
  std::set<std::string> enabled;
  for (std::string_view line : Split(*text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    auto fields = SplitWhitespace(line);
    if (fields.size() != 4)
      return Status::Error(v1 + ": expected 4 columns in '" + std::string(line) + "'");
    std::string name(fields[0]);
    if (fields[3] == "1" && mounted.count(name) > 0) enabled.insert(std::move(name));
  }
  facilities.cgroup_version = 1;
  for (const char* controller : kControllers) {
    facilities.cgroup_controllers.emplace_back(controller, enabled.count(controller) > 0);
  }
  return Status();
}

class FacilitiesCollector : public Collector {
 public:
  std::string_view name() const override { return "facilities"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    HostFacilities facilities;
    for (const char* device : kDevices) {
      facilities.devices.emplace_back(device, PathExists(paths.Dev(std::string(device).substr(5))));
    }
    // One listing rather than a stat per namespace: each path walk through
    // /proc/self costs more than the whole listing.
    auto listed = ListDirectory(paths.Proc("self/ns"));
    std::set<std::string> present;
    if (listed) present.insert(listed->begin(), listed->end());
    for (const char* ns : kNamespaces)
      facilities.namespaces.emplace_back(ns, present.count(ns) > 0);
    facilities.fuse_connections = IsDirectory(paths.Sys("fs/fuse/connections"));
    Status status = ReadCgroups(paths, facilities);
    caps.facilities = std::move(facilities);
    return status;
  }
};

}  // namespace

std::unique_ptr<Collector> MakeFacilitiesCollector() {
  return std::make_unique<FacilitiesCollector>();
}

}  // namespace virtcaps
