// The qemu hypervisor: one guest per emulator, from ProbeQemuEmulators.
#include <algorithm>
#include <map>
#include <mutex>

#include "virtcaps/cpu_vocabulary.h"
#include "virtcaps/files.h"
#include "virtcaps/firmware.h"
#include "virtcaps/hypervisors.h"
#include "virtcaps/qemu.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// The id of `name` in an /etc/passwd or /etc/group file (third field), or of "+N".
std::optional<uint64_t> ReadId(const std::string& file, const std::string& name) {
  auto text = ReadFile(file, 4u << 20);
  if (!text) return std::nullopt;
  for (std::string_view line : Split(*text, '\n')) {
    auto fields = Split(line, ':');
    if (fields.size() >= 3 && fields[0] == name) return ParseUint(fields[2]);
  }
  return std::nullopt;
}

// ReadId, answered again while the file's identity (inode, size, times) is the same:
// every tool that edits /etc/passwd or /etc/group rewrites or replaces it, so a stat
// instead of a read each refresh. A few (file, name) pairs, one per configured driver.
std::optional<uint64_t> LookUpId(const std::string& file, const std::string& name) {
  if (name.size() > 1 && name.front() == '+') return ParseUint(name.substr(1));
  struct Answer {
    std::string identity;
    std::optional<uint64_t> id;
  };
  static std::mutex mutex;
  static std::map<std::pair<std::string, std::string>, Answer> answers;
  std::string identity = FileIdentity(file);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = answers.find({file, name});
    if (found != answers.end() && !identity.empty() && found->second.identity == identity)
      return found->second.id;
  }
  std::optional<uint64_t> id = ReadId(file, name);
  std::lock_guard<std::mutex> lock(mutex);
  if (answers.size() >= 16) answers.clear();  // other roots and names: stay small
  if (!identity.empty()) answers[{file, name}] = Answer{identity, id};
  return id;
}

// libvirt's QEMU driver always stacks the DAC security driver: guests run as the
// configured user and group, and the document says so for both domain types.
std::optional<SecurityModel> DacModel(const QemuOptions& options, const HostPaths& paths) {
  auto uid = LookUpId(paths.Root("etc/passwd"), options.user);
  auto gid = LookUpId(paths.Root("etc/group"), options.group);
  if (!uid || !gid) return std::nullopt;  // unknown user: say nothing rather than guess
  std::string label = "+" + std::to_string(*uid) + ":+" + std::to_string(*gid);
  return SecurityModel{"dac", "0", {{"kvm", label}, {"qemu", label}}, "qemu"};
}

class QemuCollector : public Collector {
 public:
  explicit QemuCollector(QemuOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return "qemu"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    if (auto dac = DacModel(options_, context.paths)) caps.secmodels.push_back(std::move(*dac));
    // As libvirt's QEMU driver: live migration over tcp and rdma, whatever the emulators.
    if (options_.migration_features) caps.migration = MigrationFeatures{true, {"tcp", "rdma"}};
    QemuHostFacts facts = CurrentQemuHostFacts(context.paths, caps);
    std::vector<QemuEmulatorResult> results =
        ProbeQemuEmulators(options_, context.paths, facts, context.cancel, context.qemu_memory);
    HypervisorStatus& status = caps.hypervisors.emplace_back();
    status.name = "qemu";
    status.emulators_found = static_cast<unsigned>(results.size());
    std::string errors;
    std::vector<Guest> probed;
    for (QemuEmulatorResult& result : results) {
      if (!result.status.ok()) {
        ++status.probes_failed;
        errors += (errors.empty() ? "" : "; ") + result.status.message();
        continue;
      }
      if (result.from_cache) {
        ++status.cache_hits;
      } else {
        ++status.probes_spawned;
      }
      probed.push_back(std::move(result.guest));
    }
    // Host state the domain capabilities' TPM depends on, looked at every refresh
    // (libvirt's virTPMHasSwtpm: swtpm on $PATH), never cached with the probe.
    bool swtpm = false;
    for (const char* dir :
         {"usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"}) {
      swtpm = swtpm || PathExists(context.paths.Root(std::string(dir) + "/swtpm"));
    }
    // libvirt's guests from the probed ones: derived arches, the CPU map's model names
    // and vendors and the host-models (cpu_vocabulary.cpp); a bad map is only noted.
    // Both use the refresh's one load of the map (one check of its directory). Made
    // from the same probes and map, they are what the last refresh finished.
    LazyX86CpuMap own_map(context.paths.Root(context.config.host.cpu_map_dir));
    LazyX86CpuMap& map = context.x86_cpu_map ? *context.x86_cpu_map : own_map;
    std::shared_ptr<const void> map_identity;
    bool any_x86 = std::any_of(probed.begin(), probed.end(), [](const Guest& guest) {
      return CpuMapArchFor(guest.arch) == "x86";
    });
    if (any_x86 && map.Get().ok()) map_identity = *map.Get();
    QemuProbeMemory* memory = context.qemu_memory;
    std::optional<std::vector<Guest>> finished;
    if (memory) finished = memory->FindFinished(probed, map_identity, caps.cpu.arch);
    if (!finished) {
      std::vector<Guest> kept = memory ? probed : std::vector<Guest>();
      finished = LibvirtQemuGuests(std::move(probed), caps.cpu.arch);
      Status named = NameGuestCpuModels(map, *finished);
      if (!named.ok()) errors += (errors.empty() ? "" : "; ") + named.message();
      Status host_models = DescribeGuestHostModels(map, caps.cpu.arch, *finished);
      if (!host_models.ok()) errors += (errors.empty() ? "" : "; ") + host_models.message();
      // Only a clean finish is kept: a problem is found and said again each refresh.
      if (memory && named.ok() && host_models.ok())
        memory->RememberFinished(std::move(kept), map_identity, caps.cpu.arch, *finished);
    }
    for (Guest& guest : *finished) {
      if (guest.device_facts) guest.device_facts->swtpm = swtpm;
      caps.guests.push_back(std::move(guest));
    }
    // The firmware guests can boot (<os> of the domain capabilities); a bad descriptor
    // is skipped, said in the metrics and logged by the refresh loop.
    caps.qemu_firmware = context.firmware_memory != nullptr
                             ? context.firmware_memory->Read(options_, context.paths)
                             : ReadQemuFirmware(options_, context.paths);
    status.available = status.emulators_found > status.probes_failed;
    status.detail =
        results.empty() ? "no qemu-system-* (or /usr/libexec/qemu-kvm) emulator found" : errors;
    // A cache directory that someone else could write is not used: say so.
    if (!options_.cache_dir.empty() && IsDirectory(options_.cache_dir)) {
      Status cache = CheckPrivateDirectory(options_.cache_dir);
      if (!cache.ok()) {
        status.detail +=
            (status.detail.empty() ? "" : "; ") + ("probe cache not used: " + cache.message());
      }
    }
    // One emulator failing is that emulator's problem; all failing is the collector's.
    if (!results.empty() && !status.available) return Status::Error(errors);
    return Status();
  }

 private:
  QemuOptions options_;
};

}  // namespace

std::unique_ptr<Collector> MakeQemuCollector(const QemuOptions& options) {
  return std::make_unique<QemuCollector>(options);
}

std::unique_ptr<Collector> MakeXenCollector(const XenOptions& options);
std::unique_ptr<Collector> MakeLxcCollector(const LxcOptions& options);

std::unique_ptr<Collector> MakeHypervisorCollector(const HypervisorConfig& config) {
  switch (config.type) {
    case HypervisorType::kQemu:
      return MakeQemuCollector(config.qemu);
    case HypervisorType::kXen:
      return MakeXenCollector(config.xen);
    case HypervisorType::kLxc:
      return MakeLxcCollector(config.lxc);
  }
  return nullptr;
}

}  // namespace virtcaps
