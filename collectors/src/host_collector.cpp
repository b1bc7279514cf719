// The host collector: <uuid>, <power_management> and <secmodel>.
#include "sysfs_values.h"
#include "virtcaps/boot_constants.h"
#include "virtcaps/collector.h"
#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

bool IsHex(std::string_view text) {
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// "4c4c4544-0035-..." as libvirt prints it, or empty when `text` is no UUID.
std::string NormalizeUuid(std::string_view text) {
  std::string hex;
  for (char c : Trim(text)) {
    if (c != '-') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.size() != 32 || !IsHex(hex)) return "";
  // All-zero and all-F UUIDs are firmware placeholders, not identities.
  if (hex.find_first_not_of('0') == std::string::npos ||
      hex.find_first_not_of('f') == std::string::npos) {
    return "";
  }
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string ReadUuid(const CollectContext& context) {
  if (context.config.host.uuid_source == HostConfig::UuidSource::kDmi) {
    if (auto dmi = ReadBootSysfsValue(context.paths, "class/dmi/id/product_uuid")) {
      std::string uuid = NormalizeUuid(*dmi);
      if (!uuid.empty()) return uuid;
    }
  }
  if (auto machine_id = ReadValue(context.paths.Root("etc/machine-id")))
    return NormalizeUuid(*machine_id);
  return "";
}

std::optional<PowerManagement> ReadPower(const HostPaths& paths) {
  auto state = ReadValue(paths.Sys("power/state"));
  if (!state) return std::nullopt;
  PowerManagement power;
  for (std::string_view word : SplitWhitespace(*state)) {
    if (word == "mem") power.suspend_mem = true;
    if (word == "disk") power.suspend_disk = true;
  }
  // Hybrid suspend writes the image, then suspends to RAM: /sys/power/disk offers "suspend".
  if (power.suspend_mem && power.suspend_disk) {
    if (auto disk = ReadValue(paths.Sys("power/disk"))) {
      for (std::string_view word : SplitWhitespace(*disk)) {
        if (word == "suspend" || word == "[suspend]") power.suspend_hybrid = true;
      }
    }
  }
  return power;
}

std::vector<SecurityModel> ReadSecurityModels(const HostPaths& paths) {
  std::vector<SecurityModel> models;
  // SELinux is active when selinuxfs is mounted; AppArmor when its module says so.
  if (PathExists(paths.Sys("fs/selinux/enforce"))) models.push_back({"selinux", "0", {}, ""});
  // AppArmor is built in; its "enabled" parameter is read-only, fixed at boot.
  auto apparmor = ReadBootSysfsValue(paths, "module/apparmor/parameters/enabled");
  bool enabled = apparmor && (*apparmor == "Y" || *apparmor == "y" || *apparmor == "1");
  if (enabled && IsDirectory(paths.Sys("kernel/security/apparmor"))) {
    models.push_back({"apparmor", "0", {}, ""});
  }
  if (models.empty()) models.push_back({"none", "0", {}, ""});
  return models;
}

class HostCollector : public Collector {
 public:
  std::string_view name() const override { return "host"; }
  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    caps.uuid = ReadUuid(context);
    if (auto release = KernelRelease(context.paths)) caps.kernel_release = *release;
    caps.power = ReadPower(context.paths);
    caps.secmodels = ReadSecurityModels(context.paths);
    return Status();
  }
};

}  // namespace

std::unique_ptr<Collector> MakeHostCollector() { return std::make_unique<HostCollector>(); }

}  // namespace virtcaps
