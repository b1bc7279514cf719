// The lxc hypervisor: containers of os_type exe for the host arch and its 32-bit
// personality, when the kernel has the namespaces and cgroup controllers LXC needs.
#include <map>

#include "virtcaps/hypervisors.h"

namespace virtcaps {

namespace {

unsigned WordSize(const std::string& arch) {
  static const std::map<std::string, unsigned> k32 = {{"i686", 32},  {"armv7l", 32},  {"ppc", 32},
                                                      {"s390", 32},  {"riscv32", 32}, {"mips", 32},
                                                      {"mipsel", 32}};
  auto found = k32.find(arch);
  return found == k32.end() ? 64 : found->second;
}

// The arch a 32-bit personality (setarch linux32) of the host arch runs.
std::string PersonalityArch(const std::string& arch) {
  if (arch == "x86_64") return "i686";
  if (arch == "aarch64") return "armv7l";
  if (arch == "s390x") return "s390";
  if (arch == "ppc64" || arch == "ppc64le") return "ppc";
  return "";
}

class LxcCollector : public Collector {
 public:
  explicit LxcCollector(LxcOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return "lxc"; }

  Status Collect(const CollectContext&, HostCapabilities& caps) override {
    HypervisorStatus& status = caps.hypervisors.emplace_back();
    status.name = "lxc";
    if (!caps.facilities) {
      return Status::Error("needs the facilities collector (namespaces, cgroups) to decide");
    }
    std::string missing;
    for (const auto& [ns, present] : caps.facilities->namespaces) {
      if (!present && ns != "user") missing += " namespace:" + ns;
    }
    for (const auto& [controller, present] : caps.facilities->cgroup_controllers) {
      if (!present) missing += " cgroup:" + controller;
    }
    if (!caps.facilities->cgroup_version) missing += " cgroups";
    if (!missing.empty()) {
      status.detail = "missing" + missing;
      return Status();
    }
    status.available = true;
    std::vector<std::string> arches = {caps.cpu.arch};
    if (std::string personality = PersonalityArch(caps.cpu.arch); !personality.empty()) {
      arches.push_back(personality);
    }
    for (const std::string& arch : arches) {
      Guest guest;
      guest.hypervisor = "lxc";
      guest.os_type = "exe";
      guest.arch = arch;
      guest.wordsize = WordSize(arch);
      guest.emulator = options_.emulator;
      guest.domains.push_back(GuestDomain{"lxc", "", {}});
      caps.guests.push_back(std::move(guest));
    }
    return Status();
  }

 private:
  LxcOptions options_;
};

}  // namespace

std::unique_ptr<Collector> MakeLxcCollector(const LxcOptions& options) {
  return std::make_unique<LxcCollector>(options);
}

}  // namespace virtcaps
