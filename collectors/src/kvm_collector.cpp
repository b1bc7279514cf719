// The kvm collector: is /dev/kvm there, may the agent open it, does a VM come up,
// which module provides it, and is nested virtualization on.
#include <unistd.h>

#include "sysfs_values.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// Modules that provide KVM, most specific first; "kvm" alone is the core (or, on
// arm64 and s390x, the whole of it).
constexpr const char* kKvmModules[] = {"kvm_intel", "kvm_amd", "kvm_pvm",
                                       "kvm_hv",    "kvm_pr",  "kvm"};

class KvmCollector : public Collector {
 public:
  std::string_view name() const override { return "kvm"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    KvmState& kvm = caps.kvm;
    const HostPaths& paths = context.paths;
    for (const char* module : kKvmModules) {
      if (IsDirectory(paths.Sys(std::string("module/") + module))) kvm.modules.push_back(module);
    }
    if (!kvm.modules.empty()) kvm.provider = kvm.modules.front();

    std::string device = paths.Dev("kvm");
    kvm.device_present = PathExists(device);
    if (kvm.device_present) {
      kvm.device_accessible = ::access(device.c_str(), R_OK | W_OK) == 0;
      if (context.probes.kvm) {
        KvmIoctlResult result = context.probes.kvm->Probe(device);
        if (result.opened) {
          kvm.api_version = result.api_version;
          kvm.max_vcpus = result.max_vcpus;
          kvm.vm_creatable = result.vm_creatable;
          if (!result.vm_creatable.value_or(false)) kvm.problem = result.create_vm_error;
        } else {
          kvm.device_accessible = false;
          kvm.vm_creatable = false;
          kvm.problem = result.open_error;
        }
      }
    } else {
      kvm.device_accessible = false;
      kvm.vm_creatable = false;
      kvm.problem = device + " does not exist";
    }

    // A provider without a "nested" parameter (kvm_pvm) offers no nested guests.
    kvm.nested = false;
    if (!kvm.provider.empty()) {
      std::string parameter = paths.Sys("module/" + kvm.provider + "/parameters/nested");
      if (PathExists(parameter)) {
        auto nested = ReadBoolParameter(parameter);
        if (!nested) {
          kvm.nested.reset();
          return nested.status();
        }
        kvm.nested = *nested;
      }
    }
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeKvmCollector() { return std::make_unique<KvmCollector>(); }

}  // namespace virtcaps
