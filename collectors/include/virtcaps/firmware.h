// QEMU firmware descriptors (QEMU's docs/interop/firmware.json) and the rules libvirt
// 9.0 applies to them for a domain's <os> capabilities.
//   firmware_descriptors.cpp: finding, reading and parsing the descriptor files;
//   firmware_rules.cpp: matching them to an arch and machine, as libvirt does.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/config.h"
#include "virtcaps/host_paths.h"
#include "virtcaps/model.h"
#include "virtcaps/status.h"

namespace virtcaps {

class DirectoryChanges;

// Descriptor files read at most (more names are reported, not read), and the size of
// one (libvirt's own cap: 1 MiB; Debian's are under 1 kB).
constexpr size_t kMaxFirmwareDescriptors = 256;
constexpr size_t kMaxFirmwareDescriptorBytes = 1u << 20;

// One descriptor's JSON text, parsed as libvirt parses it: interface-types, mapping
// (device flash/memory/kernel; flash: mode, executable, nvram-template), targets
// (architecture, machines) and features (unknown ones ignored) are required; an
// unknown interface, device, flash mode or architecture is an error. `path` names it
// in errors and is kept in the result.
Expected<FirmwareDescriptor> ParseFirmwareDescriptor(std::string_view json,
                                                     const std::string& path);

// Reads the descriptors as libvirt's qemuInteropFetchConfigs finds them: every name
// not starting with '.' in each of `options.firmware_dirs` (under paths.rootfs), a
// later directory's file replacing an earlier one's of the same name, only regular
// files (symlinks followed; others are listed in `ignored`), sorted by name, an empty
// file masking the name. Unlike libvirt, one bad file does not spoil the others: it is
// skipped, with its reason in `invalid` (both lists hold at most
// kMaxFirmwareDescriptors entries). Also checks which loaders exist (executables, and
// `options.nvram`).
QemuFirmware ReadQemuFirmware(const QemuOptions& options, const HostPaths& paths);

// What a refresh loop keeps so that a warm refresh re-reads no descriptor: the last
// result while no descriptor directory changed (DirectoryChanges: an inotify watch on
// each, begun before the read; a directory that was not there is looked for again).
// Loader existence is checked again each time (a few stats). Thread-safe.
class QemuFirmwareMemory {
 public:
  QemuFirmwareMemory();
  ~QemuFirmwareMemory();
  // ReadQemuFirmware, or the remembered descriptors when nothing in the directories
  // changed (then `reread` is false).
  QemuFirmware Read(const QemuOptions& options, const HostPaths& paths);

 private:
  struct Watch {
    std::string dir;                            // under the root
    std::unique_ptr<DirectoryChanges> changes;  // null: not a directory when read
  };
  bool Unchanged(const std::vector<std::string>& dirs);

  std::mutex mutex_;
  std::vector<Watch> watches_;
  bool valid_ = false;
  QemuFirmware last_;
};

// --- libvirt's rules (firmware_rules.cpp) ---

// GLib's g_pattern_match_simple, which libvirt matches machine types with: '*' any
// run of characters, '?' any one character, everything else itself.
bool FirmwareGlobMatch(std::string_view pattern, std::string_view text);

// qemuFirmwareMatchesMachineArch: a target of this arch lists a pattern the machine
// (its canonical name) matches.
bool FirmwareMatchesMachine(const FirmwareDescriptor& descriptor, std::string_view arch,
                            std::string_view machine);

// What libvirt 9.0 prints in a domain's <os> capabilities for one arch and machine
// (virQEMUCapsFillDomainOSCaps): the same for every virt type.
struct DomainOsCaps {
  bool bios = false;  // <enum name='firmware'><value>bios</value>: a matching bios descriptor
  bool efi = false;   // <value>efi</value>: a matching uefi descriptor
  // <loader><value>: the matching descriptors' executables (flash or memory), first
  // occurrence kept; when none matches, the legacy nvram list. Only existing files.
  std::vector<std::string> loaders;
  // <enum name='secure'> has 'yes': a matching descriptor requires SMM (libvirt's
  // test, not the secure-boot feature).
  bool secure = false;
};
DomainOsCaps LibvirtDomainOsCaps(const QemuFirmware& firmware, std::string_view arch,
                                 std::string_view machine);

// A kind of firmware a guest arch can boot with autoselection (<os firmware='efi'>)
// on some machine type of its emulator: a matching descriptor whose executable
// exists. secure_boot: the descriptor has the secure-boot feature.
struct GuestFirmwareOffer {
  std::string firmware;  // efi or bios
  bool secure_boot = false;
  bool operator<(const GuestFirmwareOffer& other) const {
    return firmware != other.firmware ? firmware < other.firmware : secure_boot < other.secure_boot;
  }
};
std::vector<GuestFirmwareOffer> GuestFirmwareOffers(const QemuFirmware& firmware,
                                                    const Guest& guest);

}  // namespace virtcaps
