// libvirt 9.0's rules from QEMU firmware descriptors to a domain's <os> capabilities
// (qemuFirmwareGetSupported, virQEMUCapsFillDomainOSCaps and
// virQEMUCapsFillDomainLoaderCaps), and the firmware kinds a guest arch can boot.
#include <algorithm>
#include <set>

#include "virtcaps/firmware.h"

namespace virtcaps {

bool FirmwareGlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative wildcard matching with one backtrack point (the last '*').
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool FirmwareMatchesMachine(const FirmwareDescriptor& descriptor, std::string_view arch,
                            std::string_view machine) {
  for (const FirmwareTarget& target : descriptor.targets) {
    if (target.arch != arch) continue;
    for (const std::string& pattern : target.machines) {
      if (FirmwareGlobMatch(pattern, machine)) return true;
    }
  }
  return false;
}

namespace {

bool Has(const std::vector<std::string>& items, std::string_view item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

// The file a descriptor maps into the guest as its loader: the flash executable or
// the memory image (a kernel is not a loader).
const std::string* LoaderOf(const FirmwareDescriptor& descriptor) {
  if (descriptor.device == "flash" || descriptor.device == "memory") return &descriptor.executable;
  return nullptr;
}

}  // namespace

DomainOsCaps LibvirtDomainOsCaps(const QemuFirmware& firmware, std::string_view arch,
                                 std::string_view machine) {
  DomainOsCaps caps;
  std::vector<const FirmwareDescriptor*> matched_loaders;
  for (const FirmwareDescriptor& descriptor : firmware.descriptors) {
    if (!FirmwareMatchesMachine(descriptor, arch, machine)) continue;
    caps.efi = caps.efi || Has(descriptor.interfaces, "uefi");
    caps.bios = caps.bios || Has(descriptor.interfaces, "bios");
    caps.secure = caps.secure || Has(descriptor.features, "requires-smm");
    if (LoaderOf(descriptor) != nullptr) matched_loaders.push_back(&descriptor);
  }
  // libvirt falls back to qemu.conf's nvram list when no matching descriptor maps a
  // loader, and in either case lists only files that exist, each once.
  auto add = [&](const std::string& path) {
    if (!Has(caps.loaders, path)) caps.loaders.push_back(path);
  };
  if (matched_loaders.empty()) {
    for (const std::string& loader : firmware.legacy_loaders) add(loader);
  } else {
    for (const FirmwareDescriptor* descriptor : matched_loaders) {
      if (descriptor->executable_exists) add(*LoaderOf(*descriptor));
    }
  }
  return caps;
}

std::vector<GuestFirmwareOffer> GuestFirmwareOffers(const QemuFirmware& firmware,
                                                    const Guest& guest) {
  std::set<GuestFirmwareOffer> offers;
  for (const FirmwareDescriptor& descriptor : firmware.descriptors) {
    if (!descriptor.executable_exists || LoaderOf(descriptor) == nullptr) continue;
    bool fits =
        std::any_of(guest.machines.begin(), guest.machines.end(), [&](const GuestMachine& machine) {
          // An alias stands for its machine, matched by that name.
          const std::string& name = machine.canonical.empty() ? machine.name : machine.canonical;
          return FirmwareMatchesMachine(descriptor, guest.arch, name);
        });
    if (!fits) continue;
    bool secure_boot = Has(descriptor.features, "secure-boot");
    if (Has(descriptor.interfaces, "uefi")) offers.insert({"efi", secure_boot});
    if (Has(descriptor.interfaces, "bios")) offers.insert({"bios", false});
  }
  return {offers.begin(), offers.end()};
}

}  // namespace virtcaps
