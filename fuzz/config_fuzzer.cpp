// ParseConfig on arbitrary YAML, with the agent's real collector list. Nothing may
// escape as an exception; errors name the file; an accepted config is validated.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>
#include <vector>

#include "virtcaps/collector.h"
#include "virtcaps/config.h"

#include "fuzz_check.h"

namespace {

bool Absolute(const std::string& path) { return !path.empty() && path.front() == '/'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<virtcaps::CollectorDefault> kCollectors = virtcaps::CollectorDefaults();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = virtcaps::ParseConfig(text, "fuzz.yaml", "/etc/virtcaps", kCollectors);
  if (!config) {
    FUZZ_CHECK(config.error().rfind("fuzz.yaml", 0) == 0);
    return 0;
  }
  using std::chrono::hours;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  using std::chrono::seconds;
  FUZZ_CHECK(config->source == "fuzz.yaml");
  FUZZ_CHECK(config->refresh_interval >= seconds(1) && config->refresh_interval <= hours(24));
  FUZZ_CHECK(!config->web.listen_addresses.empty());
  for (const std::string& address : config->web.listen_addresses) {
    FUZZ_CHECK(virtcaps::ValidateListenAddress(address).empty());
  }
  FUZZ_CHECK(config->web.telemetry_path.size() >= 2 && config->web.telemetry_path[0] == '/');
  FUZZ_CHECK(Absolute(config->paths.rootfs));
  for (const std::string* path :
       {&config->paths.procfs, &config->paths.sysfs, &config->paths.devfs}) {
    FUZZ_CHECK(path->empty() || Absolute(*path));
  }
  FUZZ_CHECK(config->collectors.size() == kCollectors.size());
  for (const auto& collector : kCollectors) FUZZ_CHECK(config->collectors.count(collector.name));
  if (config->probes.cpuid.source == virtcaps::CpuidProbeConfig::Source::kDump) {
    FUZZ_CHECK(Absolute(config->probes.cpuid.dump_file));
  }
  std::set<virtcaps::HypervisorType> types;
  for (const virtcaps::HypervisorConfig& hypervisor : config->hypervisors) {
    FUZZ_CHECK(types.insert(hypervisor.type).second);
    FUZZ_CHECK(hypervisor.qemu.probe_timeout >= milliseconds(100) &&
               hypervisor.qemu.probe_timeout <= minutes(10));
    FUZZ_CHECK(hypervisor.qemu.parallel_probes >= 1 && hypervisor.qemu.parallel_probes <= 64);
    for (const std::string& dir : hypervisor.qemu.emulator_dirs) FUZZ_CHECK(Absolute(dir));
    FUZZ_CHECK(hypervisor.qemu.cache_dir.empty() || Absolute(hypervisor.qemu.cache_dir));
    FUZZ_CHECK(Absolute(hypervisor.xen.emulator) && Absolute(hypervisor.xen.loader));
    FUZZ_CHECK(Absolute(hypervisor.lxc.emulator));
  }
  return 0;
}
