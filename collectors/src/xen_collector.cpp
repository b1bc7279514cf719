// The xen hypervisor: guests from the hypervisor's capability string, as libvirt's
// Xen driver builds them; a dom0 also reports the Xen version.
#include <map>

#include "virtcaps/files.h"
#include "virtcaps/hypervisors.h"
#include "virtcaps/strings.h"

namespace virtcaps {

std::optional<XenCapabilityToken> ParseXenCapabilityToken(std::string_view token) {
  // TYPE-VERSION-ARCH[p|be], e.g. "xen-3.0-x86_64", "hvm-3.0-x86_32p", "xen-3.0-ia64be".
  auto parts = Split(token, '-');
  if (parts.size() != 3 || (parts[0] != "xen" && parts[0] != "hvm")) return std::nullopt;
  auto version = Split(parts[1], '.');
  if (version.size() != 2 || !ParseUint(version[0]) || !ParseUint(version[1])) return std::nullopt;
  XenCapabilityToken parsed;
  parsed.os_type = std::string(parts[0]);
  std::string_view arch = parts[2];
  bool pae_suffix = false;
  if (arch.size() > 2 && arch.substr(arch.size() - 2) == "be") {
    parsed.ia64_be = true;
    arch.remove_suffix(2);
  } else if (arch.size() > 1 && arch.back() == 'p') {
    pae_suffix = true;
    arch.remove_suffix(1);
  }
  static const std::map<std::string_view, std::pair<std::string, unsigned>> kArches = {
      {"x86_32", {"i686", 32}},     {"x86_64", {"x86_64", 64}}, {"ia64", {"ia64", 64}},
      {"powerpc64", {"ppc64", 64}}, {"armv7l", {"armv7l", 32}}, {"aarch64", {"aarch64", 64}}};
  auto found = kArches.find(arch);
  if (found == kArches.end()) return std::nullopt;
  if (parsed.ia64_be && found->first != "ia64") return std::nullopt;
  parsed.arch = found->second.first;
  parsed.wordsize = found->second.second;
  if (parsed.arch == "i686") {
    parsed.pae = pae_suffix;
    parsed.nonpae = !pae_suffix;
  } else if (pae_suffix) {
    return std::nullopt;  // "p" only qualifies x86_32
  }
  return parsed;
}

std::vector<Guest> XenGuests(std::string_view capabilities, const XenOptions& options) {
  std::vector<Guest> guests;
  std::vector<XenCapabilityToken> merged;  // one per (os_type, arch), in string order
  for (std::string_view word : SplitWhitespace(capabilities)) {
    auto token = ParseXenCapabilityToken(word);
    if (!token) continue;  // unknown architectures are skipped, as libvirt does
    bool found = false;
    for (XenCapabilityToken& existing : merged) {
      if (existing.os_type == token->os_type && existing.arch == token->arch) {
        existing.pae = existing.pae || token->pae;
        existing.nonpae = existing.nonpae || token->nonpae;
        existing.ia64_be = existing.ia64_be || token->ia64_be;
        found = true;
      }
    }
    if (!found) merged.push_back(*token);
  }
  for (const XenCapabilityToken& token : merged) {
    Guest guest;
    guest.hypervisor = "xen";
    guest.os_type = token.os_type;
    guest.arch = token.arch;
    guest.wordsize = token.wordsize;
    auto emulator = options.emulator_by_arch.find(token.arch);
    guest.emulator =
        emulator != options.emulator_by_arch.end() ? emulator->second : options.emulator;
    bool hvm = token.os_type == "hvm";
    if (hvm) guest.loader = options.loader;
    for (const std::string& machine : hvm ? options.hvm_machines : options.pv_machines) {
      guest.machines.push_back(GuestMachine{machine, "", std::nullopt, false, false});
    }
    guest.domains.push_back(GuestDomain{"xen", "", {}});
    if (options.report_features) {
      if (token.pae) guest.features.push_back({"pae", std::nullopt, std::nullopt});
      if (token.nonpae) guest.features.push_back({"nonpae", std::nullopt, std::nullopt});
      if (token.ia64_be) guest.features.push_back({"ia64_be", std::nullopt, std::nullopt});
      if (hvm && (token.arch == "i686" || token.arch == "x86_64")) {
        guest.features.push_back({"acpi", true, true});
        guest.features.push_back({"apic", true, false});
      }
    }
    guests.push_back(std::move(guest));
  }
  return guests;
}

namespace {

class XenCollector : public Collector {
 public:
  explicit XenCollector(XenOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return "xen"; }

  Status Collect(const CollectContext& context, HostCapabilities& caps) override {
    const HostPaths& paths = context.paths;
    HypervisorStatus& status = caps.hypervisors.emplace_back();
    status.name = "xen";
    auto type = ReadValue(paths.Sys("hypervisor/type"));
    if (!type || *type != "xen") {
      status.detail = "not running on Xen (" + paths.Sys("hypervisor/type") + ")";
      return Status();
    }
    // The version, where sysfs gives it: major.minor and the "extra" suffix (".3").
    auto major = ReadValue(paths.Sys("hypervisor/version/major"));
    auto minor = ReadValue(paths.Sys("hypervisor/version/minor"));
    auto extra = ReadValue(paths.Sys("hypervisor/version/extra"));
    if (major && minor) status.version = *major + "." + *minor + (extra ? *extra : "");

    auto control = ReadValue(paths.Proc("xen/capabilities"));
    if (!control || control->find("control_d") == std::string::npos) {
      status.detail = "a Xen guest (domU), not the control domain";
      return Status();
    }
    std::string path = paths.Sys("hypervisor/properties/capabilities");
    auto capabilities = ReadValue(path);
    if (!capabilities) return capabilities.status();
    std::vector<Guest> guests = XenGuests(*capabilities, options_);
    if (guests.empty()) {
      return Status::Error(path + ": no guest types in '" + capabilities->substr(0, 80) + "'");
    }
    status.available = true;
    status.detail = *capabilities;
    for (Guest& guest : guests) caps.guests.push_back(std::move(guest));
    return Status();
  }

 private:
  XenOptions options_;
};

}  // namespace

std::unique_ptr<Collector> MakeXenCollector(const XenOptions& options) {
  return std::make_unique<XenCollector>(options);
}

}  // namespace virtcaps
