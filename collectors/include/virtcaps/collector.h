// A collector reads one area of the host and fills its section of the model.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/config.h"
#include "virtcaps/cpu_layout_memory.h"
#include "virtcaps/firmware.h"
#include "virtcaps/host_paths.h"
#include "virtcaps/model.h"
#include "virtcaps/probes.h"
#include "virtcaps/qemu.h"
#include "virtcaps/status.h"
#include "virtcaps/subprocess.h"

namespace virtcaps {

class LazyX86CpuMap;

struct CollectContext {
  const HostPaths& paths;
  const Probes& probes;
  const Config& config;
  // Set when the agent is stopping: long probes (emulators) end at once.
  const Cancellation* cancel = nullptr;
  // Kept by the refresh loop across refreshes (null for a one-off probe).
  QemuProbeMemory* qemu_memory = nullptr;
  // The QEMU firmware descriptors last read, kept by the refresh loop too.
  QemuFirmwareMemory* firmware_memory = nullptr;
  // The configured x86 CPU map, loaded (its directory checked) at most once per
  // refresh for the host CPU and the guests; CollectHost sets it when it is null.
  LazyX86CpuMap* x86_cpu_map = nullptr;
  // The CPUs' topology and caches, kept by the refresh loop until a hotplug.
  CpuLayoutMemory* cpu_layout_memory = nullptr;
};

// What the refresh loop keeps across refreshes, so that a warm refresh reads again
// only what can have changed since the last.
struct RefreshMemory {
  QemuProbeMemory qemu;         // emulator probes and directory listings
  QemuFirmwareMemory firmware;  // QEMU firmware descriptors
  HostProbeMemory probes;       // CPUID answers and KVM's scratch VM
  CpuLayoutMemory cpu_layout;   // topology and cache banks, until a hotplug
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual std::string_view name() const = 0;
  // Fills this collector's part of `caps`. An error leaves what was read so far in
  // place and is reported as this collector's failure; other collectors carry on.
  virtual Status Collect(const CollectContext& context, HostCapabilities& caps) = 0;
};

// The explicit collector list: name (also --collector.NAME and the `collector`
// label), whether it runs by default, and how to make one.
struct CollectorInfo {
  std::string name;
  bool enabled_by_default;
  std::unique_ptr<Collector> (*make)();
};
const std::vector<CollectorInfo>& AllCollectors();
std::vector<CollectorDefault> CollectorDefaults();

// Runs the enabled collectors in list order, timing each, and records their outcomes.
HostCapabilities CollectHost(const CollectContext& context);

// The collectors, for tests.
std::unique_ptr<Collector> MakeCpuCollector();
std::unique_ptr<Collector> MakeKvmCollector();
std::unique_ptr<Collector> MakeHostCollector();
std::unique_ptr<Collector> MakeNumaCollector();
std::unique_ptr<Collector> MakeCacheCollector();
std::unique_ptr<Collector> MakeIommuCollector();
std::unique_ptr<Collector> MakeFacilitiesCollector();
std::unique_ptr<Collector> MakeSecureGuestCollector();
std::unique_ptr<Collector> MakeVirtRoleCollector();

// libvirt's name for a kernel machine string: i?86 -> i686, arm64 -> aarch64, ...
std::string LibvirtArchName(std::string_view uname_machine);
// The host's architecture: <procfs>/sys/kernel/arch when present, else uname.
std::string HostArch(const HostPaths& paths);

}  // namespace virtcaps
